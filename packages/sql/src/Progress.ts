/**
 * How far a plan's backfills are, per table and column, from SQL counts on your tables: rows
 * migrated, rows still pending, rows rejected, rows that can never get a value, percent and a
 * label. Works while a backfill or the lazy path is running; reads only.
 *
 * Pending means work left: a NULL column in a row the job's saved cursor has not reached yet (the
 * cursor in `strata_jobs` records which rows the backfill processed; see `Backfill`). A row it has
 * passed is either rejected (recorded in `strata_rejects`) or has no value: its source is NULL, or
 * the row function chose NULL, an answer like any other. So a finished job's column reads
 * "Complete", or "done, N rejected, M without a source value", never "In progress" forever; the
 * Verifier's recomputation reports the same counts (`VerificationReport.columns`).
 *
 * Build it for a plan (`Progress.layer(plan)`) and call `Progress.report(options)`. Its statements
 * run on `Database.strataClient` (the app's client without name transforms); strata's own tables
 * are found through `Database.strataTable`; plans may name `schema.table`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Backfill, Identifier, type Plan, Progress as CoreProgress } from "@strata/core"
import { Context, Effect, Layer, Option } from "effect"
import * as Database from "./Database.js"
import { tableColumns } from "./Catalog.js"
import {
  type BatchKey,
  filterSql,
  inspectJob,
  type JobDatabaseError,
  jobDatabaseError,
  type JobTableError,
  Params,
  UnknownJob
} from "./internal/jobTable.js"
import * as JobState from "./JobState.js"

/**
 * One target column's progress. Every row the job applies to is in exactly one of `migrated`,
 * `pending`, `rejected` and `withoutValue`, so they add up to `total`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ColumnProgress {
  readonly job: string
  readonly table: string
  readonly column: string
  /** What the column is computed from (the source column, or the payload and fallbacks). */
  readonly source: string
  /** False while the migration adding the column is not applied (then nothing is migrated yet). */
  readonly applied: boolean
  /** The backfill job's saved state; `notStarted` when it never ran. */
  readonly jobState: "notStarted" | JobState.JobState
  /**
   * The job's own counters from `strata_jobs` (walked = updated + rejected + alreadySet +
   * outOfScope; all 0 when it never ran): what its runs did, where the counts below are what the
   * rows hold now.
   */
  readonly jobCounts: JobState.Counts
  /** Rows the job applies to (its filter matches). */
  readonly total: number
  /** Rows with the column set. */
  readonly migrated: number
  /**
   * Rows still waiting for it: the column NULL, the row not yet reached by the job's saved cursor
   * (any row, before the job's first batch), and its source present when the step needs one.
   */
  readonly pending: number
  /** Rows with the column NULL that the job recorded in `strata_rejects` (their source cannot be converted). */
  readonly rejected: number
  /**
   * Rows with the column NULL that can never get a value: no source value, or the job walked them
   * and its row function chose NULL. Not pending: there is nothing left to do for them.
   */
  readonly withoutValue: number
  /** `migrated / (migrated + pending)`, 0-100 rounded down to one decimal; 100 when nothing is pending; 0 while the column is not applied. */
  readonly percent: number
  /** The label of `migrated` of `migrated + pending`; "Just started" while the column is not applied (never "Complete"). */
  readonly label: CoreProgress.Label
  /**
   * The column's state in words: its `label` while rows are pending (or the column is missing);
   * once nothing is pending, "Complete", or "done, N rejected, M without a source value" when
   * some rows can never get a value.
   */
  readonly summary: string
}

/**
 * A plan's progress: its columns, and their counts added up.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressReport {
  readonly plan: string
  readonly columns: ReadonlyArray<ColumnProgress>
  readonly migrated: number
  readonly pending: number
  readonly rejected: number
  readonly withoutValue: number
  /** The lesser of the rows' share migrated and the columns' share applied (see `report`), rounded down to one decimal. */
  readonly percent: number
  readonly label: CoreProgress.Label
}

/**
 * What keeps the report from being made: a database error naming the job it was counting, or a job
 * the plan does not have.
 *
 * @since 0.1.0
 * @category errors
 */
export type ProgressError = JobDatabaseError | UnknownJob

/**
 * Options of `report`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** Only these jobs' columns; default all. */
  readonly jobs?: ReadonlyArray<string> | undefined
}

interface TargetCounts {
  readonly migrated: number
  readonly pending: number
  readonly rejected: number
}

interface Counts {
  readonly total: number
  readonly perTarget: ReadonlyArray<TargetCounts>
}

/** Where the job's saved cursor stands, and what to join its rejects on. */
interface Walk {
  readonly key: BatchKey | undefined
  readonly cursor: JobState.KeyValue | undefined
  readonly rejects: Identifier.TableName | undefined
}

/**
 * One statement per job: per target, rows set, rows pending (NULL, ahead of the cursor, with a
 * source when the step needs one) and rows rejected (NULL, and recorded in `strata_rejects` under
 * the row's key as the runner writes it: the key's text). The rest of the NULL rows have no value.
 */
const countJob = (job: Backfill.Job, dialect: "sqlite" | "pg", present: ReadonlySet<string>, walk: Walk) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(dialect)
    const key = walk.key === undefined ? undefined : `t.${walk.key.sql}`
    const ahead = key === undefined || walk.cursor === undefined
      ? "1 = 1"
      : `${key} > ${params.bind(dialect === "pg" ? String(walk.cursor) : walk.cursor)}`
    const requires = job.requires === undefined ? "" : ` AND t.${Identifier.quote(job.requires)} IS NOT NULL`
    const targets = Backfill.targetColumns(job)
    const stored = targets.filter((t) => present.has(t))
    const anyNull = stored.map((t) => `t.${Identifier.quote(t)} IS NULL`).join(" OR ")
    const rejected = walk.rejects === undefined || key === undefined || stored.length === 0
      ? "0"
      : `CASE WHEN (${anyNull}) AND EXISTS (SELECT 1 FROM ${Identifier.quoteTable(walk.rejects)} r WHERE r.job = ${
        params.bind(job.name)
      } AND r.row_key = CAST(${key} AS TEXT)) THEN 1 ELSE 0 END`
    const filter = filterSql(job.filter, params)
    const inner = [
      ...stored.map((t, i) => `t.${Identifier.quote(t)} AS c${i}`),
      `CASE WHEN ${ahead}${requires} THEN 1 ELSE 0 END AS open`,
      `${rejected} AS rej`
    ]
    const columns = targets.flatMap((target, i) => {
      const at = stored.indexOf(target)
      if (at < 0) return [`0 AS m${i}`, `COALESCE(sum(open), 0) AS p${i}`, `0 AS r${i}`]
      const c = `c${at}`
      return [
        `count(${c}) AS m${i}`,
        `COALESCE(sum(CASE WHEN ${c} IS NULL AND rej = 0 AND open = 1 THEN 1 ELSE 0 END), 0) AS p${i}`,
        `COALESCE(sum(CASE WHEN ${c} IS NULL AND rej = 1 THEN 1 ELSE 0 END), 0) AS r${i}`
      ]
    })
    const rows = yield* sql.unsafe<Record<string, number | string | null>>(
      `SELECT count(*) AS total, ${columns.join(", ")} FROM (SELECT ${inner.join(", ")} FROM ${
        Identifier.quoteTable(job.table)
      } t${filter === undefined ? "" : ` WHERE ${filter}`}) s`,
      params.values
    )
    const row = rows[0] ?? {}
    return {
      total: Number(row["total"] ?? 0),
      perTarget: targets.map((_, i) => ({
        migrated: Number(row[`m${i}`] ?? 0),
        pending: Number(row[`p${i}`] ?? 0),
        rejected: Number(row[`r${i}`] ?? 0)
      }))
    } satisfies Counts
  })

const noCounts = (job: Backfill.Job): Counts => ({ total: 0, perTarget: job.targets.map(() => ({ migrated: 0, pending: 0, rejected: 0 })) })

const jobStates = Effect.gen(function*() {
  if ((yield* tableColumns(yield* Database.strataTable("strata_jobs"))).length === 0) return new Map<string, JobState.Checkpoint>()
  return new Map((yield* JobState.loadCheckpoints).map((c) => [c.job, c]))
})

/** `strata_rejects`, when it exists. */
const rejectsTable = Effect.gen(function*() {
  const table = yield* Database.strataTable("strata_rejects")
  return (yield* tableColumns(table)).length === 0 ? undefined : table
})

/** The job's key, when its table has one strata can walk (else nothing was walked: no cursor, no rejects). */
const batchKey = (job: Backfill.Job) =>
  inspectJob(job).pipe(
    Effect.map((table): BatchKey | undefined => table.key),
    Effect.catchIf((error): error is JobTableError => error._tag !== "JobDatabaseError", () => Effect.succeed(undefined))
  )

const summaryOf = (applied: boolean, pending: number, rejected: number, withoutValue: number, label: CoreProgress.Label): string => {
  if (!applied || pending > 0) return label
  if (rejected === 0 && withoutValue === 0) return "Complete"
  return [
    "done",
    ...(rejected > 0 ? [`${rejected} rejected`] : []),
    ...(withoutValue > 0 ? [`${withoutValue} without a source value`] : [])
  ].join(", ")
}

const buildReport = (plan: Plan.Plan, options: Options) =>
  Effect.gen(function*() {
    const dialect = yield* Database.dialect
    const states = yield* jobStates.pipe(Effect.mapError(jobDatabaseError("strata_jobs")))
    const rejects = yield* rejectsTable.pipe(Effect.mapError(jobDatabaseError("strata_rejects")))
    const all = Backfill.jobs(plan)
    const unknown = options.jobs?.find((name) => !all.some((j) => j.name === name))
    if (unknown !== undefined) return yield* new UnknownJob({ job: unknown, known: all.map((j) => j.name) })
    const selected = options.jobs === undefined ? all : all.filter((j) => options.jobs!.includes(j.name))
    const columns: Array<ColumnProgress> = []
    for (const job of selected) {
      const present = new Set((yield* tableColumns(job.table).pipe(Effect.mapError(jobDatabaseError(job.name)))).map((c) => c.name))
      const readable = present.size > 0 && job.reads.every((c) => present.has(c))
      const checkpoint = Option.fromNullable(states.get(job.name))
      const cursor = Option.getOrUndefined(
        Option.flatMap(checkpoint, (c) => Option.fromNullable(c.cursor === null ? undefined : JobState.decodeKeyCursor(c.cursor)))
      )
      const counts: Counts = readable
        ? yield* Effect.gen(function*() {
          const key = yield* batchKey(job)
          return yield* countJob(job, dialect, present, { key, cursor, rejects })
        }).pipe(Effect.catchTag("SqlError", (error) => Effect.fail(jobDatabaseError(job.name)(error))))
        : noCounts(job)
      const state = Option.match(checkpoint, { onNone: () => "notStarted" as const, onSome: (c) => c.state })
      const source = job.sources.join(", ")
      Backfill.targetColumns(job).forEach((target, i) => {
        const { migrated, pending, rejected } = counts.perTarget[i]!
        const applied = present.has(target)
        const withoutValue = counts.total - migrated - pending - rejected
        const label = applied ? CoreProgress.label(migrated, migrated + pending) : "Just started"
        columns.push({
          job: job.name,
          table: job.table,
          column: target,
          source,
          applied,
          jobState: state,
          jobCounts: Option.match(checkpoint, { onNone: () => JobState.zeroCounts, onSome: JobState.countsOf }),
          total: counts.total,
          migrated,
          pending,
          rejected,
          withoutValue,
          percent: applied ? CoreProgress.roundedPercent(migrated, migrated + pending) : 0,
          label,
          summary: summaryOf(applied, pending, rejected, withoutValue, label)
        })
      })
    }
    const sum = (field: "migrated" | "pending" | "rejected" | "withoutValue") => columns.reduce((n, c) => n + c[field], 0)
    const migrated = sum("migrated")
    const pending = sum("pending")
    const appliedColumns = columns.filter((c) => c.applied).length
    // A column whose table is missing has no rows to count, so rows alone can read 100%.
    const byColumns = CoreProgress.roundedPercent(appliedColumns, columns.length)
    const byRows = CoreProgress.roundedPercent(migrated, migrated + pending)
    return {
      plan: plan.name,
      columns,
      migrated,
      pending,
      rejected: sum("rejected"),
      withoutValue: sum("withoutValue"),
      percent: Math.min(byRows, byColumns),
      label: byColumns < byRows
        ? CoreProgress.label(appliedColumns, columns.length)
        : CoreProgress.label(migrated, migrated + pending)
    }
  }).pipe(Effect.withSpan("Progress.report", { attributes: { plan: plan.name } }))

/**
 * The progress report's operations on one plan (the plan is given when the service is built).
 *
 * @since 0.2.0
 * @category models
 */
export interface Progress {
  readonly plan: Plan.Plan
  /**
   * The progress of every backfill column of the plan (or of `jobs`), from SQL counts. A table that
   * does not exist yet reports zero rows; a column whose migration is not applied reports
   * `applied: false`, nothing migrated, 0% and "Just started" (with no rows to count it would
   * otherwise read as "Complete"). The plan's overall figure is the lesser of the rows' share
   * migrated and the columns' share applied, so a plan with a column still missing is never
   * "Complete" either.
   */
  readonly report: (options?: Options) => Effect.Effect<ProgressReport, ProgressError>
}

/**
 * The tag of the progress service.
 *
 * @since 0.2.0
 * @category tags
 */
export const Progress = Context.GenericTag<Progress>("@strata/sql/Progress")

/**
 * The progress report of `plan` over the `SqlClient` in context; its statements run on
 * `Database.strataClient` (the app's client without name transforms), and strata's tables are
 * where `Database.StrataSchema` said when it was built.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (plan: Plan.Plan): Effect.Effect<Progress, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* Database.strataClient
    const schema = yield* Database.StrataSchema
    return Progress.of({
      plan,
      report: (options = {}) =>
        buildReport(plan, options).pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.provideService(Database.StrataSchema, schema))
    })
  })

/**
 * The progress report of `plan` over the app's `SqlClient`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (plan: Plan.Plan): Layer.Layer<Progress, never, SqlClient.SqlClient> => Layer.effect(Progress, make(plan))

/**
 * `report` on the progress service in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const report = (options?: Options): Effect.Effect<ProgressReport, ProgressError, Progress> =>
  Effect.flatMap(Progress, (progress) => progress.report(options))
