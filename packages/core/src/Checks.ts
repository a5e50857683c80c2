/**
 * Verification checks derived from a plan: which checks exist per job and target column (every
 * source value converted, no target set without a source, a JSON target equal to its payload
 * field), and the pure verdict on one row. Stored values are compared with the value recomputed by
 * the job's own row function, exactly: a tolerance of even 1 s would hide a conversion that is
 * 1 ms low, as a plain CAST of fractional seconds is.
 *
 * Plausibility is not correctness: a value outside a timestamp target's window (1970 to a year after
 * now unless the step's `plausible` says otherwise) is still what the conversion gives, so the range
 * check warns and verification passes, unless the step says `outside: "fail"`.
 *
 * Kinds:
 *
 * ```
 * range          a timestamp target holds a value outside its plausible window       warns (fails if the plan says so)
 * mismatch       the stored value differs from the recomputed one                    fails
 * missing        the source converts to a value but the target is NULL               fails
 * orphan         the target holds a value but the source yields nothing              fails
 * coverage       migrated rows of the rows whose source converts                     informational
 * unconvertible  rows whose source cannot be converted (bad text, bad JSON)          informational
 * rejects        rows the backfill recorded in strata_rejects                        informational
 * ```
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import * as Backfill from "./Backfill.js"
import type { Identifier, TableName } from "./Identifier.js"
import type * as Plan from "./Plan.js"
import type * as Timestamp from "./Timestamp.js"

/**
 * What a check looks at.
 *
 * @since 0.1.0
 */
export type Kind = "range" | "mismatch" | "missing" | "orphan" | "coverage" | "unconvertible" | "rejects"

/**
 * One check of a plan, as data.
 *
 * @since 0.1.0
 */
export interface Spec {
  readonly kind: Kind
  readonly job: string
  readonly table: TableName
  /** The target column; for `unconvertible` and `rejects`, the job's source columns joined by ", ". */
  readonly column: string
  /** Whether a non-zero count fails verification (the others inform). */
  readonly failing: boolean
  /** Whether a non-zero count is a warning: a range check that does not fail. */
  readonly warning: boolean
  readonly description: string
}

/**
 * A job with the checks that apply to it.
 *
 * @since 0.1.0
 */
export interface JobChecks {
  readonly job: Backfill.Job
  /** The targets holding epoch ms (checked for plausibility). */
  readonly timestampTargets: ReadonlyArray<Identifier>
  readonly specs: ReadonlyArray<Spec>
}

const failingKinds: ReadonlySet<Kind> = new Set(["mismatch", "missing", "orphan"])

/** Whether the Verifier checks the target's values are plausible timestamps. */
const rangeChecked = (target: Backfill.Target): boolean => target.epochMillis || target.plausible !== undefined

/**
 * The window a target's values are plausible in: the step's own ends where it sets them, `range`
 * (the verification's default) for the rest.
 *
 * @since 0.2.0
 */
export const window = (target: Backfill.Target, range: Timestamp.Range): Timestamp.Range => ({
  min: target.plausible?.min ?? range.min,
  max: target.plausible?.max ?? range.max
})

const describeKind = (kind: Kind, column: string, source: string): string => {
  switch (kind) {
    case "range":
      return `${column} holds a timestamp outside its plausible window (the conversion gives it; check the source)`
    case "mismatch":
      return `${column} differs from the value recomputed from ${source}`
    case "missing":
      return `${source} converts to a value but ${column} is NULL`
    case "orphan":
      return `${column} holds a value but ${source} yields nothing`
    case "coverage":
      return `rows with ${column} set, of the rows whose ${source} converts`
    case "unconvertible":
      return `rows whose ${source} cannot be converted`
    case "rejects":
      return `rows the backfill recorded in strata_rejects`
  }
}

/**
 * The checks of one job: per target (a range check for epoch-ms targets) and per job.
 *
 * @since 0.2.0
 */
export const forJob = (job: Backfill.Job): JobChecks => {
  const source = job.sources.join(", ")
  const spec = (kind: Kind, column: string, target?: Backfill.Target): Spec => {
    const failsOutside = kind === "range" && target?.plausible?.outside === "fail"
    return {
      kind,
      job: job.name,
      table: job.table,
      column,
      failing: failingKinds.has(kind) || failsOutside,
      warning: kind === "range" && !failsOutside,
      description: describeKind(kind, column, source)
    }
  }
  const timestampTargets = job.targets.filter(rangeChecked).map((t) => t.column)
  const perTarget = job.targets.flatMap((target) => [
    ...(rangeChecked(target) ? [spec("range", target.column, target)] : []),
    spec("mismatch", target.column),
    spec("missing", target.column),
    spec("orphan", target.column),
    spec("coverage", target.column)
  ])
  return { job, timestampTargets, specs: [...perTarget, spec("unconvertible", source), spec("rejects", source)] }
}

/**
 * The checks of each job of a plan, in plan order.
 *
 * @since 0.1.0
 */
export const forJobs = (plan: Plan.Plan): ReadonlyArray<JobChecks> => Backfill.jobs(plan).map(forJob)

/**
 * Every check of a plan, in plan order.
 *
 * @since 0.1.0
 */
export const checks = (plan: Plan.Plan): ReadonlyArray<Spec> => forJobs(plan).flatMap((j) => j.specs)

/**
 * How one target of one row compares with its recomputation.
 *
 * - `match`: stored equals recomputed; `mismatch`: both set, different
 * - `missing`: recomputed set, stored NULL; `orphan`: stored set, recomputed nothing
 * - `empty`: both NULL; `unverifiable`: the source does not convert (see `RowVerdict.unconvertible`)
 *
 * @since 0.1.0
 */
export type Outcome = "match" | "mismatch" | "missing" | "orphan" | "empty" | "unverifiable"

/**
 * The verdict on one row of a job.
 *
 * @since 0.1.0
 */
export interface RowVerdict {
  /** False when the row is outside the job's filter (nothing to check). */
  readonly applies: boolean
  /** Why the source does not convert, when it does not. */
  readonly unconvertible: string | undefined
  readonly targets: ReadonlyArray<{
    readonly column: Identifier
    readonly outcome: Outcome
    /** A stored timestamp outside the range. */
    readonly outOfRange: boolean
  }>
}

const asNumber = (value: unknown): number | undefined =>
  typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : typeof value === "string" && /^-?\d+$/.test(value) ? Number(value) : undefined

const asBigInt = (value: unknown): bigint | undefined => {
  if (typeof value === "bigint") return value
  if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : undefined
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value)
  return undefined
}

/** JSON with object keys sorted, so PostgreSQL's JSONB (which reorders keys) compares equal. */
const canonicalJson = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort()
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(",")}}`
  }
  return JSON.stringify(value)
}

const storedJson = (stored: unknown): string | undefined => {
  if (typeof stored !== "string") return canonicalJson(stored)
  try {
    return canonicalJson(JSON.parse(stored))
  } catch {
    return undefined
  }
}

/**
 * Whether a stored value (as the driver returns it) equals a computed one, exactly, for a target of
 * `type`: integers whatever the driver's representation (number, bigint, PostgreSQL's BIGINT text),
 * booleans as SQLite's 0/1 too, JSON by content (PostgreSQL's JSONB orders keys its own way; SQLite
 * returns the text).
 *
 * @since 0.2.0
 */
export const sameValue = (type: Plan.ColumnType, stored: unknown, computed: Backfill.Value): boolean => {
  switch (type) {
    case "integer":
    case "bigint": {
      const a = asBigInt(stored)
      const b = asBigInt(computed)
      return a !== undefined && a === b
    }
    case "real":
      return typeof stored === "number" && stored === computed
    case "boolean": {
      const flag = stored === true || stored === 1 || stored === 1n
        ? true
        : stored === false || stored === 0 || stored === 0n
        ? false
        : undefined
      return flag === computed
    }
    case "json":
      return storedJson(stored) === canonicalJson(computed)
    case "text":
    case "timestamp_text":
      return stored === computed
  }
}

/**
 * Compares one row (keyed by column name, with the job's reads and targets) with the job's
 * recomputation, and checks its stored timestamps are plausible: within each target's `window`,
 * `range` being the default.
 *
 * @since 0.1.0
 */
export const verdict = (checks: JobChecks, row: Readonly<Record<string, unknown>>, range: Timestamp.Range): RowVerdict => {
  const job = checks.job
  if (!Backfill.matchesFilter(job.filter, row)) return { applies: false, unconvertible: undefined, targets: [] }
  const converted = job.convert(row)
  const outOfRange = (target: Backfill.Target): boolean => {
    if (!rangeChecked(target)) return false
    const stored = asNumber(row[target.column])
    const plausible = window(target, range)
    return stored !== undefined && (stored < plausible.min || stored > plausible.max)
  }
  if (Either.isLeft(converted)) {
    return {
      applies: true,
      unconvertible: `${converted.left.column}: ${converted.left.reason}`,
      targets: job.targets.map((target) => ({ column: target.column, outcome: "unverifiable", outOfRange: outOfRange(target) }))
    }
  }
  return {
    applies: true,
    unconvertible: undefined,
    targets: job.targets.map((target) => {
      const stored = row[target.column]
      const computed = converted.right[target.column] ?? null
      const outcome: Outcome = stored == null
        ? (computed === null ? "empty" : "missing")
        : computed === null
        ? "orphan"
        : sameValue(target.type, stored, computed)
        ? "match"
        : "mismatch"
      return { column: target.column, outcome, outOfRange: outOfRange(target) }
    })
  }
}

/**
 * Where a SQL fast path and the row function disagree on one row: the target, the SQL's value and
 * the function's (its value, or why it rejects the row).
 *
 * @since 0.2.0
 */
export interface FastPathDisagreement {
  readonly target: Identifier
  readonly sql: unknown
  readonly convert: Backfill.Value | null | { readonly rejected: string }
}

/**
 * The column a fast path's value for expression `i` is selected as, beside the row (and the guard's
 * verdict as `__strata_guarded`).
 *
 * @since 0.2.0
 */
export const fastPathColumn = (i: number): string => `__strata_fast_${i}`

/**
 * Whether the fast path would write what the row function computes for one row (keyed by column
 * name, with the fast path's values as `fastPathColumn(i)` and, for a guarded fast path, the guard
 * as `__strata_guarded`). The fast path may decline a row (its expression NULL, or the guard false:
 * the row is left to the function); whatever it would write must equal the function's value
 * exactly, and a row the function rejects must not get a value from SQL.
 *
 * @since 0.2.0
 */
export const fastPathDisagreement = (
  job: Backfill.Job,
  fast: Backfill.SqlFastPath,
  row: Readonly<Record<string, unknown>>
): FastPathDisagreement | undefined => {
  const sqlValues = fast.expressions.map((_, i) => row[fastPathColumn(i)])
  const writes = fast.guard !== undefined
    ? row["__strata_guarded"] === true || row["__strata_guarded"] === 1
    : sqlValues.every((value) => value != null)
  if (!writes || !Backfill.matchesFilter(job.filter, row)) return undefined
  const converted = job.convert(row)
  for (const [i, { target }] of fast.expressions.entries()) {
    const value = sqlValues[i]
    // SQL writes only NULL targets, and a NULL it yields changes nothing.
    if (row[target] != null || value == null) continue
    if (Either.isLeft(converted)) {
      return { target, sql: value, convert: { rejected: `${converted.left.column}: ${converted.left.reason}` } }
    }
    const computed = converted.right[target] ?? null
    const type = job.targets.find((t) => t.column === target)?.type ?? "text"
    if (computed === null || !sameValue(type, value, computed)) return { target, sql: value, convert: computed }
  }
  return undefined
}
