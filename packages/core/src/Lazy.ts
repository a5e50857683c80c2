/**
 * Read-time fix-up rules derived from a plan's `epochShadow` steps: when a row is read with its
 * shadow NULL, compute it from the source with the same conversion the backfill uses.
 *
 * @since 0.1.0
 */
import type { Either } from "effect"
import * as Backfill from "./Backfill.js"
import type { Identifier, TableName } from "./Identifier.js"
import * as Plan from "./Plan.js"
import type * as Timestamp from "./Timestamp.js"

/**
 * One shadow column to fill on read.
 *
 * @since 0.1.0
 */
export interface Rule {
  readonly table: TableName
  readonly source: Identifier
  readonly target: Identifier
  /** The declared key of the table, if the plan names one. */
  readonly key: Identifier | undefined
  /** The backfill job that owns the same column (its rejects are reported there). */
  readonly job: string
  readonly convert: (value: unknown) => Either.Either<Timestamp.EpochMillis | null, string>
}

/**
 * Every lazy rule of a plan, in plan order.
 *
 * @since 0.1.0
 */
export const rules = (plan: Plan.Plan): ReadonlyArray<Rule> =>
  Plan.steps(plan).flatMap(({ step }) =>
    step._tag === "EpochShadow"
      ? [{
        table: step.table,
        source: step.column,
        target: Plan.shadowTarget(step),
        key: step.key,
        job: Plan.shadowJobName(step),
        convert: Backfill.timestampFromColumn
      }]
      : []
  )

/**
 * The lazy rules of one table.
 *
 * @since 0.1.0
 */
export const rulesFor = (plan: Plan.Plan, table: string): ReadonlyArray<Rule> =>
  rules(plan).filter((rule) => rule.table === table)
