/**
 * The `sessions` table's statements: creating, reading, listing, deleting and restoring sessions,
 * and the write lock every append and agent switch starts with. Each runs on the `SqlClient` in
 * context (the services provide `Database.strataClient`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Timestamp } from "@strata/core"
import { Duration, Effect, Either, Option } from "effect"
import * as ChatModel from "../ChatModel.js"
import { insertRows, type SessionRow, sessionColumns, sessionFromRow, toMillis } from "./chatRows.js"

const decodeId = ChatModel.decoder(ChatModel.Id)
const decodeNewSession = ChatModel.decoder(ChatModel.NewSession)
const decodeListOptions = ChatModel.decoder(ChatModel.ListOptions)

/** The session's id, checked; the error names `sessionId`. */
export const sessionIdOf = (sessionId: string): Either.Either<string, ChatModel.InvalidInput> => decodeId(sessionId, "sessionId")

/** The session, deleted or not, if it exists. */
export const findSession = (id: string): Effect.Effect<Option.Option<ChatModel.Session>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<SessionRow>`SELECT ${sql.literal(sessionColumns)} FROM sessions WHERE id = ${id}`,
      (rows) => Option.map(Option.fromNullable(rows[0]), sessionFromRow)
    ))

/** The session, deleted or not, or `SessionNotFound`. */
export const requireSession = (id: string): Effect.Effect<ChatModel.Session, ChatModel.SessionNotFound | SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(findSession(id), Option.match({
    onNone: () => Effect.fail(new ChatModel.SessionNotFound({ sessionId: id })),
    onSome: Effect.succeed
  }))

/**
 * The first statement of a write to a session: moves its last activity forward to `activityMs`
 * and, in the same statement, checks that it exists and is not deleted. Being a write, it takes
 * the session's row lock on PostgreSQL (concurrent appends to one session queue here, so each
 * reads the right next seq) and SQLite's write lock at once (no read-then-upgrade, which fails
 * with SQLITE_BUSY when another process writes in between). A failure rolls the update back.
 */
export const lockLiveSession = (
  id: string,
  activityMs: number
): Effect.Effect<void, ChatModel.SessionNotFound | ChatModel.SessionDeleted | SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.flatMap(
      sql<{ deleted_at_ms: number | string | null }>`UPDATE sessions
        SET last_activity_ms = CASE WHEN last_activity_ms < ${activityMs} THEN ${activityMs} ELSE last_activity_ms END
        WHERE id = ${id} RETURNING deleted_at_ms`,
      (rows): Effect.Effect<void, ChatModel.SessionNotFound | ChatModel.SessionDeleted> => {
        const row = rows[0]
        if (row === undefined) return Effect.fail(new ChatModel.SessionNotFound({ sessionId: id }))
        return row.deleted_at_ms !== null
          ? Effect.fail(new ChatModel.SessionDeleted({ sessionId: id, deletedAtMs: toMillis(row.deleted_at_ms) }))
          : Effect.void
      }
    ))

export const createSession = (
  input: ChatModel.NewSession
): Effect.Effect<ChatModel.Session, ChatModel.InvalidInput | ChatModel.SessionExists | ChatModel.SessionDeleted | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const session = yield* decodeNewSession(input, "")
    const now = yield* Timestamp.now
    const inserted = yield* insertRows<SessionRow>(
      "sessions",
      ["id", "title", "description", "created_at_ms", "last_activity_ms", "deleted_at_ms"],
      [[session.id, session.title ?? null, session.description ?? null, now, now, null]],
      ` ON CONFLICT (id) DO NOTHING RETURNING ${sessionColumns}`
    )
    const row = inserted[0]
    if (row !== undefined) return sessionFromRow(row)
    const existing = yield* findSession(session.id)
    if (Option.isSome(existing) && existing.value.deletedAtMs !== null) {
      return yield* new ChatModel.SessionDeleted({ sessionId: session.id, deletedAtMs: existing.value.deletedAtMs })
    }
    return yield* new ChatModel.SessionExists({ sessionId: session.id })
  })

export const getSession = (sessionId: string) => Effect.flatMap(sessionIdOf(sessionId), requireSession)

const encodeCursor = (session: ChatModel.Session): string =>
  Buffer.from(JSON.stringify([session.lastActivityMs, session.id])).toString("base64url")

const decodeCursor = (cursor: string): Either.Either<readonly [number, string], ChatModel.InvalidInput> => {
  const invalid = Either.left(new ChatModel.InvalidInput({ field: "cursor", reason: "is not a cursor returned by listSessions" }))
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
    return Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[0]) && typeof parsed[1] === "string"
      ? Either.right([parsed[0] as number, parsed[1] as string] as const)
      : invalid
  } catch {
    return invalid
  }
}

export const listSessions = (
  options: { readonly includeDeleted?: boolean; readonly limit?: number; readonly cursor?: string | null }
): Effect.Effect<ChatModel.SessionPage, ChatModel.InvalidInput | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { cursor, includeDeleted, limit } = yield* decodeListOptions(options, "")
    const after = cursor == null ? undefined : yield* decodeCursor(cursor)
    const conditions = [
      ...(includeDeleted ? [] : [sql`deleted_at_ms IS NULL`]),
      ...(after === undefined ? [] : [sql`(last_activity_ms, id) < (${after[0]}, ${after[1]})`])
    ]
    const rows = yield* sql<SessionRow>`SELECT ${sql.literal(sessionColumns)} FROM sessions
      WHERE ${sql.and(conditions)}
      ORDER BY last_activity_ms DESC, id DESC LIMIT ${limit + 1}`
    const sessions = rows.slice(0, limit).map(sessionFromRow)
    const last = sessions[sessions.length - 1]
    return { sessions, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last) : null }
  })

const updateOne = (id: string, rows: Effect.Effect<ReadonlyArray<SessionRow>, SqlError>) =>
  Effect.flatMap(rows, (found) =>
    found[0] === undefined
      ? Effect.fail(new ChatModel.SessionNotFound({ sessionId: id }))
      : Effect.succeed(sessionFromRow(found[0])))

export const softDelete = (sessionId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = yield* sessionIdOf(sessionId)
    const now = yield* Timestamp.now
    // COALESCE keeps the first deletion time: deleting twice is a no-op, not a new date.
    return yield* updateOne(
      id,
      sql<SessionRow>`UPDATE sessions SET deleted_at_ms = COALESCE(deleted_at_ms, ${now}), is_active = FALSE
        WHERE id = ${id} RETURNING ${sql.literal(sessionColumns)}`
    )
  })

export const restore = (sessionId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = yield* sessionIdOf(sessionId)
    return yield* updateOne(
      id,
      sql<SessionRow>`UPDATE sessions SET deleted_at_ms = NULL, is_active = TRUE
        WHERE id = ${id} RETURNING ${sql.literal(sessionColumns)}`
    )
  })

export const hardDelete = (sessionId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const id = yield* sessionIdOf(sessionId)
    const deleted = yield* sql<{ id: string }>`DELETE FROM sessions WHERE id = ${id} RETURNING id`
    if (deleted.length === 0) return yield* new ChatModel.SessionNotFound({ sessionId: id })
  })

/** Epoch ms `age` before the `Clock`'s now, as a whole number (the columns are integers). */
const before = (age: Duration.Duration) => Effect.map(Timestamp.now, (now) => ({ now, cutoff: now - Math.ceil(Duration.toMillis(age)) }))

export const cleanupInactive = (olderThan: Duration.DurationInput) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { cutoff, now } = yield* Effect.flatMap(ChatModel.validateAge(olderThan, "olderThan"), before)
    const rows = yield* sql<{ id: string }>`UPDATE sessions SET deleted_at_ms = ${now}, is_active = FALSE
      WHERE deleted_at_ms IS NULL AND last_activity_ms < ${cutoff} RETURNING id`
    return rows.length
  })

export const purgeDeleted = (olderThan: Duration.DurationInput) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { cutoff } = yield* Effect.flatMap(ChatModel.validateAge(olderThan, "olderThan"), before)
    const rows = yield* sql<{ id: string }>`DELETE FROM sessions WHERE deleted_at_ms < ${cutoff} RETURNING id`
    return rows.length
  })
