/**
 * A runner killed (SIGKILL) during a concurrent index build on PostgreSQL, then a re-run. The
 * migration's transactional part has committed, so it stays applied; the build it left is an
 * INVALID index (`pg_index.indisvalid` false) that `IF NOT EXISTS` would keep. `status` shows it,
 * and the next `run` drops it (DROP INDEX CONCURRENTLY) and builds it again. The child runs the
 * built packages (`npx tsc -b` first).
 *
 * The child's Migrator builds every index CONCURRENTLY (`concurrentIndexMinBytes: 0`; by
 * default a table this small gets a plain build). The build is held mid-way by an app transaction that has written to the table and stays open
 * (a concurrent build waits for it). A SIGKILLed client's server session goes on until it next
 * talks to the client, so the test ends it as the server would on a lost connection
 * (`pg_terminate_backend`), before the app transaction ends.
 */
import { expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { Database, Migrator } from "@strata/sql"
import { Deferred, Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describePg, openTransaction, pgTestUrlWithSchema, tempDirectory } from "./support/databases.js"

const plan = Plan.make("killed", [
  Plan.migration(1, "orders by amount", [Plan.createIndex("idx_orders_amount", "orders", ["amount"])])
])

const here = Path.dirname(fileURLToPath(import.meta.url))
const childScript = Path.join(here, "fixtures", "migrator-child.mjs")

const assertBuildIsFresh = () => {
  for (const source of ["packages/sql/src/Migrator.ts", "packages/sql/src/internal/indexBuilds.ts", "packages/core/src/Compile.ts"]) {
    const absolute = Path.join(here, "..", source)
    const built = absolute.replace("/src/", "/dist/").replace(/\.ts$/, ".js")
    if (!Fs.existsSync(built) || Fs.statSync(built).mtimeMs < Fs.statSync(absolute).mtimeMs) {
      throw new Error(`${built} is missing or older than ${source}: run \`npx tsc -b\` before this test`)
    }
  }
}

/** Polls `check` every 20 ms for up to 20 s. */
const waitUntil = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function*() {
    for (let tries = 0; tries < 1000; tries++) {
      if (yield* check) return true
      yield* Effect.sleep("20 millis")
    }
    return false
  })

/** The backend running the child's concurrent build, while it waits for the app's transaction. */
const buildingPid = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ pid: number }>`SELECT pid FROM pg_stat_activity
      WHERE query LIKE 'CREATE INDEX CONCURRENTLY%idx_orders_amount%' AND state = 'active' AND wait_event_type = 'Lock'`,
    (rows) => (rows[0] === undefined ? undefined : Number(rows[0].pid))
  ))

const indexValidity = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql<{ valid: boolean }>`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE i.indrelid = to_regclass('orders') AND c.relname = 'idx_orders_amount'`,
    (rows) => rows.map((r) => r.valid)
  ))

describePg("a runner killed during a concurrent index build (PostgreSQL)", () => {
  it.scopedLive("leaves the migration applied and an INVALID index that status shows and the next run rebuilds", () =>
    Effect.gen(function*() {
      assertBuildIsFresh()
      const { url } = yield* pgTestUrlWithSchema()
      const open = () => Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const holder = yield* open()
      const app = yield* open()
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([
          sql`CREATE TABLE orders (order_id BIGINT PRIMARY KEY, amount BIGINT NOT NULL)`,
          sql`INSERT INTO orders SELECT n, n * 10 FROM generate_series(1, 5000) AS n`
        ])).pipe(Effect.provide(holder))

      const held = yield* openTransaction(holder, "INSERT INTO orders VALUES (9001, 1)")

      const directory = yield* tempDirectory
      const planFile = Path.join(directory, "plan.json")
      Fs.writeFileSync(planFile, JSON.stringify(Plan.toJson(plan)))
      const goFile = Path.join(directory, "go")
      Fs.writeFileSync(goFile, "")
      const child = spawn(process.execPath, [
        childScript,
        url,
        planFile,
        Path.join(directory, "ready"),
        goFile,
        Path.join(directory, "result.json")
      ], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { ...process.env, STRATA_MIGRATOR_OPTIONS: JSON.stringify({ concurrentIndexMinBytes: 0 }) }
      })
      const exited = yield* Deferred.make<number | null>()
      child.on("close", (code, signal) => Effect.runSync(Deferred.succeed(exited, signal === "SIGKILL" ? -9 : code)))
      yield* Effect.addFinalizer(() => Effect.sync(() => child.kill("SIGKILL")))

      // The child's build is under way, waiting for the app's open transaction.
      expect(yield* waitUntil(Effect.map(Effect.provide(buildingPid, app), (pid) => pid !== undefined))).toBe(true)
      expect(yield* Effect.provide(indexValidity, app)).toEqual([false])
      const pid = yield* Effect.provide(buildingPid, app)
      child.kill("SIGKILL")
      expect(yield* Deferred.await(exited)).toBe(-9)
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT pg_terminate_backend(${pid!})`).pipe(Effect.provide(app))
      yield* held.release
      expect(yield* waitUntil(Effect.map(Effect.provide(buildingPid, app), (p) => p === undefined))).toBe(true)

      // Applied, its index INVALID: status says so.
      expect(yield* Effect.provide(indexValidity, app)).toEqual([false])
      const migrator = yield* Effect.provide(Migrator.make(plan, { concurrentIndexMinBytes: 0 }), app)
      const status = yield* migrator.status()
      expect(status.migrations.map((m) => [m.id, m.state])).toEqual([[1, "applied"]])
      expect(status.indexes.map((i) => [i.name, i.table, i.state])).toEqual([["idx_orders_amount", "orders", "invalid"]])
      // One attempt, or more if the child's build met its 2 s lock_timeout (and retried) before the kill.
      const attempts = status.indexes[0]!.attempts
      expect(attempts).toBeGreaterThanOrEqual(1)

      // The re-run drops the INVALID index and builds it again.
      const rerun = yield* migrator.run()
      expect(rerun.applied).toEqual([])
      expect(rerun.alreadyApplied).toEqual([1])
      expect(rerun.indexes.map((i) => [i.name, i.rebuiltInvalid])).toEqual([["idx_orders_amount", true]])
      expect(yield* Effect.provide(indexValidity, app)).toEqual([true])
      const after = yield* migrator.status()
      expect(after.indexes.map((i) => [i.name, i.state, i.attempts])).toEqual([["idx_orders_amount", "valid", attempts + 1]])
      // The index works: the planner can use it for the column.
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ n: number }>`SELECT count(*)::int AS n FROM orders WHERE amount = 10`)
        .pipe(Effect.provide(app))
      expect(Number(rows[0]?.n)).toBe(1)
    }), 60_000)
})
