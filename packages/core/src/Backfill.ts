/**
 * Backfill job specs derived from a plan: which table, which columns, which rows are pending,
 * and a pure row function. The BackfillRunner, the LazyMigration and the Verifier all convert
 * through these functions, so the three agree exactly.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import type { Identifier, TableName } from "./Identifier.js"
import * as Plan from "./Plan.js"
import * as Timestamp from "./Timestamp.js"

/**
 * What a job writes: target column → value. `null` means "nothing to write" (never written:
 * writes are conditional and a NULL never overwrites anything).
 *
 * @since 0.1.0
 */
export type RowValues = Readonly<Record<string, number | string | null>>

/**
 * Why a row cannot be converted; stored in `strata_rejects`.
 *
 * @since 0.1.0
 */
export interface RejectReason {
  readonly column: string
  readonly reason: string
}

/**
 * A backfill job.
 *
 * @since 0.1.0
 */
export interface Job {
  /** Unique within a plan: `<table>.<target>` for shadows, `<table>.<payload>` for JSON extraction. */
  readonly name: string
  readonly kind: "epochShadow" | "extractJson"
  /** The migration that adds the target columns; the job needs it applied. */
  readonly migrationId: number
  readonly table: TableName
  /** The declared batching key; when absent the runner discovers the table's key. */
  readonly key: Identifier | undefined
  /** Columns the row function reads. */
  readonly reads: ReadonlyArray<Identifier>
  /** Columns the job writes; a row is pending while any of them is NULL. */
  readonly targets: ReadonlyArray<Identifier>
  /** A row is pending only if this column is NOT NULL too (the shadow's source). */
  readonly requires: Identifier | undefined
  /** Only rows matching this filter belong to the job. */
  readonly filter: Plan.RowFilter | undefined
  /** The pure conversion of one row (keyed by column name) into target values. */
  readonly convert: (row: Readonly<Record<string, unknown>>) => Either.Either<RowValues, RejectReason>
  /** Set for timestamp shadows: the rows whose source has the exact `YYYY-MM-DD HH:MM:SS` shape may be converted in SQL. */
  readonly fastPath: { readonly source: Identifier; readonly target: Identifier } | undefined
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (Array.isArray(value)) return "an array"
  if (value === null) return "null"
  return `${typeof value} ${String(value)}`
}

/** A present value (never NULL) as a timestamp: text through `Timestamp.parse` (or `parseWith` under `accept`), numbers only with a declared epoch unit. */
const timestampValue = (value: unknown, accept: Timestamp.Accept | undefined): Either.Either<Timestamp.EpochMillis, string> => {
  if (typeof value === "string") {
    const parsed = accept === undefined ? Timestamp.parse(value) : Timestamp.parseWith(value, accept)
    return Either.mapLeft(parsed, (error) => `${describe(value)}: ${error.reason}`)
  }
  if ((typeof value === "number" || typeof value === "bigint") && accept?.epoch !== undefined) {
    return Either.mapLeft(Timestamp.fromEpoch(value, accept.epoch), (error) => error.reason)
  }
  return Either.left(`expected timestamp text, found ${describe(value)}`)
}

/** A present value (never NULL) as a target of type `as`. */
const convertValue = (value: unknown, as: "timestamp" | "text"): Either.Either<Timestamp.EpochMillis | string, string> => {
  if (as === "timestamp") return timestampValue(value, undefined)
  return typeof value === "string" ? Either.right(value) : Either.left(`expected text, found ${describe(value)}`)
}

/**
 * The one conversion of a stored timestamp value: `null` stays `null` (nothing to do), text goes
 * through `Timestamp.parse`, or `Timestamp.parseWith` when the step declares opt-in forms
 * (`accept`); a number or bigint (an INTEGER or REAL column, a JSON number, a value SQLite's
 * affinity made of "0") is an instant only under `accept.epoch`; anything else (a blob) is a reason.
 *
 * @since 0.1.0
 */
export const timestampFromColumn = (
  value: unknown,
  accept?: Timestamp.Accept
): Either.Either<Timestamp.EpochMillis | null, string> =>
  value === null || value === undefined ? Either.right(null) : timestampValue(value, accept)

/**
 * Whether a row (keyed by column name) passes a row filter. Matching is case-sensitive.
 *
 * @since 0.1.0
 */
export const matchesFilter = (filter: Plan.RowFilter | undefined, row: Readonly<Record<string, unknown>>): boolean => {
  if (filter === undefined) return true
  const value = row[filter.column]
  if (typeof value !== "string") return false
  return filter.op === "equals" ? value === filter.value : value.includes(filter.value)
}

const isBlank = (value: unknown): boolean => value === null || value === undefined || value === ""

/**
 * Reads a payload column: `undefined` for NULL or empty (take the fallbacks), the object,
 * or a reason (invalid JSON, or JSON that is not an object). PostgreSQL's JSONB arrives parsed.
 */
const payloadObject = (value: unknown): Either.Either<Readonly<Record<string, unknown>> | undefined, string> => {
  if (value === null || value === undefined) return Either.right(undefined)
  let parsed: unknown = value
  if (typeof value === "string") {
    if (value.trim() === "") return Either.right(undefined)
    try {
      parsed = JSON.parse(value)
    } catch (error) {
      return Either.left(`invalid JSON: ${(error as Error).message}`)
    }
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return Either.left(`payload is not a JSON object: ${describe(parsed)}`)
  }
  return Either.right(parsed as Record<string, unknown>)
}

const lookup = (object: Readonly<Record<string, unknown>>, path: string): unknown => {
  let current: unknown = object
  for (const segment of path.split(".")) {
    if (current === null || typeof current !== "object" || Array.isArray(current)) return undefined
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined
    current = (current as Record<string, unknown>)[segment]
  }
  return current
}

/**
 * The pure row function of an `extractJson` step: first non-empty path wins, then the fallback
 * column; a payload that is not a JSON object or a found value that does not convert rejects the
 * whole row (no fallback: the payload says something we cannot read).
 *
 * @since 0.1.0
 */
export const extractRow = (step: Plan.ExtractJson) => (row: Readonly<Record<string, unknown>>): Either.Either<RowValues, RejectReason> => {
  const payload = payloadObject(row[step.payload])
  if (Either.isLeft(payload)) return Either.left({ column: step.payload, reason: payload.left })
  const values: Record<string, number | string | null> = {}
  for (const target of step.targets) {
    const found = payload.right === undefined
      ? undefined
      : target.paths.map((path) => ({ path, value: lookup(payload.right!, path) })).find(({ value }) => !isBlank(value))
    if (found !== undefined) {
      const converted = convertValue(found.value, target.as)
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
    const converted = convertValue(fallback, target.as)
    if (Either.isLeft(converted)) {
      return Either.left({ column: target.column, reason: `fallback ${target.fallbackColumn}: ${converted.left}` })
    }
    values[target.column] = converted.right
  }
  return Either.right(values)
}

/**
 * The pure row function of an `epochShadow` step.
 *
 * @since 0.1.0
 */
export const shadowRow = (step: Plan.EpochShadow) => {
  const target = Plan.shadowTarget(step)
  return (row: Readonly<Record<string, unknown>>): Either.Either<RowValues, RejectReason> =>
    Either.match(timestampFromColumn(row[step.column]), {
      onLeft: (reason) => Either.left({ column: step.column, reason }),
      onRight: (ms) => Either.right({ [target]: ms })
    })
}

const unique = <A>(items: ReadonlyArray<A>): ReadonlyArray<A> => [...new Set(items)]

/**
 * The backfill jobs of a plan, in plan order.
 *
 * @since 0.1.0
 */
export const jobs = (plan: Plan.Plan): ReadonlyArray<Job> =>
  Plan.steps(plan).flatMap(({ migration, step }): ReadonlyArray<Job> => {
    switch (step._tag) {
      case "EpochShadow": {
        const target = Plan.shadowTarget(step)
        return [{
          name: Plan.shadowJobName(step),
          kind: "epochShadow",
          migrationId: migration.id,
          table: step.table,
          key: step.key,
          reads: [step.column],
          targets: [target],
          requires: step.column,
          filter: undefined,
          convert: shadowRow(step),
          fastPath: { source: step.column, target }
        }]
      }
      case "ExtractJson":
        return [{
          name: Plan.extractJobName(step),
          kind: "extractJson",
          migrationId: migration.id,
          table: step.table,
          key: step.key,
          reads: unique([
            step.payload,
            ...step.targets.flatMap((t) => (t.fallbackColumn === undefined ? [] : [t.fallbackColumn])),
            ...(step.where === undefined ? [] : [step.where.column])
          ]),
          targets: step.targets.map((t) => t.column),
          requires: undefined,
          filter: step.where,
          convert: extractRow(step),
          fastPath: undefined
        }]
      default:
        return []
    }
  })

/**
 * Finds a job by name, or lists the names there are.
 *
 * @since 0.1.0
 */
export const findJob = (plan: Plan.Plan, name: string): Either.Either<Job, { readonly name: string; readonly known: ReadonlyArray<string> }> => {
  const all = jobs(plan)
  const job = all.find((j) => j.name === name)
  return job === undefined ? Either.left({ name, known: all.map((j) => j.name) }) : Either.right(job)
}
