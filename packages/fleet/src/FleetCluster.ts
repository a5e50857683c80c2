/**
 * A fleet beyond one machine, on Effect's own distributed engine: `@effect/cluster` with its
 * SQL-backed storage on PostgreSQL and `@effect/workflow`.
 *
 * - **Workers** (`worker`, `strata fleet worker --cluster postgres://…`) are plain processes that
 *   share one cluster database. Each is an @effect/cluster runner: it registers in
 *   `cluster_runners`, holds its shards with PostgreSQL advisory locks on one connection, and
 *   serves the others over a socket (`host:port`). When a worker dies its connection closes (the
 *   locks go with it) and its heartbeat stops; after `lockExpiration` the others take its shards
 *   and resume its workflows from their stored history.
 * - **Each target is a durable workflow** (`FleetTarget`, keyed by run, target and attempt), and
 *   each unit of work in it an activity: every migration (`migrate/<id>`), every backfill batch
 *   (`backfill/<job>/<n>`), the verification, the ledger's start and finish records. A finished
 *   activity's result is stored and replayed, never run again; an activity that was running on a
 *   worker that died runs again on the new owner. That is safe because its state lives in the
 *   target's own strata tables: the Migrator applies a migration once under the target's lock,
 *   and a backfill batch continues from the cursor in the target's `strata_jobs` (committed with
 *   the batch), so a re-run walks at most that one batch again and its writes are conditional.
 * - **Submitting** (`submit`, `strata fleet migrate|backfill|verify --cluster …`) opens the run in
 *   the fleet ledger (kept in the cluster database), starts the targets' workflows and follows
 *   their results; the workers do the work whether or not the submitter stays. Submitting again
 *   resumes: targets done in the ledger are not started, running ones are followed, failed ones
 *   get a new attempt.
 *
 * The workflow payload names the target, so the cluster database stores target URLs (PostgreSQL
 * passwords included): keep it as private as the targets file.
 *
 * @since 0.1.0
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Activity from "@effect/workflow/Activity"
import * as Workflow from "@effect/workflow/Workflow"
import type { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Backfill, Options, type Plan } from "@strata/core"
import { Database } from "@strata/sql"
import { Cause, Clock, Context, Duration, Effect, Either, Layer, Option, Schema, Scope, Stream } from "effect"
import { createClusterTables } from "./internal/clusterTables.js"
import * as Connections from "./internal/connections.js"
import * as TargetWork from "./internal/targetWork.js"
import * as Fleet from "./Fleet.js"
import * as Ledger from "./Ledger.js"
import type * as Targets from "./Targets.js"

const TargetSchema = Schema.Union(
  Schema.Struct({ _tag: Schema.Literal("Sqlite"), id: Schema.String, file: Schema.String, display: Schema.String }),
  Schema.Struct({
    _tag: Schema.Literal("Pg"),
    id: Schema.String,
    url: Schema.String,
    schema: Schema.UndefinedOr(Schema.String),
    display: Schema.String
  })
)

const ResultSchema = Schema.Struct({
  state: Schema.Literal("done", "failed"),
  migrationsApplied: Schema.Number,
  jobsDone: Schema.Number,
  rows: Schema.Number,
  rejects: Schema.Number,
  reason: Schema.UndefinedOr(Schema.String),
  elapsedMs: Schema.Number
})

/**
 * One step of a target's workflow failed; the workflow records the target as failed with `reason`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TargetStepFailed extends Schema.TaggedError<TargetStepFailed>()("TargetStepFailed", {
  reason: Schema.String
}) {
  override get message(): string {
    return this.reason
  }
}

// Durations travel as milliseconds or as Duration's text form ("2 seconds"); the runner checks them.
const SerializedDuration = Schema.Union(Schema.Number, Schema.String)

const BackfillSettings = Schema.Struct({
  batchSize: Schema.optional(Schema.Number),
  maxBatchTime: Schema.optional(SerializedDuration),
  pause: Schema.optional(SerializedDuration)
})

/** A DurationInput in a form the payload can carry, unchanged in meaning (a bad value stays bad, for the runner to refuse). */
const serializedDuration = (input: Duration.DurationInput | undefined): number | string | undefined => {
  if (input === undefined || typeof input === "number" || typeof input === "string") return input
  if (Duration.isDuration(input)) return Duration.isFinite(input) ? Duration.toMillis(input) : "Infinity"
  if (typeof input === "bigint") return `${input} nanos`
  return input[0] * 1000 + input[1] / 1_000_000
}

/**
 * The durable workflow of one target in one fleet run.
 *
 * @since 0.1.0
 * @category workflows
 */
export const FleetTarget = Workflow.make({
  name: "strata/FleetTarget",
  payload: {
    runId: Schema.String,
    attempt: Schema.Number,
    operation: Schema.Literal("migrate", "backfill", "verify"),
    plan: Schema.String,
    fingerprint: Schema.String,
    target: TargetSchema,
    backfill: BackfillSettings
  },
  success: ResultSchema,
  idempotencyKey: (p) => `${p.runId}/${p.target.id}/${p.attempt}`
})

/**
 * The worker's plan does not match the plan the run was submitted with.
 *
 * @since 0.1.0
 * @category errors
 */
export class PlanMismatch extends Schema.TaggedError<PlanMismatch>()("PlanMismatch", {
  submitted: Schema.String,
  worker: Schema.String
}) {
  override get message(): string {
    return `the run was submitted with plan ${this.submitted}, this worker has ${this.worker}: start workers with the same --plan`
  }
}

/** What every worker's activities share: target connections, the ledger, and a bound on parallel work. */
class WorkerContext extends Context.Tag("@strata/fleet/FleetCluster/WorkerContext")<WorkerContext, {
  readonly plan: Plan.Plan
  readonly connections: Connections.Connections
  readonly ledger: Ledger.Ledger
  readonly permits: Effect.Semaphore
}>() {}

const oneLine = (cause: Cause.Cause<unknown>): string => {
  const text = Option.match(Cause.failureOption(cause), {
    onNone: () => Cause.pretty(cause),
    onSome: (e) => (e instanceof Error ? e.message : String(e))
  })
  return text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "failed"
}

/** Runs `work` on the open target under one of the worker's permits; failures become `TargetStepFailed`. */
const onTarget = <A, E>(
  target: Targets.Target,
  work: (context: Context.Tag.Service<WorkerContext>) => Effect.Effect<A, E, SqlClient.SqlClient>
): Effect.Effect<A, TargetStepFailed, WorkerContext> =>
  Effect.flatMap(WorkerContext, (context) =>
    context.permits.withPermits(1)(
      Effect.scoped(Effect.flatMap(context.connections.open(target), (services) => Effect.provide(work(context), services)))
    ).pipe(
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.failCause(cause as Cause.Cause<never>) : Effect.fail(new TargetStepFailed({ reason: oneLine(cause) }))
      ),
      Effect.annotateLogs({ target: target.display })
    ))

const ledgerStep = <A>(f: (ledger: Ledger.Ledger) => Effect.Effect<A, Ledger.LedgerError>) =>
  Effect.flatMap(WorkerContext, (c) => f(c.ledger)).pipe(Effect.mapError((e) => new TargetStepFailed({ reason: e.message })))

const targetOf = (t: typeof TargetSchema.Type): Targets.Target =>
  t._tag === "Sqlite" ? t : { ...t, schema: t.schema as Targets.PgTarget["schema"] }

const zero = { migrationsApplied: 0, jobsDone: 0, rows: 0, rejects: 0 }

/** The workflow's body on a worker. */
const executeTarget = (payload: typeof FleetTarget.payloadSchema.Type) =>
  Effect.gen(function*() {
    const { plan } = yield* WorkerContext
    const target = targetOf(payload.target)
    const startedAt = yield* Activity.make({
      name: "start",
      success: Schema.Number,
      error: TargetStepFailed,
      execute: Effect.gen(function*() {
        if (Fleet.fingerprint(plan) !== payload.fingerprint) {
          return yield* new TargetStepFailed({ reason: new PlanMismatch({ submitted: `${payload.plan} (${payload.fingerprint})`, worker: `${plan.name} (${Fleet.fingerprint(plan)})` }).message })
        }
        yield* ledgerStep((l) => l.targetStarted(payload.runId, target))
        return yield* Clock.currentTimeMillis
      })
    })
    const counts = yield* steps(plan, payload, target).pipe(Effect.either)
    const result = Either.match(counts, {
      onLeft: (e) => ({ state: "failed" as const, ...zero, reason: e.reason }),
      onRight: (c) => ({ state: "done" as const, ...c, reason: undefined })
    })
    return yield* Activity.make({
      name: "finish",
      success: ResultSchema,
      error: TargetStepFailed,
      execute: Effect.gen(function*() {
        yield* ledgerStep((l) => l.targetFinished(payload.runId, target, result.state, result, result.reason))
        return { ...result, elapsedMs: (yield* Clock.currentTimeMillis) - startedAt }
      })
    })
  }).pipe(Effect.catchAll((e) => Effect.succeed({ state: "failed" as const, ...zero, reason: e.reason, elapsedMs: 0 })))

const steps = (
  plan: Plan.Plan,
  payload: typeof FleetTarget.payloadSchema.Type,
  target: Targets.Target
): Effect.Effect<Ledger.TargetCounts, TargetStepFailed, WorkerContext | WorkflowEngine | WorkflowInstance> =>
  Effect.gen(function*() {
    switch (payload.operation) {
      case "migrate": {
        let applied = 0
        for (const migration of plan.migrations) {
          applied += yield* Activity.make({
            name: `migrate/${migration.id}`,
            success: Schema.Number,
            error: TargetStepFailed,
            execute: onTarget(target, ({ ledger }) =>
              Effect.gen(function*() {
                const outcome = yield* TargetWork.migrate(plan, migration.id)
                yield* ledger.recordMigrations(target, outcome.history)
                return outcome.applied.length
              }))
          })
        }
        return { ...zero, migrationsApplied: applied }
      }
      case "backfill": {
        const totals = { ...zero }
        for (const job of Backfill.jobs(plan)) {
          for (let batch = 0;; batch++) {
            const step = yield* Activity.make({
              name: `backfill/${job.name}/${batch}`,
              success: Schema.Struct({ done: Schema.Boolean, processed: Schema.Number, updated: Schema.Number, rejected: Schema.Number }),
              error: TargetStepFailed,
              execute: onTarget(target, () => TargetWork.backfillBatch(plan, job.name, payload.backfill as TargetWork.BackfillOptions))
            })
            if (step.done) {
              totals.jobsDone++
              totals.rows += step.updated
              totals.rejects += step.rejected
              break
            }
          }
        }
        return totals
      }
      case "verify": {
        const rows = yield* Activity.make({
          name: "verify",
          success: Schema.Number,
          error: TargetStepFailed,
          execute: onTarget(target, () =>
            Effect.flatMap(TargetWork.verify(plan), (o) =>
              o.passed
                ? Effect.succeed(o.rowsScanned)
                : Effect.fail(new Fleet.TargetVerificationFailed({ target: target.display, failedChecks: o.failedChecks }))))
        })
        return { ...zero, rows }
      }
    }
  })

/** `postgres://…#schema` → the URL whose every connection's `search_path` is that schema. */
const clusterUrl = (url: string): string => {
  const hashAt = url.indexOf("#")
  if (hashAt < 0) return url
  const base = url.slice(0, hashAt)
  const schema = decodeURIComponent(url.slice(hashAt + 1))
  const parsed = new URL(base)
  const existing = parsed.searchParams.get("options")
  const setting = `-c search_path=${schema}`
  parsed.searchParams.set("options", existing != null && existing !== "" ? `${existing} ${setting}` : setting)
  return parsed.toString()
}

/**
 * Timings of the cluster: how fast a dead worker's targets move on.
 *
 * @since 0.1.0
 * @category models
 */
export interface ClusterTimings {
  /** A worker silent this long has lost its shards. Default 10 seconds. */
  readonly lockExpiration?: Duration.DurationInput | undefined
  /** How often workers look for new or dead workers and unprocessed messages. Default 1 second. */
  readonly pollInterval?: Duration.DurationInput | undefined
}

const shardingConfig = (address: Option.Option<RunnerAddress>, timings: ClusterTimings): Partial<ShardingConfig.ShardingConfig["Type"]> => {
  const expiration = Duration.decode(timings.lockExpiration ?? Duration.seconds(10))
  const poll = Duration.decode(timings.pollInterval ?? Duration.seconds(1))
  return {
    runnerAddress: address,
    shardLockExpiration: expiration,
    shardLockRefreshInterval: Duration.divide(expiration, 4).pipe(Option.getOrElse(() => Duration.seconds(2))),
    entityMessagePollInterval: poll,
    refreshAssignmentsInterval: poll,
    runnerHealthCheckInterval: Duration.times(poll, 5),
    shardsPerGroup: 64,
    // PostgreSQL advisory lock numbers are per database, not per schema: two clusters in two
    // schemas of one database would take each other's shards. Lock rows in cluster_locks keep a
    // cluster database (or schema) self-contained; a dead worker's rows expire after lockExpiration.
    shardLockDisableAdvisory: true
  }
}

// @effect/cluster holds a connection for its shard locks and runs its storage transactions
// concurrently with every workflow's: a small pool starves ("Failed to acquire connection").
const clusterClient = (cluster: string) =>
  Database.layer({ url: clusterUrl(cluster), applicationName: "strata fleet cluster", maxConnections: 40 })

/**
 * Options of `worker`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerOptions extends ClusterTimings {
  /** The cluster database (`postgres://…`, `#schema` for a schema of it). */
  readonly cluster: string
  /** The address other workers reach this one at, and its port. */
  readonly host: string
  readonly port: number
  /** Target steps this worker runs at once (and connections per PostgreSQL server). Default 4. */
  readonly concurrency?: number | undefined
}

/**
 * The worker as a layer: while it is alive this process runs its share of the fleet's workflows.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWorker = (plan: Plan.Plan, options: WorkerOptions) =>
  Layer.unwrapScoped(Effect.gen(function*() {
    const concurrency = yield* Options.resolve("concurrency", options.concurrency, 4, Options.positiveCount, (option, reason) =>
      new Fleet.InvalidFleetOptions({ option, reason }))
    const config = shardingConfig(Option.some(RunnerAddress.make({ host: options.host, port: options.port })), options)
    const client = clusterClient(options.cluster)
    yield* createClusterTables(config).pipe(Effect.provide(client))
    const context = Layer.scoped(WorkerContext, Effect.gen(function*() {
      return {
        plan,
        connections: yield* Connections.make({ pgPoolSize: concurrency }),
        // Built in this layer's scope: the ledger's pool lives as long as the worker.
        ledger: yield* Ledger.make.pipe(Effect.provide(yield* Layer.build(client))),
        permits: yield* Effect.makeSemaphore(concurrency)
      }
    }))
    return FleetTarget.toLayer(executeTarget).pipe(
      Layer.provide(context),
      Layer.provide(ClusterWorkflowEngine.layer),
      Layer.provide(NodeClusterSocket.layer({ storage: "sql", shardingConfig: config })),
      Layer.provide(client)
    )
  }))

/**
 * Runs a worker until interrupted (Ctrl-C, SIGTERM): its workflows move to the other workers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const worker = (plan: Plan.Plan, options: WorkerOptions): Effect.Effect<never, unknown> =>
  Layer.launch(layerWorker(plan, options))

/**
 * Options of `submit`: a fleet run's, with the cluster database; the ledger defaults to it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions extends Fleet.RunOptions, ClusterTimings {
  readonly cluster: string
  readonly ledger?: string | undefined
}

const kindOf = (target: Targets.Target): "sqlite" | "pg" => (target._tag === "Pg" ? "pg" : "sqlite")

/**
 * Submits a fleet run to the cluster's workers and follows it: the same events and summary as
 * `Fleet.stream`. `concurrency` bounds the targets in flight (default: all at once); `canary`
 * targets finish first; `failFast` starts no further target after a failure.
 *
 * @since 0.1.0
 * @category constructors
 */
export const submit = (
  plan: Plan.Plan,
  operation: Ledger.Operation,
  options: SubmitOptions
): Stream.Stream<Fleet.FleetEvent, unknown> =>
  Stream.asyncPush<Fleet.FleetEvent, unknown>((emit) =>
    follow(plan, operation, options, (event) => Effect.sync(() => void emit.single(event))).pipe(
      Effect.matchCauseEffect({
        onFailure: (cause) => Effect.sync(() => void emit.halt(cause)),
        onSuccess: () => Effect.sync(() => void emit.end())
      }),
      Effect.provide(Layer.mergeAll(
        ClusterWorkflowEngine.layer.pipe(
          Layer.provideMerge(NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: shardingConfig(Option.none(), options) }))
        ),
        Layer.effect(Ledger.Ledger, Ledger.make)
      ).pipe(Layer.provide(clusterClient(options.ledger ?? options.cluster)))),
      Effect.forkScoped
    ))

const follow = (
  plan: Plan.Plan,
  operation: Ledger.Operation,
  options: SubmitOptions,
  emit: (event: Fleet.FleetEvent) => Effect.Effect<void>
): Effect.Effect<void, unknown, WorkflowEngine | Ledger.Ledger | Scope.Scope> =>
  Effect.gen(function*() {
    const ledger = yield* Ledger.Ledger
    const startedAt = yield* Clock.currentTimeMillis
    const total = options.targets.length
    const window = yield* Options.resolve("concurrency", options.concurrency, Math.max(1, total), Options.positiveCount, (option, reason) =>
      new Fleet.InvalidFleetOptions({ option, reason }))
    const canary = yield* Options.resolve("canary", options.canary, 0, { integer: true, min: 0 }, (option, reason) =>
      new Fleet.InvalidFleetOptions({ option, reason }))
    if (operation === "backfill") yield* TargetWork.checkBackfillOptions(options.backfill ?? {})
    const opened = yield* ledger.openRun({
      operation,
      plan: plan.name,
      fingerprint: Fleet.fingerprint(plan),
      targetsFile: options.targetsFile,
      targets: options.targets
    })
    yield* emit({ _tag: "RunStarted", runId: opened.runId, resumed: opened.resumed, total, alreadyDone: opened.done.size })
    const records = new Map((yield* ledger.runTargets(opened.runId)).map((r) => [r.target, r]))
    const results = new Map<string, Fleet.TargetResult>()
    let running = 0
    let stoppedBy: Fleet.Summary["stoppedBy"]
    let stopReason: string | undefined

    const progress = Effect.map(Clock.currentTimeMillis, (now): Fleet.Progress => {
      const all = [...results.values()]
      const finishedHere = all.filter((r) => !r.fromEarlierInvocation).length
      const elapsedMs = now - startedAt
      return {
        total,
        done: all.filter((r) => r.state === "done").length,
        failed: all.filter((r) => r.state === "failed").length,
        skipped: all.filter((r) => r.state === "skipped").length,
        running,
        rows: all.reduce((n, r) => n + (r.fromEarlierInvocation ? 0 : r.rows), 0),
        rowsPerSecond: undefined,
        etaMs: finishedHere > 0 ? Math.round((elapsedMs / finishedHere) * (total - all.length)) : undefined,
        elapsedMs
      }
    })
    const finish = (result: Fleet.TargetResult) =>
      Effect.gen(function*() {
        results.set(result.target, result)
        yield* emit({ _tag: "TargetFinished", result, progress: yield* progress })
      })
    const base = (target: Targets.Target) => ({ target: target.id, display: target.display, kind: kindOf(target) })

    const visit = (target: Targets.Target) =>
      Effect.gen(function*() {
        const record = records.get(target.id)
        if (opened.done.has(target.id) && record !== undefined) {
          const { jobsDone, migrationsApplied, rejects, rows } = record
          return yield* finish({ ...base(target), state: "done", fromEarlierInvocation: true, migrationsApplied, jobsDone, rows, rejects, reason: undefined, elapsedMs: 0 })
        }
        if (stoppedBy !== undefined) {
          yield* ledger.targetFinished(opened.runId, target, "skipped", zero, stopReason)
          return yield* finish({ ...base(target), state: "skipped", fromEarlierInvocation: false, ...zero, reason: stopReason, elapsedMs: 0 })
        }
        running++
        yield* emit({ _tag: "TargetStarted", target: target.id, display: target.display })
        const payload = {
          runId: opened.runId,
          // A failed attempt's workflow has its result stored for good; a new attempt is a new workflow.
          attempt: record?.failures ?? 0,
          operation,
          plan: plan.name,
          fingerprint: Fleet.fingerprint(plan),
          target,
          backfill: {
            batchSize: options.backfill?.batchSize,
            maxBatchTime: serializedDuration(options.backfill?.maxBatchTime),
            pause: serializedDuration(options.backfill?.pause)
          }
        }
        const executionId = yield* FleetTarget.execute(payload, { discard: true })
        let result = yield* FleetTarget.poll(executionId)
        while (result === undefined || result._tag !== "Complete") {
          yield* Effect.sleep(Duration.millis(250))
          result = yield* FleetTarget.poll(executionId)
        }
        running--
        const value = result.exit._tag === "Success"
          ? result.exit.value
          : { state: "failed" as const, ...zero, reason: oneLine(result.exit.cause), elapsedMs: 0 }
        if (value.state === "failed" && options.failFast === true && stoppedBy === undefined) {
          stoppedBy = "failFast"
          stopReason = `not started: ${target.display} failed and --fail-fast stops the rollout`
        }
        yield* finish({ ...base(target), fromEarlierInvocation: false, ...value })
      })

    const first = options.targets.slice(0, canary)
    yield* Effect.forEach(first, visit, { concurrency: window, discard: true })
    const canaryFailure = first.find((t) => results.get(t.id)?.state === "failed")
    if (canaryFailure !== undefined) {
      stoppedBy = "canary"
      stopReason = `not started: canary target ${canaryFailure.display} failed`
    }
    yield* Effect.forEach(options.targets.slice(canary), visit, { concurrency: window, discard: true })
    const ordered = options.targets.map((t) => results.get(t.id)!)
    const done = ordered.filter((r) => r.state === "done").length
    if (done === total) yield* ledger.finishRun(opened.runId)
    yield* emit({
      _tag: "Finished",
      summary: {
        runId: opened.runId,
        operation,
        plan: plan.name,
        resumed: opened.resumed,
        total,
        done,
        failed: ordered.filter((r) => r.state === "failed").length,
        skipped: ordered.filter((r) => r.state === "skipped").length,
        stoppedBy,
        targets: ordered,
        elapsedMs: (yield* Clock.currentTimeMillis) - startedAt
      }
    })
  })
