/**
 * The SQL side of LazyMigration's write-back: finding a table's key, and the one batched,
 * conditional UPDATE per table that writes fixed values without ever overwriting a non-NULL target.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Backfill } from "@strata/core"
import { Identifier } from "@strata/core"
import { Data, Effect, Either } from "effect"
import type { ColumnRow } from "../Catalog.js"
import { tableColumns } from "../Catalog.js"
import { pgElement, pgType as targetPgType, sqliteParam } from "./targetValues.js"

/**
 * How rows of a table are addressed by the write-back.
 * - `Column`: a declared key or the table's single-column primary key (`pgType` is its PostgreSQL
 *   type, needed to type the key array).
 * - `Rowid`: a SQLite table without a single-column primary key; only rows that carry `rowid`
 *   (the caller selected it) can be written back.
 * - `None`: no usable key (composite or missing primary key on PostgreSQL); rows are fixed in
 *   memory only.
 */
export type TableKey =
  | { readonly _tag: "Column"; readonly column: Identifier.Identifier; readonly pgType: string | undefined }
  | { readonly _tag: "Rowid" }
  | { readonly _tag: "None"; readonly reason: string }

/** The table (or the declared key column) is not in the database, so its key cannot be known yet. */
export class TableKeyUnknown extends Data.TaggedError("TableKeyUnknown")<{
  readonly table: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot find the key of table ${this.table}: ${this.reason}`
  }
}

/** A row's key value as the driver returned it; anything else (NULL, blobs) cannot address a row. */
export type KeyValue = string | number | bigint

/** The value of the row's key, or undefined when the row cannot be addressed. */
export const keyValueOf = (key: TableKey, row: Readonly<Record<string, unknown>>): KeyValue | undefined => {
  const value = key._tag === "Column" ? row[key.column] : key._tag === "Rowid" ? row["rowid"] : undefined
  if (typeof value === "string" || typeof value === "bigint") return value
  if (typeof value === "number" && Number.isFinite(value)) return value
  return undefined
}

// Types come from the catalogue (format_type), but they are spliced into SQL text, so only plain type names pass.
const plainPgType = /^[A-Za-z_][A-Za-z0-9_ ]*(\(\d+(,\s*\d+)?\))?$/

/**
 * Finds the key of `table`: the declared one if the plan names it, else the single-column primary
 * key, else (SQLite) `rowid`. Fails with `TableKeyUnknown` when the table does not exist yet.
 */
export const discoverKey = (
  dialect: "sqlite" | "pg",
  table: Identifier.TableName,
  declared: Identifier.Identifier | undefined
): Effect.Effect<TableKey, SqlError | TableKeyUnknown, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const columns = yield* tableColumns(table)
    if (columns.length === 0) return yield* new TableKeyUnknown({ table, reason: "no such table" })
    let key: ColumnRow
    if (declared !== undefined) {
      const found = columns.find((c) => c.name === declared)
      if (found === undefined) {
        return yield* new TableKeyUnknown({ table, reason: `declared key column ${declared} does not exist` })
      }
      key = found
    } else {
      const primary = columns.filter((c) => Number(c.pk) > 0)
      const single = primary.length === 1 ? Identifier.decode(primary[0]!.name) : undefined
      if (single === undefined || Either.isLeft(single)) {
        if (dialect === "sqlite") return { _tag: "Rowid" } as const
        return {
          _tag: "None",
          reason: primary.length === 0 ? "the table has no primary key" : "the primary key is not a single plain column"
        } as const
      }
      key = primary[0]!
    }
    const column = key.name as Identifier.Identifier
    if (dialect === "sqlite") return { _tag: "Column", column, pgType: undefined } as const
    if (!plainPgType.test(key.type)) {
      return { _tag: "None", reason: `key column ${column} has type ${key.type}, which the write-back cannot bind` } as const
    }
    return { _tag: "Column", column, pgType: key.type } as const
  })

/** One row to write: its key and a value per target (null: this row does not fix that target). */
export interface KeyedValues {
  readonly key: KeyValue
  readonly values: ReadonlyArray<Backfill.Value | null>
}

/** A statement and its parameters. */
export interface WriteStatement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

/**
 * One UPDATE for many rows of one table. Each target becomes `COALESCE(target, fixed)` and a row
 * is touched only if some target it fixes is still NULL, so a value written by anyone else between
 * the read and the write-back is never overwritten. `RETURNING` the key counts the rows written.
 * SQLite joins a VALUES list (`UPDATE … FROM`, SQLite ≥ 3.33); PostgreSQL joins typed arrays
 * (`unnest`), so the statement text does not grow with the batch and the key stays indexable.
 */
export const writeStatement = (
  dialect: "sqlite" | "pg",
  table: Identifier.TableName,
  key: Exclude<TableKey, { readonly _tag: "None" }>,
  targets: ReadonlyArray<Backfill.Target>,
  rows: ReadonlyArray<KeyedValues>
): WriteStatement => {
  const quotedTable = Identifier.quoteTable(table)
  const keyColumn = key._tag === "Column" ? Identifier.quote(key.column) : "rowid"
  if (dialect === "sqlite") {
    const fixed = (index: number) => `fixed.column${index + 2}`
    const assignments = targets.map(({ column }, i) =>
      `${Identifier.quote(column)} = COALESCE(${quotedTable}.${Identifier.quote(column)}, ${fixed(i)})`
    )
    const stillMissing = targets.map(({ column }, i) =>
      `(${quotedTable}.${Identifier.quote(column)} IS NULL AND ${fixed(i)} IS NOT NULL)`
    )
    const tuple = `(${["?", ...targets.map(() => "?")].join(", ")})`
    return {
      sql: `UPDATE ${quotedTable} SET ${assignments.join(", ")} FROM (VALUES ${rows.map(() => tuple).join(", ")}) AS fixed ` +
        `WHERE ${quotedTable}.${keyColumn} = fixed.column1 AND (${stillMissing.join(" OR ")}) ` +
        `RETURNING ${quotedTable}.${keyColumn}`,
      params: rows.flatMap((row) => [row.key, ...row.values.map((value, i) => sqliteParam(targets[i]!, value))])
    }
  }
  const keyType = key._tag === "Column" ? key.pgType ?? "text" : "text"
  const fixedColumn = (i: number) => `fixed_${i}`
  const assignments = targets.map(({ column }, i) =>
    `${Identifier.quote(column)} = COALESCE(target_row.${Identifier.quote(column)}, fixed.${fixedColumn(i)})`
  )
  const stillMissing = targets.map(({ column }, i) =>
    `(target_row.${Identifier.quote(column)} IS NULL AND fixed.${fixedColumn(i)} IS NOT NULL)`
  )
  const arrays = [`$1::${keyType}[]`, ...targets.map((target, i) => `$${i + 2}::${targetPgType(target)}[]`)]
  return {
    sql: `UPDATE ${quotedTable} AS target_row SET ${assignments.join(", ")} ` +
      `FROM unnest(${arrays.join(", ")}) AS fixed(strata_key, ${targets.map((_, i) => fixedColumn(i)).join(", ")}) ` +
      `WHERE target_row.${keyColumn} = fixed.strata_key AND (${stillMissing.join(" OR ")}) ` +
      `RETURNING target_row.${keyColumn}`,
    params: [
      rows.map((row) => (typeof row.key === "bigint" ? row.key.toString() : row.key)),
      ...targets.map((target, i) => rows.map((row) => pgElement(target, row.values[i] ?? null)))
    ]
  }
}
