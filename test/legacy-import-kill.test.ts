/**
 * LegacyImport killed with SIGKILL mid-import, twice, then run to the end, in child processes
 * running the built packages: the totals and the stored rows equal those of an import that was
 * never interrupted (into a second target), and both equal what the generator of the legacy
 * database says they must be.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { ChatPlan, LegacyImport } from "@strata/chat"
import { Database, Migrator } from "@strata/sql"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { generateLegacy } from "./fixtures/legacySessions.js"
import { assertBuildIsFresh } from "./fixtures/builtPackages.js"
import { pgTestUrlWithSchema, tempSqliteFile } from "./support/databases.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "legacy-import-child.mjs")
const SESSIONS = 1500

const builtSources = ["chat/src/LegacyImport.ts", "chat/src/internal/legacyRows.ts", "sql/src/JobState.ts", "chat/src/internal/chatRows.ts"]

interface ChildRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly firstProgress: string | undefined
  readonly lastProgress: string | undefined
  readonly result: unknown
  readonly stderr: string
}

/** Runs the import child; with `killWhen`, SIGKILLs it as soon as a progress line satisfies it. */
const runChild = (source: string, target: string, killWhen?: (phase: string, sessions: number, contexts: number) => boolean) =>
  Effect.async<ChildRun, Error>((resume) => {
    const child = spawn(process.execPath, [childScript, source, target, "25", "4"], { stdio: ["ignore", "pipe", "pipe"] })
    let buffered = ""
    let stderr = ""
    let firstProgress: string | undefined
    let lastProgress: string | undefined
    let result: unknown
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 120_000)
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = (buffered + chunk.toString("utf8")).split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) {
        if (line.startsWith("result ")) result = JSON.parse(line.slice("result ".length))
        if (!line.startsWith("progress ")) continue
        firstProgress ??= line
        lastProgress = line
        const [, phase, sessions, contexts] = line.split(" ")
        if (killWhen?.(phase!, Number(sessions), Number(contexts))) child.kill("SIGKILL")
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code, signal) => {
      clearTimeout(watchdog)
      resume(Effect.succeed({ code, signal, firstProgress, lastProgress, result, stderr }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const migrate = (url: string) =>
  Effect.flatMap(Migrator.make(ChatPlan.plan), (migrator) => migrator.run()).pipe(Effect.provide(Database.layer({ url })))

/** The stored rows without the generated ids (message ids are fresh UUIDv7s, switch ids an identity). */
const snapshot = (url: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return {
      sessions: yield* sql`SELECT id, created_at_ms, last_activity_ms, is_active, deleted_at_ms FROM sessions ORDER BY id`,
      messages: yield* sql`SELECT session_id, seq, role, content, token_count, created_at_ms FROM messages ORDER BY session_id, seq`,
      contexts: yield* sql`SELECT session_id, current_agent, created_at_ms, updated_at_ms, switch_count FROM agent_contexts ORDER BY session_id`,
      switches: yield* sql`SELECT session_id, from_agent, to_agent, reason, switched_at_ms FROM agent_switches ORDER BY session_id, switched_at_ms`,
      rejects: yield* sql`SELECT job, row_key, reason FROM strata_rejects ORDER BY job, row_key`
    }
  }).pipe(Effect.provide(Database.layer({ url })))

const scenario = (urls: { readonly source: string; readonly killed: string; readonly oneShot: string }) =>
  Effect.gen(function*() {
    assertBuildIsFresh(builtSources)
    const expected = yield* generateLegacy(SESSIONS).pipe(Effect.provide(Database.layer({ url: urls.source })))
    yield* migrate(urls.killed)
    yield* migrate(urls.oneShot)

    const first = yield* runChild(urls.source, urls.killed, (phase, sessions) => phase === "sessions" && sessions >= 400)
    expect(first.signal).toBe("SIGKILL")
    expect(first.result).toBeUndefined()
    const second = yield* runChild(urls.source, urls.killed, (phase, _, contexts) => phase === "agentContexts" && contexts >= 200)
    expect(second.signal).toBe("SIGKILL")
    expect(second.result).toBeUndefined()
    // Each run resumed where the previous one was killed (the counters are cumulative).
    const [, , resumedAt] = second.firstProgress!.split(" ")
    expect(Number(resumedAt)).toBeGreaterThan(400)
    const finished = yield* runChild(urls.source, urls.killed)
    expect(finished.firstProgress!.split(" ").slice(0, 3)).toEqual(["progress", "agentContexts", String(SESSIONS)])
    expect({ code: finished.code, stderr: finished.stderr }).toEqual({ code: 0, stderr: "" })

    const oneShot = yield* LegacyImport.run({ source: Database.layer({ url: urls.source }), batchSize: 25 }).pipe(
      Effect.provide(Database.layer({ url: urls.oneShot }))
    )
    const jobs = { sessions: "legacy-import:sessions", agentContexts: "legacy-import:agent_contexts" }
    expect(oneShot).toEqual({ ...expected, jobs })
    expect(finished.result).toEqual({ ...expected, jobs })

    const killedRows = yield* snapshot(urls.killed)
    const oneShotRows = yield* snapshot(urls.oneShot)
    expect(killedRows.messages).toHaveLength(expected.messages)
    expect(killedRows.switches).toHaveLength(expected.agentSwitches)
    expect(killedRows.sessions).toHaveLength(expected.sessions.imported)
    expect(killedRows.rejects).toHaveLength(expected.sessions.rejected + expected.agentContexts.rejected)
    expect(killedRows).toEqual(oneShotRows)
    expect(expected.sessions.rejected).toBeGreaterThan(50)
    expect(expected.agentContexts.rejected).toBeGreaterThan(30)

    // And once more, finished: nothing changes.
    const again = yield* runChild(urls.source, urls.killed)
    expect(again.result).toEqual({ ...expected, jobs })
    expect(yield* snapshot(urls.killed)).toEqual(killedRows)
  })

describe("LegacyImport killed with SIGKILL and re-run", () => {
  it.scopedLive("SQLite", () =>
    Effect.gen(function*() {
      yield* scenario({
        source: yield* tempSqliteFile("legacy.db"),
        killed: yield* tempSqliteFile("killed.db"),
        oneShot: yield* tempSqliteFile("one-shot.db")
      })
    }), 180_000)

  it.scopedLive("PostgreSQL", () =>
    Effect.gen(function*() {
      yield* scenario({
        source: (yield* pgTestUrlWithSchema()).url,
        killed: (yield* pgTestUrlWithSchema()).url,
        oneShot: (yield* pgTestUrlWithSchema()).url
      })
    }), 180_000)
})
