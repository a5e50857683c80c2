import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Compile, Plan } from "@strata/core"
import type { Scope } from "effect"
import type { Context } from "effect"
import { Array as Arr, Cause, Deferred, Effect, Exit, Fiber, Layer, Logger, Metric, Option, Scope as ScopeOps, TestClock } from "effect"
import type { Engine } from "../../../test/support/databases.js"
import { describeEachEngine, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { Database, LazyMigration } from "../src/index.js"

const plan = Plan.make("lazy_test", [
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

const applyPlan = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const migration of plan.migrations) {
    for (const statement of Compile.statements(migration, dialect)) yield* sql.unsafe(statement.sql)
  }
}).pipe(Effect.orDie)

/** A fresh database of the engine with the plan applied. */
const database = (engine: Engine, options: Omit<Database.LayerOptions, "url"> = {}) =>
  Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.layer(options))

/** A URL of a fresh, empty database of the engine (for tests that open several clients on it). */
const freshUrl = (engine: Engine): Effect.Effect<string, never, Scope.Scope> =>
  engine.name === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), ({ url }) => url)

// A flush interval no test clock reaches unless a test moves it there: writes happen on `flush` or scope close.
const testOptions: LazyMigration.Options = { enabled: true, writeBack: true, flushInterval: "1 hour" }

const withLazy = (options: LazyMigration.Options = {}) => <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.provide(body, LazyMigration.layer(plan, { ...testOptions, ...options }).pipe(Layer.orDie))

/** Lets background fibers and database I/O run until `done` holds (or fails the test after ~5 s). */
const eventually = <A, E, R>(check: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 5000; attempt++) {
      const value = yield* check
      if (done(value)) return value
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    }
    return yield* Effect.dieMessage("condition not reached")
  })

/** Lets the background fiber run a few times without waiting for anything in particular. */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))

const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly message: string; readonly annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    const record: Record<string, unknown> = {}
    for (const [key, value] of annotations) record[key] = value
    lines.push({ level: logLevel.label, message: text, annotations: record })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

interface Message {
  readonly message_id: string
  readonly created_at: unknown
  readonly updated_at: unknown
  readonly created_at_ms: unknown
  readonly updated_at_ms: unknown
}

const readMessages = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<Message>`SELECT message_id, created_at, updated_at, created_at_ms, updated_at_ms FROM messages ORDER BY message_id`
)

const storedMessages = Effect.map(
  readMessages,
  (rows) => rows.map((r) => ({ id: r.message_id, created_at_ms: r.created_at_ms, updated_at_ms: r.updated_at_ms }))
)

// Expected values computed independently of Timestamp.parse.
const noonJan15 = Date.UTC(2024, 0, 15, 12, 0, 0)
const tenHalfJan15 = Date.UTC(2024, 0, 15, 10, 0, 0, 500)
const eventMillis = (id: number) => Date.UTC(2024, 2, 1, 0, 0, 0) + id * 61_000
const sqlText = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ")

const insertEvents = (count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = Arr.makeBy(count, (i) => ({ event_id: i + 1, happened_at: sqlText(eventMillis(i + 1)) }))
    for (const chunk of Arr.chunksOf(rows, 500)) yield* sql`INSERT INTO events ${sql.insert(chunk)}`
  }).pipe(Effect.orDie)

const readEvent = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ readonly event_id: number; readonly happened_at_ms: unknown }>`SELECT * FROM events WHERE event_id = ${id}`)

const pendingEvents = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql<{ readonly n: number }>`SELECT count(*) AS n FROM events WHERE happened_at_ms IS NULL`, (rows) => Number(rows[0]!.n))
)

const wrongEvents = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ readonly event_id: number; readonly happened_at_ms: number | null }>`SELECT event_id, happened_at_ms FROM events`,
      (rows) => rows.filter((row) => row.happened_at_ms !== eventMillis(Number(row.event_id))).length
    )
)

const counterValue = (counter: Metric.Metric.Counter<number>, table: string) =>
  Effect.map(Metric.value(Metric.tagged(counter, "table", table)), (state) => state.count)

/** 10 rounds of 1,000 point reads of unmigrated events, each round flushed: counts wrong values and failed reads. */
const tenThousandReads = Effect.gen(function*() {
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
const holdWriteLock = (engine: Engine, holder: Context.Context<SqlClient.SqlClient>) =>
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

const failureLogs = (lines: ReturnType<typeof captureLogs>["lines"]) =>
  lines.filter((line) => line.message.startsWith("lazy write-back failed"))

describeEachEngine("LazyMigration", (engine) => {
  const inDatabase = <A, E>(body: Effect.Effect<A, E, SqlClient.SqlClient | Scope.Scope>) =>
    body.pipe(Effect.scoped, Effect.provide(database(engine)))

  it.effect("returns an unmigrated row fixed at once, writes it back later, and a second read writes nothing", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO messages ${
        sql.insert([
          { message_id: "m1", created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15T12:00:00.5+02:00" },
          { message_id: "m2", created_at: "2024-01-15 12:00:00", updated_at: null },
          { message_id: "m3", created_at: "2024-02-30 10:00:00", updated_at: "2024-01-15 12:00:00" }
        ])
      }`
      // Zero is a value: an epoch-0 target is not missing and is never recomputed.
      yield* sql`UPDATE messages SET created_at_ms = 0 WHERE message_id = 'm2'`
      const fixedBefore = yield* counterValue(LazyMigration.metrics.fixed, "messages")
      const writtenBefore = yield* counterValue(LazyMigration.metrics.writtenBack, "messages")

      yield* Effect.gen(function*() {
        const rows = yield* readMessages.pipe(LazyMigration.withFixUp("messages"))
        expect(rows.map((r) => [r.message_id, r.created_at_ms, r.updated_at_ms])).toEqual([
          ["m1", noonJan15, tenHalfJan15],
          ["m2", 0, null],
          ["m3", null, noonJan15]
        ])
        // The caller's read wrote nothing: the database still has the NULLs.
        expect(yield* storedMessages).toEqual([
          { id: "m1", created_at_ms: null, updated_at_ms: null },
          { id: "m2", created_at_ms: 0, updated_at_ms: null },
          { id: "m3", created_at_ms: null, updated_at_ms: null }
        ])
        expect(yield* LazyMigration.stats).toEqual({
          fixed: 2,
          unparseable: 1,
          queued: 2,
          dropped: 0,
          writtenBack: 0,
          alreadySet: 0,
          failed: 0,
          unkeyed: 0,
          coalesced: 0,
          pending: 2
        })

        yield* LazyMigration.flush
        expect(yield* storedMessages).toEqual([
          { id: "m1", created_at_ms: noonJan15, updated_at_ms: tenHalfJan15 },
          { id: "m2", created_at_ms: 0, updated_at_ms: null },
          { id: "m3", created_at_ms: null, updated_at_ms: noonJan15 }
        ])
        expect(yield* LazyMigration.stats).toMatchObject({ writtenBack: 2, queued: 2, pending: 0 })

        const again = yield* readMessages.pipe(LazyMigration.withFixUp("messages"))
        expect(again.map((r) => [r.message_id, r.created_at_ms, r.updated_at_ms])).toEqual([
          ["m1", noonJan15, tenHalfJan15],
          ["m2", 0, null],
          ["m3", null, noonJan15]
        ])
        yield* LazyMigration.flush
        // The second read found nothing missing: nothing queued, nothing written; only the garbage source counts again.
        expect(yield* LazyMigration.stats).toEqual({
          fixed: 2,
          unparseable: 2,
          queued: 2,
          dropped: 0,
          writtenBack: 2,
          alreadySet: 0,
          failed: 0,
          unkeyed: 0,
          coalesced: 0,
          pending: 0
        })
      }).pipe(withLazy())
      expect((yield* counterValue(LazyMigration.metrics.fixed, "messages")) - fixedBefore).toBe(2)
      expect((yield* counterValue(LazyMigration.metrics.writtenBack, "messages")) - writtenBefore).toBe(2)
    })))

  it.effect("fixes a single row, an Option of a row and passes nothing through; integer keys are discovered", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(3)
      yield* Effect.gen(function*() {
        const one = yield* readEvent(1).pipe(Effect.map((rows) => rows[0]!), LazyMigration.withFixUp("events"))
        expect(one.happened_at_ms).toBe(eventMillis(1))
        const some = yield* readEvent(2).pipe(Effect.map(Arr.head), LazyMigration.withFixUp("events"))
        expect(Option.map(some, (row) => row.happened_at_ms)).toEqual(Option.some(eventMillis(2)))
        const none = yield* readEvent(99).pipe(Effect.map(Arr.head), LazyMigration.withFixUp("events"))
        expect(Option.isNone(none)).toBe(true)
        const nothing = yield* Effect.succeed(undefined).pipe(LazyMigration.withFixUp("events"))
        expect(nothing).toBeUndefined()
        const direct = yield* LazyMigration.fixRows("events", [{ event_id: 3, happened_at: sqlText(eventMillis(3)), happened_at_ms: null }])
        expect(direct).toEqual([{ event_id: 3, happened_at: sqlText(eventMillis(3)), happened_at_ms: eventMillis(3) }])
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 3, queued: 3, writtenBack: 3 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy())
    })))

  it.effect("never overwrites a target a concurrent writer set between the read and the write-back", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO messages ${
        sql.insert([
          { message_id: "a", created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15 12:00:00" },
          { message_id: "b", created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15 12:00:00" }
        ])
      }`
      yield* sql`UPDATE messages SET updated_at_ms = 7 WHERE message_id = 'a'`
      yield* Effect.gen(function*() {
        const rows = yield* readMessages.pipe(LazyMigration.withFixUp("messages"))
        expect(rows.map((r) => [r.created_at_ms, r.updated_at_ms])).toEqual([[noonJan15, 7], [noonJan15, noonJan15]])
        // Writers get there first: all of a's missing target, one of b's two.
        yield* sql`UPDATE messages SET created_at_ms = 42 WHERE message_id = 'a'`
        yield* sql`UPDATE messages SET created_at_ms = 43 WHERE message_id = 'b'`
        yield* LazyMigration.flush
        expect(yield* storedMessages).toEqual([
          { id: "a", created_at_ms: 42, updated_at_ms: 7 },
          { id: "b", created_at_ms: 43, updated_at_ms: noonJan15 }
        ])
        expect(yield* LazyMigration.stats).toMatchObject({ queued: 2, writtenBack: 1, alreadySet: 1, failed: 0 })
      }).pipe(withLazy())
    })))

  it.effect("deduplicates a row queued several times and batches many rows into few statements", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(1200)
      yield* Effect.gen(function*() {
        for (let i = 0; i < 3; i++) yield* readEvent(5).pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 3, queued: 3, coalesced: 2, writtenBack: 1 })

        const sql = yield* SqlClient.SqlClient
        const all = yield* sql`SELECT * FROM events ORDER BY event_id`.pipe(LazyMigration.withFixUp("events"))
        expect(all.length).toBe(1200)
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 1202, queued: 1202, coalesced: 2, writtenBack: 1200, alreadySet: 0 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy({ maxBatchRows: 500 }))
    })))

  it.effect("writes back outside the caller's transaction: a rolled-back reader still leaves the row migrated", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(1)
      yield* Effect.gen(function*() {
        const rolledBack = yield* sql.withTransaction(Effect.gen(function*() {
          const rows = yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(1))
          yield* TestClock.adjust("1 hour")
          if (engine.name === "pg") {
            // Its own pooled connection, its own transaction: committed while the reader's is still open.
            yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 1)
            expect(yield* pendingEvents).toBe(0)
          } else {
            // One connection, held by the reader's transaction: the write-back waits for it, it does not join it.
            yield* settle
            expect((yield* LazyMigration.stats).writtenBack).toBe(0)
          }
          // flush inside a transaction is a programming error (on SQLite it would wait on itself).
          const inside = yield* Effect.exit(LazyMigration.flush)
          expect(Exit.isFailure(inside) && Cause.isDie(inside.cause)).toBe(true)
          return yield* Effect.fail("roll back" as const)
        })).pipe(Effect.flip)
        expect(rolledBack).toBe("roll back")
        yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 1)
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy())
    })))

  it.effect("writes back on its own schedule, driven by the clock", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(2)
      yield* Effect.gen(function*() {
        yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
        yield* TestClock.adjust("9 seconds")
        yield* settle
        expect(yield* LazyMigration.stats).toMatchObject({ queued: 1, writtenBack: 0, pending: 1 })
        yield* TestClock.adjust("1 second")
        yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 1)
        yield* readEvent(2).pipe(LazyMigration.withFixUp("events"))
        yield* TestClock.adjust("10 seconds")
        yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 2)
        expect(yield* pendingEvents).toBe(0)
      }).pipe(withLazy({ flushInterval: "10 seconds" }))
    })))

  it.effect("drains what is queued when its scope closes", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(700)
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`SELECT * FROM events`.pipe(LazyMigration.withFixUp("events"))
        expect(yield* LazyMigration.stats).toMatchObject({ queued: 700, writtenBack: 0, pending: 700 })
      }).pipe(withLazy({ maxBatchRows: 1000 }), Effect.provide(logs.layer))
      expect(yield* pendingEvents).toBe(0)
      expect(yield* wrongEvents).toBe(0)
      expect(logs.lines.filter((l) => l.message === "lazy write-back drained").map((l) => l.annotations["drained"])).toEqual([700])
    })))

  it.effect("drops rows when the queue is full, with a counted warning; they are fixed by a later read", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(5)
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ readonly happened_at_ms: unknown }>`SELECT * FROM events ORDER BY event_id`.pipe(
          LazyMigration.withFixUp("events")
        )
        expect(rows.map((r) => r.happened_at_ms)).toEqual([1, 2, 3, 4, 5].map(eventMillis))
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 5, queued: 2, dropped: 3 })
        yield* LazyMigration.flush
        expect(yield* pendingEvents).toBe(3)
        expect(logs.lines.filter((l) => l.level === "WARN" && l.message.startsWith("lazy write-back queue full")).map((l) => l.annotations["dropped"])).toEqual([3])
        yield* sql`SELECT * FROM events ORDER BY event_id`.pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        yield* sql`SELECT * FROM events ORDER BY event_id`.pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        expect(yield* pendingEvents).toBe(0)
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 9, queued: 5, dropped: 4, writtenBack: 5 })
      }).pipe(withLazy({ queueCapacity: 2 }), Effect.provide(logs.layer))
    })))

  it.effect("refuses a queueCapacity or maxBatchRows that is not a positive integer with InvalidLazyMigrationOptions", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(5)
      const cases: ReadonlyArray<readonly [LazyMigration.Options, string, string]> = [
        [{ queueCapacity: Number.NaN }, "queueCapacity", "NaN"],
        [{ queueCapacity: -1 }, "queueCapacity", "-1"],
        [{ queueCapacity: 2.5 }, "queueCapacity", "2.5"],
        [{ maxBatchRows: Number.NaN }, "maxBatchRows", "NaN"],
        [{ maxBatchRows: -500 }, "maxBatchRows", "-500"],
        [{ maxBatchRows: 0.5 }, "maxBatchRows", "0.5"],
        [{ maxBatchRows: 0 }, "maxBatchRows", "0"]
      ]
      for (const [options, option, shown] of cases) {
        const error = yield* Effect.flip(Layer.build(LazyMigration.layer(plan, { ...testOptions, ...options })))
        expect(error).toEqual(new LazyMigration.InvalidLazyMigrationOptions({ option, reason: `must be a positive integer, got ${shown}` }))
        expect(error.message).toBe(`Invalid lazy migration option ${option}: must be a positive integer, got ${shown}`)
      }
      // No service was built, so nothing was read or written back.
      expect(yield* pendingEvents).toBe(5)
    })))

  it.effect("enabled: false returns rows exactly as read; writeBack: false fills them without writing", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(1)
      yield* Effect.gen(function*() {
        const rows = yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
        expect(rows[0]?.happened_at_ms).toBeNull()
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 0, queued: 0, writtenBack: 0 })
      }).pipe(withLazy({ enabled: false }))
      yield* Effect.gen(function*() {
        const rows = yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
        expect(rows[0]?.happened_at_ms).toBe(eventMillis(1))
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 1, queued: 0, writtenBack: 0 })
      }).pipe(withLazy({ writeBack: false }))
      expect(yield* pendingEvents).toBe(1)
    })))

  it.effect("fixes rows without a key in memory only, and counts them", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(1)
      yield* sql`INSERT INTO notes ${sql.insert([{ author: "ann", seq: 1, noted_at: "2024-01-15 12:00:00" }])}`
      yield* Effect.gen(function*() {
        // The key column was not selected.
        const partial = yield* sql<{ readonly happened_at_ms: unknown }>`SELECT happened_at, happened_at_ms FROM events`.pipe(
          LazyMigration.withFixUp("events")
        )
        expect(partial[0]?.happened_at_ms).toBe(eventMillis(1))
        // A composite primary key: no single key column to address the row by.
        const notes = yield* sql<{ readonly noted_at_ms: unknown }>`SELECT * FROM notes`.pipe(LazyMigration.withFixUp("notes"))
        expect(notes[0]?.noted_at_ms).toBe(noonJan15)
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 2, queued: 2, unkeyed: 2, writtenBack: 0 })
        if (engine.name === "sqlite") {
          // SQLite can address it by rowid when the caller selected it.
          yield* sql`SELECT rowid, * FROM notes`.pipe(LazyMigration.withFixUp("notes"))
          yield* LazyMigration.flush
          expect(yield* LazyMigration.stats).toMatchObject({ writtenBack: 1 })
          expect(yield* sql`SELECT noted_at_ms FROM notes`).toEqual([{ noted_at_ms: noonJan15 }])
        }
        expect(yield* pendingEvents).toBe(1)
      }).pipe(withLazy())
    })))

  it.effect("fault: a write-back SQL error (target column renamed) for 10,000 reads — no read fails, every failure counted", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(1000)
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        yield* sql`ALTER TABLE events RENAME COLUMN happened_at_ms TO happened_at_ms_away`
        expect(yield* tenThousandReads).toEqual({ failedReads: 0, wrongValues: 0 })
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 10_000, queued: 10_000, failed: 10_000, writtenBack: 0 })
        // Batched: two statements of 500 rows per round, each failure logged with table and keys.
        const failures = failureLogs(logs.lines)
        expect(failures.length).toBe(20)
        expect(failures[0]?.annotations).toMatchObject({ table: "events", rows: 500 })
        expect(String(failures[0]?.annotations["keys"])).toMatch(/^1, 2, 3, .* \(and 480 more\)$/)

        yield* sql`ALTER TABLE events RENAME COLUMN happened_at_ms_away TO happened_at_ms`
        for (let id = 1; id <= 1000; id++) {
          const rows = yield* readEvent(id).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(id))
        }
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ failed: 10_000, writtenBack: 1000 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy({ maxBatchRows: 500 }), Effect.provide(logs.layer))
    })))

  it.scoped("fault: a locked database for 10,000 reads — no read fails, every failure counted", () =>
    Effect.gen(function*() {
      const url = yield* freshUrl(engine)
      const holder = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      // The connection keeps its default 5 s busy_timeout: the write-back must use its own short one
      // (20 failed statements at 5 s each would take 100 s, blocking the process).
      const main = yield* Layer.build(Layer.provideMerge(Layer.effectDiscard(applyPlan), Database.layer({ url }).pipe(Layer.orDie)))
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        yield* insertEvents(1000)
        const { holding, release } = yield* holdWriteLock(engine, holder)
        expect(yield* tenThousandReads).toEqual({ failedReads: 0, wrongValues: 0 })
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 10_000, failed: 10_000, writtenBack: 0 })
        expect(failureLogs(logs.lines).length).toBe(20)
        expect(yield* pendingEvents).toBe(1000)
        if (engine.name === "sqlite") {
          // The write-back's short busy timeout was its own: the connection's is back to the default.
          const sql = yield* SqlClient.SqlClient
          expect(yield* sql.unsafe("PRAGMA busy_timeout")).toEqual([{ timeout: 5000 }])
        }

        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holding)
        for (let id = 1; id <= 1000; id++) {
          const rows = yield* readEvent(id).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(id))
        }
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ failed: 10_000, writtenBack: 1000 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(
        withLazy({ maxBatchRows: 500, writeTimeout: "20 millis" }),
        Effect.provide(logs.layer),
        Effect.provide(main)
      )
    }))

  it.scoped("fault: the write-back's connection is closed for 10,000 reads — no read fails, every failure counted", () =>
    Effect.gen(function*() {
      const url = yield* freshUrl(engine)
      const main = yield* Layer.build(Layer.provideMerge(Layer.effectDiscard(applyPlan), Database.layer({ url }).pipe(Layer.orDie)))
      yield* insertEvents(1000).pipe(Effect.provide(main))
      const doomedScope = yield* ScopeOps.make()
      const doomed = yield* Layer.buildWithScope(Database.layer({ url }).pipe(Layer.orDie), doomedScope)
      const logs = captureLogs()
      const lazy = yield* Layer.build(LazyMigration.layer(plan, { ...testOptions, maxBatchRows: 500 }).pipe(Layer.orDie)).pipe(
        Effect.provide(doomed),
        Effect.provide(logs.layer)
      )
      yield* ScopeOps.close(doomedScope, Exit.void)

      yield* Effect.gen(function*() {
        expect(yield* tenThousandReads).toEqual({ failedReads: 0, wrongValues: 0 })
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 10_000, failed: 10_000, writtenBack: 0 })
        expect(failureLogs(logs.lines).length).toBe(20)
        expect(yield* pendingEvents).toBe(1000)
      }).pipe(Effect.provide(lazy), Effect.provide(main), Effect.provide(logs.layer))

      // A healthy write-back (a new layer over a live client) migrates them on the next reads.
      yield* Effect.gen(function*() {
        for (let id = 1; id <= 1000; id++) {
          const rows = yield* readEvent(id).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(id))
        }
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ failed: 0, writtenBack: 1000 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy(), Effect.provide(main))
    }))
  it.live("bounds the drain on scope close by drainTimeout: no batch starts after it, the rows left are logged", () =>
    Effect.gen(function*() {
      const url = yield* freshUrl(engine)
      const holder = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const main = yield* Layer.build(Layer.provideMerge(Layer.effectDiscard(applyPlan), Database.layer({ url }).pipe(Layer.orDie)))
      const logs = captureLogs()
      const lazy = yield* Effect.gen(function*() {
        yield* insertEvents(4000)
        const { holding, release } = yield* holdWriteLock(engine, holder)
        const lazy = yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql`SELECT * FROM events`.pipe(LazyMigration.withFixUp("events"))
          expect(rows.length).toBe(4000)
          expect((yield* LazyMigration.stats).queued).toBe(4000)
          return yield* LazyMigration.LazyMigration
        }).pipe(
          // Twenty batches that each wait writeTimeout for the lock: without the bound, closing would take them all.
          withLazy({ maxBatchRows: 200, writeTimeout: "50 millis", drainTimeout: "120 millis" }),
          Effect.provide(logs.layer)
        )
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holding)
        return lazy
      }).pipe(Effect.provide(main))
      const timedOut = logs.lines.filter((l) => l.message.startsWith("lazy write-back drain timed out"))
      expect(timedOut.length).toBe(1)
      const left = Number(timedOut[0]!.annotations["left"])
      const { failed, writtenBack } = yield* lazy.stats
      // Every row either failed (by the fiber before close, or by the drain) or was left; none vanished.
      expect(writtenBack).toBe(0)
      expect(failed + left).toBe(4000)
      expect(failed % 200).toBe(0)
      expect(failureLogs(logs.lines).length).toBe(failed / 200)
      expect(left).toBeGreaterThanOrEqual(2000)
      expect(logs.lines.some((l) => l.message === "lazy write-back drained")).toBe(false)
      expect(yield* pendingEvents.pipe(Effect.provide(main))).toBe(4000)
    }).pipe(Effect.scoped))
})
