/**
 * The contract phase: a `Plan.contract` migration applies only once `verify` has passed for the
 * jobs it names (recorded in `strata_verifications`), after their last run; then it drops the sync
 * trigger, makes the target NOT NULL and drops the source (on PostgreSQL the trigger and the source
 * go once the NOT NULL holds).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Cause, Effect, Exit, Layer, TestClock } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator, Verifier, Verifications } from "../src/index.js"

const job = "events.created_at_ms"

const plan = (contract: Parameters<typeof Plan.contract>[0] = { jobs: [job], dropSyncTrigger: true, notNull: true }) =>
  Plan.make("events", [
    Plan.migration(1, "events", [
      Plan.createTable("events", [
        { name: "event_id", type: "integer", primaryKey: true },
        { name: "created_at", type: "timestamp_text" },
        { name: "title", type: "text" }
      ])
    ]),
    Plan.migration(2, "epoch ms", [Plan.epochShadow("events", "created_at", { sync: "trigger" })]),
    Plan.migration(3, "contract", [Plan.contract(contract)])
  ])

const migrate = (p: Plan.Plan, to?: number) => Migrator.run({ to }).pipe(Effect.provide(Migrator.layer(p)))
const backfill = (p: Plan.Plan, restart = false) =>
  BackfillRunner.run({ restart }).pipe(Effect.provide(BackfillRunner.layer(p).pipe(Layer.orDie)))
const verify = (p: Plan.Plan) => Verifier.report().pipe(Effect.provide(Verifier.layer(p)))

const appliedIds = Effect.gen(function*() {
  const sql = (yield* SqlClient.SqlClient).withoutTransforms()
  return (yield* sql<{ id: number }>`SELECT id FROM strata_migrations ORDER BY id`).map((r) => Number(r.id))
})

const refusal = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.exit(effect), (exit) => {
    if (Exit.isSuccess(exit)) throw new Error("expected a refusal")
    const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
    if (error === undefined) throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
    return error as E
  })

const syncTriggers = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return (yield* Database.dialect) === "sqlite"
    ? yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'strata_sync%'`
    : yield* sql<{ name: string }>`SELECT tgname AS name FROM pg_trigger WHERE tgname LIKE 'strata_sync%'`
})

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`INSERT INTO events (event_id, created_at, title) VALUES (1, '2024-01-15 12:00:00', 'a'), (2, '2024-01-15T12:00:00Z', 'b')`
})

describeEachEngine("contract phase", (engine) => {
  it.effect("refused before verify, after a failed verify and after the job ran again; applied after a passing verify", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const p = plan()
      yield* migrate(p, 2)
      yield* seed

      // Never verified: refused up front, with the job named; nothing applied, the trigger still works.
      const never = yield* refusal(migrate(p))
      expect(never._tag).toBe("ContractUnverified")
      expect(never).toMatchObject({ migrationId: 3, jobs: [{ job, reason: "never-verified", checkedAtMs: null }] })
      expect((never as Migrator.ContractUnverified).message).toBe(
        `Migration 3 "contract" of plan events is a contract and was not applied, nothing was changed: ${job} was never verified; backfill and verify (strata verify) the job first`
      )
      expect((yield* refusal(Migrator.dryRun().pipe(Effect.provide(Migrator.layer(p)))))._tag).toBe("ContractUnverified")
      const validation = yield* Migrator.validate().pipe(Effect.provide(Migrator.layer(p)))
      expect([validation.ok, validation.refusal?._tag, validation.refusal?.message]).toEqual([false, "ContractUnverified", never.message])
      expect(yield* appliedIds).toEqual([1, 2])

      // Verified before the backfill: rows are missing, so it fails, and the gate says which checks.
      yield* TestClock.adjust("1 second")
      expect((yield* verify(p)).passed).toBe(false)
      const failed = yield* refusal(migrate(p))
      expect(failed).toMatchObject({ jobs: [{ job, reason: "failed", failedChecks: ["events.created_at_ms missing"] }] })
      expect(yield* appliedIds).toEqual([1, 2])

      yield* TestClock.adjust("1 second")
      yield* backfill(p)
      yield* TestClock.adjust("1 second")
      const passed = yield* verify(p)
      expect(passed.passed).toBe(true)
      const recorded = yield* Verifications.latest("events", [job])
      expect(recorded.get(job)).toMatchObject({ passed: true, rows: 2, mismatches: 0, checkedAtMs: passed.checkedAtMs })

      // The job ran after the verification: it no longer proves the data.
      yield* TestClock.adjust("1 second")
      yield* backfill(p, true)
      const stale = yield* refusal(migrate(p))
      expect(stale).toMatchObject({ jobs: [{ job, reason: "ran-since", checkedAtMs: passed.checkedAtMs }] })
      expect(stale.message).toContain(`${job} ran after its latest verification`)

      yield* TestClock.adjust("1 second")
      expect((yield* verify(p)).passed).toBe(true)
      const dry = yield* Migrator.dryRun().pipe(Effect.provide(Migrator.layer(p)))
      expect(dry.pending.map((m) => m.id)).toEqual([3])
      const result = yield* migrate(p)
      expect(result.applied.map((m) => m.id)).toEqual([3])
      expect(yield* appliedIds).toEqual([1, 2, 3])

      // No trigger any more; NOT NULL holds for every writer.
      expect(yield* syncTriggers).toEqual([])
      const nullInsert = yield* Effect.exit(sql`INSERT INTO events (event_id, created_at, title) VALUES (3, '2024-01-15 12:00:00', 'c')`)
      expect(Exit.isFailure(nullInsert)).toBe(true)
      expect(Exit.isFailure(nullInsert) ? String((Cause.squash(nullInsert.cause) as { cause?: unknown }).cause) : "").toMatch(/NOT NULL constraint failed: events\.created_at_ms|null value in column "created_at_ms"/)
      const nullUpdate = yield* Effect.exit(sql`UPDATE events SET created_at_ms = NULL WHERE event_id = 1`)
      expect(Exit.isFailure(nullUpdate)).toBe(true)
      if (engine.name === "pg") {
        const notNull = yield* sql<{ isNullable: string }>`
          SELECT is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'created_at_ms'`
        expect(notNull).toEqual([{ isNullable: "NO" }])
      }
    }).pipe(Effect.provide(engine.appLayer({ camelCase: true }))))

  it.effect("verified for another version of the job's migration does not count; NOT NULL refused by a NULL row (SQLite: rolled back; PostgreSQL: applied, CHECK NOT VALID, sync trigger and source kept, finished once the row is fixed); dropSource drops the column", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const p = plan({ jobs: [job], notNull: true, dropSource: true, dropSyncTrigger: true })
      yield* migrate(p, 2)
      yield* seed
      yield* backfill(p)
      // A verification recorded under another checksum of migration 2 (an edited plan) is not this one's.
      yield* Verifications.record([{ plan: "events", job, passed: true, checkedAtMs: 5, rows: 2, mismatches: 0, failedChecks: [], checksum: "0000000000000000" }])
      expect(yield* refusal(migrate(p))).toMatchObject({ jobs: [{ job, reason: "migration-changed" }] })

      // A row whose source is NULL verifies (NULL is its answer) but cannot be NOT NULL: the migration fails, all of it rolled back.
      yield* sql`INSERT INTO events (event_id, created_at, title) VALUES (3, NULL, 'c')`
      yield* TestClock.adjust("1 second")
      expect((yield* verify(p)).passed).toBe(true)
      const notNull = yield* refusal(migrate(p))
      const dialect = yield* Database.dialect
      const columns = () =>
        dialect === "sqlite"
          ? sql<{ name: string }>`SELECT name FROM pragma_table_info('events') ORDER BY cid`
          : sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'events' ORDER BY ordinal_position`
      if (dialect === "sqlite") {
        expect(notNull._tag).toBe("MigrationFailed")
        expect(yield* appliedIds).toEqual([1, 2])
      } else {
        // PostgreSQL: the migration committed with the CHECK NOT VALID; its validation, after the
        // commit, found the row. The source is dropped only once the NOT NULL holds.
        expect(notNull).toMatchObject({
          _tag: "ConstraintValidationFailed",
          id: 3,
          kind: "notNull",
          table: "events",
          column: "created_at_ms",
          constraint: "strata_nn_events_created_at_ms"
        })
        expect(notNull.message).toContain(`The NOT NULL constraint strata_nn_events_created_at_ms on events.created_at_ms (migration 3 of plan events, which stays applied) does not hold for existing rows`)
        expect(yield* appliedIds).toEqual([1, 2, 3])
        const status = yield* Migrator.status().pipe(Effect.provide(Migrator.layer(p)))
        expect(status.constraints.map((c) => [c.migrationId, c.kind, c.name, c.state])).toEqual([[3, "notNull", "strata_nn_events_created_at_ms", "notValid"]])
        // New rows are checked already.
        expect(Exit.isFailure(yield* Effect.exit(sql`INSERT INTO events (event_id, created_at, title) VALUES (4, NULL, 'd')`))).toBe(true)
      }
      expect(yield* sql<{ event_id: number; created_at_ms: unknown }>`SELECT event_id, created_at_ms FROM events WHERE event_id = 3`).toEqual([
        { event_id: 3, created_at_ms: null }
      ])
      // Until the NOT NULL holds the sync trigger stays (on PostgreSQL it is dropped with the NOT NULL's
      // finish): a row an old app version inserts with the source only still gets its target, which the
      // NOT VALID CHECK would otherwise refuse.
      yield* sql`INSERT INTO events (event_id, created_at, title) VALUES (5, '2024-01-15 12:00:00', 'e')`
      expect((yield* sql<{ created_at_ms: unknown }>`SELECT created_at_ms FROM events WHERE event_id = 5`).map((r) => Number(r.created_at_ms))).toEqual([1705320000000])
      expect(yield* syncTriggers).not.toEqual([])
      expect((yield* columns()).map((c) => c.name)).toEqual(["event_id", "created_at", "title", "created_at_ms"])

      yield* sql`DELETE FROM events WHERE event_id = 3`
      yield* TestClock.adjust("1 second")
      expect((yield* verify(p)).passed).toBe(true)
      const done = yield* migrate(p)
      expect(done.constraints.map((c) => c.name)).toEqual(dialect === "pg" ? ["strata_nn_events_created_at_ms"] : [])
      expect((yield* columns()).map((c) => c.name)).toEqual(["event_id", "title", "created_at_ms"])
      expect(yield* syncTriggers).toEqual([])
      if (dialect === "pg") {
        const notNullColumn = yield* sql<{ isNullable: string }>`
          SELECT is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'created_at_ms'`
        expect(notNullColumn).toEqual([{ is_nullable: "NO" }])
        const checks = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_constraint WHERE conname = 'strata_nn_events_created_at_ms'`
        expect(checks).toEqual([{ n: 0 }])
      }
    }).pipe(Effect.provide(engine.layer())))
})
