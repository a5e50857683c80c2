/**
 * The session store's schema as a strata plan (`chat-store`): sessions, their messages in append
 * order, the current agent and the history of agent switches; and the legacy two-table layout that
 * `LegacyImport` reads.
 *
 * @since 0.1.0
 */
import { Compile, Plan } from "@strata/core"

const text = (name: string): Plan.ColumnInput => ({ name, type: "text" })
const textKey = (name: string): Plan.ColumnInput => ({ name, type: "text", primaryKey: true })
const ts = (name: string): Plan.ColumnInput => ({ name, type: "timestamp_text" })
const epochMs = (name: string, options: Omit<Plan.ColumnInput, "name" | "type"> = {}): Plan.ColumnInput => ({
  name,
  type: "bigint",
  ...options
})

const sessionRef = { table: "sessions", column: "id", onDelete: "cascade" } as const

/**
 * The roles a chat message may have.
 *
 * @since 0.1.0
 * @category models
 */
export const roles = ["user", "assistant", "system", "tool"] as const

/**
 * The normalized session store (the reference `ChatStore`): sessions, their messages
 * in append order (`seq`, unique per session), the current agent and the history of agent switches.
 * Times are epoch ms; every child row goes with its session (`ON DELETE CASCADE`).
 *
 * @since 0.1.0
 * @category plans
 */
export const plan: Plan.Plan = Plan.make("chat-store", [
  Plan.migration(1, "session store", [
    Plan.createTable("sessions", [
      { name: "id", type: "text", primaryKey: true },
      text("title"),
      text("description"),
      epochMs("created_at_ms", { notNull: true }),
      epochMs("last_activity_ms", { notNull: true }),
      { name: "is_active", type: "boolean", notNull: true, default: true },
      epochMs("deleted_at_ms")
    ]),
    Plan.createTable("messages", [
      { name: "id", type: "text", primaryKey: true },
      { name: "session_id", type: "text", notNull: true, references: sessionRef },
      { name: "seq", type: "integer", notNull: true },
      { name: "role", type: "text", notNull: true, oneOf: [...roles] },
      text("content"),
      text("name"),
      text("tool_call_id"),
      { name: "tool_calls", type: "json" },
      { name: "token_count", type: "integer" },
      { name: "metadata", type: "json" },
      epochMs("created_at_ms", { notNull: true })
    ], { unique: [["session_id", "seq"]] }),
    Plan.createTable("agent_contexts", [
      { name: "session_id", type: "text", primaryKey: true, references: sessionRef },
      { name: "current_agent", type: "text", notNull: true },
      epochMs("created_at_ms", { notNull: true }),
      epochMs("updated_at_ms", { notNull: true }),
      { name: "switch_count", type: "integer", notNull: true, default: 0 },
      { name: "metadata", type: "json" }
    ]),
    Plan.createTable("agent_switches", [
      { name: "id", type: "integer", autoIncrement: true },
      { name: "session_id", type: "text", notNull: true, references: sessionRef },
      text("from_agent"),
      { name: "to_agent", type: "text", notNull: true },
      text("reason"),
      { name: "metadata", type: "json" },
      epochMs("switched_at_ms", { notNull: true })
    ]),
    // Indexes for the store's queries: session activity (listing, cleanup), active sessions,
    // a session's messages by time, messages by role and time, a session's switches by time.
    Plan.createIndex("idx_sessions_last_activity", "sessions", ["last_activity_ms", "id"]),
    Plan.createIndex("idx_sessions_active_activity", "sessions", ["is_active", "last_activity_ms"]),
    Plan.createIndex("idx_sessions_deleted_at", "sessions", ["deleted_at_ms"]),
    Plan.createIndex("idx_messages_session_created", "messages", ["session_id", "created_at_ms"]),
    Plan.createIndex("idx_messages_role_created", "messages", ["role", "created_at_ms"]),
    Plan.createIndex("idx_agent_switches_session_switched", "agent_switches", ["session_id", "switched_at_ms", "id"])
  ])
])

/**
 * The first, two-table session layout that `LegacyImport` reads: a session's messages as one
 * JSON array, the agent history as another, times as TIMESTAMP text. `prefix` renames both tables
 * (`legacy_` gives `legacy_sessions` and `legacy_agent_contexts`, which can live next to `plan`).
 *
 * @since 0.1.0
 * @category legacy layout
 */
export const legacyTables = (prefix = ""): ReadonlyArray<Plan.CreateTable> => [
  Plan.createTable(`${prefix}sessions`, [textKey("session_id"), text("messages"), ts("last_activity")]),
  Plan.createTable(`${prefix}agent_contexts`, [
    textKey("session_id"),
    text("current_agent"),
    text("agent_history"),
    text("metadata"),
    ts("created_at"),
    ts("updated_at")
  ])
]

/**
 * The statements that create the legacy session tables (for demos, tests and imports; re-runnable).
 *
 * @since 0.1.0
 * @category legacy layout
 */
export const legacyStatements = (dialect: Compile.Dialect, prefix = ""): ReadonlyArray<string> =>
  Compile.statements({ id: 1, name: "legacy session store", steps: legacyTables(prefix) }, dialect).map((s) => s.sql)
