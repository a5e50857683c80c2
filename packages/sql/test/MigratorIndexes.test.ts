/**
 * The index phase on PostgreSQL: a `createIndex` on an existing table is built with `CREATE INDEX
 * CONCURRENTLY` after the migration's transaction, so the app keeps writing to the table while
 * the build waits and runs. The scenario that tells the two apart: an app transaction has written
 * to the table and is still open. A plain `CREATE INDEX` waits for it holding a SHARE request
 * that every later INSERT queues behind; a concurrent build waits for it too, but its lock
 * (SHARE UPDATE EXCLUSIVE) lets INSERTs through.
 */
import { expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan } from "@strata/core"
import { Effect, Fiber } from "effect"
import { describePg, openTransaction } from "../../../test/support/databases.js"
import { Migrator } from "../src/index.js"
import { ordersSessions } from "./ordersSessions.js"

const plan = Plan.make("indexes", [
  Plan.migration(1, "orders by amount", [Plan.createIndex("idx_orders_amount", "orders", ["amount"])])
])

/** The same index next to a column: the column in the transaction, the index after it. */
const withColumn = Plan.migration(1, "orders by amount", [
  Plan.addColumn("orders", "note", "text"),
  Plan.createIndex("idx_orders_amount", "orders", ["amount"])
])

const clients = ordersSessions

/** What the migrator's session is doing now: its CREATE INDEX, waiting, or nothing. */
const indexBuildWaiting = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE query LIKE 'CREATE INDEX%idx_orders_amount%' AND state = 'active' AND wait_event_type = 'Lock'`,
    (rows) => Number(rows[0]?.n) > 0
  ))

const indexValidity = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ valid: boolean }>`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = to_regclass('orders') AND c.relname = 'idx_orders_amount'`,
    (rows) => rows.map((r) => r.valid)
  ))

/** Polls `check` every 20 ms for up to 10 s. */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let tries = 0; tries < 500; tries++) {
      if (yield* check) return true
      yield* Effect.sleep("20 millis")
    }
    return false
  })

describePg("Migrator index phase (PostgreSQL)", () => {
  it("compiles the index of an existing table as CREATE INDEX CONCURRENTLY after the transaction; the checksum is the plan's", () => {
    const migration = withColumn
    expect(Compile.transactionStatements(migration, "pg").map((s) => s.sql)).toEqual([
      `ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "note" TEXT`
    ])
    expect(Compile.indexBuilds(migration, "pg").map((b) => [b.timing, b.create, b.dropInvalid])).toEqual([[
      "afterCommit",
      `CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_orders_amount" ON "orders" ("amount")`,
      `DROP INDEX CONCURRENTLY IF EXISTS "idx_orders_amount"`
    ]])
    // SQLite builds it in the transaction (an index build holds its write lock either way).
    expect(Compile.indexBuilds(migration, "sqlite")).toEqual([])
    expect(Compile.transactionStatements(migration, "sqlite").map((s) => s.sql)).toEqual(
      Compile.statements(migration, "sqlite").map((s) => s.sql)
    )
    // An index on a table the same migration creates stays in the transaction: nobody writes to it yet.
    const fresh = Plan.migration(2, "fresh", [
      Plan.createTable("fresh", [{ name: "id", type: "integer", primaryKey: true }, { name: "v", type: "integer" }]),
      Plan.createIndex("idx_fresh_v", "fresh", ["v"])
    ])
    expect(Compile.indexBuilds(fresh, "pg")).toEqual([])
  })

  it.scopedLive("the app's INSERT with a 100 ms lock_timeout succeeds while the build waits for an open transaction; then the index is valid", () =>
    Effect.gen(function*() {
      const { app, holder, migrator } = yield* clients
      // An app transaction that has written to orders and stays open until released.
      const held = yield* openTransaction(holder, "INSERT INTO orders VALUES (5001, 7)")

      const run = yield* Effect.flatMap(Migrator.make(plan, { concurrentIndexMinBytes: 0 }), (m) => m.run()).pipe(
        Effect.provide(migrator),
        Effect.fork
      )
      // The transactional part commits at once; the build then waits for the holder.
      expect(yield* waitUntil(Effect.provide(indexBuildWaiting, app))).toBe(true)
      const status = yield* Effect.flatMap(Migrator.make(plan), (m) => m.status()).pipe(Effect.provide(app))
      expect(status.migrations.map((m) => m.state)).toEqual(["applied"])
      expect(status.indexes.map((i) => [i.name, i.state])).toEqual([["idx_orders_amount", "invalid"]])

      // While the build waits, the app writes under a short lock timeout.
      const inserted = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL lock_timeout = '100ms'`
          yield* sql`INSERT INTO orders VALUES (5002, 8)`
          return yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM orders WHERE order_id = 5002`
        }))).pipe(Effect.provide(app), Effect.either)
      expect(inserted._tag).toBe("Right")
      expect(yield* Effect.provide(indexBuildWaiting, app)).toBe(true)

      yield* held.release
      const result = yield* Fiber.join(run)
      expect(result.applied.map((m) => m.id)).toEqual([1])
      expect(result.indexes.map((i) => [i.migrationId, i.name, i.rebuiltInvalid, i.concurrently])).toEqual([[1, "idx_orders_amount", false, true]])
      expect(yield* Effect.provide(indexValidity, app)).toEqual([true])
      const after = yield* Effect.flatMap(Migrator.make(plan), (m) => m.status()).pipe(Effect.provide(app))
      expect(after.indexes.map((i) => [i.name, i.state, i.attempts])).toEqual([["idx_orders_amount", "valid", 1]])
      expect(after.indexes[0]!.durationMs).toBeGreaterThanOrEqual(0)
    }), 60_000)

  it.scopedLive("a small table's plain build that meets the migration's lock_timeout is reported with that timeout, not indexBuildTimeout; the migration stays applied", () =>
    Effect.gen(function*() {
      const { holder, migrator } = yield* clients
      yield* openTransaction(holder, "INSERT INTO orders VALUES (5001, 7)")

      // 1,000 rows are far below concurrentIndexMinBytes: a plain build, under lockTimeout.
      const blocked = yield* Effect.flatMap(
        Migrator.make(plan, { lockTimeout: "150 millis", lockRetries: 1, indexBuildTimeout: "3 seconds" }),
        (m) => Effect.flip(m.run())
      ).pipe(Effect.provide(migrator))
      expect(blocked).toMatchObject({ _tag: "IndexBuildBlocked", index: "idx_orders_amount", attempts: 2, lockTimeoutMs: 150 })
      expect(blocked.message).toContain("each waited 150 ms (lock_timeout)")
      const status = yield* Effect.flatMap(Migrator.make(plan), (m) => m.status()).pipe(Effect.provide(migrator))
      expect(status.migrations.map((m) => m.state)).toEqual(["applied"])
    }), 60_000)
})
