/**
 * PostgreSQL table locks during a migration. An app's long open transaction holds a lock on the
 * table a migration alters; the ALTER waits for ACCESS EXCLUSIVE, and while it waits every later
 * query of the app on that table queues behind it. Under `lockTimeout` the migration gives up the
 * wait, rolls back and retries, so the app is never held longer than that; past `lockRetries` a
 * typed error names the session in the way.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { Clock, Deferred, Effect, Either, Fiber, Ref } from "effect"
import { describePg, sqliteTestLayer } from "../../../test/support/databases.js"
import { Migrator } from "../src/index.js"
import { ordersSessions } from "./ordersSessions.js"

const plan = Plan.make("locks", [Plan.migration(1, "a note", [Plan.addColumn("orders", "note", "text")])])

const alter = `ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "note" TEXT`

const holdingQuery = "SELECT count(*) AS holding_for_the_test FROM orders"

/** Three clients on one fresh schema: the app's long transaction, the app's steady reads, the migration. */
const clients = ordersSessions

/** An open transaction that has read `orders` (so holds ACCESS SHARE on it) for `holdMs`; its pid. */
const holdTable = (holdMs: number, held: Deferred.Deferred<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(
      Effect.gen(function*() {
        const [row] = yield* sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`
        yield* sql.unsafe(holdingQuery)
        yield* Deferred.succeed(held, Number(row!.pid))
        yield* Effect.sleep(`${holdMs} millis`)
      })
    ))

/** The app: a point read every 25 ms until `stop`; the longest one took `longest` ms. */
const appReads = (stop: Deferred.Deferred<void>, longest: Ref.Ref<number>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.gen(function*() {
      while (!(yield* Deferred.isDone(stop))) {
        const started = yield* Clock.currentTimeMillis
        yield* sql`SELECT amount FROM orders WHERE order_id = 7`
        const took = (yield* Clock.currentTimeMillis) - started
        yield* Ref.update(longest, (max) => Math.max(max, took))
        yield* Effect.sleep("25 millis")
      }
    }))

const columnsOfOrders = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'orders' ORDER BY ordinal_position`,
    (rows) => rows.map((r) => r.name)
  ))

/** One scenario: the holder holds `holdMs`; the migration runs with `options`; the app reads meanwhile. */
const scenario = (holdMs: number, options: Migrator.MigratorOptions) =>
  Effect.gen(function*() {
    const { app, holder, migrator } = yield* clients
    const held = yield* Deferred.make<number>()
    const holding = yield* holdTable(holdMs, held).pipe(Effect.provide(holder), Effect.fork)
    const holderPid = yield* Deferred.await(held)
    const stop = yield* Deferred.make<void>()
    const longest = yield* Ref.make(0)
    const reads = yield* appReads(stop, longest).pipe(Effect.provide(app), Effect.fork)
    const result = yield* Effect.either(
      Effect.flatMap(Migrator.make(plan, options), (m) => m.run()).pipe(Effect.provide(migrator))
    )
    const migrationEndedAt = yield* Clock.currentTimeMillis
    yield* Fiber.join(holding)
    const holderEndedAt = yield* Clock.currentTimeMillis
    yield* Deferred.succeed(stop, undefined)
    yield* Fiber.join(reads)
    return {
      result,
      holderPid,
      longestAppReadMs: yield* Ref.get(longest),
      endedAfterHolder: migrationEndedAt >= holderEndedAt - 50,
      columns: yield* columnsOfOrders.pipe(Effect.provide(app)),
      migrator
    }
  })

describePg("Migrator under an app's long transaction (PostgreSQL)", () => {
  it.live("the app is never held longer than the lock timeout, and the migration completes once the transaction ends", () =>
    Effect.scoped(Effect.gen(function*() {
      const run = yield* scenario(2500, { lockTimeout: "300 millis", lockRetries: 50 })
      expect(Either.isRight(run.result)).toBe(true)
      const applied = Either.getOrThrow(run.result).applied
      expect(applied.map((m) => [m.id, m.statements.map((s) => s.sql)])).toEqual([[1, [alter]]])
      // It waited the transaction out: several lock timeouts, each rolled back and retried.
      expect(applied[0]!.attempts).toBeGreaterThanOrEqual(3)
      expect(run.endedAfterHolder).toBe(true)
      expect(run.columns).toEqual(["order_id", "amount", "note"])
      // The bound, with room for a loaded machine: the lock timeout plus a point read.
      expect(run.longestAppReadMs).toBeLessThan(300 + 500)
    })), 30_000)

  it.live("without a short lock timeout the same migration stalls the app for as long as the transaction lasts", () =>
    Effect.scoped(Effect.gen(function*() {
      const run = yield* scenario(2500, { lockTimeout: "30 seconds" })
      expect(Either.isRight(run.result)).toBe(true)
      expect(Either.getOrThrow(run.result).applied[0]!.attempts).toBe(1)
      expect(run.longestAppReadMs).toBeGreaterThanOrEqual(1500)
    })), 30_000)

  it.live("past lockRetries, MigrationBlocked names the blocking pid and its query, and nothing is applied", () =>
    Effect.scoped(Effect.gen(function*() {
      const run = yield* scenario(4000, { lockTimeout: "200 millis", lockRetries: 2 })
      expect(Either.isLeft(run.result)).toBe(true)
      const error = Either.getLeft(run.result).pipe((o) => (o._tag === "Some" ? o.value : undefined))
      expect(error).toBeInstanceOf(Migrator.MigrationBlocked)
      const blocked = error as Migrator.MigrationBlocked
      expect({ ...blocked, blockers: blocked.blockers.map((b) => ({ ...b, transactionStartMs: typeof b.transactionStartMs })) })
        .toMatchObject({
          plan: "locks",
          id: 1,
          name: "a note",
          statement: alter,
          attempts: 3,
          lockTimeoutMs: 200,
          blockers: [{
            pid: run.holderPid,
            query: holdingQuery,
            state: "idle in transaction",
            applicationName: "strata",
            transactionStartMs: "number"
          }]
        })
      expect(blocked.message).toBe(
        `Migration 1 "a note" of plan locks was not applied: 3 attempts each waited 200 ms (lock_timeout) for a lock held by pid ${run.holderPid} (idle in transaction, strata): ${holdingQuery}; statement: ${alter}`
      )
      expect(run.columns).toEqual(["order_id", "amount"])
      const recorded = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT count(*)::int AS n FROM strata_migrations`).pipe(Effect.provide(run.migrator))
      expect(recorded).toEqual([{ n: 0 }])
      // The transaction is over now: the same runner applies it.
      const again = yield* Effect.flatMap(Migrator.make(plan, { lockTimeout: "200 millis" }), (m) => m.run()).pipe(
        Effect.provide(run.migrator)
      )
      expect(again.applied.map((m) => [m.id, m.attempts])).toEqual([[1, 1]])
    })), 30_000)
})

describe("Migrator options", () => {
  it.effect("out-of-range lock options are refused naming the option, never clamped", () =>
    Effect.gen(function*() {
      const refused = (options: Migrator.MigratorOptions) => Effect.flip(Migrator.make(plan, options))
      expect(yield* refused({ lockTimeout: 0 })).toEqual(
        new Migrator.InvalidMigratorOptions({
          option: "lockTimeout",
          reason: `must be a finite duration of more than zero (milliseconds as a number, "2 seconds", or a Duration), got 0`
        })
      )
      expect((yield* refused({ lockRetries: -1 })).option).toBe("lockRetries")
      expect((yield* refused({ lockRetries: 1.5 })).reason).toBe("must be an integer of at least 0, got 1.5")
      expect((yield* refused({ runnerTimeout: "-5 seconds" })).option).toBe("runnerTimeout")
      const fine = yield* Migrator.make(plan, { lockTimeout: "1 second", lockRetries: 0, runnerTimeout: 0 })
      expect(fine.plan.name).toBe("locks")
    }).pipe(Effect.provide(sqliteTestLayer())))
})
