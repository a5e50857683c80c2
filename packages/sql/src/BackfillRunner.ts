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
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backfill, Identifier, type Plan, Progress, Timestamp } from "@strata/core"
import { Clock, Effect, Either, Option, Queue, Schema, Stream, Take } from "effect"
import { nextBatchSize } from "./internal/batchSize.js"
import { confirmFastPath } from "./internal/fastPathSelfTest.js"
import { pgElement } from "./internal/targetValues.js"
import {
  afterCursor,
  inspectJob,
  JobDatabaseError,
  jobDatabaseError,
  type JobTable,
  keyParam,
  keyValue,
  MigrationNotApplied,
  NoBatchKey,
  nullTest,
  Params,
  pendingSql,
  selectList,
  SourceColumnsMissing,
  TableNotFound,
  UnknownJob
} from "./internal/jobTable.js"
import * as JobState from "./JobState.js"

export {
  /**
   * The database failed while a job ran.
   * @since 0.1.0
   */
  JobDatabaseError,
  /**
   * A job's target columns are missing: its migration is not applied.
   * @since 0.1.0
   */
  MigrationNotApplied,
  /**
   * A job's table has no key to walk in batches.
   * @since 0.1.0
   */
  NoBatchKey,
  /**
   * Columns a job reads are missing.
   * @since 0.1.0
   */
  SourceColumnsMissing,
  /**
   * A job's table does not exist.
   * @since 0.1.0
   */
  TableNotFound,
  /**
   * `jobs` named a job the plan does not have.
   * @since 0.1.0
   */
  UnknownJob
}

/**
 * An option is out of range (e.g. `batchSize: 0`).
 *
 * @since 0.1.0
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
 * A job's saved cursor is not one strata wrote (the checkpoint row was edited by hand).
 *
 * @since 0.1.0
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
 * Everything `run` and `stream` can fail with.
 *
 * @since 0.1.0
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

/**
 * Options of `run` and `stream`. All optional.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Rows in the first batch (the key range it covers); adapted afterwards. Default 1,000. */
  readonly batchSize?: number | undefined
  /** Bounds of the adapted batch size. Default 10 and 100,000. */
  readonly minBatchSize?: number | undefined
  readonly maxBatchSize?: number | undefined
  /**
   * The longest a batch transaction should hold its locks. The size adapts after every batch,
   * aiming at a third of it (batch times jitter 2-3x on a busy machine): it shrinks when a batch
   * takes over half of it and grows (at most twofold) when a batch takes under a sixth. Default 50 ms.
   */
  readonly maxBatchMs?: number | undefined
  /** Keep the batch size fixed at `batchSize`. Default false. */
  readonly fixedBatchSize?: boolean | undefined
  /** Pause between batches, giving other writers (and autovacuum) room. Default 0. */
  readonly pauseMs?: number | undefined
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
 * Counters are the job's totals over all runs (a resumed job continues its counts).
 *
 * @since 0.1.0
 */
export interface ProgressEvent {
  readonly job: string
  readonly table: string
  /** `started`, `batch`, `completed`, or `skipped` (already done, not scanned again). */
  readonly phase: "started" | "batch" | "completed" | "skipped"
  readonly dryRun: boolean
  /** Rows walked by the cursor so far (whether they needed anything or not). */
  readonly processed: number
  /** Rows that got at least one value written (dry run: would get). */
  readonly updated: number
  /** Rows that could not be converted (recorded in `strata_rejects`; dry run: would be). */
  readonly rejected: number
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
  /** Whether the job has finished (its last event). */
  readonly done: boolean
}

/**
 * What one job's run did.
 *
 * @since 0.1.0
 */
export interface JobSummary {
  readonly job: string
  readonly table: string
  /** `completed` (walked to the end), `alreadyDone` (not scanned again), `dryRun`. */
  readonly outcome: "completed" | "alreadyDone" | "dryRun"
  /** The job's totals over all runs (dry run: of this scan). */
  readonly processed: number
  readonly updated: number
  readonly rejected: number
  /** This run's batches, wall time and longest batch transaction. */
  readonly batches: number
  readonly elapsedMs: number
  readonly longestBatchMs: number
}

interface Settings {
  readonly batchSize: number
  readonly minBatchSize: number
  readonly maxBatchSize: number
  readonly maxBatchMs: number
  readonly fixedBatchSize: boolean
  readonly pauseMs: number
  readonly dryRun: boolean
  readonly restart: boolean
  readonly fastPath: boolean
}

const validate = (options: Options): Either.Either<Settings, InvalidBackfillOptions> => {
  const positiveInt = (name: string, value: number | undefined, fallback: number) => {
    const v = value ?? fallback
    return Number.isSafeInteger(v) && v > 0 ? undefined : new InvalidBackfillOptions({ option: name, reason: `must be a positive integer, got ${v}` })
  }
  const errors = [
    positiveInt("batchSize", options.batchSize, 1000),
    positiveInt("minBatchSize", options.minBatchSize, 10),
    positiveInt("maxBatchSize", options.maxBatchSize, 100_000)
  ].filter((e) => e !== undefined)
  if (errors[0] !== undefined) return Either.left(errors[0])
  const maxBatchMs = options.maxBatchMs ?? 50
  if (!(Number.isFinite(maxBatchMs) && maxBatchMs > 0)) {
    return Either.left(new InvalidBackfillOptions({ option: "maxBatchMs", reason: `must be a positive number of milliseconds, got ${maxBatchMs}` }))
  }
  const pauseMs = options.pauseMs ?? 0
  if (!(Number.isFinite(pauseMs) && pauseMs >= 0)) {
    return Either.left(new InvalidBackfillOptions({ option: "pauseMs", reason: `must be zero or more milliseconds, got ${pauseMs}` }))
  }
  const minBatchSize = options.minBatchSize ?? 10
  const maxBatchSize = Math.max(options.maxBatchSize ?? 100_000, minBatchSize)
  const fixedBatchSize = options.fixedBatchSize ?? false
  const batchSize = options.batchSize ?? 1000
  return Either.right({
    batchSize: fixedBatchSize ? batchSize : Math.min(maxBatchSize, Math.max(minBatchSize, batchSize)),
    minBatchSize,
    maxBatchSize,
    maxBatchMs,
    fixedBatchSize,
    pauseMs,
    dryRun: options.dryRun ?? false,
    restart: options.restart ?? false,
    fastPath: options.fastPath ?? true
  })
}

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

const quotedTable = (table: JobTable) => Identifier.quoteTable(table.job.table)

/**
 * The job's SQL fast path on this engine, if it may run: it computes every target, its text columns
 * are text (PostgreSQL: `~` applies only there), and it is a guarded built-in. A plan's own fast path
 * (`derive`'s `sql`) runs only once the runner checks it against the row function (issue 13's next step).
 */
const fastPathFor = (table: JobTable, enabled: boolean): Backfill.SqlFastPath | undefined => {
  const fast = enabled ? Backfill.fastPathOn(table.job, table.dialect) : undefined
  if (fast === undefined || fast.guard === undefined) return undefined
  if (table.dialect === "pg" && fast.textColumns.some((c) => !/^(text|character varying(\(\d+\))?)$/.test(table.columnTypes.get(c) ?? ""))) {
    return undefined
  }
  return fast
}

type Cursor = JobState.KeyValue | undefined

interface KeyRange {
  /** The last key of the range (inclusive). */
  readonly end: JobState.KeyValue
  /** Rows in the range. */
  readonly rows: number
  /** Whether the range reaches the end of the table. */
  readonly last: boolean
}

/**
 * The next key range of at most `size` rows after `cursor`; none when no rows are left. One index
 * probe (`OFFSET size-1`, two rows: the range's last key, and whether anything follows it) rather
 * than fetching the keys.
 */
const nextRange = (table: JobTable, cursor: Cursor, size: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const probe = new Params(table.dialect)
    const probeSql = `SELECT ${table.key.sql} AS k FROM ${quotedTable(table)} WHERE ${afterCursor(table, probe, cursor)} ` +
      `ORDER BY ${table.key.sql} LIMIT 2 OFFSET ${probe.bind(size - 1)}`
    const found = yield* sql.unsafe<{ k: unknown }>(probeSql, probe.values)
    if (found[0] !== undefined) {
      return Option.some<KeyRange>({ end: keyValue(table, found[0].k), rows: size, last: found.length < 2 })
    }
    const tail = new Params(table.dialect)
    const rest = yield* sql.unsafe<{ k: unknown; n: number | string }>(
      `SELECT max(${table.key.sql}) AS k, count(*) AS n FROM ${quotedTable(table)} WHERE ${afterCursor(table, tail, cursor)}`,
      tail.values
    )
    const n = Number(rest[0]?.n ?? 0)
    if (n === 0 || rest[0]?.k == null) return Option.none<KeyRange>()
    return Option.some<KeyRange>({ end: keyValue(table, rest[0].k), rows: n, last: true })
  })

const inRange = (table: JobTable, params: Params, cursor: Cursor, end: JobState.KeyValue) =>
  `${afterCursor(table, params, cursor)} AND ${table.key.sql} <= ${params.bind(keyParam(table, end))}`

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
}

/** Runs the job's row function over pending rows: what to write (only into NULL targets) and what to reject. */
const convertRows = (table: JobTable, rows: ReadonlyArray<Record<string, unknown>>): Converted => {
  const writes: Array<Write> = []
  const rejects: Array<JobState.Reject> = []
  const job = table.job
  for (const row of rows) {
    if (!Backfill.matchesFilter(job.filter, row)) continue
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
  }
  return { writes, rejects }
}

const changedRows = (raw: unknown): number => {
  if (raw !== null && typeof raw === "object") {
    if ("changes" in raw) return Number(raw.changes)
    if ("rowCount" in raw) return Number(raw.rowCount ?? 0)
  }
  return 0
}

const jsonValue = (value: JobState.KeyValue | null): number | string | null =>
  typeof value === "bigint" ? value.toString() : value

/**
 * A batch's writes as one JSON array for SQLite's `json_each`: bigints as exact JSON integers (SQLite
 * reads them as 64-bit integers), json targets as their JSON text (so `->>` hands SQLite the text).
 */
const writesJson = (targets: ReadonlyArray<Backfill.Target>, writes: ReadonlyArray<Write>): string =>
  `[${writes.map((w) =>
    `[${[JSON.stringify(jsonValue(w.key)), ...w.values.map((v, i) => sqliteJson(targets[i]!, v))].join(",")}]`
  ).join(",")}]`

const sqliteJson = (target: Backfill.Target, value: Backfill.Value | null): string => {
  if (value === null) return "null"
  if (typeof value === "bigint") return value.toString()
  return JSON.stringify(target.type === "json" ? JSON.stringify(value) : value)
}

/**
 * Writes converted values in one statement, only into targets that are still NULL
 * (COALESCE keeps any value written meanwhile). Returns the rows changed.
 */
const writeValues = (table: JobTable, writes: ReadonlyArray<Write>) =>
  Effect.gen(function*() {
    if (writes.length === 0) return 0
    const sql = yield* SqlClient.SqlClient
    const t = quotedTable(table)
    const targets = table.job.targets.map((t) => Identifier.quote(t.column))
    const anyNull = `(${targets.map((c) => nullTest(table.dialect, `${t}.${c}`, "IS NULL")).join(" OR ")})`
    if (table.dialect === "sqlite") {
      // One JSON parameter and one prepared statement per batch: [[key, v1, v2, ...], ...].
      const sets = targets.map((c, i) => `${c} = coalesce(${t}.${c}, j.value ->> ${i + 1})`).join(", ")
      const raw = yield* sql.unsafe(
        `UPDATE ${t} SET ${sets} FROM json_each(?) AS j WHERE ${t}.${table.key.sql} = j.value ->> 0 AND ${anyNull}`,
        [writesJson(table.job.targets, writes)]
      ).raw
      return changedRows(raw)
    }
    // PostgreSQL: typed arrays, one UPDATE ... FROM unnest(...) per batch.
    const keyType = table.columnTypes.get(table.key.name) ?? "text"
    const params = new Params("pg")
    const keys = params.bind(writes.map((w) => String(w.key)))
    const arrays = table.job.targets.map((target, i) =>
      `${params.bind(writes.map((w) => pgElement(target, w.values[i] ?? null)))}::${table.columnTypes.get(target.column) ?? "text"}[]`
    )
    const columns = targets.map((_, i) => `v${i}`)
    const sets = targets.map((c, i) => `${c} = COALESCE(${t}.${c}, v.${columns[i]})`).join(", ")
    const raw = yield* sql.unsafe(
      `UPDATE ${t} SET ${sets} FROM unnest(${keys}::${keyType}[], ${arrays.join(", ")}) AS v(k, ${columns.join(", ")}) ` +
        `WHERE ${t}.${table.key.sql} = v.k AND ${anyNull}`,
      params.values
    ).raw
    return changedRows(raw)
  })

/**
 * The fast path: converts the guarded rows of the range inside one UPDATE, filtering on the cheap
 * guard so each expression runs once per row (without a guard, on every expression being NOT NULL).
 * A guarded row whose expression is NULL (shaped text that is no real instant, `2024-02-30 10:00:00`)
 * gets NULL written over its NULL: no change, but SQL counts it, so the caller subtracts those rows
 * (still pending afterwards, with the guard) from the count returned here.
 */
const fastUpdate = (table: JobTable, fast: Backfill.SqlFastPath, cursor: Cursor, end: JobState.KeyValue) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const params = new Params(table.dialect)
    const t = quotedTable(table)
    const sets = fast.expressions.map(({ sql: expression, target }) =>
      `${Identifier.quote(target)} = COALESCE(${t}.${Identifier.quote(target)}, (${expression}))`
    )
    const anyNull = fast.expressions.map(({ target }) => nullTest(table.dialect, Identifier.quote(target), "IS NULL")).join(" OR ")
    const converts = fast.guard ?? fast.expressions.map(({ sql: expression }) => `(${expression}) IS NOT NULL`).join(" AND ")
    const raw = yield* sql.unsafe(
      `UPDATE ${t} SET ${sets.join(", ")} WHERE ${inRange(table, params, cursor, end)} AND (${anyNull}) AND ${converts}`,
      params.values
    ).raw
    return changedRows(raw)
  })

interface BatchResult {
  readonly checkpoint: JobState.CheckpointUpdate
  readonly rows: number
  /** Time spent on the rows (the rest of the transaction is a fixed cost: checkpoint row, commit). */
  readonly rowsMs: number
}

const decodeCursor = (job: string, text: string | null): Either.Either<Cursor, CorruptCheckpoint> => {
  if (text === null) return Either.right(undefined)
  const value = JobState.decodeKeyCursor(text)
  return value === undefined ? Either.left(new CorruptCheckpoint({ job, cursor: text })) : Either.right(value)
}

/**
 * One batch, in the caller's transaction: claims the job's checkpoint row (on SQLite this first
 * write takes the write lock before anything is read, so no other writer can slip in between our
 * read and our write), reads the cursor from it (so two runners of one job take turns instead of
 * doing the same batch twice), converts and writes the next key range, records its rejects and
 * saves the new cursor and counts.
 */
const batch = (table: JobTable, size: number, fast: Backfill.SqlFastPath | undefined) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = table.job.name
    if (table.dialect === "sqlite") {
      yield* sql`UPDATE strata_jobs SET updated_at_ms = updated_at_ms WHERE job = ${name}`
    }
    const rows = table.dialect === "pg"
      ? yield* sql<{ cursor: string | null; processed: number; updated: number; rejected: number; state: string }>`
          SELECT cursor, processed, updated, rejected, state FROM strata_jobs WHERE job = ${name} FOR UPDATE`
      : yield* sql<{ cursor: string | null; processed: number; updated: number; rejected: number; state: string }>`
          SELECT cursor, processed, updated, rejected, state FROM strata_jobs WHERE job = ${name}`
    const saved = rows[0]
    const counts = {
      processed: Number(saved?.processed ?? 0),
      updated: Number(saved?.updated ?? 0),
      rejected: Number(saved?.rejected ?? 0)
    }
    if (saved?.state === "done") {
      return { checkpoint: { cursor: saved.cursor, ...counts, state: "done" }, rows: 0, rowsMs: 0 } satisfies BatchResult
    }
    const cursor = yield* decodeCursor(name, saved?.cursor ?? null)
    const rowsStart = yield* Clock.currentTimeNanos
    const range = yield* nextRange(table, cursor, size)
    if (Option.isNone(range)) {
      const checkpoint: JobState.CheckpointUpdate = { cursor: saved?.cursor ?? null, ...counts, state: "done" }
      yield* JobState.saveCheckpoint(name, checkpoint)
      return { checkpoint, rows: 0, rowsMs: 0 } satisfies BatchResult
    }
    const { end, last, rows: rangeRows } = range.value
    const fastChanged = fast === undefined ? 0 : yield* fastUpdate(table, fast, cursor, end)
    const pending = yield* pendingRows(table, cursor, end, fast?.guard)
    // Guarded rows still pending are the ones the fast path "changed" from NULL to NULL (see fastUpdate).
    const fastUpdated = fastChanged - pending.filter((row) => row["__strata_guarded"] === true || row["__strata_guarded"] === 1).length
    const converted = convertRows(table, pending)
    const jsUpdated = yield* writeValues(table, converted.writes)
    if (converted.rejects.length > 0) {
      yield* JobState.recordRejects(name, converted.rejects, yield* Timestamp.now)
    }
    const rowsMs = yield* elapsedMsSince(rowsStart)
    const checkpoint: JobState.CheckpointUpdate = {
      cursor: JobState.encodeKeyCursor(end),
      processed: counts.processed + rangeRows,
      updated: counts.updated + fastUpdated + jsUpdated,
      rejected: counts.rejected + converted.rejects.length,
      state: last ? "done" : "running"
    }
    yield* JobState.saveCheckpoint(name, checkpoint)
    return { checkpoint, rows: rangeRows, rowsMs } satisfies BatchResult
  })

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

interface Tally {
  readonly processed: number
  readonly updated: number
  readonly rejected: number
}

const event = (
  table: JobTable,
  phase: ProgressEvent["phase"],
  tally: Tally,
  total: number,
  run: { readonly processedThisRun: number; readonly elapsedMs: number; readonly dryRun: boolean },
  batchInfo: { readonly batchSize: number; readonly batchMs: number; readonly nextBatchSize: number },
  done: boolean
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
    processed: tally.processed,
    updated: tally.updated,
    rejected: tally.rejected,
    total: estimate,
    percent: summary.percent,
    rowsPerSecond: summary.rowsPerSecond,
    etaMs: summary.etaMs,
    ...batchInfo,
    done
  }
}

const runJob = (
  table: JobTable,
  settings: Settings,
  emit: Emit
): Effect.Effect<JobSummary, SqlError | CorruptCheckpoint, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const name = table.job.name
    const started = yield* Clock.currentTimeNanos
    if (settings.restart) yield* JobState.resetJob(name)
    const saved = yield* JobState.loadCheckpoint(name)
    if (Option.isSome(saved) && saved.value.state === "done") {
      const tally = saved.value
      yield* emit(event(table, "skipped", tally, tally.processed, { processedThisRun: 0, elapsedMs: 0, dryRun: false }, { batchSize: 0, batchMs: 0, nextBatchSize: 0 }, true))
      yield* Effect.logInfo("backfill job already done; not scanned again (restart to re-scan)")
      return { job: name, table: table.job.table, outcome: "alreadyDone", ...pickTally(tally), batches: 0, elapsedMs: 0, longestBatchMs: 0 } satisfies JobSummary
    }
    if (Option.isNone(saved)) {
      yield* JobState.saveCheckpoint(name, { cursor: null, processed: 0, updated: 0, rejected: 0, state: "running" })
    }
    const startTally: Tally = Option.match(saved, { onNone: () => ({ processed: 0, updated: 0, rejected: 0 }), onSome: pickTally })
    const startCursor = yield* decodeCursor(name, Option.getOrNull(Option.flatMap(saved, (c) => Option.fromNullable(c.cursor))))
    const total = startTally.processed + (yield* countAfter(table, startCursor))
    yield* Effect.logInfo("backfill job started").pipe(Effect.annotateLogs({ total, processed: startTally.processed }))
    yield* emit(event(table, "started", startTally, total, { processedThisRun: 0, elapsedMs: 0, dryRun: false }, { batchSize: 0, batchMs: 0, nextBatchSize: settings.batchSize }, false))

    const fast = yield* confirmFastPath(table.dialect, fastPathFor(table, settings.fastPath))
    let size = settings.batchSize
    // Smoothed fixed cost of a batch (begin, checkpoint row, commit), which the size cannot shrink.
    let fixedMs: number | undefined = undefined
    let tally = startTally
    let batches = 0
    let longestBatchMs = 0
    let processedThisRun = 0
    while (true) {
      const batchStart = yield* Clock.currentTimeNanos
      // The batch commits or rolls back as a whole; an interrupt waits for it and lands between batches.
      const result = yield* Effect.uninterruptible(sql.withTransaction(batch(table, size, fast)))
      const batchMs = yield* elapsedMsSince(batchStart)
      batches++
      longestBatchMs = Math.max(longestBatchMs, batchMs)
      processedThisRun += result.rows
      tally = pickTally(result.checkpoint)
      const done = result.checkpoint.state === "done"
      const batchFixedMs = Math.max(0, batchMs - result.rowsMs)
      fixedMs = fixedMs === undefined ? batchFixedMs : 0.7 * fixedMs + 0.3 * batchFixedMs
      const next = settings.fixedBatchSize
        ? size
        : nextBatchSize(size, batchMs, settings.maxBatchMs, { min: settings.minBatchSize, max: settings.maxBatchSize }, fixedMs)
      const elapsedMs = yield* elapsedMsSince(started)
      yield* emit(event(table, done ? "completed" : "batch", tally, total, { processedThisRun, elapsedMs, dryRun: false }, { batchSize: result.rows, batchMs, nextBatchSize: next }, done))
      yield* Effect.logDebug("backfill batch committed").pipe(
        Effect.annotateLogs({ rows: result.rows, batch_ms: Math.round(batchMs), processed: tally.processed, updated: tally.updated, rejected: tally.rejected })
      )
      if (done) break
      size = next
      if (settings.pauseMs > 0) yield* Effect.sleep(settings.pauseMs)
    }
    const elapsedMs = yield* elapsedMsSince(started)
    yield* Effect.logInfo("backfill job completed").pipe(
      Effect.annotateLogs({ ...tally, batches, elapsed_ms: Math.round(elapsedMs), longest_batch_ms: Math.round(longestBatchMs) })
    )
    return { job: name, table: table.job.table, outcome: "completed", ...tally, batches, elapsedMs, longestBatchMs } satisfies JobSummary
  }).pipe(
    // Stopped between batches: the checkpoint of the last batch is saved; say so in its state.
    Effect.onInterrupt(() =>
      Effect.zipRight(
        JobState.pauseJob(table.job.name).pipe(Effect.ignore),
        Effect.logInfo("backfill job paused at a batch boundary; run again to resume")
      )
    )
  )

const pickTally = (c: Tally): Tally => ({ processed: c.processed, updated: c.updated, rejected: c.rejected })

/** A dry run: the same key ranges with an in-memory cursor, every row through JavaScript, no writes. */
const dryRunJob = (
  table: JobTable,
  settings: Settings,
  emit: Emit
): Effect.Effect<JobSummary, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeNanos
    const total = yield* countAfter(table, undefined)
    let tally: Tally = { processed: 0, updated: 0, rejected: 0 }
    yield* emit(event(table, "started", tally, total, { processedThisRun: 0, elapsedMs: 0, dryRun: true }, { batchSize: 0, batchMs: 0, nextBatchSize: settings.batchSize }, false))
    let cursor: Cursor = undefined
    let size = settings.batchSize
    let batches = 0
    let longestBatchMs = 0
    while (true) {
      const batchStart = yield* Clock.currentTimeNanos
      const range: Option.Option<KeyRange> = yield* nextRange(table, cursor, size)
      let rows = 0
      if (Option.isSome(range)) {
        const converted = convertRows(table, yield* pendingRows(table, cursor, range.value.end))
        rows = range.value.rows
        tally = {
          processed: tally.processed + rows,
          updated: tally.updated + converted.writes.length,
          rejected: tally.rejected + converted.rejects.length
        }
        cursor = range.value.end
      }
      const done = Option.isNone(range) || range.value.last
      const batchMs = yield* elapsedMsSince(batchStart)
      batches++
      longestBatchMs = Math.max(longestBatchMs, batchMs)
      const next = settings.fixedBatchSize ? size : nextBatchSize(size, batchMs, settings.maxBatchMs, { min: settings.minBatchSize, max: settings.maxBatchSize })
      const elapsedMs = yield* elapsedMsSince(started)
      yield* emit(event(table, done ? "completed" : "batch", tally, total, { processedThisRun: tally.processed, elapsedMs, dryRun: true }, { batchSize: rows, batchMs, nextBatchSize: next }, done))
      if (done) break
      size = next
      if (settings.pauseMs > 0) yield* Effect.sleep(settings.pauseMs)
    }
    const elapsedMs = yield* elapsedMsSince(started)
    yield* Effect.logInfo("backfill dry run completed; nothing was written").pipe(Effect.annotateLogs({ ...tally }))
    return { job: table.job.name, table: table.job.table, outcome: "dryRun", ...tally, batches, elapsedMs, longestBatchMs } satisfies JobSummary
  })

const runAll = (plan: Plan.Plan, options: Options, emit: Emit) =>
  Effect.gen(function*() {
    const settings = yield* validate(options)
    const selected = yield* selectJobs(plan, options.jobs)
    // Check every selected job against the schema before touching any, so a missing migration fails fast.
    const tables = yield* Effect.forEach(selected, inspectJob)
    if (!settings.dryRun) {
      yield* JobState.ensureTables.pipe(Effect.mapError(jobDatabaseError(selected[0]?.name ?? "(none)")))
    }
    return yield* Effect.forEach(tables, (table) =>
      (settings.dryRun ? dryRunJob(table, settings, emit) : runJob(table, settings, emit)).pipe(
        Effect.catchTag("SqlError", (error) => Effect.fail(jobDatabaseError(table.job.name)(error))),
        Effect.annotateLogs({ job: table.job.name, table: table.job.table }),
        Effect.withLogSpan("backfill")
      ))
  }).pipe(Effect.withSpan("BackfillRunner.run", { attributes: { plan: plan.name } }))

/**
 * Runs a plan's backfill jobs (see the module documentation).
 *
 * @since 0.1.0
 */
export class BackfillRunner extends Effect.Service<BackfillRunner>()("@strata/sql/BackfillRunner", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const provide = Effect.provideService(SqlClient.SqlClient, sql)

    /** Runs the selected jobs to the end (or to an interrupt) and returns one summary per job. */
    const run = (plan: Plan.Plan, options: Options = {}): Effect.Effect<ReadonlyArray<JobSummary>, BackfillError> =>
      provide(runAll(plan, options, () => Effect.void))

    /**
     * The same run as a stream of progress events (a `started`, one per batch, and a `completed`
     * or `skipped` per job). The run starts when the stream is pulled; stopping the stream
     * (interrupt, `take`) stops it at a batch boundary with the checkpoint saved.
     */
    const stream = (plan: Plan.Plan, options: Options = {}): Stream.Stream<ProgressEvent, BackfillError> =>
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

    return { run, stream } as const
  })
}) {}
