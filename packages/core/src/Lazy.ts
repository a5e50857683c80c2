/**
 * Read-time fix-up rules, one per backfill job: when a row is read with a target NULL (or absent),
 * compute it with the job's own row function, so a read, the backfill and the Verifier agree.
 *
 * A rule computes only from what the row carries: every column the job reads must be in the row
 * (a NULL is a value; a column the caller did not select is not), the shadow's source must be
 * NOT NULL, and the row must match the job's filter. Only targets that are missing are filled; a
 * NULL the function gives is an answer and leaves the target NULL.
 *
 * @since 0.1.0
 */
import * as Backfill from "./Backfill.js"
import type { Identifier, TableName } from "./Identifier.js"
import type * as Plan from "./Plan.js"

/**
 * The read-time fix-up of one job's targets.
 *
 * @since 0.1.0
 * @category models
 */
export interface Rule {
  readonly table: TableName
  /** The backfill job the rule comes from (its rejects are reported there). */
  readonly job: string
  /** The declared key of the table, if the plan names one. */
  readonly key: Identifier | undefined
  readonly targets: ReadonlyArray<Backfill.Target>
  /** Columns the row must carry for the rule to compute anything. */
  readonly reads: ReadonlyArray<Identifier>
  readonly requires: Identifier | undefined
  readonly filter: Backfill.Filter | undefined
  readonly convert: Backfill.Job["convert"]
}

/**
 * The rule of a job.
 *
 * @since 0.2.0
 * @category constructors
 */
export const ruleOf = (job: Backfill.Job): Rule => ({
  table: job.table,
  job: job.name,
  key: job.key,
  targets: job.targets,
  reads: job.reads,
  requires: job.requires,
  filter: job.filter,
  convert: job.convert
})

/**
 * Every lazy rule of a plan, in plan order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rules = (plan: Plan.Plan): ReadonlyArray<Rule> => Backfill.jobs(plan).map(ruleOf)

/**
 * The lazy rules of one table.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rulesFor = (plan: Plan.Plan, table: string): ReadonlyArray<Rule> =>
  rules(plan).filter((rule) => rule.table === table)

/**
 * The row's source does not convert (the backfill records it as a reject).
 *
 * @since 0.2.0
 * @category models
 */
export const unconvertible: unique symbol = Symbol.for("@strata/core/Lazy/unconvertible")

/**
 * What `fix` found: nothing to do (`undefined`), a source that does not convert, or per target (in
 * `rule.targets` order) the value to fill in, `null` where the target stays as it is (at least one is set).
 *
 * @since 0.2.0
 * @category models
 */
export type Fix = undefined | typeof unconvertible | ReadonlyArray<Backfill.Value | null>

/**
 * The fix-up of one row (keyed by column name) under one rule. Allocates nothing when every target
 * is set, so reads of migrated rows stay cheap.
 *
 * @since 0.2.0
 * @category fix-up
 */
export const fix = (rule: Rule, row: Readonly<Record<string, unknown>>): Fix => {
  let missing = false
  for (let i = 0; i < rule.targets.length; i++) {
    if (row[rule.targets[i]!.column] == null) {
      missing = true
      break
    }
  }
  if (!missing) return undefined
  for (let i = 0; i < rule.reads.length; i++) {
    if (row[rule.reads[i]!] === undefined) return undefined
  }
  if (rule.requires !== undefined && row[rule.requires] == null) return undefined
  if (!Backfill.matchesFilter(rule.filter, row)) return undefined
  const converted = rule.convert(row)
  if (converted._tag === "Left") return unconvertible
  let any = false
  const values = rule.targets.map((target) => {
    if (row[target.column] != null) return null
    const value = converted.right[target.column] ?? null
    if (value !== null) any = true
    return value
  })
  return any ? values : undefined
}
