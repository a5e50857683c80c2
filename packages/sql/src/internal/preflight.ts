/**
 * The Migrator's preflight: every pending step checked against the live schema (and what earlier
 * pending steps will have done to it) before anything is applied. It reads the catalogue only.
 *
 * What it checks, per step:
 * - the table exists, or an earlier pending step creates it;
 * - the columns a step reads (a shadow's source, a payload, a fallback, a filter, an indexed or
 *   referenced column, a job's reads and key) exist, and sources have a type the step can read;
 * - the columns a step adds are absent, or present with the type strata would declare (a re-run);
 *   a table the plan creates that exists already has every column the plan gives it;
 * - each backfill job has a batch key (the runner's own rule, `jobTable.findKey`);
 * - on SQLite, a sync trigger without a declared key is on a table with a rowid.
 * A table named by an earlier pending raw `Plan.sql` step may be created or altered by it, so what
 * is missing from such a table is not a problem (what the SQL does cannot be known here).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backfill, Compile, Identifier, Plan } from "@strata/core"
import { Effect, Either, Schema } from "effect"
import type { ColumnRow } from "../Catalog.js"
import { tableColumns } from "../Catalog.js"
import { findKey, sqliteHasRowid } from "./jobTable.js"

const where = {
  plan: Schema.String,
  migrationId: Schema.Number,
  migrationName: Schema.String,
  table: Schema.String
}

const inMigration = (problem: { readonly migrationId: number; readonly migrationName: string }): string =>
  `migration ${problem.migrationId} "${problem.migrationName}"`

/**
 * A pending step works on a table that does not exist and that no earlier pending step creates.
 *
 * @since 0.2.0
 * @category errors
 */
export class TableMissing extends Schema.TaggedError<TableMissing>()("TableMissing", {
  ...where,
  column: Schema.String,
  needs: Schema.String
}) {
  override get message(): string {
    return `${inMigration(this)}: table ${this.table} does not exist (${this.needs} ${this.table}.${this.column}) and no earlier migration creates it`
  }
}

/**
 * A column a pending step reads (its `role`: source, payload, fallback, filter, key, indexed…) does not exist.
 *
 * @since 0.2.0
 * @category errors
 */
export class SourceColumnMissing extends Schema.TaggedError<SourceColumnMissing>()("SourceColumnMissing", {
  ...where,
  column: Schema.String,
  role: Schema.String
}) {
  override get message(): string {
    return `${inMigration(this)}: ${this.table}.${this.column} does not exist (the ${this.role} column)`
  }
}

/**
 * A column a pending step reads has a type it cannot read (e.g. a timestamp shadow of an integer column).
 *
 * @since 0.2.0
 * @category errors
 */
export class SourceColumnUnreadable extends Schema.TaggedError<SourceColumnUnreadable>()("SourceColumnUnreadable", {
  ...where,
  column: Schema.String,
  role: Schema.String,
  type: Schema.String,
  expected: Schema.String
}) {
  override get message(): string {
    return `${inMigration(this)}: ${this.table}.${this.column} has type ${this.type}, which the step cannot read as its ${this.role} (expected ${this.expected})`
  }
}

/**
 * A column a pending step adds exists with another type, or a table the plan creates exists without it.
 * `found` is the live type, or null when the existing table lacks the column.
 *
 * @since 0.2.0
 * @category errors
 */
export class TargetColumnConflict extends Schema.TaggedError<TargetColumnConflict>()("TargetColumnConflict", {
  ...where,
  column: Schema.String,
  found: Schema.NullOr(Schema.String),
  expected: Schema.String
}) {
  override get message(): string {
    return this.found === null
      ? `${inMigration(this)}: table ${this.table} exists without column ${this.column} (${this.expected}), and CREATE TABLE IF NOT EXISTS leaves an existing table as it is`
      : `${inMigration(this)}: ${this.table}.${this.column} exists with type ${this.found}, not ${this.expected}; strata never changes a column's type`
  }
}

/**
 * A backfill job of a pending step has no key to walk its table by.
 *
 * @since 0.2.0
 * @category errors
 */
export class BatchKeyMissing extends Schema.TaggedError<BatchKeyMissing>()("BatchKeyMissing", {
  ...where,
  job: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${inMigration(this)}: job ${this.job} cannot walk ${this.table} in batches: ${this.reason}; declare a unique, ordered key column in the plan step (key)`
  }
}

/**
 * SQLite: a step's sync trigger would address the rows it fills by `rowid`, because the step
 * declares no key, but its table is a WITHOUT ROWID table (the trigger would then fail on every
 * INSERT and UPDATE of the app's, at run time).
 *
 * @since 0.2.0
 * @category errors
 */
export class SyncTriggerKeyMissing extends Schema.TaggedError<SyncTriggerKeyMissing>()("SyncTriggerKeyMissing", {
  ...where,
  job: Schema.String
}) {
  override get message(): string {
    return `${inMigration(this)}: the sync trigger of job ${this.job} would find its rows by rowid, and ${this.table} is a WITHOUT ROWID table; declare the table's key column in the plan step (key)`
  }
}

/**
 * One thing the preflight found wrong.
 *
 * @since 0.2.0
 * @category models
 */
export const PreflightProblem = Schema.Union(
  TableMissing,
  SourceColumnMissing,
  SourceColumnUnreadable,
  TargetColumnConflict,
  BatchKeyMissing,
  SyncTriggerKeyMissing
)

/**
 * One thing the preflight found wrong.
 *
 * @since 0.2.0
 * @category models
 */
export type PreflightProblem = typeof PreflightProblem.Type

type Dialect = "sqlite" | "pg"

/** How a step reads a column: as text (timestamps, fallbacks, filters) or as a JSON payload. */
type Reading = "text" | "json"

/** A column a step reads, and how. `reading` undefined: existence only (the step reads any type). */
interface Source {
  readonly column: Identifier.Identifier
  readonly role: string
  readonly reading: Reading | undefined
}

const sqliteAffinity = (type: string): "integer" | "text" | "blob" | "real" | "numeric" => {
  const upper = type.toUpperCase()
  if (upper.includes("INT")) return "integer"
  if (/CHAR|CLOB|TEXT/.test(upper)) return "text"
  if (upper === "" || upper.includes("BLOB")) return "blob"
  if (/REAL|FLOA|DOUB/.test(upper)) return "real"
  return "numeric"
}

const pgText = /^(text|character varying(\(\d+\))?|character(\(\d+\))?|citext)$/

/**
 * Whether a column of `type` reaches the step as text (or, for a payload, JSON). SQLite keeps text
 * as text in any column whose affinity is not INTEGER or REAL (a legacy TIMESTAMP column has NUMERIC
 * affinity and holds text); PostgreSQL's date/time types arrive as `Date`s, numbers as numbers.
 */
const readable = (type: string, reading: Reading, dialect: Dialect): boolean => {
  if (dialect === "sqlite") {
    const affinity = sqliteAffinity(type)
    return affinity !== "integer" && affinity !== "real"
  }
  return pgText.test(type) || (reading === "json" && (type === "json" || type === "jsonb"))
}

const expectedReading = (reading: Reading, dialect: Dialect): string =>
  dialect === "sqlite"
    ? "a column without INTEGER or REAL affinity, e.g. TEXT or TIMESTAMP"
    : reading === "json"
    ? "text, varchar, char, json or jsonb"
    : "text, varchar or char"

/** The columns a built-in data step reads, with how it reads them. */
const stepSources = (step: Plan.Step): ReadonlyArray<Source> => {
  switch (step._tag) {
    case "EpochShadow":
      return [{ column: step.column, role: "timestamp source", reading: "text" }]
    case "ExtractJson":
      return [
        { column: step.payload, role: "JSON payload", reading: "json" },
        ...step.targets.flatMap((t) =>
          t.fallbackColumn === undefined ? [] : [{ column: t.fallbackColumn, role: "fallback", reading: "text" as const }]
        ),
        ...(step.where === undefined ? [] : [{ column: step.where.column, role: "filter", reading: "text" as const }])
      ]
    default:
      return []
  }
}

/** The backfill jobs of one step (through the plan's own job list, so every step kind is covered). */
const stepJobs = (planName: string, migration: Plan.Migration, step: Plan.Step): ReadonlyArray<Backfill.Job> =>
  Backfill.jobs({ name: planName, migrations: [{ ...migration, steps: [step] }] })

interface TableModel {
  /** Present now, or created by an earlier pending step. */
  readonly exists: boolean
  /** Created by an earlier pending step (not in the database yet). */
  readonly planned: boolean
  readonly columns: Array<ColumnRow>
}

/**
 * The problems of the pending migrations, in plan order; empty when all can apply. Reads the
 * catalogue through the `SqlClient` in context.
 */
export const check = (
  planName: string,
  pending: ReadonlyArray<Plan.Migration>,
  dialect: Dialect
): Effect.Effect<ReadonlyArray<PreflightProblem>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const problems: Array<PreflightProblem> = []
    const tables = new Map<string, TableModel>()
    // Bare table names mentioned by raw SQL of earlier pending steps (lower case).
    const rawSqlWords = new Set<string>()
    const sameName = (a: string, b: string) => (dialect === "sqlite" ? a.toLowerCase() === b.toLowerCase() : a === b)

    const tableOf = (table: Identifier.TableName) =>
      Effect.gen(function*() {
        const key = dialect === "sqlite" ? table.toLowerCase() : table
        const known = tables.get(key)
        if (known !== undefined) return known
        const columns = [...(yield* tableColumns(table))]
        const model: TableModel = { exists: columns.length > 0, planned: false, columns }
        tables.set(key, model)
        return model
      })
    const setTable = (table: Identifier.TableName, model: TableModel) =>
      tables.set(dialect === "sqlite" ? table.toLowerCase() : table, model)
    const shapedByRawSql = (table: Identifier.TableName) =>
      rawSqlWords.has(Identifier.tableParts(table).table.toLowerCase())
    const columnOf = (model: TableModel, column: string) => model.columns.find((c) => sameName(c.name, column))

    for (const migration of pending) {
      const at = { plan: planName, migrationId: migration.id, migrationName: migration.name }
      for (const step of migration.steps) {
        // A contract's jobs are of earlier migrations; the Migrator's verification gate checks it.
        if (step._tag === "Contract") continue
        const changes = Compile.changes(step)
        const jobs = stepJobs(planName, migration, step)

        // What a data step reads must be there before its own changes run.
        const sources = [
          ...stepSources(step),
          ...jobs.flatMap((job) => [
            ...job.reads.map((column): Source => ({ column, role: "read", reading: undefined })),
            ...(job.key === undefined ? [] : [{ column: job.key, role: "batch key", reading: undefined }])
          ])
        ]
        const table = jobs[0]?.table
        if (table !== undefined) {
          const model = yield* tableOf(table)
          if (!model.exists) {
            if (!shapedByRawSql(table)) {
              const kind = `${step._tag.charAt(0).toLowerCase()}${step._tag.slice(1)}`
              problems.push(new TableMissing({ ...at, table, column: sources[0]?.column ?? "", needs: `the ${kind} step on` }))
            }
            continue
          }
          const seen = new Set<string>()
          for (const source of sources) {
            if (seen.has(source.column)) continue
            seen.add(source.column)
            const live = columnOf(model, source.column)
            if (live === undefined) {
              if (!shapedByRawSql(table)) {
                problems.push(new SourceColumnMissing({ ...at, table, column: source.column, role: source.role }))
              }
            } else if (source.reading !== undefined && !readable(live.type, source.reading, dialect)) {
              problems.push(
                new SourceColumnUnreadable({
                  ...at,
                  table,
                  column: source.column,
                  role: source.role,
                  type: live.type,
                  expected: expectedReading(source.reading, dialect)
                })
              )
            }
          }
        }

        for (const change of changes) {
          switch (change._tag) {
            case "Sql":
              for (const word of change[dialect].join(" ").toLowerCase().match(/[a-z_][a-z0-9_]*/g) ?? []) {
                rawSqlWords.add(word)
              }
              break
            case "CreateTable": {
              const model = yield* tableOf(change.table)
              if (!model.exists) {
                setTable(change.table, {
                  exists: true,
                  planned: true,
                  columns: change.columns.map((column) => ({
                    name: column.name,
                    type: plannedType(column, dialect),
                    pk: column.primaryKey || column.autoIncrement ? 1 : (change.primaryKey?.indexOf(column.name) ?? -1) + 1
                  }))
                })
                break
              }
              for (const column of change.columns) {
                if (columnOf(model, column.name) === undefined && !shapedByRawSql(change.table)) {
                  problems.push(
                    new TargetColumnConflict({
                      ...at,
                      table: change.table,
                      column: column.name,
                      found: null,
                      expected: Compile.declaredType(column, dialect)
                    })
                  )
                }
              }
              break
            }
            case "AddColumn": {
              const model = yield* tableOf(change.table)
              if (!model.exists) {
                if (!shapedByRawSql(change.table)) {
                  problems.push(
                    new TableMissing({ ...at, table: change.table, column: change.column.name, needs: "ADD COLUMN" })
                  )
                }
                break
              }
              const expected = Compile.declaredType(change.column, dialect)
              const live = columnOf(model, change.column.name)
              if (live === undefined) {
                model.columns.push({ name: change.column.name, type: plannedType(change.column, dialect), pk: 0 })
              } else if (live.type.toLowerCase() !== expected.toLowerCase()) {
                problems.push(
                  new TargetColumnConflict({ ...at, table: change.table, column: change.column.name, found: live.type, expected })
                )
              }
              const reference = change.column.references
              if (reference !== undefined) {
                const referenced = yield* tableOf(reference.table)
                if (referenced.exists && columnOf(referenced, reference.column) === undefined && !shapedByRawSql(reference.table)) {
                  problems.push(
                    new SourceColumnMissing({ ...at, table: reference.table, column: reference.column, role: "referenced" })
                  )
                } else if (!referenced.exists && !shapedByRawSql(reference.table)) {
                  problems.push(
                    new TableMissing({ ...at, table: reference.table, column: reference.column, needs: "a foreign key to" })
                  )
                }
              }
              break
            }
            case "SyncTrigger": {
              // Without a declared key the SQLite trigger finds its row by rowid (a table the plan creates has one).
              if (change.drop || dialect !== "sqlite" || change.job.key !== undefined) break
              const model = yield* tableOf(change.job.table)
              if (model.exists && !model.planned && !(yield* sqliteHasRowid(change.job.table))) {
                problems.push(new SyncTriggerKeyMissing({ ...at, table: change.job.table, job: change.job.name }))
              }
              break
            }
            case "CreateIndex": {
              const model = yield* tableOf(change.table)
              if (!model.exists) {
                if (!shapedByRawSql(change.table)) {
                  problems.push(
                    new TableMissing({ ...at, table: change.table, column: change.columns[0] ?? "", needs: "an index on" })
                  )
                }
                break
              }
              for (const column of change.columns) {
                if (columnOf(model, column) === undefined && !shapedByRawSql(change.table)) {
                  problems.push(new SourceColumnMissing({ ...at, table: change.table, column, role: "indexed" }))
                }
              }
              break
            }
          }
        }

        for (const job of jobs) {
          const model = yield* tableOf(job.table)
          if (!model.exists || (model.planned && dialect === "sqlite")) continue // a table the plan creates is a rowid table
          if (job.key !== undefined && columnOf(model, job.key) === undefined) continue // reported as a missing batch key column
          const key = yield* findKey(job.table, job.key, model.columns, dialect)
          if (Either.isLeft(key) && !shapedByRawSql(job.table)) {
            problems.push(new BatchKeyMissing({ ...at, table: job.table, job: job.name, reason: key.left }))
          }
        }
      }
    }
    return problems
  })

/** A planned column's type as the catalogue will report it (PostgreSQL's `format_type` is lower case). */
const plannedType = (column: Plan.Column, dialect: Dialect): string => {
  const declared = Compile.declaredType(column, dialect)
  return dialect === "pg" ? declared.toLowerCase() : declared
}
