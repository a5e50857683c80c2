/**
 * PostgreSQL: a backfill batch that meets a row an app transaction holds locked gives up within
 * its `batchLockTimeout` instead of waiting behind the app while holding the rest of its range, so
 * the app's other writes near that row are never queued behind strata for long. The batch tries
 * again smaller, steps over the held row (recorded in the checkpoint), walks on, and comes back to
 * it; the job is not done before that row is converted, and its counts are exact.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Timestamp } from "@strata/core"
import { Deferred, Effect, Either, Fiber, Layer, Option, Schedule } from "effect"
import { describePg, pgTestUrlWithSchema } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator } from "../src/index.js"
import * as JobState from "../src/JobState.js"

const plan = Plan.make("events", [Plan.migration(1, "times", [Plan.epochShadow("events", "happened_at")])])
const job = "events.happened_at_ms"
const ROWS = 2000
/** The row the app holds, and the row the app then updates: in the first batch's range, before the held one. */
const HELD = 500
const NEARBY = 450

const timeOf = (id: number) => `2024-01-15 ${String(10 + Math.floor(id / 3600)).padStart(2, "0")}:${String(Math.floor(id / 60) % 60).padStart(2, "0")}:${String(id % 60).padStart(2, "0")}`

describePg("BackfillRunner batch lock timeout [pg]", () => {
  it.scopedLive("an app transaction holding a row never queues the app's nearby writes behind the batch; the row is converted once released", () =>
    Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      const strataLayer = BackfillRunner.layer(plan).pipe(Layer.provideMerge(Database.layer({ url })))
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT, note TEXT)`)
        for (let start = 1; start <= ROWS; start += 500) {
          const ids = Array.from({ length: 500 }, (_, i) => start + i)
          yield* sql.unsafe(`INSERT INTO events (id, happened_at) SELECT * FROM unnest($1::int[], $2::text[])`, [ids, ids.map(timeOf)])
        }
        yield* Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())

        // The app holds one row of the first batch's range, on a connection of its own, until told.
        const held = yield* Deferred.make<number>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.gen(function*() {
          const appSql = yield* SqlClient.SqlClient
          yield* appSql.withTransaction(Effect.gen(function*() {
            const [me] = yield* appSql.unsafe<{ pid: number }>(`SELECT pg_backend_pid() AS pid`)
            yield* appSql.unsafe(`SELECT id FROM events WHERE id = ${HELD} FOR UPDATE`)
            yield* Deferred.succeed(held, me!.pid)
            yield* Deferred.await(release)
          }))
        }).pipe(Effect.provide(Database.layer({ url, maxConnections: 1 })), Effect.orDie, Effect.fork)
        const holderPid = yield* Deferred.await(held)
        // Released whatever happens below, so a failing assertion does not leave the row held.
        yield* Effect.gen(function*() {
          const running = yield* Effect.fork(BackfillRunner.run({ batchSize: 1000, batchLockTimeout: "200 millis" }))
          // Until a batch waits for the held row (holding the rows of its range before it).
          yield* Effect.repeat(
            sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, [holderPid]),
            { until: (rows) => rows[0]!.n > 0, schedule: Schedule.spaced("5 millis") }
          )
          // The app updates a nearby row, waiting at most 2 s for it: the batch must have let go by then,
          // while the app's first transaction still holds its row.
          const nearby = yield* Effect.gen(function*() {
            const appSql = yield* SqlClient.SqlClient
            return yield* appSql.withTransaction(Effect.gen(function*() {
              yield* appSql.unsafe(`SET LOCAL lock_timeout = '2s'`)
              return yield* appSql.unsafe<{ id: number }>(`UPDATE events SET note = 'from the app' WHERE id = ${NEARBY} RETURNING id`)
            }))
          }).pipe(Effect.provide(Database.layer({ url, maxConnections: 1 })), Effect.either)
          expect(Either.map(nearby, (rows) => rows.map((r) => r.id))).toEqual(Either.right([NEARBY]))

          // The runner steps over the held row and is not done while it stays held.
          const skipped = yield* Effect.repeat(
            Effect.map(JobState.loadCheckpoint(job), (saved) => Option.isSome(saved) ? saved.value.skipped : []).pipe(Effect.delay("20 millis")),
            { until: (ranges) => ranges.length > 0 }
          )
          expect(skipped.map((r) => r.to)).toEqual([`i:${HELD}`])
          expect(Option.isNone(yield* Fiber.poll(running))).toBe(true)

          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(holder)
          const [summary] = yield* Fiber.join(running)
          expect(summary).toMatchObject({ job, outcome: "completed", processed: ROWS, updated: ROWS, rejected: 0, alreadySet: 0, outOfScope: 0 })
          const checkpoint = Option.getOrThrow(yield* JobState.loadCheckpoint(job))
          expect([checkpoint.state, checkpoint.skipped, checkpoint.processed, checkpoint.updated]).toEqual(["done", [], ROWS, ROWS])
          const rows = yield* sql.unsafe<{ id: number; happened_at_ms: string | number | null; note: string | null }>(
            `SELECT id, happened_at_ms, note FROM events WHERE id IN (${NEARBY}, ${HELD}) OR happened_at_ms IS NULL ORDER BY id`
          )
          const expected = (id: number) => Either.getOrThrow(Timestamp.parse(timeOf(id)))
          expect(rows.map((r) => [r.id, Number(r.happened_at_ms), r.note])).toEqual([
            [NEARBY, expected(NEARBY), "from the app"],
            [HELD, expected(HELD), null]
          ])
        }).pipe(Effect.ensuring(Deferred.succeed(release, undefined)))
      }).pipe(Effect.provide(strataLayer))
    }), 120_000)
})
