/**
 * The constraint phase of a migration (PostgreSQL): the constraints `Compile.constraintValidations`
 * adds NOT VALID in the migration's transaction, validated once it has committed. Where each one
 * stands is read from PostgreSQL's catalogue, never stored: `pg_constraint.convalidated` of the
 * constraint, and `pg_attribute.attnotnull` of its column for a NOT NULL.
 *
 * - `notValid`: added NOT VALID (new rows are checked), existing rows not yet: `VALIDATE
 *   CONSTRAINT` runs in a transaction of its own, under SHARE UPDATE EXCLUSIVE, which lets the
 *   app's reads and writes through while it scans;
 * - `validated`: a NOT NULL's CHECK is validated, the column not yet NOT NULL: `SET NOT NULL` (the
 *   validated CHECK spares it the scan) and the CHECK dropped, in one short transaction;
 * - `valid`: done;
 * - `missing`: the table, column or constraint is not there (a later migration dropped it, or the
 *   migration was recorded without running it): nothing to do.
 *
 * Each transaction holds the plan's runner lock and re-reads the catalogue under it, so a run
 * killed anywhere leaves a state the next `migrate` continues from. Its statements run under the
 * migration statements' `lock_timeout`; one that meets it is retried with the Migrator's jittered
 * backoff, then fails with `ConstraintValidationBlocked` naming the sessions it waited for. A row
 * that breaks the constraint fails the validation (`ConstraintValidationFailed`): the migration
 * stays applied, the constraint NOT VALID (still checking new rows), the rows as they were.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Compile, Identifier, type Plan, Timestamp } from "@strata/core"
import { Data, Duration, Effect, Ref, Schema } from "effect"
import { errorCode, failureText } from "../SqlErrors.js"
import { backendPid, Blocker, describeBlockers, watched } from "./blockers.js"
import { lockRetrySchedule } from "./indexBuilds.js"
import { isPgLockTimeout, type LockedTransactionOptions, withLockedTransaction } from "./lockedTransaction.js"
import { unprepared } from "./unprepared.js"

/**
 * Where a constraint of the constraint phase is (see the module documentation).
 *
 * @since 0.2.0
 * @category models
 */
export type ConstraintState = "notValid" | "validated" | "valid" | "missing"

/**
 * One constraint of the constraint phase as `Migrator.status` reports it.
 *
 * @since 0.2.0
 * @category models
 */
export interface ConstraintStatus {
  readonly migrationId: number
  readonly kind: Compile.ConstraintValidation["kind"]
  readonly table: string
  readonly column: string
  readonly name: string
  readonly state: ConstraintState
}

/**
 * A constraint this run validated (and, for a NOT NULL, made the column NOT NULL).
 *
 * @since 0.2.0
 * @category models
 */
export interface ValidatedConstraint {
  readonly migrationId: number
  readonly kind: Compile.ConstraintValidation["kind"]
  readonly table: string
  readonly column: string
  readonly name: string
  readonly durationMs: number
  /** How long the VALIDATE's transaction took (the app read and wrote meanwhile); null when an earlier run had validated it. */
  readonly validateMs: number | null
  /** A NOT NULL: how long SET NOT NULL and dropping the CHECK held the table's ACCESS EXCLUSIVE lock; otherwise null. */
  readonly finishMs: number | null
}

/**
 * Existing rows break a constraint an applied migration added (a NULL for a NOT NULL, a value
 * outside `oneOf`, a key without its referenced row). The migration stays applied and the
 * constraint NOT VALID: new rows are checked, the existing ones are as they were. Fix the rows,
 * then run migrate again.
 *
 * @since 0.2.0
 * @category errors
 */
export class ConstraintValidationFailed extends Schema.TaggedError<ConstraintValidationFailed>()("ConstraintValidationFailed", {
  plan: Schema.String,
  id: Schema.Number,
  kind: Schema.Literal("notNull", "check", "foreignKey"),
  table: Schema.String,
  column: Schema.String,
  constraint: Schema.String,
  statement: Schema.String,
  cause: Schema.String
}) {
  override get message(): string {
    const what = this.kind === "notNull" ? "NOT NULL" : this.kind === "check" ? "CHECK" : "foreign key"
    return `The ${what} constraint ${this.constraint} on ${this.table}.${this.column} (migration ${this.id} of plan ${this.plan}, which stays applied) does not hold for existing rows, which were left as they are: ${this.cause}; statement: ${this.statement}. New rows are checked already; fix the existing ones and run migrate again`
  }
}

/**
 * A statement of the constraint phase waited `lockTimeoutMs` for a lock on each of its `attempts`.
 * The migration stays applied, the constraint where it was; `blockers` are the sessions it waited
 * for at the last attempt (`pg_blocking_pids`, with their query).
 *
 * @since 0.2.0
 * @category errors
 */
export class ConstraintValidationBlocked extends Schema.TaggedError<ConstraintValidationBlocked>()("ConstraintValidationBlocked", {
  plan: Schema.String,
  id: Schema.Number,
  table: Schema.String,
  column: Schema.String,
  constraint: Schema.String,
  statement: Schema.String,
  attempts: Schema.Number,
  lockTimeoutMs: Schema.Number,
  blockers: Schema.Array(Blocker)
}) {
  override get message(): string {
    const blockers = describeBlockers(this.blockers)
    return `Constraint ${this.constraint} on ${this.table}.${this.column} (migration ${this.id} of plan ${this.plan}, which stays applied) is not validated yet: ${this.attempts} attempt${
      this.attempts === 1 ? "" : "s"
    } each waited ${this.lockTimeoutMs} ms (lock_timeout) for ${blockers}; statement: ${this.statement}. Run migrate again when they are done`
  }
}

/**
 * The runner lock was not obtained for the constraint phase, or the catalogue could not be read.
 *
 * @since 0.2.0
 * @category errors
 */
export class ConstraintPhaseError extends Schema.TaggedError<ConstraintPhaseError>()("ConstraintPhaseError", {
  plan: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Constraint phase of plan ${this.plan}: could not ${this.operation}: ${this.reason}`
  }
}

/**
 * What the constraint phase can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type ConstraintPhaseFailure = ConstraintValidationFailed | ConstraintValidationBlocked | ConstraintPhaseError

/** How the constraint phase of a plan runs: the runner lock, and the statements' lock_timeout with its retries. */
export interface Settings {
  readonly plan: Plan.Plan
  readonly runnerLock: LockedTransactionOptions
  readonly lockTimeout: Duration.Duration
  readonly lockRetries: number
}

/** The constraint's state in PostgreSQL's catalogue. */
export const catalogState = (constraint: Compile.ConstraintValidation): Effect.Effect<ConstraintState, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(
        sql`SELECT a.attnotnull AS not_null, c.conname IS NOT NULL AS present, c.convalidated AS validated
            FROM pg_attribute a LEFT JOIN pg_constraint c ON c.conrelid = a.attrelid AND c.conname = ${constraint.name}
            WHERE a.attrelid = to_regclass(${Identifier.quoteTable(constraint.table)}) AND a.attname = ${constraint.column}
              AND a.attnum > 0 AND NOT a.attisdropped`
      ),
      (rows): ConstraintState => {
        const row = rows[0] as { not_null?: unknown; present?: unknown; validated?: unknown } | undefined
        if (row === undefined) return "missing"
        if (constraint.kind === "notNull") {
          if (row.present !== true) return row.not_null === true ? "valid" : "missing"
          return row.validated === true ? "validated" : "notValid"
        }
        return row.present !== true ? "missing" : row.validated === true ? "valid" : "notValid"
      }
    ))

/** PostgreSQL's class 23, integrity constraint violation: rows that break the constraint (not a lost connection). */
const isIntegrityViolation = (error: SqlError): boolean => errorCode(error)?.startsWith("23") ?? false

class PhaseBlocked extends Data.TaggedError("PhaseBlocked")<{
  readonly statement: string
  readonly blockers: ReadonlyArray<Blocker>
}> {}

/** One constraint: validated, then (a NOT NULL) finished; each step its own locked transaction. `undefined`: nothing was left to do. */
const validateOne = (settings: Settings, migrationId: number, constraint: Compile.ConstraintValidation) =>
  Effect.gen(function*() {
    const plan = settings.plan.name
    const phaseError = (operation: string) => (cause: SqlError) => new ConstraintPhaseError({ plan, operation, reason: failureText(cause) })
    const failed = (statement: string) => (cause: SqlError) =>
      new ConstraintValidationFailed({
        plan,
        id: migrationId,
        kind: constraint.kind,
        table: constraint.table,
        column: constraint.column,
        constraint: constraint.name,
        statement,
        cause: failureText(cause)
      })
    const attempts = yield* Ref.make(0)
    const blockers = yield* Ref.make<ReadonlyArray<Blocker>>([])
    const run = (pid: number, statement: string) =>
      watched(Effect.flatMap(SqlClient.SqlClient, (client) => unprepared(client.unsafe(statement))), pid, settings.lockTimeout, blockers).pipe(
        Effect.catchAll((cause): Effect.Effect<never, PhaseBlocked | ConstraintValidationFailed | ConstraintPhaseError> =>
          isPgLockTimeout(cause)
            ? Effect.flatMap(Ref.get(blockers), (seen) => Effect.fail(new PhaseBlocked({ statement, blockers: seen })))
            : isIntegrityViolation(cause)
            ? Effect.fail(failed(statement)(cause))
            : Effect.fail(phaseError(`run ${statement}`)(cause))
        )
      )
    /** One transaction under the runner lock: the statements, when the catalogue (re-read under the lock) is in `from`. */
    const step = (from: ConstraintState, statements: ReadonlyArray<string>) =>
      withLockedTransaction(
        { ...settings.runnerLock, statementLockTimeout: settings.lockTimeout },
        Effect.gen(function*() {
          yield* Ref.update(attempts, (n) => n + 1)
          yield* Ref.set(blockers, [])
          const state = yield* catalogState(constraint).pipe(Effect.mapError(phaseError("read pg_constraint")))
          if (state !== from) return false
          const pid = yield* backendPid.pipe(Effect.mapError(phaseError("read pg_backend_pid()")))
          for (const statement of statements) yield* run(pid, statement)
          return true
        })
      ).pipe(
        Effect.catchTags({
          LockTimedOut: (error) =>
            Effect.fail(new ConstraintPhaseError({ plan, operation: "take the runner lock", reason: `another runner held it for ${error.waitedMs} ms` })),
          TransactionControlFailed: (error) => Effect.fail(phaseError(`${error.operation} the constraint phase's transaction`)(error.cause))
        }),
        Effect.tapErrorTag("PhaseBlocked", (error) =>
          Effect.logWarning("a constraint phase statement met its lock timeout; rolled back, retrying").pipe(
            Effect.annotateLogs({ blocking_pids: error.blockers.map((b) => b.pid).join(",") })
          )),
        Effect.retry({ schedule: lockRetrySchedule(settings.lockRetries), while: (error) => error._tag === "PhaseBlocked" }),
        Effect.catchTag("PhaseBlocked", (error) =>
          Effect.flatMap(Ref.get(attempts), (tried) =>
            Effect.fail(
              new ConstraintValidationBlocked({
                plan,
                id: migrationId,
                table: constraint.table,
                column: constraint.column,
                constraint: constraint.name,
                statement: error.statement,
                attempts: tried,
                lockTimeoutMs: Duration.toMillis(settings.lockTimeout),
                blockers: error.blockers
              })
            )))
      )
    /** A step and how long it took, null when the catalogue said it was done already. */
    const timed = (from: ConstraintState, statements: ReadonlyArray<string>) =>
      Effect.gen(function*() {
        const started = yield* Timestamp.now
        const ran = yield* step(from, statements)
        return ran ? Math.max(0, (yield* Timestamp.now) - started) : null
      })
    const started = yield* Timestamp.now
    yield* Effect.logInfo("validating constraint")
    const validateMs = yield* timed("notValid", [constraint.validate])
    yield* Ref.set(attempts, 0)
    const finishMs = constraint.finish.length > 0 ? yield* timed("validated", constraint.finish) : null
    if (validateMs === null && finishMs === null) return undefined
    const durationMs = Math.max(0, (yield* Timestamp.now) - started)
    yield* Effect.logInfo("constraint validated").pipe(
      Effect.annotateLogs({ duration_ms: durationMs, validate_ms: validateMs ?? "", finish_ms: finishMs ?? "" })
    )
    return {
      migrationId,
      kind: constraint.kind,
      table: constraint.table,
      column: constraint.column,
      name: constraint.name,
      durationMs,
      validateMs,
      finishMs
    }
  }).pipe(Effect.annotateLogs({ migration_id: migrationId, constraint: constraint.name, table: constraint.table }))

/**
 * Validates (and finishes) the constraints of applied migrations that are not valid yet, in plan
 * order; none on SQLite. The catalogue is read first, outside any lock, so a database with nothing
 * left to do takes no lock.
 */
export const validateDue = (
  settings: Settings,
  dialect: "sqlite" | "pg",
  migrations: ReadonlyArray<Plan.Migration>
): Effect.Effect<ReadonlyArray<ValidatedConstraint>, ConstraintPhaseFailure, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const constraints = yield* due(settings.plan, dialect, migrations).pipe(
      Effect.mapError((cause) => new ConstraintPhaseError({ plan: settings.plan.name, operation: "read pg_constraint", reason: failureText(cause) }))
    )
    const validated: Array<ValidatedConstraint> = []
    for (const { constraint, migration } of constraints) {
      const result = yield* validateOne(settings, migration.id, constraint)
      if (result !== undefined) validated.push(result)
    }
    return validated
  }).pipe(Effect.annotateLogs({ plan: settings.plan.name }))

/** A constraint `validateDue` would validate (`notValid`) or finish (`validated`). */
export interface DueConstraint {
  readonly migration: Plan.Migration
  readonly constraint: Compile.ConstraintValidation
  readonly state: "notValid" | "validated"
}

/**
 * The constraints of `migrations` not valid yet in the catalogue, in plan order: what
 * `validateDue` would do now; none on SQLite. Reads only, outside any lock.
 */
export const due = (
  plan: Plan.Plan,
  dialect: "sqlite" | "pg",
  migrations: ReadonlyArray<Plan.Migration>
): Effect.Effect<ReadonlyArray<DueConstraint>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (dialect !== "pg") return []
    const found: Array<DueConstraint> = []
    for (const migration of migrations) {
      for (const constraint of Compile.constraintValidations(migration, dialect, plan)) {
        const state = yield* catalogState(constraint)
        if (state === "notValid" || state === "validated") found.push({ migration, constraint, state })
      }
    }
    return found
  })

/** The constraint phase of the given (applied) migrations as the catalogue has it now; none on SQLite. */
export const statuses = (
  plan: Plan.Plan,
  dialect: "sqlite" | "pg",
  migrations: ReadonlyArray<Plan.Migration>
): Effect.Effect<ReadonlyArray<ConstraintStatus>, SqlError, SqlClient.SqlClient> =>
  dialect !== "pg"
    ? Effect.succeed([])
    : Effect.forEach(
      migrations.flatMap((migration) => Compile.constraintValidations(migration, dialect, plan).map((constraint) => ({ migration, constraint }))),
      ({ constraint, migration }) =>
        Effect.map(catalogState(constraint), (state): ConstraintStatus => ({
          migrationId: migration.id,
          kind: constraint.kind,
          table: constraint.table,
          column: constraint.column,
          name: constraint.name,
          state
        }))
    )
