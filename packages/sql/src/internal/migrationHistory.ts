/**
 * `strata_migrations`: one row per applied migration per plan, in the table `Database.strataTable`
 * names (qualified when the app sets `Database.StrataSchema`). Every query runs on the `SqlClient`
 * in context (the Migrator provides strata's transform-free client) and is sent unprepared:
 * @effect/sql's SQLite prepare cache remembers a failed prepare (e.g. "no such table" before the
 * table exists) for minutes, and the Migrator's statements are one-offs anyway.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Identifier } from "@strata/core"
import { Effect } from "effect"
import { tableColumns } from "../Catalog.js"
import { unprepared } from "./unprepared.js"

/** A recorded migration, numbers parsed at the edge (node-postgres returns BIGINT as text). */
export interface HistoryRow {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly appliedAtMs: number
  /** `null` for a baselined migration: marked applied, never run by strata. */
  readonly durationMs: number | null
}

const createStatement = (table: Identifier.TableName, dialect: "sqlite" | "pg"): string => {
  const integer = dialect === "pg" ? "BIGINT" : "INTEGER"
  return `CREATE TABLE IF NOT EXISTS ${Identifier.quoteTable(table)} (
  plan TEXT NOT NULL,
  id ${integer} NOT NULL,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at_ms ${integer} NOT NULL,
  duration_ms ${integer},
  PRIMARY KEY (plan, id)
)`
}

/** Whether the table exists (unqualified: where the connection resolves it, PostgreSQL's `search_path`). */
export const exists = (table: Identifier.TableName): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.map(tableColumns(table), (columns) => columns.length > 0)

/** Creates the table if missing (run inside the Migrator's locked transaction). */
export const create = (
  table: Identifier.TableName,
  dialect: "sqlite" | "pg"
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.asVoid(unprepared(sql.unsafe(createStatement(table, dialect)))))

const toRow = (row: Record<string, unknown>): HistoryRow => ({
  id: Number(row["id"]),
  name: String(row["name"]),
  checksum: String(row["checksum"]),
  appliedAtMs: Number(row["applied_at_ms"]),
  durationMs: row["duration_ms"] != null ? Number(row["duration_ms"]) : null
})

/** The table's name as SQL text, spliced as a literal: never renamed by a query-name transform. */
const named = (sql: SqlClient.SqlClient, table: Identifier.TableName) => sql.literal(Identifier.quoteTable(table))

const selectList = "id, name, checksum, applied_at_ms, duration_ms"

/** Every row of a plan, by id. */
export const read = (
  table: Identifier.TableName,
  plan: string
): Effect.Effect<ReadonlyArray<HistoryRow>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(sql`SELECT ${sql.literal(selectList)} FROM ${named(sql, table)} WHERE plan = ${plan} ORDER BY id`),
      (rows) => rows.map(toRow)
    ))

/** One row, if recorded. */
export const find = (
  table: Identifier.TableName,
  plan: string,
  id: number
): Effect.Effect<HistoryRow | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      unprepared(sql`SELECT ${sql.literal(selectList)} FROM ${named(sql, table)} WHERE plan = ${plan} AND id = ${id}`),
      (rows) => (rows[0] !== undefined ? toRow(rows[0]) : undefined)
    ))

/** Records a migration as applied. */
export const insert = (
  table: Identifier.TableName,
  plan: string,
  row: HistoryRow
): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(
      unprepared(
        sql`INSERT INTO ${named(sql, table)} (plan, id, name, checksum, applied_at_ms, duration_ms) VALUES (${plan}, ${row.id}, ${row.name}, ${row.checksum}, ${row.appliedAtMs}, ${row.durationMs})`
      )
    ))
