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
 *   run there. An in-memory (or temporary) database, a database not in WAL mode, a table in a database the
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
import type { Backfill, Identifier, Plan } from "@strata/core"
import { Identifier as Identifiers, Lazy } from "@strata/core"
import type { Chunk, Layer } from "effect"
import { Cause, Clock, Config, Context, Duration, Effect, Either, Exit, Fiber, FiberRef, Metric, Option, Queue, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as Database from "./Database.js"
import * as LazyWriteBack from "./internal/lazyWriteBack.js"
import type { KeyedValues, KeyValue, TableKey } from "./internal/lazyWriteBack.js"
import { discoverKey, keyValueOf, writeStatement } from "./internal/lazyWriteBack.js"
import * as LazyWorker from "./internal/lazyWorkerWriter.js"
import { Options as NumericOption } from "@strata/core"
import { failureText } from "./SqlErrors.js"

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
   * Rows per UPDATE statement (a positive integer). Default 500; 5,000 on the SQLite write-back's own
   * thread, where a longer statement costs readers nothing and a scattered batch dirties fewer pages per row.
   */
  readonly maxBatchRows?: number | undefined
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
  })
} as const

type Counter = Metric.Metric.Counter<number>

interface TableMetrics {
  readonly fixed: Counter
  readonly unparseable: Counter
  readonly dropped: Counter
  readonly writtenBack: Counter
  readonly alreadySet: Counter
  readonly failures: Counter
  readonly unkeyed: Counter
}

/** The rules of one table, prepared once so the read path only loops. */
interface TableRules {
  readonly table: Identifier.TableName
  readonly declaredKey: Identifier.Identifier | undefined
  readonly rules: ReadonlyArray<Lazy.Rule>
  /** Where each rule's targets start in `targets`. */
  readonly offsets: ReadonlyArray<number>
  /** Per rule, the positions (in the rule's targets) of integer targets, whose stored values come back as numbers. */
  readonly integerTargets: ReadonlyArray<ReadonlyArray<number>>
  /** Every target of the table's rules, in rule order. */
  readonly targets: ReadonlyArray<Backfill.Target>
  /** Per rule, each target's name in the app's rows (its client may rename result columns). */
  readonly appTargets: ReadonlyArray<ReadonlyArray<string>>
  /**
   * Per rule, the columns it uses as (real name, the app's name) when the app's client renames any of them:
   * the rule then computes from a copy of the row under the real names. Undefined: the row is used as read.
   */
  readonly renamed: ReadonlyArray<ReadonlyArray<readonly [string, string]> | undefined>
  readonly metrics: TableMetrics
  /**
   * Read-path counts not yet added to `metrics`. A tagged metric update costs about a microsecond (its
   * key is hashed), as much as the whole fix-up, so readers count in plain numbers and the background
   * fiber publishes them every round.
   */
  readonly unpublished: { fixed: number; unparseable: number; dropped: number }
}

/** A fixed row waiting for write-back: the row as read (for its key) and one value per target (null: not fixed here). */
interface PendingRow {
  readonly table: TableRules
  readonly row: Readonly<Record<string, unknown>>
  readonly values: ReadonlyArray<Backfill.Value | null>
}

/** Every column a rule reads or writes. */
const ruleColumns = (rule: Lazy.Rule): ReadonlyArray<string> => [
  ...new Set([
    ...rule.targets.map((t) => t.column),
    ...rule.reads,
    ...(rule.requires === undefined ? [] : [rule.requires]),
    ...(rule.filter === undefined ? [] : [rule.filter.column])
  ])
]

/** The plan's rules by table; `appName` gives a column's name in the app's rows. */
const tableRules = (plan: Plan.Plan, appName: (column: string) => string): ReadonlyMap<string, TableRules> => {
  const byTable = new Map<string, Array<Lazy.Rule>>()
  for (const rule of Lazy.rules(plan)) {
    const rules = byTable.get(rule.table) ?? []
    // Two steps writing the same target would fix it twice; the first wins.
    const owned = (column: string) => rules.some((r) => r.targets.some((t) => t.column === column))
    if (!rule.targets.some((t) => owned(t.column))) rules.push(rule)
    byTable.set(rule.table, rules)
  }
  const tables = new Map<string, TableRules>()
  for (const [table, rules] of byTable) {
    const tagged = (counter: Counter) => Metric.tagged(counter, "table", table)
    tables.set(table, {
      table: rules[0]!.table,
      declaredKey: rules.find((r) => r.key !== undefined)?.key,
      rules,
      offsets: rules.map((_, r) => rules.slice(0, r).reduce((n, rule) => n + rule.targets.length, 0)),
      integerTargets: rules.map((rule) =>
        rule.targets.flatMap((t, i) => (t.type === "integer" || t.type === "bigint" ? [i] : []))
      ),
      targets: rules.flatMap((r) => r.targets),
      appTargets: rules.map((rule) => rule.targets.map((t) => appName(t.column))),
      renamed: rules.map((rule) => {
        const columns = ruleColumns(rule).map((column) => [column, appName(column)] as const)
        return columns.every(([real, app]) => real === app) ? undefined : columns
      }),
      metrics: {
        fixed: tagged(metrics.fixed),
        unparseable: tagged(metrics.unparseable),
        dropped: tagged(metrics.dropped),
        writtenBack: tagged(metrics.writtenBack),
        alreadySet: tagged(metrics.alreadySet),
        failures: tagged(metrics.failures),
        unkeyed: tagged(metrics.unkeyed)
      },
      unpublished: { fixed: 0, unparseable: 0, dropped: 0 }
    })
  }
  return tables
}

/**
 * A stored integer (epoch ms) as a number: node-postgres returns BIGINT as text (and SQLite's safe
 * integer mode as bigint), so integer targets come back as numbers on both engines. Other values are left alone.
 */
const storedMillis = (value: unknown): unknown => {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value
  if (typeof value === "string" && /^-?\d{1,16}$/.test(value)) {
    const millis = Number(value)
    return Number.isSafeInteger(millis) ? millis : value
  }
  return value
}

/**
 * The name the app's client gives each column in its rows (`transformResultNames`, e.g. snake_case to
 * camelCase), found by asking it for a row with those columns. A client that renames nothing gives each back.
 */
const appColumnNames = (sql: SqlClient.SqlClient, columns: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, string>> => {
  if (columns.length === 0) return Effect.succeed(new Map())
  const probe = `SELECT ${columns.map((column) => `NULL AS ${Identifiers.quote(column)}`).join(", ")}`
  return Effect.map(Effect.either(sql.unsafe<Record<string, unknown>>(probe).unprepared), (result) => {
    const names = Either.isRight(result) && result.right.length === 1 ? Object.keys(result.right[0]!) : []
    // Two columns renamed to one name (or a probe that failed): the names as written are the best guess.
    return new Map(columns.map((column, i) => [column, names.length === columns.length ? names[i]! : column]))
  })
}

/** Under the rule's real column names, the fix of a row in the app's naming (see `TableRules.renamed`). */
const fixRenamed = (
  rule: Lazy.Rule,
  appTargets: ReadonlyArray<string>,
  columns: ReadonlyArray<readonly [string, string]>,
  row: Readonly<Record<string, unknown>>
): Lazy.Fix => {
  let missing = false
  for (let t = 0; t < appTargets.length; t++) {
    if (row[appTargets[t]!] == null) {
      missing = true
      break
    }
  }
  if (!missing) return undefined
  const real: Record<string, unknown> = {}
  for (let c = 0; c < columns.length; c++) {
    const [realName, appName] = columns[c]!
    const value = row[appName]
    if (value !== undefined) real[realName] = value
  }
  return Lazy.fix(rule, real)
}

const describeKeys = (keys: ReadonlyArray<KeyValue>): string => {
  const shown = keys.slice(0, 20).map(String).join(", ")
  return keys.length > 20 ? `${shown} (and ${keys.length - 20} more)` : shown
}

// SQLite binds at most 32,766 parameters per statement.
const sqliteMaxParameters = 32_766

const invalidOption = (option: string, reason: string) => new InvalidLazyMigrationOptions({ option, reason })

const make = (plan: Plan.Plan, options: Options = {}) =>
  Effect.gen(function*() {
    const queueCapacity = yield* NumericOption.resolve("queueCapacity", options.queueCapacity, 10_000, NumericOption.positiveCount, invalidOption)
    const maxBatchRowsOption = yield* NumericOption.resolve("maxBatchRows", options.maxBatchRows, 500, NumericOption.positiveCount, invalidOption)
    // Rows per statement, and per round's step. Set each round from where the write-back runs (see `rowsPerBatch`).
    let maxBatchRows = maxBatchRowsOption
    const enabled = options.enabled ?? (yield* Config.boolean("STRATA_LAZY_MIGRATION").pipe(Config.withDefault(true)))
    const writeBack = options.writeBack ?? (yield* Config.boolean("STRATA_LAZY_WRITE_BACK").pipe(Config.withDefault(true)))
    const flushInterval = yield* NumericOption.resolveDuration("flushInterval", options.flushInterval, "100 millis", NumericOption.positiveDuration, invalidOption)
    const drainTimeout = yield* NumericOption.resolveDuration("drainTimeout", options.drainTimeout, "5 seconds", NumericOption.nonNegativeDuration, invalidOption)
    // Its default depends on where the write-back runs (below); a value given is checked here. Whole milliseconds
    // reach the database (busy_timeout, lock_timeout), so less than one is refused.
    const writeTimeout = options.writeTimeout == null
      ? undefined
      : yield* NumericOption.resolveDuration("writeTimeout", options.writeTimeout, "1 second", NumericOption.durationOfAtLeast("1 millis"), invalidOption)

    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    const appNames = enabled
      ? yield* appColumnNames(sql, [...new Set(Lazy.rules(plan).flatMap(ruleColumns))])
      : new Map<string, string>()
    const tables = tableRules(plan, (column) => appNames.get(column) ?? column)
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
    const counts = {
      fixed: 0,
      unparseable: 0,
      queued: 0,
      dropped: 0,
      writtenBack: 0,
      alreadySet: 0,
      failed: 0,
      unkeyed: 0,
      coalesced: 0
    }
    const queue = yield* Queue.dropping<PendingRow>(queueCapacity)
    // Rung when a full batch is waiting: a fiber reading SQLite in a tight loop never lets the event loop fire
    // timers. It does not let the write-back in either: Effect's semaphores are not fair, so a reader that takes
    // and releases the one connection thousands of times between yields starves a waiting writer. So while a
    // full batch waits, readers that add to it (or find the queue full) yield once (a scheduler turn, never a
    // wait on the database). On the write-back's own thread the yields matter too: every 2,048 turns Effect's
    // scheduler lets the event loop run, and only then is the thread's answer heard and the next batch taken.
    const batchFull = yield* Queue.sliding<void>(1)
    const backlogIsFull = (): boolean => {
      const size = queue.unsafeSize()
      if (Option.isNone(size) || size.value < maxBatchRows) return false
      Queue.unsafeOffer(batchFull, undefined)
      return true
    }
    const warnedTables = new Set<string>()

    // The read path: synchronous, no Effect operations of its own beyond handing the value on, and no
    // allocation for rows that need nothing. Offering to the queue never waits.
    let backlogFull = false
    const fixRowsNow = <Row extends object>(rules: TableRules, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
      let fixedRows = 0
      let queuedRows = 0
      let droppedRows = 0
      let result: Array<Row> | undefined
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as Readonly<Record<string, unknown>>
        let patch: Record<string, unknown> | undefined
        let values: Array<Backfill.Value | null> | undefined
        for (let r = 0; r < rules.rules.length; r++) {
          const rule = rules.rules[r]!
          const appTargets = rules.appTargets[r]!
          const integers = rules.integerTargets[r]!
          for (let t = 0; t < integers.length; t++) {
            const column = appTargets[integers[t]!]!
            const current = row[column]
            if (current == null || typeof current === "number") continue
            const normalised = storedMillis(current)
            if (normalised !== current) (patch ??= {})[column] = normalised
          }
          const renamed = rules.renamed[r]
          const fix = renamed === undefined ? Lazy.fix(rule, row) : fixRenamed(rule, appTargets, renamed, row)
          if (fix === undefined) continue
          if (fix === Lazy.unconvertible) {
            counts.unparseable++
            rules.unpublished.unparseable++
            continue
          }
          const offset = rules.offsets[r]!
          for (let t = 0; t < fix.length; t++) {
            const value = fix[t]!
            if (value === null) continue
            ;(patch ??= {})[appTargets[t]!] = value
            ;(values ??= rules.targets.map(() => null))[offset + t] = value
          }
        }
        if (patch === undefined) continue
        result ??= rows.slice()
        result[i] = { ...row, ...patch } as Row
        if (values === undefined) continue
        fixedRows++
        if (!writeBack) continue
        if (Queue.unsafeOffer(queue, { table: rules, row, values })) {
          queuedRows++
        } else {
          droppedRows++
        }
      }
      if (fixedRows > 0) {
        counts.fixed += fixedRows
        rules.unpublished.fixed += fixedRows
      }
      if (droppedRows > 0) {
        counts.dropped += droppedRows
        rules.unpublished.dropped += droppedRows
      }
      if (queuedRows > 0) counts.queued += queuedRows
      if ((queuedRows > 0 || droppedRows > 0) && backlogIsFull()) backlogFull = true
      return result ?? rows
    }

    const fixValueNow = <A extends Fixable>(rules: TableRules, value: A): A => {
      if (value == null) return value
      if (Array.isArray(value)) return fixRowsNow(rules, value) as unknown as A
      if (Option.isOption(value)) {
        if (Option.isNone(value)) return value
        const rows = [value.value as object]
        const fixed = fixRowsNow(rules, rows)
        return (fixed === rows ? value : Option.some(fixed[0])) as unknown as A
      }
      return fixRowsNow(rules, [value])[0] as A
    }

    // While a full batch waits, the reader that added to it yields one scheduler turn (see `batchFull`).
    const handOn = <A>(value: A): Effect.Effect<A> => {
      if (pollWriter !== undefined) pollWriter()
      if (!backlogFull) return Effect.succeed(value)
      backlogFull = false
      return Effect.as(Effect.yieldNow(), value)
    }

    const unknownTable = (table: string) =>
      warnedTables.has(table) ? Effect.void : Effect.suspend(() => {
        warnedTables.add(table)
        return Effect.logWarning("lazy migration has no rules for this table; its rows are returned as read").pipe(
          Effect.annotateLogs({ table, plan: plan.name })
        )
      })

    const fixUp = <A extends Fixable>(table: string, value: A): Effect.Effect<A> => {
      if (!enabled) return Effect.succeed(value)
      const rules = tables.get(table)
      if (rules === undefined) return Effect.as(unknownTable(table), value)
      return Effect.suspend(() => handOn(fixValueNow(rules, value)))
    }

    const fixRows = <Row extends object>(table: string, rows: ReadonlyArray<Row>): Effect.Effect<ReadonlyArray<Row>> =>
      fixUp(table, rows)

    // One combinator per table, made once: a read through it allocates nothing of ours but the flatMap.
    type Combinator = <A extends Fixable, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    const combinators = new Map<string, Combinator>()
    const makeCombinator = (table: string): Combinator => {
      if (!enabled) return (self) => self
      const rules = tables.get(table)
      if (rules === undefined) return (self) => Effect.zipLeft(self, unknownTable(table))
      const continuation = (value: Fixable) => handOn(fixValueNow(rules, value))
      return <A extends Fixable, E, R>(self: Effect.Effect<A, E, R>) =>
        Effect.flatMap(self, continuation as unknown as (value: A) => Effect.Effect<A>)
    }
    const withFixUp = (table: string): Combinator => {
      let combinator = combinators.get(table)
      if (combinator === undefined) {
        combinator = makeCombinator(table)
        combinators.set(table, combinator)
      }
      return combinator
    }

    const publishReadMetrics = Effect.suspend(() => {
      const updates: Array<Effect.Effect<void>> = []
      for (const rules of tables.values()) {
        const { dropped, fixed, unparseable } = rules.unpublished
        if (fixed > 0) updates.push(Metric.incrementBy(rules.metrics.fixed, fixed))
        if (unparseable > 0) updates.push(Metric.incrementBy(rules.metrics.unparseable, unparseable))
        if (dropped > 0) updates.push(Metric.incrementBy(rules.metrics.dropped, dropped))
        rules.unpublished.fixed = 0
        rules.unpublished.unparseable = 0
        rules.unpublished.dropped = 0
      }
      return Effect.all(updates, { discard: true })
    })

    // The write-back. Keys are discovered on this side, once per table, so reads never query the catalogue.
    // With the key, the name the app's rows carry it under.
    interface FoundKey {
      readonly key: TableKey
      readonly field: string | undefined
    }
    const keys = new Map<string, FoundKey>()
    const keyOf = (rules: TableRules) => {
      const known = keys.get(rules.table)
      if (known !== undefined) return Effect.succeed(known)
      const discovered = Effect.flatMap(
        Effect.provideService(discoverKey(dialect, rules.table, rules.declaredKey), SqlClient.SqlClient, sql),
        (key): Effect.Effect<FoundKey> => {
          const column = key._tag === "Column" ? key.column : key._tag === "Rowid" ? "rowid" : undefined
          return column === undefined
            ? Effect.succeed({ key, field: undefined })
            : Effect.map(appColumnNames(sql, [column]), (names) => ({ key, field: names.get(column) ?? column }))
        }
      )
      return Effect.tap(discovered, (found) =>
        Effect.suspend(() => {
          keys.set(rules.table, found)
          const key = found.key
          return key._tag === "None"
            ? Effect.logWarning("lazily fixed rows of this table cannot be written back: it has no usable key").pipe(
              Effect.annotateLogs({ table: rules.table, reason: key.reason })
            )
            : Effect.logDebug("lazy write-back key found").pipe(
              Effect.annotateLogs({ table: rules.table, key: key._tag === "Column" ? key.column : "rowid" })
            )
        }))
    }

    const countFailed = (rules: TableRules, rows: number, keysShown: ReadonlyArray<KeyValue>, cause: Cause.Cause<unknown>) =>
      Effect.suspend(() => {
        counts.failed += rows
        return Effect.zipRight(
          Metric.incrementBy(rules.metrics.failures, rows),
          Effect.logWarning("lazy write-back failed; the rows stay pending for a later read or the backfill", cause).pipe(
            Effect.annotateLogs({ table: rules.table, rows, keys: describeKeys(keysShown), cause: failureText(Cause.squash(cause)) })
          )
        )
      })

    const writeTable = (rules: TableRules, pending: ReadonlyArray<PendingRow>) =>
      Effect.gen(function*() {
        const keyExit = yield* Effect.exit(keyOf(rules))
        if (Exit.isFailure(keyExit)) return yield* countFailed(rules, pending.length, [], keyExit.cause)
        const { field, key } = keyExit.value
        // Keyed by the value itself (a number and its text are different keys, as they were for the database's
        // read); a bigint key within the safe range meets its number. Values are copied only when merged.
        const byKey = new Map<KeyValue, { readonly key: KeyValue; values: ReadonlyArray<Backfill.Value | null> }>()
        let unkeyed = 0
        for (const item of pending) {
          const keyValue = field === undefined ? undefined : keyValueOf(field, item.row)
          if (keyValue === undefined) {
            unkeyed++
            continue
          }
          const dedupKey = typeof keyValue === "bigint" && Number.isSafeInteger(Number(keyValue)) ? Number(keyValue) : keyValue
          const existing = byKey.get(dedupKey)
          if (existing === undefined) {
            byKey.set(dedupKey, { key: keyValue, values: item.values })
            continue
          }
          counts.coalesced++
          existing.values = existing.values.map((value, i) => item.values[i] ?? value)
        }
        if (unkeyed > 0) {
          counts.unkeyed += unkeyed
          yield* Metric.incrementBy(rules.metrics.unkeyed, unkeyed)
        }
        if (key._tag === "None" || byKey.size === 0) return
        const rows: ReadonlyArray<KeyedValues> = [...byKey.values()]
        const perStatement = dialect === "sqlite"
          ? Math.min(maxBatchRows, Math.floor(sqliteMaxParameters / (1 + rules.targets.length)))
          : maxBatchRows
        for (let start = 0; start < rows.length; start += perStatement) {
          const batch = rows.slice(start, start + perStatement)
          // Only targets some row of the batch fixes are set, so the statement stays small.
          const used = rules.targets.map((_, i) => i).filter((i) => batch.some((row) => row.values[i] != null))
          const statement = used.length === rules.targets.length
            ? writeStatement(dialect, rules.table, key, rules.targets, batch)
            : writeStatement(
              dialect,
              rules.table,
              key,
              used.map((i) => rules.targets[i]!),
              batch.map((row) => ({ key: row.key, values: used.map((i) => row.values[i] ?? null) }))
            )
          const result = yield* Effect.exit(writer.run(statement))
          if (Exit.isFailure(result)) {
            yield* countFailed(rules, batch.length, batch.map((row) => row.key), result.cause)
            continue
          }
          const written = result.value
          counts.writtenBack += written
          counts.alreadySet += batch.length - written
          yield* Metric.incrementBy(rules.metrics.writtenBack, written)
          if (batch.length > written) yield* Metric.incrementBy(rules.metrics.alreadySet, batch.length - written)
        }
      }).pipe(
        // A defect (a driver bug, a closed handle that throws) must not kill the write-back either.
        Effect.catchAllCause((cause) => countFailed(rules, pending.length, [], cause))
      )

    const writeChunk = (chunk: Chunk.Chunk<PendingRow>) =>
      Effect.gen(function*() {
        const byTable = new Map<TableRules, Array<PendingRow>>()
        for (const item of chunk) {
          const rows = byTable.get(item.table)
          if (rows === undefined) byTable.set(item.table, [item])
          else rows.push(item)
        }
        for (const [rules, pending] of byTable) yield* writeTable(rules, pending)
      }).pipe(Effect.withSpan("LazyMigration.writeBack", { attributes: { rows: chunk.length } }))

    let reportedDrops = 0
    const reportDrops = Effect.suspend(() => {
      const dropped = counts.dropped - reportedDrops
      if (dropped === 0) return Effect.void
      reportedDrops = counts.dropped
      return Effect.logWarning("lazy write-back queue full: fixed rows were dropped; they stay pending for a later read or the backfill").pipe(
        Effect.annotateLogs({ dropped, dropped_total: counts.dropped, queue_capacity: queueCapacity })
      )
    })

    // One writer at a time, so `flush` returns only after rows taken by the background fiber are written too.
    const writeLock = yield* Effect.makeSemaphore(1)
    const rowsPerBatch = options.maxBatchRows != null
      ? Effect.succeed(maxBatchRowsOption)
      : Effect.map(writeBackPath, (path) => (path._tag === "Worker" ? 5_000 : maxBatchRowsOption))
    const writeQueued = (onlyFullBatches: boolean, deadlineMs?: number): Effect.Effect<number> => writeLock.withPermits(1)(
      Effect.gen(function*() {
        maxBatchRows = yield* rowsPerBatch
        // Bounded by what is queued now, so a steady stream of reads cannot keep one flush going forever.
        const queued = yield* Queue.size(queue)
        // Woken by a full batch, write only full batches: the rest waits for the timer to coalesce more.
        let remaining = onlyFullBatches ? queued - (queued % maxBatchRows) : queued
        let taken = 0
        while (remaining > 0) {
          // Checked between batches rather than by interrupting one: a batch either runs whole or not at all.
          if (deadlineMs !== undefined && (yield* Clock.currentTimeMillis) >= deadlineMs) break
          // Taken rows are written (or counted failed) before an interruption is honoured: none vanish.
          const n = yield* Effect.uninterruptible(
            Effect.flatMap(Queue.takeUpTo(queue, Math.min(remaining, maxBatchRows)), (chunk) =>
              Effect.as(writeChunk(chunk), chunk.length))
          )
          if (n === 0) break
          remaining -= n
          taken += n
          // On the app's SQLite client a batch runs on the readers' thread: let them in between batches.
          yield* Effect.yieldNow()
        }
        yield* publishReadMetrics
        yield* reportDrops
        return taken
      })
    ).pipe(
      // Whatever the reader was inside, the write-back is never part of its transaction.
      Effect.locallyWith(FiberRef.currentContext, Context.omit(SqlClient.TransactionConnection))
    )

    const flush: Effect.Effect<void> = Effect.flatMap(
      Effect.serviceOption(SqlClient.TransactionConnection),
      (transaction) =>
        Option.isSome(transaction)
          ? Effect.dieMessage(
            "LazyMigration.flush was called inside a transaction; call it outside (on SQLite it would wait for that transaction's own connection)"
          )
          : Effect.asVoid(writeQueued(false))
    )

    // Read without Queue.size, which interrupts once the queue is shut down (after the scope closed).
    const stats: Effect.Effect<Stats> = Effect.sync(() => ({
      ...counts,
      pending: Option.getOrElse(queue.unsafeSize(), () => 0)
    }))

    // The fiber also runs with the write-back off: it publishes the read path's metrics.
    if (enabled) {
      const nextRound = Effect.raceFirst(
        Effect.as(Effect.sleep(flushInterval), false),
        Effect.as(Queue.take(batchFull), true)
      ).pipe(
        Effect.flatMap(writeQueued),
        Effect.catchAllCause((cause) => Effect.logError("lazy write-back round failed", cause))
      )
      const worker = yield* Effect.forkDaemon(Effect.forever(nextRound))
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(drainTimeout)
          // Waits for a batch the fiber is writing (bounded by writeTimeout), then drains what is left.
          yield* Fiber.interrupt(worker)
          const drained = yield* writeQueued(false, deadline)
          const left = yield* Queue.size(queue)
          // Reads after close are not queued (they count as dropped); the caller never sees a closed queue.
          yield* Queue.shutdown(queue)
          if (left > 0) {
            return yield* Effect.logWarning("lazy write-back drain timed out; the rows left stay pending").pipe(
              Effect.annotateLogs({ drained, left, drain_timeout: Duration.format(drainTimeout) })
            )
          }
          if (writeBack) {
            yield* Effect.logInfo("lazy write-back drained").pipe(
              Effect.annotateLogs({ drained, written_back: counts.writtenBack, failed: counts.failed })
            )
          }
        })
      )
    }

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
