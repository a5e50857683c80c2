/**
 * One plan across many databases on one machine: migrate, backfill or verify every target of a
 * targets file, N at a time, with an optional canary, recording each target in the fleet ledger.
 *
 * - **Concurrency.** `concurrency` targets run at once. A SQLite target is its own file and
 *   connection, opened for its turn. PostgreSQL targets of one server share a pool of
 *   `pgPoolSize` connections (default: `concurrency`), one held per running target.
 * - **Canary.** With `canary: K` the first K targets run first; if any of them fails the rollout
 *   stops there and the rest are `skipped`.
 * - **Failures.** A failing target is recorded (`failed`, with its one-line reason) and the others
 *   go on; with `failFast` no further target starts after the first failure.
 * - **Resume.** A run stays open in the ledger until every target is done. Running the same
 *   operation with the same plan and targets file again resumes it: targets it finished are not
 *   opened again, the others (failed, skipped, interrupted or killed midway) run again. That is
 *   safe because each target's own strata tables decide what is left: the Migrator applies a
 *   migration once under the target's lock, and a backfill continues from the cursor in the
 *   target's `strata_jobs`.
 * - **Progress** comes as `FleetEvent`s from `stream`: targets done/total, rows per second, ETA.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Options, Plan } from "@strata/core"
import type { BackfillRunner } from "@strata/sql"
import { Cause, Clock, Context, Effect, Either, Exit, Layer, Option, Queue, Ref, Schema, Stream, Take } from "effect"
import * as Crypto from "node:crypto"
import * as Connections from "./internal/connections.js"
import * as TargetWork from "./internal/targetWork.js"
import * as Ledger from "./Ledger.js"
import type * as Targets from "./Targets.js"

/**
 * An option is out of range (e.g. `concurrency: 0`).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidFleetOptions extends Schema.TaggedError<InvalidFleetOptions>()("InvalidFleetOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid fleet option ${this.option}: ${this.reason}`
  }
}

/**
 * A target's verification found failing checks.
 *
 * @since 0.1.0
 * @category errors
 */
export class TargetVerificationFailed extends Schema.TaggedError<TargetVerificationFailed>()("TargetVerificationFailed", {
  target: Schema.String,
  failedChecks: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `${this.failedChecks.length} check${this.failedChecks.length === 1 ? "" : "s"} failed: ${this.failedChecks.join(", ")}`
  }
}

/**
 * Everything a fleet run can fail with as a whole (a target's failure is in its result instead).
 *
 * @since 0.1.0
 * @category errors
 */
export type FleetError = InvalidFleetOptions | BackfillRunner.InvalidBackfillOptions | Ledger.LedgerError

/**
 * Options of a fleet run.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  readonly targets: ReadonlyArray<Targets.Target>
  /** Names the targets in the ledger (a run resumes only the same file's run). */
  readonly targetsFile: string
  /** Targets at once. Default 4. */
  readonly concurrency?: number | undefined
  /** Run the first K targets first and stop if any fails. Default 0 (no canary). */
  readonly canary?: number | undefined
  /** Start no further target after the first failure. Default false. */
  readonly failFast?: boolean | undefined
  /** Connections per PostgreSQL server. Default `concurrency`. */
  readonly pgPoolSize?: number | undefined
  /** Passed to each target's backfill as they are. */
  readonly backfill?: TargetWork.BackfillOptions | undefined
  /** How often `stream` reports progress between targets. Default 1 second. */
  readonly progressInterval?: number | undefined
}

/**
 * One target's outcome in a run.
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetResult {
  readonly target: string
  readonly display: string
  readonly kind: "sqlite" | "pg"
  /** `done`, `failed`, or `skipped` (the rollout stopped before it). */
  readonly state: "done" | "failed" | "skipped"
  /** Finished by an earlier, interrupted invocation of this run (not opened again). */
  readonly fromEarlierInvocation: boolean
  readonly migrationsApplied: number
  readonly jobsDone: number
  /** Backfill: rows written (over every run of the jobs); verify: rows scanned. */
  readonly rows: number
  readonly rejects: number
  /** Why it failed or was skipped, one line. */
  readonly reason: string | undefined
  readonly elapsedMs: number
}

/**
 * What a fleet run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface Summary {
  readonly runId: string
  readonly operation: Ledger.Operation
  readonly plan: string
  readonly resumed: boolean
  readonly total: number
  readonly done: number
  readonly failed: number
  readonly skipped: number
  /** Why the rollout stopped early, if it did. */
  readonly stoppedBy: "canary" | "failFast" | undefined
  readonly targets: ReadonlyArray<TargetResult>
  readonly elapsedMs: number
}

/**
 * Progress across the fleet.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly total: number
  readonly done: number
  readonly failed: number
  readonly skipped: number
  readonly running: number
  /** Rows walked by this invocation's backfills (all targets). */
  readonly rows: number
  readonly rowsPerSecond: number | undefined
  /** From this invocation's pace of finishing targets; `undefined` before one finished. */
  readonly etaMs: number | undefined
  readonly elapsedMs: number
}

/**
 * What `stream` emits: the run opening, targets starting and finishing, progress, the summary last.
 *
 * @since 0.1.0
 * @category models
 */
export type FleetEvent =
  | { readonly _tag: "RunStarted"; readonly runId: string; readonly resumed: boolean; readonly total: number; readonly alreadyDone: number }
  | { readonly _tag: "TargetStarted"; readonly target: string; readonly display: string }
  | { readonly _tag: "TargetFinished"; readonly result: TargetResult; readonly progress: Progress }
  | { readonly _tag: "Progress"; readonly progress: Progress }
  | { readonly _tag: "Finished"; readonly summary: Summary }

/**
 * A target's state against the plan, for `status`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TargetStatus {
  readonly target: string
  readonly display: string
  /** `ok`, `behind` (pending migrations), `drifted`, `failed` (its latest run failed), `unreachable`. */
  readonly state: "ok" | "behind" | "drifted" | "failed" | "unreachable"
  readonly applied: ReadonlyArray<number>
  readonly pending: ReadonlyArray<number>
  /** Drifted (checksum differs from the plan's or the ledger's) or unknown migration ids, with why. */
  readonly drift: ReadonlyArray<string>
  /** The latest ledger record per operation. */
  readonly lastRuns: ReadonlyArray<{ readonly operation: Ledger.Operation; readonly state: Ledger.TargetState; readonly reason: string | null }>
  readonly reason: string | undefined
}

/**
 * The fleet's state: one entry per target, in file order.
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusReport {
  readonly plan: string
  readonly targets: ReadonlyArray<TargetStatus>
  readonly counts: Readonly<Record<TargetStatus["state"], number>>
}

/**
 * Options of `status`.
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusOptions {
  readonly targets: ReadonlyArray<Targets.Target>
  /** Targets read at once. Default 4. */
  readonly concurrency?: number | undefined
}

/**
 * The fleet's operations on one plan.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fleet {
  readonly plan: Plan.Plan
  /** Runs `operation` on every target and returns the summary (failed targets are in it, not an error). */
  readonly run: (operation: Ledger.Operation, options: RunOptions) => Effect.Effect<Summary, FleetError>
  /** The same run as a stream of events, the summary last; stopping the stream interrupts the run. */
  readonly stream: (operation: Ledger.Operation, options: RunOptions) => Stream.Stream<FleetEvent, FleetError>
  /** Each target's drift against the plan and its latest ledger records. */
  readonly status: (options: StatusOptions) => Effect.Effect<StatusReport, FleetError>
}

/**
 * The fleet service.
 *
 * @since 0.1.0
 * @category tags
 */
export const Fleet = Context.GenericTag<Fleet>("@strata/fleet/Fleet")

/**
 * A short, stable fingerprint of a plan (its JSON form), naming the plan a ledger run was for.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fingerprint = (plan: Plan.Plan): string =>
  Crypto.createHash("sha256").update(JSON.stringify(Plan.toJson(plan))).digest("hex").slice(0, 16)

interface Settings {
  readonly concurrency: number
  readonly canary: number
  readonly pgPoolSize: number
  readonly progressInterval: number
}

const invalid = (option: string, reason: string) => new InvalidFleetOptions({ option, reason })

const settingsOf = (options: RunOptions): Either.Either<Settings, InvalidFleetOptions> =>
  Either.gen(function*() {
    const concurrency = yield* Options.resolve("concurrency", options.concurrency, 4, Options.positiveCount, invalid)
    const canary = yield* Options.resolve("canary", options.canary, 0, { integer: true, min: 0 }, invalid)
    const pgPoolSize = yield* Options.resolve("pgPoolSize", options.pgPoolSize, concurrency, Options.positiveCount, invalid)
    const progressInterval = yield* Options.resolve("progressInterval", options.progressInterval, 1000, Options.millis(1), invalid)
    return { concurrency, canary, pgPoolSize, progressInterval }
  })

/** A failure's one line: a typed error's message, or the first line of a defect. */
const reasonOf = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const text = Option.match(failure, {
    onNone: () => Cause.pretty(cause),
    onSome: (error) => (error instanceof Error ? error.message : String(error))
  })
  return text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "failed"
}

const zeroCounts: Ledger.TargetCounts = { migrationsApplied: 0, jobsDone: 0, rows: 0, rejects: 0 }

const kindOf = (target: Targets.Target): "sqlite" | "pg" => (target._tag === "Pg" ? "pg" : "sqlite")

/** The work of one operation on an open target, and the counts it reports. */
const work = (
  plan: Plan.Plan,
  operation: Ledger.Operation,
  target: Targets.Target,
  options: RunOptions,
  ledger: Ledger.Ledger,
  onRows: (rows: number) => Effect.Effect<void>
): Effect.Effect<Ledger.TargetCounts, unknown, SqlClient.SqlClient> => {
  switch (operation) {
    case "migrate":
      return Effect.gen(function*() {
        const outcome = yield* TargetWork.migrate(plan)
        yield* ledger.recordMigrations(target, outcome.history)
        return { ...zeroCounts, migrationsApplied: outcome.applied.length }
      })
    case "backfill":
      return Effect.map(TargetWork.backfill(plan, options.backfill ?? {}, onRows), (o) => ({
        migrationsApplied: 0,
        jobsDone: o.jobsDone,
        rows: o.updated,
        rejects: o.rejected
      }))
    case "verify":
      return Effect.flatMap(TargetWork.verify(plan), (o) =>
        o.passed
          ? Effect.succeed({ ...zeroCounts, rows: o.rowsScanned })
          : Effect.fail(new TargetVerificationFailed({ target: target.display, failedChecks: o.failedChecks })))
  }
}

const runFleet = (
  plan: Plan.Plan,
  ledger: Ledger.Ledger,
  operation: Ledger.Operation,
  options: RunOptions,
  emit: (event: FleetEvent) => Effect.Effect<void>
): Effect.Effect<Summary, FleetError> =>
  Effect.scoped(Effect.gen(function*() {
    const settings = yield* settingsOf(options)
    if (operation === "backfill") yield* TargetWork.checkBackfillOptions(options.backfill ?? {})
    const startedAt = yield* Clock.currentTimeMillis
    const opened = yield* ledger.openRun({
      operation,
      plan: plan.name,
      fingerprint: fingerprint(plan),
      targetsFile: options.targetsFile,
      targets: options.targets
    })
    const total = options.targets.length
    yield* emit({ _tag: "RunStarted", runId: opened.runId, resumed: opened.resumed, total, alreadyDone: opened.done.size })
    const connections = yield* Connections.make({ pgPoolSize: settings.pgPoolSize })
    const results = new Map<string, TargetResult>()
    const earlier = new Map(opened.doneRecords.map((r) => [r.target, r]))
    const rows = yield* Ref.make(0)
    let running = 0
    let finishedThisInvocation = 0
    let stoppedBy: Summary["stoppedBy"] = undefined
    let stopReason: string | undefined

    const progress = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const elapsedMs = now - startedAt
      const all = [...results.values()]
      const done = all.filter((r) => r.state === "done").length
      const failed = all.filter((r) => r.state === "failed").length
      const skipped = all.filter((r) => r.state === "skipped").length
      const walked = yield* Ref.get(rows)
      const remaining = total - all.length
      return {
        total,
        done,
        failed,
        skipped,
        running,
        rows: walked,
        rowsPerSecond: elapsedMs > 0 ? (walked * 1000) / elapsedMs : undefined,
        etaMs: finishedThisInvocation > 0 ? Math.round((elapsedMs / finishedThisInvocation) * remaining) : undefined,
        elapsedMs
      } satisfies Progress
    })

    const finish = (result: TargetResult) =>
      Effect.gen(function*() {
        results.set(result.target, result)
        yield* emit({ _tag: "TargetFinished", result, progress: yield* progress })
      })

    const skip = (target: Targets.Target) =>
      Effect.gen(function*() {
        yield* ledger.targetFinished(opened.runId, target, "skipped", zeroCounts, stopReason)
        yield* finish({
          target: target.id,
          display: target.display,
          kind: kindOf(target),
          state: "skipped",
          fromEarlierInvocation: false,
          ...zeroCounts,
          reason: stopReason,
          elapsedMs: 0
        })
      })

    const visit = (target: Targets.Target): Effect.Effect<void, Ledger.LedgerError> =>
      Effect.gen(function*() {
        const before = earlier.get(target.id)
        if (before !== undefined) {
          return yield* finish({
            target: target.id,
            display: target.display,
            kind: kindOf(target),
            state: "done",
            fromEarlierInvocation: true,
            migrationsApplied: before.migrationsApplied,
            jobsDone: before.jobsDone,
            rows: before.rows,
            rejects: before.rejects,
            reason: undefined,
            elapsedMs: 0
          })
        }
        if (stoppedBy !== undefined) return yield* skip(target)
        running++
        const t0 = yield* Clock.currentTimeMillis
        yield* ledger.targetStarted(opened.runId, target)
        yield* emit({ _tag: "TargetStarted", target: target.id, display: target.display })
        const exit = yield* Effect.scoped(
          Effect.flatMap(connections.open(target), (context) =>
            work(plan, operation, target, options, ledger, (n) => Ref.update(rows, (r) => r + n)).pipe(
              Effect.provide(context)
            ))
        ).pipe(
          Effect.annotateLogs({ target: target.display }),
          Effect.exit
        )
        running--
        finishedThisInvocation++
        const elapsedMs = (yield* Clock.currentTimeMillis) - t0
        // An interrupt is not a failure: the target stays `running` in the ledger and is resumed next time.
        if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) return yield* Effect.interrupt
        const counts = Exit.isSuccess(exit) ? exit.value : zeroCounts
        const reason = Exit.isFailure(exit) ? reasonOf(exit.cause) : undefined
        const state = Exit.isSuccess(exit) ? "done" : "failed"
        yield* ledger.targetFinished(opened.runId, target, state, counts, reason)
        if (state === "failed" && options.failFast === true && stoppedBy === undefined) {
          stoppedBy = "failFast"
          stopReason = `not started: ${target.display} failed and --fail-fast stops the rollout`
        }
        yield* finish({
          target: target.id,
          display: target.display,
          kind: kindOf(target),
          state,
          fromEarlierInvocation: false,
          ...counts,
          reason,
          elapsedMs
        })
      })

    const ticker = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(settings.progressInterval)
        yield* emit({ _tag: "Progress", progress: yield* progress })
      }
    })
    yield* Effect.forkScoped(ticker)

    const canary = options.targets.slice(0, settings.canary)
    const rest = options.targets.slice(settings.canary)
    yield* Effect.forEach(canary, visit, { concurrency: settings.concurrency, discard: true })
    const canaryFailure = canary.find((t) => results.get(t.id)?.state === "failed")
    if (canaryFailure !== undefined && stoppedBy === undefined) {
      stoppedBy = "canary"
      stopReason = `not started: canary target ${canaryFailure.display} failed`
    }
    yield* Effect.forEach(rest, visit, { concurrency: settings.concurrency, discard: true })

    const ordered = options.targets.map((t) => results.get(t.id)!)
    const done = ordered.filter((r) => r.state === "done").length
    // Left open until every target is done, so running it again retries the failed and skipped ones.
    if (done === total) yield* ledger.finishRun(opened.runId)
    const summary: Summary = {
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
    yield* emit({ _tag: "Finished", summary })
    return summary
  }))

const statusOf = (
  plan: Plan.Plan,
  ledger: Ledger.Ledger,
  options: StatusOptions
): Effect.Effect<StatusReport, FleetError> =>
  Effect.scoped(Effect.gen(function*() {
    const concurrency = yield* Options.resolve("concurrency", options.concurrency, 4, Options.positiveCount, invalid)
    const connections = yield* Connections.make({ pgPoolSize: concurrency })
    const latest = yield* ledger.latest
    const one = (target: Targets.Target) =>
      Effect.gen(function*() {
        const lastRuns = (latest.get(target.id) ?? []).map((r) => ({ operation: r.operation, state: r.state, reason: r.reason }))
        const recorded = yield* ledger.migrations(target.id)
        const read = yield* Effect.scoped(
          Effect.flatMap(connections.open(target), (context) => Effect.provide(TargetWork.status(plan), context))
        ).pipe(Effect.either)
        if (Either.isLeft(read)) {
          return {
            target: target.id,
            display: target.display,
            state: "unreachable" as const,
            applied: [],
            pending: [],
            drift: [],
            lastRuns,
            reason: read.left.message.split("\n")[0]
          }
        }
        const report = read.right
        const applied = report.migrations.filter((m) => m.state === "applied").map((m) => m.id)
        const pending = report.migrations.filter((m) => m.state === "pending").map((m) => m.id)
        const drift = [
          ...report.migrations.flatMap((m) => (m.state === "drifted" ? [`${m.id}: checksum ${m.stored} on the target, ${m.expected} in the plan`] : [])),
          ...report.unknown.map((m) => `${m.id}: applied on the target but not in the plan`),
          ...recorded.flatMap((r) => {
            const now = report.migrations.find((m) => m.id === r.id)
            if (now === undefined || now.state === "pending") return [`${r.id}: the ledger recorded it applied, the target no longer has it`]
            const stored = now.state === "applied" ? now.checksum : now.stored
            return stored !== r.checksum ? [`${r.id}: checksum ${stored} on the target, ${r.checksum} in the ledger`] : []
          })
        ]
        const failedRun = lastRuns.find((r) => r.state === "failed")
        const state: TargetStatus["state"] = drift.length > 0
          ? "drifted"
          : failedRun !== undefined
          ? "failed"
          : pending.length > 0
          ? "behind"
          : "ok"
        return {
          target: target.id,
          display: target.display,
          state,
          applied,
          pending,
          drift,
          lastRuns,
          reason: failedRun?.reason ?? undefined
        } satisfies TargetStatus
      })
    const targets = yield* Effect.forEach(options.targets, one, { concurrency })
    const counts = { ok: 0, behind: 0, drifted: 0, failed: 0, unreachable: 0 }
    for (const t of targets) counts[t.state]++
    return { plan: plan.name, targets, counts }
  }))

/**
 * The fleet for `plan` over the ledger in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (plan: Plan.Plan): Effect.Effect<Fleet, never, Ledger.Ledger> =>
  Effect.map(Ledger.Ledger, (ledger) => {
    const run: Fleet["run"] = (operation, options) => runFleet(plan, ledger, operation, options, () => Effect.void)
    const stream: Fleet["stream"] = (operation, options) =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          const queue = yield* Queue.unbounded<Take.Take<FleetEvent, FleetError>>()
          yield* runFleet(plan, ledger, operation, options, (e) => Queue.offer(queue, Take.of(e))).pipe(
            Effect.exit,
            Effect.flatMap((exit) => Queue.offer(queue, exit._tag === "Success" ? Take.end : Take.failCause(exit.cause))),
            Effect.forkScoped
          )
          return Stream.flattenTake(Stream.fromQueue(queue))
        })
      )
    const status: Fleet["status"] = (options) => statusOf(plan, ledger, options)
    return { plan, run, stream, status }
  })

/**
 * `make` as a layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (plan: Plan.Plan): Layer.Layer<Fleet, never, Ledger.Ledger> => Layer.effect(Fleet, make(plan))

/**
 * Migrates every target (see the module documentation).
 *
 * @since 0.1.0
 * @category accessors
 */
export const migrate = (options: RunOptions): Effect.Effect<Summary, FleetError, Fleet> =>
  Effect.flatMap(Fleet, (fleet) => fleet.run("migrate", options))

/**
 * Runs every target's backfill jobs to the end.
 *
 * @since 0.1.0
 * @category accessors
 */
export const backfill = (options: RunOptions): Effect.Effect<Summary, FleetError, Fleet> =>
  Effect.flatMap(Fleet, (fleet) => fleet.run("backfill", options))

/**
 * Verifies every target; a target whose checks fail is `failed`.
 *
 * @since 0.1.0
 * @category accessors
 */
export const verify = (options: RunOptions): Effect.Effect<Summary, FleetError, Fleet> =>
  Effect.flatMap(Fleet, (fleet) => fleet.run("verify", options))

/**
 * A run as a stream of events.
 *
 * @since 0.1.0
 * @category accessors
 */
export const stream = (operation: Ledger.Operation, options: RunOptions): Stream.Stream<FleetEvent, FleetError, Fleet> =>
  Stream.unwrap(Effect.map(Fleet, (fleet) => fleet.stream(operation, options)))

/**
 * Each target's drift against the plan.
 *
 * @since 0.1.0
 * @category accessors
 */
export const status = (options: StatusOptions): Effect.Effect<StatusReport, FleetError, Fleet> =>
  Effect.flatMap(Fleet, (fleet) => fleet.status(options))
