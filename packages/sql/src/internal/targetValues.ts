/**
 * How a value a job computed travels to its target column in a statement parameter, per engine:
 * SQLite binds no booleans (1/0) and stores JSON as text; PostgreSQL's typed arrays take JSON as
 * its text and 64-bit integers as decimal text. Shared by the backfill and the lazy write-back.
 */
import type { Backfill } from "@strata/core"
import { Compile } from "@strata/core"

/** A value as a SQLite statement parameter. */
export const sqliteParam = (target: Backfill.Target, value: Backfill.Value | null): unknown => {
  if (value === null) return null
  if (target.type === "json") return JSON.stringify(value)
  if (typeof value === "boolean") return value ? 1 : 0
  return value
}

/** A value as one element of a PostgreSQL array parameter of the target's type. */
export const pgElement = (target: Backfill.Target, value: Backfill.Value | null): unknown => {
  if (value === null) return null
  if (target.type === "json") return JSON.stringify(value)
  return typeof value === "bigint" ? value.toString() : value
}

/** The PostgreSQL type of the target as the plan declares it (the array parameter's element type). */
export const pgType = (target: Backfill.Target): string => Compile.columnType(target.type, "pg")
