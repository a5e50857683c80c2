/**
 * Repairs stale target values the Verifier found: a row whose stored value differs from the one its
 * job's row function gives for its current source (an old app version updated the source after the
 * backfill) gets the recomputed value, written conditionally. The write lands only where the target
 * still holds the stale value it was checked against and every column the row function read still
 * holds what was read, so a write by anyone else in between (the app's, the lazy path's) wins and the
 * row is reported as skipped. Only mismatches are repaired: a NULL target is the backfill's and the
 * lazy path's to fill, and a value where the recomputation gives nothing is left for a person.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { type Backfill, Identifier } from "@strata/core"
import { Effect, Either } from "effect"
import { type JobTable, keyParam, keyValue, Params } from "./jobTable.js"
import { pgElement, sqliteParam } from "./targetValues.js"

/** One conditional write: the row, the target, what it held when checked, and the value it should hold. */
export interface PlannedRepair {
  readonly key: string
  readonly keyValue: ReturnType<typeof keyValue>
  readonly target: Backfill.Target
  readonly stale: unknown
  readonly value: Backfill.Value
  /** The columns the row function read, with the values it read. */
  readonly reads: ReadonlyArray<readonly [Identifier.Identifier, unknown]>
}

/**
 * The repairs of one row: its mismatched targets (by column) with the value the row function gives
 * now. None when the row function does not give a value for them (then it is not a mismatch).
 */
export const planRepairs = (
  table: JobTable,
  row: Readonly<Record<string, unknown>>,
  mismatched: ReadonlyArray<Identifier.Identifier>
): ReadonlyArray<PlannedRepair> => {
  if (mismatched.length === 0) return []
  const converted = table.job.convert(row)
  if (Either.isLeft(converted)) return []
  const key = keyValue(table, row["__strata_key"])
  const reads = table.job.reads.map((column) => [column, row[column]] as const)
  return table.job.targets.flatMap((target) => {
    const value = converted.right[target.column]
    if (!mismatched.includes(target.column) || value == null) return []
    return [{ key: String(key), keyValue: key, target, stale: row[target.column], value, reads }]
  })
}

const bindValue = (table: JobTable, target: Backfill.Target, value: Backfill.Value): unknown =>
  table.dialect === "pg" ? pgElement(target, value) : sqliteParam(target, value)

/** A value read from the row, bound back for comparison (SQLite stores booleans as 0/1 already, JSON as text). */
const bindRead = (table: JobTable, value: unknown): unknown => {
  if (table.dialect === "sqlite") return value
  if (typeof value === "bigint") return value.toString()
  if (value !== null && typeof value === "object" && !(value instanceof Date) && !Buffer.isBuffer(value)) return JSON.stringify(value)
  return value
}

/**
 * Applies repairs, each a one-row conditional UPDATE; true for each one it wrote. Run it in a
 * transaction: a batch's repairs commit together.
 */
export const applyRepairs = (
  table: JobTable,
  repairs: ReadonlyArray<PlannedRepair>
): Effect.Effect<ReadonlyArray<boolean>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const same = table.dialect === "pg" ? "IS NOT DISTINCT FROM" : "IS"
    // PostgreSQL's json (unlike jsonb) has no equality: compare such a column as jsonb.
    const compared = (column: Identifier.Identifier, placeholder: string) =>
      table.dialect === "pg" && table.columnTypes.get(column) === "json"
        ? [`${Identifier.quote(column)}::jsonb`, `${placeholder}::jsonb`] as const
        : [Identifier.quote(column), placeholder] as const
    return yield* Effect.forEach(repairs, (repair) =>
      Effect.gen(function*() {
        const params = new Params(table.dialect)
        const column = Identifier.quote(repair.target.column)
        const set = `${column} = ${params.bind(bindValue(table, repair.target, repair.value))}`
        // Placeholders are bound in the order they appear in the text (SQLite's `?` are positional).
        const key = `${table.key.sql} = ${params.bind(keyParam(table, repair.keyValue))}`
        const stale = compared(repair.target.column, params.bind(bindRead(table, repair.stale)))
        const conditions = [
          key,
          `${stale[0]} = ${stale[1]}`,
          ...repair.reads.map(([read, value]) => {
            const [left, right] = compared(read, params.bind(bindRead(table, value)))
            return `${left} ${same} ${right}`
          })
        ]
        const written = yield* sql.unsafe(
          `UPDATE ${Identifier.quoteTable(table.job.table)} SET ${set} WHERE ${conditions.join(" AND ")} RETURNING 1 AS written`,
          params.values
        )
        return written.length > 0
      }))
  })
