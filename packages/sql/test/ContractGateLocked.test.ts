/**
 * The contract gate holds where the contract is applied, under the runner lock, not only where
 * `run` first looked: a runner that passed the gate and then waited for the lock while the job ran
 * again (`backfill --restart`) must refuse, because the verification no longer proves the data.
 * PostgreSQL, where a waiting runner can be seen polling for the lock in `pg_stat_activity`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Deferred, Effect, Fiber, Layer } from "effect"
import { describePg, pgTestUrlWithSchema } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator, Verifier } from "../src/index.js"
import { runnerLockKey } from "../src/internal/indexBuilds.js"

const job = "events.created_at_ms"
const plan = Plan.make("events", [
  Plan.migration(1, "events", [
    Plan.createTable("events", [
      { name: "event_id", type: "integer", primaryKey: true },
      { name: "created_at", type: "timestamp_text" }
    ])
  ]),
  Plan.migration(2, "epoch ms", [Plan.epochShadow("events", "created_at")]),
  Plan.migration(3, "contract", [Plan.contract({ jobs: [job], notNull: true })])
])

/** Another session of this database polls the advisory lock: a runner waiting for its turn. */
const runnerWaiting = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE pid <> pg_backend_pid() AND datname = current_database() AND query LIKE '%pg_try_advisory_lock%'`,
    (rows) => Number(rows[0]?.n) > 0
  ))

describePg("contract gate under the runner lock (PostgreSQL)", () => {
  it.scopedLive("a job run again while the runner waited for the lock stops the contract: ContractUnverified, nothing applied", () =>
    Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      const open = () => Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const app = yield* open()
      const holder = yield* open()
      const migrator = yield* open()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Migrator.run({ to: 2 }).pipe(Effect.provide(Migrator.layer(plan)))
        yield* sql`INSERT INTO events (event_id, created_at) VALUES (1, '2024-01-15 12:00:00'), (2, '2024-01-15 12:00:01')`
        yield* BackfillRunner.run().pipe(Effect.provide(BackfillRunner.layer(plan)))
        expect((yield* Verifier.report().pipe(Effect.provide(Verifier.layer(plan)))).passed).toBe(true)
      }).pipe(Effect.provide(app))

      // Another runner holds the lock (as a long migration would).
      const key = yield* Effect.provide(runnerLockKey(plan), holder)
      const holding = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holderFiber = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`SELECT pg_advisory_xact_lock(${key}::bigint)`
          yield* Deferred.succeed(holding, undefined)
          yield* Deferred.await(release)
        }))).pipe(Effect.provide(holder), Effect.fork)
      yield* Deferred.await(holding)
      yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))

      // The runner passes the up-front gate (the job is verified) and waits for the lock.
      const run = yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)), Effect.provide(migrator), Effect.either, Effect.fork)
      let waiting = false
      for (let tries = 0; tries < 500 && !waiting; tries++) {
        waiting = yield* Effect.provide(runnerWaiting, app)
        if (!waiting) yield* Effect.sleep("20 millis")
      }
      expect(waiting).toBe(true)

      // Meanwhile the job runs again: its verification is older than its last run.
      yield* Effect.sleep("5 millis")
      yield* BackfillRunner.run({ restart: true }).pipe(Effect.provide(BackfillRunner.layer(plan)), Effect.provide(app))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holderFiber)

      const outcome = yield* Fiber.join(run)
      expect(outcome._tag).toBe("Left")
      expect(outcome._tag === "Left" ? outcome.left : undefined).toMatchObject({
        _tag: "ContractUnverified",
        migrationId: 3,
        jobs: [{ job, reason: "ran-since" }]
      })
      const applied = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ id: number }>`SELECT id FROM strata_migrations ORDER BY id`).pipe(
        Effect.provide(app)
      )
      expect(applied.map((r) => Number(r.id))).toEqual([1, 2])
    }), 60_000)
})
