/** The tables, data and helpers the LazyMigration tests share (both engines, real databases). */
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan } from "@strata/core"
import type { Context, Scope } from "effect"
import { Array as Arr, Deferred, Effect, Exit, Layer, Logger, Metric } from "effect"
import type { Engine } from "../../../test/support/databases.js"
import { pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { Database, LazyMigration } from "../src/index.js"

export const plan = Plan.make("lazy_test", [
  Plan.migration(1, "tables", [
    Plan.createTable("messages", [
      { name: "message_id", type: "text", primaryKey: true },
      { name: "body", type: "text" },
      { name: "created_at", type: "timestamp_text" },
      { name: "updated_at", type: "timestamp_text" }
    ]),
    Plan.createTable("events", [
      { name: "event_id", type: "integer", primaryKey: true },
      { name: "happened_at", type: "timestamp_text" }
    ]),
    Plan.createTable("notes", [
      { name: "author", type: "text", notNull: true },
      { name: "seq", type: "integer", notNull: true },
      { name: "noted_at", type: "timestamp_text" }
    ], { primaryKey: ["author", "seq"] }),
    Plan.createTable("lock_holder", [{ name: "id", type: "integer" }])
  ]),
  Plan.migration(2, "shadows", [
    Plan.epochShadow("messages", "created_at"),
    Plan.epochShadow("messages", "updated_at"),
    Plan.epochShadow("events", "happened_at", { index: true }),
    Plan.epochShadow("notes", "noted_at")
  ])
])

export const applyPlan = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const migration of plan.migrations) {
    for (const statement of Compile.statements(migration, dialect)) yield* sql.unsafe(statement.sql)
  }
}).pipe(Effect.orDie)

/** A fresh database of the engine with the plan applied. */
export const database = (engine: Engine, options: Omit<Database.LayerOptions, "url"> = {}) =>
  Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.layer(options))

/** A URL of a fresh, empty database of the engine (for tests that open several clients on it). */
export const freshUrl = (engine: Engine): Effect.Effect<string, never, Scope.Scope> =>
  engine.name === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), ({ url }) => url)

// A flush interval no test clock reaches unless a test moves it there: writes happen on `flush` or scope close.
export const testOptions: LazyMigration.Options = { enabled: true, writeBack: true, flushInterval: "1 hour" }

export const withLazy = (options: LazyMigration.Options = {}) => <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.provide(body, LazyMigration.layer(plan, { ...testOptions, ...options }).pipe(Layer.orDie))

/** Lets background fibers and database I/O run until `done` holds (or fails the test after ~5 s). */
export const eventually = <A, E, R>(check: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 5000; attempt++) {
      const value = yield* check
      if (done(value)) return value
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    return yield* Effect.dieMessage("condition not reached")
  })

export const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly message: string; readonly annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    const record: Record<string, unknown> = {}
    for (const [key, value] of annotations) record[key] = value
    lines.push({ level: logLevel.label, message: text, annotations: record })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

export interface Message {
  readonly message_id: string
  readonly created_at: unknown
  readonly updated_at: unknown
  readonly created_at_ms: unknown
  readonly updated_at_ms: unknown
}

export const readMessages = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<Message>`SELECT message_id, created_at, updated_at, created_at_ms, updated_at_ms FROM messages ORDER BY message_id`
)

export const storedMessages = Effect.map(
  readMessages,
  (rows) => rows.map((r) => ({ id: r.message_id, created_at_ms: r.created_at_ms, updated_at_ms: r.updated_at_ms }))
)

// Expected values computed independently of Timestamp.parse.
export const noonJan15 = Date.UTC(2024, 0, 15, 12, 0, 0)
export const tenHalfJan15 = Date.UTC(2024, 0, 15, 10, 0, 0, 500)
export const eventMillis = (id: number) => Date.UTC(2024, 2, 1, 0, 0, 0) + id * 61_000
export const sqlText = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ")

export const insertEvents = (count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = Arr.makeBy(count, (i) => ({ event_id: i + 1, happened_at: sqlText(eventMillis(i + 1)) }))
    for (const chunk of Arr.chunksOf(rows, 500)) yield* sql`INSERT INTO events ${sql.insert(chunk)}`
  }).pipe(Effect.orDie)

export const readEvent = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly event_id: number; readonly happened_at_ms: unknown }>`SELECT * FROM events WHERE event_id = ${id}`)

export const pendingEvents = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql<{ readonly n: number }>`SELECT count(*) AS n FROM events WHERE happened_at_ms IS NULL`, (rows) => Number(rows[0]!.n))
)

export const wrongEvents = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ readonly event_id: number; readonly happened_at_ms: number | null }>`SELECT event_id, happened_at_ms FROM events`,
      (rows) => rows.filter((row) => row.happened_at_ms !== eventMillis(Number(row.event_id))).length
    )
)

export const counterValue = (counter: Metric.Metric.Counter<number>, table: string) =>
  Effect.map(Metric.value(Metric.tagged(counter, "table", table)), (state) => state.count)

/** 10 rounds of 1,000 point reads of unmigrated events, each round flushed: counts wrong values and failed reads. */
export const tenThousandReads = Effect.gen(function*() {
  let failedReads = 0
  let wrongValues = 0
  for (let round = 0; round < 10; round++) {
    for (let id = 1; id <= 1000; id++) {
      const exit = yield* Effect.exit(readEvent(id).pipe(LazyMigration.withFixUp("events")))
      if (Exit.isFailure(exit)) failedReads++
      else if (exit.value[0]?.happened_at_ms !== eventMillis(id)) wrongValues++
    }
    yield* LazyMigration.flush
  }
  return { failedReads, wrongValues }
})

/**
 * Another connection takes the write lock the write-back needs and holds it until `release`: on SQLite
 * a write transaction (readers go on under WAL); on PostgreSQL `LOCK TABLE … IN EXCLUSIVE MODE`, which
 * blocks UPDATE but not SELECT.
 */
export const holdWriteLock = (engine: Engine, holder: Context.Context<SqlClient.SqlClient>) =>
  Effect.gen(function*() {
    const locked = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const holding = yield* Effect.fork(
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(
          (engine.name === "sqlite" ? sql`INSERT INTO lock_holder (id) VALUES (1)` : sql`LOCK TABLE events IN EXCLUSIVE MODE`).pipe(
            Effect.zipRight(Deferred.succeed(locked, undefined)),
            Effect.zipRight(Deferred.await(release))
          )
        )).pipe(Effect.provide(holder))
    )
    yield* Deferred.await(locked)
    return { holding, release }
  })

export const failureLogs = (lines: ReturnType<typeof captureLogs>["lines"]) =>
  lines.filter((line) => line.message.startsWith("lazy write-back failed"))
