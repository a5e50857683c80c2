/**
 * Three LegacyImport processes at once on one database (the built packages, in child processes),
 * in place (legacy_* tables beside the chat store, the layout where SQLite's snapshot errors showed)
 * and from a separate source database: every process ends well and reports the job's exact totals,
 * every legacy row is read and imported once, and the checkpoint's counters equal what the
 * generator says. Before each batch claimed its checkpoint, two of three SQLite imports failed with
 * SQLITE_BUSY_SNAPSHOT and the job ended `done` with 4,226 of 4,826 rows counted.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { ChatPlan, LegacyImport } from "@strata/chat"
import { Database, Migrator } from "@strata/sql"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { generateLegacy } from "./fixtures/legacySessions.js"
import { assertBuildIsFresh } from "./fixtures/builtPackages.js"
import { pgTestUrlWithSchema, tempSqliteFile } from "./support/databases.js"

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "legacy-import-child.mjs")
const SESSIONS = 1200

const builtSources = ["chat/src/LegacyImport.ts", "chat/src/internal/legacyRows.ts", "chat/src/internal/legacyWrites.ts", "sql/src/JobState.ts"]

interface ChildRun {
  readonly code: number | null
  readonly batches: number
  readonly result: unknown
  readonly stderr: string
}

const runChild = (source: string, target: string) =>
  Effect.async<ChildRun, Error>((resume) => {
    const child = spawn(process.execPath, [childScript, source, target, "20", "1"], { stdio: ["ignore", "pipe", "pipe"] })
    let buffered = ""
    let stderr = ""
    let batches = 0
    let result: unknown
    const watchdog = setTimeout(() => child.kill("SIGKILL"), 150_000)
    child.stdout.on("data", (chunk: Buffer) => {
      const lines = (buffered + chunk.toString("utf8")).split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) {
        if (line.startsWith("progress ")) batches++
        if (line.startsWith("result ")) result = JSON.parse(line.slice("result ".length))
      }
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8")
    })
    child.on("error", (error) => resume(Effect.fail(error)))
    child.on("close", (code) => {
      clearTimeout(watchdog)
      resume(Effect.succeed({ code, batches, result, stderr }))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const stored = (url: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const count = (table: string) => Effect.map(sql.unsafe<{ n: number | string }>(`SELECT count(*) AS n FROM ${table}`), (r) => Number(r[0]!.n))
    return {
      sessions: yield* count("sessions"),
      messages: yield* count("messages"),
      agentContexts: yield* count("agent_contexts"),
      agentSwitches: yield* count("agent_switches"),
      rejects: yield* count("strata_rejects"),
      jobs: (yield* sql<{ job: string; processed: number | string; updated: number | string; rejected: number | string; state: string }>`
        SELECT job, processed, updated, rejected, state FROM strata_jobs ORDER BY job`).map((j) => ({
          job: j.job,
          processed: Number(j.processed),
          updated: Number(j.updated),
          rejected: Number(j.rejected),
          state: j.state
        }))
    }
  }).pipe(Effect.provide(Database.layer({ url })))

const scenario = (source: string | undefined, target: string) =>
  Effect.gen(function*() {
    assertBuildIsFresh(builtSources)
    const expected = yield* generateLegacy(SESSIONS).pipe(Effect.provide(Database.layer({ url: source ?? target })))
    yield* Effect.gen(function*() {
      if (source === undefined) yield* LegacyImport.renameLegacyTables
      yield* Migrator.run()
    }).pipe(Effect.provide(Migrator.layer(ChatPlan.plan).pipe(Layer.provideMerge(Database.layer({ url: target })))))

    const runs = yield* Effect.all([1, 2, 3].map(() => runChild(source ?? "-", target)), { concurrency: "unbounded" })
    const prefix = source === undefined ? "legacy_" : ""
    const jobs = { sessions: `legacy-import:${prefix}sessions`, agentContexts: `legacy-import:${prefix}agent_contexts` }
    for (const run of runs) {
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" })
      // Whichever batches each process did, each reports the job's totals.
      expect(run.result).toEqual({ ...expected, jobs })
    }
    // The processes shared the work: every batch was done by exactly one of them.
    expect(runs.reduce((n, run) => n + run.batches, 0)).toBe(Math.ceil(SESSIONS / 20) + Math.ceil(expected.agentContexts.scanned / 20))
    expect(yield* stored(target)).toEqual({
      sessions: expected.sessions.imported,
      messages: expected.messages,
      agentContexts: expected.agentContexts.imported,
      agentSwitches: expected.agentSwitches,
      rejects: expected.sessions.rejected + expected.agentContexts.rejected,
      jobs: [
        { job: jobs.agentContexts, processed: expected.agentContexts.scanned, updated: expected.agentContexts.imported, rejected: expected.agentContexts.rejected, state: "done" },
        { job: jobs.sessions, processed: expected.sessions.scanned, updated: expected.sessions.imported, rejected: expected.sessions.rejected, state: "done" }
      ]
    })
  })

describe("Three LegacyImport processes at once", () => {
  it.scopedLive("SQLite, in place", () => Effect.flatMap(tempSqliteFile("store.db"), (target) => scenario(undefined, target)), 180_000)

  it.scopedLive("SQLite, from a separate source", () =>
    Effect.gen(function*() {
      yield* scenario(yield* tempSqliteFile("legacy.db"), yield* tempSqliteFile("store.db"))
    }), 180_000)

  it.scopedLive("PostgreSQL, in place", () =>
    Effect.flatMap(pgTestUrlWithSchema(), ({ url }) => scenario(undefined, url)), 180_000)

  it.scopedLive("PostgreSQL, from a separate source", () =>
    Effect.gen(function*() {
      yield* scenario((yield* pgTestUrlWithSchema()).url, (yield* pgTestUrlWithSchema()).url)
    }), 180_000)
})
