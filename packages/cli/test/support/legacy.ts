/**
 * Direct database access for the CLI tests: seed the demo's legacy data without running the CLI,
 * and read the state the CLI left behind with real queries.
 */
import { Database } from "@strata/sql"
import { Effect } from "effect"
import * as LegacyData from "../../src/demo/LegacyData.js"
import * as Seed from "../../src/demo/Seed.js"
import { SqlClient } from "@effect/sql/SqlClient"

/** Runs `body` with a `SqlClient` on `url`, closed afterwards. */
export const withDatabase = <A>(url: string, body: Effect.Effect<A, unknown, SqlClient>): Promise<A> =>
  Effect.runPromise(body.pipe(Effect.provide(Database.layer({ url, maxConnections: 1 }))) as Effect.Effect<A>)

/** Rows of a query (numbers come back as numbers on both engines). */
export const query = <Row extends object = Record<string, unknown>>(url: string, statement: string, params: ReadonlyArray<unknown> = []): Promise<ReadonlyArray<Row>> =>
  withDatabase(url, Effect.flatMap(SqlClient, (sql) => sql.unsafe<Row>(statement, params as Array<unknown>)))

/** Runs statements. */
export const execute = (url: string, ...statements: ReadonlyArray<string>): Promise<void> =>
  withDatabase(url, Effect.flatMap(SqlClient, (sql) => Effect.forEach(statements, (s) => sql.unsafe(s), { discard: true })))

/** The demo's generated data for these options, as the CLI would write it. */
export const generate = (rows: number, seed = LegacyData.defaultSeed) => LegacyData.generate({ rows, seed })

/** Writes the legacy AgentOS tables with the demo's data (no migration, no backfill), as `strata demo` does first. */
export const seedLegacy = (url: string, rows: number, seed = LegacyData.defaultSeed): Promise<ReadonlyArray<LegacyData.Table>> => {
  const tables = LegacyData.generate({ rows, seed })
  return withDatabase(url, Effect.as(Seed.seedAgentos(tables, { rows, seed }), tables))
}

/**
 * Every target column's value per row key, read back: `table → key → column → value`, for the
 * columns the generator has expectations for.
 */
export const readTargets = async (
  url: string,
  tables: ReadonlyArray<LegacyData.Table>
): Promise<Record<string, Record<string, Record<string, number | null>>>> => {
  const result: Record<string, Record<string, Record<string, number | null>>> = {}
  for (const table of tables) {
    const columns = Object.keys(table.rows[0]?.expected ?? {})
    const rows = await query<Record<string, unknown>>(
      url,
      `SELECT ${[table.key, ...columns].map((c) => `"${c}"`).join(", ")} FROM "${table.table}"`
    )
    const byKey: Record<string, Record<string, number | null>> = {}
    for (const row of rows) {
      byKey[String(row[table.key])] = Object.fromEntries(
        columns.map((c) => [c, row[c] === null || row[c] === undefined ? null : Number(row[c])])
      )
    }
    result[table.table] = byKey
  }
  return result
}

/** What `readTargets` must return after a complete backfill of `tables`. */
export const expectedTargets = (
  tables: ReadonlyArray<LegacyData.Table>
): Record<string, Record<string, Record<string, number | null>>> =>
  Object.fromEntries(tables.map((table) => [
    table.table,
    Object.fromEntries(table.rows.map((row) => [String(row.values[table.key]), { ...row.expected }]))
  ]))
