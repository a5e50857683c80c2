/**
 * LazyMigration's write-back, apart from the read path that feeds it: the bounded queue of fixed rows,
 * the rounds of the background fiber (on a timer, or woken by a full batch), deduplication by key and
 * batching per table (`tableWriter`), `flush`, the drain on scope close, and the counts and metrics of
 * all that. The statements themselves are built in `lazyWriteBack` and run by a `Writer` (on the app's
 * client or the write-back's own thread: `lazyWorkerWriter`). Best effort throughout: failures are
 * counted and logged, never seen by readers, and rows not written stay pending.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Backfill } from "@strata/core"
import { Cause, Clock, Context, Duration, Effect, Exit, Fiber, FiberRef, Metric, Option, Queue } from "effect"
import type { Stats } from "../LazyMigration.js"
import { failureText } from "../SqlErrors.js"
import { statementSizes } from "./batchSize.js"
import type { Counts, TableRules } from "./lazyRead.js"
import { appColumnNames } from "./lazyRead.js"
import type { KeyedValues, KeyValue, TableKey, Writer } from "./lazyWriteBack.js"
import { discoverKey, keyValueOf, writeStatement } from "./lazyWriteBack.js"
import { type PendingBatch, pendingRows } from "./pendingRows.js"

const describeKeys = (keys: ReadonlyArray<KeyValue>): string => {
  const shown = keys.slice(0, 20).map(String).join(", ")
  return keys.length > 20 ? `${shown} (and ${keys.length - 20} more)` : shown
}

// SQLite binds at most 32,766 parameters per statement.
const sqliteMaxParameters = 32_766

/** Adds the read path's plain counts to the tables' metrics (see `TableRules.unpublished`). */
const publishReadMetrics = (tables: ReadonlyMap<string, TableRules>) =>
  Effect.suspend(() => {
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

/**
 * Writes a chunk taken from the queue: per table, its rows deduplicated by key, in statements of at most
 * `maxBatchRows` rows, sized by how long the table's last statements ran so that one runs within about
 * `maxBatchMs` (each holds SQLite's write lock, or its rows' locks, while it runs: the app's writers wait that
 * long). Keys are discovered on this side, once per table, so reads never query the catalogue.
 */
const tableWriter = (sql: SqlClient.SqlClient, dialect: "sqlite" | "pg", writer: Writer, counts: Counts, maxBatchMs: number) => {
  // A table's first statement has 500 rows (the default on the app's client); statements grow (at most twofold
  // each) while they run well within the target, and shrink in proportion when they run over half of it.
  const sizes = statementSizes(maxBatchMs, 500)
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

  // `pending`: rows of this one table.
  const writeTable = (rules: TableRules, pending: PendingBatch, maxBatchRows: number) =>
    Effect.gen(function*() {
      const keyExit = yield* Effect.exit(keyOf(rules))
      if (Exit.isFailure(keyExit)) return yield* countFailed(rules, pending.rows.length, [], keyExit.cause)
      const { field, key } = keyExit.value
      // Keyed by the value itself (a number and its text are different keys, as they were for the database's
      // read); a bigint key within the safe range meets its number. Values are copied only when merged.
      const byKey = new Map<KeyValue, { readonly key: KeyValue; values: ReadonlyArray<Backfill.Value | null> }>()
      let unkeyed = 0
      for (let i = 0; i < pending.rows.length; i++) {
        const values = pending.values[i]!
        const keyValue = field === undefined ? undefined : keyValueOf(field, pending.rows[i]!)
        if (keyValue === undefined) {
          unkeyed++
          continue
        }
        const dedupKey = typeof keyValue === "bigint" && Number.isSafeInteger(Number(keyValue)) ? Number(keyValue) : keyValue
        const existing = byKey.get(dedupKey)
        if (existing === undefined) {
          byKey.set(dedupKey, { key: keyValue, values })
          continue
        }
        counts.coalesced++
        existing.values = existing.values.map((value, t) => values[t] ?? value)
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
      for (let start = 0; start < rows.length;) {
        const size = sizes.size(rules.table, perStatement)
        const batch = rows.slice(start, start + size)
        start += batch.length
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
        counts.statements++
        if (Exit.isFailure(result)) {
          yield* countFailed(rules, batch.length, batch.map((row) => row.key), result.cause)
          continue
        }
        const { ms, written } = result.value
        sizes.ran(rules.table, perStatement, size, batch.length, ms)
        yield* Metric.update(rules.metrics.statementMs, ms)
        counts.writtenBack += written
        counts.alreadySet += batch.length - written
        yield* Metric.incrementBy(rules.metrics.writtenBack, written)
        if (batch.length > written) yield* Metric.incrementBy(rules.metrics.alreadySet, batch.length - written)
      }
    }).pipe(
      // A defect (a driver bug, a closed handle that throws) must not kill the write-back either.
      Effect.catchAllCause((cause) => countFailed(rules, pending.rows.length, [], cause))
    )

  const writeChunk = (chunk: PendingBatch, maxBatchRows: number) =>
    Effect.gen(function*() {
      const { rows, tables, values } = chunk
      // Mostly one table: its rows as taken, without regrouping.
      if (tables.every((table) => table === tables[0])) {
        if (tables.length > 0) yield* writeTable(tables[0]!, chunk, maxBatchRows)
        return
      }
      const byTable = new Map<TableRules, { tables: Array<TableRules>; rows: Array<(typeof rows)[number]>; values: Array<(typeof values)[number]> }>()
      for (let i = 0; i < tables.length; i++) {
        const table = tables[i]!
        let pending = byTable.get(table)
        if (pending === undefined) byTable.set(table, pending = { tables: [], rows: [], values: [] })
        pending.tables.push(table)
        pending.rows.push(rows[i]!)
        pending.values.push(values[i]!)
      }
      for (const [rules, pending] of byTable) yield* writeTable(rules, pending, maxBatchRows)
    }).pipe(Effect.withSpan("LazyMigration.writeBack", { attributes: { rows: chunk.tables.length } }))

  return writeChunk
}

/** What the write-back needs from the layer: its resolved options, the writer chosen, and the shared counts. */
export interface WriteBackQueueInput {
  readonly sql: SqlClient.SqlClient
  readonly dialect: "sqlite" | "pg"
  readonly writer: Writer
  /** Where the writer runs; on SQLite it settles once the write-back's thread has opened the database or given up. */
  readonly writeBackPath: Effect.Effect<{ readonly _tag: string }>
  readonly tables: ReadonlyMap<string, TableRules>
  readonly counts: Counts
  readonly enabled: boolean
  readonly writeBack: boolean
  readonly queueCapacity: number
  readonly maxBatchRows: number
  /** Whether `maxBatchRows` was given; if not, its default depends on where the write-back runs. */
  readonly maxBatchRowsGiven: boolean
  readonly flushInterval: Duration.Duration
  readonly drainTimeout: Duration.Duration
  /** How long one statement should run at most: the aim of its size (see `tableWriter`). */
  readonly maxBatchTime: Duration.Duration
}

/**
 * The write-back of one layer: its queue, `backlogIsFull` for the read path, `flush` and `stats`; its
 * background fiber lives in the caller's scope and drains the queue when the scope closes.
 */
export const writeBackQueue = (input: WriteBackQueueInput) =>
  Effect.gen(function*() {
    const { counts, drainTimeout, enabled, flushInterval, queueCapacity, writeBack, writeBackPath } = input
    const maxBatchRowsOption = input.maxBatchRows
    // Rows per statement, and per round's step. Set each round from where the write-back runs (see `rowsPerBatch`).
    let maxBatchRows = maxBatchRowsOption
    const writeChunk = tableWriter(input.sql, input.dialect, input.writer, counts, Duration.toMillis(input.maxBatchTime))
    const publish = publishReadMetrics(input.tables)
    const queue = pendingRows(queueCapacity)
    // Rung when a full batch is waiting: a fiber reading SQLite in a tight loop never lets the event loop fire
    // timers. It does not let the write-back in either: Effect's semaphores are not fair, so a reader that takes
    // and releases the one connection thousands of times between yields starves a waiting writer. So while a
    // full batch waits, readers that add to it (or find the queue full) yield once (a scheduler turn, never a
    // wait on the database). On the write-back's own thread the yields matter too: every 2,048 turns Effect's
    // scheduler lets the event loop run, and only then is the thread's answer heard and the next batch taken.
    const batchFull = yield* Queue.sliding<void>(1)
    const backlogIsFull = (): boolean => {
      if (queue.size() < maxBatchRows) return false
      Queue.unsafeOffer(batchFull, undefined)
      return true
    }

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
    const rowsPerBatch = input.maxBatchRowsGiven
      ? Effect.succeed(maxBatchRowsOption)
      : Effect.map(writeBackPath, (path) => (path._tag === "Worker" ? 5_000 : maxBatchRowsOption))
    const writeQueued = (onlyFullBatches: boolean, deadlineMs?: number): Effect.Effect<number> => writeLock.withPermits(1)(
      Effect.gen(function*() {
        maxBatchRows = yield* rowsPerBatch
        // Bounded by what is queued now, so a steady stream of reads cannot keep one flush going forever.
        const queued = queue.size()
        // Woken by a full batch, write only full batches: the rest waits for the timer to coalesce more.
        let remaining = onlyFullBatches ? queued - (queued % maxBatchRows) : queued
        let taken = 0
        while (remaining > 0) {
          // Checked between batches rather than by interrupting one: a batch either runs whole or not at all.
          if (deadlineMs !== undefined && (yield* Clock.currentTimeMillis) >= deadlineMs) break
          // Taken rows are written (or counted failed) before an interruption is honoured: none vanish.
          const n = yield* Effect.uninterruptible(
            Effect.suspend(() => {
              const chunk = queue.takeUpTo(Math.min(remaining, maxBatchRows))
              return Effect.as(writeChunk(chunk, maxBatchRows), chunk.tables.length)
            })
          )
          if (n === 0) break
          remaining -= n
          taken += n
          // On the app's SQLite client a batch runs on the readers' thread: let them in between batches.
          yield* Effect.yieldNow()
        }
        yield* publish
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

    const stats: Effect.Effect<Stats> = Effect.sync(() => ({ ...counts, pending: queue.size() }))

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
          const left = queue.size()
          // Reads after close are not queued (they count as dropped); the caller never sees a closed queue.
          queue.close()
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

    return { queue, backlogIsFull, flush, stats } as const
  })
