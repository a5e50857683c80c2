/**
 * Runs a plan's backfill jobs on a live database: keyset batches over the table's key, each batch
 * one short transaction that also saves the cursor and the counts in `strata_jobs`, so a crash or
 * an interrupt resumes from the last committed batch and a finished job is not scanned again.
 *
 * Values come from the core's pure row functions (the lazy path and the app use the same ones);
 * timestamp text of the exact `YYYY-MM-DD HH:MM:SS` shape may be converted inside the `UPDATE`
 * (`FastPath`, proved equal to `Timestamp.parse` on both engines), every other row goes through
 * JavaScript in the same transaction. Writes are conditional (`target IS NULL`): a non-NULL target
 * is never overwritten. Rows that cannot be converted are recorded once in `strata_rejects` and
 * the cursor moves past them.
 *
 * Every row a job walks is counted once: walked (`processed`) = `updated` + `rejected` +
 * `alreadySet` + `outOfScope`, stored in `strata_jobs`. A job ends `done` only when its counts
 * reconcile; a batch whose writes touch fewer rows than it converted, or whose rows lack a column
 * it selected, fails with a typed error and leaves the table as it was.
 *
 * On PostgreSQL a batch on the fast path is one statement after the checkpoint claim
 * (`internal/pgFastBatch.ts`): it walks the range, converts, advances the checkpoint and returns
 * the rows it converted as they were, which are checked against the row function before the batch
 * commits. Batch transactions there commit with `synchronous_commit = off` (no wait for the WAL
 * flush): a batch is idempotent and its checkpoint commits with its rows, so a server crash that
 * loses the last commits loses rows and checkpoint together, and the job redoes those batches; any
 * later commit that does wait for the disk flushes every batch before it, so nothing durable can
 * depend on a lost one.
 *
 * A PostgreSQL batch runs under `lock_timeout` (`Options.batchLockTimeout`): one that meets a row an
 * app transaction holds is rolled back (releasing the rows it had written, which the app may want
 * next) and tried again at a quarter of its size; at one row its key is stepped over, saved in the
 * checkpoint (`JobState.SkippedRange`), and walked again once the cursor reaches the table's end.
 *
 * On SQLite the runner checkpoints the WAL after each batch (`PRAGMA wal_checkpoint(PASSIVE)`), so
 * the copy into the database file is strata's work between its batches, not the app's at a commit
 * that happens to cross `wal_autocheckpoint`.
 *
 * Statements run on the app's client without its name transforms (`Database.strataClient`), and
 * strata's own tables are named through `Database.strataTable`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backfill, Checks, Identifier, Options as OptionCheck, type Plan, Progress, Timestamp } from "@strata/core"
import { Clock, Context, Data, Duration, Effect, Either, Layer, Option, Queue, Schema, Stream, Take } from "effect"
import * as Database from "./Database.js"
import { batchSizer } from "./internal/batchSize.js"
import { buildAfterJob, type BuiltIndex, type IndexBuildError } from "./internal/indexBuilds.js"
import { confirmFastPath } from "./internal/fastPathSelfTest.js"
import {
  afterCursor,
  allSetSql,
  inRange,
  inspectJob,
  keyParam,
  JobDatabaseError,
  jobDatabaseError,
  type JobTable,
  keyValue,
  MigrationNotApplied,
  NoBatchKey,
  outOfScopeSql,
  Params,
  pendingSql,
  selectList,
  SourceColumnsMissing,
  TableNotFound,
  UnknownJob
} from "./internal/jobTable.js"
import { keyedUpdate, returnedKey } from "./internal/keyedUpdate.js"
import { fastBatchStatement, readFastBatch } from "./internal/pgFastBatch.js"
import { withTransactionOpening } from "./internal/transaction.js"
import * as WalCheckpoints from "./internal/walCheckpoints.js"
import * as WriterTurns from "./internal/writerTurns.js"
import * as JobState from "./JobState.js"
import { failureText, isConnectionLost } from "./SqlErrors.js"

export {
  /**
   * The database failed while a job ran.
   * @since 0.1.0
   * @category errors
   */
  JobDatabaseError,
  /**
   * A job's target columns are missing: its migration is not applied.
   * @since 0.1.0
   * @category errors
   */
  MigrationNotApplied,
  /**
   * A job's table has no key to walk in batches.
   * @since 0.1.0
   * @category errors
   */
  NoBatchKey,
  /**
   * Columns a job reads are missing.
   * @since 0.1.0
   * @category errors
   */
  SourceColumnsMissing,
  /**
   * A job's table does not exist.
   * @since 0.1.0
   * @category errors
   */
  TableNotFound,
  /**
   * `jobs` named a job the plan does not have.
   * @since 0.1.0
   * @category errors
   */
  UnknownJob
}

/**
 * An option is not allowed (e.g. `batchSize: 0`, `pause: -5`); nothing ran.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidBackfillOptions extends Schema.TaggedError<InvalidBackfillOptions>()("InvalidBackfillOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid backfill option ${this.option}: ${this.reason}`
  }
}

/**
 * `run` or `stream` was called inside an open transaction (the app's `withTransaction`). A backfill
 * commits batch by batch, so that locks are held for one batch at a time, and builds a finished
 * job's indexes on connections of its own (PostgreSQL: `CREATE INDEX CONCURRENTLY`, which waits for
 * every older transaction to end): inside a transaction it would hold every row it wrote until that
 * transaction ends, and its index build would wait for that transaction, which waits for it. Nothing ran.
 *
 * @since 0.2.0
 * @category errors
 */
export class RunInsideTransaction extends Schema.TaggedError<RunInsideTransaction>()("RunInsideTransaction", {}) {
  override get message(): string {
    return "BackfillRunner was called inside an open transaction: a backfill commits batch by batch and builds its " +
      "indexes on connections of its own, so run it outside any transaction"
  }
}

/**
 * A job's saved cursor is not one strata wrote (the checkpoint row was edited by hand).
 *
 * @since 0.1.0
 * @category errors
 */
export class CorruptCheckpoint extends Schema.TaggedError<CorruptCheckpoint>()("CorruptCheckpoint", {
  job: Schema.String,
  cursor: Schema.String
}) {
  override get message(): string {
    return `Job ${this.job}: saved cursor ${JSON.stringify(this.cursor)} is unreadable; restart the job (restart: true) to scan it again`
  }
}

/**
 * A batch's UPDATE wrote fewer rows than the batch converted, and the rows it missed still have a
 * NULL target (no one else set them): the rows were not found by their key. The batch was rolled
 * back; the table is as it was.
 *
 * @since 0.2.0
 * @category errors
 */
export class BatchWriteMismatch extends Schema.TaggedError<BatchWriteMismatch>()("BatchWriteMismatch", {
  job: Schema.String,
  table: Schema.String,
  converted: Schema.Number,
  written: Schema.Number,
  /** Up to 10 keys of rows that were converted but not written. */
  keys: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Job ${this.job}: converted ${this.converted} rows of ${this.table} but the UPDATE wrote ${this.written}; ` +
      `not written: ${this.keys.join(", ")}. Nothing of the batch was kept`
  }
}

/**
 * A row the database returned lacks a column strata selected (`undefined`, which is not NULL):
 * something between the driver and strata renamed it (a result-name transform). Nothing of the
 * batch was kept.
 *
 * @since 0.2.0
 * @category errors
 */
export class ColumnNotInRow extends Schema.TaggedError<ColumnNotInRow>()("ColumnNotInRow", {
  job: Schema.String,
  table: Schema.String,
  column: Schema.String,
  /** The columns the row had. */
  found: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `Job ${this.job}: a row read from ${this.table} has no column ${this.column} (it has ${this.found.join(", ")}); ` +
      `is the client renaming result columns?`
  }
}

/**
 * A job's counts do not account for every row it walked (walked ≠ updated + rejected + alreadySet +
 * outOfScope); the job is not marked done.
 *
 * @since 0.2.0
 * @category errors
 */
export class CountsDoNotReconcile extends Schema.TaggedError<CountsDoNotReconcile>()("CountsDoNotReconcile", {
  job: Schema.String,
  processed: Schema.Number,
  updated: Schema.Number,
  rejected: Schema.Number,
  alreadySet: Schema.Number,
  outOfScope: Schema.Number
}) {
  override get message(): string {
    return `Job ${this.job}: walked ${this.processed} rows but counted ${this.updated} updated + ${this.rejected} rejected + ` +
      `${this.alreadySet} already set + ${this.outOfScope} out of scope`
  }
}

/**
 * Everything `run` and `stream` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type BackfillError =
  | UnknownJob
  | TableNotFound
  | MigrationNotApplied
  | SourceColumnsMissing
  | NoBatchKey
  | JobDatabaseError
  | InvalidBackfillOptions
  | CorruptCheckpoint
  | BatchWriteMismatch
  | ColumnNotInRow
  | CountsDoNotReconcile
  | IndexBuildError
  | RunInsideTransaction

/**
 * Options of `run` and `stream`. All optional; a value given but not allowed is refused with
 * `InvalidBackfillOptions` naming it (never clamped).
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Rows in the first batch (the key range it covers); adapted afterwards. Default 1,000 (within the bounds). */
  readonly batchSize?: number | undefined
  /** Bounds of the adapted batch size (positive integers, min ≤ max; `batchSize` must lie within them). Default 10 and 100,000. */
  readonly minBatchSize?: number | undefined
  readonly maxBatchSize?: number | undefined
  /**
   * The longest a batch transaction should hold its locks. The size adapts after every batch,
   * aiming at a third of it (batch times jitter 2-3x on a busy machine): it follows the cost per row
   * smoothed over the last batches, shrinks at once in proportion when a batch takes over half of
   * it, and grows at most twofold a batch. Default 50 ms.
   */
  readonly maxBatchTime?: Duration.DurationInput | undefined
  /** Keep the batch size fixed at `batchSize` (the bounds do not apply). Default false. */
  readonly fixedBatchSize?: boolean | undefined
  /**
   * PostgreSQL: the longest a batch waits for a row lock another transaction holds (the batch
   * transaction's `lock_timeout`), so an app transaction that holds a row never has strata's batch,
   * and the rows the batch already locked, queued behind it. A batch that times out is rolled back
   * and tried again smaller; at one row it steps over that key range (recorded in the checkpoint)
   * and comes back to it once the rest of the table is walked; the job is not done before. Default 100 ms.
   */
  readonly batchLockTimeout?: Duration.DurationInput | undefined
  /** Pause between batches, giving other writers (and autovacuum) room. Default none. */
  readonly pause?: Duration.DurationInput | undefined
  /**
   * SQLite: the longest the runner leaves the write lock free between two batches while another
   * connection is writing, so that connection gets its turn (SQLite's lock has no queue: a waiting
   * writer sleeps in its busy handler and a runner that went straight on would nearly always win).
   * A turn ends as soon as the other writer has caught up; alone, the runner waits only for a short
   * probe twice a second. Default 15 ms; zero gives no turns.
   */
  readonly writerTurn?: Duration.DurationInput | undefined
  /**
   * Read and convert every pending row, count would-be updates and rejects, write nothing (not
   * even a checkpoint). Scans each selected job's whole table, whatever its saved state.
   */
  readonly dryRun?: boolean | undefined
  /** Only these jobs (by name), in plan order. Default: all jobs of the plan. */
  readonly jobs?: ReadonlyArray<string> | undefined
  /** Forget the saved checkpoints and rejects of the selected jobs and scan them again. */
  readonly restart?: boolean | undefined
  /** Convert `YYYY-MM-DD HH:MM:SS` text in SQL (see `FastPath`). Default true; false sends every row through JavaScript. */
  readonly fastPath?: boolean | undefined
}

/**
 * A progress report, emitted when a job starts, after every batch, and when it ends.
 * Counters are the job's totals over all runs (a resumed job continues its counts):
 * `processed` = `updated` + `rejected` + `alreadySet` + `outOfScope`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProgressEvent extends JobState.Counts {
  readonly job: string
  readonly table: string
  /**
   * `started`, `batch`, `completed`, `skipped` (already done, not scanned again), or `indexed`:
   * after `completed`, the job's deferred target indexes were built (`indexes`; on SQLite an
   * index build holds the write lock for its whole duration).
   */
  readonly phase: "started" | "batch" | "completed" | "skipped" | "indexed"
  readonly dryRun: boolean
  /** Rows the job will have walked when done: an estimate while the table changes. */
  readonly total: number
  readonly percent: number
  /** This run's rate; `undefined` before time has passed. */
  readonly rowsPerSecond: number | undefined
  readonly etaMs: number | undefined
  /** Rows in the last batch's key range, and how long its transaction took. */
  readonly batchSize: number
  readonly batchMs: number
  /** The size the next batch will try. */
  readonly nextBatchSize: number
  /** Whether the job has finished (its last event, or the last before `indexed`). */
  readonly done: boolean
  /** `indexed` only: the indexes built, with how long each build took. */
  readonly indexes?: ReadonlyArray<BuiltIndex> | undefined
  /**
   * On a job's last events (`completed`, `skipped`, `indexed`): the SQL fast path in this run, as
   * `JobSummary.fastPath`. `off` means it failed a check and the rest of the job went through
   * JavaScript, several times slower: worth a look at the warning logged with it.
   */
  readonly fastPath?: "none" | "used" | "off" | undefined
}

/**
 * What one job's run did.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobSummary extends JobState.Counts {
  readonly job: string
  readonly table: string
  /** `completed` (walked to the end), `alreadyDone` (not scanned again), `dryRun`. Counts are the job's totals over all runs (dry run: of this scan). */
  readonly outcome: "completed" | "alreadyDone" | "dryRun"
  /** This run's batches, wall time and longest batch transaction. */
  readonly batches: number
  readonly elapsedMs: number
  readonly longestBatchMs: number
  /**
   * The SQL fast path in this run: `none` (the job has none here, it was switched off by the option,
   * or a dry run), `used` (checked and used to the end), `off` (it failed a check: the engine's
   * self-test, a disagreement with the row function on a real row, or a failing statement; logged,
   * and the rest of the job went through JavaScript).
   */
  readonly fastPath: "none" | "used" | "off"
  /**
   * The indexes of the job's targets built when it finished (deferred by the migration until the
   * backfill was done, see `Compile.IndexTiming`), with how long each build took.
   */
  readonly indexes?: ReadonlyArray<BuiltIndex> | undefined
}

/**
 * Runs the backfill jobs of the plan given to `layer`/`make` (see the module documentation).
 *
 * @since 0.2.0
 * @category models
 */
export interface BackfillRunner {
  /** Runs the selected jobs to the end (or to an interrupt) and returns one summary per job. */
  readonly run: (options?: Options) => Effect.Effect<ReadonlyArray<JobSummary>, BackfillError>
  /**
   * The same run as a stream of progress events (a `started`, one per batch, and a `completed`
   * or `skipped` per job). The run starts when the stream is pulled; stopping the stream
   * (interrupt, `take`) stops it at a batch boundary with the checkpoint saved.
   */
  readonly stream: (options?: Options) => Stream.Stream<ProgressEvent, BackfillError>
}

/**
 * The BackfillRunner service.
 *
 * @since 0.1.0
 * @category tags
 */
export const BackfillRunner = Context.GenericTag<BackfillRunner>("@strata/sql/BackfillRunner")

interface Settings {
  readonly batchSize: number
  readonly bounds: { readonly min: number; readonly max: number }
  readonly maxBatchMs: number
  readonly fixedBatchSize: boolean
  readonly batchLockTimeout: Duration.Duration
  readonly pause: Duration.Duration
  readonly writerTurnMs: number
  readonly dryRun: boolean
  readonly restart: boolean
  readonly fastPath: boolean
}

const invalidOption = (option: string, reason: string) => new InvalidBackfillOptions({ option, reason })

const validate = (options: Options): Effect.Effect<Settings, InvalidBackfillOptions> =>
  Effect.gen(function*() {
    const count = (name: string, value: number | undefined, fallback: number) =>
      OptionCheck.resolve(name, value, fallback, OptionCheck.positiveCount, invalidOption)
    const min = yield* count("minBatchSize", options.minBatchSize, 10)
    const max = yield* count("maxBatchSize", options.maxBatchSize, 100_000)
    if (min > max) return yield* invalidOption("minBatchSize", `must be at most maxBatchSize (${max}), got ${min}`)
    const fixedBatchSize = options.fixedBatchSize ?? false
    // The default first size follows the bounds the caller chose; a size the caller gave is taken as given.
    const batchSize = yield* count("batchSize", options.batchSize, Math.min(max, Math.max(min, 1000)))
    if (!fixedBatchSize && (batchSize < min || batchSize > max)) {
      return yield* invalidOption("batchSize", `must lie within minBatchSize and maxBatchSize (${min} to ${max}), got ${batchSize}`)
    }
    const maxBatchTime = yield* OptionCheck.resolveDuration("maxBatchTime", options.maxBatchTime, Duration.millis(50), OptionCheck.positiveDuration, invalidOption)
    const pause = yield* OptionCheck.resolveDuration("pause", options.pause, Duration.zero, OptionCheck.nonNegativeDuration, invalidOption)
    const writerTurn = yield* OptionCheck.resolveDuration("writerTurn", options.writerTurn, Duration.millis(WriterTurns.defaultTurns.maxGapMs), OptionCheck.nonNegativeDuration, invalidOption)
    const batchLockTimeout = yield* OptionCheck.resolveDuration(
      "batchLockTimeout",
      options.batchLockTimeout,
      Duration.millis(100),
      OptionCheck.positiveDuration,
      invalidOption
    )
    return {
      batchSize,
      bounds: { min, max },
      maxBatchMs: Duration.toMillis(maxBatchTime),
      fixedBatchSize,
      batchLockTimeout,
      pause,
      writerTurnMs: Duration.toMillis(writerTurn),
      dryRun: options.dryRun ?? false,
      restart: options.restart ?? false,
      fastPath: options.fastPath ?? true
    }
  })

/**
 * The runner's check of `options` on its own (what `run` and `stream` refuse first), for callers
 * that check before they start anything, such as a command line.
 *
 * @since 0.2.0
 * @category options
 */
export const checkOptions = (options: Options): Effect.Effect<void, InvalidBackfillOptions> => Effect.asVoid(validate(options))

/** The plan's jobs selected by `names` (plan order), or `UnknownJob` naming the first unknown one. */
const selectJobs = (plan: Plan.Plan, names: ReadonlyArray<string> | undefined) => {
  const all = Backfill.jobs(plan)
  if (names === undefined) return Either.right(all)
  const unknown = names.find((name) => !all.some((job) => job.name === name))
  if (unknown !== undefined) return Either.left(new UnknownJob({ job: unknown, known: all.map((j) => j.name) }))
  return Either.right(all.filter((job) => names.includes(job.name)))
}

const elapsedMsSince = (startNanos: bigint) =>
  Effect.map(Clock.currentTimeNanos, (now) => Number(now - startNanos) / 1_000_000)

/**
 * A real macrotask boundary (`setImmediate`). better-sqlite3 runs every statement synchronously, so
 * a loop of SQLite batches never leaves the microtask queue: Node's signal handlers (SIGINT,
 * SIGTERM), which run from the event loop's poll phase, would wait for the whole job. One
 * `setImmediate` per batch passes through the poll phase without a timer's 1 ms minimum.
 */
const yieldToEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

const quotedTable = (table: JobTable) => Identifier.quoteTable(table.job.table)

/**
 * The job's SQL fast path on this engine, if it may be tried: it computes every target and its text
 * columns are text (PostgreSQL: `~` applies only there). It is then checked before and while it runs
 * (`checkFastPath`, `checkedFastUpdate`).
 */
const fastPathFor = (table: JobTable, enabled: boolean): Backfill.SqlFastPath | undefined => {
  const fast = enabled ? Backfill.fastPathOn(table.job, table.dialect) : undefined
  if (fast === undefined) return undefined
  if (table.dialect === "pg" && fast.textColumns.some((c) => !/^(text|character varying(\(\d+\))?)$/.test(table.columnTypes.get(c) ?? ""))) {
    return undefined
  }
  return fast
}

const targetColumns = (table: JobTable) => Backfill.targetColumns(table.job)

type Cursor = JobState.KeyValue | undefined

/** A column of a row strata read: `undefined` (absent, not NULL) is `ColumnNotInRow`. */
const columnOf = (table: JobTable, row: Readonly<Record<string, unknown>>, column: string) =>
  row[column] === undefined
    ? Effect.fail(new ColumnNotInRow({ job: table.job.name, table: table.job.table, column, found: Object.keys(row) }))
    : Effect.succeed(row[column])

interface KeyRange {
  /** The last key of the range (inclusive). */
  readonly end: JobState.KeyValue
  /** Whether the range reaches the end of the table. */
  readonly last: boolean
  /** Rows of the range, as they were before the batch wrote anything, outside the job's scope. */
  readonly outOfScope: number
  /** Rows of the range in the job's scope whose targets were all set before the batch wrote anything. */
  readonly alreadySet: number
  /** Rows in the range. */
  readonly rows: number
}

/**
 * The next key range of at most `size` rows after `cursor`, and how many of its rows need nothing
 * (counted before the batch writes): one statement that walks the range in key order once. None
 * when no rows are left.
 */
const nextRange = (table: JobTable, cursor: Cursor, size: number, bound?: JobState.KeyValue) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const t = quotedTable(table)
    const key = table.key.sql
    const outOfScope = outOfScopeSql(table, params)
    const after = bound === undefined ? afterCursor(table, params, cursor) : inRange(table, params, cursor, bound)
    const limit = params.bind(size)
    // Bound after the limit: SQLite's placeholders are positional, and this one comes last in the text.
    const upTo = bound === undefined ? "" : ` AND ${key} <= ${params.bind(keyParam(table, bound))}`
    const rangeRows = `SELECT ${key} AS k, CASE WHEN ${outOfScope} THEN 1 ELSE 0 END AS oos, ` +
      `CASE WHEN ${allSetSql(table)} THEN 1 ELSE 0 END AS allset FROM ${t} WHERE ${after} ORDER BY ${key} LIMIT ${limit}`
    const counts = `count(*) AS n, COALESCE(sum(oos), 0) AS oos, COALESCE(sum(CASE WHEN oos = 0 THEN allset ELSE 0 END), 0) AS allset`
    // Not EXISTS: PostgreSQL plans that as a sequential scan that passes every row before the range (quadratic).
    const more = (last: string) =>
      `CASE WHEN (SELECT ${key} FROM ${t} WHERE ${key} > ${last}${upTo} ORDER BY ${key} LIMIT 1) IS NOT NULL THEN 1 ELSE 0 END AS more`
    // SQLite: one pass over the range, its last key by max() (in the key's collation, as the walk's
    // order); the CTE form below materialised the range and sorted it twice for its last key.
    // PostgreSQL 15 has no max() for uuid: there the last key is read in key order.
    const lastKey = `(SELECT k FROM range_rows ORDER BY k DESC LIMIT 1)`
    const statement = table.dialect === "sqlite"
      ? `WITH r AS (SELECT max(k) AS k, ${counts} FROM (${rangeRows})) SELECT r.k, r.n, r.oos, r.allset, ${more("r.k")} FROM r`
      : `WITH range_rows AS (${rangeRows}) SELECT ${lastKey} AS k, ${counts}, ${more(lastKey)} FROM range_rows`
    const rows = yield* sql.unsafe<Record<string, unknown>>(statement, params.values)
    const row = rows[0] ?? {}
    const n = Number(yield* columnOf(table, row, "n"))
    if (n === 0) return Option.none<KeyRange>()
    return Option.some<KeyRange>({
      end: keyValue(table, yield* columnOf(table, row, "k")),
      last: Number(yield* columnOf(table, row, "more")) === 0,
      outOfScope: Number(yield* columnOf(table, row, "oos")),
      alreadySet: Number(yield* columnOf(table, row, "allset")),
      rows: n
    })
  })

/**
 * The pending rows of a key range, with the key as `__strata_key` and, with `guard`, whether the
 * row passes the fast path's guard as `__strata_guarded`.
 */
const pendingRows = (table: JobTable, cursor: Cursor, end: JobState.KeyValue, guard?: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const range = inRange(table, params, cursor, end)
    const shaped = guard === undefined ? "" : `, ${guard} AS __strata_guarded`
    return yield* sql.unsafe<Record<string, unknown>>(
      `SELECT ${selectList(table)}${shaped} FROM ${quotedTable(table)} WHERE ${range} AND ${pendingSql(table, params)} ORDER BY ${table.key.sql}`,
      params.values
    )
  })

interface Write {
  readonly key: JobState.KeyValue
  /** Per target, in `job.targets` order: the value to write, or null to leave the column as it is. */
  readonly values: ReadonlyArray<Backfill.Value | null>
}

interface Converted {
  readonly writes: ReadonlyArray<Write>
  readonly rejects: ReadonlyArray<JobState.Reject>
  /** Pending rows with nothing to write although some target is set. */
  readonly alreadySet: number
  /** Pending rows outside the scope after all: the filter does not match in JavaScript, or no source value. */
  readonly outOfScope: number
}

/** The columns of a pending row strata reads, each checked present on the first row. */
const checkColumns = (table: JobTable, rows: ReadonlyArray<Record<string, unknown>>) =>
  rows[0] === undefined
    ? Effect.void
    : Effect.forEach(["__strata_key", ...table.job.reads, ...targetColumns(table)], (c) => columnOf(table, rows[0]!, c), { discard: true })

/**
 * Runs the job's row function over pending rows: what to write (only into NULL targets), what to
 * reject, and which rows turn out to need nothing.
 */
const convertRows = (table: JobTable, rows: ReadonlyArray<Record<string, unknown>>): Converted => {
  const writes: Array<Write> = []
  const rejects: Array<JobState.Reject> = []
  let alreadySet = 0
  let outOfScope = 0
  const job = table.job
  for (const row of rows) {
    if (!Backfill.matchesFilter(job.filter, row)) {
      outOfScope++
      continue
    }
    const key = keyValue(table, row["__strata_key"])
    const converted = job.convert(row)
    if (Either.isLeft(converted)) {
      rejects.push({ rowKey: String(key), reason: `${converted.left.column}: ${converted.left.reason}` })
      continue
    }
    let any = false
    const values = job.targets.map(({ column }) => {
      const value = converted.right[column] ?? null
      if (value === null || row[column] != null) return null
      any = true
      return value
    })
    if (any) writes.push({ key, values })
    else if (job.targets.some(({ column }) => row[column] != null)) alreadySet++
    else outOfScope++
  }
  return { writes, rejects, alreadySet, outOfScope }
}

const changedRows = (raw: unknown): number => {
  if (raw !== null && typeof raw === "object") {
    if ("changes" in raw) return Number(raw.changes)
    if ("rowCount" in raw) return Number(raw.rowCount ?? 0)
  }
  return 0
}

/**
 * Writes converted values (`keyedUpdate`: only into targets still NULL) and returns how many rows
 * it wrote, and how many it found set by someone else meanwhile. Any other row not written is
 * `BatchWriteMismatch`: its key did not find it.
 */
const writeValues = (table: JobTable, writes: ReadonlyArray<Write>) =>
  Effect.gen(function*() {
    if (writes.length === 0) return { written: 0, setMeanwhile: 0 }
    const sql = yield* SqlClient.SqlClient
    const statement = keyedUpdate(
      table.dialect,
      table.job.table,
      { sql: table.key.sql, type: table.key.type },
      table.job.targets.map((target) => ({ target, catalogType: table.columnTypes.get(target.column) })),
      writes
    )
    const returned = yield* sql.unsafe<Record<string, unknown>>(statement.sql, statement.params)
    if (returned.length === writes.length) return { written: writes.length, setMeanwhile: 0 }
    const written = new Set<string>()
    for (const row of returned) written.add(String(keyValue(table, yield* columnOf(table, row, returnedKey))))
    const missed = writes.filter((w) => !written.has(String(w.key)))
    // Rows whose every value-bearing target is set now were written by someone else (the app): its value won.
    const stillMissing = yield* rowsStillMissing(table, missed)
    if (stillMissing.length > 0) {
      return yield* new BatchWriteMismatch({
        job: table.job.name,
        table: table.job.table,
        converted: writes.length,
        written: returned.length,
        keys: stillMissing.slice(0, 10).map((w) => String(w.key))
      })
    }
    return { written: returned.length, setMeanwhile: missed.length }
  })

/** Of `writes` the UPDATE did not touch, those whose row is gone or still has a NULL target it had a value for. */
const rowsStillMissing = (table: JobTable, writes: ReadonlyArray<Write>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const keys = writes.map((w) => (typeof w.key === "bigint" ? w.key.toString() : w.key))
    const targets = targetColumns(table).map((t, i) => `${Identifier.quote(t)} AS t${i}`).join(", ")
    const rows = table.dialect === "pg"
      ? yield* sql.unsafe<Record<string, unknown>>(
        `SELECT ${table.key.sql} AS k, ${targets} FROM ${quotedTable(table)} WHERE ${table.key.sql} = ANY($1::${table.key.type}[])`,
        [keys]
      )
      : yield* sql.unsafe<Record<string, unknown>>(
        `SELECT ${table.key.sql} AS k, ${targets} FROM ${quotedTable(table)} WHERE ${table.key.sql} IN (SELECT value FROM json_each(?))`,
        [JSON.stringify(keys)]
      )
    const now = new Map(rows.map((row) => [String(keyValue(table, row["k"])), row]))
    return writes.filter((w) => {
      const row = now.get(String(w.key))
      return row === undefined || w.values.some((value, i) => value !== null && row[`t${i}`] == null)
    })
  })

/**
 * Whether the fast `UPDATE` touches every pending row of its range, leaving a row it cannot convert
 * NULL (written NULL to NULL, still pending for JavaScript), instead of filtering on its guard. So
 * on SQLite when the fast path has a guard: the guard is true for every row the expressions convert,
 * so leaving it out of the WHERE changes only which rows are written NULL to NULL, and the expression
 * makes the guard's test itself; in the WHERE it ran twice per row, about 12% of the UPDATE (1M rows,
 * 4,000-row batches, six pairs). Without a guard the filter stays (all expressions NOT NULL: a row is
 * converted whole or left whole to JavaScript); on PostgreSQL too (a NULL-to-NULL write there is a new
 * row version).
 */
const touchesAllPending = (table: JobTable, fast: Backfill.SqlFastPath): boolean => table.dialect === "sqlite" && fast.guard !== undefined

/**
 * The fast path: converts the pending rows of the range inside one UPDATE. On SQLite with a guard it
 * touches every pending row, each expression once (see `touchesAllPending`); otherwise the rows the
 * cheap guard passes, also once each, or without a guard those whose expressions are all NOT NULL
 * (each then evaluated in the WHERE too). A touched row whose
 * expression is NULL (shaped text that is no real instant, `2024-02-30 10:00:00`, or on SQLite any
 * other text) gets NULL written over its NULL: no change, but SQL counts it, so the caller subtracts
 * those rows (still pending afterwards) from the count returned here.
 */
const fastUpdate = (table: JobTable, fast: Backfill.SqlFastPath, cursor: Cursor, end: JobState.KeyValue) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const t = quotedTable(table)
    const all = touchesAllPending(table, fast)
    // Filtered on its guard, a row's value need not test the guard again (see pgFastBatch).
    const underGuard = !all && fast.guard !== undefined
    const sets = fast.expressions.map(({ sql: expression, target, whenGuarded }) =>
      `${Identifier.quote(target)} = COALESCE(${t}.${Identifier.quote(target)}, (${underGuard ? whenGuarded ?? expression : expression}))`
    )
    const converts = all
      ? ""
      : ` AND ${fast.guard ?? fast.expressions.map(({ sql: expression }) => `(${expression}) IS NOT NULL`).join(" AND ")}`
    // Only rows in the job's scope: a row the filter leaves out is counted out of scope, never written.
    const raw = yield* sql.unsafe(
      `UPDATE ${t} SET ${sets.join(", ")} WHERE ${inRange(table, params, cursor, end)} AND ${pendingSql(table, params)}${converts}`,
      params.values
    ).raw
    return changedRows(raw)
  })

/** The fast path of a running job: `current` is cleared at its first failed check, for the rest of the job. */
interface FastPathState {
  current: Backfill.SqlFastPath | undefined
  /** Whether the job had a fast path to try. */
  readonly tried: boolean
}

/** Rows checked before a fast path is first used, and in every batch before its UPDATE. */
const sampleRows = 200
const spotCheckRows = 4

/**
 * Pending rows after `cursor` (up to `end`), with the row function's inputs, the fast path's values
 * (`Checks.fastPathColumn(i)`) and its guard.
 */
const fastPathSample = (table: JobTable, fast: Backfill.SqlFastPath, cursor: Cursor, end: JobState.KeyValue | undefined, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const values = fast.expressions.map(({ sql: expression }, i) => `(${expression}) AS ${Checks.fastPathColumn(i)}`)
    const guard = fast.guard === undefined ? [] : [`${fast.guard} AS __strata_guarded`]
    const range = end === undefined ? afterCursor(table, params, cursor) : inRange(table, params, cursor, end)
    return yield* sql.unsafe<Record<string, unknown>>(
      `SELECT ${[selectList(table), ...values, ...guard].join(", ")} FROM ${quotedTable(table)} WHERE ${range} AND ${
        pendingSql(table, params)
      } ORDER BY ${table.key.sql} LIMIT ${params.bind(limit)}`,
      params.values
    )
  })

const shown = (value: unknown): string =>
  typeof value === "bigint" ? `${value}n` : value !== null && typeof value === "object" && "rejected" in value
    ? `rejects the row (${String((value as { rejected: string }).rejected)})`
    : JSON.stringify(value) ?? String(value)

/** The first row of `rows` on which the fast path and the row function disagree, logged; or undefined. */
const firstDisagreement = (table: JobTable, fast: Backfill.SqlFastPath, rows: ReadonlyArray<Record<string, unknown>>) =>
  Effect.gen(function*() {
    for (const row of rows) {
      const found = Checks.fastPathDisagreement(table.job, fast, row)
      if (found === undefined) continue
      yield* Effect.logWarning("SQL fast path off: it disagrees with the row function; the job goes on in JavaScript").pipe(
        Effect.annotateLogs({
          key: String(keyValue(table, row["__strata_key"])),
          target: found.target,
          sql_value: shown(found.sql),
          convert_value: shown(found.convert)
        })
      )
      return found
    }
    return undefined
  })

const fastPathFailed = (error: SqlError) =>
  Effect.logWarning("SQL fast path off: its statement failed; the job goes on in JavaScript").pipe(
    Effect.annotateLogs({ reason: failureText(error) })
  )

/**
 * The fast path when it agrees with the row function on a sample of real pending rows (checked, not
 * trusted); undefined, after a warning naming the row and both values, or the failing statement, otherwise.
 */
const checkFastPath = (table: JobTable, fast: Backfill.SqlFastPath, cursor: Cursor) =>
  fastPathSample(table, fast, cursor, undefined, sampleRows).pipe(
    Effect.flatMap((rows) => firstDisagreement(table, fast, rows)),
    Effect.map((found) => (found === undefined ? fast : undefined)),
    Effect.catchTag("SqlError", (error) => notTheFastPath(error) ? Effect.fail(error) : Effect.as(fastPathFailed(error), undefined))
  )

/**
 * Errors that say nothing about the fast path: a lock not granted in time, a cancelled statement
 * (PostgreSQL), a lost connection. They fail the batch as the database's errors instead of
 * switching the fast path off.
 */
const notTheFastPath = (error: SqlError): boolean => {
  const code = (error.cause as { readonly code?: unknown } | undefined)?.code
  return code === "55P03" || code === "57014" || isConnectionLost(error)
}

/**
 * In a batch: spot-checks a few pending rows of the range, then runs the fast UPDATE, both inside a
 * savepoint. A disagreement or a failing statement turns the fast path off for the rest of the job
 * (the savepoint undoes anything it did) and the batch goes on in JavaScript. Returns the rows changed.
 */
const checkedFastUpdate = (table: JobTable, state: FastPathState, fast: Backfill.SqlFastPath, cursor: Cursor, end: JobState.KeyValue) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.gen(function*() {
        const found = yield* firstDisagreement(table, fast, yield* fastPathSample(table, fast, cursor, end, spotCheckRows))
        if (found !== undefined) {
          state.current = undefined
          return 0
        }
        return yield* fastUpdate(table, fast, cursor, end)
      })
    ).pipe(
      Effect.catchTag("SqlError", (error) =>
        notTheFastPath(error) ? Effect.fail(error) : Effect.suspend(() => {
          state.current = undefined
          return Effect.as(fastPathFailed(error), 0)
        }))
    )
  })

/** What one batch found and did, over its key range. */
interface Walked {
  readonly end: JobState.KeyValue
  readonly last: boolean
  readonly counts: JobState.Counts
  readonly rejects: ReadonlyArray<JobState.Reject>
  /** Whether the batch's statement already advanced the checkpoint by `counts` (PostgreSQL's one-statement batch). */
  readonly checkpointed: boolean
}

/**
 * The JavaScript part of a key range: its pending rows (with `guard`, marked by it) through the row
 * function and, with `write`, written and their rejects recorded.
 */
const walkPending = (table: JobTable, cursor: Cursor, end: JobState.KeyValue, guard: string | undefined, write: boolean) =>
  Effect.gen(function*() {
    const pending = yield* pendingRows(table, cursor, end, guard)
    yield* checkColumns(table, pending)
    const converted = convertRows(table, pending)
    const outcome = write ? yield* writeValues(table, converted.writes) : { written: converted.writes.length, setMeanwhile: 0 }
    if (write && converted.rejects.length > 0) {
      yield* JobState.recordRejects(table.job.name, converted.rejects, yield* Timestamp.now)
    }
    const counts: JobState.Counts = {
      processed: pending.length,
      updated: outcome.written,
      rejected: converted.rejects.length,
      alreadySet: converted.alreadySet + outcome.setMeanwhile,
      outOfScope: converted.outOfScope
    }
    return { pending, counts, rejects: converted.rejects }
  })

/**
 * One key range of the job: counts what its rows need, converts the pending ones and, with
 * `write`, writes them (fast path first, then JavaScript) and records the rejects. The dry run
 * calls it with `write: false` and no fast path. None when no rows are left after `cursor` (up to
 * `bound`, when given: a skipped range walked again).
 */
const walkRange = (table: JobTable, cursor: Cursor, size: number, fast: FastPathState | undefined, write: boolean, bound?: JobState.KeyValue) =>
  Effect.gen(function*() {
    const range = yield* nextRange(table, cursor, size, bound)
    if (Option.isNone(range)) return Option.none<Walked>()
    const { end, last } = range.value
    const used = write ? fast?.current : undefined
    const fastChanged = used === undefined ? 0 : yield* checkedFastUpdate(table, fast!, used, cursor, end)
    // Whether the fast path ran in this batch (a spot check may have turned it off just now).
    const ran = used !== undefined && fast?.current !== undefined
    const all = ran && touchesAllPending(table, used)
    const guard = ran && !all ? used.guard : undefined
    const js = yield* walkPending(table, cursor, end, guard, write)
    // The rows the fast path "changed" from NULL to NULL (see fastUpdate) are still pending: all of
    // them when it touched every pending row, the guarded ones when it filtered on its guard.
    const touchedStillPending = all
      ? js.pending.length
      : js.pending.filter((row) => row["__strata_guarded"] === true || row["__strata_guarded"] === 1).length
    const fastUpdated = fastChanged - touchedStillPending
    const counts = JobState.addCounts({
      processed: range.value.outOfScope + range.value.alreadySet + fastUpdated,
      updated: fastUpdated,
      rejected: 0,
      alreadySet: range.value.alreadySet,
      outOfScope: range.value.outOfScope
    }, js.counts)
    // Under SQLite's write lock nothing can change between the statements: every row of the range is in exactly one count.
    if (table.dialect === "sqlite" && counts.processed !== range.value.rows) {
      return yield* new CountsDoNotReconcile({ job: table.job.name, ...counts, processed: range.value.rows })
    }
    return Option.some<Walked>({ end, last, counts, rejects: js.rejects, checkpointed: false })
  })

/**
 * The fast path gave up in a batch (a disagreement with the row function on a real row, or its
 * statement failed): the batch's transaction is rolled back and done again in JavaScript.
 */
class FastPathAbandoned extends Data.TaggedError("FastPathAbandoned")<{}> {}

/**
 * A batch on PostgreSQL's fast path: one statement (see `internal/pgFastBatch.ts`) walks the range,
 * converts, advances the checkpoint and returns the first pending rows as they were, which are
 * checked against the row function here; at a disagreement or a failing statement the fast path is
 * off for the rest of the job and `FastPathAbandoned` rolls the batch back. Rows the fast path left
 * pending go through JavaScript in the same transaction.
 */
const pgFastWalk = (table: JobTable, state: FastPathState, fast: Backfill.SqlFastPath, cursor: Cursor, size: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const jobs = Identifier.quoteTable(yield* Database.strataTable("strata_jobs"))
    const statement = fastBatchStatement(table, fast, table.job.name, jobs, cursor, size, yield* Timestamp.now)
    const abandon: Effect.Effect<never, FastPathAbandoned> = Effect.suspend(() => {
      state.current = undefined
      return Effect.fail(new FastPathAbandoned())
    })
    const rows = yield* sql.unsafe<Record<string, unknown>>(statement.sql, statement.params).pipe(
      Effect.catchTag("SqlError", (error): Effect.Effect<never, SqlError | FastPathAbandoned> =>
        notTheFastPath(error) ? Effect.fail(error) : Effect.zipRight(fastPathFailed(error), abandon))
    )
    const result = readFastBatch(rows)
    if ("missing" in result) {
      return yield* new ColumnNotInRow({ job: table.job.name, table: table.job.table, column: result.missing, found: Object.keys(rows[0] ?? {}) })
    }
    yield* checkColumns(table, result.sample)
    if ((yield* firstDisagreement(table, fast, result.sample)) !== undefined) return yield* abandon
    if (result.rows === 0) return Option.none<Walked>()
    if (!result.saved) return yield* Effect.dieMessage(`backfill job ${table.job.name}: the batch statement found no checkpoint row to advance`)
    const end = keyValue(table, result.end)
    const fastCounts: JobState.Counts = {
      processed: result.outOfScope + result.alreadySet + result.written,
      updated: result.written,
      rejected: 0,
      alreadySet: result.alreadySet,
      outOfScope: result.outOfScope
    }
    if (result.leftOver === 0) return Option.some<Walked>({ end, last: result.last, counts: fastCounts, rejects: [], checkpointed: true })
    const js = yield* walkPending(table, cursor, end, undefined, true)
    return Option.some<Walked>({ end, last: result.last, counts: JobState.addCounts(fastCounts, js.counts), rejects: js.rejects, checkpointed: false })
  })

/**
 * A PostgreSQL batch transaction's settings, for this transaction only, applied by the claim once
 * it holds the checkpoint row (`JobState.claimCheckpoint`'s `pgSettings`: a runner waiting its turn
 * for the job's checkpoint waits as long as the turn takes, and the batch needs no statement of its
 * own for them). `lock_timeout`: see `Options.batchLockTimeout`. `synchronous_commit = off`:
 * the commit does not wait for its WAL to reach the disk. A batch is idempotent (conditional
 * writes of values the row function computes again the same) and its checkpoint commits with its
 * rows, so a server crash that loses the last commits loses the rows and the checkpoint together:
 * the job resumes from the checkpoint before them and does those batches again. Nothing else can
 * depend on a lost commit durably: a later commit that waits for the disk (the app's, the next
 * job's, strata's own) flushes the WAL up to it, batches included.
 */
const pgBatchSettings = (lockTimeout: Duration.Duration): Readonly<Record<string, string>> => ({
  synchronous_commit: "off",
  lock_timeout: `${Math.max(1, Math.round(Duration.toMillis(lockTimeout)))}ms`
})

/** The batch's claim of the job's checkpoint, with PostgreSQL's batch settings (SQLite has none to give). */
const claimForBatch = (table: JobTable, settings: Settings) =>
  table.dialect === "pg"
    ? JobState.claimCheckpoint(table.job.name, pgBatchSettings(settings.batchLockTimeout)).pipe(
      // Given on PostgreSQL only, where they are never refused.
      Effect.catchTag("InvalidClaimSettings", (error) => Effect.die(error))
    )
    : JobState.claimCheckpoint(table.job.name)

const decodeCursor = (job: string, text: string | null): Either.Either<Cursor, CorruptCheckpoint> => {
  if (text === null) return Either.right(undefined)
  const value = JobState.decodeKeyCursor(text)
  return value === undefined ? Either.left(new CorruptCheckpoint({ job, cursor: text })) : Either.right(value)
}

const doneUnlessCountsDiffer = (job: string, counts: JobState.Counts) =>
  JobState.reconciles(counts) ? Effect.void : Effect.fail(new CountsDoNotReconcile({ job, ...counts }))

/** A batch's result: the job's totals after it, the rows it walked, and the time spent on rows. */
interface BatchResult {
  readonly totals: JobState.Counts
  readonly rows: number
  /** Time spent on the rows (the rest of the transaction is a fixed cost: checkpoint row, commit). */
  readonly rowsMs: number
  readonly done: boolean
  /** The size the batch ran at, when a lock timeout made it smaller than asked. */
  readonly size?: number
  /**
   * Time spent outside the batch's own transaction: attempts that timed out on a row lock, the
   * WAL checkpoint after it. Not the batch's lock time, so not counted against the target.
   */
  readonly outsideMs?: number
}

/**
 * One batch, in the caller's transaction: claims the job's checkpoint (`JobState.claimCheckpoint`:
 * concurrent runners of the job take turns, each continuing the other's cursor and counts), walks
 * the next key range, and saves the new cursor and counts (on PostgreSQL's fast path the batch's
 * statement advances the checkpoint itself). Once the cursor reaches the end of the table, the
 * batches walk the ranges stepped over (`SkippedRange`), first to last; the job is done when none is left.
 */
const realBatch = (table: JobTable, fast: FastPathState, settings: Settings) => (size: number, claimed: Option.Option<JobState.Checkpoint> = Option.none()) =>
  Effect.gen(function*() {
    const name = table.job.name
    const saved = Option.isSome(claimed) ? claimed.value : yield* claimForBatch(table, settings)
    const totals = JobState.countsOf(saved)
    if (saved.state === "done") return { totals, rows: 0, rowsMs: 0, done: true } satisfies BatchResult
    const cursor = yield* decodeCursor(name, saved.cursor)
    const rowsStart = yield* Clock.currentTimeNanos
    const walked = table.dialect === "pg" && fast.current !== undefined
      ? yield* pgFastWalk(table, fast, fast.current, cursor, size)
      : yield* walkRange(table, cursor, size, fast, true)
    if (Option.isNone(walked) && saved.skipped.length > 0) return yield* revisitSkipped(table, fast, saved, size, rowsStart)
    const rowsMs = yield* elapsedMsSince(rowsStart)
    if (Option.isNone(walked)) {
      yield* doneUnlessCountsDiffer(name, totals)
      yield* JobState.saveCheckpoint(name, { cursor: saved.cursor, ...totals, state: "done" })
      return { totals, rows: 0, rowsMs, done: true } satisfies BatchResult
    }
    const next = JobState.addCounts(totals, walked.value.counts)
    const done = walked.value.last && saved.skipped.length === 0
    if (done) yield* doneUnlessCountsDiffer(name, next)
    if (!walked.value.checkpointed || walked.value.last) {
      yield* JobState.saveCheckpoint(name, {
        cursor: JobState.encodeKeyCursor(walked.value.end),
        ...next,
        state: done ? "done" : "running"
      })
    }
    return { totals: next, rows: walked.value.counts.processed, rowsMs, done } satisfies BatchResult
  })

/** The first range stepped over, walked again (up to `size` rows of it); the job is done when it was the last. */
const revisitSkipped = (table: JobTable, fast: FastPathState, saved: JobState.Checkpoint, size: number, rowsStart: bigint) =>
  Effect.gen(function*() {
    const name = table.job.name
    const [range, ...rest] = saved.skipped
    const from = yield* decodeCursor(name, range!.from)
    const to = yield* decodeCursor(name, range!.to)
    if (to === undefined) return yield* new CorruptCheckpoint({ job: name, cursor: range!.to })
    const walked = yield* walkRange(table, from, size, fast, true, to)
    const rowsMs = yield* elapsedMsSince(rowsStart)
    const remaining = Option.isNone(walked) || walked.value.last
      ? rest
      : [{ from: JobState.encodeKeyCursor(walked.value.end), to: range!.to }, ...rest]
    const next = Option.isNone(walked) ? JobState.countsOf(saved) : JobState.addCounts(saved, walked.value.counts)
    const done = remaining.length === 0
    if (done) yield* doneUnlessCountsDiffer(name, next)
    yield* JobState.saveCheckpoint(name, { cursor: saved.cursor, ...next, state: done ? "done" : "running", skipped: remaining })
    return { totals: next, rows: Option.isNone(walked) ? 0 : walked.value.counts.processed, rowsMs, done } satisfies BatchResult
  })

/**
 * After a batch of one row timed out on its row lock: steps the cursor over that row's key, saved
 * as a `SkippedRange` to come back to. `false` when the cursor is at the end already (the locked
 * row is in a range being walked again; the caller waits and tries again).
 */
const stepOverLockedRow = (table: JobTable) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = table.job.name
    const saved = yield* JobState.claimCheckpoint(name)
    const cursor = yield* decodeCursor(name, saved.cursor)
    const params = new Params(table.dialect)
    const rows = yield* sql.unsafe<Record<string, unknown>>(
      `SELECT ${table.key.sql} AS k FROM ${quotedTable(table)} WHERE ${afterCursor(table, params, cursor)} ORDER BY ${table.key.sql} LIMIT 1`,
      params.values
    )
    if (rows[0] === undefined) return { totals: JobState.countsOf(saved), stepped: false }
    const to = JobState.encodeKeyCursor(keyValue(table, yield* columnOf(table, rows[0], "k")))
    yield* JobState.saveCheckpoint(name, {
      cursor: to,
      ...JobState.countsOf(saved),
      state: "running",
      skipped: [...saved.skipped, { from: saved.cursor, to }]
    })
    yield* Effect.logWarning("backfill stepped over a row another transaction holds locked; the job comes back to it at the end").pipe(
      Effect.annotateLogs({ after: saved.cursor ?? "(start)", key: to })
    )
    return { totals: JobState.countsOf(saved), stepped: true }
  })

/** PostgreSQL's "lock not available": a statement waited longer than `lock_timeout`. */
const isLockTimeout = (error: unknown): error is SqlError =>
  error !== null && typeof error === "object" && "_tag" in error && error._tag === "SqlError" &&
  (error as SqlError).cause !== null && typeof (error as SqlError).cause === "object" &&
  ((error as SqlError).cause as { readonly code?: unknown }).code === "55P03"

type Emit = (event: ProgressEvent) => Effect.Effect<void>

const countAfter = (table: JobTable, cursor: Cursor) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const rows = yield* sql.unsafe<{ n: number | string }>(
      `SELECT count(*) AS n FROM ${quotedTable(table)} WHERE ${afterCursor(table, params, cursor)}`,
      params.values
    )
    return Number(rows[0]?.n ?? 0)
  })

const event = (
  table: JobTable,
  phase: ProgressEvent["phase"],
  tally: JobState.Counts,
  total: number,
  run: { readonly processedThisRun: number; readonly elapsedMs: number; readonly dryRun: boolean },
  batchInfo: { readonly batchSize: number; readonly batchMs: number; readonly nextBatchSize: number },
  done: boolean,
  fastPath?: JobSummary["fastPath"]
): ProgressEvent => {
  const estimate = done ? tally.processed : Math.max(total, tally.processed)
  const summary = Progress.summarize({
    done: tally.processed,
    total: estimate,
    doneThisRun: run.processedThisRun,
    elapsedMs: run.elapsedMs
  })
  return {
    job: table.job.name,
    table: table.job.table,
    phase,
    dryRun: run.dryRun,
    ...JobState.countsOf(tally),
    total: estimate,
    percent: summary.percent,
    rowsPerSecond: summary.rowsPerSecond,
    etaMs: summary.etaMs,
    ...batchInfo,
    done,
    ...(fastPath === undefined ? {} : { fastPath })
  }
}

/** How a job is walked: from where, and one batch at a time (really, or as a dry run). */
interface Walk {
  readonly tally: JobState.Counts
  readonly total: number
  readonly batch: (size: number) => Effect.Effect<BatchResult, SqlError | BackfillError, SqlClient.SqlClient>
  /** The fast path so far, for the job's last event. */
  readonly fastPath: () => JobSummary["fastPath"]
}

/**
 * The one batch loop of the run and the dry run: batch after batch until the job is done, the
 * size adapted to the time target (with the smoothed fixed cost of a batch, which the size
 * cannot shrink), progress emitted after each, a pause between them, and a real event-loop turn
 * between them so an interrupt lands at the next batch boundary.
 */
const batchLoop = (table: JobTable, settings: Settings, emit: Emit, walk: Walk, dryRun: boolean) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeNanos
    yield* emit(event(table, "started", walk.tally, walk.total, { processedThisRun: 0, elapsedMs: 0, dryRun }, { batchSize: 0, batchMs: 0, nextBatchSize: settings.batchSize }, false))
    let size = settings.batchSize
    const sizer = batchSizer(settings.maxBatchMs, settings.bounds)
    let fixedMs: number | undefined = undefined
    let tally = walk.tally
    let batches = 0
    let longestBatchMs = 0
    let processedThisRun = 0
    while (true) {
      const batchStart = yield* Clock.currentTimeNanos
      const result = yield* walk.batch(size)
      const batchMs = (yield* elapsedMsSince(batchStart)) - (result.outsideMs ?? 0)
      batches++
      longestBatchMs = Math.max(longestBatchMs, batchMs)
      processedThisRun += result.rows
      tally = result.totals
      const batchFixedMs = Math.max(0, batchMs - result.rowsMs)
      fixedMs = fixedMs === undefined ? batchFixedMs : 0.7 * fixedMs + 0.3 * batchFixedMs
      const ran = result.size ?? size
      const next = settings.fixedBatchSize ? size : sizer.next(ran, result.rows, batchMs, fixedMs)
      const elapsedMs = yield* elapsedMsSince(started)
      yield* emit(event(
        table,
        result.done ? "completed" : "batch",
        tally,
        walk.total,
        { processedThisRun, elapsedMs, dryRun },
        { batchSize: result.rows, batchMs, nextBatchSize: next },
        result.done,
        result.done ? walk.fastPath() : undefined
      ))
      yield* Effect.logDebug("backfill batch done").pipe(
        Effect.annotateLogs({ rows: result.rows, batch_ms: Math.round(batchMs), ...tally })
      )
      if (result.done) break
      size = next
      yield* Duration.isZero(settings.pause) ? yieldToEventLoop : Effect.sleep(settings.pause)
    }
    const elapsedMs = yield* elapsedMsSince(started)
    return { tally, batches, elapsedMs, longestBatchMs }
  })

const runJob = (table: JobTable, settings: Settings, emit: Emit): Effect.Effect<JobSummary, SqlError | BackfillError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = table.job.name
    if (settings.restart) yield* JobState.resetJob(name)
    // Creates the checkpoint only if no other runner did: a job another process advanced is never reset here.
    yield* JobState.startJob(name)
    let saved = Option.getOrThrow(yield* JobState.loadCheckpoint(name))
    if (!JobState.reconciles(saved)) {
      // Counts from a strata that did not count already-set and out-of-scope rows: scan again rather than trust them.
      yield* Effect.logWarning("backfill job's saved counts do not reconcile (an earlier strata saved them); scanning the table again").pipe(
        Effect.annotateLogs({ ...JobState.countsOf(saved) })
      )
      yield* sql.withTransaction(Effect.zipRight(
        JobState.claimCheckpoint(name),
        JobState.saveCheckpoint(name, { cursor: null, ...JobState.zeroCounts, state: "running" })
      ))
      saved = Option.getOrThrow(yield* JobState.loadCheckpoint(name))
    }
    if (saved.state === "done") {
      yield* emit(event(table, "skipped", saved, saved.processed, { processedThisRun: 0, elapsedMs: 0, dryRun: false }, { batchSize: 0, batchMs: 0, nextBatchSize: 0 }, true, "none"))
      yield* Effect.logInfo("backfill job already done; not scanned again (restart to re-scan)")
      return { job: name, table: table.job.table, outcome: "alreadyDone", ...JobState.countsOf(saved), batches: 0, elapsedMs: 0, longestBatchMs: 0, fastPath: "none" } satisfies JobSummary
    }
    const total = saved.processed + (yield* countAfter(table, yield* decodeCursor(name, saved.cursor)))
    yield* Effect.logInfo("backfill job started").pipe(Effect.annotateLogs({ total, processed: saved.processed }))
    const candidate = fastPathFor(table, settings.fastPath)
    const selfTested = candidate?.origin === "epochMillis" ? yield* confirmFastPath(table.dialect, candidate) : candidate
    const fast: FastPathState = {
      current: selfTested === undefined ? undefined : yield* checkFastPath(table, selfTested, yield* decodeCursor(name, saved.cursor)),
      tried: candidate !== undefined
    }
    const fastPathOutcome = (): JobSummary["fastPath"] => !fast.tried ? "none" : fast.current === undefined ? "off" : "used"
    const batch = realBatch(table, fast, settings)
    // On PostgreSQL the claim goes with the BEGIN, in one message (a round trip less a batch).
    const claimText = table.dialect === "pg" ? yield* JobState.pgClaimText(name, pgBatchSettings(settings.batchLockTimeout)) : undefined
    const transact = (size: number) =>
      claimText === undefined
        ? sql.withTransaction(batch(size))
        : withTransactionOpening(sql, claimText)((opened) => batch(size, opened === undefined ? Option.none() : JobState.claimedCheckpoint(opened[0] ?? [])))
    // The batch commits or rolls back as a whole; an interrupt waits for it and lands between batches.
    // A batch whose fast path gave up is rolled back and done again, in JavaScript.
    const attempt = (size: number) =>
      Effect.uninterruptible(transact(size).pipe(
        Effect.catchTag("FastPathAbandoned", () => transact(size)),
        // It is off once it gave up: the second attempt never uses it.
        Effect.catchTag("FastPathAbandoned", () => Effect.dieMessage("backfill: the fast path gave up twice in one batch"))
      ))
    // A batch that timed out on a row lock (rolled back) is tried again at a quarter of its size;
    // at one row, its key is stepped over (see stepOverLockedRow) and the walk goes on past it.
    const lockAware = (size: number, outsideMs: number): Effect.Effect<BatchResult, SqlError | BackfillError, SqlClient.SqlClient> =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeNanos
        return yield* attempt(size).pipe(
          Effect.map((result): BatchResult => ({ ...result, size, outsideMs })),
          Effect.catchIf(isLockTimeout, () =>
            Effect.gen(function*() {
              if (size > 1) return yield* lockAware(Math.max(1, Math.floor(size / 4)), outsideMs + (yield* elapsedMsSince(started)))
              const stepped = yield* Effect.uninterruptible(sql.withTransaction(stepOverLockedRow(table)))
              if (!stepped.stepped) yield* Effect.sleep(settings.batchLockTimeout)
              return { totals: stepped.totals, rows: 0, rowsMs: 0, done: false, size, outsideMs: outsideMs + (yield* elapsedMsSince(started)) }
            }))
        )
      })
    const turns = yield* WriterTurns.make({ ...WriterTurns.defaultTurns, maxGapMs: settings.writerTurnMs })
    const checkpoints = yield* WalCheckpoints.make()
    // SQLite, after each batch: the WAL checkpointed when it has grown enough, then a turn for
    // other writers (see WalCheckpoints, WriterTurns).
    const afterSqliteBatch = Effect.zipWith(checkpoints.afterBatch, turns.afterBatch, (checkpointMs, turnMs) => checkpointMs + turnMs)
    const ran = yield* batchLoop(table, settings, emit, {
      tally: JobState.countsOf(saved),
      total,
      fastPath: fastPathOutcome,
      batch: (size) =>
        table.dialect === "sqlite"
          ? Effect.flatMap(lockAware(size, 0), (result) => Effect.map(afterSqliteBatch, (ms) => ({ ...result, outsideMs: (result.outsideMs ?? 0) + ms })))
          : lockAware(size, 0)
    }, false)
    yield* Effect.logInfo("backfill job completed").pipe(
      Effect.annotateLogs({
        ...ran.tally,
        batches: ran.batches,
        elapsed_ms: Math.round(ran.elapsedMs),
        longest_batch_ms: Math.round(ran.longestBatchMs),
        ...(table.dialect === "sqlite"
          ? { writer_turns: turns.given().turns, writer_turns_used: turns.given().used, wal_checkpoints: checkpoints.count() }
          : {})
      })
    )
    return { job: name, table: table.job.table, outcome: "completed", ...ran.tally, batches: ran.batches, elapsedMs: ran.elapsedMs, longestBatchMs: ran.longestBatchMs, fastPath: fastPathOutcome() } satisfies JobSummary
  }).pipe(
    // Stopped between batches: the checkpoint of the last batch is saved; say so in its state.
    Effect.onInterrupt(() =>
      Effect.zipRight(
        JobState.pauseJob(table.job.name).pipe(Effect.ignore),
        Effect.logInfo("backfill job paused at a batch boundary; run again to resume")
      )
    )
  )

/** A dry run: the same batches with an in-memory cursor, every row through JavaScript, no writes. */
const dryRunJob = (table: JobTable, settings: Settings, emit: Emit): Effect.Effect<JobSummary, SqlError | BackfillError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    let cursor: Cursor = undefined
    let totals = JobState.zeroCounts
    const batch = (size: number) =>
      Effect.gen(function*() {
        const rowsStart = yield* Clock.currentTimeNanos
        const walked = yield* walkRange(table, cursor, size, undefined, false)
        const rowsMs = yield* elapsedMsSince(rowsStart)
        if (Option.isNone(walked)) return { totals, rows: 0, rowsMs, done: true } satisfies BatchResult
        cursor = walked.value.end
        totals = JobState.addCounts(totals, walked.value.counts)
        return { totals, rows: walked.value.counts.processed, rowsMs, done: walked.value.last } satisfies BatchResult
      })
    const ran = yield* batchLoop(table, settings, emit, { tally: totals, total: yield* countAfter(table, undefined), batch, fastPath: () => "none" }, true)
    yield* Effect.logInfo("backfill dry run completed; nothing was written").pipe(Effect.annotateLogs({ ...ran.tally }))
    return { job: table.job.name, table: table.job.table, outcome: "dryRun", ...ran.tally, batches: ran.batches, elapsedMs: ran.elapsedMs, longestBatchMs: ran.longestBatchMs, fastPath: "none" } satisfies JobSummary
  })

const runAll = (plan: Plan.Plan, options: Options, emit: Emit): Effect.Effect<ReadonlyArray<JobSummary>, BackfillError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (Option.isSome(yield* Effect.serviceOption(SqlClient.TransactionConnection))) return yield* new RunInsideTransaction()
    const settings = yield* validate(options)
    const selected = yield* selectJobs(plan, options.jobs)
    // Check every selected job against the schema before touching any, so a missing migration fails fast.
    const tables = yield* Effect.forEach(selected, inspectJob)
    if (!settings.dryRun) {
      yield* JobState.ensureTables.pipe(Effect.mapError(jobDatabaseError(selected[0]?.name ?? "(none)")))
    }
    return yield* Effect.forEach(tables, (table) => {
      let last: ProgressEvent | undefined = undefined
      const tracked: Emit = (event) => Effect.suspend(() => ((last = event), emit(event)))
      return (settings.dryRun ? dryRunJob(table, settings, tracked) : runJob(table, settings, tracked)).pipe(
        Effect.catchTag("SqlError", (error) => Effect.fail(jobDatabaseError(table.job.name)(error))),
        // A finished job's deferred indexes are built now, and reported as the job's last event.
        Effect.flatMap((summary) =>
          summary.outcome === "dryRun"
            ? Effect.succeed(summary)
            : Effect.flatMap(buildAfterJob(plan, summary.job), (indexes) =>
              indexes.length === 0 || last === undefined
                ? Effect.succeed(summary)
                : Effect.as(emit({ ...last, phase: "indexed", indexes }), { ...summary, indexes }))
        ),
        Effect.annotateLogs({ job: table.job.name, table: table.job.table }),
        Effect.withLogSpan("backfill")
      )
    })
  }).pipe(Effect.withSpan("BackfillRunner.run", { attributes: { plan: plan.name } }))

/**
 * The BackfillRunner for `plan` as a value, over the current `SqlClient` (its statements run
 * without the client's name transforms) and `Database.StrataSchema`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (plan: Plan.Plan): Effect.Effect<BackfillRunner, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* Database.strataClient
    const schema = yield* Database.StrataSchema
    const provide = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
      effect.pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.provideService(Database.StrataSchema, schema))

    const run = (options: Options = {}): Effect.Effect<ReadonlyArray<JobSummary>, BackfillError> =>
      provide(runAll(plan, options, () => Effect.void))

    const stream = (options: Options = {}): Stream.Stream<ProgressEvent, BackfillError> =>
      Stream.unwrapScoped(
        Effect.gen(function*() {
          // One event of slack: the run stays in step with its reader, so stopping the stream stops the run promptly.
          const queue = yield* Queue.bounded<Take.Take<ProgressEvent, BackfillError>>(1)
          yield* provide(runAll(plan, options, (e) => Queue.offer(queue, Take.of(e)))).pipe(
            Effect.exit,
            Effect.flatMap((exit) => Queue.offer(queue, exit._tag === "Success" ? Take.end : Take.failCause(exit.cause))),
            Effect.forkScoped
          )
          return Stream.flattenTake(Stream.fromQueue(queue))
        })
      )

    return BackfillRunner.of({ run, stream })
  })

/**
 * The BackfillRunner for `plan`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (plan: Plan.Plan): Layer.Layer<BackfillRunner, never, SqlClient.SqlClient> =>
  Layer.effect(BackfillRunner, make(plan))

/**
 * `run` on the BackfillRunner in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const run = (options?: Options): Effect.Effect<ReadonlyArray<JobSummary>, BackfillError, BackfillRunner> =>
  Effect.flatMap(BackfillRunner, (runner) => runner.run(options))

/**
 * `stream` on the BackfillRunner in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const stream = (options?: Options): Stream.Stream<ProgressEvent, BackfillError, BackfillRunner> =>
  Stream.unwrap(Effect.map(BackfillRunner, (runner) => runner.stream(options)))
