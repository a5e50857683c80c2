import { expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Effect, Exit, Fiber, Layer, Option, Scope } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { ChatModel, ChatPlan, ChatStore, WriteBehind } from "../src/index.js"
import { Migrator } from "@strata/sql"

const storeLayer = (database: Layer.Layer<SqlClient.SqlClient>) =>
  ChatStore.layer.pipe(
    Layer.provideMerge(
      Layer.effectDiscard(Effect.flatMap(Migrator.make(ChatPlan.plan), (migrator) => migrator.run())).pipe(
        Layer.provideMerge(database)
      )
    ),
    Layer.orDie
  )

/**
 * The same client, except that message INSERTs (tagged or `unsafe`, on it or on its
 * `withoutTransforms()`) run `inject` first: when it says so, they fail the way a dropped
 * connection does (no error code, so a transient failure).
 */
const faultyClient = (sql: SqlClient.SqlClient, inject: () => boolean): SqlClient.SqlClient => {
  const injected = <A>(text: unknown, statement: Effect.Effect<A, SqlError>) =>
    !String(text).startsWith("INSERT INTO messages")
      ? statement
      : Effect.zipRight(
        Effect.suspend(() =>
          inject()
            ? Effect.fail(new SqlError({ message: "injected", cause: new Error("connection reset (injected)") }))
            : Effect.void
        ),
        statement
      )
  const proxy: SqlClient.SqlClient = new Proxy(sql, {
    apply(target, thisArg, args: Array<unknown>) {
      const statement = Reflect.apply(target, thisArg, args) as Effect.Effect<unknown, SqlError>
      const strings = args[0]
      return Array.isArray(strings) ? injected(strings[0], statement) : statement
    },
    get(target, property, receiver) {
      if (property === "unsafe") {
        return (text: string, params?: ReadonlyArray<unknown>) => injected(text, target.unsafe(text, params))
      }
      if (property === "withoutTransforms") {
        return () => {
          const plain = target.withoutTransforms()
          return plain === target ? proxy : faultyClient(plain, inject)
        }
      }
      return Reflect.get(target, property, receiver)
    }
  })
  return proxy
}

/** Fails the first `times` message INSERTs, then behaves; `failures()` tells how many it failed. */
const failingInserts = (times: number) => {
  let failed = 0
  return {
    inject: () => failed < times ? (failed++, true) : false,
    failures: () => failed
  }
}

const withFaultyClient = (inject: () => boolean) =>
  Layer.unwrapEffect(
    Effect.map(SqlClient.SqlClient, (sql) => Layer.succeed(SqlClient.SqlClient, faultyClient(sql, inject)))
  )

const storedRows = (sessionId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ id: string; seq: number; content: string | null }>`SELECT id, seq, content FROM messages
      WHERE session_id = ${sessionId} ORDER BY seq`)

let counter = 0
const freshSession = (label: string) =>
  Effect.gen(function*() {
    const store = yield* ChatStore.ChatStore
    const id = `${label}-${++counter}`
    yield* store.createSession({ id })
    return id
  })

const user = (content: string) => ({ role: "user" as const, content })

// Flushes only when asked (or on close): the interval is far away and the batch never fills.
const manual = { interval: 3_600_000, maxBatch: 100_000, capacity: 100_000 }

describeEachEngine("WriteBehind", (engine) => {
  layer(storeLayer(engine.layer()), { excludeTestServices: true })((it) => {
    it.effect("append returns before the write; reads see buffered messages; flush stores them once", () =>
      Effect.gen(function*() {
        const id = yield* freshSession("ryw")
        const wb = yield* WriteBehind.WriteBehind
        const appended = [] as Array<ChatModel.Message>
        for (let i = 1; i <= 7; i++) appended.push(yield* wb.append(id, { ...user(`m${i}`), tokenCount: i }))
        expect(appended.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
        expect(yield* storedRows(id)).toEqual([])
        expect((yield* wb.metrics).pending).toBe(7)

        const page2 = yield* wb.getMessages(id, { page: 2, pageSize: 3 })
        expect(page2.messages.map((m) => m.content)).toEqual(["m4", "m5", "m6"])
        expect(page2.hasMore).toBe(true)
        expect((yield* wb.getRecentMessages(id, 2)).map((m) => m.content)).toEqual(["m6", "m7"])
        expect((yield* wb.getMessagesAfter(id, 5, 10)).map((m) => m.seq)).toEqual([6, 7])
        const stats = yield* wb.getSessionStats(id)
        expect(stats).toMatchObject({ messageCount: 7, totalTokens: 28 })
        expect(stats.lastMessageAtMs).toBe(appended[6]!.createdAtMs)

        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => [r.id, r.seq, r.content])).toEqual(
          appended.map((m) => [m.id, m.seq, m.content])
        )
        expect(yield* wb.metrics).toMatchObject({ pending: 0, flushed: 7, flushes: 1, failedFlushes: 0, poisoned: 0 })
        // Appends after a flush continue the sequence; stored and buffered pages merge in seq order.
        yield* wb.appendAll(id, [user("m8"), user("m9")])
        const pages = yield* Effect.forEach([1, 2, 3, 4], (page) => wb.getMessages(id, { page, pageSize: 3 }))
        expect(pages.map((p) => p.messages.map((m) => m.seq))).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], []])
        expect((yield* wb.getSessionStats(id)).messageCount).toBe(9)
        expect((yield* wb.getRecentMessages(id, 4)).map((m) => m.seq)).toEqual([6, 7, 8, 9])
        expect((yield* wb.getMessagesAfter(id, 2, 3)).map((m) => m.seq)).toEqual([3, 4, 5])
      }).pipe(Effect.provide(WriteBehind.layer(manual))))

    it.effect("a message stored by an unacknowledged earlier commit is read and written once", () =>
      Effect.gen(function*() {
        const id = yield* freshSession("ambiguous")
        const wb = yield* WriteBehind.WriteBehind
        const appended = yield* wb.appendAll(id, ["a", "b", "c", "d", "e"].map(user))
        // As if a flush committed message 3 but its acknowledgement was lost.
        const sql = yield* SqlClient.SqlClient
        const third = appended[2]!
        yield* sql`INSERT INTO messages ${
          sql.insert({ id: third.id, session_id: id, seq: 3, role: "user", content: "c", created_at_ms: third.createdAtMs })
        }`
        expect((yield* wb.getMessages(id, { pageSize: 10 })).messages.map((m) => m.content)).toEqual(["a", "b", "c", "d", "e"])
        expect((yield* wb.getMessages(id, { page: 2, pageSize: 2 })).messages.map((m) => m.seq)).toEqual([3, 4])
        expect((yield* wb.getSessionStats(id)).messageCount).toBe(5)
        expect((yield* wb.getRecentMessages(id, 3)).map((m) => m.seq)).toEqual([3, 4, 5])
        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => r.content)).toEqual(["a", "b", "c", "d", "e"])
        expect(yield* wb.metrics).toMatchObject({ flushed: 5, poisoned: 0 })
      }).pipe(Effect.provide(WriteBehind.layer(manual))))

    it.effect("failed flushes keep their messages and retry in order", () => {
      const faults = failingInserts(3)
      return Effect.gen(function*() {
        const a = yield* freshSession("retry-a")
        const b = yield* freshSession("retry-b")
        const wb = yield* WriteBehind.WriteBehind
        const acknowledged = [] as Array<ChatModel.Message>
        for (let i = 0; i < 50; i++) acknowledged.push(yield* wb.append(i % 2 === 0 ? a : b, user(`x${i}`)))
        yield* wb.flush
        expect(faults.failures()).toBe(3)
        for (const session of [a, b]) {
          const mine = acknowledged.filter((m) => m.sessionId === session)
          expect((yield* storedRows(session)).map((r) => [r.id, r.seq, r.content])).toEqual(
            mine.map((m) => [m.id, m.seq, m.content])
          )
        }
        expect(yield* wb.metrics).toMatchObject({ pending: 0, flushed: 50, failedFlushes: 3, poisoned: 0 })
      }).pipe(
        Effect.provide(
          WriteBehind.layer({ ...manual, retryDelay: 5 }).pipe(Layer.provide(withFaultyClient(faults.inject)))
        )
      )
    })

    it.effect("a poison message is isolated and reported; the rest of its flush is written", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const wb = yield* WriteBehind.WriteBehind
        const other = yield* freshSession("poison-other")
        const id = yield* freshSession("poison")
        const [taken] = yield* store.appendMessages(other, [{ id: `taken-${id}`, role: "user" }])
        yield* wb.append(id, user("before"))
        const poison = yield* wb.append(id, { id: taken!.id, role: "assistant", content: "duplicate id" })
        yield* wb.append(id, user("after"))
        yield* wb.append(other, user("other session"))
        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => [r.seq, r.content])).toEqual([[1, "before"], [3, "after"]])
        expect((yield* storedRows(other)).map((r) => r.content)).toEqual([null, "other session"])
        const reported = yield* wb.poisoned
        expect(reported).toHaveLength(1)
        expect(reported[0]).toMatchObject({ _tag: "PoisonMessage", messageId: poison.id, sessionId: id, seq: 2 })
        expect(reported[0]!.reason).toMatch(/unique|duplicate|PRIMARY/i)
        expect(yield* wb.metrics).toMatchObject({ flushed: 3, poisoned: 1, failedFlushes: 0 })
        // The session keeps working after the refused message.
        expect((yield* wb.append(id, user("later"))).seq).toBe(4)
        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => r.seq)).toEqual([1, 3, 4])
      }).pipe(Effect.provide(WriteBehind.layer(manual))))

    it.effect("messages for a session hard-deleted before the flush are reported; the session is then unknown", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const wb = yield* WriteBehind.WriteBehind
        const id = yield* freshSession("gone")
        const keep = yield* freshSession("kept")
        yield* wb.appendAll(id, [user("1"), user("2")])
        yield* wb.append(keep, user("k"))
        yield* store.hardDelete(id)
        yield* wb.flush
        expect((yield* wb.poisoned).map((p) => [p.sessionId, p.seq])).toEqual([[id, 1], [id, 2]])
        expect((yield* storedRows(keep)).map((r) => r.content)).toEqual(["k"])
        expect((yield* Effect.flip(wb.append(id, user("3"))))._tag).toBe("SessionNotFound")
      }).pipe(Effect.provide(WriteBehind.layer(manual))))

    it.effect("append waits for room when the buffer is full, and never drops", () => {
      let failing = true
      return Effect.gen(function*() {
        const id = yield* freshSession("full")
        const wb = yield* WriteBehind.WriteBehind
        for (let i = 1; i <= 5; i++) yield* wb.append(id, user(`f${i}`))
        const sixth = yield* Effect.fork(wb.append(id, user("f6")))
        // Flushes fail while `failing` holds, so the buffer stays full and the sixth append must wait.
        yield* Effect.sleep("100 millis")
        expect(Option.isNone(yield* Fiber.poll(sixth))).toBe(true)
        expect((yield* wb.metrics).pending).toBe(5)
        failing = false
        expect((yield* Fiber.join(sixth)).seq).toBe(6)
        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => r.content)).toEqual(["f1", "f2", "f3", "f4", "f5", "f6"])
        expect((yield* wb.metrics).failedFlushes).toBeGreaterThan(0)
      }).pipe(
        Effect.provide(
          WriteBehind.layer({ interval: 10, maxBatch: 5, capacity: 5, retryDelay: 5, maxRetryDelay: 20 }).pipe(
            Layer.provide(withFaultyClient(() => failing))
          )
        )
      )
    })

    it.effect("closing the scope flushes everything, waiting out failures, then refuses appends", () => {
      let failing = true
      return Effect.gen(function*() {
        const id = yield* freshSession("close")
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          WriteBehind.layer({ ...manual, retryDelay: 5, maxRetryDelay: 20 }).pipe(
            Layer.provide(withFaultyClient(() => failing))
          ),
          scope
        )
        const wb = yield* Effect.provide(WriteBehind.WriteBehind, context)
        const acknowledged = yield* Effect.forEach(Array.from({ length: 1200 }, (_, i) => i), (i) => wb.append(id, user(`c${i}`)))
        yield* Effect.fork(Effect.delay(Effect.sync(() => (failing = false)), "150 millis"))
        yield* Scope.close(scope, Exit.void)
        expect((yield* storedRows(id)).map((r) => [r.id, r.seq])).toEqual(acknowledged.map((m) => [m.id, m.seq]))
        expect((yield* Effect.flip(wb.append(id, user("late"))))._tag).toBe("WriteBehindClosed")
      })
    })

    it.effect("a reader looping append then getRecentMessages never starves the flusher: no message waits much past the interval", () =>
      Effect.gen(function*() {
        const id = yield* freshSession("reader-loop")
        const wb = yield* WriteBehind.WriteBehind
        const intervalMs = 50
        // When each acknowledged append was made (its seq is its index + 1: one session, one writer).
        const ackedAt: Array<number> = []
        let oldestPendingAge = 0
        const start = Date.now()
        while (Date.now() - start < 2500) {
          const message = yield* wb.append(id, user(`r${ackedAt.length}`))
          ackedAt.push(Date.now())
          expect(message.seq).toBe(ackedAt.length)
          const recent = yield* wb.getRecentMessages(id, 20)
          expect(recent[recent.length - 1]!.seq).toBe(ackedAt.length)
          // Messages leave the buffer in append order: the oldest pending one is the first not yet flushed.
          const { flushed, poisoned } = yield* wb.metrics
          const oldest = ackedAt[flushed + poisoned]
          if (oldest !== undefined) oldestPendingAge = Math.max(oldestPendingAge, Date.now() - oldest)
        }
        // Before the fix the flusher never ran during the loop (SQLite): the oldest message waited the whole 2.5 s.
        // The bound is the interval plus generous slack for a loaded machine; the loop runs five times longer.
        expect(oldestPendingAge).toBeLessThan(intervalMs + 450)
        yield* wb.flush
        expect((yield* storedRows(id)).map((r) => r.seq)).toEqual(ackedAt.map((_, i) => i + 1))
      }).pipe(Effect.provide(WriteBehind.layer({ interval: 50 }))))

    it.effect("getSessionStats counts every message exactly once while flushes commit concurrently", () =>
      Effect.gen(function*() {
        const id = yield* freshSession("stats-race")
        const wb = yield* WriteBehind.WriteBehind
        let appended = 0
        let lastAt = 0
        for (let check = 0; check < 400; check++) {
          for (let i = 0; i < 3; i++) {
            const message = yield* wb.append(id, { ...user(`s${appended}`), tokenCount: 2 })
            appended++
            lastAt = message.createdAtMs
          }
          // The flusher (a 1 ms interval, small batches) commits while the stats' statements run.
          const stats = yield* wb.getSessionStats(id)
          expect({ messageCount: stats.messageCount, totalTokens: stats.totalTokens, lastMessageAtMs: stats.lastMessageAtMs })
            .toEqual({ messageCount: appended, totalTokens: 2 * appended, lastMessageAtMs: lastAt })
          if (check % 4 === 0) yield* Effect.sleep("1 millis")
        }
        expect((yield* wb.metrics).flushes).toBeGreaterThan(10)
      }).pipe(Effect.provide(WriteBehind.layer({ interval: 1, maxBatch: 2 }))))

    it.effect("an option that is not a finite number in range is refused with InvalidWriteBehindOptions naming it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const countMessages = Effect.map(sql<{ n: number }>`SELECT count(*) AS n FROM messages`, (rows) => Number(rows[0]!.n))
        const before = yield* countMessages
        const refusal = (options: WriteBehind.WriteBehindOptions) =>
          Effect.flip(Effect.scoped(Layer.build(WriteBehind.layer(options))))
        const cases: ReadonlyArray<readonly [WriteBehind.WriteBehindOptions, string, string]> = [
          [{ maxBatch: Number.NaN }, "maxBatch", "must be a positive integer, got NaN"],
          [{ maxBatch: -3 }, "maxBatch", "must be a positive integer, got -3"],
          [{ maxBatch: 2.5 }, "maxBatch", "must be a positive integer, got 2.5"],
          [{ capacity: 0 }, "capacity", "must be a positive integer, got 0"],
          [{ maxTrackedSessions: 1.5 }, "maxTrackedSessions", "must be a positive integer, got 1.5"],
          [{ interval: Number.NaN }, "interval", `must be a finite duration of at least 1ms (milliseconds as a number, "2 seconds", or a Duration), got NaN`],
          [{ interval: "-5 seconds" }, "interval", `must be a finite duration of at least 1ms (milliseconds as a number, "2 seconds", or a Duration), got "-5 seconds"`],
          [{ retryDelay: Number.POSITIVE_INFINITY }, "retryDelay", `must be a finite duration of at least 1ms (milliseconds as a number, "2 seconds", or a Duration), got Infinity`],
          [{ drainTimeout: -1 }, "drainTimeout", `must be a finite duration of zero or more (milliseconds as a number, "2 seconds", or a Duration), got -1`],
          [{ maxBatch: 100, capacity: 10 }, "capacity", "must be at least maxBatch (100), got 10"],
          [{ retryDelay: 50, maxRetryDelay: "10 millis" }, "maxRetryDelay", "must be at least retryDelay (50ms), got 10ms"],
          // The options before durations: refused by name, never silently ignored for the default.
          [{ intervalMs: 20 } as WriteBehind.WriteBehindOptions, "intervalMs", "is not an option (the options are interval, maxBatch, capacity, retryDelay, maxRetryDelay, drainTimeout, maxTrackedSessions)"]
        ]
        for (const [options, option, reason] of cases) {
          const error = yield* refusal(options)
          expect(error).toBeInstanceOf(WriteBehind.InvalidWriteBehindOptions)
          expect({ option: error.option, reason: error.reason }).toEqual({ option, reason })
          expect(error.message).toBe(`Invalid write-behind option ${option}: ${reason}`)
        }
        expect(yield* countMessages).toBe(before)
        // Defaults still follow a larger maxBatch; zero is a drain timeout.
        yield* Effect.scoped(Layer.build(WriteBehind.layer({ maxBatch: 20_000, retryDelay: "10 seconds", drainTimeout: 0 })))
      }))
  })
})
