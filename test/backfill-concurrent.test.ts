/**
 * Four backfill processes started at once on one database share its jobs: each batch claims the
 * job's checkpoint in its transaction (JobState.claimCheckpoint), so the processes take turns batch
 * by batch, each going on from the cursor and counts the previous one saved. The end state equals a
 * one-shot run row for row, with every counter exact (no batch counted twice, none reset to zero by
 * a late first write). The children run the built packages (`tsc -b` first), as the CLI does.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Plans } from "@strata/core"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import { Effect, Logger, LogLevel } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { createLegacyTables, insertFixture, insertGenerated, presetTargets, readState } from "./fixtures/agentosLegacy.js"
import { createPgTestSchema, tempSqliteFileSync } from "./support/databases.js"

const child = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "fixtures", "backfill-child.mjs")
const GENERATED_ROWS = 3000
const BATCH = 29
const PROCESSES = 4

const withDatabase = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.runPromise(
    effect.pipe(Effect.provide(Database.layer({ url })), Logger.withMinimumLogLevel(LogLevel.None)) as Effect.Effect<A, never>
  )

const prepare = (url: string) =>
  withDatabase(
    url,
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* insertFixture
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run())
      yield* presetTargets
      yield* insertGenerated(GENERATED_ROWS, 7)
    })
  )

/** Everything a run leaves behind that must match a one-shot run. */
const outcome = (url: string) =>
  withDatabase(
    url,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rejects = yield* sql<{ job: string; row_key: string }>`SELECT job, row_key FROM strata_rejects ORDER BY job, row_key`
      const jobs = yield* sql<Record<string, unknown>>`
        SELECT job, cursor, processed, updated, rejected, already_set, out_of_scope, state FROM strata_jobs ORDER BY job`
      return {
        state: yield* readState,
        rejects: rejects.map((r) => `${r.job} ${r.row_key}`),
        jobs: jobs.map((j) => [j["job"], j["cursor"], ...["processed", "updated", "rejected", "already_set", "out_of_scope"].map((c) => Number(j[c])), j["state"]])
      }
    })
  )

interface ChildResult {
  readonly code: number | null
  readonly batches: number
  readonly finished: boolean
  readonly stderr: string
}

const runChild = (url: string) =>
  new Promise<ChildResult>((resolve, reject) => {
    const proc = spawn(process.execPath, [child, url, String(BATCH)], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    proc.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    proc.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    proc.on("error", reject)
    proc.on("close", (code) => {
      const lines = stdout.split("\n")
      resolve({ code, batches: lines.filter((l) => l.startsWith("batch ")).length, finished: lines.includes("DONE"), stderr })
    })
  })

const concurrentRuns = async (makeUrl: () => Promise<{ readonly url: string; readonly done: () => Promise<void> }>) => {
  const reference = await makeUrl()
  const shared = await makeUrl()
  try {
    await prepare(reference.url)
    await prepare(shared.url)
    await withDatabase(
      reference.url,
      BackfillRunner.run({ batchSize: BATCH, fixedBatchSize: true }).pipe(Effect.provide(BackfillRunner.layer(Plans.agentos)))
    )
    const expected = await outcome(reference.url)

    const results = await Promise.all(Array.from({ length: PROCESSES }, () => runChild(shared.url)))
    for (const result of results) {
      expect({ code: result.code, finished: result.finished, stderr: result.stderr }).toEqual({ code: 0, finished: true, stderr: "" })
    }
    // They shared the work: more than one of them walked batches of it.
    expect(results.filter((r) => r.batches > 0).length).toBeGreaterThan(1)

    const actual = await outcome(shared.url)
    expect(actual.jobs).toEqual(expected.jobs)
    expect(actual.rejects).toEqual(expected.rejects)
    expect(actual.state).toEqual(expected.state)
  } finally {
    await reference.done()
    await shared.done()
  }
}

describe(`${PROCESSES} backfill processes at once on one database`, () => {
  it("SQLite: counters exact, data equal to a one-shot run", async () => {
    await concurrentRuns(async () => {
      const file = tempSqliteFileSync()
      return { url: file.path, done: async () => file.remove() }
    })
  }, 300_000)

  it("PostgreSQL: counters exact, data equal to a one-shot run", async () => {
    await concurrentRuns(async () => {
      const schema = await createPgTestSchema()
      return { url: schema.url, done: schema.drop }
    })
  }, 300_000)
})
