/**
 * Where the lazy write-back runs. On a SQLite file: a thread of its own with its own connection, so a
 * reader never waits for a write-back statement or the locks it waits on. Where that cannot be (an
 * in-memory database, a database not in WAL mode): the app's client, on the readers' thread, with the
 * same guarantees. PostgreSQL: a pooled connection of the app's client.
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Deferred, Effect, Fiber, Layer, Metric, TestClock } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { threadId } from "node:worker_threads"
import { describeEachEngine, tempDirectory, tempSqliteFile } from "../../../test/support/databases.js"
import { Database, LazyMigration } from "../src/index.js"
import {
  applyPlan,
  captureLogs,
  eventMillis,
  eventually,
  failureLogs,
  freshUrl,
  holdWriteLock,
  insertEvents,
  pendingEvents,
  readEvent,
  sqlText,
  tenThousandReads,
  testOptions,
  withLazy,
  wrongEvents
} from "./lazyFixtures.js"

const storedEvents = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    Effect.map(
      sql<{ readonly event_id: number; readonly happened_at_ms: unknown }>`SELECT event_id, happened_at_ms FROM events ORDER BY event_id`,
      (rows) => rows.map((row) => [Number(row.event_id), row.happened_at_ms === null ? null : Number(row.happened_at_ms)])
    )
)

/** Lets the background fiber run a few times (it has already been seen to take the rows it writes). */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 30)))

/** Reads events 1..3, lets the app set event 2 itself, writes back: the app's value stays. */
const conditionalWriteBack = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* insertEvents(3)
  const rows = yield* sql<{ readonly happened_at_ms: unknown }>`SELECT * FROM events ORDER BY event_id`.pipe(
    LazyMigration.withFixUp("events")
  )
  expect(rows.map((row) => row.happened_at_ms)).toEqual([1, 2, 3].map(eventMillis))
  yield* sql`UPDATE events SET happened_at_ms = 7 WHERE event_id = 2`
  yield* LazyMigration.flush
  expect(yield* storedEvents).toEqual([[1, eventMillis(1)], [2, 7], [3, eventMillis(3)]])
  expect(yield* LazyMigration.stats).toMatchObject({ queued: 3, writtenBack: 2, alreadySet: 1, failed: 0, pending: 0 })
})

// A thread's nice value: field 19 of its stat line (after the parenthesised command name).
const niceOf = (statFile: string): number => {
  const stat = Fs.readFileSync(statFile, "utf8")
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16])
}
const threadNices = (): ReadonlyArray<number> =>
  Fs.readdirSync("/proc/self/task").flatMap((tid) => {
    try {
      return [niceOf(`/proc/self/task/${tid}/stat`)]
    } catch {
      return [] // the thread ended meanwhile
    }
  })

describeEachEngine("LazyMigration write-back path", (engine) => {
  it.effect("on the app's own client: writes back exactly and conditionally, on SQLite from a thread of its own", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        const path = yield* LazyMigration.writeBackPath
        if (engine.name === "sqlite") {
          expect(path._tag).toBe("Worker")
          expect(path._tag === "Worker" && path.threadId !== threadId).toBe(true)
          if (process.platform === "linux") {
            // The write-back's thread yields a busy CPU to the app's: its nice value is 10 more, the app's threads' unchanged.
            const own = niceOf("/proc/thread-self/stat")
            expect(threadNices().filter((nice) => nice === Math.min(19, own + 10)).length).toBeGreaterThanOrEqual(1)
            expect(niceOf("/proc/thread-self/stat")).toBe(own)
          }
        } else {
          expect(path._tag).toBe("Client")
        }
        yield* conditionalWriteBack
      }).pipe(withLazy())
    }).pipe(Effect.provide(Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.appLayer()))))

  // Live clock: on the app's client a statement is timed by the Clock (on SQLite's own thread, by that thread).
  it.scopedLive("sizes its statements by how long they run: slow updates (a trigger's work per row) go in many small statements", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = 1000
      yield* insertEvents(rows)
      const slowUpdates = engine.name === "sqlite"
        ? [
          // About a millisecond a row here (a scan of 20,000 rows: a trigger cannot use WITH).
          `CREATE TABLE ballast (x INTEGER)`,
          `INSERT INTO ballast WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x FROM c`,
          `CREATE TRIGGER events_slow AFTER UPDATE ON events BEGIN SELECT count(*) FROM ballast WHERE x % 7 = 3; END`
        ]
        : [
          `CREATE FUNCTION events_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$`,
          `CREATE TRIGGER events_slow BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION events_slow()`
        ]
      const timed = Metric.tagged(LazyMigration.metrics.statementMs, "table", "events")
      // Reads every event through a layer of its own (sizes start afresh), writes them all back, and says in how many statements.
      const writeBackAll = Effect.gen(function*() {
        const before = (yield* Metric.value(timed)).count
        const read = yield* sql`SELECT * FROM events ORDER BY event_id`.pipe(LazyMigration.withFixUp("events"))
        expect(read.length).toBe(rows)
        yield* LazyMigration.flush
        const stats = yield* LazyMigration.stats
        expect(stats).toMatchObject({ queued: rows, writtenBack: rows, failed: 0, pending: 0 })
        expect((yield* storedEvents).filter(([id, ms]) => ms !== eventMillis(id!))).toEqual([])
        // Each statement that succeeded was timed.
        expect((yield* Metric.value(timed)).count - before).toBe(stats.statements)
        if (engine.name === "sqlite") expect((yield* LazyMigration.writeBackPath)._tag).toBe("Worker")
        return stats.statements
      }).pipe(withLazy({ maxBatchRows: rows }))

      const quick = yield* writeBackAll
      yield* sql`UPDATE events SET happened_at_ms = NULL`
      for (const statement of slowUpdates) yield* sql.unsafe(statement)
      const slow = yield* writeBackAll
      // At the default 50 ms. Quick: 500 rows, then the other 500 (on SQLite's thread a few ms each). Slow (about
      // 1 ms a row): the first 500 rows take about half a second, then some 16 rows a statement. One statement of
      // 1,000 rows either way without the sizing.
      expect(quick).toBeLessThanOrEqual(4)
      expect(slow).toBeGreaterThan(4 * quick)
    }).pipe(Effect.provide(Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.appLayer()))), 120_000)

  it.scoped("a write lock another connection holds does not hold up reads; the write-back lands once it is released", () =>
    Effect.gen(function*() {
      const url = yield* freshUrl(engine)
      const holder = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const main = yield* Layer.build(Layer.provideMerge(Layer.effectDiscard(applyPlan), Database.layer({ url }).pipe(Layer.orDie)))
      yield* Effect.gen(function*() {
        yield* insertEvents(1000)
        // The table's key is found first (a catalogue read on the app's connection); event 1000 stays written.
        yield* readEvent(1000).pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        const { holding, release } = yield* holdWriteLock(engine, holder)
        for (let id = 1; id <= 100; id++) yield* readEvent(id).pipe(LazyMigration.withFixUp("events"))
        const flushing = yield* Effect.fork(LazyMigration.flush)
        // The write-back has taken the 100 rows and waits for the lock (up to writeTimeout).
        yield* eventually(LazyMigration.stats, (s) => s.pending === 0)
        // Meanwhile every read is served, fixed; on the readers' thread the wait would have stopped them all.
        for (let id = 101; id < 1000; id++) {
          const rows = yield* readEvent(id).pipe(LazyMigration.withFixUp("events"))
          expect(rows[0]?.happened_at_ms).toBe(eventMillis(id))
        }
        expect(yield* LazyMigration.stats).toMatchObject({ writtenBack: 1, failed: 0, pending: 899 })
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holding)
        yield* Fiber.join(flushing)
        yield* LazyMigration.flush
        expect(yield* LazyMigration.stats).toMatchObject({ queued: 1000, writtenBack: 1000, failed: 0, alreadySet: 0, pending: 0 })
        expect(yield* pendingEvents).toBe(0)
        expect(yield* wrongEvents).toBe(0)
      }).pipe(withLazy({ writeTimeout: "20 seconds" }), Effect.provide(main))
    }))
})

describe("LazyMigration write-back on SQLite without a thread of its own", () => {
  const inMemory = Layer.provideMerge(Layer.effectDiscard(applyPlan), Database.layer({ url: ":memory:" }).pipe(Layer.orDie))

  it.effect(":memory: — on the readers' thread, exactly and conditionally, drained when the scope closes", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        const path = yield* LazyMigration.writeBackPath
        expect(path).toEqual({ _tag: "Client", reason: "the database is in memory (or temporary), so no other connection can open it" })
        yield* conditionalWriteBack
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO events (event_id, happened_at) VALUES (4, ${sqlText(eventMillis(4))})`
        yield* readEvent(4).pipe(LazyMigration.withFixUp("events"))
        expect(yield* LazyMigration.stats).toMatchObject({ queued: 4, pending: 1 })
      }).pipe(withLazy())
      // Closing the service's scope wrote the last row.
      expect(yield* storedEvents).toEqual([[1, eventMillis(1)], [2, 7], [3, eventMillis(3)], [4, eventMillis(4)]])
    }).pipe(Effect.provide(inMemory)))

  it.effect(":memory: — the write-back waits for a reader's transaction on the one connection, never joins it", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(2)
      yield* Effect.gen(function*() {
        // The key is found before the transaction (a catalogue read on the same connection).
        yield* readEvent(2).pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
        const rolledBack = yield* sql.withTransaction(Effect.gen(function*() {
          yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
          yield* TestClock.adjust("1 hour")
          // Taken by the background round, which then waits for the connection the transaction holds.
          yield* eventually(LazyMigration.stats, (s) => s.pending === 0)
          yield* settle
          expect((yield* LazyMigration.stats).writtenBack).toBe(1)
          return yield* Effect.fail("roll back" as const)
        })).pipe(Effect.flip)
        expect(rolledBack).toBe("roll back")
        // Written after the rollback, not rolled back with it.
        yield* eventually(LazyMigration.stats, (s) => s.writtenBack === 2)
        expect(yield* pendingEvents).toBe(0)
      }).pipe(withLazy())
    }).pipe(Effect.provide(inMemory)))

  it.effect(":memory: — a failing write-back (target column renamed) is counted and no read fails", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* insertEvents(1000)
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        expect((yield* LazyMigration.writeBackPath)._tag).toBe("Client")
        yield* sql`ALTER TABLE events RENAME COLUMN happened_at_ms TO happened_at_ms_away`
        expect(yield* tenThousandReads).toEqual({ failedReads: 0, wrongValues: 0 })
        expect(yield* LazyMigration.stats).toMatchObject({ fixed: 10_000, failed: 10_000, writtenBack: 0 })
        expect(failureLogs(logs.lines).length).toBe(20)
      }).pipe(withLazy({ maxBatchRows: 500 }), Effect.provide(logs.layer))
    }).pipe(Effect.provide(inMemory)))

  it.scoped("a database not in WAL mode — on the readers' thread, said once in a warning, written back alike", () =>
    Effect.gen(function*() {
      const filename = yield* tempSqliteFile()
      const app = yield* Layer.build(
        Layer.provideMerge(Layer.effectDiscard(applyPlan), SqliteClient.layer({ filename, disableWAL: true }).pipe(Layer.orDie))
      )
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const path = yield* LazyMigration.writeBackPath
        expect(path).toEqual({
          _tag: "Client",
          reason: "the write-back's own connection cannot use the database: the database is in journal_mode delete, not WAL"
        })
        yield* conditionalWriteBack
        yield* readEvent(1).pipe(LazyMigration.withFixUp("events"))
        yield* LazyMigration.flush
      }).pipe(withLazy(), Effect.provide(logs.layer), Effect.provide(app))
      const warnings = logs.lines.filter((line) => line.message.startsWith("lazy write-back runs on the readers' thread"))
      expect(warnings.map((line) => [line.level, line.annotations["reason"]])).toEqual([["WARN", expect.stringContaining("journal_mode delete")]])
    }))

  // The plan names the table in an attached database; each case attaches its own file to a fresh client.
  const attachedPlan = Plan.make("lazy_attached", [Plan.migration(1, "shadow", [Plan.epochShadow("app.events", "happened_at")])])

  it.scoped("a table in an attached database: written back from the thread when that file is in WAL mode, on the readers' thread when not", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      for (const wal of [true, false]) {
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql.unsafe(`ATTACH DATABASE '${Path.join(directory, `app-${wal}.db`)}' AS app`)
          if (wal) yield* sql.unsafe("PRAGMA app.journal_mode = WAL")
          // A table of the same name in main: the write-back must reach app's.
          yield* sql.unsafe("CREATE TABLE events (event_id INTEGER PRIMARY KEY, happened_at TEXT, happened_at_ms INTEGER)")
          yield* sql.unsafe("CREATE TABLE app.events (event_id INTEGER PRIMARY KEY, happened_at TEXT, happened_at_ms INTEGER)")
          yield* sql.unsafe(`INSERT INTO app.events (event_id, happened_at) VALUES (1, '${sqlText(eventMillis(1))}'), (2, '${sqlText(eventMillis(2))}')`)
          yield* Effect.gen(function*() {
            const path = yield* LazyMigration.writeBackPath
            expect(path).toEqual(
              wal
                ? { _tag: "Worker", threadId: expect.any(Number) }
                : { _tag: "Client", reason: "the write-back's own connection cannot use the database: attached database app is in journal_mode delete, not WAL" }
            )
            const rows = yield* sql<{ readonly happened_at_ms: unknown }>`SELECT * FROM app.events ORDER BY event_id`.pipe(
              LazyMigration.withFixUp("app.events")
            )
            expect(rows.map((row) => row.happened_at_ms)).toEqual([eventMillis(1), eventMillis(2)])
            yield* LazyMigration.flush
            expect(yield* LazyMigration.stats).toMatchObject({ queued: 2, writtenBack: 2, failed: 0 })
          }).pipe(Effect.provide(LazyMigration.layer(attachedPlan, testOptions).pipe(Layer.orDie)))
          expect(yield* sql`SELECT event_id, happened_at_ms FROM app.events ORDER BY event_id`).toEqual([
            { event_id: 1, happened_at_ms: eventMillis(1) },
            { event_id: 2, happened_at_ms: eventMillis(2) }
          ])
        }).pipe(Effect.scoped, Effect.provide(Database.layer({ url: Path.join(directory, `main-${wal}.db`) }).pipe(Layer.orDie)))
      }
    }))
})
