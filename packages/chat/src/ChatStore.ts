/**
 * The reference session store of seed 003 over the `chat-store` plan (`ChatPlan.plan`): sessions,
 * their messages in append order, the current agent and the history of agent switches.
 *
 * What it fixes in the original: messages are appended with the next `seq` and never rewritten
 * (history keeps its times; paging is stable under equal timestamps); concurrent appends to one
 * session serialise (PostgreSQL locks the session row, SQLite's single writer does the rest);
 * foreign keys are on, so a hard delete leaves no orphans; a second soft delete keeps the first
 * `deleted_at_ms`; re-creating a soft-deleted id fails with `SessionDeleted` (restore it instead);
 * token totals are summed; every bad argument is an `InvalidInput` naming the field. Times are epoch
 * ms from `Clock`.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Timestamp } from "@strata/core"
import * as ChatPlan from "./ChatPlan.js"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import { Database } from "@strata/sql"
import type { MessageRow, SessionRow } from "./internal/chatRows.js"
import { fastMessage } from "./internal/fastMessage.js"
import {
  insertMessages,
  jsonFromColumn,
  jsonToColumn,
  lastSeq,
  messageColumns,
  messageFromRow,
  sessionColumns,
  sessionFromRow,
  toMillis,
  toMillisOrNull,
  toNumber
} from "./internal/chatRows.js"
import { uuid7 } from "./internal/uuid7.js"

/**
 * The most rows one read returns (`pageSize`, `limit`, `count`).
 *
 * @since 0.1.0
 */
export const maxPageSize = 1000

/**
 * Text the store accepts: PostgreSQL cannot store NUL characters, so neither engine takes them.
 *
 * @since 0.1.0
 */
export const Text = Schema.String.pipe(
  Schema.filter((text) => !text.includes("\u0000") || "must not contain NUL characters")
)

/**
 * A session or message id: 1-255 characters, not blank.
 *
 * @since 0.1.0
 */
export const Id = Text.pipe(
  Schema.minLength(1, { message: () => "must not be empty" }),
  Schema.maxLength(255),
  Schema.filter((text) => text.trim() !== "" || "must not be blank")
)

/**
 * A message's role.
 *
 * @since 0.1.0
 */
export const Role = Schema.Literal(...ChatPlan.roles)

/**
 * @since 0.1.0
 */
export type Role = typeof Role.Type

const roles: ReadonlyArray<unknown> = ChatPlan.roles

// One issue naming every allowed role (a literal union would report only the first).
const RoleInput = Schema.declare((input: unknown): input is Role => roles.includes(input), {
  identifier: "Role",
  message: (issue) => `must be one of ${ChatPlan.roles.join(", ")}, not ${JSON.stringify(issue.actual) ?? String(issue.actual)}`
})

const isJson = (value: unknown): boolean => {
  try {
    return JSON.stringify(value) !== undefined
  } catch {
    return false
  }
}

/**
 * Any JSON value (stored as JSONB on PostgreSQL, JSON text on SQLite).
 *
 * @since 0.1.0
 */
export const JsonValue = Schema.Unknown.pipe(
  Schema.filter((value) => isJson(value) || "must be JSON-serialisable"),
  Schema.filter((value) => !JSON.stringify(value).includes("\\u0000") || "must not contain NUL characters")
)

/**
 * A JSON object (metadata).
 *
 * @since 0.1.0
 */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
  Schema.filter((value) => isJson(value) || "must be JSON-serialisable"),
  Schema.filter((value) => !JSON.stringify(value).includes("\\u0000") || "must not contain NUL characters")
)

/**
 * @since 0.1.0
 */
export type JsonObject = typeof JsonObject.Type

const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const PageNumber = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1, { message: () => "must be an integer of at least 1" }))
const PageSize = Schema.Int.pipe(
  Schema.between(1, maxPageSize, { message: () => `must be an integer from 1 to ${maxPageSize}` })
)

/**
 * Page options of `getMessages`: `page` from 1 (default 1), `pageSize` 1 to `maxPageSize` (default 50).
 *
 * @since 0.1.0
 */
export const PageOptions = Schema.Struct({
  page: Schema.optionalWith(PageNumber, { default: () => 1 }),
  pageSize: Schema.optionalWith(PageSize, { default: () => 50 })
})

/**
 * What `createSession` takes.
 *
 * @since 0.1.0
 */
export const NewSession = Schema.Struct({
  id: Id,
  title: Schema.optional(Schema.NullOr(Text)),
  description: Schema.optional(Schema.NullOr(Text))
})

/**
 * @since 0.1.0
 */
export type NewSession = typeof NewSession.Encoded

/**
 * A message to append. `id` defaults to a new UUIDv7, `createdAtMs` to the `Clock`'s now.
 *
 * @since 0.1.0
 */
export const NewMessage = Schema.Struct({
  id: Schema.optional(Id),
  role: RoleInput,
  content: Schema.optional(Schema.NullOr(Text)),
  name: Schema.optional(Schema.NullOr(Text)),
  toolCallId: Schema.optional(Schema.NullOr(Text)),
  toolCalls: Schema.optional(Schema.NullOr(JsonValue)),
  tokenCount: Schema.optional(Schema.NullOr(NonNegativeInt)),
  metadata: Schema.optional(Schema.NullOr(JsonObject)),
  createdAtMs: Schema.optional(Timestamp.EpochMillis)
})

/**
 * @since 0.1.0
 */
export type NewMessage = typeof NewMessage.Encoded

/**
 * A session as stored.
 *
 * @since 0.1.0
 */
export const Session = Schema.Struct({
  id: Schema.String,
  title: Schema.NullOr(Schema.String),
  description: Schema.NullOr(Schema.String),
  createdAtMs: Timestamp.EpochMillis,
  lastActivityMs: Timestamp.EpochMillis,
  isActive: Schema.Boolean,
  deletedAtMs: Schema.NullOr(Timestamp.EpochMillis)
})

/**
 * @since 0.1.0
 */
export interface Session extends Schema.Schema.Type<typeof Session> {}

/**
 * A message as stored: `seq` is its 1-based position in the session, assigned on append.
 *
 * @since 0.1.0
 */
export const Message = Schema.Struct({
  id: Schema.String,
  sessionId: Schema.String,
  seq: Schema.Int,
  role: Role,
  content: Schema.NullOr(Schema.String),
  name: Schema.NullOr(Schema.String),
  toolCallId: Schema.NullOr(Schema.String),
  /** JSON or `null`. */
  toolCalls: Schema.Unknown,
  tokenCount: Schema.NullOr(Schema.Int),
  /** A JSON object or `null`. */
  metadata: Schema.Unknown,
  createdAtMs: Timestamp.EpochMillis
})

/**
 * @since 0.1.0
 */
export interface Message extends Schema.Schema.Type<typeof Message> {}

/**
 * One page of `listSessions`, newest activity first; pass `nextCursor` for the next page.
 *
 * @since 0.1.0
 */
export const SessionPage = Schema.Struct({
  sessions: Schema.Array(Session),
  nextCursor: Schema.NullOr(Schema.String)
})

/**
 * @since 0.1.0
 */
export interface SessionPage extends Schema.Schema.Type<typeof SessionPage> {}

/**
 * One page of a session's messages in `seq` order.
 *
 * @since 0.1.0
 */
export const MessagePage = Schema.Struct({
  sessionId: Schema.String,
  page: Schema.Int,
  pageSize: Schema.Int,
  messages: Schema.Array(Message),
  hasMore: Schema.Boolean
})

/**
 * @since 0.1.0
 */
export interface MessagePage extends Schema.Schema.Type<typeof MessagePage> {}

/**
 * A session's numbers: `totalTokens` sums `token_count` (messages without one count 0).
 *
 * @since 0.1.0
 */
export const SessionStats = Schema.Struct({
  sessionId: Schema.String,
  messageCount: Schema.Int,
  totalTokens: Schema.Int,
  firstMessageAtMs: Schema.NullOr(Timestamp.EpochMillis),
  lastMessageAtMs: Schema.NullOr(Timestamp.EpochMillis),
  createdAtMs: Timestamp.EpochMillis,
  lastActivityMs: Timestamp.EpochMillis
})

/**
 * @since 0.1.0
 */
export interface SessionStats extends Schema.Schema.Type<typeof SessionStats> {}

/**
 * The agent a session is with now.
 *
 * @since 0.1.0
 */
export const AgentContext = Schema.Struct({
  sessionId: Schema.String,
  currentAgent: Schema.String,
  createdAtMs: Timestamp.EpochMillis,
  updatedAtMs: Timestamp.EpochMillis,
  switchCount: Schema.Int,
  metadata: Schema.Unknown
})

/**
 * @since 0.1.0
 */
export interface AgentContext extends Schema.Schema.Type<typeof AgentContext> {}

/**
 * One recorded agent switch (`fromAgent` is `null` for a session's first agent).
 *
 * @since 0.1.0
 */
export const AgentSwitch = Schema.Struct({
  id: Schema.Int,
  sessionId: Schema.String,
  fromAgent: Schema.NullOr(Schema.String),
  toAgent: Schema.String,
  reason: Schema.NullOr(Schema.String),
  metadata: Schema.Unknown,
  switchedAtMs: Timestamp.EpochMillis
})

/**
 * @since 0.1.0
 */
export interface AgentSwitch extends Schema.Schema.Type<typeof AgentSwitch> {}

/**
 * An argument the store cannot take; `field` names it (`page`, `messages[2].role`).
 *
 * @since 0.1.0
 */
export class InvalidInput extends Schema.TaggedError<InvalidInput>()("InvalidInput", {
  field: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid ${this.field}: ${this.reason}`
  }
}

/**
 * No session has this id.
 *
 * @since 0.1.0
 */
export class SessionNotFound extends Schema.TaggedError<SessionNotFound>()("SessionNotFound", {
  sessionId: Schema.String
}) {
  override get message(): string {
    return `session ${JSON.stringify(this.sessionId)} does not exist`
  }
}

/**
 * `createSession` with the id of a live session.
 *
 * @since 0.1.0
 */
export class SessionExists extends Schema.TaggedError<SessionExists>()("SessionExists", {
  sessionId: Schema.String
}) {
  override get message(): string {
    return `session ${JSON.stringify(this.sessionId)} already exists`
  }
}

/**
 * The session is soft-deleted: it cannot be re-created or written to until `restore`d.
 *
 * @since 0.1.0
 */
export class SessionDeleted extends Schema.TaggedError<SessionDeleted>()("SessionDeleted", {
  sessionId: Schema.String,
  deletedAtMs: Schema.Number
}) {
  override get message(): string {
    return `session ${JSON.stringify(this.sessionId)} was deleted at ${
      Timestamp.toIso(this.deletedAtMs as Timestamp.EpochMillis)
    }; restore it to use it again`
  }
}

/**
 * A caller-supplied message id that is already stored.
 *
 * @since 0.1.0
 */
export class MessageExists extends Schema.TaggedError<MessageExists>()("MessageExists", {
  messageId: Schema.String,
  sessionId: Schema.String
}) {
  override get message(): string {
    return `message ${JSON.stringify(this.messageId)} already exists (in session ${JSON.stringify(this.sessionId)})`
  }
}

const formatPath = (prefix: string, path: ReadonlyArray<PropertyKey>): string => {
  let text = prefix
  for (const key of path) {
    text += typeof key === "number" ? `[${key}]` : text === "" ? String(key) : `.${String(key)}`
  }
  return text === "" ? "input" : text
}

/**
 * A decoder whose failure is an `InvalidInput` naming the first bad field under `field`.
 *
 * @since 0.1.0
 */
export const decoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (input: unknown, field: string): Either.Either<A, InvalidInput> =>
    Either.mapLeft(decode(input), (error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      return new InvalidInput({
        field: formatPath(field, issue?.path ?? []),
        reason: issue?.message ?? "is invalid"
      })
    })
}

const decodeId = decoder(Id)

/**
 * Validates a session or message id; the error names `field`.
 *
 * @since 0.1.0
 */
export const validateId = (input: unknown, field: string): Either.Either<string, InvalidInput> => decodeId(input, field)
const decodeNewSession = decoder(NewSession)
const decodeNewMessage = decoder(NewMessage)
const decodePageOptions = decoder(PageOptions)
const decodeListOptions = decoder(Schema.Struct({
  includeDeleted: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  limit: Schema.optionalWith(PageSize, { default: () => 50 }),
  cursor: Schema.optional(Schema.NullOr(Schema.String))
}))
const decodeHistoryOptions = decoder(Schema.Struct({
  limit: Schema.optionalWith(PageSize, { default: () => 100 })
}))
const decodePageSize = decoder(PageSize)
const decodeNonNegativeInt = decoder(NonNegativeInt)
const decodeSwitch = decoder(Schema.Struct({
  toAgent: Id,
  reason: Schema.NullOr(Text),
  metadata: Schema.NullOr(JsonObject)
}))

/**
 * A validated message, ready for `seq`, id and time to be assigned.
 *
 * @since 0.1.0
 */
export type ValidMessage = typeof NewMessage.Type

/**
 * Validates one message to append; the error names `<field>.<name>`.
 *
 * @since 0.1.0
 */
export const validateMessage = (input: unknown, field: string): Either.Either<ValidMessage, InvalidInput> => {
  const simple = fastMessage(input)
  return simple !== undefined ? Either.right(simple) : decodeNewMessage(input, field)
}

/**
 * Validates messages to append (fields named `<field>[i].<name>`), including ids repeated in the batch.
 *
 * @since 0.1.0
 */
export const validateMessages = (
  messages: ReadonlyArray<NewMessage>,
  field = "messages"
): Either.Either<ReadonlyArray<ValidMessage>, InvalidInput> => {
  if (!Array.isArray(messages)) return Either.left(new InvalidInput({ field, reason: "must be an array" }))
  const valid: Array<ValidMessage> = []
  const seen = new Map<string, number>()
  for (let i = 0; i < messages.length; i++) {
    const decoded = validateMessage(messages[i], `${field}[${i}]`)
    if (Either.isLeft(decoded)) return Either.left(decoded.left)
    const id = decoded.right.id
    if (id !== undefined) {
      const first = seen.get(id)
      if (first !== undefined) {
        return Either.left(new InvalidInput({ field: `${field}[${i}].id`, reason: `repeats ${field}[${first}].id` }))
      }
      seen.set(id, i)
    }
    valid.push(decoded.right)
  }
  return Either.right(valid)
}

/**
 * A new message id for the instant `ms`: a UUIDv7, greater than every id made before it in this
 * process (so the primary-key index grows at its end). What `appendMessages` assigns when a message
 * comes without an id.
 *
 * @since 0.1.0
 */
export const makeMessageId = (ms: number): string => uuid7(ms)

/**
 * A validated message with its place in the session: what gets stored.
 *
 * @since 0.1.0
 */
export const toMessage = (
  message: ValidMessage,
  sessionId: string,
  seq: number,
  now: Timestamp.EpochMillis
): Message => ({
  id: message.id ?? uuid7(now),
  sessionId,
  seq,
  role: message.role,
  content: message.content ?? null,
  name: message.name ?? null,
  toolCallId: message.toolCallId ?? null,
  toolCalls: message.toolCalls ?? null,
  tokenCount: message.tokenCount ?? null,
  metadata: message.metadata ?? null,
  createdAtMs: message.createdAtMs ?? now
})

const encodeCursor = (session: Session): string =>
  Buffer.from(JSON.stringify([session.lastActivityMs, session.id])).toString("base64url")

const decodeCursor = (cursor: string): Either.Either<readonly [number, string], InvalidInput> => {
  const invalid = Either.left(new InvalidInput({ field: "cursor", reason: "is not a cursor returned by listSessions" }))
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"))
    return Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[0]) && typeof parsed[1] === "string"
      ? Either.right([parsed[0] as number, parsed[1] as string] as const)
      : invalid
  } catch {
    return invalid
  }
}

interface AgentContextRow {
  readonly session_id: string
  readonly current_agent: string
  readonly created_at_ms: number | string
  readonly updated_at_ms: number | string
  readonly switch_count: number | string
  readonly metadata: unknown
}

interface AgentSwitchRow {
  readonly id: number | string
  readonly session_id: string
  readonly from_agent: string | null
  readonly to_agent: string
  readonly reason: string | null
  readonly metadata: unknown
  readonly switched_at_ms: number | string
}

/**
 * The session store (needs only a `SqlClient` whose database has the `chat-store` plan applied).
 *
 * @since 0.1.0
 */
export class ChatStore extends Effect.Service<ChatStore>()("@strata/sql/ChatStore", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    if (dialect === "sqlite") {
      // Cascading deletes need foreign keys on; Database.layer turns them on, a client handed in may not have.
      yield* sql.unsafe("PRAGMA foreign_keys = ON").pipe(Effect.orDie)
    }
    const findSession = (id: string): Effect.Effect<Option.Option<Session>, SqlError> =>
      Effect.map(
        sql<SessionRow>`SELECT ${sql.literal(sessionColumns)} FROM sessions WHERE id = ${id}`,
        (rows) => Option.map(Option.fromNullable(rows[0]), sessionFromRow)
      )

    const requireSession = (id: string): Effect.Effect<Session, SessionNotFound | SqlError> =>
      Effect.flatMap(findSession(id), Option.match({
        onNone: () => Effect.fail(new SessionNotFound({ sessionId: id })),
        onSome: Effect.succeed
      }))

    /**
     * The first statement of a write to a session: moves its last activity forward to `activityMs`
     * and, in the same statement, checks that it exists and is not deleted. Being a write, it takes
     * the session's row lock on PostgreSQL (concurrent appends to one session queue here, so each
     * reads the right next seq) and SQLite's write lock at once (no read-then-upgrade, which fails
     * with SQLITE_BUSY when another process writes in between). A failure rolls the update back.
     */
    const lockLiveSession = (
      id: string,
      activityMs: number
    ): Effect.Effect<void, SessionNotFound | SessionDeleted | SqlError> =>
      Effect.flatMap(
        sql<{ deleted_at_ms: number | string | null }>`UPDATE sessions
          SET last_activity_ms = CASE WHEN last_activity_ms < ${activityMs} THEN ${activityMs} ELSE last_activity_ms END
          WHERE id = ${id} RETURNING deleted_at_ms`,
        (rows): Effect.Effect<void, SessionNotFound | SessionDeleted> => {
          const row = rows[0]
          if (row === undefined) return Effect.fail(new SessionNotFound({ sessionId: id }))
          return row.deleted_at_ms !== null
            ? Effect.fail(new SessionDeleted({ sessionId: id, deletedAtMs: toMillis(row.deleted_at_ms) }))
            : Effect.void
        }
      )

    const selectMessages = (rows: Effect.Effect<ReadonlyArray<MessageRow>, SqlError>) =>
      Effect.map(rows, (found) => found.map((row) => messageFromRow(row, dialect)))

    const createSession = (input: NewSession): Effect.Effect<Session, InvalidInput | SessionExists | SessionDeleted | SqlError> =>
      Effect.gen(function*() {
        const session = yield* decodeNewSession(input, "")
        const now = yield* Timestamp.now
        const inserted = yield* sql<SessionRow>`INSERT INTO sessions ${
          sql.insert({
            id: session.id,
            title: session.title ?? null,
            description: session.description ?? null,
            created_at_ms: now,
            last_activity_ms: now,
            deleted_at_ms: null
          })
        } ON CONFLICT (id) DO NOTHING RETURNING ${sql.literal(sessionColumns)}`
        const row = inserted[0]
        if (row !== undefined) return sessionFromRow(row)
        const existing = yield* findSession(session.id)
        if (Option.isSome(existing) && existing.value.deletedAtMs !== null) {
          return yield* new SessionDeleted({ sessionId: session.id, deletedAtMs: existing.value.deletedAtMs })
        }
        return yield* new SessionExists({ sessionId: session.id })
      }).pipe(Effect.withSpan("ChatStore.createSession"))

    const getSession = (sessionId: string): Effect.Effect<Session, InvalidInput | SessionNotFound | SqlError> =>
      Effect.flatMap(decodeId(sessionId, "sessionId"), requireSession)

    const listSessions = (
      options: { readonly includeDeleted?: boolean; readonly limit?: number; readonly cursor?: string | null } = {}
    ): Effect.Effect<SessionPage, InvalidInput | SqlError> =>
      Effect.gen(function*() {
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

    const appendMessages = (
      sessionId: string,
      messages: ReadonlyArray<NewMessage>
    ): Effect.Effect<
      ReadonlyArray<Message>,
      InvalidInput | SessionNotFound | SessionDeleted | MessageExists | SqlError
    > =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const valid = yield* validateMessages(messages)
        const now = yield* Timestamp.now
        // Activity moves to the newest appended message (never back); an empty append leaves it.
        let newest = Number.MIN_SAFE_INTEGER
        for (const message of valid) newest = Math.max(newest, message.createdAtMs ?? now)
        return yield* sql.withTransaction(Effect.gen(function*() {
          yield* lockLiveSession(id, newest)
          const supplied = valid.flatMap((m) => m.id === undefined ? [] : [m.id])
          if (supplied.length > 0) {
            const taken = yield* sql<{ id: string; session_id: string }>`SELECT id, session_id FROM messages WHERE ${
              sql.in("id", supplied)
            }`
            const first = taken[0]
            if (first !== undefined) return yield* new MessageExists({ messageId: first.id, sessionId: first.session_id })
          }
          if (valid.length === 0) return []
          const last = yield* lastSeq(sql, id)
          const stored = valid.map((message, i) => toMessage(message, id, last + i + 1, now))
          yield* insertMessages(sql, stored)
          return stored
        }))
      }).pipe(Effect.withSpan("ChatStore.appendMessages", { attributes: { session_id: sessionId } }))

    const getMessages = (
      sessionId: string,
      options: { readonly page?: number; readonly pageSize?: number } = {}
    ): Effect.Effect<MessagePage, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const { page, pageSize } = yield* decodePageOptions(options, "")
        yield* requireSession(id)
        const rows = yield* selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
          WHERE session_id = ${id} ORDER BY seq LIMIT ${pageSize + 1} OFFSET ${(page - 1) * pageSize}`)
        return { sessionId: id, page, pageSize, messages: rows.slice(0, pageSize), hasMore: rows.length > pageSize }
      })

    const getMessagesAfter = (
      sessionId: string,
      afterSeq: number,
      limit: number
    ): Effect.Effect<ReadonlyArray<Message>, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const after = yield* decodeNonNegativeInt(afterSeq, "afterSeq")
        const size = yield* decodePageSize(limit, "limit")
        yield* requireSession(id)
        return yield* selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
          WHERE session_id = ${id} AND seq > ${after} ORDER BY seq LIMIT ${size}`)
      })

    const getRecentMessages = (
      sessionId: string,
      count: number
    ): Effect.Effect<ReadonlyArray<Message>, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const size = yield* decodePageSize(count, "count")
        yield* requireSession(id)
        const newestFirst = yield* selectMessages(sql<MessageRow>`SELECT ${sql.literal(messageColumns)} FROM messages
          WHERE session_id = ${id} ORDER BY seq DESC LIMIT ${size}`)
        return newestFirst.slice().reverse()
      })

    const getSessionStats = (sessionId: string): Effect.Effect<SessionStats, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const session = yield* requireSession(id)
        const rows = yield* sql<{
          message_count: number | string
          total_tokens: number | string | null
          first_ms: number | string | null
          last_ms: number | string | null
        }>`SELECT count(*) AS message_count, sum(token_count) AS total_tokens,
             min(created_at_ms) AS first_ms, max(created_at_ms) AS last_ms
           FROM messages WHERE session_id = ${id}`
        const row = rows[0]
        return {
          sessionId: id,
          messageCount: row === undefined ? 0 : toNumber(row.message_count),
          totalTokens: row?.total_tokens == null ? 0 : toNumber(row.total_tokens),
          firstMessageAtMs: row === undefined ? null : toMillisOrNull(row.first_ms),
          lastMessageAtMs: row === undefined ? null : toMillisOrNull(row.last_ms),
          createdAtMs: session.createdAtMs,
          lastActivityMs: session.lastActivityMs
        }
      })

    const agentContextFromRow = (row: AgentContextRow): AgentContext => ({
      sessionId: row.session_id,
      currentAgent: row.current_agent,
      createdAtMs: toMillis(row.created_at_ms),
      updatedAtMs: toMillis(row.updated_at_ms),
      switchCount: toNumber(row.switch_count),
      metadata: jsonFromColumn(row.metadata, dialect)
    })

    const agentSwitchFromRow = (row: AgentSwitchRow): AgentSwitch => ({
      id: toNumber(row.id),
      sessionId: row.session_id,
      fromAgent: row.from_agent,
      toAgent: row.to_agent,
      reason: row.reason,
      metadata: jsonFromColumn(row.metadata, dialect),
      switchedAtMs: toMillis(row.switched_at_ms)
    })

    const switchAgent = (
      sessionId: string,
      to: string,
      reason: string | null = null,
      metadata: JsonObject | null = null
    ): Effect.Effect<AgentSwitch, InvalidInput | SessionNotFound | SessionDeleted | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const input = yield* decodeSwitch({ toAgent: to, reason, metadata }, "")
        const now = yield* Timestamp.now
        return yield* sql.withTransaction(Effect.gen(function*() {
          yield* lockLiveSession(id, now)
          const contexts = yield* sql<{ current_agent: string }>`SELECT current_agent FROM agent_contexts WHERE session_id = ${id}`
          const from = contexts[0]?.current_agent ?? null
          if (contexts.length === 0) {
            yield* sql`INSERT INTO agent_contexts ${
              sql.insert({
                session_id: id,
                current_agent: input.toAgent,
                created_at_ms: now,
                updated_at_ms: now,
                switch_count: 1,
                metadata: null
              })
            }`
          } else {
            yield* sql`UPDATE agent_contexts SET current_agent = ${input.toAgent}, updated_at_ms = ${now},
              switch_count = switch_count + 1 WHERE session_id = ${id}`
          }
          const inserted = yield* sql<AgentSwitchRow>`INSERT INTO agent_switches ${
            sql.insert({
              session_id: id,
              from_agent: from,
              to_agent: input.toAgent,
              reason: input.reason,
              metadata: jsonToColumn(input.metadata),
              switched_at_ms: now
            })
          } RETURNING id, session_id, from_agent, to_agent, reason, metadata, switched_at_ms`
          return agentSwitchFromRow(inserted[0]!)
        }))
      })

    const getAgentContext = (
      sessionId: string
    ): Effect.Effect<Option.Option<AgentContext>, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        yield* requireSession(id)
        const rows = yield* sql<AgentContextRow>`SELECT session_id, current_agent, created_at_ms, updated_at_ms,
          switch_count, metadata FROM agent_contexts WHERE session_id = ${id}`
        return Option.map(Option.fromNullable(rows[0]), agentContextFromRow)
      })

    const getAgentSwitchHistory = (
      sessionId: string,
      options: { readonly limit?: number } = {}
    ): Effect.Effect<ReadonlyArray<AgentSwitch>, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const { limit } = yield* decodeHistoryOptions(options, "")
        yield* requireSession(id)
        const rows = yield* sql<AgentSwitchRow>`SELECT id, session_id, from_agent, to_agent, reason, metadata, switched_at_ms
          FROM agent_switches WHERE session_id = ${id} ORDER BY switched_at_ms DESC, id DESC LIMIT ${limit}`
        return rows.map(agentSwitchFromRow)
      })

    const updateOne = (id: string, rows: Effect.Effect<ReadonlyArray<SessionRow>, SqlError>) =>
      Effect.flatMap(rows, (found) =>
        found[0] === undefined
          ? Effect.fail(new SessionNotFound({ sessionId: id }))
          : Effect.succeed(sessionFromRow(found[0])))

    const softDelete = (sessionId: string): Effect.Effect<Session, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const now = yield* Timestamp.now
        // COALESCE keeps the first deletion time: deleting twice is a no-op, not a new date.
        return yield* updateOne(
          id,
          sql<SessionRow>`UPDATE sessions SET deleted_at_ms = COALESCE(deleted_at_ms, ${now}), is_active = FALSE
            WHERE id = ${id} RETURNING ${sql.literal(sessionColumns)}`
        )
      })

    const restore = (sessionId: string): Effect.Effect<Session, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        return yield* updateOne(
          id,
          sql<SessionRow>`UPDATE sessions SET deleted_at_ms = NULL, is_active = TRUE
            WHERE id = ${id} RETURNING ${sql.literal(sessionColumns)}`
        )
      })

    const hardDelete = (sessionId: string): Effect.Effect<void, InvalidInput | SessionNotFound | SqlError> =>
      Effect.gen(function*() {
        const id = yield* decodeId(sessionId, "sessionId")
        const deleted = yield* sql<{ id: string }>`DELETE FROM sessions WHERE id = ${id} RETURNING id`
        if (deleted.length === 0) return yield* new SessionNotFound({ sessionId: id })
      })

    const cleanupInactive = (olderThanMs: number): Effect.Effect<number, InvalidInput | SqlError> =>
      Effect.gen(function*() {
        const age = yield* decodeNonNegativeInt(olderThanMs, "olderThanMs")
        const now = yield* Timestamp.now
        const rows = yield* sql<{ id: string }>`UPDATE sessions SET deleted_at_ms = ${now}, is_active = FALSE
          WHERE deleted_at_ms IS NULL AND last_activity_ms < ${now - age} RETURNING id`
        return rows.length
      })

    const purgeDeleted = (olderThanMs: number): Effect.Effect<number, InvalidInput | SqlError> =>
      Effect.gen(function*() {
        const age = yield* decodeNonNegativeInt(olderThanMs, "olderThanMs")
        const now = yield* Timestamp.now
        const rows = yield* sql<{ id: string }>`DELETE FROM sessions WHERE deleted_at_ms < ${now - age} RETURNING id`
        return rows.length
      })

    const withTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
      sql.withTransaction(effect)

    return {
      /** Creates a session; `SessionExists` for a live id, `SessionDeleted` for a soft-deleted one. */
      createSession,
      /** A session, deleted or not. */
      getSession,
      /** Sessions by last activity, newest first, keyset-paged (`nextCursor`); deleted ones only with `includeDeleted`. */
      listSessions,
      /** Appends messages with the next `seq`s in one transaction and returns them as stored. */
      appendMessages,
      /** Page `page` (1-based) of `pageSize` messages in `seq` order. */
      getMessages,
      /** Up to `limit` messages with `seq > afterSeq`, in order (keyset paging). */
      getMessagesAfter,
      /** The last `count` messages, oldest first. */
      getRecentMessages,
      /** Message count, summed tokens, first and last message times, creation and last activity. */
      getSessionStats,
      /** Records a switch to agent `to` and makes it the current agent. */
      switchAgent,
      /** The session's current agent, if it ever had one. */
      getAgentContext,
      /** The session's agent switches, newest first. */
      getAgentSwitchHistory,
      /** Soft-deletes a session; a second call keeps the first `deletedAtMs`. */
      softDelete,
      /** Undoes a soft delete. */
      restore,
      /** Deletes a session with its messages, agent context and switches. */
      hardDelete,
      /** Soft-deletes live sessions without activity for `olderThanMs`; returns how many. */
      cleanupInactive,
      /** Hard-deletes sessions soft-deleted more than `olderThanMs` ago; returns how many. */
      purgeDeleted,
      /** Runs `effect` in one transaction (nested calls become savepoints). */
      withTransaction
    } as const
  })
}) {}
