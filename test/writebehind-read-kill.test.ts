/**
 * WriteBehind's promise under read load, across a crash: a child process (the built packages)
 * loops append then getRecentMessages(session, 20), printing each acknowledged append with the
 * time it was acknowledged; the test SIGKILLs it after a few seconds and reads the database. What
 * a crash may lose is what was still buffered: with the flusher never starved, that is at most
 * about the interval of appends, so the oldest lost append is younger than the interval plus a
 * little slack. (Before the fix, on SQLite, the flusher never ran during such a loop: the oldest
 * lost append was as old as the run.)
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { ChatPlan, ChatStore } from "@strata/chat"
import { Database, Migrator } from "@strata/sql"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { assertBuildIsFresh } from "./fixtures/builtPackages.js"
import { pgTestUrlWithSchema, tempSqliteFile } from "./support/databases.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "writebehind-reader-child.mjs")

const builtSources = ["chat/src/WriteBehind.ts", "chat/src/internal/writeBuffer.ts", "chat/src/internal/eventLoop.ts", "chat/src/internal/mergedReads.ts"]

const intervalMs = 100
const runMs = 3000
// Room for a loaded machine: a flush in progress, a slow commit, scheduling. A third of the run.
const slackMs = 900

interface Ack {
  readonly seq: number
  readonly atMs: number
}

interface Run {
  readonly acks: ReadonlyArray<Ack>
  readonly killedAtMs: number
  readonly signal: NodeJS.Signals | null
  readonly stderr: string
}

/** Runs the child, SIGKILLs it `runMs` after it is ready, and waits for it to be gone. */
const runAndKill = (url: string, sessionId: string) =>
  Effect.async<Run, Error>((resume) => {
    const child = spawn(process.execPath, [childScript, url, sessionId, String(intervalMs)], { stdio: ["ignore", "pipe", "pipe"] })
    const acks: Array<Ack> = []
    let partial = ""
    let stderr = ""
    let killedAtMs = -1
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 120_000)
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = (partial + chunk.toString("utf8")).split("\n")
      partial = lines.pop() ?? ""
      for (const line of lines) {
        if (line === "ready") {
          setTimeout(() => {
            killedAtMs = Date.now()
            child.kill("SIGKILL")
          }, runMs)
        }
        const [kind, seq, atMs] = line.split(" ")
        if (kind === "ack") acks.push({ seq: Number(seq), atMs: Number(atMs) })
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (_code, signal) => {
      clearTimeout(watchdog)
      resume(Effect.succeed({ acks, killedAtMs, signal, stderr }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const scenario = (url: string) =>
  Effect.gen(function*() {
    assertBuildIsFresh(builtSources)
    const database = Database.layer({ url })
    const sessionId = "reader"
    yield* Effect.gen(function*() {
      yield* Migrator.run()
      yield* ChatStore.createSession({ id: sessionId })
    }).pipe(Effect.provide(Layer.mergeAll(Migrator.layer(ChatPlan.plan), ChatStore.layer).pipe(Layer.provideMerge(database))))

    const run = yield* runAndKill(url, sessionId)
    expect(run.stderr).toBe("")
    expect(run.signal).toBe("SIGKILL")
    expect(run.acks.length).toBeGreaterThan(0)
    // One session, one writer: acknowledged seqs are 1, 2, 3, ... in order.
    expect(run.acks.map((a) => a.seq)).toEqual(run.acks.map((_, i) => i + 1))

    const stored = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ seq: number }>`SELECT seq FROM messages WHERE session_id = ${sessionId} ORDER BY seq`).pipe(Effect.provide(database))
    const seqs = stored.map((row) => Number(row.seq))
    // Flushes commit in append order: what is stored is a prefix 1..k.
    expect(seqs).toEqual(seqs.map((_, i) => i + 1))
    expect(seqs.length).toBeGreaterThan(0)
    const lost = run.acks.filter((ack) => ack.seq > seqs.length)
    const oldestLostAgeMs = lost.length === 0 ? 0 : run.killedAtMs - lost[0]!.atMs
    expect(oldestLostAgeMs).toBeLessThan(intervalMs + slackMs)
  })

describe("WriteBehind under read load, killed with SIGKILL", () => {
  it.scopedLive("SQLite", () => Effect.flatMap(tempSqliteFile("reader.db"), scenario), 120_000)

  it.scopedLive(
    "PostgreSQL",
    () => Effect.flatMap(pgTestUrlWithSchema(), ({ url }) => scenario(url)),
    120_000
  )
})
