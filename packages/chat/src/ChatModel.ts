/**
 * What the session store takes, returns and refuses: the shapes of sessions, messages and agent
 * switches (as Effect Schemas), the errors a caller can act on, and the validators `ChatStore`,
 * `WriteBehind` and `LegacyImport` all check their input with. No I/O here: an app can validate a
 * message before it reaches the store, and name the field at fault the same way the store does.
 *
 * @since 0.2.0
 */
import { Options, Timestamp } from "@strata/core"
import { Duration, Either, ParseResult, Schema } from "effect"
import * as ChatPlan from "./ChatPlan.js"
import { fastMessage } from "./internal/fastMessage.js"
import { uuid7 } from "./internal/uuid7.js"

/**
 * The most rows one read returns (`pageSize`, `limit`, `count`).
 *
 * @since 0.1.0
 * @category limits
 */
export const maxPageSize = 1000

/**
 * Text the store accepts: PostgreSQL cannot store NUL characters, so neither engine takes them.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Text = Schema.String.pipe(
  Schema.filter((text) => !text.includes("\u0000") || "must not contain NUL characters")
)

/**
 * A session or message id: 1-255 characters, not blank.
 *
 * @since 0.1.0
 * @category schemas
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
 * @category schemas
 */
export const Role = Schema.Literal(...ChatPlan.roles)

/**
 * One of the roles a message may have (`user`, `assistant`, `system`, `tool`).
 *
 * @since 0.1.0
 * @category models
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
 * @category schemas
 */
export const JsonValue = Schema.Unknown.pipe(
  Schema.filter((value) => isJson(value) || "must be JSON-serialisable"),
  Schema.filter((value) => !JSON.stringify(value).includes("\\u0000") || "must not contain NUL characters")
)

/**
 * A JSON object (metadata).
 *
 * @since 0.1.0
 * @category schemas
 */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
  Schema.filter((value) => isJson(value) || "must be JSON-serialisable"),
  Schema.filter((value) => !JSON.stringify(value).includes("\\u0000") || "must not contain NUL characters")
)

/**
 * A JSON object, as message and switch metadata.
 *
 * @since 0.1.0
 * @category models
 */
export type JsonObject = typeof JsonObject.Type

const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const PageNumber = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1, { message: () => "must be an integer of at least 1" }))

/**
 * How many rows one read returns: an integer from 1 to `maxPageSize`.
 *
 * @since 0.2.0
 * @category schemas
 */
export const PageSize = Schema.Int.pipe(
  Schema.between(1, maxPageSize, { message: () => `must be an integer from 1 to ${maxPageSize}` })
)

/**
 * The `seq` a read continues after (`getMessagesAfter`): 0 reads from a session's first message.
 *
 * @since 0.2.0
 * @category schemas
 */
export const AfterSeq = NonNegativeInt

/**
 * Page options of `getMessages`: `page` from 1 (default 1), `pageSize` 1 to `maxPageSize` (default 50).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PageOptions = Schema.Struct({
  page: Schema.optionalWith(PageNumber, { default: () => 1 }),
  pageSize: Schema.optionalWith(PageSize, { default: () => 50 })
})

/**
 * What `createSession` takes.
 *
 * @since 0.1.0
 * @category schemas
 */
export const NewSession = Schema.Struct({
  id: Id,
  title: Schema.optional(Schema.NullOr(Text)),
  description: Schema.optional(Schema.NullOr(Text))
})

/**
 * What `createSession` takes (the encoded side of the `NewSession` schema).
 *
 * @since 0.1.0
 * @category models
 */
export type NewSession = typeof NewSession.Encoded

/**
 * A message to append. `id` defaults to a new UUIDv7, `createdAtMs` to the `Clock`'s now.
 *
 * @since 0.1.0
 * @category schemas
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
 * A message to append, as a caller writes it.
 *
 * @since 0.1.0
 * @category models
 */
export type NewMessage = typeof NewMessage.Encoded

/**
 * A session as stored.
 *
 * @since 0.1.0
 * @category schemas
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
 * A session as stored.
 *
 * @since 0.1.0
 * @category models
 */
export interface Session extends Schema.Schema.Type<typeof Session> {}

/**
 * A message as stored: `seq` is its 1-based position in the session, assigned on append.
 *
 * @since 0.1.0
 * @category schemas
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
 * A message as stored.
 *
 * @since 0.1.0
 * @category models
 */
export interface Message extends Schema.Schema.Type<typeof Message> {}

/**
 * One page of `listSessions`, newest activity first; pass `nextCursor` for the next page.
 *
 * @since 0.1.0
 * @category schemas
 */
export const SessionPage = Schema.Struct({
  sessions: Schema.Array(Session),
  nextCursor: Schema.NullOr(Schema.String)
})

/**
 * One page of `listSessions`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionPage extends Schema.Schema.Type<typeof SessionPage> {}

/**
 * One page of a session's messages in `seq` order.
 *
 * @since 0.1.0
 * @category schemas
 */
export const MessagePage = Schema.Struct({
  sessionId: Schema.String,
  page: Schema.Int,
  pageSize: Schema.Int,
  messages: Schema.Array(Message),
  hasMore: Schema.Boolean
})

/**
 * One page of a session's messages.
 *
 * @since 0.1.0
 * @category models
 */
export interface MessagePage extends Schema.Schema.Type<typeof MessagePage> {}

/**
 * A session's numbers: `totalTokens` sums `token_count` (messages without one count 0).
 *
 * @since 0.1.0
 * @category schemas
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
 * A session's numbers.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionStats extends Schema.Schema.Type<typeof SessionStats> {}

/**
 * The agent a session is with now.
 *
 * @since 0.1.0
 * @category schemas
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
 * The agent a session is with now.
 *
 * @since 0.1.0
 * @category models
 */
export interface AgentContext extends Schema.Schema.Type<typeof AgentContext> {}

/**
 * One recorded agent switch (`fromAgent` is `null` for a session's first agent).
 *
 * @since 0.1.0
 * @category schemas
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
 * One recorded agent switch.
 *
 * @since 0.1.0
 * @category models
 */
export interface AgentSwitch extends Schema.Schema.Type<typeof AgentSwitch> {}

/**
 * An argument the store cannot take; `field` names it (`page`, `messages[2].role`).
 *
 * @since 0.1.0
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category errors
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
 * @category validation
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
 * @category validation
 */
export const validateId = (input: unknown, field: string): Either.Either<string, InvalidInput> => decodeId(input, field)

/**
 * Options of `listSessions`: `includeDeleted` (default false), `limit` (default 50) and the
 * `cursor` of the previous page.
 *
 * @since 0.2.0
 * @category schemas
 */
export const ListOptions = Schema.Struct({
  includeDeleted: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  limit: Schema.optionalWith(PageSize, { default: () => 50 }),
  cursor: Schema.optional(Schema.NullOr(Schema.String))
})

/**
 * Options of `getAgentSwitchHistory`: `limit` (default 100).
 *
 * @since 0.2.0
 * @category schemas
 */
export const HistoryOptions = Schema.Struct({
  limit: Schema.optionalWith(PageSize, { default: () => 100 })
})

/**
 * What `switchAgent` records: the agent switched to, why, and metadata.
 *
 * @since 0.2.0
 * @category schemas
 */
export const NewAgentSwitch = Schema.Struct({
  toAgent: Id,
  reason: Schema.NullOr(Text),
  metadata: Schema.NullOr(JsonObject)
})

/**
 * Validates an age (`cleanupInactive`, `purgeDeleted`): a finite duration of zero or more; the error names `field`.
 *
 * @since 0.2.0
 * @category validation
 */
export const validateAge = (input: unknown, field: string): Either.Either<Duration.Duration, InvalidInput> => {
  // Required: a missing age must not read as zero ("everything").
  const reason = Options.durationProblem(input, Options.nonNegativeDuration)
  return reason === undefined
    ? Either.right(Duration.decode(input as Duration.DurationInput))
    : Either.left(new InvalidInput({ field, reason }))
}

const decodeNewMessage = decoder(NewMessage)

/**
 * A validated message, ready for `seq`, id and time to be assigned.
 *
 * @since 0.1.0
 * @category models
 */
export type ValidMessage = typeof NewMessage.Type

/**
 * Validates one message to append; the error names `<field>.<name>`.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateMessage = (input: unknown, field: string): Either.Either<ValidMessage, InvalidInput> => {
  const simple = fastMessage(input)
  return simple !== undefined ? Either.right(simple) : decodeNewMessage(input, field)
}

/**
 * Validates messages to append (fields named `<field>[i].<name>`), including ids repeated in the batch.
 *
 * @since 0.1.0
 * @category validation
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
 * @category constructors
 */
export const makeMessageId = (ms: number): string => uuid7(ms)

/**
 * A validated message with its place in the session: what gets stored.
 *
 * @since 0.1.0
 * @category constructors
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
