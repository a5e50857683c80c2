/**
 * The index phase of a migration: the indexes `Compile.indexBuilds` puts outside its transaction,
 * tracked in `strata_indexes` (one row per plan and index: state, when the last build started and
 * finished, how long it took, how many attempts).
 *
 * - `pending`: recorded by the migration's transaction, to be built once it has committed;
 * - `deferred`: the index of a backfilled target, to be built once its job is done;
 * - `building`: a build started and has not finished (running now, or interrupted: on PostgreSQL
 *   a killed `CREATE INDEX CONCURRENTLY` leaves an INVALID index, which the next build drops);
 * - `valid`: built.
 *
 * Every build holds the plan's runner lock (so two runners never build the same index) and is
 * re-checked under it. On PostgreSQL the build runs on a session of its own, outside any
 * transaction. A concurrent build waits for every transaction of the database older than it
 * (those writing the table, then every snapshot, whatever schema it reads); it blocks neither
 * the app's reads nor its writes meanwhile, so by default it waits as long as it takes. With
 * `indexBuildTimeout` it runs under that `lock_timeout`: a build that meets it is retried (the
 * next attempt drops the INVALID index it leaves) like a blocked migration, then fails with
 * `IndexBuildBlocked`; the migration itself stays applied.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Compile, Identifier, type Plan, Timestamp } from "@strata/core"
import { Data, Duration, Effect, Ref, Schedule, Schema } from "effect"
import { tableColumns } from "../Catalog.js"
import * as Database from "../Database.js"
import { failureText } from "../SqlErrors.js"
import { backendPid, Blocker, describeBlockers, watched } from "./blockers.js"
import {
  advisoryLockKey,
  isPgLockTimeout,
  type LockedTransactionOptions,
  lockTimeoutSetting,
  withLockedSession,
  withLockedTransaction
} from "./lockedTransaction.js"
import { unprepared } from "./unprepared.js"

/**
 * Where an index of the index phase is (see the module documentation); `invalid` is `building`
 * as PostgreSQL's catalogue shows it after an interrupted concurrent build (`pg_index.indisvalid`
 * false): the next `migrate` drops and rebuilds it.
 *
 * @since 0.2.0
 * @category models
 */
export type IndexState = "deferred" | "pending" | "building" | "invalid" | "valid"

/**
 * One index of the index phase as `Migrator.status` reports it.
 *
 * @since 0.2.0
 * @category models
 */
export interface IndexStatus {
  readonly migrationId: number
  readonly name: string
  readonly table: string
  readonly state: IndexState
  /** The backfill job a deferred index waits for (an index of a backfilled target), else null. */
  readonly afterJob: string | null
  readonly startedAtMs: number | null
  readonly finishedAtMs: number | null
  readonly durationMs: number | null
  readonly attempts: number
}

/**
 * An index this run built (or found built by another runner: `durationMs` null).
 *
 * @since 0.2.0
 * @category models
 */
export interface BuiltIndex {
  readonly migrationId: number
  readonly name: string
  readonly table: string
  readonly durationMs: number | null
  /** An INVALID index an interrupted build left was dropped first. */
  readonly rebuiltInvalid: boolean
  /** PostgreSQL: built with CONCURRENTLY (false: a small table's plain build, or SQLite). */
  readonly concurrently: boolean
}

/**
 * An index build of an applied migration failed (for instance a unique index over duplicate
 * values). The migration stays applied; the index is left `building` (on PostgreSQL INVALID, which
 * the next `migrate` drops and builds again).
 *
 * @since 0.2.0
 * @category errors
 */
export class IndexBuildFailed extends Schema.TaggedError<IndexBuildFailed>()("IndexBuildFailed", {
  plan: Schema.String,
  id: Schema.Number,
  index: Schema.String,
  table: Schema.String,
  statement: Schema.String,
  cause: Schema.String
}) {
  override get message(): string {
    return `Index ${this.index} on ${this.table} (migration ${this.id} of plan ${this.plan}, which stays applied) could not be built: ${this.cause}; statement: ${this.statement}. Run migrate again to retry it`
  }
}

/**
 * PostgreSQL: an index build waited `lockTimeoutMs` (`indexBuildTimeout`) on each of its `attempts`,
 * for a table lock or for older transactions to end (a concurrent build waits for them). The migration
 * stays applied, the index is not built yet; `blockers` are the sessions it waited for at the last attempt.
 *
 * @since 0.2.0
 * @category errors
 */
export class IndexBuildBlocked extends Schema.TaggedError<IndexBuildBlocked>()("IndexBuildBlocked", {
  plan: Schema.String,
  id: Schema.Number,
  index: Schema.String,
  table: Schema.String,
  statement: Schema.String,
  attempts: Schema.Number,
  lockTimeoutMs: Schema.Number,
  blockers: Schema.Array(Blocker)
}) {
  override get message(): string {
    const blockers = describeBlockers(this.blockers)
    return `Index ${this.index} on ${this.table} (migration ${this.id} of plan ${this.plan}, which stays applied) is not built: ${this.attempts} attempt${
      this.attempts === 1 ? "" : "s"
    } each waited ${this.lockTimeoutMs} ms (lock_timeout) for ${blockers}. Run migrate again when they are done`
  }
}

/**
 * The runner lock was not obtained for an index build, or strata's own tables failed.
 *
 * @since 0.2.0
 * @category errors
 */
export class IndexPhaseError extends Schema.TaggedError<IndexPhaseError>()("IndexPhaseError", {
  plan: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Index phase of plan ${this.plan}: could not ${this.operation}: ${this.reason}`
  }
}

/**
 * What an index build can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type IndexBuildError = IndexBuildFailed | IndexBuildBlocked | IndexPhaseError

interface IndexRow {
  readonly migrationId: number
  readonly name: string
  readonly table: string
  readonly afterJob: string | null
  readonly state: "deferred" | "pending" | "building" | "valid"
  readonly startedAtMs: number | null
  readonly finishedAtMs: number | null
  readonly durationMs: number | null
  readonly attempts: number
}

/** `strata_indexes` where the app keeps strata's tables. */
export const indexTable: Effect.Effect<Identifier.TableName> = Database.strataTable("strata_indexes")

const createStatement = (table: Identifier.TableName, dialect: "sqlite" | "pg"): string => {
  const integer = dialect === "pg" ? "BIGINT" : "INTEGER"
  return `CREATE TABLE IF NOT EXISTS ${Identifier.quoteTable(table)} (
  plan TEXT NOT NULL,
  migration_id ${integer} NOT NULL,
  index_name TEXT NOT NULL,
  table_name TEXT NOT NULL,
  after_job TEXT,
  state TEXT NOT NULL CHECK (state IN ('deferred', 'pending', 'building', 'valid')),
  started_at_ms ${integer},
  finished_at_ms ${integer},
  duration_ms ${integer},
  attempts ${integer} NOT NULL DEFAULT 0,
  PRIMARY KEY (plan, table_name, index_name)
)`
}

/** Creates `strata_indexes` if missing (in the Migrator's history transaction). */
export const create = (table: Identifier.TableName, dialect: "sqlite" | "pg"): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.asVoid(unprepared(sql.unsafe(createStatement(table, dialect)))))

/** Whether `strata_indexes` exists. */
export const exists = (table: Identifier.TableName): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.map(tableColumns(table), (columns) => columns.length > 0)

const named = (sql: SqlClient.SqlClient, table: Identifier.TableName) => sql.literal(Identifier.quoteTable(table))

const selectList = "migration_id, index_name, table_name, after_job, state, started_at_ms, finished_at_ms, duration_ms, attempts"

const orNull = (value: unknown): number | null => (value != null ? Number(value) : null)

const toRow = (row: Record<string, unknown>): IndexRow => ({
  migrationId: Number(row["migration_id"]),
  name: String(row["index_name"]),
  table: String(row["table_name"]),
  afterJob: row["after_job"] != null ? String(row["after_job"]) : null,
  state: String(row["state"]) as IndexRow["state"],
  startedAtMs: orNull(row["started_at_ms"]),
  finishedAtMs: orNull(row["finished_at_ms"]),
  durationMs: orNull(row["duration_ms"]),
  attempts: Number(row["attempts"] ?? 0)
})

/** The plan's rows, in migration order. */
export const read = (table: Identifier.TableName, plan: string): Effect.Effect<ReadonlyArray<IndexRow>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(sql`SELECT ${sql.literal(selectList)} FROM ${named(sql, table)} WHERE plan = ${plan} ORDER BY migration_id, index_name`),
      (rows) => rows.map(toRow)
    ))

const find = (table: Identifier.TableName, plan: string, build: Compile.IndexBuild) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(
        sql`SELECT ${sql.literal(selectList)} FROM ${named(sql, table)} WHERE plan = ${plan} AND table_name = ${build.index.table} AND index_name = ${build.index.name}`
      ),
      (rows) => (rows[0] !== undefined ? toRow(rows[0]) : undefined)
    ))

/** Records a migration's index phase (in the migration's transaction): pending, or deferred until its job is done. */
export const record = (
  table: Identifier.TableName,
  plan: string,
  migrationId: number,
  builds: ReadonlyArray<Compile.IndexBuild>
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.forEach(builds, (build) =>
      unprepared(
        sql`INSERT INTO ${named(sql, table)} (plan, migration_id, index_name, table_name, after_job, state, attempts) VALUES (${plan}, ${migrationId}, ${build.index.name}, ${build.index.table}, ${
          build.index.afterJob ?? null
        }, ${build.timing === "afterJob" ? "deferred" : "pending"}, 0) ON CONFLICT DO NOTHING`
      ), { discard: true }))

const markBuilding = (table: Identifier.TableName, plan: string, build: Compile.IndexBuild, startedAtMs: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    unprepared(
      sql`UPDATE ${named(sql, table)} SET state = 'building', started_at_ms = ${startedAtMs}, finished_at_ms = NULL, duration_ms = NULL, attempts = attempts + 1 WHERE plan = ${plan} AND table_name = ${build.index.table} AND index_name = ${build.index.name}`
    ))

const markValid = (table: Identifier.TableName, plan: string, build: Compile.IndexBuild, finishedAtMs: number, durationMs: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    unprepared(
      sql`UPDATE ${named(sql, table)} SET state = 'valid', finished_at_ms = ${finishedAtMs}, duration_ms = ${durationMs} WHERE plan = ${plan} AND table_name = ${build.index.table} AND index_name = ${build.index.name}`
    ))

/** PostgreSQL's catalogue on an index of a table: absent, valid, or INVALID (an interrupted concurrent build). */
const pgValidity = (build: Compile.IndexBuild): Effect.Effect<"missing" | "valid" | "invalid", SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(
        sql`SELECT i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = to_regclass(${Identifier.quoteTable(build.index.table)}) AND c.relname = ${build.index.name}`
      ),
      (rows) => (rows[0] === undefined ? "missing" : (rows[0] as { valid: unknown }).valid === true ? "valid" : "invalid")
    ))

/** PostgreSQL: the table's size on disk with its indexes and TOAST. */
const tableBytes = (build: Compile.IndexBuild): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(sql`SELECT pg_total_relation_size(to_regclass(${Identifier.quoteTable(build.index.table)})) AS bytes`),
      (rows) => Number((rows[0] as { bytes?: unknown } | undefined)?.bytes ?? 0)
    ))

/** PostgreSQL: the session's lock_timeout (the index build runs outside any transaction). */
const setLockTimeout = (timeout: Duration.Duration): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(unprepared(sql`SELECT set_config('lock_timeout', ${lockTimeoutSetting(timeout)}, false)`)))

/** Whether a backfill job has finished (its checkpoint says done). */
const jobDone = (job: string): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const jobs = yield* Database.strataTable("strata_jobs")
    if ((yield* tableColumns(jobs)).length === 0) return false
    const sql = yield* SqlClient.SqlClient
    const rows = yield* unprepared(sql`SELECT state FROM ${named(sql, jobs)} WHERE job = ${job}`)
    return (rows[0] as { state?: unknown } | undefined)?.state === "done"
  })

/** How the index phase of a plan runs: the runner lock, and PostgreSQL's lock_timeout with its retries. */
export interface Settings {
  readonly plan: Plan.Plan
  readonly dialect: "sqlite" | "pg"
  readonly runnerLock: LockedTransactionOptions
  /** PostgreSQL: the `lock_timeout` of a concurrent build and of the DROP of an INVALID index (infinite: none). */
  readonly indexBuildTimeout: Duration.Duration
  /** PostgreSQL: the `lock_timeout` of a small table's plain build (the migration statements' `lockTimeout`). */
  readonly lockTimeout: Duration.Duration
  /** PostgreSQL: tables of at least this many bytes (`pg_total_relation_size`) get CONCURRENTLY; smaller ones a plain build. */
  readonly concurrentIndexMinBytes: number
  readonly lockRetries: number
  /**
   * Leave the build when another runner holds the runner lock instead of waiting for it (the hook
   * after a backfill job: the holder, a migrate or another backfill, or the next `migrate` builds it).
   */
  readonly leaveWhenLocked: boolean
}

/** The defaults of `Migrator.make`, for builds that start elsewhere (after a backfill job). */
export const defaultIndexBuildTimeout = Duration.infinity
/**
 * A concurrent build scans its table twice and waits for every transaction of the database older
 * than it; on a table under 8 MiB a plain build holds off writes for milliseconds, under lock_timeout.
 */
export const defaultConcurrentIndexMinBytes = 8 * 1024 * 1024
export const defaultLockTimeout = Duration.seconds(2)
export const defaultLockRetries = 10
export const defaultRunnerTimeout = Duration.seconds(60)

/** Between attempts of a statement that met its lock timeout: 100 ms doubling to at most 5 s, jittered. */
export const lockRetrySchedule = (retries: number) =>
  Schedule.exponential("100 millis", 2).pipe(
    Schedule.union(Schedule.spaced("5 seconds")),
    Schedule.jittered,
    Schedule.intersect(Schedule.recurs(retries))
  )

/**
 * The runner lock's key for a plan: its history table named with the schema it resolves to
 * (PostgreSQL's advisory locks are per database, its tables per schema).
 */
export const runnerLockKey = (plan: Plan.Plan): Effect.Effect<string, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const historyTable = yield* Database.strataTable("strata_migrations")
    if ((yield* Database.dialect) !== "pg" || Identifier.tableParts(historyTable).schema !== undefined) {
      return advisoryLockKey(`${historyTable}:${plan.name}`)
    }
    const sql = yield* SqlClient.SqlClient
    const rows = yield* unprepared(sql.unsafe<{ schema: unknown }>("SELECT current_schema() AS schema"))
    return advisoryLockKey(`${String(rows[0]?.schema)}.${historyTable}:${plan.name}`)
  })

/** Settings with the Migrator's defaults, for the build after a backfill job. */
export const defaultSettings = (plan: Plan.Plan): Effect.Effect<Settings, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const dialect = yield* Database.dialect
    return {
      plan,
      dialect,
      // One attempt at the lock (a zero timeout), see `leaveWhenLocked`.
      runnerLock: { dialect, lockKey: yield* runnerLockKey(plan), lockTimeout: Duration.zero },
      indexBuildTimeout: defaultIndexBuildTimeout,
      lockTimeout: defaultLockTimeout,
      concurrentIndexMinBytes: defaultConcurrentIndexMinBytes,
      lockRetries: defaultLockRetries,
      leaveWhenLocked: true
    }
  })

class BuildBlocked extends Data.TaggedError("BuildBlocked")<{
  readonly statement: string
  readonly blockers: ReadonlyArray<Blocker>
  /** The lock_timeout the statement met: a small table's plain build waits under the migration's, not indexBuildTimeout. */
  readonly timeout: Duration.Duration
}> {}

/** One index, under the runner lock; `undefined` when another runner built it meanwhile. */
const buildOne = (settings: Settings, migrationId: number, build: Compile.IndexBuild) =>
  Effect.gen(function*() {
    const plan = settings.plan.name
    const table = yield* indexTable
    const phaseError = (operation: string) => (cause: SqlError) =>
      new IndexPhaseError({ plan, operation, reason: failureText(cause) })
    const failed = (statement: string) => (cause: SqlError) =>
      new IndexBuildFailed({ plan, id: migrationId, index: build.index.name, table: build.index.table, statement, cause: failureText(cause) })
    const attempts = yield* Ref.make(0)
    const blockers = yield* Ref.make<ReadonlyArray<Blocker>>([])
    const pg = settings.dialect === "pg"
    const runStatement = (pid: number | undefined, statement: string, timeout = settings.indexBuildTimeout) => {
      const run = Effect.flatMap(SqlClient.SqlClient, (client) => unprepared(client.unsafe(statement)))
      return (pid === undefined ? run : watched(run, pid, timeout, blockers)).pipe(
        Effect.catchAll((cause): Effect.Effect<never, BuildBlocked | IndexBuildFailed> =>
          pg && isPgLockTimeout(cause)
            ? Effect.flatMap(Ref.get(blockers), (seen) => Effect.fail(new BuildBlocked({ statement, blockers: seen, timeout })))
            : Effect.fail(failed(statement)(cause))
        )
      )
    }
    const body = Effect.gen(function*() {
      yield* Ref.update(attempts, (n) => n + 1)
      yield* Ref.set(blockers, [])
      const row = yield* find(table, plan, build).pipe(Effect.mapError(phaseError(`read ${table}`)))
      if (row === undefined || row.state === "valid") return undefined
      const started = yield* Timestamp.now
      yield* markBuilding(table, plan, build, started).pipe(Effect.mapError(phaseError(`update ${table}`)))
      const pid = pg ? yield* backendPid.pipe(Effect.mapError(phaseError("read pg_backend_pid()"))) : undefined
      const found = pg ? yield* pgValidity(build).pipe(Effect.mapError(phaseError("read pg_index"))) : "missing"
      if (found === "invalid") {
        yield* Effect.logWarning("found an INVALID index (an interrupted concurrent build); dropping and building it again")
        yield* runStatement(pid, build.dropInvalid)
      }
      const concurrently = pg && (yield* tableBytes(build).pipe(Effect.mapError(phaseError("read the table's size")))) >=
          settings.concurrentIndexMinBytes
      yield* Effect.logInfo(concurrently ? "building index concurrently" : "building index")
      if (concurrently || !pg) {
        yield* runStatement(pid, pg ? build.create : build.createPlain)
      } else {
        // A small table: a plain build, its own transaction, under the migration statements' lock_timeout.
        yield* setLockTimeout(settings.lockTimeout).pipe(Effect.mapError(phaseError("set lock_timeout")))
        yield* runStatement(pid, build.createPlain, settings.lockTimeout).pipe(
          Effect.ensuring(Effect.ignore(setLockTimeout(settings.indexBuildTimeout)))
        )
      }
      if (pg && (yield* pgValidity(build).pipe(Effect.mapError(phaseError("read pg_index")))) !== "valid") {
        return yield* new IndexBuildFailed({
          plan,
          id: migrationId,
          index: build.index.name,
          table: build.index.table,
          statement: build.create,
          cause: "PostgreSQL reports the index INVALID after its build"
        })
      }
      const finished = yield* Timestamp.now
      const durationMs = Math.max(0, finished - started)
      yield* markValid(table, plan, build, finished, durationMs).pipe(Effect.mapError(phaseError(`update ${table}`)))
      yield* Effect.logInfo("index built").pipe(Effect.annotateLogs({ duration_ms: durationMs }))
      return { migrationId, name: build.index.name, table: build.index.table, durationMs, rebuiltInvalid: found === "invalid", concurrently }
    })
    const locked = pg
      ? withLockedSession({ ...settings.runnerLock, statementLockTimeout: settings.indexBuildTimeout }, body)
      : withLockedTransaction(settings.runnerLock, body)
    return yield* locked.pipe(
      Effect.catchTags({
        LockTimedOut: (error) =>
          settings.leaveWhenLocked
            ? Effect.as(
              Effect.logWarning("another runner holds the runner lock; the index is left for it or for the next 'strata migrate'"),
              undefined
            )
            : Effect.fail(new IndexPhaseError({ plan, operation: "take the runner lock", reason: `another runner held it for ${error.waitedMs} ms` })),
        TransactionControlFailed: (error) => Effect.fail(phaseError(`${error.operation} the index build`)(error.cause))
      }),
      Effect.tapErrorTag("BuildBlocked", (error) =>
        Effect.logWarning("an index build met its lock timeout; retrying").pipe(
          Effect.annotateLogs({ blocking_pids: error.blockers.map((b) => b.pid).join(",") })
        )),
      Effect.retry({ schedule: lockRetrySchedule(settings.lockRetries), while: (error) => error._tag === "BuildBlocked" }),
      Effect.catchTag("BuildBlocked", (error) =>
        Effect.flatMap(Ref.get(attempts), (tried) =>
          Effect.fail(
            new IndexBuildBlocked({
              plan,
              id: migrationId,
              index: build.index.name,
              table: build.index.table,
              statement: error.statement,
              attempts: tried,
              lockTimeoutMs: Duration.toMillis(error.timeout),
              blockers: error.blockers
            })
          ))),
      Effect.annotateLogs({ migration_id: migrationId, index: build.index.name, table: build.index.table })
    )
  })

/**
 * Builds the index phase of applied migrations that is due: pending indexes, and deferred ones
 * whose backfill job is done (only those of `job` when given). Indexes not recorded in
 * `strata_indexes` (migrations it does not track) are left alone.
 */
export const buildDue = (
  settings: Settings,
  migrations: ReadonlyArray<Plan.Migration>,
  job?: string
): Effect.Effect<ReadonlyArray<BuiltIndex>, IndexBuildError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const plan = settings.plan.name
    const table = yield* indexTable
    const builds = yield* due(settings.plan, settings.dialect, migrations, job).pipe(
      Effect.mapError((cause) => new IndexPhaseError({ plan, operation: `read ${table} and strata_jobs`, reason: failureText(cause) }))
    )
    const built: Array<BuiltIndex> = []
    for (const { build, migration } of builds) {
      const result = yield* buildOne(settings, migration.id, build)
      if (result !== undefined) built.push(result)
    }
    return built
  }).pipe(Effect.annotateLogs({ plan: settings.plan.name }))

/**
 * The index builds of `migrations` that `buildDue` would run now, in plan order (only those of
 * `job`, when given): recorded and not valid yet (pending, building, or INVALID after an interrupted
 * build), and for an index deferred until its backfill job, that job done. Reads only.
 */
export const due = (
  plan: Plan.Plan,
  dialect: "sqlite" | "pg",
  migrations: ReadonlyArray<Plan.Migration>,
  job?: string
): Effect.Effect<ReadonlyArray<{ readonly migration: Plan.Migration; readonly build: Compile.IndexBuild }>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const table = yield* indexTable
    if (!(yield* exists(table))) return []
    const rows = yield* read(table, plan.name)
    const found: Array<{ readonly migration: Plan.Migration; readonly build: Compile.IndexBuild }> = []
    for (const migration of migrations) {
      for (const build of Compile.indexBuilds(migration, dialect, plan)) {
        const row = rows.find((r) => r.migrationId === migration.id && r.name === build.index.name && r.table === build.index.table)
        if (row === undefined || row.state === "valid") continue
        if (job !== undefined && build.index.afterJob !== job) continue
        if (build.index.afterJob !== undefined && !(yield* jobDone(build.index.afterJob))) continue
        found.push({ migration, build })
      }
    }
    return found
  })

/**
 * The plan's index phase as it stands: `strata_indexes`, with PostgreSQL's catalogue consulted
 * for builds not finished (an INVALID index left by an interrupted build shows as `invalid`).
 */
export const statuses = (plan: Plan.Plan, dialect: "sqlite" | "pg") =>
  Effect.gen(function*() {
    const table = yield* indexTable
    if (!(yield* exists(table))) return []
    const rows = yield* read(table, plan.name)
    const builds = new Map<string, Compile.IndexBuild>(
      plan.migrations.flatMap((m) => Compile.indexBuilds(m, dialect, plan).map((b) => [`${m.id}:${b.index.table}:${b.index.name}`, b] as const))
    )
    return yield* Effect.forEach(rows, (row): Effect.Effect<IndexStatus, SqlError, SqlClient.SqlClient> =>
      Effect.gen(function*() {
        const build = builds.get(`${row.migrationId}:${row.table}:${row.name}`)
        const unfinished = row.state === "building" || row.state === "pending"
        const invalid = dialect === "pg" && unfinished && build !== undefined && (yield* pgValidity(build)) === "invalid"
        return { ...row, state: invalid ? "invalid" : row.state }
      }))
  })

/**
 * The hook the BackfillRunner calls when a job has finished: builds the deferred indexes of its
 * target columns (with the Migrator's default lock settings), so a backfill never leaves them
 * behind. Nothing to do (no deferred index for the job) reads one catalogue row.
 */
export const buildAfterJob = (plan: Plan.Plan, job: string): Effect.Effect<ReadonlyArray<BuiltIndex>, IndexBuildError, SqlClient.SqlClient> =>
  Effect.flatMap(
    defaultSettings(plan).pipe(
      Effect.mapError((cause) => new IndexPhaseError({ plan: plan.name, operation: "read the current schema", reason: failureText(cause) }))
    ),
    (settings) => buildDue(settings, plan.migrations, job)
  )
