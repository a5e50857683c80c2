/**
 * Issue 17 item 8: a shadow goes stale when an old app version updates its source after the
 * backfill; `Verifier.repair` rewrites the recomputed value only where the target still holds the
 * stale value it was checked against (and the source is as it was read), so a concurrent write by
 * the app wins. Both engines, on the app's own camelCase client; on PostgreSQL also with the app's
 * write really concurrent (holding the row while the repair waits for it).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Backfill, Checks, Plan, Plans, type Timestamp } from "@strata/core"
import { createLegacyTables, insertFixture, presetTargets, readState } from "../../../test/fixtures/agentosLegacy.js"
import { Deferred, Effect, Fiber, Layer, TestClock } from "effect"
import { describeEachEngine, describePg, pgTestUrlWithSchema } from "../../../test/support/databases.js"
import { inspectJob, selectList } from "../src/internal/jobTable.js"
import { applyRepairs, planRepairs } from "../src/internal/repair.js"
import { BackfillRunner, Database, Migrator, Verifier } from "../src/index.js"

const NOW = 1767225600000
const NOON = 1705320000000 // 2024-01-15 12:00:00 UTC
const HOUR = 3600000

const plan = Plan.make("events", [Plan.migration(1, "times", [Plan.epochShadow("events", "happened_at")])])

/** Five events backfilled; then an old app version moves 2 and 3 an hour on without touching the shadow. */
const staleEvents = Database.withStrataClient(Effect.gen(function*() {
  yield* TestClock.setTime(NOW)
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)`)
  yield* sql.unsafe(`INSERT INTO events (id, happened_at) VALUES
    (1, '2024-01-15 12:00:00'), (2, '2024-01-15 12:00:00'), (3, '2024-01-15 12:00:00'), (4, 'garbage'), (5, NULL)`)
  yield* Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())
  yield* Effect.flatMap(BackfillRunner.make(plan), (runner) => runner.run())
  yield* sql.unsafe(`UPDATE events SET happened_at = '2024-01-15 13:00:00' WHERE id IN (2, 3)`)
}))

const stored = Database.withStrataClient(Effect.flatMap(SqlClient.SqlClient, (sql) =>
  Effect.map(
    sql.unsafe<{ id: number; happened_at_ms: number | string | null }>(`SELECT id, happened_at_ms FROM events ORDER BY id`),
    (rows) => rows.map((r) => (r.happened_at_ms === null ? null : Number(r.happened_at_ms)))
  )))

const mismatch = (report: Verifier.VerificationReport) => report.checks.find((c) => c.kind === "mismatch")!

describeEachEngine("Verifier.repair", (engine) => {
  it.effect("rewrites stale values from the current source, reports them, and leaves every other row alone", () =>
    Effect.gen(function*() {
      yield* staleEvents
      // Someone also wrote a wrong value by hand into row 1: a mismatch too.
      yield* Database.withStrataClient(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`UPDATE events SET happened_at_ms = 42 WHERE id = 1`)))
      const before = yield* Verifier.report()
      expect([mismatch(before).status, mismatch(before).count, mismatch(before).sampleKeys]).toEqual(["fail", 3, ["1", "2", "3"]])
      expect(yield* stored).toEqual([42, NOON, NOON, null, null])

      const repaired = yield* Verifier.repair()
      expect(repaired.verification).toEqual(before)
      expect(repaired.columns).toEqual([{
        job: "events.happened_at_ms",
        table: "events",
        column: "happened_at_ms",
        mismatched: 3,
        repaired: 3,
        skipped: 0,
        repairedKeys: ["1", "2", "3"],
        skippedKeys: []
      }])
      expect([repaired.repaired, repaired.skipped]).toEqual([3, 0])
      // The reject (garbage) and the NULL source are not repairs: left as they were.
      expect(yield* stored).toEqual([NOON, NOON + HOUR, NOON + HOUR, null, null])
      const after = yield* Verifier.run()
      expect(mismatch(after).count).toBe(0)
      // Nothing left to repair: a second repair writes nothing.
      expect([(yield* Verifier.repair()).repaired, (yield* Verifier.repair()).skipped]).toEqual([0, 0])
    }).pipe(Effect.provide(Verifier.layer(plan).pipe(Layer.provideMerge(engine.appLayer({ camelCase: true }))))))

  it.effect("the agentos fixture: text keys, a JSON payload with two targets; only the mismatches are rewritten", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      yield* createLegacyTables
      yield* insertFixture
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (migrator) => migrator.run())
      yield* presetTargets
      yield* Effect.flatMap(BackfillRunner.make(Plans.agentos), (runner) => runner.run())
      const before = yield* readState
      const repaired = yield* Effect.flatMap(Verifier.make(Plans.agentos), (verifier) => verifier.repair())
      expect(repaired.columns.filter((c) => c.mismatched > 0)).toEqual([
        { job: "task_audits.payload", table: "task_audits", column: "source_event_ts", mismatched: 1, repaired: 1, skipped: 0, repairedKeys: ["18"], skippedKeys: [] },
        { job: "chat_messages.created_at_ms", table: "chat_messages", column: "created_at_ms", mismatched: 1, repaired: 1, skipped: 0, repairedKeys: ["m16"], skippedKeys: [] }
      ])
      const after = yield* readState
      // Exactly two values changed: the preset 7 and 42 became what their sources say.
      expect(after["task_audits"]!["18"]).toEqual({ ...before["task_audits"]!["18"], source_event_ts: 1705312800000 })
      expect(after["chat_messages"]!["m16"]).toEqual({ created_at_ms: NOON })
      expect({ ...after, task_audits: { ...after["task_audits"], "18": before["task_audits"]!["18"] }, chat_messages: { ...after["chat_messages"], m16: before["chat_messages"]!["m16"] } })
        .toEqual(before)
      expect((yield* Effect.flatMap(Verifier.make(Plans.agentos), (verifier) => verifier.run())).passed).toBe(true)
    }).pipe(Effect.provide(engine.layer())))

  it.effect("a write between the check and the repair wins: the target or the source changed, the row is skipped", () =>
    Effect.gen(function*() {
      yield* staleEvents
      const sql = (yield* SqlClient.SqlClient).withoutTransforms()
      const job = Backfill.jobs(plan)[0]!
      const table = yield* inspectJob(job)
      // Row 1 is wrong too, and nobody touches it meanwhile: its repair must land.
      yield* sql.unsafe(`UPDATE events SET happened_at_ms = 42 WHERE id = 1`)
      // The Verifier's check: read the rows and plan the repairs of the mismatched ones (2 and 3).
      const rows = yield* sql.unsafe<Record<string, unknown>>(`SELECT ${selectList(table)} FROM events ORDER BY id`)
      const checks = Checks.forJob(job)
      const planned = rows.flatMap((row) =>
        planRepairs(table, row, Checks.verdict(checks, row, { min: 0, max: NOW } as Timestamp.Range).targets.filter((t) => t.outcome === "mismatch").map((t) => t.column))
      )
      expect(planned.map((p) => [p.key, Number(p.stale), p.value])).toEqual([["1", 42, NOON], ["2", NOON, NOON + HOUR], ["3", NOON, NOON + HOUR]])
      // Meanwhile the app writes: row 2's shadow itself, row 3's source once more.
      yield* sql.unsafe(`UPDATE events SET happened_at_ms = 777 WHERE id = 2`)
      yield* sql.unsafe(`UPDATE events SET happened_at = '2024-01-15 14:00:00' WHERE id = 3`)
      const written = yield* sql.withTransaction(applyRepairs(table, planned))
      expect(written).toEqual([true, false, false])
      expect(yield* stored).toEqual([NOON, 777, NOON, null, null])
    }).pipe(Effect.provide(engine.layer())))
})

describePg("Verifier.repair against a concurrent app write [pg]", () => {
  it.scoped("the app's transaction holds the row; the repair waits for it, then skips it, and the app's value stays", () =>
    Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      const verifierLayer = Verifier.layer(plan).pipe(Layer.provideMerge(Database.layer({ url })))
      yield* Effect.gen(function*() {
        yield* staleEvents
        const sql = yield* SqlClient.SqlClient
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        // The app, on a connection of its own: a new value for row 2's shadow, not yet committed.
        const app = yield* Effect.gen(function*() {
          const appSql = yield* SqlClient.SqlClient
          yield* appSql.withTransaction(Effect.gen(function*() {
            yield* appSql.unsafe(`UPDATE events SET happened_at_ms = 777 WHERE id = 2`)
            yield* Deferred.succeed(locked, undefined)
            yield* Deferred.await(release)
          }))
        }).pipe(Effect.provide(Database.layer({ url, maxConnections: 1 })), Effect.orDie, Effect.fork)
        yield* Deferred.await(locked)
        const repairing = yield* Effect.fork(Verifier.repair())
        // Until the repair's UPDATE of row 2 waits for the app's lock.
        yield* Effect.repeat(
          sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE "events"%'`),
          { until: (rows) => rows[0]!.n > 0 }
        )
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(app)
        const repaired = yield* Fiber.join(repairing)
        expect(repaired.columns.map((c) => [c.mismatched, c.repaired, c.skipped, c.repairedKeys, c.skippedKeys])).toEqual([[2, 1, 1, ["3"], ["2"]]])
        expect(yield* stored).toEqual([NOON, 777, NOON + HOUR, null, null])
      }).pipe(Effect.provide(verifierLayer))
    }), 60_000)
})
