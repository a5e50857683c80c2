/**
 * A `Plan.derive` backfill: 1,000,000 rows of `people.email` (mixed case, ASCII) → `email_lower`,
 * through the step's `convert` (`toLowerCase`) and its SQL fast path (`lower(email)`, checked
 * against `convert` on a sample before use and on a few rows per batch). Cases, each on a fresh copy
 * of the same data, interleaved within each repetition:
 *
 * - baseline: one `UPDATE people SET email_lower = lower(email)` statement (the fast path's
 *   expression), which locks the table for its whole run;
 * - the runner with the fast path (adaptive batches, 50 ms target), and its longest batch;
 * - the runner with `fastPath: false` (every row read, converted by `convert`, written back).
 *
 * The same on PostgreSQL when `STRATA_BENCH_PG_URL` (or `STRATA_TEST_PG_URL`) is set, in a schema
 * of its own (dropped at the end). `BENCH_ROWS` scales the table (default 1,000,000).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import { Duration, Effect, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions } from "./harness.js"

const ROWS = Number(process.env["BENCH_ROWS"] ?? "1000000")
const TARGET_MS = 50

type Dialect = "sqlite" | "pg"

const plan = Plan.make("derive-bench", [
  Plan.migration(1, "people", [Plan.createTable("people", [{ name: "id", type: "integer", primaryKey: true }, { name: "email", type: "text" }])]),
  Plan.migration(2, "email_lower", [Plan.derive("people", {
    reads: ["email"],
    targets: [{ column: "email_lower", type: "text" }],
    convert: (row) => ({ email_lower: typeof row.email === "string" ? row.email.toLowerCase() : null }),
    sql: { sqlite: { email_lower: "lower(email)" }, postgresql: { email_lower: "lower(email)" } }
  })])
])

const quiet = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.provide(Database.layer({ url })), Logger.withMinimumLogLevel(LogLevel.None), Effect.orDie))

const createData = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
    yield* sql.unsafe(
      dialect === "sqlite"
        ? `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
           INSERT INTO people (id, email) SELECT i, 'User' || i || '@Example.COM' FROM n`
        : `INSERT INTO people (id, email) SELECT i, 'User' || i || '@Example.COM' FROM generate_series(1, ${ROWS}) AS i`
    )
  })

interface Timing {
  readonly totalMs: number
  readonly longestBatchMs: number
  readonly batches: number
}

const now = () => performance.now()

const singleStatement = () =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const start = now()
    yield* sql.unsafe(`UPDATE people SET email_lower = lower(email) WHERE email_lower IS NULL`)
    const totalMs = now() - start
    return { totalMs, longestBatchMs: totalMs, batches: 1 } satisfies Timing
  })

const runner = (fastPath: boolean) =>
  Effect.gen(function*() {
    const start = now()
    const [summary] = yield* BackfillRunner.run({ fastPath, maxBatchTime: Duration.millis(TARGET_MS) })
    const totalMs = now() - start
    if (summary === undefined || summary.updated !== ROWS) throw new Error(`runner updated ${summary?.updated} of ${ROWS} rows`)
    if (summary.fastPath !== (fastPath ? "used" : "none")) throw new Error(`fast path ${summary.fastPath}, expected ${fastPath ? "used" : "none"}`)
    return { totalMs, longestBatchMs: summary.longestBatchMs, batches: summary.batches } satisfies Timing
  }).pipe(Effect.provide(BackfillRunner.layer(plan)))

interface Engine {
  readonly dialect: Dialect
  readonly setUp: () => Promise<void>
  readonly fresh: () => Promise<{ readonly url: string; readonly dispose: () => Promise<void> }>
  readonly tearDown: () => Promise<void>
}

const sqliteEngine = (): Engine => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-derive-"))
  const template = Path.join(directory, "template.db")
  let copies = 0
  return {
    dialect: "sqlite",
    setUp: () => quiet(template, createData("sqlite")),
    fresh: async () => {
      const url = Path.join(directory, `copy-${copies++}.db`)
      Fs.copyFileSync(template, url)
      return { url, dispose: async () => ["", "-wal", "-shm"].forEach((suffix) => Fs.rmSync(`${url}${suffix}`, { force: true })) }
    },
    tearDown: async () => Fs.rmSync(directory, { recursive: true, force: true })
  }
}

const pgEngine = (baseUrl: string): Engine => {
  const schema = `strata_bench_derive_${process.pid}`
  const parsed = new URL(baseUrl)
  parsed.searchParams.set("options", `-c search_path=${schema}`)
  const url = parsed.toString()
  const admin = (statement: string) => quiet(baseUrl, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)))
  return {
    dialect: "pg",
    setUp: async () => {
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await admin(`CREATE SCHEMA ${schema}`)
      await quiet(url, Effect.gen(function*() {
        yield* createData("pg")
        yield* (yield* SqlClient.SqlClient).unsafe(`CREATE TABLE people_template AS SELECT * FROM people`)
      }))
    },
    fresh: async () => {
      await quiet(url, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP TABLE IF EXISTS strata_jobs`)
        yield* sql.unsafe(`DROP TABLE IF EXISTS strata_rejects`)
        yield* sql.unsafe(`TRUNCATE people`)
        yield* sql.unsafe(`INSERT INTO people SELECT * FROM people_template`)
        yield* sql.unsafe(`VACUUM ANALYZE people`)
        yield* sql.unsafe(`CHECKPOINT`)
      }))
      return { url, dispose: async () => undefined }
    },
    tearDown: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => undefined)
  }
}

const cases: ReadonlyArray<readonly [name: string, run: () => Effect.Effect<Timing, unknown, SqlClient.SqlClient>]> = [
  ["one UPDATE ... SET email_lower = lower(email) (baseline)", singleStatement],
  ["BackfillRunner, checked SQL fast path", () => runner(true)],
  ["BackfillRunner, convert in JS (fastPath: false)", () => runner(false)]
]

const measure = async (engine: Engine): Promise<ReadonlyArray<BenchmarkRow>> => {
  await engine.setUp()
  const timings: Array<Array<Timing>> = cases.map(() => [])
  try {
    for (let repetition = 0; repetition < repetitions(); repetition++) {
      for (const [index, [, run]] of cases.entries()) {
        const copy = await engine.fresh()
        collectGarbage()
        timings[index]!.push(await quiet(copy.url, run() as Effect.Effect<Timing, never, SqlClient.SqlClient>))
        await copy.dispose()
      }
    }
  } finally {
    await engine.tearDown()
  }
  const label = engine.dialect === "sqlite" ? "SQLite" : "PostgreSQL"
  const baseline = median(timings[0]!.map((t) => t.totalMs))
  return cases.flatMap(([name], index) => {
    const runs = timings[index]!
    const total = median(runs.map((t) => t.totalMs))
    return [
      { case: `${label}: ${name}, total`, median: total, unit: "ms", ratio: total / baseline },
      { case: `${label}: ${name}, rate`, median: ROWS / (total / 1000), unit: "rows/s" },
      { case: `${label}: ${name}, longest batch (median of runs)`, median: median(runs.map((t) => t.longestBatchMs)), unit: "ms" },
      { case: `${label}: ${name}, batches`, median: median(runs.map((t) => t.batches)), unit: "batches" }
    ]
  })
}

export const benchmark: BenchmarkModule = {
  name: "derive",
  description:
    `${ROWS.toLocaleString("en-US")}-row people.email → email_lower derive backfill: the runner with its checked SQL fast path and ` +
    `with convert in JavaScript (target ${TARGET_MS} ms per batch) vs one UPDATE of the same expression (baseline, same run); ` +
    `each case on a fresh copy of the data.`,
  run: async () => {
    const rows = [...(await measure(sqliteEngine()))]
    const pgUrl = process.env["STRATA_BENCH_PG_URL"] ?? process.env["STRATA_TEST_PG_URL"]
    if (pgUrl !== undefined && pgUrl !== "") rows.push(...(await measure(pgEngine(pgUrl))))
    return rows
  }
}
