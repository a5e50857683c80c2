/**
 * The chat-store tables as rows: what `ChatStore`, `WriteBehind` and `LegacyImport` read and write,
 * and the one place their columns are normalised (JSON is JSONB on PostgreSQL, which node-postgres
 * returns parsed, and TEXT on SQLite; booleans are BOOLEAN / 0-1; BIGINT may arrive as text from a
 * client strata did not configure).
 *
 * Every statement here runs on the `SqlClient` in context, which the services set to
 * `Database.strataClient` (no name transforms): the column names below are the real ones, and
 * rows are turned into the store's own objects (`Message`, `Session`, …) before a caller sees them.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Compile, Timestamp } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect } from "effect"
import type { AgentContext, AgentSwitch, Message, Session } from "../ChatModel.js"

export const sessionColumns = "id, title, description, created_at_ms, last_activity_ms, is_active, deleted_at_ms"

export const messageColumns =
  "id, session_id, seq, role, content, name, tool_call_id, tool_calls, token_count, metadata, created_at_ms"

export interface SessionRow {
  readonly id: string
  readonly title: string | null
  readonly description: string | null
  readonly created_at_ms: number | string
  readonly last_activity_ms: number | string
  readonly is_active: boolean | number | string
  readonly deleted_at_ms: number | string | null
}

export interface MessageRow {
  readonly id: string
  readonly session_id: string
  readonly seq: number | string
  readonly role: string
  readonly content: string | null
  readonly name: string | null
  readonly tool_call_id: string | null
  readonly tool_calls: unknown
  readonly token_count: number | string | null
  readonly metadata: unknown
  readonly created_at_ms: number | string
}

/** Epoch ms and counts are safe integers; a client without strata's type parsers returns BIGINT as text. */
export const toNumber = (value: number | string | bigint): number => typeof value === "number" ? value : Number(value)

export const toMillis = (value: number | string | bigint): Timestamp.EpochMillis => toNumber(value) as Timestamp.EpochMillis

export const toMillisOrNull = (value: number | string | bigint | null): Timestamp.EpochMillis | null =>
  value === null ? null : toMillis(value)

const toBoolean = (value: boolean | number | string): boolean =>
  value === true || value === 1 || value === "1" || value === "t" || value === "true"

/** A JSON column's value: parsed text on SQLite, already parsed JSONB on PostgreSQL; SQL NULL is `null`. */
export const jsonFromColumn = (value: unknown, dialect: Compile.Dialect): unknown => {
  if (value === null || value === undefined) return null
  // Only SQLite hands back JSON text: node-postgres parses JSONB, so a string from PostgreSQL is a stored JSON string.
  return dialect === "sqlite" && typeof value === "string" ? JSON.parse(value) : value
}

/**
 * A value for a JSON column: always bound as JSON text (node-postgres would turn a JS array into a
 * PostgreSQL array literal), `null` stays SQL NULL.
 */
export const jsonToColumn = (value: unknown): string | null => value === null || value === undefined ? null : JSON.stringify(value)

export const sessionFromRow = (row: SessionRow): Session => ({
  id: row.id,
  title: row.title,
  description: row.description,
  createdAtMs: toMillis(row.created_at_ms),
  lastActivityMs: toMillis(row.last_activity_ms),
  isActive: toBoolean(row.is_active),
  deletedAtMs: toMillisOrNull(row.deleted_at_ms)
})

export interface AgentContextRow {
  readonly session_id: string
  readonly current_agent: string
  readonly created_at_ms: number | string
  readonly updated_at_ms: number | string
  readonly switch_count: number | string
  readonly metadata: unknown
}

export const agentContextColumns = "session_id, current_agent, created_at_ms, updated_at_ms, switch_count, metadata"

export interface AgentSwitchRow {
  readonly id: number | string
  readonly session_id: string
  readonly from_agent: string | null
  readonly to_agent: string
  readonly reason: string | null
  readonly metadata: unknown
  readonly switched_at_ms: number | string
}

export const agentSwitchColumns = "id, session_id, from_agent, to_agent, reason, metadata, switched_at_ms"

export const agentContextFromRow = (row: AgentContextRow, dialect: Compile.Dialect): AgentContext => ({
  sessionId: row.session_id,
  currentAgent: row.current_agent,
  createdAtMs: toMillis(row.created_at_ms),
  updatedAtMs: toMillis(row.updated_at_ms),
  switchCount: toNumber(row.switch_count),
  metadata: jsonFromColumn(row.metadata, dialect)
})

export const agentSwitchFromRow = (row: AgentSwitchRow, dialect: Compile.Dialect): AgentSwitch => ({
  id: toNumber(row.id),
  sessionId: row.session_id,
  fromAgent: row.from_agent,
  toAgent: row.to_agent,
  reason: row.reason,
  metadata: jsonFromColumn(row.metadata, dialect),
  switchedAtMs: toMillis(row.switched_at_ms)
})

export const messageFromRow = (row: MessageRow, dialect: Compile.Dialect): Message => ({
  id: row.id,
  sessionId: row.session_id,
  seq: toNumber(row.seq),
  role: row.role as Message["role"],
  content: row.content,
  name: row.name,
  toolCallId: row.tool_call_id,
  toolCalls: jsonFromColumn(row.tool_calls, dialect),
  tokenCount: row.token_count === null ? null : toNumber(row.token_count),
  metadata: jsonFromColumn(row.metadata, dialect),
  createdAtMs: toMillis(row.created_at_ms)
})

/**
 * A multi-row `INSERT INTO table (columns) VALUES …` followed by `suffix` (`ON CONFLICT …`,
 * `RETURNING …`), values bound in `columns` order. The table and column names are the store's own
 * constants, written as they are: never through `sql(name)` or `sql.insert`, which an app's
 * query-name transform would rewrite.
 */
export const insertRows = <A extends object = never>(
  table: string,
  columns: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<unknown>>,
  suffix = ""
): Effect.Effect<ReadonlyArray<A>, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (rows.length === 0) return []
    const sql = yield* SqlClient.SqlClient
    const pg = (yield* Database.dialect) === "pg"
    const params: Array<unknown> = []
    const tuples = rows.map((row) => {
      const placeholders = row.map((value) => {
        params.push(value)
        return pg ? `$${params.length}` : "?"
      })
      return `(${placeholders.join(", ")})`
    })
    return yield* sql.unsafe<A>(`INSERT INTO ${table} (${columns.join(", ")}) VALUES ${tuples.join(", ")}${suffix}`, params)
  })

const messageInsertColumns = messageColumns.split(", ")

const messageInsertRow = (message: Message): ReadonlyArray<unknown> => [
  message.id,
  message.sessionId,
  message.seq,
  message.role,
  message.content,
  message.name,
  message.toolCallId,
  jsonToColumn(message.toolCalls),
  message.tokenCount,
  jsonToColumn(message.metadata),
  message.createdAtMs
]

// 11 parameters a row: far under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
const messagesPerStatement = 500

/** Multi-row INSERTs of complete messages (ids and seqs assigned), in the caller's transaction. */
export const insertMessages = (messages: ReadonlyArray<Message>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    for (let start = 0; start < messages.length; start += messagesPerStatement) {
      yield* insertRows("messages", messageInsertColumns, messages.slice(start, start + messagesPerStatement).map(messageInsertRow))
    }
  })

/** The highest `seq` of a session's messages, 0 when it has none. */
export const lastSeq = (sessionId: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ last_seq: number | string | null }>`SELECT max(seq) AS last_seq FROM messages WHERE session_id = ${sessionId}`,
      (rows) => {
        const value = rows[0]?.last_seq
        return value === null || value === undefined ? 0 : toNumber(value)
      }
    ))
