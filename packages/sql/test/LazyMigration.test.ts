import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import type { Scope } from "effect"
import { Array as Arr, Cause, Chunk, Deferred, Effect, Exit, Fiber, Layer, Option, Scope as ScopeOps, TestClock } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { Database, LazyMigration } from "../src/index.js"
import {
  applyPlan,
  captureLogs,
  counterValue,
  database,
  eventMillis,
  eventually,
  failureLogs,
  freshUrl,
  holdWriteLock,
  insertEvents,
  noonJan15,
  pendingEvents,
  plan,
  readEvent,
  readMessages,
  sqlText,
  storedMessages,
  tenHalfJan15,
  tenThousandReads,
  testOptions,
  withLazy,
  wrongEvents
} from "./lazyFixtures.js"

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
          statements: 0,
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
          // The first flush's two rows, in one statement; the second read queued nothing.
          statements: 1,
          pending: 0
        })
      }).pipe(withLazy())
      expect((yield* counterValue(LazyMigration.metrics.fixed, "messages")) - fixedBefore).toBe(2)
      expect((yield* counterValue(LazyMigration.metrics.writtenBack, "messages")) - writtenBefore).toBe(2)
    })))

  it.effect("on the app's camelCase client: rows come back fixed in its naming, and are written back by key", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO messages ${
        sql.insert([
          { messageId: "m1", createdAt: "2024-01-15 12:00:00", updatedAt: "2024-01-15T12:00:00.5+02:00" },
          { messageId: "m2", createdAt: "2024-01-15 12:00:00", updatedAt: "2024-01-15 12:00:00" }
        ])
      }`
      yield* Effect.gen(function*() {
        const rows = yield* sql`SELECT message_id, created_at, updated_at, created_at_ms, updated_at_ms FROM messages ORDER BY message_id`.pipe(
          LazyMigration.withFixUp("messages")
        )
        expect(rows).toEqual([
          { messageId: "m1", createdAt: "2024-01-15 12:00:00", updatedAt: "2024-01-15T12:00:00.5+02:00", createdAtMs: noonJan15, updatedAtMs: tenHalfJan15 },
          { messageId: "m2", createdAt: "2024-01-15 12:00:00", updatedAt: "2024-01-15 12:00:00", createdAtMs: noonJan15, updatedAtMs: noonJan15 }
        ])
        // The app writes one target itself before the write-back: its value stays.
        yield* sql`UPDATE messages SET updated_at_ms = 7 WHERE message_id = 'm2'`
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 2, queued: 2, writtenBack: 2, unkeyed: 0, failed: 0, pending: 0 })
        const stored = yield* sql`SELECT message_id, created_at_ms, updated_at_ms FROM messages ORDER BY message_id`
        expect(stored.map((row) => [row["messageId"], Number(row["createdAtMs"]), Number(row["updatedAtMs"])])).toEqual([
          ["m1", noonJan15, tenHalfJan15],
          ["m2", noonJan15, 7]
        ])
        // Read again: nothing missing, nothing queued; the stored BIGINT comes back as a number under the app's name.
        const again = yield* sql`SELECT * FROM messages WHERE message_id = 'm2'`.pipe(LazyMigration.withFixUp("messages"))
        expect(again).toMatchObject([{ messageId: "m2", createdAtMs: noonJan15, updatedAtMs: 7 }])
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 2, queued: 2 })
      }).pipe(withLazy())
    }).pipe(Effect.provide(Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.appLayer({ camelCase: true })))))

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

  it.effect("writes back outside the caller's transaction, on a connection of its own: a rolled-back reader still leaves the row migrated", () =>
    inDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(2)
      yield* Effect.gen(function*() {
        // The table's key is discovered once, on the app's connection (which the reader's transaction below holds on SQLite).
        yield* readEvent(2).pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        expect((yield* LazyMigration.writeBackPath)._tag).toBe(engine.name === "sqlite" ? "Worker" : "Client")
        const rolledBack = yield* sql.withTransaction(Effect.gen(function*() {
          const rows = yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(1))
          yield* TestClock.adjust("1 hour")
          // Its own connection (PostgreSQL: a pooled one; SQLite: the write-back thread's), its own transaction:
          // committed while the reader's is still open.
          yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 2)
          // PostgreSQL's reader sees the commit; SQLite's keeps the snapshot its transaction began with.
          expect(yield* pendingEvents).toBe(engine.name === "pg" ? 0 : 1)
          // flush inside a transaction is a programming error (on SQLite's one connection it could wait on itself).
          const inside = yield* Effect.exit(LazyMigration.flush)
          expect(Exit.isFailure(inside) && Cause.isDie(inside.cause)).toBe(true)
          return yield* Effect.fail("roll back" as const)
        })).pipe(Effect.flip)
        expect(rolledBack).toBe("roll back")
        expect((yield* LazyMigration.stats).writtenBack).toBe(2)
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
        // The background fiber is asleep until its first round at 10 s, and has taken nothing.
        expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).toContain(10_000)
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
        expect((yield* LazyMigration.writeBackPath)._tag).toBe(engine.name === "sqlite" ? "Worker" : "Client")
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

  it.effect("refuses a flushInterval, drainTimeout, maxBatchTime or writeTimeout out of range with InvalidLazyMigrationOptions", () =>
    inDatabase(Effect.gen(function*() {
      yield* insertEvents(5)
      const forms = `(milliseconds as a number, "2 seconds", or a Duration)`
      const cases: ReadonlyArray<readonly [LazyMigration.Options, string, string]> = [
        [{ flushInterval: 0 }, "flushInterval", `must be a finite duration of more than zero ${forms}, got 0`],
        [{ flushInterval: -5 }, "flushInterval", `must be a finite duration of more than zero ${forms}, got -5`],
        [{ drainTimeout: "-1 seconds" }, "drainTimeout", `must be a finite duration of zero or more ${forms}, got "-1 seconds"`],
        [{ maxBatchTime: 0 }, "maxBatchTime", `must be a finite duration of more than zero ${forms}, got 0`],
        [{ maxBatchTime: "-3 millis" }, "maxBatchTime", `must be a finite duration of more than zero ${forms}, got "-3 millis"`],
        [{ writeTimeout: "0.5 millis" }, "writeTimeout", `must be a finite duration of at least 1ms ${forms}, got "0.5 millis"`],
        [{ writeTimeout: Number.POSITIVE_INFINITY }, "writeTimeout", `must be a finite duration of at least 1ms ${forms}, got Infinity`]
      ]
      for (const [options, option, reason] of cases) {
        const error = yield* Effect.flip(Layer.build(LazyMigration.layer(plan, { ...testOptions, ...options })))
        expect(error).toEqual(new LazyMigration.InvalidLazyMigrationOptions({ option, reason }))
      }
      // Zero is a drain timeout (closing writes nothing more) and the smallest write timeout is one millisecond.
      yield* Effect.scoped(Layer.build(LazyMigration.layer(plan, { ...testOptions, drainTimeout: 0, writeTimeout: "1 millis" })))
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
        // On SQLite the failing statements run on the write-back's own thread and connection.
        expect((yield* LazyMigration.writeBackPath)._tag).toBe(engine.name === "sqlite" ? "Worker" : "Client")
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
        expect((yield* LazyMigration.writeBackPath)._tag).toBe(engine.name === "sqlite" ? "Worker" : "Client")
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
