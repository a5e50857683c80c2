/**
 * The database drivers, loaded when a database of their kind is opened. They are optional peer
 * dependencies of @strata/sql: an app that only uses SQLite never installs the PostgreSQL driver,
 * and the other way round, so neither may be imported at module load.
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type Pg from "pg"

/** The SQLite driver's modules. */
export interface SqliteDriver {
  readonly SqliteClient: typeof SqliteClient
}

/** The PostgreSQL driver's modules (node-postgres for its type parsers). */
export interface PgDriver {
  readonly PgClient: typeof PgClient
  readonly Pg: typeof Pg
}

/** Imports the SQLite driver. */
export const importSqlite = async (): Promise<SqliteDriver> => ({
  SqliteClient: await import("@effect/sql-sqlite-node/SqliteClient")
})

/** Imports the PostgreSQL driver. */
export const importPg = async (): Promise<PgDriver> => {
  const [PgClientModule, PgModule] = await Promise.all([import("@effect/sql-pg/PgClient"), import("pg")])
  return { PgClient: PgClientModule, Pg: PgModule.default }
}
