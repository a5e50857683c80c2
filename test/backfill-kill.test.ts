/**
 * A backfill process killed with SIGKILL at random points (at least 10 times: between batches, in
 * the middle of a batch's transaction, while committing) and then resumed ends with exactly the
 * table a one-shot run produces, row for row: nothing lost, nothing written twice, every reject
 * recorded once, and the job counters equal (no batch counted twice). The child runs the built
 * packages (`tsc -b` first), as the CLI does.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Plans } from "@strata/core"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import { Effect, Logger, LogLevel } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { createLegacyTables, insertFixture, insertGenerated, presetTargets, random, readState } from "./fixtures/agentosLegacy.js"
import { createPgTestSchema, tempSqliteFileSync } from "./support/databases.js"

const child = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "fixtures", "backfill-child.mjs")
const GENERATED_ROWS = 3000
const BATCH = 37
const KILLS = 12

const withDatabase = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(Database.layer({ url })),
      Logger.withMinimumLogLevel(LogLevel.None)
    ) as Effect.Effect<A, never>
  )

const prepare = (url: string) =>
  withDatabase(
    url,
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* insertFixture
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run())
      yield* presetTargets
      yield* insertGenerated(GENERATED_ROWS, 42)
    })
  )

/** Everything a run leaves behind that must match a one-shot run. */
const outcome = (url: string) =>
  withDatabase(
    url,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rejects = yield* sql<{ job: string; row_key: string }>`SELECT job, row_key FROM strata_rejects ORDER BY job, row_key`
      const jobs = yield* sql<{ job: string; cursor: string; processed: number; updated: number; rejected: number; already_set: number; out_of_scope: number; state: string }>`
        SELECT job, cursor, processed, updated, rejected, already_set, out_of_scope, state FROM strata_jobs ORDER BY job`
      return {
        state: yield* readState,
        rejects: rejects.map((r) => `${r.job} ${r.row_key}`),
        jobs: jobs.map((j) => [j.job, j.cursor, Number(j.processed), Number(j.updated), Number(j.rejected), Number(j.already_set), Number(j.out_of_scope), j.state])
      }
    })
  )

const oneShot = (url: string) =>
  withDatabase(
    url,
    BackfillRunner.run({ batchSize: BATCH, fixedBatchSize: true }).pipe(Effect.provide(BackfillRunner.layer(Plans.agentos)))
  )

interface ChildResult {
  readonly killed: boolean
  readonly finished: boolean
  readonly batches: number
  readonly stderr: string
}

/** Runs the child; with `killAfter`, SIGKILLs it `delayMs` after it reported that many batches. */
const runChild = (url: string, killAfter?: { readonly batches: number; readonly delayMs: number }) =>
  new Promise<ChildResult>((resolve, reject) => {
    const proc = spawn(process.execPath, [child, url, String(BATCH)], { stdio: ["ignore", "pipe", "pipe"] })
    let batches = 0
    let finished = false
    let killed = false
    let stderr = ""
    let buffered = ""
    proc.stdout.setEncoding("utf8")
    proc.stderr.setEncoding("utf8")
    proc.stderr.on("data", (chunk: string) => (stderr += chunk))
    proc.stdout.on("data", (chunk: string) => {
      buffered += chunk
      const lines = buffered.split("\n")
      buffered = lines.pop() ?? ""
      for (const line of lines) {
        if (line === "DONE") finished = true
        if (line.startsWith("batch ") || line.startsWith("completed ")) {
          batches++
          if (killAfter !== undefined && batches === killAfter.batches && !killed) {
            killed = true
            setTimeout(() => proc.kill("SIGKILL"), killAfter.delayMs)
          }
        }
      }
    })
    proc.on("error", reject)
    proc.on("close", (_code, signal) => resolve({ killed: signal === "SIGKILL", finished, batches, stderr }))
  })

const killAndResume = async (makeUrl: () => Promise<{ readonly url: string; readonly done: () => Promise<void> }>) => {
  const reference = await makeUrl()
  const victim = await makeUrl()
  try {
    await prepare(reference.url)
    await prepare(victim.url)
    await oneShot(reference.url)
    const expected = await outcome(reference.url)

    const next = random(20240115)
    let kills = 0
    let attempts = 0
    while (kills < KILLS && attempts < KILLS * 3) {
      attempts++
      const result = await runChild(victim.url, { batches: 1 + Math.floor(next() * 6), delayMs: Math.floor(next() * 12) })
      if (result.killed) kills++
      else if (!result.finished) throw new Error(`backfill child failed: ${result.stderr}`)
      else break
    }
    expect(kills).toBeGreaterThanOrEqual(10)
    const last = await runChild(victim.url)
    expect(last.stderr).toBe("")
    expect(last.finished).toBe(true)

    const actual = await outcome(victim.url)
    expect(actual.jobs).toEqual(expected.jobs)
    expect(actual.rejects).toEqual(expected.rejects)
    expect(actual.state).toEqual(expected.state)
    expect(Object.keys(actual.state["chat_messages"]!)).toHaveLength(GENERATED_ROWS + 25)
  } finally {
    await reference.done()
    await victim.done()
  }
}

describe("backfill killed with SIGKILL and resumed", () => {
  it("SQLite: equals a one-shot run row for row", async () => {
    await killAndResume(async () => {
      const file = tempSqliteFileSync()
      return { url: file.path, done: async () => file.remove() }
    })
  }, 240_000)

  it("PostgreSQL: equals a one-shot run row for row", async () => {
    await killAndResume(async () => {
      const schema = await createPgTestSchema()
      return { url: schema.url, done: schema.drop }
    })
  }, 240_000)
})

