/**
 * Write-behind appends over `ChatStore` for hot paths (seed 004, without its data loss).
 *
 * `append` validates the message, assigns the session's next `seq` and an id (so the order is
 * fixed when it returns), buffers it and returns; it does not wait for the database. A background
 * fiber writes the buffer every `intervalMs`, or as soon as `maxBatch` messages are pending, in one
 * transaction per flush (multi-row INSERTs). Reads through this service (`getMessages`,
 * `getMessagesAfter`, `getRecentMessages`, `getSessionStats`) merge the buffered messages in, so a
 * caller reads its own writes.
 *
 * Nothing acknowledged is dropped silently:
 * - Messages leave the buffer only after their flush committed. A flush that fails on the
 *   connection or server keeps them all and is retried with exponential backoff, in order.
 * - A row the database refuses (a constraint, e.g. a supplied id that is already stored, or a
 *   session hard-deleted meanwhile) is isolated by bisecting the batch inside the flush
 *   transaction (savepoints); the rest commits, the refused message is logged, counted and kept as
 *   a `PoisonMessage` (see `poisoned`). A message found already stored with the same session and
 *   `seq` (a commit whose acknowledgement was lost) counts as written, not as a duplicate.
 * - The buffer is bounded (`capacity`): `append` waits for room instead of dropping.
 * - Closing the layer's scope (SIGTERM under `NodeRuntime.runMain`, or an app's layer release)
 *   stops taking appends, lets the running flush finish and flushes everything left, retrying for
 *   up to `drainTimeoutMs`, before the layers below it (the `SqlClient`) close; whatever still cannot
 *   be written is logged as an error with its ids.
 *
 * `WriteBehind` must be the only writer of the sessions it appends to while it runs: it reads a
 * session's last `seq` once, when it first sees the session. A session soft-deleted after that
 * still receives the messages already accepted.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Timestamp } from "@strata/core"
import {
  Array as Arr,
  Clock,
  Config,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Schema
} from "effect"
import * as ChatStore from "./ChatStore.js"
import { Database } from "@strata/sql"
import type { MessageRow } from "./internal/chatRows.js"
import { insertMessages, lastSeq, messageColumns, messageFromRow, toMillis, toNumber } from "./internal/chatRows.js"
import { FairPermits } from "./internal/fairPermits.js"
import { Options as NumericOption } from "@strata/core"
import { SqlErrors } from "@strata/sql"
import { WriteBuffer } from "./internal/writeBuffer.js"

/**
 * How `WriteBehind` batches and retries.
 *
 * @since 0.1.0
 */
export interface WriteBehindOptions {
  /** Longest a message waits before its flush starts, at least 1 ms. Default 100 ms. */
  readonly intervalMs?: number | undefined
  /** Messages per flush (a positive integer); reaching it starts a flush at once. Default 1000. */
  readonly maxBatch?: number | undefined
  /**
   * Most buffered messages (a positive integer); `append` waits beyond it. Default 10,000, raised to
   * `maxBatch` when that is larger; a `capacity` given below `maxBatch` is refused (a flush by size
   * could never start).
   */
  readonly capacity?: number | undefined
  /** First retry delay after a failed flush (at least 1 ms), doubled up to `maxRetryDelayMs`. Default 50 ms. */
  readonly retryDelayMs?: number | undefined
  /** Default 5000 ms, raised to `retryDelayMs` when that is larger; given below `retryDelayMs`, refused. */
  readonly maxRetryDelayMs?: number | undefined
  /** How long closing keeps retrying to write what is buffered (zero or more ms). Default 30,000 ms. */
  readonly drainTimeoutMs?: number | undefined
  /** Sessions whose next `seq` is remembered when idle (a positive integer). Default 100,000. */
  readonly maxTrackedSessions?: number | undefined
}

/**
 * An option is not allowed (e.g. `maxBatch: NaN`, `capacity: 2.5`); nothing was started.
 *
 * @since 0.1.0
 */
export class InvalidWriteBehindOptions extends Schema.TaggedError<InvalidWriteBehindOptions>()("InvalidWriteBehindOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid write-behind option ${this.option}: ${this.reason}`
  }
}

const invalidOption = (option: string, reason: string) => new InvalidWriteBehindOptions({ option, reason })

/** The options with their defaults, or the first one not allowed. */
const settingsOf = (options: WriteBehindOptions) =>
  Effect.gen(function*() {
    const intervalMs = yield* NumericOption.resolve("intervalMs", options.intervalMs, 100, NumericOption.millis(1), invalidOption)
    const maxBatch = yield* NumericOption.resolve("maxBatch", options.maxBatch, 1000, NumericOption.positiveCount, invalidOption)
    const capacity = yield* NumericOption.resolve("capacity", options.capacity, Math.max(maxBatch, 10_000), NumericOption.positiveCount, invalidOption)
    if (capacity < maxBatch) {
      return yield* invalidOption("capacity", `must be at least maxBatch (${maxBatch}), got ${capacity}`)
    }
    const retryDelayMs = yield* NumericOption.resolve("retryDelayMs", options.retryDelayMs, 50, NumericOption.millis(1), invalidOption)
    const maxRetryDelayMs = yield* NumericOption.resolve(
      "maxRetryDelayMs",
      options.maxRetryDelayMs,
      Math.max(retryDelayMs, 5000),
      NumericOption.millis(1),
      invalidOption
    )
    if (maxRetryDelayMs < retryDelayMs) {
      return yield* invalidOption("maxRetryDelayMs", `must be at least retryDelayMs (${retryDelayMs}), got ${maxRetryDelayMs}`)
    }
    const drainTimeoutMs = yield* NumericOption.resolve("drainTimeoutMs", options.drainTimeoutMs, 30_000, NumericOption.millis(0), invalidOption)
    const maxTrackedSessions = yield* NumericOption.resolve(
      "maxTrackedSessions",
      options.maxTrackedSessions,
      100_000,
      NumericOption.positiveCount,
      invalidOption
    )
    return { intervalMs, maxBatch, capacity, retryDelayMs, maxRetryDelayMs, drainTimeoutMs, maxTrackedSessions }
  })

/**
 * A message the database refused; it is not retried (the rest of its flush was written).
 *
 * @since 0.1.0
 */
export class PoisonMessage extends Schema.TaggedError<PoisonMessage>()("PoisonMessage", {
  messageId: Schema.String,
  sessionId: Schema.String,
  seq: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `message ${this.messageId} (session ${JSON.stringify(this.sessionId)}, seq ${this.seq}) was refused by the database: ${this.reason}`
  }
}

/**
 * `append` after the write-behind began closing.
 *
 * @since 0.1.0
 */
export class WriteBehindClosed extends Schema.TaggedError<WriteBehindClosed>()("WriteBehindClosed", {}) {
  override get message(): string {
    return "the write-behind buffer is closing and takes no more messages"
  }
}

/**
 * A snapshot of the counters (also exported as Effect metrics `strata_write_behind_*`).
 *
 * @since 0.1.0
 */
export interface WriteBehindMetrics {
  /** Buffered messages, including the flush in progress. */
  readonly pending: number
  /** Messages written. */
  readonly flushed: number
  /** Flushes committed. */
  readonly flushes: number
  /** Flush attempts that failed and were retried. */
  readonly failedFlushes: number
  /** Messages refused by the database. */
  readonly poisoned: number
  readonly lastFlushMs: number | null
  readonly maxFlushMs: number | null
  readonly totalFlushMs: number
}

const pendingGauge = Metric.gauge("strata_write_behind_pending", { description: "messages buffered, not yet written" })
const flushedCounter = Metric.counter("strata_write_behind_flushed", { description: "messages written", incremental: true })
const failuresCounter = Metric.counter("strata_write_behind_flush_failures", { description: "failed flush attempts", incremental: true })
const poisonedCounter = Metric.counter("strata_write_behind_poisoned", { description: "messages refused by the database", incremental: true })
const flushLatency = Metric.histogram(
  "strata_write_behind_flush_ms",
  MetricBoundaries.fromIterable([1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]),
  "flush duration in ms"
)

const keptPoison = 1000

interface FlushOutcome {
  readonly written: number
  readonly poisoned: ReadonlyArray<PoisonMessage>
}

const decodePageOptions = ChatStore.decoder(ChatStore.PageOptions)

const makeService = (options: WriteBehindOptions = {}) =>
  Effect.gen(function*() {
    const { capacity, drainTimeoutMs, intervalMs, maxBatch, maxRetryDelayMs, maxTrackedSessions, retryDelayMs } =
      yield* settingsOf(options)
    const store = yield* ChatStore.ChatStore
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect

    const buffer = new WriteBuffer()
    const room = new FairPermits(capacity)
    const loadLock = yield* Effect.makeSemaphore(1)
    const wake = yield* Effect.makeLatch(false)
    const waiters: Array<{ readonly position: number; readonly done: Deferred.Deferred<void, WriteBehindClosed> }> = []
    const poisonLog: Array<PoisonMessage> = []
    let closed = false
    const counters = {
      flushed: 0,
      flushes: 0,
      failedFlushes: 0,
      poisoned: 0,
      lastFlushMs: null as number | null,
      maxFlushMs: null as number | null,
      totalFlushMs: 0
    }

    /** Makes sure the buffer knows the session's next seq: read once from the database. */
    const track = (sessionId: string) =>
      buffer.isTracked(sessionId) ? Effect.void : loadLock.withPermits(1)(
        Effect.gen(function*() {
          if (buffer.isTracked(sessionId)) return
          const session = yield* store.getSession(sessionId)
          if (session.deletedAtMs !== null) {
            return yield* new ChatStore.SessionDeleted({ sessionId, deletedAtMs: session.deletedAtMs })
          }
          const last = yield* lastSeq(sql, sessionId)
          buffer.track(sessionId, last)
        })
      )

    type AppendError =
      | ChatStore.InvalidInput
      | ChatStore.SessionNotFound
      | ChatStore.SessionDeleted
      | ChatStore.MessageExists
      | WriteBehindClosed
      | SqlError

    /** Assigns seqs and buffers; the caller holds the room and has tracked the session. Synchronous. */
    const pushNow = (
      id: string,
      valid: ReadonlyArray<ChatStore.ValidMessage>,
      now: Timestamp.EpochMillis
    ): ReadonlyArray<ChatStore.Message> => {
      const { messages } = buffer.push(
        id,
        valid.length,
        (i, seq) => ChatStore.toMessage(valid[i]!, id, seq, now),
        (i) => valid[i]!.id !== undefined
      )
      if (buffer.pending >= maxBatch) wake.unsafeOpen()
      return messages
    }

    const bufferValid = (
      sessionId: string,
      valid: ReadonlyArray<ChatStore.ValidMessage>
    ): Effect.Effect<ReadonlyArray<ChatStore.Message>, AppendError> =>
      Effect.clockWith((clock): Effect.Effect<ReadonlyArray<ChatStore.Message>, AppendError> => {
        if (closed) return Effect.fail(new WriteBehindClosed())
        const checked = ChatStore.validateId(sessionId, "sessionId")
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const id = checked.right
        if (valid.length > capacity) {
          return Effect.fail(new ChatStore.InvalidInput({ field: "messages", reason: `more than the buffer's capacity (${capacity})` }))
        }
        for (const message of valid) {
          if (message.id !== undefined && buffer.hasSuppliedId(message.id)) {
            return Effect.fail(new ChatStore.MessageExists({ messageId: message.id, sessionId: id }))
          }
        }
        // The hot path, in one synchronous step: a known session and room in the buffer.
        if (buffer.isTracked(id) && room.tryTake(valid.length)) {
          return Effect.succeed(pushNow(id, valid, Math.floor(clock.unsafeCurrentTimeMillis()) as Timestamp.EpochMillis))
        }
        return Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(
            restore(room.take(valid.length)),
            restore(Effect.gen(function*() {
              yield* track(id)
              const now = yield* Timestamp.now
              // Checked again in the same synchronous step as the push: nothing enters the buffer after draining began.
              return yield* Effect.suspend(() =>
                closed ? Effect.fail(new WriteBehindClosed()) : Effect.succeed(pushNow(id, valid, now))
              )
            })).pipe(Effect.onError(() => Effect.sync(() => room.release(valid.length))))
          )
        )
      })

    const appendAll = (
      sessionId: string,
      messages: ReadonlyArray<ChatStore.NewMessage>
    ): Effect.Effect<ReadonlyArray<ChatStore.Message>, AppendError> =>
      Effect.flatMap(ChatStore.validateMessages(messages), (valid) =>
        valid.length === 0 ? Effect.succeed([]) : bufferValid(sessionId, valid))

    const append = (
      sessionId: string,
      message: ChatStore.NewMessage
    ): Effect.Effect<ChatStore.Message, AppendError> =>
      Effect.clockWith((clock) => {
        if (closed) return Effect.fail(new WriteBehindClosed())
        const decoded = ChatStore.validateMessage(message, "message")
        if (Either.isLeft(decoded)) return Effect.fail(decoded.left)
        const valid = decoded.right
        // The hot path in one synchronous step: no supplied id, a session already tracked (so its id
        // was validated then), room in the buffer.
        if (valid.id === undefined && buffer.isTracked(sessionId) && room.tryTake(1)) {
          const now = Math.floor(clock.unsafeCurrentTimeMillis()) as Timestamp.EpochMillis
          const stored = buffer.pushOne(sessionId, (seq) => ChatStore.toMessage(valid, sessionId, seq, now))!
          if (buffer.pending >= maxBatch) wake.unsafeOpen()
          return Effect.succeed(stored)
        }
        return Effect.map(bufferValid(sessionId, [valid]), (stored) => stored[0]!)
      })

    // ---- flushing

    /** Inserts `messages` under a savepoint; a refused row is found by bisection and reported. */
    const insertIsolating = (
      messages: ReadonlyArray<ChatStore.Message>,
      poisoned: Array<PoisonMessage>
    ): Effect.Effect<number, SqlError> =>
      sql.withTransaction(insertMessages(sql, messages)).pipe(
        Effect.as(messages.length),
        Effect.catchAll((error) => {
          if (!SqlErrors.isRowRejected(error)) return Effect.fail(error)
          if (messages.length === 1) return classifyRefused(messages[0]!, error, poisoned)
          const middle = Math.floor(messages.length / 2)
          return Effect.zipWith(
            insertIsolating(messages.slice(0, middle), poisoned),
            insertIsolating(messages.slice(middle), poisoned),
            (a, b) => a + b
          )
        })
      )

    const classifyRefused = (
      message: ChatStore.Message,
      error: SqlError,
      poisoned: Array<PoisonMessage>
    ): Effect.Effect<number, SqlError> =>
      Effect.gen(function*() {
        const stored = yield* sql<{ session_id: string; seq: number | string }>`SELECT session_id, seq FROM messages WHERE id = ${message.id}`
        const row = stored[0]
        if (row !== undefined && row.session_id === message.sessionId && toNumber(row.seq) === message.seq) {
          // Written by an earlier attempt whose commit was not acknowledged: not a duplicate, not poison.
          return 1
        }
        poisoned.push(
          new PoisonMessage({ messageId: message.id, sessionId: message.sessionId, seq: message.seq, reason: SqlErrors.failureText(error) })
        )
        return 0
      })

    const touchSessions = (messages: ReadonlyArray<ChatStore.Message>) => {
      const newest = new Map<string, number>()
      for (const message of messages) {
        const current = newest.get(message.sessionId)
        if (current === undefined || message.createdAtMs > current) newest.set(message.sessionId, message.createdAtMs)
      }
      return Effect.forEach(
        Arr.chunksOf([...newest], 500),
        (chunk) => {
          const params: Array<unknown> = []
          const rows = chunk.map(([sessionId, atMs]) => {
            params.push(sessionId, atMs)
            return dialect === "pg" ? `($${params.length - 1}::text, $${params.length}::bigint)` : "(?, ?)"
          })
          return sql.unsafe(
            `WITH v(id, at_ms) AS (VALUES ${rows.join(", ")})
             UPDATE sessions SET last_activity_ms = v.at_ms FROM v
             WHERE sessions.id = v.id AND sessions.last_activity_ms < v.at_ms`,
            params
          )
        },
        { discard: true }
      )
    }

    /** One flush attempt of `batch` in one transaction. */
    const writeBatch = (batch: ReadonlyArray<ChatStore.Message>): Effect.Effect<FlushOutcome, SqlError> =>
      sql.withTransaction(Effect.gen(function*() {
        const poisoned: Array<PoisonMessage> = []
        const written = yield* insertIsolating(batch, poisoned)
        const refused = new Set(poisoned.map((p) => p.messageId))
        yield* touchSessions(refused.size === 0 ? batch : batch.filter((m) => !refused.has(m.id)))
        return { written, poisoned }
      })).pipe(
        // A COMMIT that fails surfaces as a defect in @effect/sql: it is a failed attempt like any other.
        Effect.catchAllDefect((defect) => Effect.fail(new SqlError({ cause: defect, message: "flush failed" })))
      )

    const settleWaiters = Effect.suspend(() => {
      const ready = waiters.filter((w) => w.position <= buffer.completed)
      if (ready.length === 0) return Effect.void
      for (const waiter of ready) waiters.splice(waiters.indexOf(waiter), 1)
      return Effect.forEach(ready, (w) => Deferred.succeed(w.done, undefined), { discard: true })
    })

    /** Writes the oldest batch once; on success the batch leaves the buffer. */
    const flushOnce: Effect.Effect<boolean, SqlError> = Effect.uninterruptible(
      Effect.gen(function*() {
        const batch = buffer.nextBatch(maxBatch)
        if (batch.length === 0) return false
        const started = yield* Clock.currentTimeMillis
        const outcome = yield* writeBatch(batch).pipe(
          Effect.tapError((error) =>
            Effect.gen(function*() {
              counters.failedFlushes++
              yield* Metric.increment(failuresCounter)
              yield* Effect.logWarning("write-behind flush failed; the batch stays buffered and is retried").pipe(
                Effect.annotateLogs({ messages: batch.length, reason: SqlErrors.failureText(error) })
              )
            })
          )
        )
        const elapsed = (yield* Clock.currentTimeMillis) - started
        buffer.complete(batch)
        room.release(batch.length)
        counters.flushes++
        counters.flushed += outcome.written
        counters.lastFlushMs = elapsed
        counters.maxFlushMs = Math.max(counters.maxFlushMs ?? 0, elapsed)
        counters.totalFlushMs += elapsed
        yield* Metric.incrementBy(flushedCounter, outcome.written)
        yield* Metric.update(flushLatency, elapsed)
        yield* Metric.set(pendingGauge, buffer.pending)
        for (const poison of outcome.poisoned) {
          counters.poisoned++
          poisonLog.push(poison)
          if (poisonLog.length > keptPoison) poisonLog.shift()
          // A refused session (e.g. hard-deleted) is re-checked on its next append.
          buffer.forget(poison.sessionId)
          yield* Metric.increment(poisonedCounter)
          yield* Effect.logError("write-behind message refused by the database; the rest of its flush was written").pipe(
            Effect.annotateLogs({
              message_id: poison.messageId,
              session_id: poison.sessionId,
              seq: poison.seq,
              reason: poison.reason
            })
          )
        }
        buffer.evictIdle(maxTrackedSessions)
        yield* settleWaiters
        return true
      })
    )

    /** `flushOnce` until it succeeds, with exponential backoff between failed attempts. */
    const flushWithRetry = (deadline: number | undefined) =>
      Effect.gen(function*() {
        let delay = retryDelayMs
        while (true) {
          const attempt = yield* Effect.either(flushOnce)
          if (Either.isRight(attempt)) return attempt.right
          if (deadline !== undefined && (yield* Clock.currentTimeMillis) + delay > deadline) {
            return yield* Effect.fail(attempt.left)
          }
          yield* Effect.sleep(Duration.millis(delay))
          delay = Math.min(maxRetryDelayMs, delay * 2)
        }
      })

    const flusher = Effect.gen(function*() {
      let backToBack = 0
      while (true) {
        if (buffer.pending < maxBatch) {
          backToBack = 0
          yield* Effect.raceFirst(Effect.sleep(Duration.millis(intervalMs)), wake.await)
        } else if (++backToBack % 8 === 0) {
          // Under sustained load, back to the event loop now and then so I/O and signals get their turn.
          yield* Effect.sleep(Duration.zero)
        } else {
          // Let the fibers the last flush woke (appenders given room, readers waiting for the SQLite
          // connection) run before the next flush takes the connection again.
          yield* Effect.yieldNow()
        }
        wake.unsafeClose()
        yield* flushWithRetry(undefined)
      }
    })

    const fiber = yield* Effect.forkDaemon(flusher)

    const drain = Effect.gen(function*() {
      closed = true
      yield* Fiber.interrupt(fiber)
      const deadline = (yield* Clock.currentTimeMillis) + drainTimeoutMs
      const result = yield* Effect.either(Effect.gen(function*() {
        while (buffer.pending > 0) yield* flushWithRetry(deadline)
      }))
      if (Either.isLeft(result)) {
        const lost = buffer.nextBatch(buffer.pending)
        yield* Effect.logError("write-behind closed with messages it could not write").pipe(
          Effect.annotateLogs({
            unwritten: lost.length,
            message_ids: lost.map((m) => m.id).join(","),
            reason: SqlErrors.failureText(result.left)
          })
        )
      } else {
        yield* Effect.logDebug("write-behind drained").pipe(Effect.annotateLogs({ flushed: counters.flushed }))
      }
      // Wake whoever still waits (for room, or for a flush): they get WriteBehindClosed, not a hang.
      yield* Effect.forEach(waiters.splice(0), (w) => Deferred.fail(w.done, new WriteBehindClosed()), { discard: true })
      room.release(capacity)
    })
    // Added after the SqlClient was acquired, so it runs before the client's own finalizer closes it.
    yield* Effect.addFinalizer(() => drain)

    const flush: Effect.Effect<void, WriteBehindClosed> = Effect.suspend(() => {
      const position = buffer.completed + buffer.pending
      if (position <= buffer.completed) return Effect.void
      if (closed) return Effect.fail(new WriteBehindClosed())
      return Effect.flatMap(Deferred.make<void, WriteBehindClosed>(), (done) => {
        waiters.push({ position, done })
        wake.unsafeOpen()
        return Deferred.await(done)
      })
    })

    // ---- reads that see the buffer

    const select = (rows: Effect.Effect<ReadonlyArray<MessageRow>, SqlError>) =>
      Effect.map(rows, (found) => found.map((row) => messageFromRow(row, dialect)))

    /** Stored and buffered messages in `seq` order, each once (a message flushed meanwhile is in both). */
    const merge = (stored: ReadonlyArray<ChatStore.Message>, buffered: ReadonlyArray<ChatStore.Message>) => {
      const bySeq = new Map<number, ChatStore.Message>()
      for (const message of stored) bySeq.set(message.seq, message)
      for (const message of buffered) if (!bySeq.has(message.seq)) bySeq.set(message.seq, message)
      return [...bySeq.values()].sort((a, b) => a.seq - b.seq)
    }

    const getMessages = (
      sessionId: string,
      pageOptions: { readonly page?: number; readonly pageSize?: number } = {}
    ): Effect.Effect<ChatStore.MessagePage, ChatStore.InvalidInput | ChatStore.SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const { page, pageSize } = yield* decodePageOptions(pageOptions, "")
        const session = yield* store.getSession(sessionId)
        // The buffer is read before the database: a message flushed in between is seen twice and merged.
        const buffered = buffer.snapshot(session.id)
        if (buffered.length === 0) return yield* store.getMessages(session.id, { page, pageSize })
        const firstBuffered = buffered[0]!.seq
        const offset = (page - 1) * pageSize
        const wanted = pageSize + 1
        // Stored messages before the oldest buffered one come first in the order, on their own.
        const before = yield* Effect.map(
          sql<{ n: number | string }>`SELECT count(*) AS n FROM messages WHERE session_id = ${session.id} AND seq < ${firstBuffered}`,
          (rows) => toNumber(rows[0]?.n ?? 0)
        )
        const head = offset < before
          ? yield* select(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
              WHERE session_id = ${session.id} AND seq < ${firstBuffered} ORDER BY seq LIMIT ${wanted} OFFSET ${offset}`)
          : []
        const remaining = wanted - head.length
        let tail: ReadonlyArray<ChatStore.Message> = []
        if (remaining > 0) {
          const skip = Math.max(0, offset - before)
          // Up to `buffered.length` of these may also be buffered; fetching that many more keeps the merge exact.
          const stored = yield* select(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
            WHERE session_id = ${session.id} AND seq >= ${firstBuffered} ORDER BY seq LIMIT ${skip + remaining + buffered.length}`)
          tail = merge(stored, buffered).slice(skip, skip + remaining)
        }
        const messages = [...head, ...tail]
        return { sessionId: session.id, page, pageSize, messages: messages.slice(0, pageSize), hasMore: messages.length > pageSize }
      })

    const getMessagesAfter = (
      sessionId: string,
      afterSeq: number,
      limit: number
    ): Effect.Effect<ReadonlyArray<ChatStore.Message>, ChatStore.InvalidInput | ChatStore.SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const buffered = buffer.snapshot(sessionId).filter((m) => m.seq > afterSeq)
        if (buffered.length === 0) return yield* store.getMessagesAfter(sessionId, afterSeq, limit)
        const stored = yield* store.getMessagesAfter(sessionId, afterSeq, limit)
        const more = stored.length === limit
          ? yield* select(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
              WHERE session_id = ${sessionId} AND seq > ${stored[stored.length - 1]!.seq}
              ORDER BY seq LIMIT ${buffered.length}`)
          : []
        return merge([...stored, ...more], buffered).slice(0, limit)
      })

    const getRecentMessages = (
      sessionId: string,
      count: number
    ): Effect.Effect<ReadonlyArray<ChatStore.Message>, ChatStore.InvalidInput | ChatStore.SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const buffered = buffer.snapshot(sessionId)
        if (buffered.length === 0) return yield* store.getRecentMessages(sessionId, count)
        const stored = yield* store.getRecentMessages(sessionId, count)
        // The newest `count` of stored ∪ buffered: more stored rows are needed only where buffered ones duplicate them.
        const older = stored.length === count && buffered.length > 0
          ? yield* select(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
              WHERE session_id = ${sessionId} AND seq < ${stored[0]!.seq} ORDER BY seq DESC LIMIT ${buffered.length}`)
          : []
        const merged = merge([...older, ...stored], buffered)
        return merged.slice(Math.max(0, merged.length - count))
      })

    const getSessionStats = (
      sessionId: string
    ): Effect.Effect<ChatStore.SessionStats, ChatStore.InvalidInput | ChatStore.SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const buffered = buffer.snapshot(sessionId)
        if (buffered.length === 0) return yield* store.getSessionStats(sessionId)
        const firstBuffered = buffered[0]!.seq
        const stats = yield* store.getSessionStats(sessionId)
        // The stored stats may already include buffered messages flushed meanwhile: count each seq once.
        const stored = yield* sql<{ seq: number | string; token_count: number | string | null; created_at_ms: number | string }>`
          SELECT seq, token_count, created_at_ms FROM messages WHERE session_id = ${sessionId} AND seq >= ${firstBuffered}`
        const storedSeqs = new Set(stored.map((row) => toNumber(row.seq)))
        let messageCount = stats.messageCount
        let totalTokens = stats.totalTokens
        let first = stats.firstMessageAtMs
        let last = stats.lastMessageAtMs
        for (const message of buffered) {
          if (storedSeqs.has(message.seq)) continue
          messageCount++
          totalTokens += message.tokenCount ?? 0
          first = first === null || message.createdAtMs < first ? message.createdAtMs : first
          last = last === null || message.createdAtMs > last ? message.createdAtMs : last
        }
        const lastActivityMs = last !== null && last > stats.lastActivityMs ? toMillis(last) : stats.lastActivityMs
        return { ...stats, messageCount, totalTokens, firstMessageAtMs: first, lastMessageAtMs: last, lastActivityMs }
      })

    const metrics: Effect.Effect<WriteBehindMetrics> = Effect.sync(() => ({ pending: buffer.pending, ...counters }))

    const poisoned: Effect.Effect<ReadonlyArray<PoisonMessage>> = Effect.sync(() => poisonLog.slice())

    return {
      /** Buffers one message and returns it as it will be stored (id, `seq`, time); does not wait for the database. */
      append,
      /** Buffers messages for one session with consecutive `seq`s (waits for room for all of them). */
      appendAll,
      /** Waits until everything appended before the call is written (or refused); `WriteBehindClosed` if closing could not write it. */
      flush,
      /** `ChatStore.getMessages` including buffered messages. */
      getMessages,
      /** `ChatStore.getMessagesAfter` including buffered messages. */
      getMessagesAfter,
      /** `ChatStore.getRecentMessages` including buffered messages. */
      getRecentMessages,
      /** `ChatStore.getSessionStats` including buffered messages. */
      getSessionStats,
      /** Counters: pending, flushed, flushes, failed flushes, poisoned, flush latency. */
      metrics,
      /** The most recent messages the database refused (up to 1000). */
      poisoned
    } as const
  })

/**
 * The write-behind service (needs `ChatStore` and the `SqlClient`; scoped: closing drains it).
 *
 * @since 0.1.0
 */
export class WriteBehind extends Effect.Service<WriteBehind>()("@strata/sql/WriteBehind", {
  scoped: makeService
}) {}

/**
 * `WriteBehind` with `options`; fails to build with `InvalidWriteBehindOptions` when one is not allowed.
 *
 * @since 0.1.0
 */
export const layer = (
  options: WriteBehindOptions = {}
): Layer.Layer<WriteBehind, InvalidWriteBehindOptions, ChatStore.ChatStore | SqlClient.SqlClient> =>
  WriteBehind.Default(options)

/**
 * `WriteBehind` configured from `STRATA_WRITE_BEHIND_INTERVAL_MS`, `STRATA_WRITE_BEHIND_MAX_BATCH`
 * and `STRATA_WRITE_BEHIND_CAPACITY` (each optional).
 *
 * @since 0.1.0
 */
export const layerFromConfig: Layer.Layer<
  WriteBehind,
  import("effect/ConfigError").ConfigError | InvalidWriteBehindOptions,
  ChatStore.ChatStore | SqlClient.SqlClient
> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      intervalMs: Config.option(Config.integer("STRATA_WRITE_BEHIND_INTERVAL_MS")),
      maxBatch: Config.option(Config.integer("STRATA_WRITE_BEHIND_MAX_BATCH")),
      capacity: Config.option(Config.integer("STRATA_WRITE_BEHIND_CAPACITY"))
    }),
    (config) =>
      layer({
        intervalMs: Option.getOrUndefined(config.intervalMs),
        maxBatch: Option.getOrUndefined(config.maxBatch),
        capacity: Option.getOrUndefined(config.capacity)
      })
  )
)
