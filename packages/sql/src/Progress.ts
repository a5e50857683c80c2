/**
 * How far a plan's backfills are, per table and column, from SQL counts on your tables: rows
 * migrated, rows still pending (the job's own pending predicate), rows rejected, percent and a
 * label. Works while a backfill or the lazy path is running; reads only.
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
import { filterSql, type JobDatabaseError, jobDatabaseError, Params, UnknownJob } from "./internal/jobTable.js"
import * as JobState from "./JobState.js"

/**
 * One target column's progress.
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
  /** Rows the job applies to (its filter matches). */
  readonly total: number
  /** Rows with the column set. */
  readonly migrated: number
  /** Rows still waiting for it (the column NULL, its source present); includes rows that cannot be converted. */
  readonly pending: number
  /** Rows the job recorded as unconvertible (per job, so the same for each of its columns). */
  readonly rejected: number
  /** `migrated / (migrated + pending)`, 0-100; 100 when there is nothing to do; 0 while the column is not applied. */
  readonly percent: number
  /** Seed 000's label of `percent`; "Just started" while the column is not applied (never "Complete"). */
  readonly label: CoreProgress.Label
}

/**
 * A plan's progress.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressReport {
  readonly plan: string
  readonly columns: ReadonlyArray<ColumnProgress>
  readonly migrated: number
  readonly pending: number
  /** The lesser of the rows' share migrated and the columns' share applied (see `report`). */
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

interface Counts {
  readonly total: number
  readonly perTarget: ReadonlyArray<{ readonly migrated: number; readonly pending: number }>
}

const countJob = (job: Backfill.Job, dialect: "sqlite" | "pg", present: ReadonlySet<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(dialect)
    const filter = filterSql(job.filter, params)
    const requires = job.requires === undefined ? "" : ` AND ${Identifier.quote(job.requires)} IS NOT NULL`
    const columns = Backfill.targetColumns(job).flatMap((target, i) => {
      const column = Identifier.quote(target)
      return present.has(target)
        ? [
          `count(${column}) AS m${i}`,
          `COALESCE(sum(CASE WHEN ${column} IS NULL${requires} THEN 1 ELSE 0 END), 0) AS p${i}`
        ]
        : [`0 AS m${i}`, `COALESCE(sum(CASE WHEN TRUE${requires} THEN 1 ELSE 0 END), 0) AS p${i}`]
    })
    const rows = yield* sql.unsafe<Record<string, number | string | null>>(
      `SELECT count(*) AS total, ${columns.join(", ")} FROM ${Identifier.quoteTable(job.table)}${filter === undefined ? "" : ` WHERE ${filter}`}`,
      params.values
    )
    const row = rows[0] ?? {}
    return {
      total: Number(row["total"] ?? 0),
      perTarget: job.targets.map((_, i) => ({ migrated: Number(row[`m${i}`] ?? 0), pending: Number(row[`p${i}`] ?? 0) }))
    } satisfies Counts
  })

const jobStates = Effect.gen(function*() {
  if ((yield* tableColumns(yield* Database.strataTable("strata_jobs"))).length === 0) return new Map<string, JobState.Checkpoint>()
  return new Map((yield* JobState.loadCheckpoints).map((c) => [c.job, c]))
})

const rejectCounts = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const table = yield* Database.strataTable("strata_rejects")
  if ((yield* tableColumns(table)).length === 0) return new Map<string, number>()
  const rows = yield* sql.unsafe<{ job: string; n: number | string }>(
    `SELECT job, count(*) AS n FROM ${Identifier.quoteTable(table)} GROUP BY job`
  )
  return new Map(rows.map((r) => [r.job, Number(r.n)]))
})

const buildReport = (plan: Plan.Plan, options: Options) =>
  Effect.gen(function*() {
    const dialect = yield* Database.dialect
    const states = yield* jobStates.pipe(Effect.mapError(jobDatabaseError("strata_jobs")))
    const rejects = yield* rejectCounts.pipe(Effect.mapError(jobDatabaseError("strata_rejects")))
    const columns: Array<ColumnProgress> = []
    const all = Backfill.jobs(plan)
    const unknown = options.jobs?.find((name) => !all.some((j) => j.name === name))
    if (unknown !== undefined) return yield* new UnknownJob({ job: unknown, known: all.map((j) => j.name) })
    const selected = options.jobs === undefined ? all : all.filter((j) => options.jobs!.includes(j.name))
    for (const job of selected) {
      const present = new Set((yield* tableColumns(job.table).pipe(Effect.mapError(jobDatabaseError(job.name)))).map((c) => c.name))
      const readable = present.size > 0 && job.reads.every((c) => present.has(c))
      const counts: Counts = readable
        ? yield* countJob(job, dialect, present).pipe(Effect.mapError(jobDatabaseError(job.name)))
        : { total: 0, perTarget: job.targets.map(() => ({ migrated: 0, pending: 0 })) }
      const state = Option.match(Option.fromNullable(states.get(job.name)), { onNone: () => "notStarted" as const, onSome: (c) => c.state })
      const source = job.sources.join(", ")
      Backfill.targetColumns(job).forEach((target, i) => {
        const { migrated, pending } = counts.perTarget[i]!
        const applied = present.has(target)
        columns.push({
          job: job.name,
          table: job.table,
          column: target,
          source,
          applied,
          jobState: state,
          total: counts.total,
          migrated,
          pending,
          rejected: rejects.get(job.name) ?? 0,
          percent: applied ? CoreProgress.percent(migrated, migrated + pending) : 0,
          label: applied ? CoreProgress.label(migrated, migrated + pending) : "Just started"
        })
      })
    }
    const migrated = columns.reduce((sum, c) => sum + c.migrated, 0)
    const pending = columns.reduce((sum, c) => sum + c.pending, 0)
    const appliedColumns = columns.filter((c) => c.applied).length
    // A column whose table is missing has no rows to count, so rows alone can read 100%.
    const byColumns = CoreProgress.percent(appliedColumns, columns.length)
    const byRows = CoreProgress.percent(migrated, migrated + pending)
    return {
      plan: plan.name,
      columns,
      migrated,
      pending,
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
 * `Database.strataClient` (the app's client without name transforms).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (plan: Plan.Plan): Effect.Effect<Progress, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* Database.strataClient
    return Progress.of({
      plan,
      report: (options = {}) => Effect.provideService(buildReport(plan, options), SqlClient.SqlClient, sql)
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
