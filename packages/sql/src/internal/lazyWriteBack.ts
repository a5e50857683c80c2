/**
 * The SQL side of LazyMigration's write-back: a table's key, found by the job tables' one rule
 * (`jobTable.findKey`), the one conditional multi-row UPDATE (`keyedUpdate`) that writes fixed
 * values without ever overwriting a non-NULL target, and the writer that runs it on the app's client
 * (PostgreSQL, and SQLite when the write-back cannot have a thread of its own: `lazyWorkerWriter`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Backfill, Identifier } from "@strata/core"
import { Data, Duration, Effect, Either } from "effect"
import { tableColumns } from "../Catalog.js"
import type { KeyValue } from "../JobState.js"
import { type BatchKey, findKey } from "./jobTable.js"
import { bindablePgType, keyedUpdate, type KeyedValues, type WriteStatement } from "./keyedUpdate.js"

export type { KeyedValues, KeyValue, WriteStatement }

/**
 * How rows of a table are addressed by the write-back.
 * - `Column`: a declared key or the table's single-column primary key.
 * - `Rowid`: a SQLite rowid table without such a key; only rows that carry `rowid` (the caller
 *   selected it) can be written back.
 * - `None`: no usable key (composite or missing primary key on PostgreSQL, a WITHOUT ROWID table on
 *   SQLite, a key of a type that cannot be bound); rows are fixed in memory only.
 */
export type TableKey =
  | { readonly _tag: "Column"; readonly column: Identifier.Identifier; readonly key: BatchKey }
  | { readonly _tag: "Rowid"; readonly key: BatchKey }
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

/**
 * The value of the row's key (under `field`, the key column's or `rowid`'s name in the app's rows), or
 * undefined when the row cannot be addressed (NULL, blobs, not selected).
 */
export const keyValueOf = (field: string, row: Readonly<Record<string, unknown>>): KeyValue | undefined => {
  const value = row[field]
  if (typeof value === "string" || typeof value === "bigint") return value
  if (typeof value === "number" && Number.isFinite(value)) return value
  return undefined
}

/**
 * Finds the key of `table` by the job tables' rule (`findKey`: the declared key, else the
 * single-column primary key of a key type, else SQLite's rowid). Fails with `TableKeyUnknown`
 * when the table or the declared key column does not exist yet.
 */
export const discoverKey = (
  dialect: "sqlite" | "pg",
  table: Identifier.TableName,
  declared: Identifier.Identifier | undefined
): Effect.Effect<TableKey, SqlError | TableKeyUnknown, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const columns = yield* tableColumns(table)
    if (columns.length === 0) return yield* new TableKeyUnknown({ table, reason: "no such table" })
    if (declared !== undefined && !columns.some((c) => c.name === declared)) {
      return yield* new TableKeyUnknown({ table, reason: `declared key column ${declared} does not exist` })
    }
    const found = yield* findKey(table, declared, columns, dialect)
    if (Either.isLeft(found)) return { _tag: "None", reason: found.left } as const
    const key = found.right
    if (dialect === "pg" && !bindablePgType(key.type)) {
      return { _tag: "None", reason: `key column ${key.name} has type ${key.type}, which the write-back cannot bind` } as const
    }
    return key.origin === "rowid"
      ? { _tag: "Rowid", key } as const
      : { _tag: "Column", column: key.name as Identifier.Identifier, key } as const
  })

/**
 * One UPDATE for many rows of one table (`keyedUpdate`): each target becomes `COALESCE(target, fixed)`
 * and a row is touched only if some target it fixes is still NULL. `RETURNING` the key counts the rows written.
 */
export const writeStatement = (
  dialect: "sqlite" | "pg",
  table: Identifier.TableName,
  key: Exclude<TableKey, { readonly _tag: "None" }>,
  targets: ReadonlyArray<Backfill.Target>,
  rows: ReadonlyArray<KeyedValues>
): WriteStatement =>
  keyedUpdate(
    dialect,
    table,
    { sql: key.key.sql, type: key.key.type },
    // The type the plan declares: the catalogue read at discovery may predate a column renamed back since.
    targets.map((target) => ({ target, catalogType: undefined })),
    rows
  )

/** What one write-back statement did: the rows it wrote, and how long it ran (and so held its locks). */
export interface Written {
  readonly written: number
  readonly ms: number
}

/** Where the write-back's statements run: one statement at a time, never inside a caller's transaction. */
export interface Writer {
  /** Runs one write statement (`writeStatement`'s) and tells how many rows it wrote, and in how long. */
  readonly run: (statement: WriteStatement) => Effect.Effect<Written, unknown>
}

/**
 * The write-back on the app's own client, in its own short transaction (the caller runs it with any
 * transaction of the reader's taken out of the context). PostgreSQL: a pooled connection with
 * `lock_timeout`. SQLite: the one connection, held for the batch so the short `busy_timeout` set
 * for it applies to no one else's statement, and restored even when the update fails; better-sqlite3
 * waits for locks synchronously, so this blocks every fiber of the process for up to `timeoutMs`.
 *
 * Unprepared: the SQLite client caches prepared statements, failed prepares included (a write-back that
 * failed on a renamed column would keep failing after the rename is undone).
 */
export const clientWriter = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg", timeoutMs: number): Writer => ({
  run: (statement) =>
    Effect.map(
      Effect.timed(runOnClient(sql, dialect, timeoutMs, statement)),
      ([took, written]) => ({ written, ms: Duration.toMillis(took) })
    )
})

// The statement's transaction, which holds the write lock (SQLite) or the rows' locks (PostgreSQL) throughout.
const runOnClient = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg", timeoutMs: number, statement: WriteStatement) => {
  const update = Effect.map(sql.unsafe(statement.sql, statement.params).unprepared, (rows) => rows.length)
  if (dialect === "pg") {
    return sql.withTransaction(Effect.zipRight(sql.unsafe(`SET LOCAL lock_timeout = ${timeoutMs}`).unprepared, update))
  }
  const shortBusyTimeout = Effect.flatMap(
    sql.unsafe<{ readonly timeout: number }>("PRAGMA busy_timeout").unprepared,
    (rows) => Effect.as(sql.unsafe(`PRAGMA busy_timeout = ${timeoutMs}`).unprepared, rows[0]?.timeout)
  )
  const restore = (previous: number | undefined) =>
    previous === undefined
      ? Effect.void
      : Effect.ignore(sql.unsafe(`PRAGMA busy_timeout = ${Math.trunc(Number(previous))}`).unprepared)
  return sql.withTransaction(Effect.acquireUseRelease(shortBusyTimeout, () => update, restore))
}
