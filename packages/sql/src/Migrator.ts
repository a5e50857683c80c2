/**
 * Applies a plan's migrations to a live database: each migration in its own transaction under a
 * cross-process lock (so concurrent runners apply each exactly once), recorded with its checksum
 * in `strata_migrations`; status, drift detection, dry run and baseline; typed errors, never defects.
 *
 * Rules (what `run` refuses, and why):
 * - A migration recorded with a checksum other than the plan's is drift (`MigrationDrifted`):
 *   `run`, `dryRun` and `baseline` refuse before changing anything, whatever `to` is, because the
 *   plan no longer describes the database. Restore the applied steps and add a new migration.
 * - A row for this plan whose id is not in the plan is unknown. Below a pending migration it means
 *   the plan lost a migration the database has: `run` refuses (`UnknownMigrationApplied`). Above
 *   every pending migration (a newer plan version migrated this database) it is tolerated when
 *   nothing is pending, and reported by `status`.
 * - Migrations apply in id order: a pending migration below an applied one is `MigrationOutOfOrder`
 *   (give it a later id, or `baseline` it if the database already has it).
 * - Before changing anything (even before creating `strata_migrations`), `run` and `dryRun` check
 *   every pending step against the live schema (`PreflightFailed`, each problem naming the migration
 *   and `table.column`): tables exist or are created earlier in the plan; columns a step reads exist
 *   with a type it can read; columns it adds are absent or present with the type strata declares
 *   (a re-run); each backfill job has a batch key. `validate` reports the same, with drift and
 *   pending migrations, for a CI gate.
 * - A pending migration with a contract step (`Plan.contract`) is refused before anything changes
 *   (`ContractUnverified`, by `run` and `dryRun`) unless every job it names has a latest recorded
 *   verification (`Verifications`, written by every `Verifier.report`) that passed, is of the job's
 *   migration as the plan has it now, and is no older than the job's last run.
 * - `baseline(id)` records the plan's migrations up to `id` as applied without running them
 *   (`durationMs` null), leaves already-applied ones as they are (so it is idempotent), and refuses
 *   with `MigrationDrifted` if an applied one up to `id` has another checksum; it marks nothing then.
 *
 * Where: every statement runs on `Database.strataClient` (the app's client without its name
 * transforms); the history lives in `Database.strataTable("strata_migrations")` (the connection's
 * current schema unless the app sets `Database.StrataSchema`); plan steps may name `schema.table`
 * (a PostgreSQL schema, or an attached SQLite database), and the catalogue reads honour it.
 *
 * Each migration runs in one transaction (DDL is transactional on both engines), so a failure
 * leaves no trace of it. Call the Migrator outside any transaction of your own: it reserves its
 * own connection (on SQLite, the only one).
 *
 * Index phase (`Compile.indexBuilds`, tracked in `strata_indexes`, shown by `status`): on
 * PostgreSQL an index on an existing table is built with `CREATE INDEX CONCURRENTLY` after the
 * migration's transaction has committed (it cannot run in one), on a session of its own holding
 * the runner lock, so the app's writes to the table go on during the build. The index of a
 * backfilled target is deferred, on both engines, until its backfill job is done: the
 * BackfillRunner builds it when it finishes the job, and `run` builds any whose job is done. `run`
 * first continues what earlier runs left (a pending build, an INVALID index from a killed build,
 * which it drops and builds again), then applies each pending migration and its index phase before
 * the next. A build that fails (`IndexBuildFailed`) or meets `indexBuildTimeout` on every attempt
 * (`IndexBuildBlocked`: a concurrent build waits for every transaction of the database
 * older than it, as long as it takes unless `indexBuildTimeout` bounds it) leaves its migration
 * applied; run again to continue.
 *
 * Constraint phase (PostgreSQL, `Compile.constraintValidations`, read from the catalogue, shown by
 * `status`): a constraint added to an existing table would hold the table's ACCESS EXCLUSIVE lock
 * through its scan of the rows, and the app's reads and writes with it. So the migration's
 * transaction adds it `NOT VALID` (new rows are checked from then on; no scan), and once it has
 * committed, `VALIDATE CONSTRAINT` scans in a transaction of its own under SHARE UPDATE EXCLUSIVE,
 * which lets the app read and write. That is a contract's `notNull` (a `CHECK (column IS NOT NULL)`,
 * validated, then `SET NOT NULL`, which the validated CHECK spares its scan, and the CHECK dropped,
 * in one short transaction), and the foreign key (`references`) or CHECK (`oneOf`) of an `addColumn`
 * on a table the migration does not create. Both transactions hold the runner lock, run under
 * `lockTimeout` with the migration's retries (then `ConstraintValidationBlocked`), and start from
 * what the catalogue says (`pg_constraint.convalidated`, `pg_attribute.attnotnull`), so a run
 * killed during a validation leaves the constraint NOT VALID and the next `run` validates it.
 * Existing rows that break the constraint fail it with `ConstraintValidationFailed`; the migration
 * stays applied (its other statements committed), the constraint NOT VALID, the rows as they were;
 * a contract's `dropSource` columns are dropped with its NOT NULL's `SET NOT NULL`, so they stay
 * too. SQLite cannot add a constraint to a table: there everything stays in the transaction.
 *
 * Runner lock: SQLite takes the database's write lock with `BEGIN IMMEDIATE`, trying for 20 ms at
 * a time (better-sqlite3 waits synchronously, blocking Node); PostgreSQL polls
 * `pg_try_advisory_lock` (a session lock, so a waiting runner holds no long statement). Both back
 * off between attempts with a jittered schedule (5 ms doubling to 200 ms) until `runnerTimeout`.
 * Interrupting a runner (Ctrl-C) rolls back the migration in progress and releases the lock.
 *
 * Table locks (PostgreSQL): a DDL statement waiting for a table's lock (behind a long transaction
 * of the app's) makes every later query on that table wait behind it. So each statement runs under
 * `lock_timeout` = `lockTimeout` (default 2 s); one that meets it rolls its migration back, and the
 * migration is retried after a jittered backoff (100 ms doubling to 5 s), up to `lockRetries`
 * times (default 10); then `MigrationBlocked` names the sessions it waited for and their queries.
 * The app's queries are thus never held longer than `lockTimeout` by a waiting migration.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Compile, Identifier, Options, Plan, Timestamp } from "@strata/core"
import { Array as Arr, Clock, Context, Data, Duration, Effect, Either, Layer, Option, Ref, Schema } from "effect"
import { tableColumns } from "./Catalog.js"
import * as Database from "./Database.js"
import * as Constraints from "./internal/constraintValidations.js"
import * as IndexBuilds from "./internal/indexBuilds.js"
import * as History from "./internal/migrationHistory.js"
import { backendPid, Blocker, watched } from "./internal/blockers.js"
import { advisoryLockKey, isPgLockTimeout, withLockedTransaction } from "./internal/lockedTransaction.js"
import * as Preflight from "./internal/preflight.js"
import * as JobState from "./JobState.js"
import * as Verifications from "./Verifications.js"
import { failureText } from "./SqlErrors.js"
import { unprepared } from "./internal/unprepared.js"
import { plannedMigrations, unfinishedWork } from "./internal/dryRunPlan.js"
import { statusOf } from "./internal/migrationStatus.js"

/**
 * `to` or a `baseline` id that is not one of the plan's migration ids.
 *
 * @since 0.1.0
 */
export class MigrationNotInPlan extends Schema.TaggedError<MigrationNotInPlan>()("MigrationNotInPlan", {
  plan: Schema.String,
  id: Schema.Number,
  known: Schema.Array(Schema.Number)
}) {
  override get message(): string {
    const known = this.known.length > 0 ? this.known.join(", ") : "none"
    return `Migration ${this.id} is not in plan ${this.plan} (its migrations: ${known})`
  }
}

/**
 * An applied migration's stored checksum differs from the plan's: it was edited after it was applied.
 *
 * @since 0.1.0
 */
export class MigrationDrifted extends Schema.TaggedError<MigrationDrifted>()("MigrationDrifted", {
  plan: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  stored: Schema.String,
  expected: Schema.String
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of plan ${this.plan} changed after it was applied (stored checksum ${this.stored}, plan checksum ${this.expected}); restore the applied steps and put changes in a new migration`
  }
}

/**
 * The database records a migration of this plan that the plan does not have, below one `run` would apply.
 *
 * @since 0.1.0
 */
export class UnknownMigrationApplied extends Schema.TaggedError<UnknownMigrationApplied>()("UnknownMigrationApplied", {
  plan: Schema.String,
  id: Schema.Number,
  name: Schema.String
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" is recorded as applied for plan ${this.plan} but is not in the plan; put it back in the plan before applying later migrations`
  }
}

/**
 * A pending migration has a lower id than one already applied; strata applies migrations in id order.
 *
 * @since 0.1.0
 */
export class MigrationOutOfOrder extends Schema.TaggedError<MigrationOutOfOrder>()("MigrationOutOfOrder", {
  plan: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  latestAppliedId: Schema.Number
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of plan ${this.plan} is pending but migration ${this.latestAppliedId} is already applied; migrations apply in id order (give it an id after ${this.latestAppliedId}, or baseline it if the database already has it)`
  }
}

/**
 * A statement of a migration failed; the migration was rolled back entirely (earlier ones stay applied).
 * `cause` is the database's error message.
 *
 * @since 0.1.0
 */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  plan: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  statement: Schema.String,
  cause: Schema.String
}) {
  override get message(): string {
    return `Migration ${this.id} "${this.name}" of plan ${this.plan} failed and was rolled back: ${this.cause}; statement: ${
      oneLine(this.statement)
    }`
  }
}

/**
 * Another runner held the migration lock for longer than the lock timeout.
 *
 * @since 0.1.0
 */
export class MigrationLockTimeout extends Schema.TaggedError<MigrationLockTimeout>()("MigrationLockTimeout", {
  plan: Schema.String,
  waitedMs: Schema.Number
}) {
  override get message(): string {
    return `Gave up after ${this.waitedMs} ms waiting for the migration lock of plan ${this.plan} (another runner holds it)`
  }
}

/**
 * PostgreSQL: a statement of the migration waited `lockTimeoutMs` for a lock on every one of its
 * `attempts`; the migration was rolled back each time and is not applied. `blockers` are the
 * sessions it waited for at the last attempt (`pg_blocking_pids`), with their last query.
 *
 * @since 0.2.0
 * @category errors
 */
export class MigrationBlocked extends Schema.TaggedError<MigrationBlocked>()("MigrationBlocked", {
  plan: Schema.String,
  id: Schema.Number,
  name: Schema.String,
  statement: Schema.String,
  attempts: Schema.Number,
  lockTimeoutMs: Schema.Number,
  blockers: Schema.Array(Blocker)
}) {
  override get message(): string {
    const blockers = this.blockers.length === 0
      ? "the blocking session was not seen"
      : this.blockers.map((b) =>
        `pid ${b.pid} (${b.state ?? "unknown state"}${b.applicationName !== "" ? `, ${b.applicationName}` : ""}): ${
          oneLine(b.query)
        }`
      ).join("; ")
    return `Migration ${this.id} "${this.name}" of plan ${this.plan} was not applied: ${this.attempts} attempt${
      this.attempts === 1 ? "" : "s"
    } each waited ${this.lockTimeoutMs} ms (lock_timeout) for a lock held by ${blockers}; statement: ${oneLine(this.statement)}`
  }
}

/**
 * An option of `make` / `layer` is out of range; `option` names it.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidMigratorOptions extends Schema.TaggedError<InvalidMigratorOptions>()("InvalidMigratorOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid Migrator option ${this.option}: ${this.reason}`
  }
}

/**
 * The database failed while the Migrator read or wrote its own state (not a migration's statement).
 *
 * @since 0.1.0
 */
export class MigratorDatabaseError extends Schema.TaggedError<MigratorDatabaseError>()("MigratorDatabaseError", {
  plan: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Migrator (plan ${this.plan}) could not ${this.operation}: ${this.reason}`
  }
}

export {
  /**
   * An index a run built after its migration's transaction.
   *
   * @since 0.2.0
   * @category models
   */
  type BuiltIndex,
  /**
   * An index build met its lock timeout on every attempt; the migration stays applied.
   *
   * @since 0.2.0
   * @category errors
   */
  IndexBuildBlocked,
  /**
   * An index build of an applied migration failed; the migration stays applied.
   *
   * @since 0.2.0
   * @category errors
   */
  IndexBuildFailed,
  /**
   * What an index build can fail with.
   *
   * @since 0.2.0
   * @category errors
   */
  type IndexBuildError,
  /**
   * The runner lock or strata's own tables failed during an index build.
   *
   * @since 0.2.0
   * @category errors
   */
  IndexPhaseError,
  /**
   * Where an index of the index phase is.
   *
   * @since 0.2.0
   * @category models
   */
  type IndexState,
  /**
   * An index of the index phase as `status` reports it.
   *
   * @since 0.2.0
   * @category models
   */
  type IndexStatus
} from "./internal/indexBuilds.js"

export {
  /**
   * Where a constraint of the constraint phase is.
   *
   * @since 0.2.0
   * @category models
   */
  type ConstraintState,
  /**
   * A constraint of the constraint phase as `status` reports it.
   *
   * @since 0.2.0
   * @category models
   */
  type ConstraintStatus,
  /**
   * A constraint a run validated after its migration's transaction.
   *
   * @since 0.2.0
   * @category models
   */
  type ValidatedConstraint,
  /**
   * Existing rows break a constraint an applied migration added; the migration stays applied.
   *
   * @since 0.2.0
   * @category errors
   */
  ConstraintValidationFailed,
  /**
   * A statement of the constraint phase met its lock timeout on every attempt; the migration stays applied.
   *
   * @since 0.2.0
   * @category errors
   */
  ConstraintValidationBlocked,
  /**
   * The runner lock or the catalogue failed during the constraint phase.
   *
   * @since 0.2.0
   * @category errors
   */
  ConstraintPhaseError,
  /**
   * What the constraint phase can fail with.
   *
   * @since 0.2.0
   * @category errors
   */
  type ConstraintPhaseFailure
} from "./internal/constraintValidations.js"

export {
  /**
   * A pending step reads a column that does not exist.
   *
   * @since 0.2.0
   * @category errors
   */
  SourceColumnMissing,
  /**
   * A pending step reads a column of a type it cannot read.
   *
   * @since 0.2.0
   * @category errors
   */
  SourceColumnUnreadable,
  /**
   * A pending step works on a table that does not exist and is not created earlier in the plan.
   *
   * @since 0.2.0
   * @category errors
   */
  TableMissing,
  /**
   * A column a pending step adds exists with another type (or a planned table exists without it).
   *
   * @since 0.2.0
   * @category errors
   */
  TargetColumnConflict,
  /**
   * A backfill job of a pending step has no batch key.
   *
   * @since 0.2.0
   * @category errors
   */
  BatchKeyMissing,
  /**
   * SQLite: a sync trigger without a declared key on a WITHOUT ROWID table.
   *
   * @since 0.2.0
   * @category errors
   */
  SyncTriggerKeyMissing,
  /**
   * One thing the preflight found wrong (a Schema of the six problems above).
   *
   * @since 0.2.0
   * @category models
   */
  PreflightProblem
} from "./internal/preflight.js"

/**
 * The preflight found pending steps that cannot apply to the live schema; nothing was changed.
 * Each problem names the migration and `table.column`.
 *
 * @since 0.2.0
 * @category errors
 */
export class PreflightFailed extends Schema.TaggedError<PreflightFailed>()("PreflightFailed", {
  plan: Schema.String,
  problems: Schema.NonEmptyArray(Preflight.PreflightProblem)
}) {
  override get message(): string {
    const more = this.problems.length > 1 ? ` (and ${this.problems.length - 1} more)` : ""
    return `Plan ${this.plan} cannot apply to this database, nothing was changed: ${this.problems[0].message}${more}`
  }
}

/**
 * `validate` found the database not exactly at the plan (see `ValidationReport`): the ids of
 * drifted and pending migrations, the refusal `run` would make, and the preflight's problems.
 *
 * @since 0.2.0
 * @category errors
 */
export class ValidationFailed extends Schema.TaggedError<ValidationFailed>()("ValidationFailed", {
  plan: Schema.String,
  drifted: Schema.Array(Schema.Number),
  pending: Schema.Array(Schema.Number),
  /** Applied migrations with an index build or a constraint validation left (`ValidationReport.unfinished`). */
  unfinished: Schema.Array(Schema.Number),
  /** Constraints of applied migrations that the catalogue does not have. */
  missingConstraints: Schema.Array(Schema.String),
  refusal: Schema.NullOr(Schema.String),
  problems: Schema.Array(Preflight.PreflightProblem)
}) {
  override get message(): string {
    const ids = (label: string, list: ReadonlyArray<number | string>) => (list.length > 0 ? [`${label} ${list.join(", ")}`] : [])
    const parts = [
      ...ids("drifted:", this.drifted),
      ...ids("pending:", this.pending),
      ...ids("unfinished (index builds or constraint validations 'strata migrate' does first):", this.unfinished),
      ...ids("constraints missing:", this.missingConstraints),
      ...(this.refusal !== null && this.drifted.length === 0 ? [this.refusal] : []),
      ...(this.problems.length > 0
        ? [`${this.problems.length} step problem${this.problems.length === 1 ? "" : "s"}, first: ${this.problems[0]!.message}`]
        : [])
    ]
    return `Plan ${this.plan} is not valid on this database (${parts.join("; ")})`
  }

  /** The failure for a report that is not `ok`. */
  static fromReport(report: ValidationReport): ValidationFailed {
    return new ValidationFailed({
      plan: report.plan,
      drifted: report.migrations.filter((m) => m.state === "drifted").map((m) => m.id),
      pending: report.migrations.filter((m) => m.state === "pending").map((m) => m.id),
      unfinished: report.unfinished.map((m) => m.id),
      missingConstraints: report.constraints.filter((c) => c.state === "missing").map((c) => c.name),
      refusal: report.refusal?.message ?? null,
      problems: report.problems
    })
  }
}

/**
 * A pending migration has a contract step (`Plan.contract`) whose jobs are not all proven: each is
 * named with why (never verified, failed its latest verification, verified under another version
 * of its migration, or ran after it). Nothing was applied. Backfill, run `strata verify`, then migrate.
 *
 * @since 0.2.0
 * @category errors
 */
export class ContractUnverified extends Schema.TaggedError<ContractUnverified>()("ContractUnverified", {
  plan: Schema.String,
  migrationId: Schema.Number,
  migrationName: Schema.String,
  jobs: Schema.NonEmptyArray(Verifications.UnverifiedJob)
}) {
  override get message(): string {
    return `Migration ${this.migrationId} "${this.migrationName}" of plan ${this.plan} is a contract and was not applied, nothing was changed: ${
      this.jobs.map(Verifications.describe).join("; ")
    }; backfill and verify (strata verify) the job${this.jobs.length === 1 ? "" : "s"} first`
  }
}

/**
 * What `status` can fail with.
 *
 * @since 0.1.0
 */
export type StatusError = MigratorDatabaseError

/**
 * What `dryRun` can fail with (the refusals `run` would make, found without changing anything).
 *
 * @since 0.1.0
 */
export type DryRunError =
  | MigrationNotInPlan
  | MigrationDrifted
  | UnknownMigrationApplied
  | MigrationOutOfOrder
  | PreflightFailed
  | ContractUnverified
  | MigratorDatabaseError

/**
 * What `run` can fail with.
 *
 * @since 0.1.0
 */
export type RunError =
  | DryRunError
  | MigrationFailed
  | MigrationLockTimeout
  | MigrationBlocked
  | IndexBuilds.IndexBuildError
  | Constraints.ConstraintPhaseFailure

/**
 * What `baseline` can fail with.
 *
 * @since 0.1.0
 */
export type BaselineError = MigrationNotInPlan | MigrationDrifted | MigrationLockTimeout | MigratorDatabaseError

/**
 * Every Migrator error.
 *
 * @since 0.1.0
 */
export type MigrationError = RunError | BaselineError

/**
 * Options of `layer` / `make`.
 *
 * @since 0.1.0
 */
export interface MigratorOptions {
  /** How long a runner waits for another runner's migration before `MigrationLockTimeout`. Default 60 seconds. */
  readonly runnerTimeout?: Duration.DurationInput | undefined
  /**
   * PostgreSQL: the `lock_timeout` of every migration statement. A statement waiting for a table's
   * lock queues every later query of the app on that table behind it, so it waits at most this
   * long, then the migration is rolled back and retried (`lockRetries`). Default 2 seconds.
   */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /** PostgreSQL: how many times a migration that met its `lockTimeout` is retried, after a jittered backoff. Default 10. */
  readonly lockRetries?: number | undefined
  /**
   * PostgreSQL: how long a concurrent index build may wait for a lock (its `lock_timeout`). Such a
   * build waits for every transaction of the database older than it, but blocks neither the
   * app's reads nor its writes meanwhile, so by default it waits as long as that takes. With a
   * bound, a build that meets it is retried (`lockRetries`, the INVALID index it leaves dropped
   * first) and then fails with `IndexBuildBlocked`; a build that gives up late has worked for nothing.
   */
  readonly indexBuildTimeout?: Duration.DurationInput | undefined
  /**
   * PostgreSQL: an index is built CONCURRENTLY on a table of at least this many bytes
   * (`pg_total_relation_size`), with a plain build under `lockTimeout` below it: a concurrent build
   * scans twice and waits for every older transaction of the database, a small table's plain build
   * holds off writes for milliseconds. Default 8 MiB; 0 builds every index concurrently.
   */
  readonly concurrentIndexMinBytes?: number | undefined
}

/**
 * Options of `run` and `dryRun`.
 *
 * @since 0.1.0
 */
export interface RunOptions {
  /** Apply up to and including this migration id (one of the plan's ids). Default: all. */
  readonly to?: number | undefined
}

/**
 * A statement `run` executed, or skipped because its guard found the column already there (SQLite).
 *
 * @since 0.1.0
 */
export interface ExecutedStatement {
  readonly sql: string
  readonly skipped: boolean
}

/**
 * A migration this runner applied.
 *
 * @since 0.1.0
 */
export interface AppliedMigration {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly appliedAtMs: number
  readonly durationMs: number
  readonly statements: ReadonlyArray<ExecutedStatement>
  /** How many times it was tried: 1, plus one per lock timeout it met (PostgreSQL). */
  readonly attempts: number
}

/**
 * The outcome of `run`: what this runner applied, in order, and what was applied already — before
 * it started (`alreadyApplied`) or by a concurrent runner while it waited for the lock (`appliedConcurrently`).
 *
 * @since 0.1.0
 */
export interface RunResult {
  readonly plan: string
  readonly applied: ReadonlyArray<AppliedMigration>
  readonly alreadyApplied: ReadonlyArray<number>
  readonly appliedConcurrently: ReadonlyArray<number>
  /**
   * The indexes this run built after their migration's transaction (see `Compile.IndexTiming`):
   * those of the migrations it applied, and those an earlier run left pending, INVALID or deferred
   * until a backfill job that is now done.
   */
  readonly indexes: ReadonlyArray<IndexBuilds.BuiltIndex>
  /** Indexes still deferred until their backfill job is done (`strata backfill` builds them when it finishes the job). */
  readonly deferredIndexes: ReadonlyArray<IndexBuilds.IndexStatus>
  /**
   * The bound on every lock wait of this run's migration statements: PostgreSQL's `lock_timeout`
   * (`lockTimeout`). Undefined on SQLite, where the one write lock is taken before a migration's
   * transaction begins. Either way a migration holds its locks for its `durationMs`.
   */
  readonly lockTimeoutMs: number | undefined
  /**
   * PostgreSQL: the constraints this run validated after their migration's transaction (see
   * `Compile.constraintValidations`): those of the migrations it applied, and those an earlier run
   * left NOT VALID (interrupted, blocked, or refused by existing rows since fixed).
   */
  readonly constraints: ReadonlyArray<Constraints.ValidatedConstraint>
}

/**
 * One plan migration's state in the database. `durationMs` is null for a baselined migration.
 *
 * @since 0.1.0
 */
export type MigrationStatus =
  | {
    readonly state: "applied"
    readonly id: number
    readonly name: string
    readonly checksum: string
    readonly appliedAtMs: number
    readonly durationMs: number | null
  }
  | { readonly state: "pending"; readonly id: number; readonly name: string; readonly checksum: string }
  | {
    readonly state: "drifted"
    readonly id: number
    readonly name: string
    readonly stored: string
    readonly expected: string
    readonly appliedAtMs: number
    readonly durationMs: number | null
  }

/**
 * A migration recorded for this plan that the plan does not contain.
 *
 * @since 0.1.0
 */
export interface UnknownMigration {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly appliedAtMs: number
  readonly durationMs: number | null
}

/**
 * The plan against the database: every plan migration in id order, and unknown recorded ones.
 *
 * @since 0.1.0
 */
export interface StatusReport {
  readonly plan: string
  readonly migrations: ReadonlyArray<MigrationStatus>
  readonly unknown: ReadonlyArray<UnknownMigration>
  /**
   * The indexes built outside their migration's transaction, in migration order: `valid`,
   * `pending` / `invalid` / `building` (the next `run` builds or rebuilds them), or `deferred`
   * until their backfill job is done.
   */
  readonly indexes: ReadonlyArray<IndexBuilds.IndexStatus>
  /**
   * PostgreSQL: the constraints applied migrations validate after their transaction, as the
   * catalogue has them: `notValid` (added NOT VALID; the next `run` validates it), `validated` (a
   * NOT NULL's CHECK is, the column is not NOT NULL yet), `valid`, or `missing`.
   */
  readonly constraints: ReadonlyArray<Constraints.ConstraintStatus>
}

/**
 * A statement a dry run found `run` would reach. `text` is `Compile.render`'s; `guard` (SQLite
 * ADD COLUMN) says whether the column exists now or is added by an earlier statement of this run,
 * in which case `willRun` is false.
 *
 * @since 0.1.0
 */
export interface PlannedStatement {
  readonly sql: string
  readonly text: string
  readonly guard: { readonly table: string; readonly column: string; readonly columnExists: boolean } | undefined
  readonly willRun: boolean
  /**
   * `transaction` (the migration's transaction), `validate` (PostgreSQL: a constraint the
   * transaction adds NOT VALID, validated once it has committed, each statement listed in its own
   * transaction but a NOT NULL's SET NOT NULL and DROP CONSTRAINT, which share one), `afterCommit`
   * (an index built once it has committed: PostgreSQL's CREATE INDEX CONCURRENTLY) or `afterJob`
   * (an index built once its backfill job is done).
   */
  readonly phase: "transaction" | "validate" | Compile.IndexTiming
  /** The backfill job an `afterJob` index waits for. */
  readonly afterJob?: string | undefined
}

/**
 * A pending migration as a dry run sees it.
 *
 * @since 0.1.0
 */
export interface PlannedMigration {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly statements: ReadonlyArray<PlannedStatement>
}

/**
 * What `run` with the same options would do; `createsHistoryTable` when `strata_migrations` is missing.
 *
 * @since 0.1.0
 */
export interface DryRunResult {
  readonly plan: string
  readonly dialect: "sqlite" | "pg"
  readonly createsHistoryTable: boolean
  readonly pending: ReadonlyArray<PlannedMigration>
  readonly alreadyApplied: ReadonlyArray<number>
  /**
   * What earlier runs left unfinished in applied migrations, which `run` does first: constraints
   * still to validate (PostgreSQL) and index builds due (pending, interrupted, or deferred until a
   * backfill job that is done now). Each migration listed with only those statements.
   */
  readonly unfinished: ReadonlyArray<PlannedMigration>
}

/**
 * The plan against the database, for a CI gate: `ok` when every migration is applied with its
 * checksum and nothing of an applied migration is left unfinished. Otherwise the drifted or pending
 * migrations are in `migrations`, what `run` would refuse with before applying anything in `refusal`
 * (a contract migration's closed gate included), what the preflight found wrong with the pending
 * migrations in `problems`, and in `unfinished` what `run` still does first for applied migrations
 * (as `DryRunResult.unfinished`): a constraint still NOT VALID (PostgreSQL), an index build pending,
 * interrupted (an INVALID index) or due because its backfill job is done. An index deferred until a
 * job that is not done yet is not unfinished: that is the plan's own order (see `indexes`). A
 * constraint of an applied migration that the catalogue does not have at all is in `constraints`
 * as `missing`, and not `ok` either: `run` does not add it again.
 *
 * @since 0.2.0
 * @category models
 */
export interface ValidationReport extends StatusReport {
  readonly ok: boolean
  readonly refusal: MigrationDrifted | UnknownMigrationApplied | MigrationOutOfOrder | ContractUnverified | undefined
  readonly problems: ReadonlyArray<Preflight.PreflightProblem>
  readonly unfinished: ReadonlyArray<PlannedMigration>
}

/**
 * The outcome of `baseline`: migrations newly recorded as applied, and those that already were.
 *
 * @since 0.1.0
 */
export interface BaselineResult {
  readonly plan: string
  readonly baselined: ReadonlyArray<number>
  readonly alreadyApplied: ReadonlyArray<number>
}

/**
 * The Migrator's operations on one plan (the plan is given when the service is built).
 *
 * @since 0.1.0
 * @category models
 */
export interface Migrator {
  readonly plan: Plan.Plan
  readonly dialect: "sqlite" | "pg"
  /** Applies pending migrations in id order (up to `to`), each in its own locked transaction. */
  readonly run: (options?: RunOptions) => Effect.Effect<RunResult, RunError>
  /** Each plan migration's state, and unknown recorded ones; changes nothing. */
  readonly status: () => Effect.Effect<StatusReport, StatusError>
  /** The statements `run` would execute; changes nothing (does not even create `strata_migrations`). */
  readonly dryRun: (options?: RunOptions) => Effect.Effect<DryRunResult, DryRunError>
  /** Records migrations up to `id` as applied without running them. */
  readonly baseline: (id: number) => Effect.Effect<BaselineResult, BaselineError>
  /**
   * Whether the database is exactly at the plan: no drift, nothing pending, pending steps checked, no
   * index build or constraint validation of an applied migration left; changes nothing.
   */
  readonly validate: () => Effect.Effect<ValidationReport, StatusError>
}

const { defaultConcurrentIndexMinBytes, defaultIndexBuildTimeout, defaultLockRetries, defaultLockTimeout, defaultRunnerTimeout, lockRetrySchedule } = IndexBuilds

/** A statement met its lock timeout (retried as a whole migration). */
class StatementBlocked extends Data.TaggedError("StatementBlocked")<{
  readonly statement: string
  readonly blockers: ReadonlyArray<Blocker>
}> {}

/** One line, and short enough to read: statements can span lines and be long. */
const oneLine = (statement: string): string => {
  const flat = statement.replace(/\s+/g, " ").trim()
  return flat.length > 300 ? `${flat.slice(0, 299)}…` : flat
}

interface Selection {
  readonly pending: ReadonlyArray<Plan.Migration>
  readonly alreadyApplied: ReadonlyArray<number>
}

/**
 * The options of `make`, checked and defaulted: one record, resolved in this order, so the option
 * an error names is the first one out of range, as before.
 */
interface ResolvedOptions {
  readonly runnerTimeout: Duration.Duration
  readonly lockTimeout: Duration.Duration
  readonly indexBuildTimeout: Duration.Duration
  readonly concurrentIndexMinBytes: number
  readonly lockRetries: number
}

const invalidOption = (option: string, reason: string) => new InvalidMigratorOptions({ option, reason })

const resolveOptions = (options: MigratorOptions): Effect.Effect<ResolvedOptions, InvalidMigratorOptions> =>
  Effect.gen(function*() {
    const runnerTimeout = yield* Options.resolveDuration(
      "runnerTimeout",
      options.runnerTimeout,
      defaultRunnerTimeout,
      Options.nonNegativeDuration,
      invalidOption
    )
    const lockTimeout = yield* Options.resolveDuration(
      "lockTimeout",
      options.lockTimeout,
      defaultLockTimeout,
      Options.positiveDuration,
      invalidOption
    )
    const indexBuildTimeout = yield* Options.resolveDuration(
      "indexBuildTimeout",
      options.indexBuildTimeout,
      defaultIndexBuildTimeout,
      { ...Options.positiveDuration, infinite: true },
      invalidOption
    )
    const concurrentIndexMinBytes = yield* Options.resolve(
      "concurrentIndexMinBytes",
      options.concurrentIndexMinBytes,
      defaultConcurrentIndexMinBytes,
      { integer: true, min: 0 },
      invalidOption
    )
    const lockRetries = yield* Options.resolve("lockRetries", options.lockRetries, defaultLockRetries, {
      integer: true,
      min: 0
    }, invalidOption)
    return { runnerTimeout, lockTimeout, indexBuildTimeout, concurrentIndexMinBytes, lockRetries }
  })

/**
 * What every operation of one Migrator works with, fixed when it is built: the plan, the resolved
 * options, the engine, the history table, and facts about the plan computed once. The operations
 * below are functions of it rather than closures of `make`, so each concern (locks, history,
 * applying one migration, the gates, each operation) reads on its own; `make` only wires them.
 */
interface Setup extends ResolvedOptions {
  readonly plan: Plan.Plan
  readonly dialect: "sqlite" | "pg"
  readonly historyTable: Identifier.TableName
  readonly planIds: ReadonlySet<number>
  readonly checksumOf: (migration: Plan.Migration) => string
  /** Whether the plan builds any index outside a transaction on this engine (it then needs `strata_indexes`). */
  readonly hasIndexPhase: boolean
  readonly databaseError: (operation: string) => (cause: SqlError) => MigratorDatabaseError
}

const setupOf = (
  plan: Plan.Plan,
  options: ResolvedOptions,
  dialect: "sqlite" | "pg",
  historyTable: Identifier.TableName
): Setup => {
  const checksums = new Map(plan.migrations.map((migration) => [migration.id, Compile.checksum(migration)]))
  return {
    ...options,
    plan,
    dialect,
    historyTable,
    planIds: new Set(plan.migrations.map((migration) => migration.id)),
    checksumOf: (migration) => checksums.get(migration.id) ?? Compile.checksum(migration),
    hasIndexPhase: plan.migrations.some((migration) => Compile.indexBuilds(migration, dialect, plan).length > 0),
    databaseError: (operation) => (cause) =>
      new MigratorDatabaseError({ plan: plan.name, operation, reason: failureText(cause) })
  }
}

// ---------------------------------------------------------------------------------------------
// Locks: the runner lock (migrations, baseline, index builds) and the history table's own lock.
// ---------------------------------------------------------------------------------------------

/**
 * The history table as the runner lock names it. PostgreSQL's advisory locks are per database
 * and its tables per schema, so an unqualified table is named with the schema it resolves to:
 * runners of two apps in two schemas do not wait for each other.
 */
const lockedTable = ({ dialect, historyTable, databaseError }: Setup) =>
  Effect.gen(function*() {
    if (dialect !== "pg" || Identifier.tableParts(historyTable).schema !== undefined) return historyTable as string
    const rows = yield* Effect.flatMap(SqlClient.SqlClient, (client) =>
      unprepared(client.unsafe<{ schema: unknown }>("SELECT current_schema() AS schema")))
    return `${String(rows[0]?.schema)}.${historyTable}`
  }).pipe(Effect.mapError(databaseError("read the current schema")))

const runnerLock = ({ plan, dialect, runnerTimeout, databaseError }: Setup) =>
  IndexBuilds.runnerLockKey(plan).pipe(
    Effect.mapError(databaseError("read the current schema")),
    Effect.map((lockKey) => ({ dialect, lockTimeout: runnerTimeout, lockKey }))
  )

const migrationLock = (setup: Setup) =>
  Effect.map(runnerLock(setup), (lock) => ({ ...lock, statementLockTimeout: setup.lockTimeout }))

const constraintSettings = (setup: Setup) =>
  Effect.map(runnerLock(setup), (lock): Constraints.Settings => ({
    plan: setup.plan,
    runnerLock: lock,
    lockTimeout: setup.lockTimeout,
    lockRetries: setup.lockRetries
  }))

const indexSettings = (setup: Setup) =>
  Effect.map(runnerLock(setup), (lock): IndexBuilds.Settings => ({
    plan: setup.plan,
    dialect: setup.dialect,
    runnerLock: lock,
    indexBuildTimeout: setup.indexBuildTimeout,
    lockTimeout: setup.lockTimeout,
    concurrentIndexMinBytes: setup.concurrentIndexMinBytes,
    lockRetries: setup.lockRetries,
    leaveWhenLocked: false
  }))

// One key per history table for every plan: concurrent CREATE TABLE IF NOT EXISTS races on PostgreSQL's catalog.
const historyLock = (setup: Setup) =>
  Effect.map(lockedTable(setup), (table) => ({
    dialect: setup.dialect,
    lockTimeout: setup.runnerTimeout,
    lockKey: advisoryLockKey(table)
  }))

const lockTimedOut = (setup: Setup, waitedMs: number) => new MigrationLockTimeout({ plan: setup.plan.name, waitedMs })

// ---------------------------------------------------------------------------------------------
// History: reading `strata_migrations`, and what is pending against it (or why `run` refuses).
// ---------------------------------------------------------------------------------------------

const resolveTarget = ({ plan, planIds }: Setup, id: number | undefined): Effect.Effect<number | undefined, MigrationNotInPlan> =>
  id === undefined || planIds.has(id)
    ? Effect.succeed(id)
    : Effect.fail(new MigrationNotInPlan({ plan: plan.name, id, known: plan.migrations.map((m) => m.id) }))

const drifted = ({ plan, checksumOf }: Setup, migration: Plan.Migration, row: History.HistoryRow) =>
  new MigrationDrifted({
    plan: plan.name,
    id: migration.id,
    name: migration.name,
    stored: row.checksum,
    expected: checksumOf(migration)
  })

const select = (
  setup: Setup,
  rows: ReadonlyArray<History.HistoryRow>,
  target: number | undefined
): Either.Either<Selection, MigrationDrifted | UnknownMigrationApplied | MigrationOutOfOrder> => {
  const { plan, planIds, checksumOf } = setup
  const recorded = new Map(rows.map((row) => [row.id, row]))
  for (const migration of plan.migrations) {
    const row = recorded.get(migration.id)
    if (row !== undefined && row.checksum !== checksumOf(migration)) return Either.left(drifted(setup, migration, row))
  }
  const considered = plan.migrations.filter((migration) => target === undefined || migration.id <= target)
  const pending = considered.filter((migration) => !recorded.has(migration.id))
  const alreadyApplied = considered.filter((migration) => recorded.has(migration.id)).map((m) => m.id)
  const first = pending[0]
  const last = pending[pending.length - 1]
  if (first !== undefined && last !== undefined) {
    const unknown = rows.find((row) => !planIds.has(row.id) && row.id < last.id)
    if (unknown !== undefined) {
      return Either.left(new UnknownMigrationApplied({ plan: plan.name, id: unknown.id, name: unknown.name }))
    }
    const latest = rows.reduce((max, row) => Math.max(max, row.id), -Infinity)
    if (latest > first.id) {
      return Either.left(
        new MigrationOutOfOrder({ plan: plan.name, id: first.id, name: first.name, latestAppliedId: latest })
      )
    }
  }
  return Either.right({ pending, alreadyApplied })
}

const historyExists = ({ historyTable, databaseError }: Setup) =>
  History.exists(historyTable).pipe(Effect.mapError(databaseError(`read ${historyTable}`)))

const readHistory = ({ plan, historyTable, databaseError }: Setup) =>
  History.read(historyTable, plan.name).pipe(Effect.mapError(databaseError(`read ${historyTable}`)))

/** Rows as they are, without creating the table (status and dry run change nothing). */
const peekHistory = (setup: Setup): Effect.Effect<
  { readonly exists: boolean; readonly rows: ReadonlyArray<History.HistoryRow> },
  MigratorDatabaseError,
  SqlClient.SqlClient
> =>
  Effect.gen(function*() {
    const exists = yield* historyExists(setup)
    return { exists, rows: exists ? yield* readHistory(setup) : [] }
  })

const indexTableExists = ({ databaseError }: Setup) =>
  Effect.flatMap(IndexBuilds.indexTable, (table) => IndexBuilds.exists(table).pipe(Effect.mapError(databaseError(`read ${table}`))))

const indexStatuses = ({ plan, dialect, databaseError }: Setup) =>
  IndexBuilds.statuses(plan, dialect).pipe(Effect.mapError(databaseError("read strata_indexes")))

const constraintStatuses = ({ plan, dialect, databaseError }: Setup, rows: ReadonlyArray<History.HistoryRow>) =>
  Constraints.statuses(plan, dialect, plan.migrations.filter((migration) => rows.some((row) => row.id === migration.id))).pipe(
    Effect.mapError(databaseError("read pg_constraint"))
  )

const ensureHistory = (setup: Setup) =>
  Effect.gen(function*() {
    const { dialect, historyTable, hasIndexPhase, databaseError } = setup
    if ((yield* historyExists(setup)) && (!hasIndexPhase || (yield* indexTableExists(setup)))) return
    const indexTable = yield* IndexBuilds.indexTable
    yield* withLockedTransaction(
      yield* historyLock(setup),
      Effect.zipRight(
        History.create(historyTable, dialect).pipe(Effect.mapError(databaseError(`create ${historyTable}`))),
        hasIndexPhase
          ? IndexBuilds.create(indexTable, dialect).pipe(Effect.mapError(databaseError(`create ${indexTable}`)))
          : Effect.void
      )
    ).pipe(
      Effect.catchTags({
        LockTimedOut: (error) => Effect.fail(lockTimedOut(setup, error.waitedMs)),
        TransactionControlFailed: (error) => Effect.fail(databaseError(`create ${historyTable}`)(error.cause))
      })
    )
  })

// ---------------------------------------------------------------------------------------------
// Applying one migration: its transaction under the runner lock, retried on lock timeouts.
// ---------------------------------------------------------------------------------------------

/** SQLite's ADD COLUMN guard: column names compare case-insensitively there. */
const columnExists = (table: Identifier.TableName, column: string) =>
  Effect.map(
    tableColumns(table),
    (columns) => columns.some((c) => c.name.toLowerCase() === column.toLowerCase())
  )

type Outcome =
  | { readonly _tag: "Applied"; readonly migration: AppliedMigration }
  | { readonly _tag: "AppliedConcurrently" }

const migrationFailed = ({ plan }: Setup, migration: Plan.Migration) => (statement: string) => (cause: SqlError) =>
  new MigrationFailed({
    plan: plan.name,
    id: migration.id,
    name: migration.name,
    statement,
    cause: failureText(cause)
  })

/** What one attempt has seen: counted across retries, the blockers of the last one. */
interface Attempts {
  readonly attempts: Ref.Ref<number>
  readonly blockers: Ref.Ref<ReadonlyArray<Blocker>>
}

/** A statement of the transaction: on PostgreSQL under `lock_timeout`, its blockers watched. */
const runStatement = (
  setup: Setup,
  migration: Plan.Migration,
  { blockers }: Attempts,
  pid: number | undefined,
  statement: string
) => {
  const run = Effect.flatMap(SqlClient.SqlClient, (client) => unprepared(client.unsafe(statement)))
  return (pid === undefined ? run : watched(run, pid, setup.lockTimeout, blockers)).pipe(
    Effect.catchAll((cause): Effect.Effect<never, StatementBlocked | MigrationFailed> =>
      isPgLockTimeout(cause)
        ? Effect.flatMap(Ref.get(blockers), (seen) => Effect.fail(new StatementBlocked({ statement, blockers: seen })))
        : Effect.fail(migrationFailed(setup, migration)(statement)(cause))
    )
  )
}

/** One attempt, inside the migration's transaction: re-check the history, run the statements, record it. */
const migrationBody = (setup: Setup, migration: Plan.Migration, tries: Attempts) =>
  Effect.gen(function*() {
    const { plan, dialect, historyTable, databaseError } = setup
    const checksum = setup.checksumOf(migration)
    const failed = migrationFailed(setup, migration)
    yield* Ref.update(tries.attempts, (n) => n + 1)
    yield* Ref.set(tries.blockers, [])
    // Re-checked under the lock: a concurrent runner may have applied it since we looked.
    const recorded = yield* History.find(historyTable, plan.name, migration.id).pipe(
      Effect.mapError(databaseError(`read ${historyTable} for migration ${migration.id}`))
    )
    if (recorded !== undefined) {
      if (recorded.checksum !== checksum) return yield* drifted(setup, migration, recorded)
      return { _tag: "AppliedConcurrently" } as const
    }
    yield* contractCheck(setup, migration)
    yield* Effect.logInfo("applying migration")
    const started = yield* Clock.currentTimeMillis
    const pid = dialect === "pg" ? yield* backendPid.pipe(Effect.mapError(failed("SELECT pg_backend_pid()"))) : undefined
    const statements: Array<ExecutedStatement> = []
    for (const statement of Compile.transactionStatements(migration, dialect, plan)) {
      const guard = statement.unlessColumnExists
      if (guard !== undefined) {
        const exists = yield* columnExists(guard.table, guard.column).pipe(Effect.mapError(failed(statement.sql)))
        if (exists) {
          yield* Effect.logDebug("column exists; ADD COLUMN skipped").pipe(
            Effect.annotateLogs({ table: guard.table, column: guard.column })
          )
          statements.push({ sql: statement.sql, skipped: true })
          continue
        }
      }
      yield* runStatement(setup, migration, tries, pid, statement.sql)
      statements.push({ sql: statement.sql, skipped: false })
    }
    const appliedAtMs = yield* Timestamp.now
    const durationMs = Math.max(0, appliedAtMs - started)
    yield* History.insert(historyTable, plan.name, {
      id: migration.id,
      name: migration.name,
      checksum,
      appliedAtMs,
      durationMs
    }).pipe(Effect.mapError(databaseError(`record migration ${migration.id} in ${historyTable}`)))
    const builds = Compile.indexBuilds(migration, dialect, plan)
    if (builds.length > 0) {
      const indexTable = yield* IndexBuilds.indexTable
      yield* IndexBuilds.record(indexTable, plan.name, migration.id, builds).pipe(
        Effect.mapError(databaseError(`record the indexes of migration ${migration.id} in ${indexTable}`))
      )
    }
    return {
      _tag: "Applied",
      migration: {
        id: migration.id,
        name: migration.name,
        checksum,
        appliedAtMs,
        durationMs,
        statements,
        attempts: yield* Ref.get(tries.attempts)
      }
    } as const
  })

const applyMigration = (setup: Setup, migration: Plan.Migration): Effect.Effect<Outcome, RunError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { plan, lockTimeout, lockRetries, databaseError } = setup
    const tries: Attempts = { attempts: yield* Ref.make(0), blockers: yield* Ref.make<ReadonlyArray<Blocker>>([]) }
    return yield* withLockedTransaction(yield* migrationLock(setup), migrationBody(setup, migration, tries)).pipe(
      Effect.catchTags({
        LockTimedOut: (error) => Effect.fail(lockTimedOut(setup, error.waitedMs)),
        TransactionControlFailed: (error) =>
          Effect.fail(
            error.operation === "commit"
              ? migrationFailed(setup, migration)("COMMIT")(error.cause)
              : databaseError(`begin the transaction of migration ${migration.id}`)(error.cause)
          )
      }),
      Effect.tapErrorTag("StatementBlocked", (error) =>
        Effect.logWarning("a migration statement met its lock timeout; rolled back, retrying").pipe(
          Effect.annotateLogs({
            lock_timeout_ms: Duration.toMillis(lockTimeout),
            blocking_pids: error.blockers.map((b) => b.pid).join(",")
          })
        )),
      Effect.retry({ schedule: lockRetrySchedule(lockRetries), while: (error) => error._tag === "StatementBlocked" }),
      Effect.catchTag("StatementBlocked", (error) =>
        Effect.flatMap(Ref.get(tries.attempts), (tried) =>
          Effect.fail(
            new MigrationBlocked({
              plan: plan.name,
              id: migration.id,
              name: migration.name,
              statement: error.statement,
              attempts: tried,
              lockTimeoutMs: Duration.toMillis(lockTimeout),
              blockers: error.blockers
            })
          ))),
      Effect.tap((outcome) =>
        outcome._tag === "Applied"
          ? Effect.logInfo("migration applied").pipe(
            Effect.annotateLogs({ duration_ms: outcome.migration.durationMs })
          )
          : Effect.logInfo("migration already applied by a concurrent runner")
      ),
      Effect.tapError((error) =>
        // The typed error is the report; logging it at Error too would print it twice (once per layer that handles it).
        error._tag === "MigrationFailed" ? Effect.logInfo("migration failed and was rolled back", error.message) : Effect.void
      ),
      Effect.annotateLogs({ plan: plan.name, migration_id: migration.id, migration_name: migration.name })
    )
  })

// ---------------------------------------------------------------------------------------------
// Gates checked before anything changes: the preflight and the contract gate.
// ---------------------------------------------------------------------------------------------

const preflightProblems = ({ plan, dialect, databaseError }: Setup, pending: ReadonlyArray<Plan.Migration>) =>
  Preflight.check(plan.name, pending, dialect).pipe(
    Effect.mapError(databaseError("read the live schema to check the pending migrations"))
  )

const preflight = (
  setup: Setup,
  selection: Selection
): Effect.Effect<void, PreflightFailed | MigratorDatabaseError, SqlClient.SqlClient> =>
  Effect.flatMap(preflightProblems(setup, selection.pending), (problems) =>
    Arr.isNonEmptyReadonlyArray(problems)
      ? Effect.fail(new PreflightFailed({ plan: setup.plan.name, problems }))
      : Effect.void)

// A contract migration applies only once every job it names is proven (see `Verifications`).
/**
 * A contract migration's jobs must have passed `verify` since their last run (`ContractUnverified`
 * otherwise). Checked for every pending migration before anything changes, and again for each
 * contract inside its transaction under the runner lock: a job run again (`backfill --restart`)
 * or a failed verify while this runner waited for the lock must still stop it.
 */
const contractCheck = (
  { plan, databaseError }: Setup,
  migration: Plan.Migration
): Effect.Effect<void, ContractUnverified | MigratorDatabaseError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const jobs = [...new Set(migration.steps.flatMap((step) => (step._tag === "Contract" ? step.jobs : [])))]
    if (jobs.length === 0) return
    const verifications = yield* Verifications.latest(plan.name, jobs)
    const jobsTable = yield* Database.strataTable("strata_jobs")
    const lastRuns = new Map<string, number>()
    if ((yield* tableColumns(jobsTable)).length > 0) {
      for (const job of jobs) {
        const checkpoint = yield* JobState.loadCheckpoint(job)
        if (Option.isSome(checkpoint)) lastRuns.set(job, checkpoint.value.updatedAtMs)
      }
    }
    const unverified = Verifications.unverified(plan, jobs, verifications, lastRuns)
    if (Arr.isNonEmptyReadonlyArray(unverified)) {
      return yield* new ContractUnverified({ plan: plan.name, migrationId: migration.id, migrationName: migration.name, jobs: unverified })
    }
  }).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(databaseError("read the verifications of a contract's jobs")(error))))

const contractGate = (setup: Setup, selection: Selection) =>
  Effect.forEach(selection.pending, (migration) => contractCheck(setup, migration), { discard: true })

// ---------------------------------------------------------------------------------------------
// The operations of the service.
// ---------------------------------------------------------------------------------------------

const applyPending = (setup: Setup, runOptions: RunOptions = {}): Effect.Effect<RunResult, RunError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { plan } = setup
    const target = yield* resolveTarget(setup, runOptions.to)
    // Checked before anything changes, even before strata_migrations is created.
    const firstLook = yield* Effect.flatMap(peekHistory(setup), ({ rows }) => select(setup, rows, target))
    yield* preflight(setup, firstLook)
    yield* contractGate(setup, firstLook)
    yield* ensureHistory(setup)
    const selection = yield* Effect.flatMap(readHistory(setup), (rows) => select(setup, rows, target))
    const applied: Array<AppliedMigration> = []
    const appliedConcurrently: Array<number> = []
    const settings = yield* indexSettings(setup)
    const validation = yield* constraintSettings(setup)
    const migrationsOf = (ids: ReadonlyArray<number>) => plan.migrations.filter((m) => ids.includes(m.id))
    // What earlier runs left: constraints NOT VALID, pending or INVALID indexes, and deferred ones whose job is done since.
    const constraints = [...yield* Constraints.validateDue(validation, setup.dialect, migrationsOf(selection.alreadyApplied))]
    const indexes = [...yield* IndexBuilds.buildDue(settings, migrationsOf(selection.alreadyApplied))]
    for (const migration of selection.pending) {
      const outcome = yield* applyMigration(setup, migration)
      if (outcome._tag === "Applied") applied.push(outcome.migration)
      else appliedConcurrently.push(migration.id)
      // Its constraint and index phases, before the next migration (which may rely on them).
      constraints.push(...yield* Constraints.validateDue(validation, setup.dialect, [migration]))
      indexes.push(...yield* IndexBuilds.buildDue(settings, [migration]))
    }
    const deferredIndexes = (yield* indexStatuses(setup)).filter((index) =>
      index.state === "deferred" && (target === undefined || index.migrationId <= target)
    )
    const lockTimeoutMs = setup.dialect === "pg" ? Duration.toMillis(setup.lockTimeout) : undefined
    return { plan: plan.name, applied, alreadyApplied: selection.alreadyApplied, appliedConcurrently, indexes, deferredIndexes, lockTimeoutMs, constraints }
  }).pipe(Effect.withSpan("Migrator.run", { attributes: { plan: setup.plan.name } }))

const readStatus = (setup: Setup): Effect.Effect<StatusReport, StatusError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { rows } = yield* peekHistory(setup)
    return statusOf(setup, rows, yield* indexStatuses(setup), yield* constraintStatuses(setup, rows))
  })

const checkValidity = (setup: Setup): Effect.Effect<ValidationReport, StatusError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { plan } = setup
    const { rows } = yield* peekHistory(setup)
    const report = statusOf(setup, rows, yield* indexStatuses(setup), yield* constraintStatuses(setup, rows))
    const pending = plan.migrations.filter((migration) => !rows.some((row) => row.id === migration.id))
    const problems = yield* preflightProblems(setup, pending)
    const selected = select(setup, rows, undefined)
    const refusal = Either.isLeft(selected)
      ? selected.left
      : yield* contractGate(setup, selected.right).pipe(
        Effect.as(undefined),
        Effect.catchTag("ContractUnverified", (unverified) => Effect.succeed(unverified))
      )
    const applied = plan.migrations.filter((migration) =>
      report.migrations.some((status) => status.id === migration.id && status.state === "applied")
    )
    const unfinished = yield* unfinishedWork(plan, setup.dialect, applied, setup.checksumOf).pipe(
      Effect.mapError(setup.databaseError("read the constraint and index phases of applied migrations"))
    )
    const ok = refusal === undefined && problems.length === 0 &&
      report.migrations.every((migration) => migration.state === "applied") &&
      unfinished.length === 0 && report.constraints.every((constraint) => constraint.state !== "missing")
    return { ...report, ok, refusal, problems, unfinished }
  }).pipe(Effect.withSpan("Migrator.validate", { attributes: { plan: setup.plan.name } }))

const dryRunPending = (setup: Setup, runOptions: RunOptions = {}): Effect.Effect<DryRunResult, DryRunError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { plan, dialect, checksumOf, databaseError } = setup
    const target = yield* resolveTarget(setup, runOptions.to)
    const history = yield* peekHistory(setup)
    const selection = yield* select(setup, history.rows, target)
    yield* preflight(setup, selection)
    yield* contractGate(setup, selection)
    const pending = yield* plannedMigrations(plan, dialect, selection.pending, checksumOf, (table, column) =>
      columnExists(table, column).pipe(Effect.mapError(databaseError(`read the columns of ${table}`))))
    const applied = plan.migrations.filter((m) => selection.alreadyApplied.includes(m.id))
    const unfinished = yield* unfinishedWork(plan, dialect, applied, checksumOf).pipe(
      Effect.mapError(databaseError("read the constraint and index phases of applied migrations"))
    )
    return {
      plan: plan.name,
      dialect,
      createsHistoryTable: !history.exists,
      pending,
      alreadyApplied: selection.alreadyApplied,
      unfinished
    }
  }).pipe(Effect.withSpan("Migrator.dryRun", { attributes: { plan: setup.plan.name } }))

/** Inside the runner lock: refuse drift up to `id`, then record the migrations not yet recorded. */
const recordBaseline = (setup: Setup, covered: ReadonlyArray<Plan.Migration>) =>
  Effect.gen(function*() {
    const { plan, historyTable, checksumOf, databaseError } = setup
    const recorded = new Map((yield* readHistory(setup)).map((row) => [row.id, row]))
    for (const migration of covered) {
      const row = recorded.get(migration.id)
      if (row !== undefined && row.checksum !== checksumOf(migration)) return yield* drifted(setup, migration, row)
    }
    const appliedAtMs = yield* Timestamp.now
    const baselined: Array<number> = []
    for (const migration of covered) {
      if (recorded.has(migration.id)) continue
      yield* History.insert(historyTable, plan.name, {
        id: migration.id,
        name: migration.name,
        checksum: checksumOf(migration),
        appliedAtMs,
        durationMs: null
      }).pipe(Effect.mapError(databaseError(`record migration ${migration.id} in ${historyTable}`)))
      baselined.push(migration.id)
    }
    const alreadyApplied = covered.filter((migration) => recorded.has(migration.id)).map((m) => m.id)
    return { plan: plan.name, baselined, alreadyApplied }
  })

const baselineUpTo = (setup: Setup, id: number): Effect.Effect<BaselineResult, BaselineError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const { plan, databaseError } = setup
    yield* resolveTarget(setup, id)
    yield* ensureHistory(setup)
    const covered = plan.migrations.filter((migration) => migration.id <= id)
    const result = yield* withLockedTransaction(yield* migrationLock(setup), recordBaseline(setup, covered)).pipe(
      Effect.catchTags({
        LockTimedOut: (error) => Effect.fail(lockTimedOut(setup, error.waitedMs)),
        TransactionControlFailed: (error) =>
          Effect.fail(databaseError(`${error.operation} the baseline transaction`)(error.cause))
      })
    )
    for (const migrationId of result.baselined) {
      const migration = covered.find((m) => m.id === migrationId)
      yield* Effect.logInfo("migration baselined (recorded as applied without running it)").pipe(
        Effect.annotateLogs({ plan: plan.name, migration_id: migrationId, migration_name: migration?.name ?? "" })
      )
    }
    return result
  }).pipe(Effect.withSpan("Migrator.baseline", { attributes: { plan: setup.plan.name, id } }))

/**
 * The tag of the Migrator service.
 *
 * @since 0.1.0
 * @category tags
 */
export const Migrator = Context.GenericTag<Migrator>("@strata/sql/Migrator")

/**
 * A Migrator for `plan` over the `SqlClient` in context (e.g. several plans over one database).
 * Its statements run on `Database.strataClient` (the app's client without name transforms).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  plan: Plan.Plan,
  options: MigratorOptions = {}
): Effect.Effect<Migrator, InvalidMigratorOptions, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const resolved = yield* resolveOptions(options)
    const sql = yield* Database.strataClient
    /** Every statement of the Migrator runs on strata's client, whatever the caller's context holds. */
    const onStrataClient = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.provideService(effect, SqlClient.SqlClient, sql)
    const dialect = yield* Database.dialect
    const setup = setupOf(plan, resolved, dialect, yield* Database.strataTable("strata_migrations"))
    return Migrator.of({
      plan,
      dialect,
      run: (runOptions) => onStrataClient(applyPending(setup, runOptions)),
      status: () => onStrataClient(readStatus(setup)),
      dryRun: (runOptions) => onStrataClient(dryRunPending(setup, runOptions)),
      baseline: (id) => onStrataClient(baselineUpTo(setup, id)),
      validate: () => onStrataClient(checkValidity(setup))
    })
  })

/**
 * The Migrator for `plan` over the app's `SqlClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  plan: Plan.Plan,
  options?: MigratorOptions
): Layer.Layer<Migrator, InvalidMigratorOptions, SqlClient.SqlClient> =>
  Layer.effect(Migrator, make(plan, options))

/**
 * `run` on the Migrator in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const run = (options?: RunOptions): Effect.Effect<RunResult, RunError, Migrator> =>
  Effect.flatMap(Migrator, (migrator) => migrator.run(options))

/**
 * `status` on the Migrator in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const status = (): Effect.Effect<StatusReport, StatusError, Migrator> =>
  Effect.flatMap(Migrator, (migrator) => migrator.status())

/**
 * `dryRun` on the Migrator in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const dryRun = (options?: RunOptions): Effect.Effect<DryRunResult, DryRunError, Migrator> =>
  Effect.flatMap(Migrator, (migrator) => migrator.dryRun(options))

/**
 * `validate` on the Migrator in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const validate = (): Effect.Effect<ValidationReport, StatusError, Migrator> =>
  Effect.flatMap(Migrator, (migrator) => migrator.validate())

/**
 * `baseline` on the Migrator in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const baseline = (id: number): Effect.Effect<BaselineResult, BaselineError, Migrator> =>
  Effect.flatMap(Migrator, (migrator) => migrator.baseline(id))
