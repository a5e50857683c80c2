/**
 * Puts the demo's legacy data into a database, and recognises a database an earlier demo made.
 *
 * The demo only ever writes to an empty database or to one it marked itself (table
 * `strata_demo`); re-running it resets the tables it owns and seeds again, so every run shows
 * the whole story from the same starting point. Any other non-empty database is refused: the
 * demo never drops or fills tables it did not create.
 *
 * @since 0.1.0
 */
import { ChatPlan } from "@strata/chat"
import { Plans, Timestamp } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect, Option, Schema } from "effect"
import { SqlClient } from "@effect/sql/SqlClient"
import type * as LegacyData from "./LegacyData.js"
import type * as LegacySessions from "./LegacySessions.js"

/**
 * The table that marks a database as the demo's, with what it was seeded from.
 *
 * @since 0.1.0
 */
export const markerTable = "strata_demo"

/**
 * The database has tables, and no earlier demo made them.
 *
 * @since 0.1.0
 */
export class NotADemoDatabase extends Schema.TaggedError<NotADemoDatabase>()("NotADemoDatabase", {
  database: Schema.String,
  tables: Schema.Array(Schema.String)
}) {
  override get message(): string {
    const shown = this.tables.slice(0, 5).join(", ") + (this.tables.length > 5 ? `, … (${this.tables.length} tables)` : "")
    return `${this.database} is not empty (${shown}) and was not created by 'strata demo'; ` +
      `run the demo on a new database, e.g. strata demo --db ./demo.db`
  }
}

/**
 * What an earlier demo left: its seed and size.
 *
 * @since 0.1.0
 */
export interface Marker {
  readonly seed: number
  readonly rows: number
  readonly seededAtMs: number
}

/**
 * The tables in the current schema (SQLite: the main database; Postgres: `current_schema()`).
 *
 * @since 0.1.0
 */
export const existingTables: Effect.Effect<ReadonlyArray<string>, unknown, SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient
  const dialect = yield* Database.dialect
  const rows = dialect === "sqlite"
    ? yield* sql<{ readonly name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
    : yield* sql<{ readonly name: string }>`SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
  return rows.map((row) => row.name)
})

/** The marker of an earlier demo, if `tables` (the database's) has one. */
const markerIn = (tables: ReadonlyArray<string>): Effect.Effect<Option.Option<Marker>, unknown, SqlClient> => Effect.gen(function*() {
  if (!tables.includes(markerTable)) return Option.none()
  const sql = yield* SqlClient
  const rows = yield* sql<{ readonly seed: number | string; readonly rows: number | string; readonly seeded_at_ms: number | string }>`
    SELECT seed, rows, seeded_at_ms FROM ${sql(markerTable)}`
  return Option.map(Option.fromNullable(rows[0]), (row) => ({
    seed: Number(row.seed),
    rows: Number(row.rows),
    seededAtMs: Number(row.seeded_at_ms)
  }))
})

/**
 * Drops the given tables (those that exist), children first on Postgres via CASCADE.
 *
 * @since 0.1.0
 */
export const dropTables = (tables: ReadonlyArray<string>): Effect.Effect<void, unknown, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const dialect = yield* Database.dialect
    const existing = new Set(yield* existingTables)
    for (const table of tables) {
      if (!existing.has(table)) continue
      yield* dialect === "pg" ? sql`DROP TABLE IF EXISTS ${sql(table)} CASCADE` : sql`DROP TABLE IF EXISTS ${sql(table)}`
    }
  })

/**
 * Fails with `NotADemoDatabase` when the database has tables but no demo marker.
 *
 * @since 0.1.0
 */
export const ensureEmptyOrDemo = (database: string): Effect.Effect<Option.Option<Marker>, unknown, SqlClient> =>
  Effect.gen(function*() {
    const tables = yield* existingTables
    const marker = yield* markerIn(tables)
    if (Option.isSome(marker)) return marker
    if (tables.length > 0) return yield* new NotADemoDatabase({ database, tables })
    return Option.none()
  })

// Keeps every batch's parameters well under SQLite's 32,766 and Postgres' 65,535 bound variables.
const insertBatchRows = 500

/**
 * Inserts rows into `table`, in batches of one short transaction each.
 *
 * @since 0.1.0
 */
export const insertRows = (
  table: string,
  rows: ReadonlyArray<Readonly<Record<string, LegacyData.Cell>>>
): Effect.Effect<void, unknown, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    for (let start = 0; start < rows.length; start += insertBatchRows) {
      const batch = rows.slice(start, start + insertBatchRows)
      yield* sql`INSERT INTO ${sql(table)} ${sql.insert(batch as Array<Record<string, LegacyData.Cell>>)}`
    }
  })

/**
 * Writes the marker, creates the legacy AgentOS tables and fills them with `tables`.
 *
 * @since 0.1.0
 */
export const seedAgentos = (
  tables: ReadonlyArray<LegacyData.Table>,
  options: LegacyData.Options
): Effect.Effect<void, unknown, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const dialect = yield* Database.dialect
    const bigint = dialect === "pg" ? "BIGINT" : "INTEGER"
    // The marker goes first: a seed cut short still leaves a database the next run recognises and resets.
    const now = yield* Timestamp.now
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${markerTable} (seed ${bigint} NOT NULL, rows ${bigint} NOT NULL, seeded_at_ms ${bigint} NOT NULL)`)
      yield* sql`DELETE FROM ${sql(markerTable)}`
      yield* sql`INSERT INTO ${sql(markerTable)} ${sql.insert({ seed: options.seed, rows: options.rows, seeded_at_ms: now })}`
    }))
    for (const statement of Plans.agentosLegacyStatements(dialect)) yield* sql.unsafe(statement)
    for (const table of tables) {
      yield* insertRows(table.table, table.rows.map((row) => row.values))
    }
  })

/**
 * Creates the legacy two-table session store under its original names (`sessions`,
 * `agent_contexts`) and fills it with `dataset`.
 *
 * @since 0.1.0
 */
export const seedLegacySessions = (dataset: LegacySessions.Dataset): Effect.Effect<void, unknown, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const dialect = yield* Database.dialect
    for (const statement of ChatPlan.legacyStatements(dialect)) yield* sql.unsafe(statement)
    yield* insertRows("sessions", dataset.sessions.map((s) => s.values))
    yield* insertRows("agent_contexts", dataset.agentContexts.map((c) => c.values))
  })
