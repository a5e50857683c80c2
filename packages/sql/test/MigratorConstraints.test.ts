/**
 * The constraint phase on PostgreSQL: an `addColumn` with a foreign key (`references`) or a CHECK
 * (`oneOf`) on an existing table adds the column plain and the constraint NOT VALID in the
 * migration's transaction, then validates it once that has committed, in a transaction of its own
 * (SHARE UPDATE EXCLUSIVE: the app's reads and writes go on). Held mid-way deterministically: a
 * session queues `LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE` behind the migration's ALTER
 * (which waits for an app transaction), so it gets the lock when the migration commits, and the
 * VALIDATE that comes next waits for it. Had the VALIDATE run in the migration's transaction (as
 * before the phase), there would be nothing left for it to wait for.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan } from "@strata/core"
import { Deferred, Effect, Either, Exit, Fiber, Layer } from "effect"
import { describePg, openTransaction, sqliteTestLayer } from "../../../test/support/databases.js"
import { Migrator, Verifications } from "../src/index.js"
import { ordersSessions } from "./ordersSessions.js"

const migration = Plan.migration(1, "orders of customers", [
  Plan.addColumn("orders", "customer_id", "bigint", { default: 1, references: { table: "customers", column: "customer_id" } }),
  Plan.addColumn("orders", "status", "text", { default: "open", oneOf: ["open", "closed"] })
])
const plan = Plan.make("constraints", [migration])

/** orders (1,000 rows) and the customers they will reference. */
const sessions = Effect.gen(function*() {
  const clients = yield* ordersSessions
  yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE customers (customer_id BIGINT PRIMARY KEY)`,
      sql`INSERT INTO customers SELECT n FROM generate_series(1, 10) AS n`
    ])).pipe(Effect.provide(clients.holder))
  return clients
})

/** Whether a statement matching `pattern` is waiting for a lock now. */
const waitingFor = (pattern: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ pid: number }>`SELECT pid FROM pg_stat_activity
        WHERE query LIKE ${pattern} AND state = 'active' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      (rows) => (rows[0] === undefined ? undefined : Number(rows[0].pid))
    ))

/** Polls `check` every 20 ms for up to 20 s. */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let tries = 0; tries < 1000; tries++) {
      if (yield* check) return true
      yield* Effect.sleep("20 millis")
    }
    return false
  })

const validated = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ name: string; validated: boolean }>`SELECT conname AS name, convalidated AS validated FROM pg_constraint
      WHERE conrelid = to_regclass('orders') AND contype IN ('c', 'f') ORDER BY conname`,
    (rows) => rows.map((r) => [r.name, r.validated])
  ))

/**
 * A transaction that asks for a lock it waits for (behind the migration's), forked: `granted`
 * resolves once it holds it, and it stays open until `release`.
 */
const queueLock = (statement: string, granted: Deferred.Deferred<void>, release: Deferred.Deferred<void>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(statement)
      yield* Deferred.succeed(granted, undefined)
      yield* Deferred.await(release)
    })))

/**
 * Runs the migration while an app transaction (an uncommitted INSERT) holds orders; queues a
 * SHARE UPDATE EXCLUSIVE lock behind the migration's ALTER; lets the app transaction commit. The
 * migration then commits, and its VALIDATE waits for the queued lock: returns the run's fiber, the
 * validating backend, and the release of the queued lock.
 */
const heldAtValidate = (
  { app, holder, migrator }: Effect.Effect.Success<typeof sessions>,
  planToRun: Plan.Plan = plan,
  appInsert = "INSERT INTO orders VALUES (5001, 7)"
) =>
Effect.gen(function*() {
  const insert = yield* openTransaction(holder, appInsert)
  const queued = yield* Deferred.make<void>()
  const releaseQueued = yield* Deferred.make<void>()
  // A failing assertion must not leave the session (and the migration waiting for it) open.
  yield* Effect.addFinalizer(() => Deferred.succeed(releaseQueued, undefined))

  const run = yield* Effect.flatMap(Migrator.make(planToRun, { lockTimeout: "30 seconds" }), (m) => m.run()).pipe(
    Effect.provide(migrator),
    Effect.either,
    Effect.fork
  )
  expect(yield* waitUntil(Effect.map(Effect.provide(waitingFor("ALTER TABLE%"), app), (pid) => pid !== undefined))).toBe(true)
  const queuedLock = yield* queueLock("LOCK TABLE orders IN SHARE UPDATE EXCLUSIVE MODE", queued, releaseQueued).pipe(
    Effect.provide(holder),
    Effect.fork
  )
  expect(yield* waitUntil(Effect.map(Effect.provide(waitingFor("LOCK TABLE orders%"), app), (pid) => pid !== undefined))).toBe(true)
  yield* insert.release
  yield* Deferred.await(queued)
  expect(yield* waitUntil(Effect.map(Effect.provide(waitingFor("ALTER TABLE%VALIDATE CONSTRAINT%"), app), (pid) => pid !== undefined)))
    .toBe(true)
  const validatingPid = (yield* Effect.provide(waitingFor("ALTER TABLE%VALIDATE CONSTRAINT%"), app))!
  const release = Effect.zipRight(Deferred.succeed(releaseQueued, undefined), Fiber.join(queuedLock))
  return { run, validatingPid, release }
})

/** One statement of the app in a transaction of its own under a 100 ms lock_timeout. */
const appWrite = (app: Effect.Effect.Success<typeof sessions>["app"], statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.zipRight(sql`SET LOCAL lock_timeout = '100ms'`, sql.unsafe(statement)))).pipe(
      Effect.provide(app),
      Effect.either
    )

const shadow = Plan.migration(2, "epoch ms", [Plan.epochShadow("orders", "created_at")])
const contractPlan = Plan.make("constraints", [
  Plan.migration(1, "created at", [Plan.addColumn("orders", "created_at", "timestamp_text")]),
  shadow,
  Plan.migration(3, "contract", [Plan.contract({ jobs: ["orders.created_at_ms"], notNull: true })])
])

const nullability = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ notNull: boolean; checks: number }>`SELECT a.attnotnull AS "notNull",
        (SELECT count(*)::int FROM pg_constraint c WHERE c.conrelid = a.attrelid AND c.conname = 'strata_nn_orders_created_at_ms' AND c.convalidated) AS checks
      FROM pg_attribute a WHERE a.attrelid = to_regclass('orders') AND a.attname = 'created_at_ms'`,
    (rows) => rows[0]
  ))

describePg("Migrator constraint phase (PostgreSQL)", () => {
  it("compiles a referencing / checked column of an existing table to the plain column and NOT VALID constraints, validated after the transaction", () => {
    expect(Compile.transactionStatements(migration, "pg").map((s) => s.sql)).toEqual([
      `ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "customer_id" BIGINT DEFAULT 1`,
      `ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "orders_customer_id_fkey"`,
      `ALTER TABLE "orders" ADD CONSTRAINT "orders_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "customers" ("customer_id") NOT VALID`,
      `ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "status" TEXT DEFAULT 'open'`,
      `ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "orders_status_check"`,
      `ALTER TABLE "orders" ADD CONSTRAINT "orders_status_check" CHECK ("status" IN ('open', 'closed')) NOT VALID`
    ])
    expect(Compile.constraintValidations(migration, "pg").map((c) => [c.kind, c.name, c.validate, c.finish])).toEqual([
      ["foreignKey", "orders_customer_id_fkey", `ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_customer_id_fkey"`, []],
      ["check", "orders_status_check", `ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_status_check"`, []]
    ])
    // SQLite cannot add a constraint to a table: the column keeps them inline, in the transaction.
    expect(Compile.constraintValidations(migration, "sqlite")).toEqual([])
    expect(Compile.transactionStatements(migration, "sqlite")).toEqual(Compile.statements(migration, "sqlite"))
    // On a table the same migration creates, nobody writes yet: inline.
    const fresh = Plan.migration(2, "fresh", [
      Plan.createTable("fresh", [{ name: "id", type: "integer", primaryKey: true }]),
      Plan.addColumn("fresh", "customer_id", "bigint", { references: { table: "customers", column: "customer_id" } })
    ])
    expect(Compile.constraintValidations(fresh, "pg")).toEqual([])
    // A long name is shortened as PostgreSQL would keep it (63 characters), so the catalogue finds it.
    const long = Plan.migration(3, "long", [Plan.addColumn("orders", "x".repeat(63), "text", { oneOf: ["a"] })])
    expect(Compile.constraintValidations(long, "pg")[0]!.name).toBe(`orders_${"x".repeat(50)}_check`)
  })

  it.scopedLive("commits with the constraints NOT VALID; the app writes during the validation, and it completes while an app INSERT is uncommitted", () =>
    Effect.gen(function*() {
      const clients = yield* sessions
      const { app, holder } = clients
      const { release, run } = yield* heldAtValidate(clients)
      // Applied; the constraints NOT VALID, as status says.
      const status = yield* Effect.flatMap(Migrator.make(plan), (m) => m.status()).pipe(Effect.provide(app))
      expect(status.migrations.map((m) => m.state)).toEqual(["applied"])
      expect(status.constraints.map((c) => [c.kind, c.name, c.state])).toEqual([
        ["foreignKey", "orders_customer_id_fkey", "notValid"],
        ["check", "orders_status_check", "notValid"]
      ])
      expect(yield* Effect.provide(validated, app)).toEqual([["orders_customer_id_fkey", false], ["orders_status_check", false]])

      // The app writes and reads under a short lock timeout meanwhile; new rows are checked already.
      const write = (statement: string) => appWrite(app, statement)
      expect(Either.isRight(yield* write("INSERT INTO orders (order_id, amount, customer_id) VALUES (5002, 8, 2)"))).toBe(true)
      expect(Either.isRight(yield* write("SELECT count(*) FROM orders"))).toBe(true)
      const orphan = yield* write("INSERT INTO orders (order_id, amount, customer_id) VALUES (5003, 8, 999)")
      expect(Either.isLeft(orphan) ? String(orphan.left.cause) : "").toContain(`violates foreign key constraint "orders_customer_id_fkey"`)

      // An app transaction with an uncommitted INSERT (ROW EXCLUSIVE) stays open while the validation runs and finishes.
      const open = yield* openTransaction(holder, "INSERT INTO orders (order_id, amount) VALUES (5004, 9)")
      yield* release
      const result = Either.getOrThrow(yield* Fiber.join(run))
      expect(result.applied.map((m) => m.id)).toEqual([1])
      expect(result.constraints.map((c) => [c.migrationId, c.kind, c.table, c.column, c.name])).toEqual([
        [1, "foreignKey", "orders", "customer_id", "orders_customer_id_fkey"],
        [1, "check", "orders", "status", "orders_status_check"]
      ])
      expect(result.constraints.map((c) => [typeof c.validateMs, c.finishMs])).toEqual([["number", null], ["number", null]])
      expect(yield* Effect.provide(validated, app)).toEqual([["orders_customer_id_fkey", true], ["orders_status_check", true]])
      yield* open.release
      const after = yield* Effect.flatMap(Migrator.make(plan), (m) => m.status()).pipe(Effect.provide(app))
      expect(after.constraints.map((c) => c.state)).toEqual(["valid", "valid"])
    }), 60_000)

  it.scopedLive("a validating backend killed mid-way leaves the constraint NOT VALID; the next run validates it", () =>
    Effect.gen(function*() {
      const clients = yield* sessions
      const { app } = clients
      const { release, run, validatingPid } = yield* heldAtValidate(clients)
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_terminate_backend(${validatingPid})`).pipe(Effect.provide(app))
      const killed = yield* Fiber.join(run)
      expect(Either.isLeft(killed) ? killed.left._tag : "applied").toBe("ConstraintPhaseError")
      yield* release
      const migrator = yield* Effect.provide(Migrator.make(plan), app)
      expect((yield* migrator.status()).constraints.map((c) => [c.name, c.state])).toEqual([
        ["orders_customer_id_fkey", "notValid"],
        ["orders_status_check", "notValid"]
      ])
      const dry = yield* migrator.dryRun()
      expect(dry.pending).toEqual([])
      const rerun = yield* migrator.run()
      expect(rerun.applied).toEqual([])
      expect(rerun.alreadyApplied).toEqual([1])
      expect(rerun.constraints.map((c) => c.name)).toEqual(["orders_customer_id_fkey", "orders_status_check"])
      expect(yield* Effect.provide(validated, app)).toEqual([["orders_customer_id_fkey", true], ["orders_status_check", true]])
      // Nothing left: a further run validates nothing.
      expect((yield* migrator.run()).constraints).toEqual([])
    }), 60_000)

  it.scopedLive("a contract's NOT NULL: validated while an app INSERT is uncommitted; interrupted waiting to SET NOT NULL, then ConstraintValidationBlocked names the app, then the re-run finishes", () =>
    Effect.gen(function*() {
      const clients = yield* sessions
      const { app, holder, migrator } = clients
      const sql = yield* Effect.provide(SqlClient.SqlClient, app)
      yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.run({ to: 2 })).pipe(Effect.provide(migrator))
      // The job's data as a backfill leaves it, and a verification that passed for it.
      yield* sql`UPDATE orders SET created_at = '2024-01-15 12:00:00', created_at_ms = 1705320000000`
      yield* Verifications.record([{
        plan: "constraints",
        job: "orders.created_at_ms",
        passed: true,
        checkedAtMs: Date.now(),
        rows: 1000,
        mismatches: 0,
        failedChecks: [],
        checksum: Compile.checksum(shadow)
      }]).pipe(Effect.provide(Layer.succeedContext(app)))

      // Hold the validation as for the foreign key: an app INSERT, then a queued SHARE UPDATE EXCLUSIVE lock.
      const { release, run } = yield* heldAtValidate(clients, contractPlan, "INSERT INTO orders (order_id, amount, created_at_ms) VALUES (5001, 7, 1)")
      const status = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.status()).pipe(Effect.provide(app))
      expect(status.migrations.map((m) => m.state)).toEqual(["applied", "applied", "applied"])
      expect(status.constraints.map((c) => [c.migrationId, c.kind, c.name, c.state])).toEqual([[3, "notNull", "strata_nn_orders_created_at_ms", "notValid"]])
      // The app writes meanwhile; a NULL is refused already.
      const write = (statement: string) => appWrite(app, statement)
      expect(Either.isRight(yield* write("INSERT INTO orders (order_id, amount, created_at_ms) VALUES (5002, 8, 2)"))).toBe(true)
      const nullRow = yield* write("INSERT INTO orders (order_id, amount) VALUES (5003, 8)")
      expect(Either.isLeft(nullRow) ? String(nullRow.left.cause) : "").toContain(`violates check constraint "strata_nn_orders_created_at_ms"`)

      // An uncommitted app INSERT: the VALIDATE does not wait for it; the SET NOT NULL (ACCESS EXCLUSIVE, short) does.
      const open = yield* openTransaction(holder, "INSERT INTO orders (order_id, amount, created_at_ms) VALUES (5004, 9, 3)")
      yield* release
      expect(yield* waitUntil(Effect.map(Effect.provide(waitingFor("ALTER TABLE%SET NOT NULL%"), app), (pid) => pid !== undefined))).toBe(true)
      expect(yield* Effect.provide(nullability, app)).toEqual({ notNull: false, checks: 1 })
      // Interrupted there (Ctrl-C): the SET NOT NULL is rolled back, the validated CHECK stays.
      yield* Fiber.interrupt(run)
      const validatedStatus = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.status()).pipe(Effect.provide(app))
      expect(validatedStatus.constraints.map((c) => c.state)).toEqual(["validated"])
      // Not valid until the column is NOT NULL: validate names the migration whose finish is left.
      const unfinished = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.validate()).pipe(Effect.provide(app))
      expect([unfinished.ok, unfinished.unfinished.map((m) => [m.id, m.statements.map((s) => s.sql)])]).toEqual([false, [[3, [
        `ALTER TABLE "orders" ALTER COLUMN "created_at_ms" SET NOT NULL`,
        `ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "strata_nn_orders_created_at_ms"`
      ]]]])
      // What the next run does first, as the dry run shows it: only the finish (the CHECK holds already).
      const leftover = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.dryRun()).pipe(Effect.provide(app))
      expect(leftover.unfinished.map((m) => [m.id, m.statements.map((s) => [s.phase, s.sql])])).toEqual([[3, [
        ["validate", `ALTER TABLE "orders" ALTER COLUMN "created_at_ms" SET NOT NULL`],
        ["validate", `ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "strata_nn_orders_created_at_ms"`]
      ]]])

      // Under a short lock timeout the uncommitted INSERT blocks SET NOT NULL: named, nothing changed.
      const blocked = yield* Effect.flip(
        Effect.flatMap(Migrator.make(contractPlan, { lockTimeout: "200 millis", lockRetries: 1 }), (m) => m.run()).pipe(Effect.provide(migrator))
      )
      expect(blocked).toBeInstanceOf(Migrator.ConstraintValidationBlocked)
      expect(blocked).toMatchObject({
        plan: "constraints",
        id: 3,
        table: "orders",
        column: "created_at_ms",
        constraint: "strata_nn_orders_created_at_ms",
        statement: `ALTER TABLE "orders" ALTER COLUMN "created_at_ms" SET NOT NULL`,
        attempts: 2,
        lockTimeoutMs: 200,
        blockers: [{ query: "INSERT INTO orders (order_id, amount, created_at_ms) VALUES (5004, 9, 3)", state: "idle in transaction" }]
      })
      expect(yield* Effect.provide(nullability, app)).toEqual({ notNull: false, checks: 1 })

      yield* open.release
      const rerun = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.run()).pipe(Effect.provide(migrator))
      // Validated by the interrupted run already: this one only set NOT NULL.
      expect([rerun.applied, rerun.constraints.map((c) => [c.migrationId, c.name, c.validateMs, typeof c.finishMs])]).toEqual([
        [],
        [[3, "strata_nn_orders_created_at_ms", null, "number"]]
      ])
      expect(yield* Effect.provide(nullability, app)).toEqual({ notNull: true, checks: 0 })
      const after = yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.status()).pipe(Effect.provide(app))
      expect(after.constraints.map((c) => c.state)).toEqual(["valid"])
      expect(yield* Effect.flatMap(Migrator.make(contractPlan), (m) => m.validate()).pipe(Effect.provide(app))).toMatchObject({ ok: true, unfinished: [] })
    }), 60_000)

  it.scopedLive("rows that break a constraint: ConstraintValidationFailed names it, the rows stay as they were, the migration stays applied; fixed, the next run validates", () =>
    Effect.gen(function*() {
      const { app, migrator } = yield* sessions
      const sql = yield* Effect.provide(SqlClient.SqlClient, app)
      // Rows that reference no customer once the column's default is in place: 999 is not one.
      const checked = Plan.make("constraints", [
        Plan.migration(1, "orders of customers", [
          Plan.addColumn("orders", "customer_id", "bigint", { default: 999, references: { table: "customers", column: "customer_id" } })
        ])
      ])
      const dry = yield* Effect.flatMap(Migrator.make(checked), (m) => m.dryRun()).pipe(Effect.provide(migrator))
      expect(dry.pending[0]!.statements.map((s) => [s.phase, s.sql])).toEqual([
        ["transaction", `ALTER TABLE "orders" ADD COLUMN IF NOT EXISTS "customer_id" BIGINT DEFAULT 999`],
        ["transaction", `ALTER TABLE "orders" DROP CONSTRAINT IF EXISTS "orders_customer_id_fkey"`],
        ["transaction", `ALTER TABLE "orders" ADD CONSTRAINT "orders_customer_id_fkey" FOREIGN KEY ("customer_id") REFERENCES "customers" ("customer_id") NOT VALID`],
        ["validate", `ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_customer_id_fkey"`]
      ])
      const failed = yield* Effect.flip(Effect.flatMap(Migrator.make(checked), (m) => m.run()).pipe(Effect.provide(migrator)))
      expect(failed).toBeInstanceOf(Migrator.ConstraintValidationFailed)
      expect(failed).toMatchObject({
        plan: "constraints",
        id: 1,
        kind: "foreignKey",
        table: "orders",
        column: "customer_id",
        constraint: "orders_customer_id_fkey",
        statement: `ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_customer_id_fkey"`
      })
      expect(failed.message).toMatch(
        /^The foreign key constraint orders_customer_id_fkey on orders\.customer_id \(migration 1 of plan constraints, which stays applied\) does not hold for existing rows, which were left as they are: .*violates foreign key constraint "orders_customer_id_fkey"/
      )
      expect(yield* sql<{ n: number; sum: string }>`SELECT count(*)::int AS n, sum(amount)::text AS sum FROM orders WHERE customer_id = 999`)
        .toEqual([{ n: 1000, sum: "5005000" }])
      const status = yield* Effect.flatMap(Migrator.make(checked), (m) => m.status()).pipe(Effect.provide(app))
      expect([status.migrations.map((m) => m.state), status.constraints.map((c) => c.state)]).toEqual([["applied"], ["notValid"]])
      // Nothing pending, but the dry run shows what the next run does first: the validation left over.
      const leftover = yield* Effect.flatMap(Migrator.make(checked), (m) => m.dryRun()).pipe(Effect.provide(app))
      expect([leftover.pending, leftover.unfinished.map((m) => [m.id, m.statements.map((s) => [s.phase, s.sql])])]).toEqual([[], [
        [1, [["validate", `ALTER TABLE "orders" VALIDATE CONSTRAINT "orders_customer_id_fkey"`]]]
      ]])

      yield* sql`INSERT INTO customers VALUES (999)`
      const fixed = yield* Effect.flatMap(Migrator.make(checked), (m) => m.run()).pipe(Effect.provide(migrator))
      expect(fixed.constraints.map((c) => c.name)).toEqual(["orders_customer_id_fkey"])
      expect(yield* Effect.provide(validated, app)).toEqual([["orders_customer_id_fkey", true]])
      expect((yield* Effect.flatMap(Migrator.make(checked), (m) => m.dryRun()).pipe(Effect.provide(app))).unfinished).toEqual([])
      const validation = () => Effect.flatMap(Migrator.make(checked), (m) => m.validate()).pipe(Effect.provide(app))
      expect((yield* validation()).ok).toBe(true)

      // Dropped by hand: run does not add it again, so validate refuses and names it.
      yield* sql`ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey`
      const dropped = yield* validation()
      expect([dropped.ok, dropped.unfinished, dropped.constraints.map((c) => [c.name, c.state])]).toEqual([false, [], [["orders_customer_id_fkey", "missing"]]])
      expect(Migrator.ValidationFailed.fromReport(dropped).message).toBe(
        "Plan constraints is not valid on this database (constraints missing: orders_customer_id_fkey)"
      )
    }), 60_000)
})

describe("Migrator constraints on SQLite (no constraint phase: one transaction)", () => {
  const sqlitePlan = (status: string) =>
    Plan.make("constraints", [
      Plan.migration(1, "orders of customers", [
        Plan.addColumn("orders", "customer_id", "bigint", { references: { table: "customers", column: "customer_id" } }),
        Plan.addColumn("orders", "status", "text", { default: status, oneOf: ["open", "closed"] })
      ])
    ])
  const setUp = Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE customers (customer_id INTEGER PRIMARY KEY)`,
      sql`INSERT INTO customers VALUES (1), (2)`,
      sql`CREATE TABLE orders (order_id INTEGER PRIMARY KEY, amount INTEGER NOT NULL)`,
      sql`INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30)`
    ]))
  const columns = Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql<{ name: string }>`SELECT name FROM pragma_table_info('orders') ORDER BY cid`, (rows) => rows.map((r) => r.name)))

  it.effect("the columns keep their CHECK and REFERENCES inline; the constraints hold for new rows; there is nothing to validate afterwards", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* setUp
      const migrator = yield* Migrator.make(sqlitePlan("open"))
      expect((yield* migrator.dryRun()).pending[0]!.statements.map((s) => s.phase)).toEqual(["transaction", "transaction"])
      const result = yield* migrator.run()
      expect([result.applied.map((m) => m.id), result.constraints]).toEqual([[1], []])
      expect((yield* migrator.status()).constraints).toEqual([])
      expect(yield* columns).toEqual(["order_id", "amount", "customer_id", "status"])
      expect(Exit.isFailure(yield* Effect.exit(sql`INSERT INTO orders (order_id, amount, status) VALUES (4, 40, 'bogus')`))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(sql`INSERT INTO orders (order_id, amount, customer_id) VALUES (5, 50, 999)`))).toBe(true)
      expect(yield* sql`INSERT INTO orders (order_id, amount, customer_id) VALUES (6, 60, 2)`).toEqual([])
    }).pipe(Effect.provide(sqliteTestLayer())))

  it.effect("existing rows that break the CHECK fail the migration, which is rolled back: nothing changed", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* setUp
      const failed = yield* Effect.flip(Effect.flatMap(Migrator.make(sqlitePlan("bogus")), (m) => m.run()))
      expect(failed).toBeInstanceOf(Migrator.MigrationFailed)
      expect(failed).toMatchObject({
        id: 1,
        statement: `ALTER TABLE "orders" ADD COLUMN "status" TEXT DEFAULT 'bogus' CHECK ("status" IN ('open', 'closed'))`
      })
      expect((failed as Migrator.MigrationFailed).cause).toContain("CHECK constraint failed")
      expect(yield* columns).toEqual(["order_id", "amount"])
      expect(yield* sql`SELECT order_id, amount FROM orders ORDER BY order_id`).toEqual([
        { order_id: 1, amount: 10 },
        { order_id: 2, amount: 20 },
        { order_id: 3, amount: 30 }
      ])
      expect(yield* sql`SELECT count(*) AS n FROM strata_migrations`).toEqual([{ n: 0 }])
    }).pipe(Effect.provide(sqliteTestLayer())))
})
