/**
 * `strata rejects [--job NAME]... [--limit N]`: the rows backfills and imports could not convert,
 * with each row's key and the reason, read from `strata_rejects` through `JobState`. Reads only.
 *
 * Which jobs: the ones named with `--job`, else every job recorded in the database; with `--plan`
 * (or `STRATA_PLAN`), only that plan's backfill jobs. No plan is needed: the rejects are the
 * database's record, whatever plan wrote them.
 *
 * @since 0.2.0
 */
import { Command, Options } from "@effect/cli"
import { Backfill, Options as CoreOptions } from "@strata/core"
import { Catalog, Database, JobState } from "@strata/sql"
import { Effect, Option, Schema } from "effect"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as PlanSource from "../PlanSource.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import * as Table from "../Table.js"

/**
 * How many rows per job are listed unless `--limit` says otherwise.
 *
 * @since 0.2.0
 */
export const defaultLimit = 100

/**
 * `--job` names a job that has recorded nothing in this database (or is not in `--plan`).
 *
 * @since 0.2.0
 * @category errors
 */
export class JobNotRecorded extends Schema.TaggedError<JobNotRecorded>()("JobNotRecorded", {
  job: Schema.String,
  known: Schema.Array(Schema.String),
  plan: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const where = this.plan === undefined ? "no job of that name has run on this database" : `plan ${this.plan} has no such job`
    return `Unknown job ${JSON.stringify(this.job)}: ${where}; known jobs: ${this.known.length === 0 ? "(none)" : this.known.join(", ")}`
  }
}

/**
 * One job's rejects: how many are recorded, and the first `limit` in row-key order.
 *
 * @since 0.2.0
 * @category models
 */
export interface JobRejects {
  readonly job: string
  readonly rejected: number
  readonly rows: ReadonlyArray<{ readonly rowKey: string; readonly reason: string; readonly atMs: number }>
}

/** The jobs to list: the recorded ones (the plan's, with `--plan`), narrowed to `--job`. */
const selectJobs = (recorded: ReadonlyArray<string>, names: ReadonlyArray<string>, planJobs: Option.Option<{ readonly plan: string; readonly jobs: ReadonlyArray<string> }>) => {
  const known = Option.match(planJobs, { onNone: () => recorded, onSome: ({ jobs }) => jobs })
  const unknown = names.find((name) => !known.includes(name))
  if (unknown !== undefined) {
    return Effect.fail(new JobNotRecorded({ job: unknown, known, plan: Option.getOrUndefined(Option.map(planJobs, (p) => p.plan)) }))
  }
  return Effect.succeed(names.length === 0 ? known : known.filter((job) => names.includes(job)))
}

/**
 * Reads the rejects of the selected jobs.
 *
 * @since 0.2.0
 */
export const readRejects = (options: {
  readonly jobs: ReadonlyArray<string>
  readonly limit: number
  readonly planJobs: Option.Option<{ readonly plan: string; readonly jobs: ReadonlyArray<string> }>
}) =>
  Effect.gen(function*() {
    // A database no job has run on has no strata_jobs table: nothing was rejected (and nothing is created).
    const hasJobs = (yield* Catalog.tableColumns(yield* Database.strataTable("strata_jobs"))).length > 0
    const hasRejects = (yield* Catalog.tableColumns(yield* Database.strataTable("strata_rejects"))).length > 0
    const recorded = hasJobs ? (yield* JobState.loadCheckpoints).map((checkpoint) => checkpoint.job) : []
    const jobs = yield* selectJobs(recorded, options.jobs, options.planJobs)
    const read = (job: string) =>
      Effect.map(
        Effect.all({ rejected: JobState.rejectCount(job), recorded: JobState.loadRejects(job, options.limit) }),
        ({ recorded, rejected }): JobRejects => ({
          job,
          rejected,
          rows: recorded.map((r) => ({ rowKey: r.rowKey, reason: r.reason, atMs: r.atMs }))
        })
      )
    return yield* Effect.forEach(jobs, (job) => (hasRejects ? read(job) : Effect.succeed<JobRejects>({ job, rejected: 0, rows: [] })))
  }).pipe(Database.withStrataClient)

/**
 * The listing for people: one line per row (job, key, reason), then what was left out.
 *
 * @since 0.2.0
 */
export const rejectLines = (jobs: ReadonlyArray<JobRejects>, database: string): ReadonlyArray<string> => {
  const total = jobs.reduce((sum, job) => sum + job.rejected, 0)
  const withRejects = jobs.filter((job) => job.rejected > 0)
  if (total === 0) {
    return [`No rejected rows on ${database} (${jobs.length} job${jobs.length === 1 ? "" : "s"} checked).`]
  }
  const rows = withRejects.flatMap((job) => job.rows.map((row) => ({ job: job.job, ...row })))
  const cut = withRejects.filter((job) => job.rows.length < job.rejected)
  return [
    `Rejected rows on ${database}: ${Table.count(total)} in ${withRejects.length} job${withRejects.length === 1 ? "" : "s"}`,
    "",
    ...Table.render<(typeof rows)[number]>([
      { header: "JOB", cell: (r) => r.job },
      { header: "KEY", cell: (r) => r.rowKey },
      { header: "REASON", cell: (r) => r.reason.replace(/\s*\n\s*/g, " ") }
    ], rows),
    ...(cut.length === 0 ? [] : [
      "",
      ...cut.map((job) => `${job.job}: ${Table.count(job.rows.length)} of ${Table.count(job.rejected)} shown (--limit ${job.rejected} lists all).`)
    ]),
    "",
    `Rejected rows are left as they were; once their source is fixed, 'strata backfill --restart --job NAME' converts them.`
  ]
}

/**
 * The `rejects` subcommand.
 *
 * @since 0.2.0
 */
export const command = Command.make(
  "rejects",
  {
    ...SharedOptions.shared,
    plan: SharedOptions.planFilter,
    job: SharedOptions.jobs("List only this job's rejects (repeat for several); default: every job."),
    limit: Options.integer("limit").pipe(
      Options.withPseudoName("N"),
      Options.withDescription(`Rows listed per job, in row-key order. Default ${defaultLimit}.`),
      Options.optional
    )
  },
  (args) =>
    Session.run(
      args,
      Effect.gen(function*() {
        const limit = Option.getOrElse(args.limit, () => defaultLimit)
        const problem = CoreOptions.problem(limit, CoreOptions.positiveCount)
        if (problem !== undefined) return yield* new Outcome.BadArgument({ message: `--limit ${problem}` })
        const plan = Option.isSome(args.plan) ? Option.some(yield* PlanSource.load(args.plan)) : Option.none()
        const planJobs = Option.map(plan, (p) => ({ plan: p.name, jobs: Backfill.jobs(p).map((job) => job.name) }))
        return yield* Session.withTarget(args.db, { mustExist: true }, (target) =>
          Effect.gen(function*() {
            const jobs = yield* readRejects({ jobs: args.job, limit, planJobs })
            yield* Output.either(
              args.json,
              "rejects",
              () => ({ database: target.display, limit, rejected: jobs.reduce((sum, job) => sum + job.rejected, 0), jobs }),
              () => rejectLines(jobs, target.display)
            )
          }))
      })
    )
).pipe(Command.withDescription("List the rows backfills and imports could not convert: key and reason per row."))
