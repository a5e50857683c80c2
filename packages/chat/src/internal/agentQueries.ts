/**
 * The `agent_contexts` and `agent_switches` tables' statements: recording a switch, the current
 * agent and the history. Each runs on the `SqlClient` in context (the services provide
 * `Database.strataClient`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Timestamp } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect, Option } from "effect"
import * as ChatModel from "../ChatModel.js"
import {
  agentContextColumns,
  agentContextFromRow,
  type AgentContextRow,
  agentSwitchColumns,
  agentSwitchFromRow,
  type AgentSwitchRow,
  insertRows,
  jsonToColumn
} from "./chatRows.js"
import { lockLiveSession, requireSession, sessionIdOf } from "./sessionQueries.js"

const decodeSwitch = ChatModel.decoder(ChatModel.NewAgentSwitch)
const decodeHistoryOptions = ChatModel.decoder(ChatModel.HistoryOptions)

export const switchAgent = (
  sessionId: string,
  to: string,
  reason: string | null,
  metadata: ChatModel.JsonObject | null
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    const id = yield* sessionIdOf(sessionId)
    const input = yield* decodeSwitch({ toAgent: to, reason, metadata }, "")
    const now = yield* Timestamp.now
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* lockLiveSession(id, now)
      const contexts = yield* sql<{ current_agent: string }>`SELECT current_agent FROM agent_contexts WHERE session_id = ${id}`
      const from = contexts[0]?.current_agent ?? null
      if (contexts.length === 0) {
        yield* insertRows("agent_contexts", agentContextColumns.split(", "), [[id, input.toAgent, now, now, 1, null]])
      } else {
        yield* sql`UPDATE agent_contexts SET current_agent = ${input.toAgent}, updated_at_ms = ${now},
          switch_count = switch_count + 1 WHERE session_id = ${id}`
      }
      const inserted = yield* insertRows<AgentSwitchRow>(
        "agent_switches",
        ["session_id", "from_agent", "to_agent", "reason", "metadata", "switched_at_ms"],
        [[id, from, input.toAgent, input.reason, jsonToColumn(input.metadata), now]],
        ` RETURNING ${agentSwitchColumns}`
      )
      return agentSwitchFromRow(inserted[0]!, dialect)
    }))
  })

export const getAgentContext = (sessionId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    const id = yield* sessionIdOf(sessionId)
    yield* requireSession(id)
    const rows = yield* sql<AgentContextRow>`SELECT ${sql.literal(agentContextColumns)} FROM agent_contexts WHERE session_id = ${id}`
    return Option.map(Option.fromNullable(rows[0]), (row) => agentContextFromRow(row, dialect))
  })

export const getAgentSwitchHistory = (sessionId: string, options: { readonly limit?: number }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dialect = yield* Database.dialect
    const id = yield* sessionIdOf(sessionId)
    const { limit } = yield* decodeHistoryOptions(options, "")
    yield* requireSession(id)
    const rows = yield* sql<AgentSwitchRow>`SELECT ${sql.literal(agentSwitchColumns)}
      FROM agent_switches WHERE session_id = ${id} ORDER BY switched_at_ms DESC, id DESC LIMIT ${limit}`
    return rows.map((row) => agentSwitchFromRow(row, dialect))
  })
