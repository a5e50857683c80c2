/**
 * The live schema as strata reads it: one catalogue query per table, the same on both engines.
 * Table names may be schema-qualified (`app.messages`); unqualified names resolve as the
 * connection resolves them (PostgreSQL's `search_path`, SQLite's main database).
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Identifier } from "@strata/core"
import { Effect } from "effect"

/**
 * A column: its name, declared type (PostgreSQL: `format_type`) and whether it is part of the primary key (0: no).
 *
 * @since 0.2.0
 * @category models
 */
export interface ColumnRow {
  readonly name: string
  readonly type: string
  readonly pk: number
}

/**
 * The table's columns (name, declared type, position in the primary key, 0 if none); empty if the table is missing.
 *
 * @since 0.2.0
 * @category catalog
 */
export const tableColumns = (
  table: Identifier.TableName | string
): Effect.Effect<ReadonlyArray<ColumnRow>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.onDialectOrElse({
      pg: () =>
        sql.unsafe<{ name: string; type: string; pk: number }>(
          `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
                  COALESCE((a.attnum = ANY(i.indkey))::int, 0) AS pk
           FROM pg_attribute a
           LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
           WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum`,
          [Identifier.quoteTable(table as Identifier.TableName)]
        ),
      orElse: () => {
        const parts = Identifier.tableParts(table as Identifier.TableName)
        return parts.schema === undefined
          ? sql.unsafe<ColumnRow>(`SELECT name, type, pk FROM pragma_table_info(?)`, [parts.table])
          : sql.unsafe<ColumnRow>(`SELECT name, type, pk FROM pragma_table_info(?, ?)`, [parts.table, parts.schema])
      }
    })
  })

