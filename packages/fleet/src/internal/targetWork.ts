/**
 * The work a fleet does on one target, through strata's own services (the one place the fleet
 * calls them): apply migrations, run backfill jobs (whole, or one batch at a time for a durable
 * workflow's activities), verify, read the migration status. Every function runs on the target's
 * `SqlClient` (and `Database.StrataSchema`, for a `#schema` target) from context.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { Backfill, Compile, type Plan } from "@strata/core"
import { BackfillRunner, Migrator, Verifier } from "@strata/sql"
import { Effect, Option, Stream } from "effect"

/** A migration the target has applied, as its `strata_migrations` records it. */
export interface AppliedRecord {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly appliedAtMs: number
}

/** What a migrate did on one target. */
export interface MigrateOutcome {
  /** Applied by this call, in order. */
  readonly applied: ReadonlyArray<AppliedRecord>
  /** Everything the target has applied of the plan after the call (the ledger's source). */
  readonly history: ReadonlyArray<AppliedRecord>
}

/** Applies the plan's pending migrations (up to `to`) and reads back the target's history. */
export const migrate = (
  plan: Plan.Plan,
  to?: number
): Effect.Effect<MigrateOutcome, Migrator.RunError | Migrator.InvalidMigratorOptions, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const result = yield* Migrator.run({ to })
    const history = yield* history_
    return {
      applied: result.applied.map(({ appliedAtMs, checksum, id, name }) => ({ id, name, checksum, appliedAtMs })),
      history
    }
  }).pipe(Effect.provide(Migrator.layer(plan)))

const history_ = Effect.map(
  Migrator.status(),
  (report): ReadonlyArray<AppliedRecord> =>
    report.migrations.flatMap((m) =>
      m.state === "applied" ? [{ id: m.id, name: m.name, checksum: m.checksum, appliedAtMs: m.appliedAtMs }] : []
    )
)

/** The target's migration status against the plan. */
export const status = (
  plan: Plan.Plan
): Effect.Effect<Migrator.StatusReport, Migrator.StatusError | Migrator.InvalidMigratorOptions, SqlClient.SqlClient> =>
  Migrator.status().pipe(Effect.provide(Migrator.layer(plan)))

/** Backfill counts of one target: walked, written, rejected over every run of its jobs. */
export interface BackfillOutcome {
  readonly jobs: number
  readonly jobsDone: number
  readonly processed: number
  readonly updated: number
  readonly rejected: number
}

/** Options passed to the backfill runner as they are (it checks them). */
export type BackfillOptions = Omit<BackfillRunner.Options, "jobs" | "dryRun">

/** The runner's own check of the options, once for the whole fleet rather than once per target. */
export const checkBackfillOptions = (options: BackfillOptions): Effect.Effect<void, BackfillRunner.InvalidBackfillOptions> =>
  BackfillRunner.checkOptions(options)

/**
 * Runs every backfill job of the plan to its end; `onBatch` hears the rows each batch walked.
 */
export const backfill = (
  plan: Plan.Plan,
  options: BackfillOptions,
  onBatch: (rowsWalked: number) => Effect.Effect<void>
): Effect.Effect<BackfillOutcome, BackfillRunner.BackfillError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const last = new Map<string, BackfillRunner.ProgressEvent>()
    yield* BackfillRunner.stream(options).pipe(
      Stream.runForEach((event) => {
        const before = last.get(event.job)?.processed ?? event.processed
        last.set(event.job, event)
        const walked = event.processed - before
        return walked > 0 ? onBatch(walked) : Effect.void
      })
    )
    const events = [...last.values()]
    return {
      jobs: Backfill.jobs(plan).length,
      jobsDone: events.filter((e) => e.done).length,
      processed: sum(events, (e) => e.processed),
      updated: sum(events, (e) => e.updated),
      rejected: sum(events, (e) => e.rejected)
    }
  }).pipe(Effect.provide(BackfillRunner.layer(plan)))

const sum = <A>(items: ReadonlyArray<A>, f: (a: A) => number) => items.reduce((total, item) => total + f(item), 0)

/** One job's counts after a step of it. */
export interface BatchOutcome {
  readonly done: boolean
  readonly processed: number
  readonly updated: number
  readonly rejected: number
}

/**
 * Runs one batch of one job (or finds it done) and stops at that batch boundary: its cursor and
 * counts are committed with the batch in the target's `strata_jobs`, so running the same step
 * again after a crash continues from there (at most that batch is walked again, and its writes
 * are conditional).
 */
export const backfillBatch = (
  plan: Plan.Plan,
  job: string,
  options: BackfillOptions
): Effect.Effect<BatchOutcome, BackfillRunner.BackfillError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const step = yield* BackfillRunner.stream({ ...options, jobs: [job] }).pipe(
      Stream.filter((e) => e.phase !== "started"),
      Stream.take(1),
      Stream.runHead
    )
    return Option.match(step, {
      onNone: () => ({ done: true, processed: 0, updated: 0, rejected: 0 }),
      onSome: (e) => ({ done: e.done, processed: e.processed, updated: e.updated, rejected: e.rejected })
    })
  }).pipe(Effect.provide(BackfillRunner.layer(plan)))

/** The outcome of verifying one target. */
export interface VerifyOutcome {
  readonly passed: boolean
  readonly failedChecks: ReadonlyArray<string>
  readonly rowsScanned: number
}

/** Runs the plan's checks on the target. */
export const verify = (plan: Plan.Plan): Effect.Effect<VerifyOutcome, Verifier.VerifyError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const report = yield* Verifier.report()
    return {
      passed: report.passed,
      failedChecks: Verifier.failures(report).map((c) => `${c.name} (${c.count} rows)`),
      rowsScanned: Object.values(report.rowsScanned).reduce((a, b) => a + b, 0)
    }
  }).pipe(Effect.provide(Verifier.layer(plan)))

/** The plan's migrations with their checksums, in id order. */
export const planMigrations = (plan: Plan.Plan): ReadonlyArray<{ readonly id: number; readonly checksum: string }> =>
  plan.migrations.map((m) => ({ id: m.id, checksum: Compile.checksum(m) }))
