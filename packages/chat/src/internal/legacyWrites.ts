/**
 * Writing converted legacy rows into the chat-store tables, in the caller's transaction: sessions
 * with their messages, agent contexts with their switches. Whatever is already in the store is
 * left as it is and reported as not imported (skipped). Runs on the `SqlClient` in context
 * (`LegacyImport` provides `Database.strataClient`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { JobState } from "@strata/sql"
import { Array as Arr, Effect } from "effect"
import { agentContextColumns, insertMessages, insertRows, jsonToColumn } from "./chatRows.js"
import type { ImportedAgentContext, ImportedSession } from "./legacyRows.js"

/** What writing a batch did: rows imported, child rows (messages, switches) written, rows rejected. */
export interface Written {
  readonly imported: number
  readonly children: number
  readonly rejects: ReadonlyArray<JobState.Reject>
}

// 6 parameters a row.
const rowsPerStatement = 500

export const writeSessions = (sessions: ReadonlyArray<ImportedSession>): Effect.Effect<Written, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const inserted = new Set<string>()
    for (const part of Arr.chunksOf(sessions, rowsPerStatement)) {
      const rows = yield* insertRows<{ id: string }>(
        "sessions",
        ["id", "title", "description", "created_at_ms", "last_activity_ms", "deleted_at_ms"],
        part.map((s) => [s.id, null, null, s.createdAtMs, s.lastActivityMs, null]),
        " ON CONFLICT (id) DO NOTHING RETURNING id"
      )
      for (const row of rows) inserted.add(row.id)
    }
    const messages = sessions.filter((s) => inserted.has(s.id)).flatMap((s) => s.messages)
    yield* insertMessages(messages)
    return { imported: inserted.size, children: messages.length, rejects: [] }
  })

export const writeAgentContexts = (
  contexts: ReadonlyArray<ImportedAgentContext>
): Effect.Effect<Written, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if (contexts.length === 0) return { imported: 0, children: 0, rejects: [] }
    const sql = yield* SqlClient.SqlClient
    const present = new Set(
      (yield* sql<{ id: string }>`SELECT id FROM sessions WHERE id IN ${sql.in(contexts.map((c) => c.sessionId))}`).map((r) => r.id)
    )
    const rejects = contexts
      .filter((c) => !present.has(c.sessionId))
      .map((c) => ({ rowKey: c.sessionId, reason: "session_id: no such session in the store (its legacy session is missing or was rejected)" }))
    const importable = contexts.filter((c) => present.has(c.sessionId))
    const inserted = new Set<string>()
    for (const part of Arr.chunksOf(importable, rowsPerStatement)) {
      const rows = yield* insertRows<{ session_id: string }>(
        "agent_contexts",
        agentContextColumns.split(", "),
        part.map((c) => [c.sessionId, c.currentAgent, c.createdAtMs, c.updatedAtMs, c.switches.length, jsonToColumn(c.metadata)]),
        " ON CONFLICT (session_id) DO NOTHING RETURNING session_id"
      )
      for (const row of rows) inserted.add(row.session_id)
    }
    const switches = importable.filter((c) => inserted.has(c.sessionId)).flatMap((c) =>
      c.switches.map((s) => [c.sessionId, s.fromAgent, s.toAgent, s.reason, jsonToColumn(s.metadata), s.switchedAtMs])
    )
    for (const part of Arr.chunksOf(switches, rowsPerStatement)) {
      yield* insertRows("agent_switches", ["session_id", "from_agent", "to_agent", "reason", "metadata", "switched_at_ms"], part)
    }
    return { imported: inserted.size, children: switches.length, rejects }
  })
