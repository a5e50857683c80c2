/**
 * Verifies a plan's backfilled columns against their sources: the checks of `Checks` (range,
 * exact mismatch, missing, orphan, coverage, unconvertible, rejects), each row recomputed with the
 * job's own row function. Tables are read in keyset batches, so it works on big tables without
 * holding anything open; `report` and `run` read the user's tables and record the outcome per job
 * in `strata_verifications` (see `Verifications`), which a contract migration's gate reads.
 *
 * A stored timestamp outside its column's plausible window (1970 to a year after now, unless the
 * step's `plausible` or the `range` option says otherwise) is a warning, not a failure: 1969, Go's
 * zero time and a "never" of 9999-12-31 are what the conversion gives. It fails verification only
 * when the step says `plausible: { outside: "fail" }` or the caller passes `implausible: "fail"`.
 *
 * `repair` fixes what goes stale after a backfill (an old app version updating a source without its
 * shadow): each mismatched row gets the recomputed value through a conditional write that lands only
 * where the target still holds the value it was checked against and the columns the row function
 * read are unchanged, so a concurrent write by the app wins (that row is reported as skipped). It is
 * the only write the Verifier makes; NULL targets (the backfill's and the lazy path's work) and
 * values the recomputation cannot reproduce are left alone.
 *
 * Build it for a plan (`Verifier.layer(plan)`) and call `Verifier.report(options)` or
 * `Verifier.run(options)`. Its statements run on `Database.strataClient`: the app's client
 * without name transforms, so it reads your real column names (`created_at`) whatever naming your
 * client hands your code; `strata_rejects` is found through `Database.strataTable`. Plans may name
 * `schema.table`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Checks, Identifier, Options as CoreOptions, type Plan, Timestamp } from "@strata/core"
import { Context, Effect, Layer, Schema } from "effect"
import * as Database from "./Database.js"
import * as Verifications from "./Verifications.js"
import * as SqlErrors from "./SqlErrors.js"
import {
  afterCursor,
  inspectJob,
  type JobDatabaseError,
  jobDatabaseError,
  type JobTable,
  type JobTableError,
  keyValue,
  Params,
  selectList,
  UnknownJob
} from "./internal/jobTable.js"
import { applyRepairs, type PlannedRepair, planRepairs } from "./internal/repair.js"
import * as JobState from "./JobState.js"
import { tableColumns } from "./Catalog.js"

/**
 * The result of one check.
 *
 * @since 0.1.0
 * @category models
 */
export const CheckResult = Schema.Struct({
  /** `<table>.<column> <kind>`, e.g. `chat_messages.created_at_ms mismatch`. */
  name: Schema.String,
  kind: Schema.Literal("range", "mismatch", "missing", "orphan", "coverage", "unconvertible", "rejects"),
  job: Schema.String,
  table: Schema.String,
  column: Schema.String,
  /**
   * `fail` when a failing check counts any row; `warn` when a plausibility check does (values
   * outside their window, which the conversion gives: verification still passes); `pass` when
   * either counts none; `info` for informational checks.
   */
  status: Schema.Literal("pass", "fail", "warn", "info"),
  /** Rows the check found (coverage: rows migrated). */
  count: Schema.Number,
  /** Rows the count is out of (coverage: rows whose source converts). */
  total: Schema.Number,
  /** Up to five keys of rows it found, in key order. */
  sampleKeys: Schema.Array(Schema.String),
  description: Schema.String,
  /** For a range check: the column's plausible window (epoch ms, both ends inclusive). */
  range: Schema.optional(Schema.Struct({ min: Schema.Number, max: Schema.Number }))
})

/**
 * The result of one check, as a type.
 *
 * @since 0.1.0
 * @category models
 */
export type CheckResult = typeof CheckResult.Type

/**
 * What the recomputation found in one target column's rows: each row the job applies to is in
 * exactly one of `migrated`, `missing`, `unconvertible` and `withoutValue`, so they add up to
 * `rows`. After a finished backfill these are the progress report's `migrated`, `pending`,
 * `rejected` and `withoutValue` for the column, counted another way (from the rows recomputed,
 * not from the job's cursor and `strata_rejects`).
 *
 * @since 0.2.0
 * @category models
 */
export const ColumnCounts = Schema.Struct({
  job: Schema.String,
  table: Schema.String,
  column: Schema.String,
  /** Rows the job applies to (its filter matches). */
  rows: Schema.Number,
  /** Rows with the column set (whether it matches or not: see the checks). */
  migrated: Schema.Number,
  /** Rows with the column NULL whose source converts to a value: work left, or a failure once the job is done. */
  missing: Schema.Number,
  /** Rows with the column NULL whose source cannot be converted (the rows a backfill rejects). */
  unconvertible: Schema.Number,
  /** Rows with the column NULL whose source gives NULL: no source value, or the row function's NULL. */
  withoutValue: Schema.Number
})

/**
 * One target column's counts, as a type.
 *
 * @since 0.2.0
 * @category models
 */
export type ColumnCounts = typeof ColumnCounts.Type

/**
 * A verification of a plan.
 *
 * @since 0.1.0
 * @category models
 */
export const VerificationReport = Schema.Struct({
  plan: Schema.String,
  checkedAtMs: Schema.Number,
  /** The default plausible window: a timestamp column's window where neither the plan nor `range` sets its ends. */
  range: Schema.Struct({ min: Schema.Number, max: Schema.Number }),
  /** Rows read, per job. */
  rowsScanned: Schema.Record({ key: Schema.String, value: Schema.Number }),
  passed: Schema.Boolean,
  checks: Schema.Array(CheckResult),
  /** Per target column, what its rows hold (see `ColumnCounts`). */
  columns: Schema.Array(ColumnCounts)
})

/**
 * A verification of a plan, as a type.
 *
 * @since 0.1.0
 * @category models
 */
export type VerificationReport = typeof VerificationReport.Type

/**
 * What a repair did in one target column: its mismatched rows, those it rewrote, and those it left
 * because they changed after they were checked (someone else's write wins).
 *
 * @since 0.2.0
 * @category models
 */
export const ColumnRepair = Schema.Struct({
  job: Schema.String,
  table: Schema.String,
  column: Schema.String,
  /** Rows whose stored value differed from the recomputed one. */
  mismatched: Schema.Number,
  /** Rows rewritten with the recomputed value. */
  repaired: Schema.Number,
  /** Rows not rewritten: the target or a column the row function reads changed since the check. */
  skipped: Schema.Number,
  /** Up to five keys of each, in key order. */
  repairedKeys: Schema.Array(Schema.String),
  skippedKeys: Schema.Array(Schema.String)
})

/**
 * What a repair did in one target column, as a type.
 *
 * @since 0.2.0
 * @category models
 */
export type ColumnRepair = typeof ColumnRepair.Type

/**
 * A repair: the verification it acted on (as found, before any write), and per target column what it rewrote.
 *
 * @since 0.2.0
 * @category models
 */
export const RepairReport = Schema.Struct({
  verification: VerificationReport,
  columns: Schema.Array(ColumnRepair),
  repaired: Schema.Number,
  skipped: Schema.Number
})

/**
 * A repair, as a type.
 *
 * @since 0.2.0
 * @category models
 */
export type RepairReport = typeof RepairReport.Type

/**
 * At least one failing check found rows; the report says which and where.
 *
 * @since 0.1.0
 * @category errors
 */
export class VerificationFailed extends Schema.TaggedError<VerificationFailed>()("VerificationFailed", {
  report: VerificationReport
}) {
  override get message(): string {
    const failed = this.report.checks.filter((c) => c.status === "fail")
    const first = failed.slice(0, 3).map((c) => `${c.name}: ${c.count}${c.sampleKeys.length > 0 ? ` (e.g. ${c.sampleKeys.join(", ")})` : ""}`)
    return `Verification of ${this.report.plan} failed: ${failed.length} check(s) found rows: ${first.join("; ")}${failed.length > 3 ? "; ..." : ""}`
  }
}

/**
 * An option is out of range (e.g. `batchSize: 0`).
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidVerifyOptions extends Schema.TaggedError<InvalidVerifyOptions>()("InvalidVerifyOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid verify option ${this.option}: ${this.reason}`
  }
}

/**
 * What keeps a verification from running.
 *
 * @since 0.1.0
 * @category errors
 */
export type VerifyError = UnknownJob | JobTableError | JobDatabaseError | InvalidVerifyOptions

/**
 * Options of `run` and `report`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * The plausible window of every timestamp column, end by end over the plan's own (`plausible` on
   * the step) and the default (1970 to a year after the `Clock`'s now). Epoch ms, both inclusive.
   */
  readonly range?: { readonly min?: number | undefined; readonly max?: number | undefined } | undefined
  /**
   * What a stored timestamp outside its column's window does, for every column: `warn` (reported,
   * verification passes) or `fail`. Default: each step's `plausible.outside`, else `warn`.
   */
  readonly implausible?: "warn" | "fail" | undefined
  /** Only these jobs; default all. */
  readonly jobs?: ReadonlyArray<string> | undefined
  /** Rows per read. Default 5,000. */
  readonly batchSize?: number | undefined
}

const sampleSize = 5

const defaultBatchSize = 5000

interface Tally {
  count: number
  total: number
  readonly samples: Array<string>
}

const tally = (): Tally => ({ count: 0, total: 0, samples: [] })

const hit = (t: Tally, key: string) => {
  t.count++
  if (t.samples.length < sampleSize) t.samples.push(key)
}

const checkRange = (range: Options["range"]) =>
  Effect.gen(function*() {
    const bound = (name: "min" | "max") => {
      const value = range?.[name]
      if (value == null) return Effect.succeed(undefined)
      return Number.isSafeInteger(value) && Math.abs(value) <= 8.64e15
        ? Effect.succeed(value as Timestamp.EpochMillis)
        : Effect.fail(new InvalidVerifyOptions({ option: `range.${name}`, reason: `must be an integer of epoch milliseconds, got ${value}` }))
    }
    return { min: yield* bound("min"), max: yield* bound("max") }
  })

/**
 * A job's checks with the caller's plausibility over the plan's, end by end, on the columns that
 * are checked for plausibility (the others stay as they are).
 */
const withPlausibility = (
  checks: Checks.JobChecks,
  range: { readonly min: Timestamp.EpochMillis | undefined; readonly max: Timestamp.EpochMillis | undefined },
  implausible: "warn" | "fail" | undefined
): Checks.JobChecks => {
  if (range.min === undefined && range.max === undefined && implausible === undefined) return checks
  const job = checks.job
  return Checks.forJob({
    ...job,
    targets: job.targets.map((target) =>
      checks.timestampTargets.includes(target.column)
        ? {
          ...target,
          plausible: {
            min: range.min ?? target.plausible?.min,
            max: range.max ?? target.plausible?.max,
            outside: implausible ?? target.plausible?.outside ?? "warn"
          }
        }
        : target
    )
  })
}

const scanJob = (table: JobTable, checks: Checks.JobChecks, range: Timestamp.Range, batchSize: number, repair: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const repairs = new Map(table.job.targets.map((t) => [t.column, { repaired: tally(), skipped: tally() }]))
    const byTarget = new Map(table.job.targets.map((t) => [t.column, {
      range: tally(),
      mismatch: tally(),
      missing: tally(),
      orphan: tally(),
      coverage: tally(),
      account: { migrated: 0, missing: 0, unconvertible: 0, withoutValue: 0 }
    }]))
    const unconvertible = tally()
    let cursor: JobState.KeyValue | undefined = undefined
    let scanned = 0
    while (true) {
      const params = new Params(table.dialect)
      const rows: ReadonlyArray<Record<string, unknown>> = yield* sql.unsafe<Record<string, unknown>>(
        `SELECT ${selectList(table)} FROM ${Identifier.quoteTable(table.job.table)} WHERE ${afterCursor(table, params, cursor)} ORDER BY ${table.key.sql} LIMIT ${params.bind(batchSize)}`,
        params.values
      )
      const planned: Array<PlannedRepair> = []
      for (const row of rows) {
        const verdict = Checks.verdict(checks, row, range)
        if (!verdict.applies) continue
        if (repair) planned.push(...planRepairs(table, row, verdict.targets.filter((t) => t.outcome === "mismatch").map((t) => t.column)))
        scanned++
        const key = String(keyValue(table, row["__strata_key"]))
        unconvertible.total++
        if (verdict.unconvertible !== undefined) hit(unconvertible, key)
        for (const target of verdict.targets) {
          const t = byTarget.get(target.column)!
          const stored = row[target.column] != null
          if (stored) t.account.migrated++
          else if (target.outcome === "missing") t.account.missing++
          else if (target.outcome === "unverifiable") t.account.unconvertible++
          else t.account.withoutValue++
          if (stored) t.range.total++
          if (target.outOfRange) hit(t.range, key)
          switch (target.outcome) {
            case "match":
              t.mismatch.total++
              t.missing.total++
              t.coverage.total++
              t.coverage.count++
              break
            case "mismatch":
              t.mismatch.total++
              hit(t.mismatch, key)
              t.missing.total++
              t.coverage.total++
              t.coverage.count++
              break
            case "missing":
              t.missing.total++
              hit(t.missing, key)
              t.coverage.total++
              break
            case "orphan":
              hit(t.orphan, key)
              break
            case "empty":
            case "unverifiable":
              break
          }
          if (stored) t.orphan.total++
        }
      }
      if (planned.length > 0) {
        // The batch's repairs commit together, before the next batch is read.
        const written = yield* sql.withTransaction(applyRepairs(table, planned))
        planned.forEach((p, i) => hit(written[i] ? repairs.get(p.target.column)!.repaired : repairs.get(p.target.column)!.skipped, p.key))
      }
      const last = rows[rows.length - 1]
      if (last === undefined || rows.length < batchSize) break
      cursor = keyValue(table, last["__strata_key"])
    }
    return { byTarget, unconvertible, scanned, repairs }
  })

const recordedRejects = (job: string) =>
  Effect.gen(function*() {
    if ((yield* tableColumns(yield* Database.strataTable("strata_rejects"))).length === 0) {
      return { count: 0, samples: [] as ReadonlyArray<string> }
    }
    return {
      count: yield* JobState.rejectCount(job),
      samples: (yield* JobState.loadRejects(job, sampleSize)).map((r) => r.rowKey)
    }
  })

const buildReport = (plan: Plan.Plan, options: Options, repair: boolean) =>
  Effect.gen(function*() {
    const batchSize = yield* CoreOptions.resolve(
      "batchSize",
      options.batchSize,
      defaultBatchSize,
      CoreOptions.positiveCount,
      (option, reason) => new InvalidVerifyOptions({ option, reason })
    )
    const given = yield* checkRange(options.range)
    const fallback = Timestamp.defaultRange(yield* Timestamp.now)
    const range: Timestamp.Range = { min: given.min ?? fallback.min, max: given.max ?? fallback.max }
    if (range.min > range.max) {
      return yield* new InvalidVerifyOptions({ option: "range", reason: `min ${range.min} is after max ${range.max}` })
    }
    if (options.implausible !== undefined && options.implausible !== "warn" && options.implausible !== "fail") {
      return yield* new InvalidVerifyOptions({ option: "implausible", reason: `must be "warn" or "fail", got ${JSON.stringify(options.implausible)}` })
    }
    const all = Checks.forJobs(plan).map((checks) => withPlausibility(checks, given, options.implausible))
    const unknown = options.jobs?.find((name) => !all.some((j) => j.job.name === name))
    if (unknown !== undefined) return yield* new UnknownJob({ job: unknown, known: all.map((j) => j.job.name) })
    const selected = options.jobs === undefined ? all : all.filter((j) => options.jobs!.includes(j.job.name))
    const tables = yield* Effect.forEach(selected, (checks) => inspectJob(checks.job))
    const results: Array<CheckResult> = []
    const columns: Array<ColumnCounts> = []
    const repairs: Array<ColumnRepair> = []
    const rowsScanned: Record<string, number> = {}
    for (const [i, checks] of selected.entries()) {
      const table = tables[i]!
      const scan = yield* scanJob(table, checks, range, batchSize, repair).pipe(
        Effect.mapError(jobDatabaseError(checks.job.name)),
        Effect.annotateLogs({ job: checks.job.name, table: checks.job.table })
      )
      rowsScanned[checks.job.name] = scan.scanned
      for (const target of checks.job.targets) {
        columns.push({ job: checks.job.name, table: checks.job.table, column: target.column, rows: scan.scanned, ...scan.byTarget.get(target.column)!.account })
        const { repaired, skipped } = scan.repairs.get(target.column)!
        if (repair) {
          repairs.push({
            job: checks.job.name,
            table: checks.job.table,
            column: target.column,
            mismatched: scan.byTarget.get(target.column)!.mismatch.count,
            repaired: repaired.count,
            skipped: skipped.count,
            repairedKeys: [...repaired.samples],
            skippedKeys: [...skipped.samples]
          })
        }
      }
      const rejects = yield* recordedRejects(checks.job.name).pipe(
        Effect.mapError(jobDatabaseError(checks.job.name))
      )
      for (const spec of checks.specs) {
        const t: { readonly count: number; readonly total: number; readonly samples: ReadonlyArray<string> } = spec.kind === "unconvertible"
          ? scan.unconvertible
          : spec.kind === "rejects"
          ? { count: rejects.count, total: rejects.count, samples: rejects.samples }
          : scan.byTarget.get(spec.column as Identifier.Identifier)![spec.kind]
        const target = spec.kind === "range" ? checks.job.targets.find((c) => c.column === spec.column) : undefined
        results.push({
          name: `${spec.table}.${spec.column} ${spec.kind}`,
          kind: spec.kind,
          job: spec.job,
          table: spec.table,
          column: spec.column,
          status: spec.failing ? (t.count > 0 ? "fail" : "pass") : spec.warning ? (t.count > 0 ? "warn" : "pass") : "info",
          count: t.count,
          total: t.total,
          sampleKeys: [...t.samples],
          description: spec.description,
          ...(target === undefined ? {} : { range: Checks.window(target, range) })
        })
      }
    }
    const report: VerificationReport = {
      plan: plan.name,
      checkedAtMs: yield* Timestamp.now,
      range: { min: range.min, max: range.max },
      rowsScanned,
      passed: results.every((r) => r.status !== "fail"),
      checks: results,
      columns
    }
    yield* Effect.logInfo(report.passed ? "verification passed" : "verification found problems").pipe(
      Effect.annotateLogs({
        plan: plan.name,
        failed: results.filter((r) => r.status === "fail").length,
        warnings: results.filter((r) => r.status === "warn").length
      })
    )
    if (repair) {
      yield* Effect.logInfo("repair finished").pipe(
        Effect.annotateLogs({
          plan: plan.name,
          repaired: repairs.reduce((n, r) => n + r.repaired, 0),
          skipped: repairs.reduce((n, r) => n + r.skipped, 0)
        })
      )
    }
    return { report, repairs }
  }).pipe(Effect.withSpan(repair ? "Verifier.repair" : "Verifier.report", { attributes: { plan: plan.name } }))

/**
 * The Verifier's operations on one plan (the plan is given when the service is built).
 *
 * @since 0.2.0
 * @category models
 */
export interface Verifier {
  readonly plan: Plan.Plan
  /** The report, whatever it says (for printing). */
  readonly report: (options?: Options) => Effect.Effect<VerificationReport, VerifyError>
  /** The report when every failing check passed; `VerificationFailed` with the report otherwise. */
  readonly run: (options?: Options) => Effect.Effect<VerificationReport, VerificationFailed | VerifyError>
  /**
   * Verifies, and writes the recomputed value into each mismatched row where the target still
   * holds the stale value it was checked against and the columns the row function read are
   * unchanged (a conditional write: a concurrent write by the app wins, and the row is skipped).
   * The report is what the verification found before repairing; verify again to see the result.
   */
  readonly repair: (options?: Options) => Effect.Effect<RepairReport, VerifyError>
}

/**
 * The tag of the Verifier service.
 *
 * @since 0.1.0
 * @category tags
 */
export const Verifier = Context.GenericTag<Verifier>("@strata/sql/Verifier")

/**
 * A Verifier for `plan` over the `SqlClient` in context. Its statements run on
 * `Database.strataClient` (the app's client without name transforms), so it reads the real column
 * names whatever naming the app's client uses; strata's tables are where `Database.StrataSchema`
 * said when it was built.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (plan: Plan.Plan): Effect.Effect<Verifier, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* Database.strataClient
    const schema = yield* Database.StrataSchema
    const onStrataClient = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      effect.pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.provideService(Database.StrataSchema, schema))
    // Every verification is recorded, per job: a contract migration's gate reads the latest (see
    // `Verifications`). The report stands on its own: a verifier that may only read (a monitoring
    // role, a read-only replica or file) still gets it, with a warning that no gate will see it.
    const recorded = (repair: boolean) => (options: Options) =>
      Effect.tap(buildReport(plan, options, repair), ({ report }) =>
        Verifications.record(Verifications.fromReport(plan, report)).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning(
              `verification not recorded (a contract migration's gate will not see it): ${SqlErrors.failureText(error)}`
            ).pipe(Effect.annotateLogs({ plan: plan.name, jobs: Object.keys(report.rowsScanned).join(", ") }))
          )
        ))
    const report = (options: Options = {}): Effect.Effect<VerificationReport, VerifyError> =>
      onStrataClient(Effect.map(recorded(false)(options), (built) => built.report))
    const repair = (options: Options = {}): Effect.Effect<RepairReport, VerifyError> =>
      onStrataClient(Effect.map(recorded(true)(options), ({ report, repairs }) => ({
        verification: report,
        columns: repairs,
        repaired: repairs.reduce((n, r) => n + r.repaired, 0),
        skipped: repairs.reduce((n, r) => n + r.skipped, 0)
      })))
    const run = (options: Options = {}): Effect.Effect<VerificationReport, VerificationFailed | VerifyError> =>
      Effect.flatMap(report(options), (r) => (r.passed ? Effect.succeed(r) : Effect.fail(new VerificationFailed({ report: r }))))
    return Verifier.of({ plan, report, run, repair })
  })

/**
 * The Verifier for `plan` over the app's `SqlClient`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (plan: Plan.Plan): Layer.Layer<Verifier, never, SqlClient.SqlClient> => Layer.effect(Verifier, make(plan))

/**
 * `report` on the Verifier in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const report = (options?: Options): Effect.Effect<VerificationReport, VerifyError, Verifier> =>
  Effect.flatMap(Verifier, (verifier) => verifier.report(options))

/**
 * `repair` on the Verifier in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const repair = (options?: Options): Effect.Effect<RepairReport, VerifyError, Verifier> =>
  Effect.flatMap(Verifier, (verifier) => verifier.repair(options))

/**
 * `run` on the Verifier in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const run = (options?: Options): Effect.Effect<VerificationReport, VerificationFailed | VerifyError, Verifier> =>
  Effect.flatMap(Verifier, (verifier) => verifier.run(options))

/**
 * The check results of a report that failed.
 *
 * @since 0.1.0
 * @category accessors
 */
export const failures = (report: VerificationReport): ReadonlyArray<CheckResult> => report.checks.filter((c) => c.status === "fail")

