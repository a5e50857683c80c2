/**
 * A backfill job's table as the live database has it: the columns exist (the job's migration is
 * applied), the batching key, and the column types PostgreSQL needs for typed arrays. Shared by
 * the BackfillRunner, the Verifier and the progress report, with the typed errors they share.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Plan } from "@strata/core"
import { Backfill, Identifier } from "@strata/core"
import { Effect, Either, Schema } from "effect"
import * as Database from "../Database.js"
import type { ColumnRow } from "../Catalog.js"
import { tableColumns } from "../Catalog.js"
import { integerKey, type KeyValue } from "../JobState.js"
import { failureText } from "../SqlErrors.js"

/**
 * `jobs` named a job the plan does not have.
 */
export class UnknownJob extends Schema.TaggedError<UnknownJob>()("UnknownJob", {
  job: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Unknown job ${JSON.stringify(this.job)}; the plan's jobs are: ${this.known.length === 0 ? "(none)" : this.known.join(", ")}`
  }
}

/**
 * The job's table does not exist.
 */
export class TableNotFound extends Schema.TaggedError<TableNotFound>()("TableNotFound", {
  job: Schema.String,
  table: Schema.String
}) {
  override get message(): string {
    return `Job ${this.job}: table ${this.table} does not exist`
  }
}

/**
 * The job's target columns are missing: the migration that adds them is not applied yet.
 */
export class MigrationNotApplied extends Schema.TaggedError<MigrationNotApplied>()("MigrationNotApplied", {
  job: Schema.String,
  migrationId: Schema.Number,
  table: Schema.String,
  columns: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Job ${this.job} needs migration ${this.migrationId}: ${this.table} has no column ${this.columns.join(", ")}; apply the migration first (strata migrate)`
  }
}

/**
 * Columns the job reads (its source, payload, fallback or filter columns) are missing.
 */
export class SourceColumnsMissing extends Schema.TaggedError<SourceColumnsMissing>()("SourceColumnsMissing", {
  job: Schema.String,
  table: Schema.String,
  columns: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Job ${this.job} reads ${this.table}.${this.columns.join(`, ${this.table}.`)}, which does not exist`
  }
}

/**
 * The table has no key strata can walk in batches (composite or missing primary key and no rowid);
 * declare one in the plan step (`key`).
 */
export class NoBatchKey extends Schema.TaggedError<NoBatchKey>()("NoBatchKey", {
  job: Schema.String,
  table: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Job ${this.job}: cannot walk ${this.table} in batches: ${this.reason}; declare a unique, ordered key column in the plan step (key)`
  }
}

/**
 * The database failed while the job ran (connection lost, lock timeout, a statement error).
 */
export class JobDatabaseError extends Schema.TaggedError<JobDatabaseError>()("JobDatabaseError", {
  job: Schema.String,
  reason: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    return `Job ${this.job}: database error: ${this.reason}`
  }
}

/** A database failure while working on `job`, as the typed error every job-reading service reports. */
export const jobDatabaseError = (job: string) => (error: SqlError): JobDatabaseError =>
  new JobDatabaseError({ job, reason: failureText(error), cause: error })

/** Everything that keeps a job from starting. */
export type JobTableError = TableNotFound | MigrationNotApplied | SourceColumnsMissing | NoBatchKey

/** How a key's values are ordered and stored in a cursor. */
export type KeyKind = "integer" | "text"

/** The column a job walks in key order, and the write-back addresses rows by. */
export interface BatchKey {
  /** SQL for the key: a quoted column, or `rowid`. */
  readonly sql: string
  /** The column name (`rowid` for SQLite's implicit key). */
  readonly name: string
  readonly kind: KeyKind
  readonly origin: "declared" | "primaryKey" | "rowid"
  /** The declared type (PostgreSQL: `format_type`, spliced into typed arrays); `INTEGER` for rowid. */
  readonly type: string
}

/** A job with its table checked against the live schema. */
export interface JobTable {
  readonly job: Backfill.Job
  readonly dialect: "sqlite" | "pg"
  readonly key: BatchKey
  /** The declared type of every column of the table, by name (PostgreSQL: `format_type`). */
  readonly columnTypes: ReadonlyMap<string, string>
}

/**
 * The kind of key a column of `type` makes, or `undefined` when its values cannot be carried in a
 * cursor and bound back: integers (SQLite's INTEGER affinity; PostgreSQL's smallint, integer,
 * bigint) and text (SQLite's TEXT affinity; PostgreSQL's text, varchar, char, and uuid, which
 * round-trips as text and compares natively against a text parameter). Other PostgreSQL types
 * arrive in JavaScript as something else (a `Date` loses microseconds, a `Buffer` has no text form
 * the cursor keeps), and SQLite's REAL, NUMERIC and BLOB affinities hold values of mixed types.
 */
export const keyKind = (type: string, dialect: "sqlite" | "pg"): KeyKind | undefined => {
  if (dialect === "pg") {
    if (/^(smallint|integer|bigint)$/.test(type)) return "integer"
    return /^(text|character varying(\(\d+\))?|character(\(\d+\))?|uuid)$/.test(type) ? "text" : undefined
  }
  if (/INT/i.test(type)) return "integer"
  return /CHAR|CLOB|TEXT/i.test(type) ? "text" : undefined
}

export const sqliteHasRowid = (table: Identifier.TableName): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const parts = Identifier.tableParts(table)
    const rows = yield* sql.unsafe<{ wr: number }>(
      `SELECT wr FROM pragma_table_list WHERE name = ? AND schema = ?`,
      [parts.table, parts.schema ?? "main"]
    )
    return rows[0] !== undefined && Number(rows[0].wr) === 0
  })

/**
 * The one rule for a table's key, shared by the runner (which walks it) and the lazy write-back
 * (which addresses rows by it):
 * 1. the declared key (`key` in the plan step; it must be in `columns`): the user's promise of a
 *    unique, ordered column; on PostgreSQL it must be of a key type (see `keyKind`), on SQLite any
 *    column that is not INTEGER is walked as text;
 * 2. else the single-column primary key, when it is of a key type;
 * 3. else, on SQLite, the `rowid` of a rowid table (not of a WITHOUT ROWID table);
 * 4. else no key, with the reason (for `NoBatchKey`, or the write-back's log).
 */
export const findKey = (
  table: Identifier.TableName,
  declared: Identifier.Identifier | undefined,
  columns: ReadonlyArray<ColumnRow>,
  dialect: "sqlite" | "pg"
): Effect.Effect<Either.Either<BatchKey, string>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (declared !== undefined) {
      const type = columns.find((c) => c.name === declared)?.type ?? ""
      const kind = keyKind(type, dialect) ?? (dialect === "sqlite" ? "text" : undefined)
      if (kind === undefined) return Either.left(`its declared key ${declared} has type ${type}, neither integer nor text`)
      return Either.right({ sql: Identifier.quote(declared), name: declared, kind, origin: "declared", type })
    }
    const primaryKey = columns.filter((c) => Number(c.pk) > 0)
    const single = primaryKey.length === 1 ? primaryKey[0] : undefined
    const singleKind = single === undefined ? undefined : keyKind(single.type, dialect)
    if (single !== undefined && singleKind !== undefined) {
      return Either.right({
        sql: Identifier.quote(single.name),
        name: single.name,
        kind: singleKind,
        origin: "primaryKey",
        type: single.type
      })
    }
    if (dialect === "sqlite" && (yield* sqliteHasRowid(table))) {
      return Either.right({ sql: "rowid", name: "rowid", kind: "integer", origin: "rowid", type: "INTEGER" })
    }
    const describePk = primaryKey.length === 0
      ? "it has no primary key"
      : single !== undefined
      ? `its primary key ${single.name} has type ${single.type}, neither integer nor text`
      : `its primary key (${primaryKey.map((c) => c.name).join(", ")}) has ${primaryKey.length} columns`
    return Either.left(dialect === "sqlite" ? `${describePk} and it is a WITHOUT ROWID table` : describePk)
  })

/**
 * Checks a job's table against the live schema and finds its batching key (see `findKey`).
 */
export const inspectJob = (
  job: Backfill.Job
): Effect.Effect<JobTable, JobTableError | JobDatabaseError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const dialect = yield* Database.dialect
    const columns = yield* tableColumns(job.table)
    if (columns.length === 0) return yield* new TableNotFound({ job: job.name, table: job.table })
    const columnTypes = new Map(columns.map((c) => [c.name, c.type]))
    const missingTargets = Backfill.targetColumns(job).filter((c) => !columnTypes.has(c))
    if (missingTargets.length > 0) {
      return yield* new MigrationNotApplied({
        job: job.name,
        migrationId: job.migrationId,
        table: job.table,
        columns: missingTargets
      })
    }
    const needed = [...job.reads, ...(job.key === undefined ? [] : [job.key])]
    const missingReads = [...new Set(needed)].filter((c) => !columnTypes.has(c))
    if (missingReads.length > 0) {
      return yield* new SourceColumnsMissing({ job: job.name, table: job.table, columns: missingReads })
    }
    const key = yield* findKey(job.table, job.key, columns, dialect)
    if (Either.isLeft(key)) return yield* new NoBatchKey({ job: job.name, table: job.table, reason: key.left })
    return { job, dialect, key: key.right, columnTypes }
  }).pipe(
    Effect.catchTag("SqlError", (error) => Effect.fail(jobDatabaseError(job.name)(error)))
  )

/** The key value of a row as the cursor stores it (node-postgres may return BIGINT as text). */
export const keyValue = (table: JobTable, value: unknown): KeyValue => {
  if (typeof value === "number" || typeof value === "bigint") return value
  if (typeof value === "string") return table.key.kind === "integer" && /^-?\d+$/.test(value) ? integerKey(value) : value
  return String(value)
}

/** A key value as a bound parameter (PostgreSQL infers the key column's type from text). */
export const keyParam = (table: JobTable, value: KeyValue): unknown =>
  table.dialect === "pg" ? String(value) : value

/** The keyset condition "after `cursor`" (`TRUE` before the first batch), binding the cursor into `params`. */
export const afterCursor = (table: JobTable, params: Params, cursor: KeyValue | undefined): string =>
  cursor === undefined ? "TRUE" : `${table.key.sql} > ${params.bind(keyParam(table, cursor))}`

/** Builds a statement's parameter list with the dialect's placeholders. */
export class Params {
  readonly values: Array<unknown> = []
  constructor(readonly dialect: "sqlite" | "pg") {}
  /** Adds a value and returns its placeholder. */
  bind(value: unknown): string {
    this.values.push(value)
    return this.dialect === "pg" ? `$${this.values.length}` : "?"
  }
}

/**
 * `column IS NULL` that cannot be answered from an index on the column. Batches select by key
 * range; on SQLite an index on the target (the plan's DESC index) would otherwise win for
 * `target IS NULL` while most rows are NULL, and every batch would walk all NULL rows (quadratic).
 * SQLite's unary `+` hides the column from the planner; PostgreSQL's cost-based planner prefers
 * the key range by itself.
 */
export const nullTest = (dialect: "sqlite" | "pg", column: string, test: "IS NULL" | "IS NOT NULL"): string =>
  dialect === "sqlite" ? `+${column} ${test}` : `${column} ${test}`

/** The job's row filter in SQL (case-sensitive), or `undefined` when it has none. */
export const filterSql = (filter: Plan.RowFilter | undefined, params: Params): string | undefined => {
  if (filter === undefined) return undefined
  // `+` on SQLite: never walk an index on the filter column instead of the key range.
  const column = `${params.dialect === "sqlite" ? "+" : ""}${Identifier.quote(filter.column)}`
  if (filter.op === "equals") return `${column} = ${params.bind(filter.value)}`
  return params.dialect === "pg"
    ? `strpos(${column}, ${params.bind(filter.value)}) > 0`
    : `instr(${column}, ${params.bind(filter.value)}) > 0`
}

/**
 * The job's pending predicate: any target NULL, the required source NOT NULL, the filter matching.
 * With `targets`, only those targets count (per-column progress).
 */
export const pendingSql = (
  table: JobTable,
  params: Params,
  targets: ReadonlyArray<string> = Backfill.targetColumns(table.job)
): string => {
  const parts = [`(${targets.map((t) => nullTest(table.dialect, Identifier.quote(t), "IS NULL")).join(" OR ")})`]
  if (table.job.requires !== undefined) parts.push(nullTest(table.dialect, Identifier.quote(table.job.requires), "IS NOT NULL"))
  const filter = filterSql(table.job.filter, params)
  if (filter !== undefined) parts.push(filter)
  return parts.join(" AND ")
}

/** The columns a job's row functions and checks need, each once, quoted, with the key as `__strata_key`. */
export const selectList = (table: JobTable): string =>
  [
    `${table.key.sql} AS __strata_key`,
    ...[...new Set([...table.job.reads, ...Backfill.targetColumns(table.job)])].map(Identifier.quote)
  ].join(", ")

/** SQL: the row is outside the job's scope (no required source value, or the row filter does not match). */
export const outOfScopeSql = (table: JobTable, params: Params): string => {
  const parts: Array<string> = []
  if (table.job.requires !== undefined) parts.push(`${Identifier.quote(table.job.requires)} IS NULL`)
  const filter = filterSql(table.job.filter, params)
  if (filter !== undefined) parts.push(`NOT COALESCE(${filter}, FALSE)`)
  return parts.length === 0 ? "FALSE" : `(${parts.join(" OR ")})`
}

/** SQL: every target of the row is set. */
export const allSetSql = (table: JobTable): string =>
  `(${Backfill.targetColumns(table.job).map((t) => `${Identifier.quote(t)} IS NOT NULL`).join(" AND ")})`

/** The keyset condition "after `cursor`, up to `end` (inclusive)", binding both into `params`. */
export const inRange = (table: JobTable, params: Params, cursor: KeyValue | undefined, end: KeyValue): string =>
  `${afterCursor(table, params, cursor)} AND ${table.key.sql} <= ${params.bind(keyParam(table, end))}`
