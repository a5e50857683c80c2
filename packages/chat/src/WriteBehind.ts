/**
 * Buffered appends to the session store for hot paths, with read-your-writes and nothing
 * acknowledged ever dropped silently.
 *
 * `append` validates the message, assigns the session's next `seq` and an id (so the order is
 * fixed when it returns), buffers it and returns without waiting for the database. A background
 * fiber writes the buffer in one transaction per flush (multi-row INSERTs). Reads through this
 * service (`getMessages`, `getMessagesAfter`, `getRecentMessages`, `getSessionStats`) merge the
 * buffered messages in, so a caller reads its own writes.
 *
 * When a flush starts:
 * - as soon as `maxBatch` messages are pending, and otherwise once the oldest pending message has
 *   waited `interval`; a flush already running is finished first (flushes run one at a time, in
 *   append order). This holds under any mix of reads and writes: every call to this service checks
 *   whether a flush is due and, if so, lets the flusher run before it returns, so no reader can
 *   keep it waiting (on SQLite a tight loop of reads would otherwise never let it run at all; see
 *   the SQLite note below).
 *
 * The durability contract:
 * - `append` returning means the message is **buffered**: in this process's memory, with its id
 *   and `seq` fixed. It is not yet stored.
 * - `flush` returning means everything appended before the call is **stored** (committed), or was
 *   refused by the database and reported as a `PoisonMessage`.
 * - What a crash (SIGKILL, power loss, an out-of-memory kill) can lose is what was buffered: the
 *   appends of about the last `interval` (plus the flush in progress, which commits or not as a
 *   whole), and everything still waiting behind a database that is failing or a batch bigger than
 *   it can write in that time. Closing the layer's scope (SIGTERM under `NodeRuntime.runMain`, an
 *   app's layer release) loses nothing it can write: see below.
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
 * - Closing the layer's scope stops taking appends, lets the running flush finish and flushes
 *   everything left, retrying for up to `drainTimeout`, before the layers below it (the
 *   `SqlClient`) close; whatever still cannot be written is logged as an error with its ids.
 *
 * `WriteBehind` must be the only writer of the sessions it appends to while it runs: it reads a
 * session's last `seq` once, when it first sees the session. A session soft-deleted after that
 * still receives the messages already accepted.
 *
 * SQLite: better-sqlite3 answers synchronously and never lets another fiber, timer or signal
 * handler run while a fiber loops over statements. This service (and `ChatStore`) gives the event
 * loop a turn when a caller has held the thread for 10 ms; code of the app's own that loops over
 * SQLite statements without ever yielding holds up every fiber, the flusher included.
 *
 * Statements run on `Database.strataClient` (the app's client without its name transforms).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Options, Timestamp } from "@strata/core"
import { Database, SqlErrors } from "@strata/sql"
import {
  Clock,
  Config,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  Layer,
  Metric,
  MetricBoundaries,
  Option,
  Schema,
  type Scope
} from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as ChatModel from "./ChatModel.js"
import { lastSeq } from "./internal/chatRows.js"
import { makeTurnGate, nextTurn, noTurns, type TurnGate } from "./internal/eventLoop.js"
import { FairPermits } from "./internal/fairPermits.js"
import { writeBatch } from "./internal/flushBatch.js"
import * as MergedReads from "./internal/mergedReads.js"
import * as MessageQueries from "./internal/messageQueries.js"
import { requireSession, sessionIdOf } from "./internal/sessionQueries.js"
import { WriteBuffer } from "./internal/writeBuffer.js"

/**
 * How `WriteBehind` batches and retries. Durations are `Duration.DurationInput`s (a number is milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteBehindOptions {
  /** Longest a pending message waits before its flush starts (after the flush in progress), at least 1 ms. Default 100 ms. */
  readonly interval?: Duration.DurationInput | undefined
  /** Messages per flush (a positive integer); reaching it starts a flush at once. Default 1000. */
  readonly maxBatch?: number | undefined
  /**
   * Most buffered messages (a positive integer); `append` waits beyond it. Default 10,000, raised to
   * `maxBatch` when that is larger; a `capacity` given below `maxBatch` is refused (a flush by size
   * could never start).
   */
  readonly capacity?: number | undefined
  /** First retry delay after a failed flush (at least 1 ms), doubled up to `maxRetryDelay`. Default 50 ms. */
  readonly retryDelay?: Duration.DurationInput | undefined
  /** Default 5 seconds, raised to `retryDelay` when that is larger; given below `retryDelay`, refused. */
  readonly maxRetryDelay?: Duration.DurationInput | undefined
  /** How long closing keeps retrying to write what is buffered (zero or more). Default 30 seconds. */
  readonly drainTimeout?: Duration.DurationInput | undefined
  /** Sessions whose next `seq` is remembered when idle (a positive integer). Default 100,000. */
  readonly maxTrackedSessions?: number | undefined
}

/**
 * An option is not allowed (e.g. `maxBatch: NaN`, `interval: -1`, an unknown `intervalMs`); nothing was started.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidWriteBehindOptions extends Schema.TaggedError<InvalidWriteBehindOptions>()("InvalidWriteBehindOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid write-behind option ${this.option}: ${this.reason}`
  }
}

/**
 * A message the database refused; it is not retried (the rest of its flush was written).
 *
 * @since 0.1.0
 * @category errors
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
 * @category errors
 */
export class WriteBehindClosed extends Schema.TaggedError<WriteBehindClosed>()("WriteBehindClosed", {}) {
  override get message(): string {
    return "the write-behind buffer is closing and takes no more messages"
  }
}

/**
 * What `append` and `appendAll` can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type AppendError =
  | ChatModel.InvalidInput
  | ChatModel.SessionNotFound
  | ChatModel.SessionDeleted
  | ChatModel.MessageExists
  | WriteBehindClosed
  | SqlError

/**
 * A snapshot of the counters (also exported as Effect metrics `strata_write_behind_*`).
 *
 * @since 0.1.0
 * @category models
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
  /** How long the last flush took, ms. */
  readonly lastFlushMs: number | null
  /** The longest flush, ms. */
  readonly maxFlushMs: number | null
  /** All flushes together, ms. */
  readonly totalFlushMs: number
}

/**
 * The write-behind service's operations.
 *
 * @since 0.2.0
 * @category models
 */
export interface WriteBehind {
  /** Buffers one message and returns it as it will be stored (id, `seq`, time); does not wait for the database. */
  readonly append: (sessionId: string, message: ChatModel.NewMessage) => Effect.Effect<ChatModel.Message, AppendError>
  /** Buffers messages for one session with consecutive `seq`s (waits for room for all of them). */
  readonly appendAll: (
    sessionId: string,
    messages: ReadonlyArray<ChatModel.NewMessage>
  ) => Effect.Effect<ReadonlyArray<ChatModel.Message>, AppendError>
  /** Waits until everything appended before the call is stored (or refused); `WriteBehindClosed` if closing could not write it. */
  readonly flush: Effect.Effect<void, WriteBehindClosed>
  /** `ChatStore.getMessages` including buffered messages. */
  readonly getMessages: (
    sessionId: string,
    options?: { readonly page?: number; readonly pageSize?: number }
  ) => Effect.Effect<ChatModel.MessagePage, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** `ChatStore.getMessagesAfter` including buffered messages. */
  readonly getMessagesAfter: (
    sessionId: string,
    afterSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<ChatModel.Message>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** `ChatStore.getRecentMessages` including buffered messages. */
  readonly getRecentMessages: (
    sessionId: string,
    count: number
  ) => Effect.Effect<ReadonlyArray<ChatModel.Message>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** `ChatStore.getSessionStats` including buffered messages, each counted once. */
  readonly getSessionStats: (
    sessionId: string
  ) => Effect.Effect<ChatModel.SessionStats, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Counters: pending, flushed, flushes, failed flushes, poisoned, flush latency. */
  readonly metrics: Effect.Effect<WriteBehindMetrics>
  /** The most recent messages the database refused (up to 1000). */
  readonly poisoned: Effect.Effect<ReadonlyArray<PoisonMessage>>
}

/**
 * The write-behind service.
 *
 * @since 0.1.0
 * @category tags
 */
export const WriteBehind = Context.GenericTag<WriteBehind>("@strata/chat/WriteBehind")

/** The options with their defaults (durations as ms), or the first one not allowed. */
interface Settings {
  readonly intervalMs: number
  readonly maxBatch: number
  readonly capacity: number
  readonly retryDelayMs: number
  readonly maxRetryDelayMs: number
  readonly drainTimeoutMs: number
  readonly maxTrackedSessions: number
}

const optionNames: ReadonlySet<string> = new Set([
  "interval",
  "maxBatch",
  "capacity",
  "retryDelay",
  "maxRetryDelay",
  "drainTimeout",
  "maxTrackedSessions"
])

const invalidOption = (option: string, reason: string) => new InvalidWriteBehindOptions({ option, reason })

const settingsOf = (options: WriteBehindOptions): Effect.Effect<Settings, InvalidWriteBehindOptions> =>
  Effect.gen(function*() {
    // An untyped caller's misspelt or old option (`intervalMs`) would otherwise fall back to the default unseen.
    for (const key of Object.keys(options)) {
      if (!optionNames.has(key)) {
        return yield* invalidOption(key, `is not an option (the options are ${[...optionNames].join(", ")})`)
      }
    }
    const millis = (option: string, value: Duration.DurationInput | undefined, fallback: Duration.DurationInput, allowed: Options.AllowedDuration) =>
      Effect.map(Options.resolveDuration(option, value, fallback, allowed, invalidOption), Duration.toMillis)
    const atLeastOneMilli = Options.durationOfAtLeast(Duration.millis(1))
    const intervalMs = yield* millis("interval", options.interval, Duration.millis(100), atLeastOneMilli)
    const maxBatch = yield* Options.resolve("maxBatch", options.maxBatch, 1000, Options.positiveCount, invalidOption)
    const capacity = yield* Options.resolve("capacity", options.capacity, Math.max(maxBatch, 10_000), Options.positiveCount, invalidOption)
    if (capacity < maxBatch) {
      return yield* invalidOption("capacity", `must be at least maxBatch (${maxBatch}), got ${capacity}`)
    }
    const retryDelayMs = yield* millis("retryDelay", options.retryDelay, Duration.millis(50), atLeastOneMilli)
    const maxRetryDelayMs = yield* millis("maxRetryDelay", options.maxRetryDelay, Duration.millis(Math.max(retryDelayMs, 5000)), atLeastOneMilli)
    if (maxRetryDelayMs < retryDelayMs) {
      return yield* invalidOption(
        "maxRetryDelay",
        `must be at least retryDelay (${Duration.format(Duration.millis(retryDelayMs))}), got ${Duration.format(Duration.millis(maxRetryDelayMs))}`
      )
    }
    const drainTimeoutMs = yield* millis("drainTimeout", options.drainTimeout, Duration.seconds(30), Options.nonNegativeDuration)
    const maxTrackedSessions = yield* Options.resolve("maxTrackedSessions", options.maxTrackedSessions, 100_000, Options.positiveCount, invalidOption)
    return { intervalMs, maxBatch, capacity, retryDelayMs, maxRetryDelayMs, drainTimeoutMs, maxTrackedSessions }
  })

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

/** The flushing side: when a flush is due, the flusher fiber, `flush`, and the drain on close. */
interface Flusher {
  /** Whether appends are refused (closing began). */
  readonly isClosed: () => boolean
  /**
   * Wakes the flusher when a flush is due at `nowMs` (by size or by the oldest message's age) and
   * none is running; then the caller must yield (`Effect.yieldNow`) so it runs before the caller
   * goes on. Returns whether it woke it.
   */
  readonly nudge: (nowMs: number) => boolean
  readonly flush: Effect.Effect<void, WriteBehindClosed>
  readonly metrics: Effect.Effect<WriteBehindMetrics>
  readonly poisoned: Effect.Effect<ReadonlyArray<PoisonMessage>>
}

const makeFlusher = (
  buffer: WriteBuffer,
  room: FairPermits,
  settings: Settings,
  gate: TurnGate
): Effect.Effect<Flusher, never, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const { capacity, drainTimeoutMs, intervalMs, maxBatch, maxRetryDelayMs, maxTrackedSessions, retryDelayMs } = settings
    const wake = yield* Effect.makeLatch(false)
    const waiters: Array<{ readonly position: number; readonly done: Deferred.Deferred<void, WriteBehindClosed> }> = []
    const poisonLog: Array<PoisonMessage> = []
    let closed = false
    /** Messages of the flush in progress (0: none). */
    let inFlight = 0
    const counters = {
      flushed: 0,
      flushes: 0,
      failedFlushes: 0,
      poisoned: 0,
      lastFlushMs: null as number | null,
      maxFlushMs: null as number | null,
      totalFlushMs: 0
    }

    const isDue = (nowMs: number): boolean => {
      if (buffer.pending >= maxBatch) return true
      const oldest = buffer.arrivalAfter(0)
      return oldest !== undefined && nowMs - oldest >= intervalMs
    }

    const nudge = (nowMs: number): boolean => {
      if (inFlight > 0 || !isDue(nowMs)) return false
      wake.unsafeOpen()
      return true
    }

    const settleWaiters = Effect.suspend(() => {
      const ready = waiters.filter((w) => w.position <= buffer.completed)
      if (ready.length === 0) return Effect.void
      for (const waiter of ready) waiters.splice(waiters.indexOf(waiter), 1)
      return Effect.forEach(ready, (w) => Deferred.succeed(w.done, undefined), { discard: true })
    })

    const recordPoison = (poison: PoisonMessage) =>
      Effect.gen(function*() {
        counters.poisoned++
        poisonLog.push(poison)
        if (poisonLog.length > keptPoison) poisonLog.shift()
        // A refused session (e.g. hard-deleted) is re-checked on its next append.
        buffer.forget(poison.sessionId)
        yield* Metric.increment(poisonedCounter)
        yield* Effect.logError("write-behind message refused by the database; the rest of its flush was written").pipe(
          Effect.annotateLogs({ message_id: poison.messageId, session_id: poison.sessionId, seq: poison.seq, reason: poison.reason })
        )
      })

    /** Writes the oldest batch once; on success the batch leaves the buffer. */
    const flushOnce: Effect.Effect<boolean, SqlError, SqlClient.SqlClient> = Effect.uninterruptible(
      Effect.gen(function*() {
        const batch = buffer.nextBatch(maxBatch)
        if (batch.length === 0) return false
        const started = yield* Clock.currentTimeMillis
        inFlight = batch.length
        const outcome = yield* writeBatch(batch).pipe(
          Effect.ensuring(Effect.sync(() => (inFlight = 0))),
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
        for (const { message, reason } of outcome.refused) {
          yield* recordPoison(new PoisonMessage({ messageId: message.id, sessionId: message.sessionId, seq: message.seq, reason }))
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

    // Woken by: a flush due (size or age, seen by a caller or the ticker), `flush`, nothing else.
    const flusher = Effect.gen(function*() {
      let backToBack = 0
      while (true) {
        yield* wake.await
        wake.unsafeClose()
        const wrote = yield* flushWithRetry(undefined)
        const now = yield* Clock.currentTimeMillis
        if (wrote && (isDue(now) || waiters.length > 0)) {
          wake.unsafeOpen()
          // Let the fibers this flush woke (appenders given room, readers) run before the next one;
          // now and then a whole turn of the event loop, so I/O, timers and signals get theirs.
          yield* ++backToBack % 8 === 0 || gate.due() ? nextTurn : Effect.yieldNow()
        } else {
          backToBack = 0
        }
      }
    })

    // Wakes the flusher when the oldest pending message has waited `interval`, if no caller did.
    const ticker = Effect.gen(function*() {
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const oldest = buffer.arrivalAfter(0)
        // While a flush runs, the flusher itself looks again when it is done.
        const wait = inFlight > 0 || oldest === undefined ? intervalMs : Math.max(0, oldest + intervalMs - now)
        yield* Effect.sleep(Duration.millis(wait))
        nudge(yield* Clock.currentTimeMillis)
      }
    })

    const fibers = [yield* Effect.forkDaemon(flusher), yield* Effect.forkDaemon(ticker)]

    const drain = Effect.gen(function*() {
      closed = true
      yield* Fiber.interruptAll(fibers)
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

    return {
      isClosed: () => closed,
      nudge,
      flush,
      metrics: Effect.sync(() => ({ pending: buffer.pending, ...counters })),
      poisoned: Effect.sync(() => poisonLog.slice())
    }
  })

type ReadError = ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError

/**
 * The reads that see the buffer: the plain store read when nothing of the session is buffered,
 * else the merged one (the buffer is read before the database, see MergedReads). `run` gives each
 * strata's client and the call's pacing.
 */
const makeReads = (
  buffer: WriteBuffer,
  run: <A>(effect: Effect.Effect<A, ReadError, SqlClient.SqlClient>) => Effect.Effect<A, ReadError>
): Pick<WriteBehind, "getMessages" | "getMessagesAfter" | "getRecentMessages" | "getSessionStats"> => {
  const decodePageOptions = ChatModel.decoder(ChatModel.PageOptions)
  return {
    getMessages: (sessionId, pageOptions = {}) =>
      run(Effect.gen(function*() {
        const id = yield* sessionIdOf(sessionId)
        const { page, pageSize } = yield* decodePageOptions(pageOptions, "")
        yield* requireSession(id)
        const buffered = buffer.snapshot(id)
        return buffered.length === 0
          ? yield* MessageQueries.getMessages(id, { page, pageSize })
          : yield* MergedReads.page(id, page, pageSize, buffered)
      })),
    getMessagesAfter: (sessionId, afterSeq, limit) =>
      run(Effect.gen(function*() {
        const { after, id, size } = yield* MessageQueries.afterArguments(sessionId, afterSeq, limit)
        const buffered = buffer.snapshotAfter(id, after, size)
        if (buffered.length === 0) return yield* MessageQueries.getMessagesAfter(id, after, size)
        yield* requireSession(id)
        return yield* MergedReads.after(id, after, size, buffered)
      })),
    getRecentMessages: (sessionId, count) =>
      run(Effect.gen(function*() {
        const { id, size } = yield* MessageQueries.recentArguments(sessionId, count)
        const buffered = buffer.snapshotNewest(id, size)
        if (buffered.length === 0) return yield* MessageQueries.getRecentMessages(id, size)
        yield* requireSession(id)
        return yield* MergedReads.newest(id, size, buffered)
      })),
    getSessionStats: (sessionId) =>
      run(Effect.gen(function*() {
        const id = yield* sessionIdOf(sessionId)
        const buffered = buffer.snapshot(id)
        return buffered.length === 0 ? yield* MessageQueries.getSessionStats(id) : yield* MergedReads.stats(id, buffered)
      }))
  }
}

/**
 * A write-behind buffer over the `SqlClient` in context (whose database has the `chat-store` plan
 * applied), started at once and drained when the scope closes. Fails with
 * `InvalidWriteBehindOptions` when an option is not allowed; nothing is started then.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  options: WriteBehindOptions = {}
): Effect.Effect<WriteBehind, InvalidWriteBehindOptions, SqlClient.SqlClient | Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* settingsOf(options)
    const { capacity } = settings
    const sql = yield* Database.strataClient
    const onStrataClient = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>): Effect.Effect<A, E> =>
      Effect.provideService(effect, SqlClient.SqlClient, sql)
    const gate = (yield* Database.dialect) === "sqlite" ? yield* makeTurnGate : noTurns

    const buffer = new WriteBuffer()
    const room = new FairPermits(capacity)
    const flusher = yield* Effect.provideService(makeFlusher(buffer, room, settings, gate), SqlClient.SqlClient, sql)
    const loadLock = yield* Effect.makeSemaphore(1)

    /**
     * What a call does before it returns, at the `Clock`'s `nowMs`: let a due flush run, or give
     * the event loop a turn it has gone a slice without; `undefined` when neither is needed.
     */
    const pace = (nowMs: number): Effect.Effect<void> | undefined =>
      flusher.nudge(nowMs) ? Effect.yieldNow() : gate.due() ? gate.turn : undefined

    const paced = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
      Effect.clockWith((clock) => {
        const first = pace(clock.unsafeCurrentTimeMillis())
        return first === undefined ? effect : Effect.zipRight(first, effect)
      })

    /** Makes sure the buffer knows the session's next seq: read once from the database. */
    const track = (sessionId: string) =>
      buffer.isTracked(sessionId) ? Effect.void : loadLock.withPermits(1)(
        onStrataClient(Effect.gen(function*() {
          if (buffer.isTracked(sessionId)) return
          const session = yield* requireSession(sessionId)
          if (session.deletedAtMs !== null) {
            return yield* new ChatModel.SessionDeleted({ sessionId, deletedAtMs: session.deletedAtMs })
          }
          buffer.track(sessionId, yield* lastSeq(sessionId))
        }))
      )

    /** Assigns seqs and buffers; the caller holds the room and has tracked the session. Synchronous. */
    const pushNow = (id: string, valid: ReadonlyArray<ChatModel.ValidMessage>, now: Timestamp.EpochMillis) =>
      buffer.push(id, valid.length, (i, seq) => ChatModel.toMessage(valid[i]!, id, seq, now), (i) => valid[i]!.id !== undefined, now)
        .messages

    const bufferValid = (
      sessionId: string,
      valid: ReadonlyArray<ChatModel.ValidMessage>
    ): Effect.Effect<ReadonlyArray<ChatModel.Message>, AppendError> =>
      Effect.clockWith((clock): Effect.Effect<ReadonlyArray<ChatModel.Message>, AppendError> => {
        if (flusher.isClosed()) return Effect.fail(new WriteBehindClosed())
        const checked = sessionIdOf(sessionId)
        if (Either.isLeft(checked)) return Effect.fail(checked.left)
        const id = checked.right
        if (valid.length > capacity) {
          return Effect.fail(new ChatModel.InvalidInput({ field: "messages", reason: `more than the buffer's capacity (${capacity})` }))
        }
        for (const message of valid) {
          if (message.id !== undefined && buffer.hasSuppliedId(message.id)) {
            return Effect.fail(new ChatModel.MessageExists({ messageId: message.id, sessionId: id }))
          }
        }
        // The hot path, in one synchronous step: a known session and room in the buffer.
        if (buffer.isTracked(id) && room.tryTake(valid.length)) {
          const now = Math.floor(clock.unsafeCurrentTimeMillis())
          const stored = pushNow(id, valid, now as Timestamp.EpochMillis)
          const then = pace(now)
          return then === undefined ? Effect.succeed(stored) : Effect.as(then, stored)
        }
        return Effect.uninterruptibleMask((restore) =>
          Effect.zipRight(
            restore(room.take(valid.length)),
            restore(Effect.gen(function*() {
              yield* track(id)
              const now = yield* Timestamp.now
              // Checked again in the same synchronous step as the push: nothing enters the buffer after draining began.
              return yield* Effect.suspend(() =>
                flusher.isClosed() ? Effect.fail(new WriteBehindClosed()) : Effect.succeed(pushNow(id, valid, now))
              )
            })).pipe(Effect.onError(() => Effect.sync(() => room.release(valid.length))))
          )
        ).pipe(Effect.tap(() => paced(Effect.void)))
      })

    const append = (sessionId: string, message: ChatModel.NewMessage): Effect.Effect<ChatModel.Message, AppendError> =>
      Effect.clockWith((clock) => {
        if (flusher.isClosed()) return Effect.fail(new WriteBehindClosed())
        const decoded = ChatModel.validateMessage(message, "message")
        if (Either.isLeft(decoded)) return Effect.fail(decoded.left)
        const valid = decoded.right
        // The hot path in one synchronous step: no supplied id, a session already tracked (so its id
        // was validated then), room in the buffer.
        if (valid.id === undefined && buffer.isTracked(sessionId) && room.tryTake(1)) {
          const now = Math.floor(clock.unsafeCurrentTimeMillis())
          const stored = buffer.pushOne(sessionId, (seq) => ChatModel.toMessage(valid, sessionId, seq, now as Timestamp.EpochMillis), now)!
          const then = pace(now)
          return then === undefined ? Effect.succeed(stored) : Effect.as(then, stored)
        }
        return Effect.map(bufferValid(sessionId, [valid]), (stored) => stored[0]!)
      })

    const appendAll = (sessionId: string, messages: ReadonlyArray<ChatModel.NewMessage>) =>
      Effect.flatMap(ChatModel.validateMessages(messages), (valid) =>
        valid.length === 0 ? Effect.succeed([]) : bufferValid(sessionId, valid))

    const reads = makeReads(buffer, (effect) => paced(onStrataClient(effect)))

    return WriteBehind.of({
      append,
      appendAll,
      flush: flusher.flush,
      ...reads,
      metrics: flusher.metrics,
      poisoned: flusher.poisoned
    })
  })

/**
 * `WriteBehind` with `options` (scoped: closing it drains the buffer); fails to build with
 * `InvalidWriteBehindOptions` when one is not allowed.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: WriteBehindOptions = {}): Layer.Layer<WriteBehind, InvalidWriteBehindOptions, SqlClient.SqlClient> =>
  Layer.scoped(WriteBehind, make(options))

/**
 * `WriteBehind` configured from `STRATA_WRITE_BEHIND_INTERVAL_MS`, `STRATA_WRITE_BEHIND_MAX_BATCH`
 * and `STRATA_WRITE_BEHIND_CAPACITY` (each optional; the interval in milliseconds).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig: Layer.Layer<WriteBehind, ConfigError | InvalidWriteBehindOptions, SqlClient.SqlClient> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      intervalMs: Config.option(Config.number("STRATA_WRITE_BEHIND_INTERVAL_MS")),
      maxBatch: Config.option(Config.integer("STRATA_WRITE_BEHIND_MAX_BATCH")),
      capacity: Config.option(Config.integer("STRATA_WRITE_BEHIND_CAPACITY"))
    }),
    (config) =>
      layer({
        interval: Option.getOrUndefined(config.intervalMs),
        maxBatch: Option.getOrUndefined(config.maxBatch),
        capacity: Option.getOrUndefined(config.capacity)
      })
  )
)

/**
 * `append` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const append = (sessionId: string, message: ChatModel.NewMessage) =>
  Effect.flatMap(WriteBehind, (wb) => wb.append(sessionId, message))

/**
 * `appendAll` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const appendAll = (sessionId: string, messages: ReadonlyArray<ChatModel.NewMessage>) =>
  Effect.flatMap(WriteBehind, (wb) => wb.appendAll(sessionId, messages))

/**
 * `flush` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const flush: Effect.Effect<void, WriteBehindClosed, WriteBehind> = Effect.flatMap(WriteBehind, (wb) => wb.flush)

/**
 * `getMessages` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getMessages = (sessionId: string, options?: { readonly page?: number; readonly pageSize?: number }) =>
  Effect.flatMap(WriteBehind, (wb) => wb.getMessages(sessionId, options))

/**
 * `getMessagesAfter` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getMessagesAfter = (sessionId: string, afterSeq: number, limit: number) =>
  Effect.flatMap(WriteBehind, (wb) => wb.getMessagesAfter(sessionId, afterSeq, limit))

/**
 * `getRecentMessages` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getRecentMessages = (sessionId: string, count: number) =>
  Effect.flatMap(WriteBehind, (wb) => wb.getRecentMessages(sessionId, count))

/**
 * `getSessionStats` on the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getSessionStats = (sessionId: string) => Effect.flatMap(WriteBehind, (wb) => wb.getSessionStats(sessionId))

/**
 * `metrics` of the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const metrics: Effect.Effect<WriteBehindMetrics, never, WriteBehind> = Effect.flatMap(WriteBehind, (wb) => wb.metrics)

/**
 * `poisoned` of the write-behind in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const poisoned: Effect.Effect<ReadonlyArray<PoisonMessage>, never, WriteBehind> = Effect.flatMap(WriteBehind, (wb) => wb.poisoned)
