/**
 * `strata_migrations`: one row per applied migration per plan. Every query is sent unprepared:
 * @effect/sql's SQLite prepare cache remembers a failed prepare (e.g. "no such table" before the
 * table exists) for minutes, and the Migrator's statements are one-offs anyway.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { unprepared } from "./unprepared.js"

/** The history table's name. */
export const tableName = "strata_migrations"

/** A recorded migration, numbers parsed at the edge (node-postgres returns BIGINT as text). */
export interface HistoryRow {
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly appliedAtMs: number
  /** `null` for a baselined migration: marked applied, never run by strata. */
  readonly durationMs: number | null
}

const createStatement = (dialect: "sqlite" | "pg"): string => {
  const integer = dialect === "pg" ? "BIGINT" : "INTEGER"
  return `CREATE TABLE IF NOT EXISTS ${tableName} (
  plan TEXT NOT NULL,
  id ${integer} NOT NULL,
  name TEXT NOT NULL,
  checksum TEXT NOT NULL,
  applied_at_ms ${integer} NOT NULL,
  duration_ms ${integer},
  PRIMARY KEY (plan, id)
)`
}

/** Whether the table exists (on PostgreSQL: in the current `search_path`). */
export const exists = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg"): Effect.Effect<boolean, SqlError> =>
  Effect.map(
    dialect === "pg"
      ? unprepared(sql`SELECT to_regclass(${tableName}) IS NOT NULL AS present`)
      : unprepared(sql`SELECT count(*) > 0 AS present FROM sqlite_master WHERE type = 'table' AND name = ${tableName}`),
    (rows) => {
      const present = (rows[0] as { readonly present?: unknown } | undefined)?.present
      return present === true || Number(present) === 1
    }
  )

/** Creates the table if missing (run inside the Migrator's locked transaction). */
export const create = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg"): Effect.Effect<void, SqlError> =>
  Effect.asVoid(unprepared(sql.unsafe(createStatement(dialect))))

const toRow = (row: Record<string, unknown>): HistoryRow => ({
  id: Number(row["id"]),
  name: String(row["name"]),
  checksum: String(row["checksum"]),
  appliedAtMs: Number(row["applied_at_ms"]),
  durationMs: row["duration_ms"] != null ? Number(row["duration_ms"]) : null
})

/** Every row of a plan, by id. */
export const read = (sql: SqlClient.SqlClient, plan: string): Effect.Effect<ReadonlyArray<HistoryRow>, SqlError> =>
  Effect.map(
    unprepared(
      sql`SELECT id, name, checksum, applied_at_ms, duration_ms FROM ${sql(tableName)} WHERE plan = ${plan} ORDER BY id`
    ),
    (rows) => rows.map(toRow)
  )

/** One row, if recorded. */
export const find = (
  sql: SqlClient.SqlClient,
  plan: string,
  id: number
): Effect.Effect<HistoryRow | undefined, SqlError> =>
  Effect.map(
    unprepared(
      sql`SELECT id, name, checksum, applied_at_ms, duration_ms FROM ${sql(tableName)} WHERE plan = ${plan} AND id = ${id}`
    ),
    (rows) => (rows[0] !== undefined ? toRow(rows[0]) : undefined)
  )

/** Records a migration as applied. */
export const insert = (
  sql: SqlClient.SqlClient,
  plan: string,
  row: HistoryRow
): Effect.Effect<void, SqlError> =>
  Effect.asVoid(
    unprepared(
      sql`INSERT INTO ${sql(tableName)} (plan, id, name, checksum, applied_at_ms, duration_ms) VALUES (${plan}, ${row.id}, ${row.name}, ${row.checksum}, ${row.appliedAtMs}, ${row.durationMs})`
    )
  )
