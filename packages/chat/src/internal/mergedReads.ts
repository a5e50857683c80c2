/**
 * `WriteBehind`'s reads: the store's reads with the session's buffered messages merged in, so a
 * caller reads its own writes. The buffer is read before the database, so a message flushed in
 * between is seen in both and kept once (by `seq`); nothing is missed. Runs on the `SqlClient` in
 * context (the service provides `Database.strataClient`).
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import type * as ChatModel from "../ChatModel.js"
import { toMillis } from "./chatRows.js"
import { countBelow, messagesAfter, messagesInOrder, newestMessages, statsSnapshot } from "./messageQueries.js"

/** Stored and buffered messages in `seq` order, each once (a message flushed meanwhile is in both). */
const merge = (stored: ReadonlyArray<ChatModel.Message>, buffered: ReadonlyArray<ChatModel.Message>) => {
  const bySeq = new Map<number, ChatModel.Message>()
  for (const message of stored) bySeq.set(message.seq, message)
  for (const message of buffered) if (!bySeq.has(message.seq)) bySeq.set(message.seq, message)
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq)
}

/** Page `page` of `pageSize` of the session's stored and `buffered` messages (all of them, in `seq` order). */
export const page = (
  sessionId: string,
  page: number,
  pageSize: number,
  buffered: ReadonlyArray<ChatModel.Message>
): Effect.Effect<ChatModel.MessagePage, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const offset = (page - 1) * pageSize
    const wanted = pageSize + 1
    const firstBuffered = buffered[0]!.seq
    // Stored messages before the oldest buffered one come first in the order, on their own.
    const before = yield* countBelow(sessionId, firstBuffered)
    const head = offset < before ? yield* messagesInOrder(sessionId, wanted, offset, firstBuffered) : []
    const remaining = wanted - head.length
    let tail: ReadonlyArray<ChatModel.Message> = []
    if (remaining > 0) {
      const skip = Math.max(0, offset - before)
      const needed = buffered.slice(0, skip + remaining)
      // Up to `needed.length` stored ones may also be buffered; fetching that many more keeps the merge exact.
      const stored = yield* messagesAfter(sessionId, firstBuffered - 1, skip + remaining + needed.length)
      tail = merge(stored, needed).slice(skip, skip + remaining)
    }
    const messages = [...head, ...tail]
    return { sessionId, page, pageSize, messages: messages.slice(0, pageSize), hasMore: messages.length > pageSize }
  })

/** The first `limit` messages with `seq > afterSeq` of stored ∪ `buffered` (the buffered ones after `afterSeq`, at most `limit`). */
export const after = (
  sessionId: string,
  afterSeq: number,
  limit: number,
  buffered: ReadonlyArray<ChatModel.Message>
): Effect.Effect<ReadonlyArray<ChatModel.Message>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const stored = yield* messagesAfter(sessionId, afterSeq, limit)
    // Stored rows that are also buffered would crowd out the next ones: read as many more.
    const more = stored.length === limit ? yield* messagesAfter(sessionId, stored[stored.length - 1]!.seq, buffered.length) : []
    return merge([...stored, ...more], buffered).slice(0, limit)
  })

/** The newest `count` of stored ∪ `buffered` (the newest buffered ones, at most `count`), oldest first. */
export const newest = (
  sessionId: string,
  count: number,
  buffered: ReadonlyArray<ChatModel.Message>
): Effect.Effect<ReadonlyArray<ChatModel.Message>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const stored = yield* newestMessages(sessionId, count)
    // More stored rows are needed only where buffered ones duplicate them.
    const older = stored.length === count ? yield* newestMessages(sessionId, buffered.length, stored[stored.length - 1]!.seq) : []
    const merged = merge([...older, ...stored], buffered)
    return merged.slice(Math.max(0, merged.length - count))
  })

/** The session's stats counting every stored and `buffered` message once, read in one snapshot. */
export const stats = (
  sessionId: string,
  buffered: ReadonlyArray<ChatModel.Message>
): Effect.Effect<ChatModel.SessionStats, ChatModel.SessionNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const snapshot = yield* statsSnapshot(sessionId, buffered[0]!.seq)
    // Messages from the oldest buffered one on: the stored ones (some may also still be buffered) and
    // the buffered ones not yet stored, each seq once.
    const bySeq = new Map<number, { readonly tokenCount: number | null; readonly createdAtMs: number }>()
    for (const row of snapshot.from) bySeq.set(row.seq, row)
    for (const message of buffered) if (!bySeq.has(message.seq)) bySeq.set(message.seq, message)
    let { firstMessageAtMs: first, lastMessageAtMs: last, messageCount, totalTokens } = snapshot.stats
    for (const message of bySeq.values()) {
      messageCount++
      totalTokens += message.tokenCount ?? 0
      if (first === null || message.createdAtMs < first) first = toMillis(message.createdAtMs)
      if (last === null || message.createdAtMs > last) last = toMillis(message.createdAtMs)
    }
    const lastActivityMs = last !== null && last > snapshot.stats.lastActivityMs ? last : snapshot.stats.lastActivityMs
    return { ...snapshot.stats, messageCount, totalTokens, firstMessageAtMs: first, lastMessageAtMs: last, lastActivityMs }
  })
