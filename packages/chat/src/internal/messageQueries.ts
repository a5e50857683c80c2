/**
 * The `messages` table's statements: appending with the next `seq`s, the reads by page, by `seq`
 * and newest first, and a session's numbers. Each runs on the `SqlClient` in context (the
 * services provide `Database.strataClient`); `WriteBehind`'s merged reads use the same selects.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Timestamp } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect } from "effect"
import * as ChatModel from "../ChatModel.js"
import {
  insertMessages,
  lastSeq,
  messageColumns,
  messageFromRow,
  type MessageRow,
  toMillis,
  toMillisOrNull,
  toNumber
} from "./chatRows.js"
import { lockLiveSession, requireSession, sessionIdOf } from "./sessionQueries.js"

const decodePageOptions = ChatModel.decoder(ChatModel.PageOptions)
const decodePageSize = ChatModel.decoder(ChatModel.PageSize)
const decodeAfterSeq = ChatModel.decoder(ChatModel.AfterSeq)

const selectMessages = (
  rows: Effect.Effect<ReadonlyArray<MessageRow>, SqlError>
): Effect.Effect<ReadonlyArray<ChatModel.Message>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(Database.dialect, (dialect) => Effect.map(rows, (found) => found.map((row) => messageFromRow(row, dialect))))

/** Messages `offset`… of the session in `seq` order, at most `limit`; with `belowSeq`, only those before it. */
export const messagesInOrder = (sessionId: string, limit: number, offset: number, belowSeq?: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
      WHERE session_id = ${sessionId}${belowSeq === undefined ? sql.literal("") : sql` AND seq < ${belowSeq}`}
      ORDER BY seq LIMIT ${limit} OFFSET ${offset}`))

/** Up to `limit` messages with `seq > afterSeq`, in order. */
export const messagesAfter = (sessionId: string, afterSeq: number, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
      WHERE session_id = ${sessionId} AND seq > ${afterSeq} ORDER BY seq LIMIT ${limit}`))

/** The newest `limit` messages (with `belowSeq`, the newest before it), newest first. */
export const newestMessages = (sessionId: string, limit: number, belowSeq?: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
      WHERE session_id = ${sessionId}${belowSeq === undefined ? sql.literal("") : sql` AND seq < ${belowSeq}`}
      ORDER BY seq DESC LIMIT ${limit}`))

/** How many of the session's messages have `seq < belowSeq`. */
export const countBelow = (sessionId: string, belowSeq: number): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number | string }>`SELECT count(*) AS n FROM messages WHERE session_id = ${sessionId} AND seq < ${belowSeq}`,
      (rows) => toNumber(rows[0]?.n ?? 0)
    ))

export const appendMessages = (sessionId: string, messages: ReadonlyArray<ChatModel.NewMessage>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = yield* sessionIdOf(sessionId)
    const valid = yield* ChatModel.validateMessages(messages)
    const now = yield* Timestamp.now
    // Activity moves to the newest appended message (never back); an empty append leaves it.
    let newest = Number.MIN_SAFE_INTEGER
    for (const message of valid) newest = Math.max(newest, message.createdAtMs ?? now)
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* lockLiveSession(id, newest)
      const supplied = valid.flatMap((m) => m.id === undefined ? [] : [m.id])
      if (supplied.length > 0) {
        const taken = yield* sql<{ id: string; session_id: string }>`SELECT id, session_id FROM messages WHERE id IN ${sql.in(supplied)}`
        const first = taken[0]
        if (first !== undefined) return yield* new ChatModel.MessageExists({ messageId: first.id, sessionId: first.session_id })
      }
      if (valid.length === 0) return []
      const last = yield* lastSeq(id)
      const stored = valid.map((message, i) => ChatModel.toMessage(message, id, last + i + 1, now))
      yield* insertMessages(stored)
      return stored
    }))
  })

export const getMessages = (sessionId: string, options: { readonly page?: number; readonly pageSize?: number }) =>
  Effect.gen(function*() {
    const id = yield* sessionIdOf(sessionId)
    const { page, pageSize } = yield* decodePageOptions(options, "")
    yield* requireSession(id)
    const rows = yield* messagesInOrder(id, pageSize + 1, (page - 1) * pageSize)
    return { sessionId: id, page, pageSize, messages: rows.slice(0, pageSize), hasMore: rows.length > pageSize }
  })

/** The session id, `afterSeq` and `limit` of `getMessagesAfter`, checked. */
export const afterArguments = (sessionId: string, afterSeq: number, limit: number) =>
  Effect.gen(function*() {
    const id = yield* sessionIdOf(sessionId)
    const after = yield* decodeAfterSeq(afterSeq, "afterSeq")
    const size = yield* decodePageSize(limit, "limit")
    return { id, after, size }
  })

export const getMessagesAfter = (sessionId: string, afterSeq: number, limit: number) =>
  Effect.gen(function*() {
    const { after, id, size } = yield* afterArguments(sessionId, afterSeq, limit)
    yield* requireSession(id)
    return yield* messagesAfter(id, after, size)
  })

/** The session id and `count` of `getRecentMessages`, checked. */
export const recentArguments = (sessionId: string, count: number) =>
  Effect.gen(function*() {
    const id = yield* sessionIdOf(sessionId)
    const size = yield* decodePageSize(count, "count")
    return { id, size }
  })

export const getRecentMessages = (sessionId: string, count: number) =>
  Effect.gen(function*() {
    const { id, size } = yield* recentArguments(sessionId, count)
    yield* requireSession(id)
    const newestFirst = yield* newestMessages(id, size)
    return newestFirst.slice().reverse()
  })

/** A stored message's numbers, as the stats need them. */
export interface StoredStat {
  readonly seq: number
  readonly tokenCount: number | null
  readonly createdAtMs: Timestamp.EpochMillis
}

/** The session's stats from the database, and (with `splitSeq`) its messages from `splitSeq` on, one by one. */
export interface StatsSnapshot {
  /** Counts over every stored message, or only those before `splitSeq`. */
  readonly stats: ChatModel.SessionStats
  readonly from: ReadonlyArray<StoredStat>
}

interface StatsRow {
  readonly created_at_ms: number | string | null
  readonly last_activity_ms: number | string | null
  readonly seq: number | string | null
  readonly message_count: number | string
  readonly total_tokens: number | string | null
  readonly first_ms: number | string | null
  readonly last_ms: number | string | null
}

/**
 * The session row, the numbers of its stored messages (those before `splitSeq` when given) and,
 * with `splitSeq`, each stored message from `splitSeq` on: in ONE statement, so one snapshot. Two
 * statements would let a write-behind flush commit between them, and a message it wrote would be
 * counted in neither part (or both).
 */
export const statsSnapshot = (
  sessionId: string,
  splitSeq?: number
): Effect.Effect<StatsSnapshot, ChatModel.SessionNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const below = splitSeq === undefined ? sql.literal("") : sql` AND seq < ${splitSeq}`
    const aggregate = sql`SELECT s.created_at_ms, s.last_activity_ms, NULL AS seq, m.message_count, m.total_tokens, m.first_ms, m.last_ms
      FROM sessions s, (SELECT count(*) AS message_count, sum(token_count) AS total_tokens,
          min(created_at_ms) AS first_ms, max(created_at_ms) AS last_ms
        FROM messages WHERE session_id = ${sessionId}${below}) m
      WHERE s.id = ${sessionId}`
    const rows = yield* (splitSeq === undefined
      ? sql<StatsRow>`${aggregate}`
      : sql<StatsRow>`${aggregate}
        UNION ALL
        SELECT NULL, NULL, seq, 1, token_count, created_at_ms, created_at_ms
        FROM messages WHERE session_id = ${sessionId} AND seq >= ${splitSeq}`)
    const head = rows.find((row) => row.seq === null)
    if (head === undefined || head.created_at_ms === null || head.last_activity_ms === null) {
      return yield* new ChatModel.SessionNotFound({ sessionId })
    }
    const stats: ChatModel.SessionStats = {
      sessionId,
      messageCount: toNumber(head.message_count),
      totalTokens: head.total_tokens === null ? 0 : toNumber(head.total_tokens),
      firstMessageAtMs: toMillisOrNull(head.first_ms),
      lastMessageAtMs: toMillisOrNull(head.last_ms),
      createdAtMs: toMillis(head.created_at_ms),
      lastActivityMs: toMillis(head.last_activity_ms)
    }
    const from = rows.flatMap((row): ReadonlyArray<StoredStat> =>
      row.seq === null ? [] : [{
        seq: toNumber(row.seq),
        tokenCount: row.total_tokens === null ? null : toNumber(row.total_tokens),
        createdAtMs: toMillis(row.first_ms!)
      }]
    )
    return { stats, from }
  })

export const getSessionStats = (sessionId: string) =>
  Effect.flatMap(sessionIdOf(sessionId), (id) => Effect.map(statsSnapshot(id), (snapshot) => snapshot.stats))
