/**
 * The cost of a sync trigger (`sync: "trigger"` on an `epochShadow`) on the app's writes: what an
 * old app version pays per INSERT and per UPDATE of the source while the trigger keeps
 * `created_at_ms` in sync. The app writes through its own driver (better-sqlite3 prepared
 * statements; node-postgres with a prepared statement on one connection), one row per statement:
 *
 * - `N` single-row INSERTs (`created_at` in the fast path's shape, so the trigger computes every row);
 * - `N` single-row UPDATEs of `created_at` on those rows.
 *
 * Each case runs on a fresh table made by strata's migration (with and without the option), the
 * cases interleaved within each repetition; medians of `repetitions()` runs; ratio = with trigger /
 * without. Two modes: all `N` statements in one transaction (the trigger's own cost, undiluted) and
 * each statement its own transaction (what an app that commits per write feels: durability dominates).
 * `BENCH_ROWS` sets `N` (default 10,000). PostgreSQL when `STRATA_BENCH_PG_URL` (or
 * `STRATA_TEST_PG_URL`) is set, in a schema of its own (dropped at the end).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { Database, Migrator } from "@strata/sql"
import Sqlite from "better-sqlite3"
import { Effect, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import Pg from "pg"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions } from "./harness.js"

const ROWS = Number(process.env["BENCH_ROWS"] ?? "10000")

const plan = (sync: boolean) =>
  Plan.make("trigger-bench", [
    Plan.migration(1, "events", [
      Plan.createTable("events", [
        { name: "id", type: "integer", primaryKey: true },
        { name: "created_at", type: "timestamp_text" },
        { name: "title", type: "text" }
      ])
    ]),
    Plan.migration(2, "epoch ms", [Plan.epochShadow("events", "created_at", sync ? { sync: "trigger" } : {})])
  ])

const migrate = (url: string, sync: boolean): Promise<void> =>
  Effect.runPromise(
    Migrator.run().pipe(
      Effect.provide(Migrator.layer(plan(sync))),
      Effect.provide(Database.layer({ url })),
      Logger.withMinimumLogLevel(LogLevel.None),
      Effect.orDie
    )
  ).then(() => undefined)

/** `2024-01-15 12:00:00` plus `i` seconds, in the fast path's shape. */
const timestamp = (i: number): string => new Date(Date.UTC(2024, 0, 15, 12) + i * 1000).toISOString().slice(0, 19).replace("T", " ")

interface Timing {
  readonly insertMs: number
  readonly updateMs: number
}

type Mode = "one transaction" | "a transaction per statement"
const modes: ReadonlyArray<Mode> = ["one transaction", "a transaction per statement"]

const now = () => performance.now()

const sqliteCase = async (directory: string, sync: boolean, mode: Mode, copy: number): Promise<Timing> => {
  const file = Path.join(directory, `events-${copy}.db`)
  await migrate(file, sync)
  const db = new Sqlite(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = NORMAL")
  try {
    const insert = db.prepare("INSERT INTO events (id, created_at, title) VALUES (?, ?, ?)")
    const update = db.prepare("UPDATE events SET created_at = ? WHERE id = ?")
    const inserts = () => {
      for (let i = 1; i <= ROWS; i++) insert.run(i, timestamp(i), "title")
    }
    const updates = () => {
      for (let i = 1; i <= ROWS; i++) update.run(timestamp(i + 86_400), i)
    }
    const timed = (work: () => void) => {
      collectGarbage()
      const start = now()
      if (mode === "one transaction") db.transaction(work)()
      else work()
      return now() - start
    }
    const insertMs = timed(inserts)
    const updateMs = timed(updates)
    const check = db.prepare("SELECT count(*) AS n FROM events WHERE created_at_ms IS NOT NULL").get() as { n: number }
    if (check.n !== (sync ? ROWS : 0)) throw new Error(`${check.n} rows with created_at_ms, expected ${sync ? ROWS : 0}`)
    return { insertMs, updateMs }
  } finally {
    db.close()
    for (const suffix of ["", "-wal", "-shm"]) Fs.rmSync(`${file}${suffix}`, { force: true })
  }
}

const pgCase = async (url: string, sync: boolean, mode: Mode): Promise<Timing> => {
  const client = new Pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("DROP TABLE IF EXISTS events CASCADE")
    await client.query("DROP TABLE IF EXISTS strata_migrations")
    await migrate(url, sync)
    const timed = async (work: () => Promise<void>) => {
      collectGarbage()
      const start = now()
      if (mode === "one transaction") await client.query("BEGIN")
      await work()
      if (mode === "one transaction") await client.query("COMMIT")
      return now() - start
    }
    const insertMs = await timed(async () => {
      for (let i = 1; i <= ROWS; i++) {
        await client.query({ name: "insert", text: "INSERT INTO events (id, created_at, title) VALUES ($1, $2, $3)", values: [i, timestamp(i), "title"] })
      }
    })
    const updateMs = await timed(async () => {
      for (let i = 1; i <= ROWS; i++) {
        await client.query({ name: "update", text: "UPDATE events SET created_at = $1 WHERE id = $2", values: [timestamp(i + 86_400), i] })
      }
    })
    const check = await client.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE created_at_ms IS NOT NULL")
    if (Number(check.rows[0]!.n) !== (sync ? ROWS : 0)) throw new Error(`${check.rows[0]!.n} rows with created_at_ms, expected ${sync ? ROWS : 0}`)
    return { insertMs, updateMs }
  } finally {
    await client.end()
  }
}

const rowsOf = (label: string, mode: Mode, without: ReadonlyArray<Timing>, withTrigger: ReadonlyArray<Timing>): ReadonlyArray<BenchmarkRow> =>
  (["insertMs", "updateMs"] as const).flatMap((field) => {
    const what = field === "insertMs" ? "INSERT" : "UPDATE of created_at"
    const base = median(without.map((t) => t[field]))
    const trig = median(withTrigger.map((t) => t[field]))
    return [
      { case: `${label}, ${mode}: ${what}, no trigger (baseline)`, median: (base * 1000) / ROWS, unit: "µs/row", ratio: 1 },
      { case: `${label}, ${mode}: ${what}, sync trigger`, median: (trig * 1000) / ROWS, unit: "µs/row", ratio: trig / base }
    ]
  })

const measureSqlite = async (): Promise<ReadonlyArray<BenchmarkRow>> => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-trigger-"))
  let copy = 0
  try {
    const out: Array<BenchmarkRow> = []
    for (const mode of modes) {
      const without: Array<Timing> = []
      const withTrigger: Array<Timing> = []
      for (let r = 0; r < repetitions(); r++) {
        without.push(await sqliteCase(directory, false, mode, copy++))
        withTrigger.push(await sqliteCase(directory, true, mode, copy++))
      }
      out.push(...rowsOf("SQLite", mode, without, withTrigger))
    }
    return out
  } finally {
    Fs.rmSync(directory, { recursive: true, force: true })
  }
}

const measurePg = async (baseUrl: string): Promise<ReadonlyArray<BenchmarkRow>> => {
  const schema = `strata_bench_trigger_${process.pid}`
  const admin = (statement: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
        Effect.provide(Database.layer({ url: baseUrl })),
        Logger.withMinimumLogLevel(LogLevel.None),
        Effect.orDie
      )
    )
  const parsed = new URL(baseUrl)
  parsed.searchParams.set("options", `-c search_path=${schema}`)
  const url = parsed.toString()
  await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await admin(`CREATE SCHEMA ${schema}`)
  try {
    const out: Array<BenchmarkRow> = []
    for (const mode of modes) {
      const without: Array<Timing> = []
      const withTrigger: Array<Timing> = []
      for (let r = 0; r < repetitions(); r++) {
        without.push(await pgCase(url, false, mode))
        withTrigger.push(await pgCase(url, true, mode))
      }
      out.push(...rowsOf("PostgreSQL", mode, without, withTrigger))
    }
    return out
  } finally {
    await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  }
}

export const benchmark: BenchmarkModule = {
  name: "trigger",
  description:
    `Sync trigger cost on the app's writes: ${ROWS.toLocaleString("en-US")} single-row INSERTs, then as many single-row UPDATEs of ` +
    `the source, on a table with an epochShadow with sync: "trigger" vs without (baseline, same run, interleaved); ` +
    `all statements in one transaction, and one transaction per statement.`,
  run: async () => {
    const rows = [...(await measureSqlite())]
    const pgUrl = process.env["STRATA_BENCH_PG_URL"] ?? process.env["STRATA_TEST_PG_URL"]
    if (pgUrl !== undefined && pgUrl !== "") rows.push(...(await measurePg(pgUrl)))
    return rows
  }
}
