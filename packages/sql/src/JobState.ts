/**
 * The tables strata keeps its long-running work's state in: `strata_jobs` (one checkpoint per job:
 * cursor, counters, state) and `strata_rejects` (rows a job could not convert, once per row).
 * Used by the BackfillRunner and the LegacyImport. Every function runs on the caller's
 * connection, so calling it inside `sql.withTransaction` makes it part of that transaction
 * (a batch's writes and its checkpoint commit together or not at all).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Timestamp } from "@strata/core"
import { Effect, Option } from "effect"
import * as Database from "./Database.js"

/** Where a job stands: `running` (resumable), `paused` (stopped at a batch boundary), `done` (not re-scanned). */
export type JobState = "running" | "paused" | "done"

/** A job's saved progress. */
export interface Checkpoint {
  readonly job: string
  /** Opaque text (see `encodeKeyCursor`); `null` before the first batch. */
  readonly cursor: string | null
  readonly processed: number
  readonly updated: number
  readonly rejected: number
  readonly state: JobState
  readonly startedAtMs: number
  readonly updatedAtMs: number
}

/** What a batch saves. */
export interface CheckpointUpdate {
  readonly cursor: string | null
  readonly processed: number
  readonly updated: number
  readonly rejected: number
  readonly state: JobState
}

/** A row a job could not convert. */
export interface Reject {
  readonly rowKey: string
  readonly reason: string
}

/** A recorded reject, as read back. */
export interface RecordedReject extends Reject {
  readonly job: string
  readonly atMs: number
}

/**
 * Creates `strata_jobs` and `strata_rejects` if they do not exist (re-runnable, and safe when two
 * processes start at once: on PostgreSQL concurrent `CREATE TABLE IF NOT EXISTS` can still collide
 * in the catalog, so creation is serialised by a transaction-scoped advisory lock).
 */
export const ensureTables: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const pg = (yield* Database.dialect) === "pg"
  const bigint = pg ? "BIGINT" : "INTEGER"
  const create = Effect.gen(function*() {
    if (pg) yield* sql.unsafe(`SELECT pg_advisory_xact_lock(hashtext('strata.jobState.ensureTables'))`)
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS strata_jobs (
  job TEXT PRIMARY KEY,
  cursor TEXT,
  processed ${bigint} NOT NULL DEFAULT 0,
  updated ${bigint} NOT NULL DEFAULT 0,
  rejected ${bigint} NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done')),
  started_at_ms ${bigint} NOT NULL,
  updated_at_ms ${bigint} NOT NULL
)`
    )
    yield* sql.unsafe(
      `CREATE TABLE IF NOT EXISTS strata_rejects (
  job TEXT NOT NULL,
  row_key TEXT NOT NULL,
  reason TEXT NOT NULL,
  at_ms ${bigint} NOT NULL,
  PRIMARY KEY (job, row_key)
)`
    )
  })
  yield* pg ? sql.withTransaction(create) : create
})

interface CheckpointRow {
  readonly job: string
  readonly cursor: string | null
  readonly processed: number | string
  readonly updated: number | string
  readonly rejected: number | string
  readonly state: string
  readonly started_at_ms: number | string
  readonly updated_at_ms: number | string
}

// node-postgres returns BIGINT as text; our counters and epoch ms are safe integers.
const toCheckpoint = (row: CheckpointRow): Checkpoint => ({
  job: row.job,
  cursor: row.cursor,
  processed: Number(row.processed),
  updated: Number(row.updated),
  rejected: Number(row.rejected),
  state: row.state as JobState,
  startedAtMs: Number(row.started_at_ms),
  updatedAtMs: Number(row.updated_at_ms)
})

/** The saved checkpoint of `job`, if it ever ran. */
export const loadCheckpoint = (job: string): Effect.Effect<Option.Option<Checkpoint>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<CheckpointRow>`SELECT job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms
      FROM strata_jobs WHERE job = ${job}`
    return Option.map(Option.fromNullable(rows[0]), toCheckpoint)
  })

/** Every saved checkpoint, by job name. */
export const loadCheckpoints: Effect.Effect<ReadonlyArray<Checkpoint>, SqlError, SqlClient.SqlClient> = Effect.gen(
  function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<CheckpointRow>`SELECT job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms
      FROM strata_jobs ORDER BY job`
    return rows.map(toCheckpoint)
  }
)

/**
 * Claims `job`'s checkpoint for the caller's transaction and returns it as saved, creating it
 * (`running`, counters 0, no cursor) when the job has none. The claim holds until the
 * transaction ends: on PostgreSQL the row's lock (`INSERT … ON CONFLICT DO NOTHING`, then
 * `SELECT … FOR UPDATE`), on SQLite the database's write lock, which that INSERT takes before
 * anything is read (a read first would fail with SQLITE_BUSY_SNAPSHOT when another process
 * commits in between). Concurrent runs of one job then take turns batch by batch, each going on
 * from the cursor and counters the previous one saved, instead of redoing a batch or overwriting
 * counters. Run it first in each batch's transaction.
 */
export const claimCheckpoint = (job: string): Effect.Effect<Checkpoint, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`INSERT INTO strata_jobs (job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms)
      VALUES (${job}, NULL, 0, 0, 0, 'running', ${now}, ${now}) ON CONFLICT (job) DO NOTHING`
    const rows = (yield* Database.dialect) === "pg"
      ? yield* sql<CheckpointRow>`SELECT job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms
          FROM strata_jobs WHERE job = ${job} FOR UPDATE`
      : yield* sql<CheckpointRow>`SELECT job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms
          FROM strata_jobs WHERE job = ${job}`
    return toCheckpoint(rows[0]!)
  })

/**
 * Saves `job`'s checkpoint (insert or replace; `started_at_ms` is kept from the first save),
 * stamped with the `Clock`. Run it inside the batch's transaction.
 */
export const saveCheckpoint = (job: string, update: CheckpointUpdate): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`INSERT INTO strata_jobs (job, cursor, processed, updated, rejected, state, started_at_ms, updated_at_ms)
      VALUES (${job}, ${update.cursor}, ${update.processed}, ${update.updated}, ${update.rejected}, ${update.state}, ${now}, ${now})
      ON CONFLICT (job) DO UPDATE SET
        cursor = excluded.cursor,
        processed = excluded.processed,
        updated = excluded.updated,
        rejected = excluded.rejected,
        state = excluded.state,
        updated_at_ms = excluded.updated_at_ms`
  })

/** Sets only the state of an existing checkpoint (e.g. `paused` on interruption); no-op when there is none. */
export const setState = (job: string, state: JobState): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`UPDATE strata_jobs SET state = ${state}, updated_at_ms = ${now} WHERE job = ${job}`
  })

/** Marks a running job `paused` (it stopped at a batch boundary); a `done` job stays done. */
export const pauseJob = (job: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`UPDATE strata_jobs SET state = 'paused', updated_at_ms = ${now} WHERE job = ${job} AND state = 'running'`
  })

// Well under SQLite's 32,766 bound parameters per statement (4 per row).
const rejectsPerStatement = 500

/**
 * Records rejects once per `(job, row_key)`: a row already recorded keeps its first reason and time.
 * Returns how many were new. Run it inside the batch's transaction.
 */
export const recordRejects = (
  job: string,
  rejects: ReadonlyArray<Reject>,
  atMs: number
): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    let inserted = 0
    for (let start = 0; start < rejects.length; start += rejectsPerStatement) {
      const chunk = rejects.slice(start, start + rejectsPerStatement)
      const rows = yield* sql<{ row_key: string }>`INSERT INTO strata_rejects ${
        sql.insert(chunk.map((r) => ({ job, row_key: r.rowKey, reason: r.reason, at_ms: atMs })))
      } ON CONFLICT (job, row_key) DO NOTHING RETURNING row_key`
      inserted += rows.length
    }
    return inserted
  })

/** How many rejects `job` has recorded. */
export const rejectCount = (job: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM strata_rejects WHERE job = ${job}`
    return Number(rows[0]?.n ?? 0)
  })

/** Up to `limit` of `job`'s rejects, in row-key order. */
export const loadRejects = (
  job: string,
  limit: number
): Effect.Effect<ReadonlyArray<RecordedReject>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ job: string; row_key: string; reason: string; at_ms: number | string }>`
      SELECT job, row_key, reason, at_ms FROM strata_rejects WHERE job = ${job} ORDER BY row_key LIMIT ${limit}`
    return rows.map((r) => ({ job: r.job, rowKey: r.row_key, reason: r.reason, atMs: Number(r.at_ms) }))
  })

/** Forgets `job`: its checkpoint and its rejects (a restart re-scans and re-records them). */
export const resetJob = (job: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DELETE FROM strata_rejects WHERE job = ${job}`
    yield* sql`DELETE FROM strata_jobs WHERE job = ${job}`
  })

/** A batching key's value, stored with its type so it reads back as what it was. */
export type KeyValue = number | bigint | string

/** `KeyValue` → cursor text: `i:<digits>` for integers, `t:<text>` for text. */
export const encodeKeyCursor = (value: KeyValue): string =>
  typeof value === "string" ? `t:${value}` : `i:${typeof value === "bigint" ? value.toString() : String(Math.trunc(value))}`

/** Decimal integer text (`-?\d+`) as a `KeyValue`: a number when it is a safe integer, else a `bigint`, never rounded. */
export const integerKey = (digits: string): KeyValue => {
  const big = BigInt(digits)
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
}

/** Cursor text → `KeyValue` (integers beyond 2^53 come back as `bigint`); `undefined` for text it did not write. */
export const decodeKeyCursor = (text: string): KeyValue | undefined => {
  if (text.startsWith("t:")) return text.slice(2)
  if (text.startsWith("i:") && /^-?\d+$/.test(text.slice(2))) return integerKey(text.slice(2))
  return undefined
}
