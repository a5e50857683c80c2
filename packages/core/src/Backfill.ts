/**
 * The backfill `Job`: the one description of a data step's work. Every data step (`derive`, and the
 * built-in derives `epochShadow` and `extractJson`) becomes a job here, and nowhere else: its
 * source columns, its typed target columns (which `Compile` adds, with their indexes), its pure row
 * function, and its optional SQL fast path. The BackfillRunner, the lazy rules (`Lazy`), the checks
 * (`Checks`) and the progress queries all work from jobs, so they agree exactly; a new kind of data
 * step only adds its case to `jobOf`.
 *
 * A row function never throws and never gives part of a row: it gives every target's value (NULL
 * included, an answer like any other) or one reason the whole row is rejected. Values are checked
 * against the target's type here, so a function returning the wrong kind of value rejects the row
 * instead of failing a batch.
 *
 * **When a row counts as processed.** A NULL the function gives is not work left. The job's saved
 * cursor in `strata_jobs` is the record: a row whose key the cursor has passed was converted (its
 * values and its rejects are written in the same transaction as the cursor, so an interrupt keeps
 * both or neither); rows after it are pending while any target is NULL. So the backfill walks every
 * row once (a finished job is not scanned again; `restart` forgets the cursor), the Verifier
 * recomputes (stored NULL = computed NULL is a match, not "missing"), and progress counts as pending
 * only rows the cursor has not reached. No marker column is added to the user's table.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import type { Dialect } from "./Compile.js"
import * as FastPath from "./FastPath.js"
import type { Identifier, TableName } from "./Identifier.js"
import * as Plan from "./Plan.js"
import type * as Timestamp from "./Timestamp.js"
import * as Transform from "./Transform.js"

/**
 * A value a job writes into a target.
 *
 * @since 0.2.0
 * @category models
 */
export type Value = Plan.TargetValue

/**
 * What a job computes for a row: target column → value. `null` leaves the target NULL (writes are
 * conditional and a NULL never overwrites anything).
 *
 * @since 0.1.0
 * @category models
 */
export type RowValues = Readonly<Record<string, Value | null>>

/**
 * Why a row cannot be converted; stored in `strata_rejects` as `<column>: <reason>`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RejectReason {
  /** The column at fault (a source, a target, or the step's reads when its function failed). */
  readonly column: string
  readonly reason: string
}

/**
 * A column a job writes.
 *
 * @since 0.2.0
 * @category models
 */
export interface Target {
  readonly column: Identifier
  /** How it is stored (epoch milliseconds are `bigint`). */
  readonly type: Plan.ColumnType
  /** The index the step creates on it. */
  readonly index: { readonly name: Identifier; readonly desc: boolean } | undefined
  /** Whether it holds epoch milliseconds read from timestamp text (the Verifier checks these are plausible). */
  readonly epochMillis: boolean
  /** The step's plausibility setting for it (`Plan.Plausible`), read as epoch ms; `undefined`: the defaults. */
  readonly plausible: Plan.PlausibleWindow | undefined
}

/**
 * A job's SQL fast path on one engine: an expression per target over the row's columns, computed
 * inside the batch's `UPDATE`. A NULL an expression yields leaves the row to the row function. The
 * runner checks it against the row function on real rows and stops using it at the first disagreement.
 *
 * @since 0.2.0
 * @category models
 */
export interface SqlFastPath {
  readonly expressions: ReadonlyArray<{
    readonly target: Identifier
    readonly sql: string
    /**
     * The same value for a row the guard passes, without the guard's test inside it (so an `UPDATE`
     * that filters on the guard runs that test once per row, not twice); only valid under the guard.
     */
    readonly whenGuarded?: string | undefined
  }>
  /**
   * A cheap predicate true for every row the expressions convert, so the `UPDATE` filters on it and
   * evaluates each expression once per row; without one it filters on every expression being NOT NULL.
   */
  readonly guard: string | undefined
  /** Columns that must be text for the expressions to apply (PostgreSQL's `~` takes only text). */
  readonly textColumns: ReadonlyArray<Identifier>
  /**
   * `epochMillis` for `FastPath.epochMillisExpression`, which an engine must also pass
   * `FastPath.selfTestCases` with before use; `plan` for a plan's own expressions.
   */
  readonly origin: "epochMillis" | "plan"
}

/**
 * The row filter of a job (`eq` read as `equals`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Filter {
  readonly column: Identifier
  readonly op: "contains" | "equals"
  readonly value: string
}

/**
 * A backfill job: everything about a data step's work on the rows of one table.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job {
  /** Unique within a plan: `<table>.<target>` for shadows and derives, `<table>.<payload>` for JSON extraction. */
  readonly name: string
  /** The migration that adds the target columns; the job needs it applied. */
  readonly migrationId: number
  readonly table: TableName
  /** The declared batching key; when absent the runner discovers the table's key. */
  readonly key: Identifier | undefined
  /** Columns a batch selects for the row function: the sources and the filter's column. */
  readonly reads: ReadonlyArray<Identifier>
  /** The columns the values are computed from. */
  readonly sources: ReadonlyArray<Identifier>
  readonly targets: ReadonlyArray<Target>
  /** A row is pending only if this column is NOT NULL too (the shadow's source). */
  readonly requires: Identifier | undefined
  /** Only rows matching this filter belong to the job. */
  readonly filter: Filter | undefined
  /** The pure conversion of one row (keyed by column name) into every target's value, or a reason. */
  readonly convert: (row: Readonly<Record<string, unknown>>) => Either.Either<RowValues, RejectReason>
  /** The SQL fast path per engine, when the step has one. */
  readonly fastPath: { readonly [D in Dialect]: SqlFastPath | undefined }
}

/**
 * The target columns of a job, in order.
 *
 * @since 0.2.0
 * @category accessors
 */
export const targetColumns = (job: Job): ReadonlyArray<Identifier> => job.targets.map((t) => t.column)

const INT32_MAX = 2_147_483_647
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

const isJson = (value: unknown): boolean => {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true
  if (typeof value === "number") return Number.isFinite(value)
  if (Array.isArray(value)) return value.every(isJson)
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.values(value as object).every(isJson)
  }
  return false
}

const integerValue = (value: unknown, min: bigint, max: bigint): number | bigint | undefined => {
  if (typeof value === "number") return Number.isSafeInteger(value) && BigInt(value) >= min && BigInt(value) <= max ? value : undefined
  if (typeof value === "bigint" && value >= min && value <= max) {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value
  }
  return undefined
}

/**
 * A value for a target of `type`, or why it cannot be stored there. Integers are 32-bit (`integer`,
 * PostgreSQL's INTEGER) or 64-bit (`bigint`) on both engines, so a plan gets the same rows on both;
 * bigints that fit a number come back as numbers.
 *
 * @since 0.2.0
 * @category conversions
 */
export const targetValue = (type: Plan.ColumnType, value: unknown): Either.Either<Value | null, string> => {
  if (value === null) return Either.right(null)
  const refuse = (expected: string) => Either.left(`expected ${expected}, got ${Transform.describe(value)}`)
  switch (type) {
    case "text":
    case "timestamp_text":
      return typeof value === "string" ? Either.right(value) : refuse("text")
    case "integer": {
      const n = integerValue(value, BigInt(-INT32_MAX - 1), BigInt(INT32_MAX))
      return n === undefined ? refuse("a 32-bit integer") : Either.right(n)
    }
    case "bigint": {
      const n = integerValue(value, INT64_MIN, INT64_MAX)
      return n === undefined ? refuse("a 64-bit integer") : Either.right(n)
    }
    case "real":
      return typeof value === "number" && Number.isFinite(value) ? Either.right(value) : refuse("a finite number")
    case "boolean":
      return typeof value === "boolean" ? Either.right(value) : refuse("a boolean")
    case "json":
      return isJson(value) ? Either.right(value as Value) : refuse("a JSON value")
  }
}

/**
 * The one conversion of a stored timestamp value (`Transform.timestamp`, the built-in every
 * timestamp target uses): `null` stays `null` (nothing to do), text goes through `Timestamp.parse`,
 * or `Timestamp.parseWith` when the step declares opt-in forms (`accept`); a number or bigint is an
 * instant only under `accept.epoch`; anything else (a blob) is a reason.
 *
 * @since 0.1.0
 * @category conversions
 */
export const timestampFromColumn = (
  value: unknown,
  accept?: Timestamp.Accept
): Either.Either<Timestamp.EpochMillis | null, string> => Transform.timestamp(value, accept)

/**
 * Whether a row (keyed by column name) passes a row filter. Matching is case-sensitive.
 *
 * @since 0.1.0
 * @category filters
 */
export const matchesFilter = (
  filter: Plan.RowFilter | Filter | undefined,
  row: Readonly<Record<string, unknown>>
): boolean => {
  if (filter === undefined) return true
  const value = row[filter.column]
  if (typeof value !== "string") return false
  return filter.op === "contains" ? value.includes(filter.value) : value === filter.value
}

const jobFilter = (filter: Plan.RowFilter | undefined): Filter | undefined =>
  filter === undefined ? undefined : { column: filter.column, op: filter.op === "contains" ? "contains" : "equals", value: filter.value }

type Compute = (row: Readonly<Record<string, unknown>>) => Either.Either<unknown, RejectReason>

const thrown = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : `${Transform.describe(error)}`

/**
 * A row function made safe and exact: a throw rejects the row with the thrown message; the result
 * must name every target (null included) and no other column, each value of its target's type.
 */
const checked = (targets: ReadonlyArray<Target>, failedColumn: string, compute: Compute) => {
  const known = new Set<string>(targets.map((t) => t.column))
  return (row: Readonly<Record<string, unknown>>): Either.Either<RowValues, RejectReason> => {
    let result: Either.Either<unknown, RejectReason>
    try {
      result = compute(row)
    } catch (error) {
      return Either.left({ column: failedColumn, reason: `convert threw ${thrown(error)}` })
    }
    if (Either.isLeft(result)) return result as Either.Either<never, RejectReason>
    const values = result.right
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      return Either.left({ column: failedColumn, reason: `convert returned ${Transform.describe(values)}, not an object of target values` })
    }
    const record = values as Record<string, unknown>
    const out: Record<string, Value | null> = {}
    for (const target of targets) {
      const value = record[target.column]
      if (value === undefined) {
        return Either.left({ column: target.column, reason: "convert returned no value for it (return null to leave it NULL)" })
      }
      const stored = targetValue(target.type, value)
      if (Either.isLeft(stored)) return Either.left({ column: target.column, reason: stored.left })
      out[target.column] = stored.right
    }
    for (const column of Object.keys(record)) {
      if (!known.has(column)) {
        return Either.left({ column, reason: `convert returned a value for a column that is not a target (targets: ${[...known].join(", ")})` })
      }
    }
    return Either.right(out)
  }
}

/** The user's `convert`: it sees only the step's reads; a left is the reason, in the reads' name. */
const userCompute = (convert: (row: Readonly<Record<string, any>>) => unknown, reads: ReadonlyArray<Identifier>): Compute => {
  const failedColumn = reads.join(", ")
  return (row) => {
    const input: Record<string, unknown> = {}
    for (const column of reads) input[column] = row[column]
    const result = convert(input)
    if (!Either.isEither(result)) return Either.right(result)
    return Either.mapLeft(result as Either.Either<unknown, unknown>, (reason) => ({
      column: failedColumn,
      reason: typeof reason === "string" ? reason : reason instanceof Error ? reason.message : Transform.describe(reason)
    }))
  }
}

/** Built-in targets: each reads its source column through its transforms; a reason names the source. */
const builtinCompute = (
  targets: ReadonlyArray<{ readonly column: Identifier; readonly from: Identifier; readonly read: Transform.Reader }>
): Compute =>
(row) => {
  const values: Record<string, unknown> = {}
  for (const target of targets) {
    const value = target.read(row[target.from])
    if (Either.isLeft(value)) return Either.left({ column: target.from, reason: value.left })
    values[target.column] = value.right
  }
  return Either.right(values)
}

const noFastPath = { sqlite: undefined, pg: undefined } as const

const plausibleOf = (plausible: Plan.Plausible | undefined): Plan.PlausibleWindow | undefined =>
  plausible === undefined ? undefined : Plan.plausibleWindow(plausible)

const unique = <A>(items: ReadonlyArray<A>): ReadonlyArray<A> => [...new Set(items)]

const shadowWork = (step: Plan.EpochShadow): Work => {
  const target = Plan.shadowTarget(step)
  const targets: ReadonlyArray<Target> = [{
    column: target,
    type: "bigint",
    index: step.index ? { name: Plan.shadowIndexName(step), desc: true } : undefined,
    epochMillis: true,
    plausible: plausibleOf(step.plausible)
  }]
  const fast = (dialect: Dialect, textColumns: ReadonlyArray<Identifier>): SqlFastPath => ({
    expressions: [{
      target,
      sql: FastPath.epochMillisExpression(step.column, dialect),
      whenGuarded: dialect === "pg" ? FastPath.epochMillisWhenShaped(step.column) : undefined
    }],
    guard: FastPath.shapeTest(step.column, dialect),
    textColumns,
    origin: "epochMillis"
  })
  return {
    name: Plan.shadowJobName(step),
    table: step.table,
    key: step.key,
    reads: [step.column],
    sources: [step.column],
    targets,
    requires: step.column,
    filter: undefined,
    convert: checked(
      targets,
      step.column,
      builtinCompute([{ column: target, from: step.column, read: (value) => Transform.timestamp(value, step.accept) }])
    ),
    fastPath: { sqlite: fast("sqlite", []), pg: fast("pg", [step.column]) }
  }
}

/** A present value (never NULL) as the target `as`, under the target's opt-in timestamp forms. */
const extractValue = (
  value: unknown,
  as: "timestamp" | "text",
  accept: Timestamp.Accept | undefined
): Either.Either<Timestamp.EpochMillis | string, string> => {
  if (as === "timestamp") return Either.map(Transform.timestamp(value, accept), (ms) => ms!)
  return typeof value === "string" ? Either.right(value) : Either.left(`expected text, found ${Transform.describe(value)}`)
}

const isBlank = (value: unknown): boolean => value === null || value === undefined || value === ""

/**
 * The pure row function of an `extractJson` step: first non-empty path wins, then the fallback
 * column; a payload that is not a JSON object or a found value that does not convert rejects the
 * whole row (no fallback: the payload says something we cannot read).
 *
 * @since 0.1.0
 * @category row functions
 */
export const extractRow = (step: Plan.ExtractJson) => (row: Readonly<Record<string, unknown>>): Either.Either<RowValues, RejectReason> => {
  const payload = Transform.jsonObject(row[step.payload])
  if (Either.isLeft(payload)) return Either.left({ column: step.payload, reason: payload.left })
  const values: Record<string, number | string | null> = {}
  for (const target of step.targets) {
    const found = payload.right === undefined
      ? undefined
      : target.paths.map((path) => ({ path, value: Transform.lookup(payload.right!, path) })).find(({ value }) => !isBlank(value))
    if (found !== undefined) {
      const converted = extractValue(found.value, target.as, target.accept)
      if (Either.isLeft(converted)) {
        return Either.left({ column: target.column, reason: `${step.payload}.${found.path}: ${converted.left}` })
      }
      values[target.column] = converted.right
      continue
    }
    const fallback = target.fallbackColumn === undefined ? null : row[target.fallbackColumn]
    if (isBlank(fallback)) {
      values[target.column] = null
      continue
    }
    const converted = extractValue(fallback, target.as, target.accept)
    if (Either.isLeft(converted)) {
      return Either.left({ column: target.column, reason: `fallback ${target.fallbackColumn}: ${converted.left}` })
    }
    values[target.column] = converted.right
  }
  return Either.right(values)
}

const extractWork = (step: Plan.ExtractJson): Work => {
  const targets: ReadonlyArray<Target> = step.targets.map((t) => ({
    column: t.column,
    type: t.as === "timestamp" ? "bigint" : "text",
    index: t.index ? { name: Plan.extractIndexName(step, t), desc: false } : undefined,
    epochMillis: t.as === "timestamp",
    plausible: plausibleOf(t.plausible)
  }))
  const sources = unique([step.payload, ...step.targets.flatMap((t) => (t.fallbackColumn === undefined ? [] : [t.fallbackColumn]))])
  return {
    name: Plan.extractJobName(step),
    table: step.table,
    key: step.key,
    reads: unique([...sources, ...(step.where === undefined ? [] : [step.where.column])]),
    sources,
    targets,
    requires: undefined,
    filter: jobFilter(step.where),
    convert: checked(targets, step.payload, extractRow(step)),
    fastPath: noFastPath
  }
}

const deriveFastPath = (expressions: Readonly<Record<string, string>> | undefined): SqlFastPath | undefined =>
  expressions === undefined || Object.keys(expressions).length === 0
    ? undefined
    : {
      expressions: Object.entries(expressions).map(([target, sql]) => ({ target: target as Identifier, sql })),
      guard: undefined,
      textColumns: [],
      origin: "plan"
    }

const deriveWork = (step: Plan.Derive): Work => {
  const targets: ReadonlyArray<Target> = step.targets.map((t) => ({
    column: t.column,
    type: t.type,
    index: t.index ? { name: Plan.indexName(step.table, t.column), desc: false } : undefined,
    epochMillis: step.convert === undefined && Transform.yieldsEpochMillis(t.apply),
    plausible: plausibleOf(t.plausible)
  }))
  const compute = step.convert !== undefined
    ? userCompute(step.convert, step.reads)
    : builtinCompute(step.targets.map((t) => ({ column: t.column, from: t.from!, read: Transform.pipeline(t.apply ?? []) })))
  return {
    name: Plan.deriveJobName(step),
    table: step.table,
    key: step.key,
    reads: unique([...step.reads, ...(step.filter === undefined ? [] : [step.filter.column])]),
    sources: step.reads,
    targets,
    requires: undefined,
    filter: jobFilter(step.filter),
    convert: checked(targets, step.reads.join(", "), compute),
    fastPath: { sqlite: deriveFastPath(step.sql?.sqlite), pg: deriveFastPath(step.sql?.postgresql) }
  }
}

/**
 * A step's data work: its job without the migration it belongs to.
 *
 * @since 0.2.0
 * @category models
 */
export type Work = Omit<Job, "migrationId">

/**
 * The data work of one step, or `undefined` for a schema-only step. The only place that knows each
 * kind of data step: `jobs`, `Compile` (the target columns and indexes), `Lazy`, `Checks` and the
 * progress report all start here.
 *
 * @since 0.2.0
 * @category constructors
 */
export const workOf = (step: Plan.Step): Work | undefined => {
  switch (step._tag) {
    case "EpochShadow":
      return shadowWork(step)
    case "ExtractJson":
      return extractWork(step)
    case "Derive":
      return deriveWork(step)
    case "Sql":
    case "CreateTable":
    case "AddColumn":
    case "CreateIndex":
    case "Contract":
      return undefined
  }
}

/**
 * The pure row function of an `epochShadow` step.
 *
 * @since 0.1.0
 * @category row functions
 */
export const shadowRow = (step: Plan.EpochShadow): Job["convert"] => shadowWork(step).convert

/**
 * The backfill jobs of a plan, in plan order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const jobs = (plan: Plan.Plan): ReadonlyArray<Job> =>
  Plan.steps(plan).flatMap(({ migration, step }) => {
    const work = workOf(step)
    return work === undefined ? [] : [{ ...work, migrationId: migration.id }]
  })

/**
 * Finds a job by name, or lists the names there are.
 *
 * @since 0.1.0
 * @category constructors
 */
export const findJob = (plan: Plan.Plan, name: string): Either.Either<Job, { readonly name: string; readonly known: ReadonlyArray<string> }> => {
  const all = jobs(plan)
  const job = all.find((j) => j.name === name)
  return job === undefined ? Either.left({ name, known: all.map((j) => j.name) }) : Either.right(job)
}

/**
 * The job's fast path on `dialect` when it computes every target there (a fast path for only some
 * targets would still send every row through the row function, and could write part of a row the
 * function rejects), else `undefined`.
 *
 * @since 0.2.0
 * @category fast path
 */
export const fastPathOn = (job: Job, dialect: Dialect): SqlFastPath | undefined => {
  const fast = job.fastPath[dialect]
  if (fast === undefined) return undefined
  return job.targets.every((t) => fast.expressions.some((e) => e.target === t.column)) ? fast : undefined
}
