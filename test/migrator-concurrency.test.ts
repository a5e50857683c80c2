/**
 * Concurrent runners apply each migration exactly once, and all of them succeed: 4 processes on
 * one SQLite file (children run the built packages: `npx tsc -b` first), 4 connections in one
 * process on one SQLite file, and 4 clients on one PostgreSQL schema. The plan's raw
 * `CREATE TABLE` and keyed `INSERT`s fail if anything runs twice, and its first migration fills
 * 200,000 rows so the runners overlap.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { Database, Migrator } from "@strata/sql"
import { Clock, Deferred, Effect, Layer, Logger, LogLevel, Ref } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { pgTestUrlWithSchema, tempDirectory } from "./support/databases.js"

const rows = 200_000

const racePlan = Plan.make("race", [
  Plan.migration(1, "fill numbers", [
    Plan.sql({
      sqlite: [
        "CREATE TABLE race_numbers (n INTEGER PRIMARY KEY, sq INTEGER NOT NULL)",
        `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${rows}) INSERT INTO race_numbers (n, sq) SELECT n, n * n FROM c`
      ],
      pg: [
        "CREATE TABLE race_numbers (n BIGINT PRIMARY KEY, sq BIGINT NOT NULL)",
        `INSERT INTO race_numbers (n, sq) SELECT n, n * n FROM generate_series(1::bigint, ${rows}::bigint) AS n`
      ]
    })
  ]),
  Plan.migration(2, "index squares", [Plan.createIndex("idx_race_numbers_sq", "race_numbers", ["sq"], { desc: true })]),
  Plan.migration(3, "fill more", [
    Plan.sql({
      sqlite: [
        "CREATE TABLE race_more (n INTEGER PRIMARY KEY)",
        `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${rows}) INSERT INTO race_more (n) SELECT n FROM c`
      ],
      pg: [
        "CREATE TABLE race_more (n BIGINT PRIMARY KEY)",
        `INSERT INTO race_more (n) SELECT n FROM generate_series(1::bigint, ${rows}::bigint) AS n`
      ]
    })
  ]),
  Plan.migration(4, "add a note", [Plan.addColumn("race_numbers", "note", "text")])
])

const planIds = racePlan.migrations.map((m) => m.id)

interface RunnerOutcome {
  readonly startedAtMs: number
  readonly result: Migrator.RunResult
}

/**
 * Every runner succeeded; together they applied each migration once; each saw the whole plan done.
 * `raced`: every runner started before the first (slow) migration committed. Not so for runners
 * sharing one thread on SQLite: better-sqlite3 blocks it for the whole statement, so they take turns.
 */
const expectEachAppliedOnce = (outcomes: ReadonlyArray<RunnerOutcome>, options: { readonly raced: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    expect(outcomes.length).toBe(4)
    const applied = outcomes.flatMap((o) => o.result.applied.map((m) => m.id))
    expect([...applied].sort((a, b) => a - b)).toEqual(planIds)
    for (const { result } of outcomes) {
      const seen = [...result.applied.map((m) => m.id), ...result.alreadyApplied, ...result.appliedConcurrently]
      expect(seen.sort((a, b) => a - b)).toEqual(planIds)
    }
    const history = yield* sql<{ id: number; applied_at_ms: number }>`
      SELECT id, applied_at_ms FROM strata_migrations WHERE plan = 'race' ORDER BY id`
    expect(history.map((row) => Number(row.id))).toEqual(planIds)
    const counts = yield* sql<{ numbers: number; more: number }>`
      SELECT (SELECT count(*) FROM race_numbers) AS numbers, (SELECT count(*) FROM race_more) AS more`
    expect([Number(counts[0]?.numbers), Number(counts[0]?.more)]).toEqual([rows, rows])
    if (options.raced) {
      const firstCommittedAt = Number(history[0]?.applied_at_ms)
      for (const outcome of outcomes) expect(outcome.startedAtMs).toBeLessThan(firstCommittedAt)
    }
  })

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "migrator-child.mjs")

/** The children import the built packages: refuse to test a stale build. */
const assertBuildIsFresh = () => {
  const sources = [
    "packages/sql/src/Migrator.ts",
    "packages/sql/src/Database.ts",
    "packages/sql/src/internal/lockedTransaction.ts",
    "packages/sql/src/internal/migrationHistory.ts",
    "packages/sql/src/internal/unprepared.ts",
    "packages/core/src/Plan.ts",
    "packages/core/src/Compile.ts"
  ]
  for (const source of sources) {
    const absolute = Path.join(here, "..", source)
    const built = absolute.replace("/src/", "/dist/").replace(/\.ts$/, ".js")
    const stale = !Fs.existsSync(built) || Fs.statSync(built).mtimeMs < Fs.statSync(absolute).mtimeMs
    if (stale) throw new Error(`${built} is missing or older than ${source}: run \`npx tsc -b\` before this test`)
  }
}

const waitFor = (condition: () => boolean, what: string, timeoutMs = 30_000) =>
  Effect.async<void, Error>((resume) => {
    const started = Date.now()
    const poll = setInterval(() => {
      if (condition()) {
        clearInterval(poll)
        resume(Effect.void)
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(poll)
        resume(Effect.fail(new Error(`timed out waiting for ${what}`)))
      }
    }, 5)
    return Effect.sync(() => clearInterval(poll))
  })

interface ChildExit {
  readonly code: number | null
  readonly stderr: string
}

const runChild = (args: ReadonlyArray<string>) =>
  Effect.async<ChildExit>((resume) => {
    const child = spawn(process.execPath, [childScript, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.on("data", (chunk) => {
      stderr += String(chunk)
    })
    child.on("close", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill())
  })

/** 4 runners in one process, each with its own client (connection pool), released together once all are ready. */
const runInProcess = (clientLayer: () => Layer.Layer<SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const ready = yield* Ref.make(0)
    const go = yield* Deferred.make<void>()
    return yield* Effect.all(
      Array.from({ length: 4 }, () =>
        Effect.gen(function*() {
          const migrator = yield* Migrator.make(racePlan)
          if ((yield* Ref.updateAndGet(ready, (n) => n + 1)) === 4) yield* Deferred.succeed(go, undefined)
          yield* Deferred.await(go)
          const startedAtMs = yield* Clock.currentTimeMillis
          const result = yield* migrator.run()
          return { startedAtMs, result }
        }).pipe(Effect.provide(clientLayer()), Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))),
      { concurrency: "unbounded" }
    )
  })

describe("Migrator concurrency", () => {
  it.live("4 processes on one SQLite file each apply disjoint migrations, together the whole plan, all exiting 0", () =>
    Effect.scoped(Effect.gen(function*() {
      assertBuildIsFresh()
      const directory = yield* tempDirectory
      const file = Path.join(directory, "race.db")
      const planFile = Path.join(directory, "race-plan.json")
      const goFile = Path.join(directory, "go")
      Fs.writeFileSync(planFile, JSON.stringify(Plan.toJson(racePlan)))
      // Create the file (in WAL mode) before the race, as a deployed database would be.
      yield* Effect.provide(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`), Database.layer({ url: file }))

      const children = [0, 1, 2, 3].map((index) => ({
        ready: Path.join(directory, `ready-${index}`),
        result: Path.join(directory, `result-${index}.json`)
      }))
      const exits = yield* Effect.fork(
        Effect.all(
          children.map((child) => runChild([file, planFile, child.ready, goFile, child.result])),
          { concurrency: "unbounded" }
        )
      )
      yield* waitFor(() => children.every((child) => Fs.existsSync(child.ready)), "4 children to open the database")
      Fs.writeFileSync(goFile, "")
      const exited = yield* exits.await.pipe(Effect.flatten)

      expect(exited.map((child) => [child.code, child.stderr])).toEqual(children.map(() => [0, ""]))
      const outcomes = children.map((child) => JSON.parse(Fs.readFileSync(child.result, "utf8")) as RunnerOutcome)
      yield* expectEachAppliedOnce(outcomes, { raced: true }).pipe(Effect.provide(Database.layer({ url: file })))
    })))

  it.live("4 connections in one process on one SQLite file: losers wait on the lock's retry schedule and move on", () =>
    Effect.scoped(Effect.gen(function*() {
      const directory = yield* tempDirectory
      const file = Path.join(directory, "race.db")
      const database = () => Database.layer({ url: file }).pipe(Layer.orDie)
      // strata_migrations exists already (another plan created it), so every runner reads the
      // history at once and then contends for the first migration's lock, not the table's.
      yield* Effect.provide(Effect.flatMap(Migrator.make(Plan.make("other", [])), (m) => m.run()), database())
      // Yielding every 16 operations interleaves the runners between statements (a statement
      // itself holds the thread), so they read the history before the others commit and then
      // contend for the lock.
      const outcomes = yield* runInProcess(database).pipe(Effect.withMaxOpsBeforeYield(16))
      expect(outcomes.flatMap((o) => o.result.appliedConcurrently).length).toBeGreaterThan(0)
      yield* expectEachAppliedOnce(outcomes, { raced: false }).pipe(Effect.provide(database()))
    })))

  it.live("4 PostgreSQL clients on one schema (advisory lock)", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      const database = () => Database.layer({ url, maxConnections: 2 }).pipe(Layer.orDie)
      const outcomes = yield* runInProcess(database)
      yield* expectEachAppliedOnce(outcomes, { raced: true }).pipe(Effect.provide(database()))
    })))
})
