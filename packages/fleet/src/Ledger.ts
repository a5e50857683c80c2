/**
 * The fleet ledger: an index of what each target of a fleet has done, so an interrupted or killed
 * fleet run resumes where it stopped, and `strata fleet status` can tell which targets are behind,
 * drifted or failed without guessing.
 *
 * It lives in a database of its own (by default a SQLite file next to the targets file; any
 * SQLite path or PostgreSQL URL otherwise) in three tables:
 * - `strata_fleet_runs`: one row per fleet run (operation, plan, plan fingerprint, targets file,
 *   state `running` | `finished`);
 * - `strata_fleet_targets`: one row per target of a run (state `pending` | `running` | `done` |
 *   `failed` | `skipped`, migrations applied, jobs done, rows, rejects, the failure's one-line reason);
 * - `strata_fleet_migrations`: one row per migration a target has applied (id, name, checksum,
 *   when the target applied it), copied from the target's own `strata_migrations`.
 *
 * Each target's own strata tables stay the source of truth: migrations are applied (once, under
 * the target's lock) by the Migrator, backfill cursors live in the target's `strata_jobs`. The
 * ledger only records what those say, after the fact, and is reconciled from them on every visit;
 * a ledger row is never a reason to skip work a target has not recorded as done.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Database, SqlErrors } from "@strata/sql"
import { Clock, Context, Effect, Layer, Random, Schema } from "effect"
import type { AppliedRecord } from "./internal/targetWork.js"
import type { Target } from "./Targets.js"

/**
 * The ledger's database failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class LedgerError extends Schema.TaggedError<LedgerError>()("LedgerError", {
  operation: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    // The driver's own words (a SqlError's message alone is "Failed to execute statement").
    return `fleet ledger: ${this.operation} failed: ${SqlErrors.failureText(this.cause)}`
  }
}

/**
 * What a fleet run does to each target.
 *
 * @since 0.1.0
 * @category models
 */
export type Operation = "migrate" | "backfill" | "verify"

/**
 * A target's state in one run.
 *
 * @since 0.1.0
 * @category models
 */
export type TargetState = "pending" | "running" | "done" | "failed" | "skipped"

/**
 * A target's record in one run.
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetRecord {
  readonly runId: string
  readonly operation: Operation
  readonly target: string
  readonly display: string
  readonly position: number
  readonly state: TargetState
  readonly migrationsApplied: number
  readonly jobsDone: number
  readonly rows: number
  readonly rejects: number
  readonly reason: string | null
  /** How many times the target failed in this run (each retry is a new attempt). */
  readonly failures: number
  readonly updatedAtMs: number
}

/**
 * The counts a finished target reports.
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetCounts {
  readonly migrationsApplied: number
  readonly jobsDone: number
  readonly rows: number
  readonly rejects: number
}

/**
 * A run opened by `openRun`: new, or the unfinished run of the same operation, plan and targets it resumes.
 *
 * @since 0.1.0
 * @category models
 */
export interface OpenedRun {
  readonly runId: string
  readonly resumed: boolean
  /** Target ids the resumed run had already finished (done), which this run skips. */
  readonly done: ReadonlySet<string>
  /** The finished records of those targets, for the summary. */
  readonly doneRecords: ReadonlyArray<TargetRecord>
}

/**
 * A migration the ledger has recorded for a target.
 *
 * @since 0.1.0
 * @category models
 */
export interface LedgerMigration extends AppliedRecord {
  readonly target: string
}

/**
 * The ledger's operations.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ledger {
  /** Resumes the unfinished run of this operation, plan fingerprint and targets file, or starts one. */
  readonly openRun: (options: {
    readonly operation: Operation
    readonly plan: string
    readonly fingerprint: string
    readonly targetsFile: string
    readonly targets: ReadonlyArray<Target>
  }) => Effect.Effect<OpenedRun, LedgerError>
  readonly targetStarted: (runId: string, target: Target) => Effect.Effect<void, LedgerError>
  readonly targetFinished: (
    runId: string,
    target: Target,
    state: "done" | "failed" | "skipped",
    counts: TargetCounts,
    reason: string | undefined
  ) => Effect.Effect<void, LedgerError>
  /** Copies a target's applied migrations into the ledger (rows already there are kept as they are). */
  readonly recordMigrations: (target: Target, history: ReadonlyArray<AppliedRecord>) => Effect.Effect<void, LedgerError>
  readonly finishRun: (runId: string) => Effect.Effect<void, LedgerError>
  /** Every record of a run, in target order. */
  readonly runTargets: (runId: string) => Effect.Effect<ReadonlyArray<TargetRecord>, LedgerError>
  /** Each target's latest record (any run, any operation), by target id. */
  readonly latest: Effect.Effect<ReadonlyMap<string, ReadonlyArray<TargetRecord>>, LedgerError>
  /** The migrations recorded for a target, by id. */
  readonly migrations: (target: string) => Effect.Effect<ReadonlyArray<LedgerMigration>, LedgerError>
}

/**
 * The ledger service.
 *
 * @since 0.1.0
 * @category tags
 */
export const Ledger = Context.GenericTag<Ledger>("@strata/fleet/Ledger")

const ddl = [
  `CREATE TABLE IF NOT EXISTS strata_fleet_runs (
    run_id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    plan TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    targets_file TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
  )`,
  `CREATE TABLE IF NOT EXISTS strata_fleet_targets (
    run_id TEXT NOT NULL,
    target TEXT NOT NULL,
    display TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL,
    migrations_applied INTEGER NOT NULL DEFAULT 0,
    jobs_done INTEGER NOT NULL DEFAULT 0,
    rows_done BIGINT NOT NULL DEFAULT 0,
    rejects BIGINT NOT NULL DEFAULT 0,
    reason TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, target)
  )`,
  `CREATE TABLE IF NOT EXISTS strata_fleet_migrations (
    target TEXT NOT NULL,
    migration_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL,
    recorded_at_ms BIGINT NOT NULL,
    PRIMARY KEY (target, migration_id)
  )`
]

interface TargetRow {
  readonly run_id: string
  readonly operation: Operation
  readonly target: string
  readonly display: string
  readonly position: number
  readonly state: TargetState
  readonly migrations_applied: number
  readonly jobs_done: number
  readonly rows_done: number
  readonly rejects: number
  readonly reason: string | null
  readonly failures: number
  readonly updated_at_ms: number
}

const toRecord = (row: TargetRow): TargetRecord => ({
  runId: row.run_id,
  operation: row.operation,
  target: row.target,
  display: row.display,
  position: Number(row.position),
  state: row.state,
  migrationsApplied: Number(row.migrations_applied),
  jobsDone: Number(row.jobs_done),
  rows: Number(row.rows_done),
  rejects: Number(row.rejects),
  reason: row.reason,
  failures: Number(row.failures),
  updatedAtMs: Number(row.updated_at_ms)
})

const targetColumns = `t.run_id, r.operation, t.target, t.display, t.position, t.state, t.migrations_applied, t.jobs_done,
  t.rows_done, t.rejects, t.reason, t.failures, t.updated_at_ms`

/**
 * The ledger over the `SqlClient` in context (its tables are created when missing).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<Ledger, LedgerError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* Database.strataClient
  const fail = (operation: string) => (cause: SqlError) => new LedgerError({ operation, cause })
  // Workers started together create the tables together: they take turns (see Database.createInTurn).
  const create = Effect.forEach(ddl, (statement) => sql.unsafe(statement), { discard: true })
  yield* Database.createInTurn("strata.fleet.ledgerTables", create).pipe(
    Effect.provideService(SqlClient.SqlClient, sql),
    Effect.mapError(fail("creating the ledger tables"))
  )

  const runTargets = (runId: string) =>
    sql<TargetRow>`SELECT ${sql.literal(targetColumns)} FROM strata_fleet_targets t JOIN strata_fleet_runs r ON r.run_id = t.run_id
      WHERE t.run_id = ${runId} ORDER BY t.position`.pipe(Effect.map((rows) => rows.map(toRecord)), Effect.mapError(fail("reading a run")))

  const openRun: Ledger["openRun"] = ({ fingerprint, operation, plan, targets, targetsFile }) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const unfinished = yield* sql<{ readonly run_id: string }>`
        SELECT run_id FROM strata_fleet_runs
        WHERE operation = ${operation} AND fingerprint = ${fingerprint} AND targets_file = ${targetsFile} AND state = 'running'
        ORDER BY started_at_ms DESC LIMIT 1`
      let runId = unfinished[0]?.run_id
      const resumed = runId !== undefined
      if (runId === undefined) {
        runId = `${now.toString(36)}-${(yield* Random.nextIntBetween(0, 36 ** 6)).toString(36).padStart(6, "0")}`
        yield* sql`INSERT INTO strata_fleet_runs (run_id, operation, plan, fingerprint, targets_file, state, started_at_ms)
          VALUES (${runId}, ${operation}, ${plan}, ${fingerprint}, ${targetsFile}, 'running', ${now})`
      }
      const id = runId
      yield* sql.withTransaction(
        Effect.forEach(targets, (target, position) =>
          sql`INSERT INTO strata_fleet_targets (run_id, target, display, position, state, updated_at_ms)
            VALUES (${id}, ${target.id}, ${target.display}, ${position}, 'pending', ${now})
            ON CONFLICT (run_id, target) DO UPDATE SET position = excluded.position`, { discard: true })
      )
      const records = yield* runTargets(id)
      const wanted = new Set(targets.map((t) => t.id))
      const doneRecords = records.filter((r) => r.state === "done" && wanted.has(r.target))
      return { runId: id, resumed, done: new Set(doneRecords.map((r) => r.target)), doneRecords }
    }).pipe(Effect.mapError((e) => (e instanceof LedgerError ? e : fail("opening a run")(e))))

  const targetStarted: Ledger["targetStarted"] = (runId, target) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* sql`UPDATE strata_fleet_targets SET state = 'running', reason = NULL, updated_at_ms = ${now}
        WHERE run_id = ${runId} AND target = ${target.id}`
    }).pipe(Effect.mapError(fail("recording a target's start")))

  const targetFinished: Ledger["targetFinished"] = (runId, target, state, counts, reason) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* sql`UPDATE strata_fleet_targets SET state = ${state}, migrations_applied = ${counts.migrationsApplied},
          jobs_done = ${counts.jobsDone}, rows_done = ${counts.rows}, rejects = ${counts.rejects}, reason = ${reason ?? null},
          failures = failures + ${state === "failed" ? 1 : 0}, updated_at_ms = ${now}
        WHERE run_id = ${runId} AND target = ${target.id}`
    }).pipe(Effect.mapError(fail("recording a target's end")))

  const recordMigrations: Ledger["recordMigrations"] = (target, history) =>
    Effect.gen(function*() {
      if (history.length === 0) return
      const now = yield* Clock.currentTimeMillis
      yield* sql.withTransaction(
        Effect.forEach(history, (m) =>
          sql`INSERT INTO strata_fleet_migrations (target, migration_id, name, checksum, applied_at_ms, recorded_at_ms)
            VALUES (${target.id}, ${m.id}, ${m.name}, ${m.checksum}, ${m.appliedAtMs}, ${now})
            ON CONFLICT (target, migration_id) DO NOTHING`, { discard: true })
      )
    }).pipe(Effect.mapError(fail("recording migrations")))

  const finishRun: Ledger["finishRun"] = (runId) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* sql`UPDATE strata_fleet_runs SET state = 'finished', finished_at_ms = ${now} WHERE run_id = ${runId}`
    }).pipe(Effect.mapError(fail("finishing a run")))

  const latest: Ledger["latest"] = sql.unsafe<TargetRow>(
    `SELECT ${targetColumns} FROM strata_fleet_targets t JOIN strata_fleet_runs r ON r.run_id = t.run_id
     ORDER BY t.updated_at_ms, t.run_id`
  ).pipe(
    Effect.map((rows) => {
      // Per target, the latest record of each operation, in operation order.
      const byTarget = new Map<string, Map<Operation, TargetRecord>>()
      for (const row of rows) {
        const record = toRecord(row)
        const operations = byTarget.get(record.target) ?? new Map<Operation, TargetRecord>()
        operations.set(record.operation, record)
        byTarget.set(record.target, operations)
      }
      return new Map([...byTarget].map(([target, operations]) => [target, [...operations.values()]]))
    }),
    Effect.mapError(fail("reading the latest records"))
  )

  const migrations: Ledger["migrations"] = (target) =>
    sql<{ readonly migration_id: number; readonly name: string; readonly checksum: string; readonly applied_at_ms: number }>`
      SELECT migration_id, name, checksum, applied_at_ms FROM strata_fleet_migrations WHERE target = ${target} ORDER BY migration_id`.pipe(
      Effect.map((rows) =>
        rows.map((r) => ({ target, id: Number(r.migration_id), name: r.name, checksum: r.checksum, appliedAtMs: Number(r.applied_at_ms) }))
      ),
      Effect.mapError(fail("reading recorded migrations"))
    )

  return { openRun, targetStarted, targetFinished, recordMigrations, finishRun, runTargets, latest, migrations }
})

/**
 * The ledger in the database at `url` (a SQLite path or a PostgreSQL URL, see `Database.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (url: string): Layer.Layer<Ledger, LedgerError | Database.DatabaseError> =>
  Layer.effect(Ledger, make).pipe(Layer.provide(Database.layer({ url, applicationName: "strata fleet ledger" })))

/**
 * The default ledger of a targets file: `<name>.fleet.db` next to it (`tenants.txt` → `tenants.fleet.db`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultLocation = (targetsFile: string): string => {
  const slash = Math.max(targetsFile.lastIndexOf("/"), targetsFile.lastIndexOf("\\"))
  const dot = targetsFile.lastIndexOf(".")
  const stem = dot > slash + 1 ? targetsFile.slice(0, dot) : targetsFile
  return `${stem}.fleet.db`
}
