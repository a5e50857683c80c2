/**
 * The reference session store over the `chat-store` plan (`ChatPlan.plan`): sessions, their
 * messages in append order, the current agent and the history of agent switches. What it takes,
 * returns and refuses is in `ChatModel`.
 *
 * Guarantees:
 * - Messages are appended with the session's next `seq` and never rewritten: history keeps its
 *   times, and paging is stable under equal timestamps.
 * - Concurrent appends to one session serialise (PostgreSQL locks the session row, SQLite's single
 *   writer does the rest).
 * - Foreign keys are on, so a hard delete leaves no orphan messages, contexts or switches.
 * - A second soft delete keeps the first `deletedAtMs`; re-creating a soft-deleted id fails with
 *   `SessionDeleted` (restore it instead).
 * - Token totals are summed; every bad argument is an `InvalidInput` naming the field; times are
 *   epoch ms from `Clock`.
 * - It runs its statements on `Database.strataClient` (the app's client without its name
 *   transforms), so it works on an app client with `transformResultNames` as on a plain one, and
 *   hands back its own objects (`Session`, `Message`, …) either way.
 * - On SQLite, a caller looping over the store gives the event loop a turn every few milliseconds
 *   (better-sqlite3 never yields by itself), so timers, I/O, signals and a `WriteBehind` flush run.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Database } from "@strata/sql"
import { Context, type Duration, Effect, Layer, type Option, type Scope } from "effect"
import type * as ChatModel from "./ChatModel.js"
import * as AgentQueries from "./internal/agentQueries.js"
import { makeTurnGate, noTurns } from "./internal/eventLoop.js"
import * as MessageQueries from "./internal/messageQueries.js"
import * as SessionQueries from "./internal/sessionQueries.js"

/**
 * The session store's operations.
 *
 * @since 0.2.0
 * @category models
 */
export interface ChatStore {
  /** Creates a session; `SessionExists` for a live id, `SessionDeleted` for a soft-deleted one. */
  readonly createSession: (
    input: ChatModel.NewSession
  ) => Effect.Effect<ChatModel.Session, ChatModel.InvalidInput | ChatModel.SessionExists | ChatModel.SessionDeleted | SqlError>
  /** A session, deleted or not. */
  readonly getSession: (sessionId: string) => Effect.Effect<ChatModel.Session, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Sessions by last activity, newest first, keyset-paged (`nextCursor`); deleted ones only with `includeDeleted`. */
  readonly listSessions: (
    options?: { readonly includeDeleted?: boolean; readonly limit?: number; readonly cursor?: string | null }
  ) => Effect.Effect<ChatModel.SessionPage, ChatModel.InvalidInput | SqlError>
  /** Appends messages with the next `seq`s in one transaction and returns them as stored. */
  readonly appendMessages: (
    sessionId: string,
    messages: ReadonlyArray<ChatModel.NewMessage>
  ) => Effect.Effect<
    ReadonlyArray<ChatModel.Message>,
    ChatModel.InvalidInput | ChatModel.SessionNotFound | ChatModel.SessionDeleted | ChatModel.MessageExists | SqlError
  >
  /** Page `page` (1-based) of `pageSize` messages in `seq` order. */
  readonly getMessages: (
    sessionId: string,
    options?: { readonly page?: number; readonly pageSize?: number }
  ) => Effect.Effect<ChatModel.MessagePage, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Up to `limit` messages with `seq > afterSeq`, in order (keyset paging). */
  readonly getMessagesAfter: (
    sessionId: string,
    afterSeq: number,
    limit: number
  ) => Effect.Effect<ReadonlyArray<ChatModel.Message>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** The last `count` messages, oldest first. */
  readonly getRecentMessages: (
    sessionId: string,
    count: number
  ) => Effect.Effect<ReadonlyArray<ChatModel.Message>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Message count, summed tokens, first and last message times, creation and last activity, read in one snapshot. */
  readonly getSessionStats: (
    sessionId: string
  ) => Effect.Effect<ChatModel.SessionStats, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Records a switch to agent `to` and makes it the current agent. */
  readonly switchAgent: (
    sessionId: string,
    to: string,
    reason?: string | null,
    metadata?: ChatModel.JsonObject | null
  ) => Effect.Effect<ChatModel.AgentSwitch, ChatModel.InvalidInput | ChatModel.SessionNotFound | ChatModel.SessionDeleted | SqlError>
  /** The session's current agent, if it ever had one. */
  readonly getAgentContext: (
    sessionId: string
  ) => Effect.Effect<Option.Option<ChatModel.AgentContext>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** The session's agent switches, newest first. */
  readonly getAgentSwitchHistory: (
    sessionId: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<ChatModel.AgentSwitch>, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Soft-deletes a session; a second call keeps the first `deletedAtMs`. */
  readonly softDelete: (sessionId: string) => Effect.Effect<ChatModel.Session, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Undoes a soft delete. */
  readonly restore: (sessionId: string) => Effect.Effect<ChatModel.Session, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Deletes a session with its messages, agent context and switches. */
  readonly hardDelete: (sessionId: string) => Effect.Effect<void, ChatModel.InvalidInput | ChatModel.SessionNotFound | SqlError>
  /** Soft-deletes live sessions without activity for longer than `olderThan`; returns how many. */
  readonly cleanupInactive: (olderThan: Duration.DurationInput) => Effect.Effect<number, ChatModel.InvalidInput | SqlError>
  /** Hard-deletes sessions soft-deleted longer than `olderThan` ago; returns how many. */
  readonly purgeDeleted: (olderThan: Duration.DurationInput) => Effect.Effect<number, ChatModel.InvalidInput | SqlError>
  /** Runs `effect` in one transaction (nested calls become savepoints). */
  readonly withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
}

/**
 * The session store service.
 *
 * @since 0.1.0
 * @category tags
 */
export const ChatStore = Context.GenericTag<ChatStore>("@strata/chat/ChatStore")

/**
 * A session store over the `SqlClient` in context, whose database has the `chat-store` plan applied.
 * On SQLite it turns foreign keys on for its connection (cascading deletes need them; a client
 * handed in may not have them) and keeps a timer that notes the event loop's turns (stopped with
 * the scope).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make: Effect.Effect<ChatStore, never, SqlClient.SqlClient | Scope.Scope> = Effect.gen(function*() {
  const sql = yield* Database.strataClient
  const sqlite = (yield* Database.dialect) === "sqlite"
  if (sqlite) yield* sql.unsafe("PRAGMA foreign_keys = ON").pipe(Effect.orDie)
  const gate = sqlite ? yield* makeTurnGate : noTurns
  /** Every call runs on strata's client, after the event loop's turn when one is due. */
  const run = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>): Effect.Effect<A, E> =>
    Effect.zipRight(gate.check, Effect.provideService(effect, SqlClient.SqlClient, sql))
  return ChatStore.of({
    createSession: (input) => run(SessionQueries.createSession(input)).pipe(Effect.withSpan("ChatStore.createSession")),
    getSession: (sessionId) => run(SessionQueries.getSession(sessionId)),
    listSessions: (options = {}) => run(SessionQueries.listSessions(options)),
    appendMessages: (sessionId, messages) =>
      run(MessageQueries.appendMessages(sessionId, messages)).pipe(
        Effect.withSpan("ChatStore.appendMessages", { attributes: { session_id: sessionId } })
      ),
    getMessages: (sessionId, options = {}) => run(MessageQueries.getMessages(sessionId, options)),
    getMessagesAfter: (sessionId, afterSeq, limit) => run(MessageQueries.getMessagesAfter(sessionId, afterSeq, limit)),
    getRecentMessages: (sessionId, count) => run(MessageQueries.getRecentMessages(sessionId, count)),
    getSessionStats: (sessionId) => run(MessageQueries.getSessionStats(sessionId)),
    switchAgent: (sessionId, to, reason = null, metadata = null) => run(AgentQueries.switchAgent(sessionId, to, reason, metadata)),
    getAgentContext: (sessionId) => run(AgentQueries.getAgentContext(sessionId)),
    getAgentSwitchHistory: (sessionId, options = {}) => run(AgentQueries.getAgentSwitchHistory(sessionId, options)),
    softDelete: (sessionId) => run(SessionQueries.softDelete(sessionId)),
    restore: (sessionId) => run(SessionQueries.restore(sessionId)),
    hardDelete: (sessionId) => run(SessionQueries.hardDelete(sessionId)),
    cleanupInactive: (olderThan) => run(SessionQueries.cleanupInactive(olderThan)),
    purgeDeleted: (olderThan) => run(SessionQueries.purgeDeleted(olderThan)),
    withTransaction: (effect) => sql.withTransaction(effect)
  })
})

/**
 * The session store as a layer over the `SqlClient`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer: Layer.Layer<ChatStore, never, SqlClient.SqlClient> = Layer.scoped(ChatStore, make)

/**
 * `createSession` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const createSession = (input: ChatModel.NewSession) => Effect.flatMap(ChatStore, (store) => store.createSession(input))

/**
 * `getSession` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getSession = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.getSession(sessionId))

/**
 * `listSessions` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const listSessions = (
  options?: { readonly includeDeleted?: boolean; readonly limit?: number; readonly cursor?: string | null }
) => Effect.flatMap(ChatStore, (store) => store.listSessions(options))

/**
 * `appendMessages` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const appendMessages = (sessionId: string, messages: ReadonlyArray<ChatModel.NewMessage>) =>
  Effect.flatMap(ChatStore, (store) => store.appendMessages(sessionId, messages))

/**
 * `getMessages` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getMessages = (sessionId: string, options?: { readonly page?: number; readonly pageSize?: number }) =>
  Effect.flatMap(ChatStore, (store) => store.getMessages(sessionId, options))

/**
 * `getMessagesAfter` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getMessagesAfter = (sessionId: string, afterSeq: number, limit: number) =>
  Effect.flatMap(ChatStore, (store) => store.getMessagesAfter(sessionId, afterSeq, limit))

/**
 * `getRecentMessages` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getRecentMessages = (sessionId: string, count: number) =>
  Effect.flatMap(ChatStore, (store) => store.getRecentMessages(sessionId, count))

/**
 * `getSessionStats` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getSessionStats = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.getSessionStats(sessionId))

/**
 * `switchAgent` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const switchAgent = (sessionId: string, to: string, reason?: string | null, metadata?: ChatModel.JsonObject | null) =>
  Effect.flatMap(ChatStore, (store) => store.switchAgent(sessionId, to, reason, metadata))

/**
 * `getAgentContext` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getAgentContext = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.getAgentContext(sessionId))

/**
 * `getAgentSwitchHistory` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const getAgentSwitchHistory = (sessionId: string, options?: { readonly limit?: number }) =>
  Effect.flatMap(ChatStore, (store) => store.getAgentSwitchHistory(sessionId, options))

/**
 * `softDelete` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const softDelete = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.softDelete(sessionId))

/**
 * `restore` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const restore = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.restore(sessionId))

/**
 * `hardDelete` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const hardDelete = (sessionId: string) => Effect.flatMap(ChatStore, (store) => store.hardDelete(sessionId))

/**
 * `cleanupInactive` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const cleanupInactive = (olderThan: Duration.DurationInput) =>
  Effect.flatMap(ChatStore, (store) => store.cleanupInactive(olderThan))

/**
 * `purgeDeleted` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const purgeDeleted = (olderThan: Duration.DurationInput) =>
  Effect.flatMap(ChatStore, (store) => store.purgeDeleted(olderThan))

/**
 * `withTransaction` on the store in context.
 *
 * @since 0.2.0
 * @category accessors
 */
export const withTransaction = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(ChatStore, (store) => store.withTransaction(effect))
