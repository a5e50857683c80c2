/**
 * Read-time fix-up of a plan's `epochShadow` columns. A row read with its `*_ms` target NULL comes
 * back with the target computed from the TIMESTAMP text (the backfill's own conversion), at once;
 * the value is then written back by a background fiber: queued (bounded), deduplicated, batched
 * into one conditional UPDATE per table (`COALESCE(target, fixed)` only where the target is still
 * NULL), outside any transaction of the caller. The write-back is best effort: its failures are
 * logged and counted, never seen by callers, and unwritten rows stay pending for a later read or
 * the backfill.
 *
 * - A target is missing when it is NULL or absent from the row (0 is a value); it is filled only when the
 *   row carries its source. A NULL source stays NULL; an unparseable one stays NULL and is counted.
 * - Rows are written back by key: the plan's declared key, else the table's single-column primary key,
 *   else (SQLite) `rowid` when the caller selected it. Rows without a key value are fixed in memory only.
 * - Targets come back as numbers on both engines. Inputs are never mutated; fixed rows are copies.
 * - Rows are read and fixed in the app's naming: on a client that renames result columns
 *   (`transformResultNames`, e.g. `created_at_ms` to `createdAtMs`) the targets are filled, and the key
 *   read, under the client's names, learnt once by asking it for a row with those columns.
 * - Read-path counts reach `metrics` on the background fiber's next round (every `flushInterval`).
 * - Where the write-back runs (`writeBackPath`). SQLite file: on a worker thread of its own
 *   (`node:worker_threads`) with its own better-sqlite3 connection to the file, so the UPDATEs, and their
 *   waits for another writer's lock, never stop the readers' thread (better-sqlite3 is synchronous); WAL
 *   lets that one writer work beside the readers. The statements are built on the readers' side and only
 *   run there. On Linux that thread runs at a nice value 10 above the app's (at most 19): on a busy CPU the
 *   app's threads go first, and a write-back that falls behind drops rows (counted; they stay pending). An in-memory (or temporary) database, a database not in WAL mode, a table in a database the
 *   thread cannot attach, or a file or driver the thread cannot open: on the app's client, on the readers'
 *   thread, as before (a warning says why when the thread was tried). PostgreSQL: on a pooled connection
 *   of the app's client. The guarantees above hold on every path. The table's key is discovered once, on
 *   the app's client.
 *
 * ```ts
 * const messages = sql`SELECT * FROM chat_messages WHERE session_id = ${id}`.pipe(
 *   LazyMigration.withFixUp("chat_messages")
 * )
 * // provide LazyMigration.layer(Plans.agentos) (needs a SqlClient)
 * ```
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Plan } from "@strata/core"
import { Lazy, Options as NumericOption } from "@strata/core"
import type { Layer } from "effect"
import { Config, Context, Duration, Effect, Either, Metric, MetricBoundaries, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as Database from "./Database.js"
import { appColumnNames, emptyCounts, readPath, ruleColumns, type TableRules, tableRules } from "./internal/lazyRead.js"
import * as LazyWriteBack from "./internal/lazyWriteBack.js"
import { writeBackQueue } from "./internal/lazyWriteBackQueue.js"
import * as LazyWorker from "./internal/lazyWorkerWriter.js"

/**
 * Options of `layer`. Every field is optional.
 *
 * @since 0.1.0
 */
export interface Options {
  /**
   * `false` turns lazy migration off entirely: rows are returned exactly as read (NULL targets stay
   * NULL) and nothing is written. Default: config `STRATA_LAZY_MIGRATION`, else `true`.
   */
  readonly enabled?: boolean | undefined
  /**
   * `false` still fills targets in the rows returned to callers but never writes them back (e.g. to
   * keep write load off a struggling database). Default: config `STRATA_LAZY_WRITE_BACK`, else `true`.
   */
  readonly writeBack?: boolean | undefined
  /**
   * Rows waiting for write-back (a positive integer); when full, more are dropped (counted, logged)
   * and stay pending. Default 10,000.
   */
  readonly queueCapacity?: number | undefined
  /** How often the background fiber writes what is queued (more than zero). Default 100 ms. */
  readonly flushInterval?: Duration.DurationInput | undefined
  /**
   * Rows per UPDATE statement at most (a positive integer). Default 500; 5,000 on the SQLite write-back's
   * own thread, where a longer statement costs readers nothing and a scattered batch dirties fewer pages per
   * row. Within it, statements are sized by `maxBatchTime`.
   */
  readonly maxBatchRows?: number | undefined
  /**
   * How long one write-back statement should run (more than zero), as the backfill's `maxBatchTime`: while
   * it runs it holds SQLite's write lock (the app's writers wait for it) or, on PostgreSQL, its rows' locks.
   * Each table's first statement has 500 rows (or `maxBatchRows`, when fewer); later ones follow the time
   * the last ones took (aiming at a third of this, as the backfill's batches do), up to `maxBatchRows`. A
   * target, not a bound: a statement that waited for another writer's lock, or met a WAL checkpoint at its
   * commit, runs longer. Default 50 ms.
   */
  readonly maxBatchTime?: Duration.DurationInput | undefined
  /**
   * On scope close, how long draining the queue may take: no batch starts after it, so closing takes at
   * most this plus one batch's `writeTimeout`; rows left are logged and stay pending. Default 5 seconds.
   */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /**
   * How long one write-back statement may wait for locks before it fails (counted, logged; the rows stay
   * pending). SQLite on the write-back's own thread: that connection's `busy_timeout`; only that thread
   * waits. Default 1 second. SQLite on the app's client (an in-memory database, for example): the
   * connection's `busy_timeout` while the write-back runs, so a write lock held elsewhere never stalls the
   * process for the connection's own (long) busy timeout: better-sqlite3 waits synchronously, blocking
   * every fiber. Default 50 ms. PostgreSQL: `lock_timeout` of the write-back's transaction (a wait for
   * locks, as on SQLite, not the statement's own work). Default 1 second.
   */
  readonly writeTimeout?: Duration.DurationInput | undefined
}

/**
 * An option of `layer` is not allowed (e.g. `maxBatchRows: 2.5`, `flushInterval: 0`, `writeTimeout: "0.5 millis"`);
 * the layer is not built.
 *
 * @since 0.1.0
 */
export class InvalidLazyMigrationOptions extends Schema.TaggedError<InvalidLazyMigrationOptions>()("InvalidLazyMigrationOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid lazy migration option ${this.option}: ${this.reason}`
  }
}

/**
 * Counts since the layer was built. `queued = pending + writtenBack + alreadySet + failed +
 * unkeyed + coalesced` once nothing is in flight.
 *
 * @since 0.1.0
 */
export interface Stats {
  /** Rows returned with at least one target filled in memory. */
  readonly fixed: number
  /** Targets left NULL because their source text does not parse (the backfill records these as rejects). */
  readonly unparseable: number
  /** Fixed rows accepted by the write-back queue. */
  readonly queued: number
  /** Fixed rows not queued because the queue was full (or closed); they stay pending. */
  readonly dropped: number
  /** Rows the write-back updated. */
  readonly writtenBack: number
  /** Queued rows whose targets someone else had set first (nothing written: a non-NULL target is never overwritten). */
  readonly alreadySet: number
  /** Queued rows whose write-back statement failed; they stay pending. */
  readonly failed: number
  /** Fixed rows that carry no key value (or whose table has no usable key), so they cannot be written back. */
  readonly unkeyed: number
  /** Queued rows merged into another queued row with the same table and key (one write for both). */
  readonly coalesced: number
  /** Write-back statements run (failed ones included). */
  readonly statements: number
  /** Rows in the queue now. */
  readonly pending: number
}

/**
 * Where the write-back's statements run (`writeBackPath`), for diagnostics:
 * - `Worker`: SQLite, on a thread of its own (`threadId`) with its own connection to the database file,
 *   so no reader waits for a write-back statement or for the locks it waits on.
 * - `Client`: on the app's client. PostgreSQL always (a pooled connection, which blocks no reader while
 *   it waits); SQLite when the write-back cannot have its own thread, on the readers' thread (`reason`:
 *   an in-memory database, a database not in WAL mode, a file or driver the thread cannot open, or the
 *   thread failed).
 * - `Off`: lazy migration or its write-back is turned off.
 *
 * @since 0.2.0
 * @category models
 */
export type WriteBackPath = LazyWorker.WriteBackPath | { readonly _tag: "Off" }

/**
 * A value `withFixUp` can fix: an array of rows, a row, an `Option` of a row, or nothing.
 *
 * @since 0.1.0
 */
export type Fixable = object | null | undefined

/**
 * The service's counters (tagged with `table`), for exporters and dashboards; `stats` has the same counts per layer.
 *
 * @since 0.1.0
 */
export const metrics = {
  fixed: Metric.counter("strata_lazy_rows_fixed", {
    description: "rows returned with a shadow column filled at read time",
    incremental: true
  }),
  unparseable: Metric.counter("strata_lazy_unparseable", {
    description: "shadow values left NULL at read time because the source does not parse",
    incremental: true
  }),
  dropped: Metric.counter("strata_lazy_rows_dropped", {
    description: "fixed rows not queued for write-back because the queue was full",
    incremental: true
  }),
  writtenBack: Metric.counter("strata_lazy_rows_written_back", {
    description: "rows whose shadow columns the lazy write-back wrote",
    incremental: true
  }),
  alreadySet: Metric.counter("strata_lazy_rows_already_set", {
    description: "queued rows whose shadow columns were set by someone else before the write-back",
    incremental: true
  }),
  failures: Metric.counter("strata_lazy_write_back_failures", {
    description: "queued rows whose lazy write-back statement failed",
    incremental: true
  }),
  unkeyed: Metric.counter("strata_lazy_rows_unkeyed", {
    description: "fixed rows without a key value, never written back",
    incremental: true
  }),
  statementMs: Metric.histogram(
    "strata_lazy_write_back_statement_ms",
    MetricBoundaries.exponential({ start: 1, factor: 2, count: 12 }),
    "how long each lazy write-back statement that succeeded ran (held its locks), in milliseconds"
  )
} as const

const invalidOption = (option: string, reason: string) => new InvalidLazyMigrationOptions({ option, reason })

/** `Options` checked and with their defaults, except those whose default depends on where the write-back runs. */
interface ResolvedOptions {
  readonly enabled: boolean
  readonly writeBack: boolean
  readonly queueCapacity: number
  readonly maxBatchRows: number
  /** Whether `maxBatchRows` was given: its default is larger on the write-back's own thread. */
  readonly maxBatchRowsGiven: boolean
  readonly flushInterval: Duration.Duration
  readonly drainTimeout: Duration.Duration
  readonly maxBatchTime: Duration.Duration
  /** Undefined when not given: its default depends on the engine and the writer (see `chooseWriter`). */
  readonly writeTimeout: Duration.Duration | undefined
}

const resolveOptions = (options: Options): Effect.Effect<ResolvedOptions, ConfigError | InvalidLazyMigrationOptions> =>
  Effect.gen(function*() {
    const queueCapacity = yield* NumericOption.resolve("queueCapacity", options.queueCapacity, 10_000, NumericOption.positiveCount, invalidOption)
    const maxBatchRows = yield* NumericOption.resolve("maxBatchRows", options.maxBatchRows, 500, NumericOption.positiveCount, invalidOption)
    const enabled = options.enabled ?? (yield* Config.boolean("STRATA_LAZY_MIGRATION").pipe(Config.withDefault(true)))
    const writeBack = options.writeBack ?? (yield* Config.boolean("STRATA_LAZY_WRITE_BACK").pipe(Config.withDefault(true)))
    const flushInterval = yield* NumericOption.resolveDuration("flushInterval", options.flushInterval, "100 millis", NumericOption.positiveDuration, invalidOption)
    const drainTimeout = yield* NumericOption.resolveDuration("drainTimeout", options.drainTimeout, "5 seconds", NumericOption.nonNegativeDuration, invalidOption)
    const maxBatchTime = yield* NumericOption.resolveDuration("maxBatchTime", options.maxBatchTime, "50 millis", NumericOption.positiveDuration, invalidOption)
    // Its default depends on where the write-back runs (`chooseWriter`); a value given is checked here. Whole
    // milliseconds reach the database (busy_timeout, lock_timeout), so less than one is refused.
    const writeTimeout = options.writeTimeout == null
      ? undefined
      : yield* NumericOption.resolveDuration("writeTimeout", options.writeTimeout, "1 second", NumericOption.durationOfAtLeast("1 millis"), invalidOption)
    return {
      enabled,
      writeBack,
      queueCapacity,
      maxBatchRows,
      maxBatchRowsGiven: options.maxBatchRows != null,
      flushInterval,
      drainTimeout,
      maxBatchTime,
      writeTimeout
    }
  })

/**
 * Where the write-back's statements run: on SQLite, its own thread when it can have one (`lazyWorkerWriter`),
 * else the app's client; on PostgreSQL, the app's client (a pooled connection).
 */
const chooseWriter = (
  sql: SqlClient.SqlClient,
  dialect: "sqlite" | "pg",
  tables: ReadonlyMap<string, TableRules>,
  resolved: ResolvedOptions
) =>
  Effect.gen(function*() {
    const { enabled, writeBack, writeTimeout } = resolved
    const writeTimeoutMs = (fallback: Duration.DurationInput) => Math.trunc(Duration.toMillis(writeTimeout ?? fallback))
    // On the readers' thread a SQLite lock wait blocks every fiber, so it is kept short; on the worker's it blocks no reader.
    const clientWriter = LazyWriteBack.clientWriter(sql, dialect, writeTimeoutMs(dialect === "sqlite" ? "50 millis" : "1 second"))
    let writer: LazyWriteBack.Writer = clientWriter
    // Called between reads: hears the write-back thread's answer even when a tight read loop keeps the event loop from turning.
    let pollWriter: (() => void) | undefined
    let writeBackPath: Effect.Effect<WriteBackPath> = Effect.succeed(
      !enabled || !writeBack
        ? { _tag: "Off" }
        : { _tag: "Client", reason: "PostgreSQL: the write-back runs on a pooled connection of its own" }
    )
    if (enabled && writeBack && dialect === "sqlite") {
      const setup = yield* LazyWorker.workerSetup(sql, [...tables.values()].map((rules) => rules.table), writeTimeoutMs("1 second"))
      if (Either.isLeft(setup)) {
        writeBackPath = Effect.succeed({ _tag: "Client", reason: setup.left })
        yield* Effect.logDebug("lazy write-back runs on the readers' thread").pipe(Effect.annotateLogs({ reason: setup.left }))
      } else {
        const onWorker = yield* LazyWorker.workerWriter(setup.right, clientWriter, (reason) =>
          Effect.logWarning("lazy write-back runs on the readers' thread: its own thread cannot").pipe(
            Effect.annotateLogs({ reason })
          ))
        writer = onWorker.writer
        writeBackPath = onWorker.path
        pollWriter = onWorker.poll
      }
    }
    return { writer, writeBackPath, pollWriter }
  })

const make = (plan: Plan.Plan, options: Options = {}) =>
  Effect.gen(function*() {
    const resolved = yield* resolveOptions(options)
    const { enabled, writeBack } = resolved
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    const appNames = enabled
      ? yield* appColumnNames(sql, [...new Set(Lazy.rules(plan).flatMap(ruleColumns))])
      : new Map<string, string>()
    const tables = tableRules(plan, (column) => appNames.get(column) ?? column, metrics)
    const { pollWriter, writeBackPath, writer } = yield* chooseWriter(sql, dialect, tables, resolved)
    const counts = emptyCounts()
    const { backlogIsFull, flush, queue, stats } = yield* writeBackQueue({ ...resolved, sql, dialect, writer, writeBackPath, tables, counts })
    const { fixRows, fixUp, withFixUp } = readPath({
      planName: plan.name,
      enabled,
      writeBack,
      tables,
      counts,
      queue,
      backlogIsFull,
      pollWriter
    })
    return { enabled, writeBack, tables: [...tables.keys()], fixRows, fixUp, withFixUp, flush, stats, writeBackPath } as const
  })

/**
 * The lazy migration service of one plan.
 *
 * @since 0.1.0
 */
export class LazyMigration extends Effect.Service<LazyMigration>()("@strata/sql/LazyMigration", {
  scoped: (plan: Plan.Plan, options?: Options) => make(plan, options)
}) {}

/**
 * The service for `plan`, with its write-back fiber living in the layer's scope (drained on close).
 * Fails to build with `InvalidLazyMigrationOptions` when an option is not allowed (a count, or a duration out of range).
 *
 * @since 0.1.0
 */
export const layer = (
  plan: Plan.Plan,
  options: Options = {}
): Layer.Layer<LazyMigration, ConfigError | InvalidLazyMigrationOptions, SqlClient.SqlClient> =>
  LazyMigration.Default(plan, options)

/**
 * The rows with every NULL (or absent) target of `table` filled from its source; queues the write-back.
 *
 * @since 0.1.0
 */
export const fixRows = <Row extends object>(
  table: string,
  rows: ReadonlyArray<Row>
): Effect.Effect<ReadonlyArray<Row>, never, LazyMigration> =>
  Effect.flatMap(LazyMigration, (lazy) => lazy.fixRows(table, rows))

/**
 * Wraps an effect returning rows of `table` (an array, a row, an `Option` of a row) so they come back fixed.
 *
 * @since 0.1.0
 */
export const withFixUp = (table: string) =>
<A extends Fixable, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | LazyMigration> =>
  // One context read rather than yielding the tag: this runs on every read (on hot paths, bind the
  // service's own `withFixUp(table)` once instead).
  Effect.contextWithEffect((context: Context.Context<LazyMigration>) => Context.get(context, LazyMigration).withFixUp(table)(self))

/**
 * Writes back everything queued so far and waits for it (tests, graceful hand-offs). Not inside a transaction.
 *
 * @since 0.1.0
 */
export const flush: Effect.Effect<void, never, LazyMigration> = Effect.flatMap(LazyMigration, (lazy) => lazy.flush)

/**
 * The counts since the layer was built.
 *
 * @since 0.1.0
 */
export const stats: Effect.Effect<Stats, never, LazyMigration> = Effect.flatMap(LazyMigration, (lazy) => lazy.stats)

/**
 * Where the write-back runs (see `WriteBackPath`); on SQLite it waits until the write-back's thread has
 * opened the database or given up.
 *
 * @since 0.2.0
 * @category accessors
 */
export const writeBackPath: Effect.Effect<WriteBackPath, never, LazyMigration> = Effect.flatMap(LazyMigration, (lazy) => lazy.writeBackPath)
