/**
 * The tables strata keeps its long-running work's state in: `strata_jobs` (one checkpoint per job:
 * cursor, counters, state) and `strata_rejects` (rows a job could not convert, once per row).
 * Used by the BackfillRunner and the LegacyImport. Both are named through `Database.strataTable`,
 * so `Database.StrataSchema` moves them. Every function runs its statements on the caller's
 * connection without the app client's name transforms (`Database.withStrataClient`), so calling it
 * inside `sql.withTransaction` makes it part of that transaction (a batch's writes and its
 * checkpoint commit together or not at all).
 *
 * A job's counters account for every row it walked:
 * `processed` (walked) = `updated` + `rejected` + `alreadySet` + `outOfScope`.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Compile, Identifier, Timestamp } from "@strata/core"
import { Effect, Option, Schema } from "effect"
import { tableColumns } from "./Catalog.js"
import * as Database from "./Database.js"

/**
 * Where a job stands: `running` (resumable), `paused` (stopped at a batch boundary), `done` (not re-scanned).
 *
 * @since 0.2.0
 * @category models
 */
export type JobState = "running" | "paused" | "done"

/**
 * A job's counters. Every row the job walked is in exactly one of the last four.
 *
 * @since 0.2.0
 * @category models
 */
export interface Counts {
  /** Rows the cursor walked (`strata_jobs.processed`). */
  readonly processed: number
  /** Rows that got at least one value written (`updated`). */
  readonly updated: number
  /** Rows that could not be converted, recorded in `strata_rejects` (`rejected`). */
  readonly rejected: number
  /** Rows in the job's scope whose targets were already set: nothing to write (`already_set`). */
  readonly alreadySet: number
  /** Rows outside the job's scope: the row filter does not match, or there is no source value (`out_of_scope`). */
  readonly outOfScope: number
}

/**
 * A key range a job stepped over because a row in it stayed locked (PostgreSQL's batch lock
 * timeout): the rows after `from` up to `to` (inclusive), both cursor texts (`from` `null`: from the
 * table's start). The job comes back to it and is not done while it has one.
 *
 * @since 0.2.0
 * @category models
 */
export interface SkippedRange {
  readonly from: string | null
  readonly to: string
}

/**
 * A job's saved progress.
 *
 * @since 0.2.0
 * @category models
 */
export interface Checkpoint extends Counts {
  readonly job: string
  /** Opaque text (see `encodeKeyCursor`); `null` before the first batch. */
  readonly cursor: string | null
  /** Key ranges stepped over, not yet walked, in key order (`strata_jobs.skipped`, JSON). */
  readonly skipped: ReadonlyArray<SkippedRange>
  readonly state: JobState
  readonly startedAtMs: number
  readonly updatedAtMs: number
}

/**
 * What a batch saves.
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckpointUpdate extends Counts {
  readonly cursor: string | null
  readonly state: JobState
  /** The ranges still to come back to; left as saved when absent. */
  readonly skipped?: ReadonlyArray<SkippedRange> | undefined
}

/**
 * No counts: a job before its first batch.
 *
 * @since 0.2.0
 * @category constructors
 */
export const zeroCounts: Counts = { processed: 0, updated: 0, rejected: 0, alreadySet: 0, outOfScope: 0 }

/**
 * Whether every walked row is accounted for: processed = updated + rejected + alreadySet + outOfScope.
 *
 * @since 0.2.0
 * @category counts
 */
export const reconciles = (counts: Counts): boolean =>
  counts.processed === counts.updated + counts.rejected + counts.alreadySet + counts.outOfScope

/**
 * The counts of two runs of work added up.
 *
 * @since 0.2.0
 * @category counts
 */
export const addCounts = (a: Counts, b: Counts): Counts => ({
  processed: a.processed + b.processed,
  updated: a.updated + b.updated,
  rejected: a.rejected + b.rejected,
  alreadySet: a.alreadySet + b.alreadySet,
  outOfScope: a.outOfScope + b.outOfScope
})

/**
 * Only the counters of a checkpoint or an event.
 *
 * @since 0.2.0
 * @category counts
 */
export const countsOf = (c: Counts): Counts => ({
  processed: c.processed,
  updated: c.updated,
  rejected: c.rejected,
  alreadySet: c.alreadySet,
  outOfScope: c.outOfScope
})

/**
 * A row a job could not convert.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reject {
  readonly rowKey: string
  readonly reason: string
}

/**
 * A recorded reject, as read back.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedReject extends Reject {
  readonly job: string
  readonly atMs: number
}

const jobsTable = Effect.map(Database.strataTable("strata_jobs"), Identifier.quoteTable)
const rejectsTable = Effect.map(Database.strataTable("strata_rejects"), Identifier.quoteTable)

// Counters added after the first release: `ensureTables` adds them to a `strata_jobs` of an earlier version.
const addedCounters = ["already_set", "out_of_scope"] as const

/**
 * Creates `strata_jobs` and `strata_rejects` if they do not exist, and upgrades a `strata_jobs`
 * created by an earlier version in place (adds the `already_set` and `out_of_scope` counters, 0 in
 * existing rows; such a row's counts then do not reconcile, and the BackfillRunner scans that job
 * again rather than trust them). Re-runnable, and safe when two processes start at once: on
 * PostgreSQL creation is serialised by a transaction-scoped advisory lock (concurrent
 * `CREATE TABLE IF NOT EXISTS` can still collide in the catalogue); on SQLite a column another
 * process added first is taken as added.
 *
 * @since 0.1.0
 * @category tables
 */
export const ensureTables: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Database.withStrataClient(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pg = (yield* Database.dialect) === "pg"
    const bigint = pg ? "BIGINT" : "INTEGER"
    const jobsName = yield* Database.strataTable("strata_jobs")
    const jobs = Identifier.quoteTable(jobsName)
    const rejects = yield* rejectsTable
    const addCounter = (column: string) =>
      sql.unsafe(`ALTER TABLE ${jobs} ADD COLUMN ${column} ${bigint} NOT NULL DEFAULT 0`).pipe(
        Effect.catchAll((error) =>
          // Another process may have added it between our catalogue read and this statement.
          Effect.flatMap(tableColumns(jobsName), (columns) => columns.some((c) => c.name === column) ? Effect.void : Effect.fail(error))
        )
      )
    const addSkipped = sql.unsafe(`ALTER TABLE ${jobs} ADD COLUMN skipped TEXT`).pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(tableColumns(jobsName), (columns) => columns.some((c) => c.name === "skipped") ? Effect.void : Effect.fail(error))
      )
    )
    const create = Effect.gen(function*() {
      yield* sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${jobs} (
  job TEXT PRIMARY KEY,
  cursor TEXT,
  processed ${bigint} NOT NULL DEFAULT 0,
  updated ${bigint} NOT NULL DEFAULT 0,
  rejected ${bigint} NOT NULL DEFAULT 0,
  already_set ${bigint} NOT NULL DEFAULT 0,
  out_of_scope ${bigint} NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done')),
  started_at_ms ${bigint} NOT NULL,
  updated_at_ms ${bigint} NOT NULL,
  skipped TEXT
)`
      )
      yield* sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${rejects} (
  job TEXT NOT NULL,
  row_key TEXT NOT NULL,
  reason TEXT NOT NULL,
  at_ms ${bigint} NOT NULL,
  PRIMARY KEY (job, row_key)
)`
      )
      const present = new Set((yield* tableColumns(jobsName)).map((c) => c.name))
      for (const column of addedCounters) {
        if (!present.has(column)) yield* addCounter(column)
      }
      if (!present.has("skipped")) yield* addSkipped
    })
    yield* Database.createInTurn("strata.jobState.ensureTables", create)
  })
)

interface CheckpointRow {
  readonly job: string
  readonly cursor: string | null
  readonly processed: number | string
  readonly updated: number | string
  readonly rejected: number | string
  readonly already_set: number | string
  readonly out_of_scope: number | string
  readonly state: string
  readonly started_at_ms: number | string
  readonly updated_at_ms: number | string
  readonly skipped: string | null
}

const checkpointColumns = "job, cursor, processed, updated, rejected, already_set, out_of_scope, state, started_at_ms, updated_at_ms, skipped"

const decodeSkipped = (text: string | null): ReadonlyArray<SkippedRange> => {
  if (text === null || text === "") return []
  const parsed: unknown = JSON.parse(text)
  return Array.isArray(parsed) ? parsed.map((r: { from: string | null; to: string }) => ({ from: r.from, to: r.to })) : []
}

// node-postgres returns BIGINT as text; our counters and epoch ms are safe integers.
const toCheckpoint = (row: CheckpointRow): Checkpoint => ({
  job: row.job,
  cursor: row.cursor,
  processed: Number(row.processed),
  updated: Number(row.updated),
  rejected: Number(row.rejected),
  alreadySet: Number(row.already_set),
  outOfScope: Number(row.out_of_scope),
  skipped: decodeSkipped(row.skipped),
  state: row.state as JobState,
  startedAtMs: Number(row.started_at_ms),
  updatedAtMs: Number(row.updated_at_ms)
})

/**
 * The saved checkpoint of `job`, if it ever ran.
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const loadCheckpoint = (job: string): Effect.Effect<Option.Option<Checkpoint>, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<CheckpointRow>`SELECT ${sql.literal(checkpointColumns)} FROM ${sql.literal(yield* jobsTable)} WHERE job = ${job}`
    return Option.map(Option.fromNullable(rows[0]), toCheckpoint)
  }))

/**
 * Every saved checkpoint, by job name.
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const loadCheckpoints: Effect.Effect<ReadonlyArray<Checkpoint>, SqlError, SqlClient.SqlClient> = Database.withStrataClient(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<CheckpointRow>`SELECT ${sql.literal(checkpointColumns)} FROM ${sql.literal(yield* jobsTable)} ORDER BY job`
    return rows.map(toCheckpoint)
  })
)

/**
 * Claims `job`'s checkpoint for the caller's transaction and returns it as saved, creating it
 * (`running`, counters 0, no cursor) when the job has none. The claim holds until the transaction
 * ends: on PostgreSQL the row's lock (`SELECT … FOR UPDATE`, which waits for another claimant's
 * commit and then returns the row as that commit left it; only a job with no row yet first gets
 * one by `INSERT … ON CONFLICT DO NOTHING`), on SQLite the database's write lock, which that
 * INSERT takes before anything is read (a read first would fail with SQLITE_BUSY_SNAPSHOT when
 * another process commits in between, and another writer could slip in between the read and the
 * batch's writes). Concurrent runs of one job then take turns batch by batch, each going on from
 * the cursor and counters the previous one saved, instead of redoing a batch or overwriting
 * counters. Run it first in each batch's transaction.
 *
 * `pgSettings` (PostgreSQL): transaction settings (`set_config(name, value, true)`, e.g. a batch's
 * `lock_timeout`) applied in the same statement once the row is locked, not before: a claimant
 * waiting its turn is not subject to them, and the batch saves the round trip of a statement of
 * its own. Given on SQLite, they are refused (`InvalidClaimSettings`), since SQLite has no such settings.
 *
 * @since 0.2.0
 * @category checkpoints
 */
export const claimCheckpoint: {
  (job: string): Effect.Effect<Checkpoint, SqlError, SqlClient.SqlClient>
  (job: string, pgSettings: Readonly<Record<string, string>>): Effect.Effect<Checkpoint, SqlError | InvalidClaimSettings, SqlClient.SqlClient>
} = (job: string, pgSettings?: Readonly<Record<string, string>>) =>
  // Without settings nothing is refused: the first signature's error type holds.
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = yield* jobsTable
    const settings = Object.entries(pgSettings ?? {})
    if ((yield* Database.dialect) === "pg") {
      const claim = sql.unsafe<CheckpointRow>(
        pgClaimSql(table, "$1", settings.map((_, i) => [`$${2 * i + 2}`, `$${2 * i + 3}`] as const)),
        [job, ...settings.flat()]
      )
      // One statement per batch once the row exists (every batch after the job's first).
      const locked = yield* claim
      if (locked[0] !== undefined) return toCheckpoint(locked[0])
      yield* startJob(job)
      const created = yield* claim
      return toCheckpoint(created[0]!)
    }
    if (settings.length > 0) return yield* new InvalidClaimSettings({ settings: settings.map(([name]) => name) })
    yield* startJob(job)
    const rows = yield* sql.unsafe<CheckpointRow>(`SELECT ${checkpointColumns} FROM ${table} WHERE job = ?`, [job])
    return toCheckpoint(rows[0]!)
  })) as Effect.Effect<Checkpoint, SqlError, SqlClient.SqlClient>

// The settings are computed by the outer query from the locked row, so they take effect only once
// the lock is granted (a CTE's row is locked before the outer query sees it).
const pgClaimSql = (table: string, job: string, settings: ReadonlyArray<readonly [name: string, value: string]>): string =>
  `WITH claimed AS MATERIALIZED (SELECT ${checkpointColumns} FROM ${table} WHERE job = ${job} FOR UPDATE) SELECT claimed.*` +
  settings.map(([name, value], i) => `, set_config(${name}, ${value}, true) AS __strata_setting_${i}`).join("") +
  " FROM claimed"

/**
 * PostgreSQL: `claimCheckpoint` of a job whose checkpoint row exists, as SQL text with its values
 * inline, for a message of several statements where no parameter can be bound (a batch sends it
 * with its BEGIN, saving a round trip); `claimedCheckpoint` reads its rows. Without a row (none yet,
 * or deleted meanwhile) it claims nothing: `claimCheckpoint` then creates one.
 *
 * @since 0.2.0
 * @category checkpoints
 */
export const pgClaimText = (job: string, pgSettings: Readonly<Record<string, string>> = {}): Effect.Effect<string> =>
  Effect.map(jobsTable, (table) =>
    pgClaimSql(
      table,
      Compile.literal(job, "pg"),
      Object.entries(pgSettings).map(([name, value]) => [Compile.literal(name, "pg"), Compile.literal(value, "pg")] as const)
    ))

/**
 * The checkpoint `pgClaimText`'s rows claimed, if the job's row was there.
 *
 * @since 0.2.0
 * @category checkpoints
 */
export const claimedCheckpoint = (rows: ReadonlyArray<unknown>): Option.Option<Checkpoint> =>
  rows[0] === undefined ? Option.none() : Option.some(toCheckpoint(rows[0] as CheckpointRow))

/**
 * `claimCheckpoint` was given PostgreSQL transaction settings on SQLite, which has none.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidClaimSettings extends Schema.TaggedError<InvalidClaimSettings>()("InvalidClaimSettings", {
  settings: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `claimCheckpoint: PostgreSQL settings (${this.settings.join(", ")}) given on SQLite, which has no transaction settings`
  }
}

/**
 * Creates `job`'s checkpoint (no cursor, no counts, `running`) unless it exists: a job another
 * process already advanced is left as it is.
 *
 * @since 0.2.0
 * @category checkpoints
 */
export const startJob = (job: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`INSERT INTO ${sql.literal(yield* jobsTable)} (${sql.literal(checkpointColumns)})
      VALUES (${job}, NULL, 0, 0, 0, 0, 0, 'running', ${now}, ${now}, NULL)
      ON CONFLICT (job) DO NOTHING`
  }))

/**
 * Saves `job`'s checkpoint (insert or replace; `started_at_ms` is kept from the first save),
 * stamped with the `Clock`. Run it inside the batch's transaction, after `claimCheckpoint`, so the
 * counts it saves extend the ones it claimed.
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const saveCheckpoint = (job: string, update: CheckpointUpdate): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    const skipped = update.skipped === undefined || update.skipped.length === 0 ? null : JSON.stringify(update.skipped)
    // Without ranges given, the saved ones stay.
    const setSkipped = sql.literal(update.skipped === undefined ? "" : "skipped = excluded.skipped,")
    yield* sql`INSERT INTO ${sql.literal(yield* jobsTable)} (${sql.literal(checkpointColumns)})
      VALUES (${job}, ${update.cursor}, ${update.processed}, ${update.updated}, ${update.rejected}, ${update.alreadySet},
        ${update.outOfScope}, ${update.state}, ${now}, ${now}, ${skipped})
      ON CONFLICT (job) DO UPDATE SET ${setSkipped}
        cursor = excluded.cursor,
        processed = excluded.processed,
        updated = excluded.updated,
        rejected = excluded.rejected,
        already_set = excluded.already_set,
        out_of_scope = excluded.out_of_scope,
        state = excluded.state,
        updated_at_ms = excluded.updated_at_ms`
  }))

/**
 * Sets only the state of an existing checkpoint (e.g. `paused` on interruption); no-op when there is none.
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const setState = (job: string, state: JobState): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`UPDATE ${sql.literal(yield* jobsTable)} SET state = ${state}, updated_at_ms = ${now} WHERE job = ${job}`
  }))

/**
 * Marks a running job `paused` (it stopped at a batch boundary); a `done` job stays done.
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const pauseJob = (job: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = yield* Timestamp.now
    yield* sql`UPDATE ${sql.literal(yield* jobsTable)} SET state = 'paused', updated_at_ms = ${now} WHERE job = ${job} AND state = 'running'`
  }))

// Well under SQLite's 32,766 bound parameters per statement (4 per row).
const rejectsPerStatement = 500

/**
 * Records rejects once per `(job, row_key)`: a row already recorded keeps its first reason and time.
 * Returns how many were new. Run it inside the batch's transaction.
 *
 * @since 0.1.0
 * @category rejects
 */
export const recordRejects = (
  job: string,
  rejects: ReadonlyArray<Reject>,
  atMs: number
): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = yield* rejectsTable
    const pg = (yield* Database.dialect) === "pg"
    let inserted = 0
    for (let start = 0; start < rejects.length; start += rejectsPerStatement) {
      const chunk = rejects.slice(start, start + rejectsPerStatement)
      const tuples = chunk.map((_, i) => pg ? `($${4 * i + 1}, $${4 * i + 2}, $${4 * i + 3}, $${4 * i + 4})` : "(?, ?, ?, ?)")
      const rows = yield* sql.unsafe<{ row_key: string }>(
        `INSERT INTO ${table} (job, row_key, reason, at_ms) VALUES ${tuples.join(", ")} ON CONFLICT (job, row_key) DO NOTHING RETURNING row_key`,
        chunk.flatMap((r) => [job, r.rowKey, r.reason, atMs])
      )
      inserted += rows.length
    }
    return inserted
  }))

/**
 * How many rejects `job` has recorded.
 *
 * @since 0.1.0
 * @category rejects
 */
export const rejectCount = (job: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.literal(yield* rejectsTable)} WHERE job = ${job}`
    return Number(rows[0]?.n ?? 0)
  }))

/**
 * Up to `limit` of `job`'s rejects, in row-key order.
 *
 * @since 0.1.0
 * @category rejects
 */
export const loadRejects = (
  job: string,
  limit: number
): Effect.Effect<ReadonlyArray<RecordedReject>, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ job: string; row_key: string; reason: string; at_ms: number | string }>`
      SELECT job, row_key, reason, at_ms FROM ${sql.literal(yield* rejectsTable)} WHERE job = ${job} ORDER BY row_key LIMIT ${limit}`
    return rows.map((r) => ({ job: r.job, rowKey: r.row_key, reason: r.reason, atMs: Number(r.at_ms) }))
  }))

/**
 * Forgets `job`: its checkpoint and its rejects (a restart re-scans and re-records them).
 *
 * @since 0.1.0
 * @category checkpoints
 */
export const resetJob = (job: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DELETE FROM ${sql.literal(yield* rejectsTable)} WHERE job = ${job}`
    yield* sql`DELETE FROM ${sql.literal(yield* jobsTable)} WHERE job = ${job}`
  }))

/**
 * A batching key's value (an integer, possibly beyond 2^53, or text), stored with its type so it
 * reads back as what it was. The one key type of the job tables, the runner and the write-back.
 *
 * @since 0.1.0
 * @category keys
 */
export type KeyValue = number | bigint | string

/**
 * `KeyValue` → cursor text: `i:<digits>` for integers, `t:<text>` for text.
 *
 * @since 0.1.0
 * @category keys
 */
export const encodeKeyCursor = (value: KeyValue): string =>
  typeof value === "string" ? `t:${value}` : `i:${typeof value === "bigint" ? value.toString() : String(Math.trunc(value))}`

/**
 * SQL computing `encodeKeyCursor` of the key value `expression` (of a key walked as `kind`), for a
 * statement that advances a checkpoint itself: the same text the function writes.
 *
 * @since 0.2.0
 * @category keys
 */
export const keyCursorSql = (expression: string, kind: "integer" | "text"): string =>
  `(${kind === "integer" ? "'i:'" : "'t:'"} || (${expression})::text)`

/**
 * Decimal integer text (`-?\d+`) as a `KeyValue`: a number when it is a safe integer, else a `bigint`, never rounded.
 *
 * @since 0.1.0
 * @category keys
 */
export const integerKey = (digits: string): KeyValue => {
  const big = BigInt(digits)
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
}

/**
 * Cursor text → `KeyValue` (integers beyond 2^53 come back as `bigint`); `undefined` for text it did not write.
 *
 * @since 0.1.0
 * @category keys
 */
export const decodeKeyCursor = (text: string): KeyValue | undefined => {
  if (text.startsWith("t:")) return text.slice(2)
  if (text.startsWith("i:") && /^-?\d+$/.test(text.slice(2))) return integerKey(text.slice(2))
  return undefined
}
