/**
 * `strata fleet migrate|backfill|verify|status --targets FILE`: one plan across every database a
 * targets file lists (SQLite files and globs, PostgreSQL URLs, `postgres://…#schema`), N at a
 * time, with a canary, a ledger that makes an interrupted run resumable, and a summary per target.
 * `strata fleet worker --cluster URL` runs the same work as durable workflows on @effect/cluster.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Progress } from "@strata/core"
import { Fleet, FleetCluster, Ledger, Targets } from "@strata/fleet"
import { Effect, Layer, Option, Stream } from "effect"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as PlanSource from "../PlanSource.js"
import * as Session from "../SharedOptions.js"
import * as Run from "../Session.js"
import { count, render } from "../Table.js"
import * as Terminal from "../Terminal.js"

const targetsOption = Options.text("targets").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    "The targets: one per line (# comments), a SQLite path or glob (tenants/*.db), a postgres:// URL, or postgres://…#schema; or a JSON list."
  )
)

const ledgerOption = Options.text("ledger").pipe(
  Options.withPseudoName("path|url"),
  Options.withDescription("Where the fleet ledger lives (SQLite path or postgres:// URL). Default: <targets file>.fleet.db next to it; with --cluster, the cluster database."),
  Options.optional
)

const clusterOption = Options.text("cluster").pipe(
  Options.withPseudoName("postgres://…"),
  Options.withDescription("Run on the workers of this cluster database ('strata fleet worker --cluster …') instead of here."),
  Options.optional
)

const optionalInteger = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)

const runOptions = {
  plan: Session.plan,
  json: Session.json,
  targets: targetsOption,
  concurrency: optionalInteger("concurrency", "Targets at once (a PostgreSQL server's pool has as many connections). Default 4."),
  canary: optionalInteger("canary", "Run the first K targets first; stop the rollout if any of them fails."),
  failFast: Options.boolean("fail-fast").pipe(Options.withDescription("Start no further target after the first failure (default: record it and go on).")),
  ledger: ledgerOption,
  cluster: clusterOption
} as const

const backfillOptions = {
  batchSize: optionalInteger("batch-size", "Rows in each job's first batch (adapted afterwards). Default 1000."),
  maxBatchMs: optionalInteger("max-batch-ms", "The longest one batch's transaction should hold its locks, in ms. Default 50."),
  pauseMs: optionalInteger("pause-ms", "Pause between batches, in ms. Default 0.")
} as const

interface RunArgs {
  readonly plan: Option.Option<string>
  readonly json: boolean
  readonly targets: string
  readonly concurrency: Option.Option<number>
  readonly canary: Option.Option<number>
  readonly failFast: boolean
  readonly ledger: Option.Option<string>
  readonly cluster: Option.Option<string>
}

const resultCells = (r: Fleet.TargetResult) => ({
  state: r.fromEarlierInvocation ? `${r.state} (earlier)` : r.state,
  reason: r.reason ?? ""
})

/** The final summary for people: one line per target, then the totals. */
const summaryLines = (summary: Fleet.Summary): ReadonlyArray<string> => {
  const table = render<Fleet.TargetResult>([
    { header: "target", cell: (r) => r.display },
    { header: "state", cell: (r) => resultCells(r).state },
    { header: "migrations", cell: (r) => String(r.migrationsApplied), align: "right" },
    { header: "jobs", cell: (r) => String(r.jobsDone), align: "right" },
    { header: "rows", cell: (r) => count(r.rows), align: "right" },
    { header: "rejects", cell: (r) => count(r.rejects), align: "right" },
    { header: "reason", cell: (r) => resultCells(r).reason }
  ], summary.targets)
  const stopped = summary.stoppedBy === "canary"
    ? " The canary failed: the rollout stopped."
    : summary.stoppedBy === "failFast"
    ? " --fail-fast stopped the rollout."
    : ""
  return [
    ...table,
    "",
    `fleet ${summary.operation} (plan ${summary.plan}, run ${summary.runId}${summary.resumed ? ", resumed" : ""}): ` +
    `${summary.done} of ${summary.total} targets done, ${summary.failed} failed, ${summary.skipped} skipped in ${Progress.formatDuration(summary.elapsedMs)}.${stopped}`,
    ...(summary.done < summary.total ? ["Run the same command again to retry the targets that are not done (finished ones are not opened again)."] : [])
  ]
}

const progressText = (operation: string, p: Fleet.Progress): string =>
  `fleet ${operation}: ${p.done + p.failed + p.skipped}/${p.total} targets (${p.failed} failed, ${p.running} running)` +
  (p.rows > 0 ? ` · ${count(p.rows)} rows · ${Progress.formatRate(p.rowsPerSecond)}` : "") +
  (p.etaMs !== undefined ? ` · ETA ${Progress.formatDuration(p.etaMs)}` : "")

/** JSON lines for machines: progress events, then the result (the summary). */
const eventJson = (operation: string, event: Fleet.FleetEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "RunStarted":
      return Output.progress({ event: "run", runId: event.runId, resumed: event.resumed, total: event.total, alreadyDone: event.alreadyDone })
    case "TargetStarted":
      return Output.progress({ event: "started", target: event.display })
    case "TargetFinished":
      return Output.progress({ event: "target", ...event.result, target: event.result.display, fleet: event.progress })
    case "Progress":
      return Output.progress({ event: "fleet", ...event.progress })
    case "Finished":
      return Output.result(`fleet ${operation}`, {
        ...event.summary,
        targets: event.summary.targets.map((t) => ({ ...t, target: t.display }))
      })
  }
}

/** Shows the events: NDJSON with --json, a live line on a terminal, a line every 2 s otherwise. */
const viewer = (operation: string, json: boolean) => {
  const live = !json && Terminal.stdoutIsTty()
  let lastLineAt = 0
  let drawn = false
  const clear = Effect.sync(() => {
    if (drawn) process.stdout.write("\r\x1b[2K")
    drawn = false
  })
  const show = (event: Fleet.FleetEvent): Effect.Effect<void> => {
    if (json) return eventJson(operation, event)
    if (event._tag === "Finished") return Effect.zipRight(clear, Output.lines(summaryLines(event.summary)))
    const progress = event._tag === "Progress" || event._tag === "TargetFinished" ? event.progress : undefined
    if (progress === undefined) return Effect.void
    return Effect.suspend(() => {
      const now = Date.now()
      if (live) {
        drawn = true
        return Terminal.writeStdout(`\r\x1b[2K${progressText(operation, progress)}`)
      }
      if (now - lastLineAt < 2000) return Effect.void
      lastLineAt = now
      return Output.line(progressText(operation, progress))
    })
  }
  return { show, clear }
}

const ledgerUrl = (args: RunArgs): string =>
  Option.getOrElse(args.ledger, () => Option.getOrElse(args.cluster, () => Ledger.defaultLocation(args.targets)))

const runCommand = (operation: Ledger.Operation, args: RunArgs, backfill: Fleet.RunOptions["backfill"]) =>
  Run.run(
    args,
    Effect.gen(function*() {
      const plan = yield* PlanSource.load(args.plan)
      const targets = yield* Targets.load(args.targets)
      const options: Fleet.RunOptions = {
        targets,
        targetsFile: args.targets,
        concurrency: Option.getOrUndefined(args.concurrency),
        canary: Option.getOrUndefined(args.canary),
        failFast: args.failFast,
        backfill
      }
      const view = viewer(operation, args.json)
      const events = Option.match(args.cluster, {
        onNone: () => Fleet.stream(operation, options).pipe(Stream.provideLayer(Fleet.layer(plan).pipe(Layer.provide(Ledger.layer(ledgerUrl(args)))))),
        onSome: (cluster) => FleetCluster.submit(plan, operation, { ...options, cluster, ledger: ledgerUrl(args) })
      })
      let summary: Fleet.Summary | undefined
      yield* events.pipe(
        Stream.runForEach((event) => {
          if (event._tag === "Finished") summary = event.summary
          return view.show(event)
        }),
        Effect.ensuring(view.clear)
      )
      if (summary !== undefined && summary.done < summary.total) return yield* new Outcome.ExitWith({ code: Outcome.failed })
    }),
    "interrupted; every finished target is recorded in the ledger. Run the same command again to resume where it stopped."
  )

const migrate = Command.make("migrate", runOptions, (args) => runCommand("migrate", args, undefined)).pipe(
  Command.withDescription("Apply the plan's pending migrations on every target.")
)

const backfill = Command.make("backfill", { ...runOptions, ...backfillOptions }, (args) =>
  runCommand("backfill", args, {
    batchSize: Option.getOrUndefined(args.batchSize),
    // Milliseconds as numbers: the runner checks them as durations.
    maxBatchTime: Option.getOrUndefined(args.maxBatchMs),
    pause: Option.getOrUndefined(args.pauseMs)
  })).pipe(Command.withDescription("Run the plan's backfill jobs on every target, each resumable."))

const verify = Command.make("verify", runOptions, (args) => runCommand("verify", args, undefined)).pipe(
  Command.withDescription("Run the plan's checks on every target; a target whose checks fail is failed.")
)

const statusLines = (report: Fleet.StatusReport): ReadonlyArray<string> => [
  ...render<Fleet.TargetStatus>([
    { header: "target", cell: (t) => t.display },
    { header: "state", cell: (t) => t.state },
    { header: "applied", cell: (t) => (t.applied.length === 0 ? "-" : t.applied.join(",")) },
    { header: "pending", cell: (t) => (t.pending.length === 0 ? "-" : t.pending.join(",")) },
    { header: "last runs", cell: (t) => t.lastRuns.map((r) => `${r.operation} ${r.state}`).join(", ") },
    { header: "details", cell: (t) => [...t.drift, ...(t.reason !== undefined ? [t.reason] : [])].join("; ") }
  ], report.targets),
  "",
  `plan ${report.plan}: ${report.targets.length} targets: ${report.counts.ok} ok, ${report.counts.behind} behind, ` +
  `${report.counts.drifted} drifted, ${report.counts.failed} failed, ${report.counts.unreachable} unreachable.`
]

const status = Command.make("status", {
  plan: Session.plan,
  json: Session.json,
  targets: targetsOption,
  concurrency: optionalInteger("concurrency", "Targets read at once. Default 4."),
  ledger: ledgerOption
}, (args) =>
  Run.run(
    args,
    Effect.gen(function*() {
      const plan = yield* PlanSource.load(args.plan)
      const targets = yield* Targets.load(args.targets)
      const ledger = Option.getOrElse(args.ledger, () => Ledger.defaultLocation(args.targets))
      const report = yield* Fleet.status({ targets, concurrency: Option.getOrUndefined(args.concurrency) }).pipe(
        Effect.provide(Fleet.layer(plan).pipe(Layer.provide(Ledger.layer(ledger))))
      )
      yield* Output.either(args.json, "fleet status", () => report, () => statusLines(report))
      const bad = report.counts.drifted + report.counts.failed + report.counts.unreachable
      if (bad > 0) return yield* new Outcome.ExitWith({ code: Outcome.failed })
    })
  )).pipe(Command.withDescription("Per target: ok, behind (pending migrations), drifted, failed or unreachable; exit 1 unless none is drifted, failed or unreachable."))

const worker = Command.make("worker", {
  plan: Session.plan,
  json: Session.json,
  cluster: Options.text("cluster").pipe(
    Options.withPseudoName("postgres://…"),
    Options.withDescription("The cluster database the workers share (its cluster_* tables and the fleet ledger).")
  ),
  host: Options.text("host").pipe(Options.withDescription("The address other workers reach this one at. Default 127.0.0.1."), Options.withDefault("127.0.0.1")),
  port: Options.integer("port").pipe(Options.withDescription("The port this worker listens on for other workers. Default 34431."), Options.withDefault(34431))
}, (args) =>
  Run.run(
    args,
    Effect.gen(function*() {
      const plan = yield* PlanSource.load(args.plan)
      if (!args.json) yield* Output.line(`strata fleet worker on ${args.host}:${args.port} (plan ${plan.name}); Ctrl-C stops it, its targets move to the other workers.`)
      return yield* FleetCluster.worker(plan, { cluster: args.cluster, host: args.host, port: args.port })
    }),
    "worker stopped; its unfinished targets continue on the other workers"
  )).pipe(Command.withDescription("Run fleet targets as durable workflows with the other workers of a cluster database, until stopped."))

/**
 * `fleet`'s own subcommands.
 *
 * @since 0.1.0
 */
export const subcommands = [migrate, backfill, verify, status, worker] as const

/**
 * The `fleet` subcommand and its own subcommands.
 *
 * @since 0.1.0
 */
export const command = Command.make("fleet").pipe(
  Command.withDescription("One plan across many databases: migrate, backfill, verify, status; workers for more than one machine."),
  Command.withSubcommands(subcommands)
)
