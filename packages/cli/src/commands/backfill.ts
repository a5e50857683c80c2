/**
 * `strata backfill [--job NAME ...] [--batch-size N] [--max-batch-ms N] [--pause-ms N]
 * [--writer-turn-ms N] [--batch-lock-timeout-ms N] [--dry-run] [--restart] [--backup FILE]`: runs the plan's backfill jobs in short batches with live
 * progress. Ctrl-C stops at a batch boundary with the checkpoint saved (exit 130); running again
 * resumes where it stopped.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Backfill, type Plan, Progress } from "@strata/core"
import { BackfillRunner } from "@strata/sql"
import { Clock, Effect, Option, Ref, Stream } from "effect"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as ProgressView from "../ProgressView.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import { count } from "../Table.js"
import { backupFirst, backupOption } from "./migrate.js"

const optionalInteger = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)

/**
 * The `backfill` options besides the shared ones.
 *
 * @since 0.1.0
 */
export const options = {
  job: SharedOptions.jobs("Run only this job (repeat for several); default: every job of the plan. See 'strata status' for names."),
  batchSize: optionalInteger("batch-size", "Rows in the first batch (adapted afterwards to --max-batch-ms). Default 1000."),
  maxBatchMs: optionalInteger("max-batch-ms", "The longest one batch's transaction should hold its locks, in ms. Default 50."),
  pauseMs: optionalInteger("pause-ms", "Pause between batches, in ms, leaving room for other writers. Default 0."),
  writerTurnMs: optionalInteger(
    "writer-turn-ms",
    "SQLite: the longest the write lock is left free between batches while another connection writes, in ms. Default 15; 0 gives none."
  ),
  batchLockTimeoutMs: optionalInteger(
    "batch-lock-timeout-ms",
    "PostgreSQL: the longest a batch waits for a row another transaction holds before it retries smaller and steps over it, in ms. Default 100."
  ),
  dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Convert and count every pending row, write nothing.")),
  restart: Options.boolean("restart").pipe(
    Options.withDescription("Forget the selected jobs' checkpoints and rejects and scan their tables again.")
  ),
  backup: backupOption
} as const

/**
 * The `--job` jobs in plan order (each once), every job when none is named, or `UnknownJob`
 * naming the plan's jobs before any work starts.
 */
const selectJobs = (plan: Plan.Plan, names: ReadonlyArray<string>) => {
  const all = Backfill.jobs(plan)
  const unknown = names.find((name) => !all.some((job) => job.name === name))
  if (unknown !== undefined) return Effect.fail(new BackfillRunner.UnknownJob({ job: unknown, known: all.map((job) => job.name) }))
  return Effect.succeed(names.length === 0 ? all : all.filter((job) => names.includes(job.name)))
}

/** The runner's options from the command line; the flags' milliseconds go as numbers, which the runner checks as durations. */
const runnerOptions = (args: {
  readonly batchSize: Option.Option<number>
  readonly maxBatchMs: Option.Option<number>
  readonly pauseMs: Option.Option<number>
  readonly writerTurnMs: Option.Option<number>
  readonly batchLockTimeoutMs: Option.Option<number>
  readonly dryRun: boolean
  readonly restart: boolean
}): Omit<BackfillRunner.Options, "jobs"> => ({
  batchSize: Option.getOrUndefined(args.batchSize),
  maxBatchTime: Option.getOrUndefined(args.maxBatchMs),
  pause: Option.getOrUndefined(args.pauseMs),
  writerTurn: Option.getOrUndefined(args.writerTurnMs),
  batchLockTimeout: Option.getOrUndefined(args.batchLockTimeoutMs),
  dryRun: args.dryRun,
  restart: args.restart
})

const flagOf: Readonly<Record<string, string>> = {
  batchSize: "--batch-size",
  maxBatchTime: "--max-batch-ms",
  pause: "--pause-ms",
  writerTurn: "--writer-turn-ms",
  batchLockTimeout: "--batch-lock-timeout-ms"
}

/** The runner's own check of the options, before anything is printed or run, naming the flag as typed. */
const checkOptions = (options: Omit<BackfillRunner.Options, "jobs">) =>
  BackfillRunner.checkOptions(options).pipe(
    Effect.mapError((error) =>
      flagOf[error.option] === undefined ? error : new Outcome.BadArgument({ message: `${flagOf[error.option]} ${error.reason}` })
    )
  )

/**
 * What a run did: each job's last event, and how long the run took.
 *
 * @since 0.1.0
 */
export interface RunSummary {
  readonly events: ReadonlyArray<BackfillRunner.ProgressEvent>
  readonly elapsedMs: number
  readonly dryRun: boolean
}

/**
 * Runs `jobs` of `plan`, showing progress in `mode`. Interrupted (Ctrl-C), the runner stops at a
 * batch boundary with the checkpoint saved.
 *
 * @since 0.1.0
 */
export const runWithProgress = (
  plan: Plan.Plan,
  jobs: ReadonlyArray<Backfill.Job>,
  options: Omit<BackfillRunner.Options, "jobs">,
  mode: ProgressView.Mode,
  indent = "",
  seen?: Ref.Ref<ReadonlyMap<string, BackfillRunner.ProgressEvent>>
) =>
  Effect.gen(function*() {
    const width = Math.max(0, ...jobs.map((job) => job.name.length))
    const view = yield* ProgressView.make(mode, width, { indent })
    const last = seen ?? (yield* Ref.make<ReadonlyMap<string, BackfillRunner.ProgressEvent>>(new Map()))
    const started = yield* Clock.currentTimeMillis
    yield* BackfillRunner.stream({ ...options, jobs: jobs.map((job) => job.name) }).pipe(
      Stream.runForEach((event) => Effect.zipRight(view.show(event), Ref.update(last, (m) => new Map(m).set(event.job, event)))),
      Effect.ensuring(view.close)
    )
    const ended = yield* Ref.get(last)
    const summary: RunSummary = {
      events: jobs.flatMap((job) => {
        const event = ended.get(job.name)
        return event === undefined ? [] : [event]
      }),
      elapsedMs: (yield* Clock.currentTimeMillis) - started,
      dryRun: options.dryRun === true
    }
    return summary
  }).pipe(Effect.provide(BackfillRunner.layer(plan)))

/**
 * The run's summary for people: totals (each job's own line was shown as it ended), and what
 * happened to rows that could not be converted.
 *
 * @since 0.1.0
 */
export const summaryLines = (summary: RunSummary): ReadonlyArray<string> => {
  const sum = (pick: (e: BackfillRunner.ProgressEvent) => number) => summary.events.reduce((total, e) => total + pick(e), 0)
  const skipped = summary.events.filter((e) => e.phase === "skipped").length
  const rejected = sum((e) => e.rejected)
  const off = summary.events.filter((e) => e.fastPath === "off").map((e) => e.job)
  return [
    `${summary.dryRun ? "Dry run finished" : "Backfill finished"} in ${Progress.formatDuration(summary.elapsedMs)}: ` +
    `${summary.events.length} job${summary.events.length === 1 ? "" : "s"}${skipped > 0 ? ` (${skipped} already done)` : ""}, ` +
    `${count(sum((e) => e.processed))} rows walked, ${count(sum((e) => e.updated))} ${summary.dryRun ? "would be updated" : "updated"}, ` +
    `${count(rejected)} rejected.`,
    ...(rejected > 0 && !summary.dryRun
      ? [`Rejected rows could not be converted: they are recorded in strata_rejects and left as they were ('strata rejects' lists them).`]
      : []),
    ...(off.length > 0
      ? [`The SQL fast path was turned off for ${off.join(", ")}: it failed a check (see the warning above); the rest of ${
        off.length === 1 ? "that job" : "those jobs"
      } went through JavaScript, several times slower.`]
      : [])
  ]
}

/**
 * The run's summary for machines.
 *
 * @since 0.1.0
 */
export const summaryJson = (summary: RunSummary) => ({
  dryRun: summary.dryRun,
  elapsedMs: summary.elapsedMs,
  jobs: summary.events.map((e) => ({
    job: e.job,
    table: e.table,
    outcome: e.phase === "skipped" ? "alreadyDone" : e.dryRun ? "dryRun" : "completed",
    // every walked row is one of the four, as in strata_jobs: processed = updated + rejected + alreadySet + outOfScope
    processed: e.processed,
    updated: e.updated,
    rejected: e.rejected,
    alreadySet: e.alreadySet,
    outOfScope: e.outOfScope,
    total: e.total,
    // the SQL fast path in this run: none, used, or off (it failed a check; the rest went through JavaScript)
    ...(e.fastPath === undefined ? {} : { fastPath: e.fastPath }),
    // the target indexes built once the job was done (on SQLite the table's writes waited for each)
    ...(e.indexes === undefined ? {} : {
      indexes: e.indexes.map((i) => ({
        migrationId: i.migrationId,
        name: i.name,
        table: i.table,
        durationMs: i.durationMs,
        concurrently: i.concurrently,
        rebuiltInvalid: i.rebuiltInvalid
      }))
    })
  }))
})

/**
 * What Ctrl-C prints. After `--restart`, the runner had started over only the jobs it reached
 * (each is reset when it starts); the others keep their earlier checkpoints, which a plain re-run
 * would not restart, so the hint names them.
 */
const interruptedHint = (
  restart: boolean,
  selected: Ref.Ref<ReadonlyArray<string>>,
  seen: Ref.Ref<ReadonlyMap<string, BackfillRunner.ProgressEvent>>
): Effect.Effect<string> =>
  Effect.gen(function*() {
    const hint = Session.resumableInterrupted(restart)
    if (!restart) return hint
    const reached = yield* Ref.get(seen)
    const untouched = (yield* Ref.get(selected)).filter((job) => !reached.has(job))
    return untouched.length === 0
      ? hint
      : `${hint} Not restarted yet, these keep their earlier checkpoints: ${untouched.join(", ")} ` +
        `(to start them over: --restart ${untouched.map((job) => `--job ${job}`).join(" ")}).`
  })

/**
 * The `backfill` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make("backfill", { ...SharedOptions.shared, ...options }, (args) =>
  Effect.gen(function*() {
    const selected = yield* Ref.make<ReadonlyArray<string>>([])
    const seen = yield* Ref.make<ReadonlyMap<string, BackfillRunner.ProgressEvent>>(new Map())
    return yield* Session.run(
    args,
    Effect.zipRight(checkOptions(runnerOptions(args)), Session.withDatabase(args, { mustExist: true }, ({ plan, target }) =>
      Effect.gen(function*() {
        const jobs = yield* selectJobs(plan, args.job)
        yield* Ref.set(selected, jobs.map((job) => job.name))
        if (jobs.length === 0) {
          return yield* Output.either(
            args.json,
            "backfill",
            () => ({ database: target.display, plan: plan.name, dryRun: args.dryRun, elapsedMs: 0, jobs: [] }),
            () => [`Plan ${plan.name} has no backfill jobs.`]
          )
        }
        if (!args.dryRun) yield* backupFirst(target, args.backup)
        if (!args.json) {
          yield* Output.line(
            `Backfilling ${jobs.length} job${jobs.length === 1 ? "" : "s"} of plan ${plan.name} on ${target.display}${
              args.dryRun ? " (dry run: nothing is written)" : ""
            }`
          )
        }
        const summary = yield* runWithProgress(plan, jobs, runnerOptions(args), ProgressView.modeFor(args.json), "", seen)
        yield* Output.either(
          args.json,
          "backfill",
          () => ({ database: target.display, plan: plan.name, ...summaryJson(summary) }),
          () => ["", ...summaryLines(summary)]
        )
      }))),
    interruptedHint(args.restart, selected, seen)
  )
  })).pipe(Command.withDescription("Run the plan's backfill jobs in short batches, resumable, with progress."))
