/**
 * Plans strata ships: the seeds' AgentOS schema evolution, and the legacy tables it starts from.
 *
 * @since 0.1.0
 */
import type { Dialect } from "./Compile.js"
import * as Compile from "./Compile.js"
import * as Plan from "./Plan.js"

const ts = (name: string): Plan.ColumnInput => ({ name, type: "timestamp_text" })
const text = (name: string): Plan.ColumnInput => ({ name, type: "text" })
const textKey = (name: string): Plan.ColumnInput => ({ name, type: "text", primaryKey: true })
const autoKey = (name: string): Plan.ColumnInput => ({ name, type: "integer", autoIncrement: true })

/**
 * The AgentOS tables as they were before migration 21: times are TIMESTAMP text.
 *
 * @since 0.1.0
 */
export const agentosLegacyTables: ReadonlyArray<Plan.CreateTable> = [
  Plan.createTable("chat_sessions", [textKey("session_id"), text("title"), text("task_id"), text("metadata"), ts("created_at"), ts("updated_at")]),
  Plan.createTable("chat_messages", [textKey("message_id"), text("session_id"), text("role"), text("content"), text("metadata"), ts("created_at")]),
  Plan.createTable("tasks", [textKey("task_id"), text("title"), text("status"), ts("created_at"), ts("updated_at")]),
  Plan.createTable("task_lineage", [autoKey("lineage_id"), text("task_id"), text("kind"), text("ref_id"), text("phase"), ts("created_at")]),
  Plan.createTable("task_agents", [autoKey("id"), text("task_id"), text("agent_name"), text("status"), ts("started_at"), ts("ended_at")]),
  Plan.createTable("task_audits", [autoKey("audit_id"), text("task_id"), text("level"), text("event_type"), text("payload"), ts("created_at")]),
  Plan.createTable("projects", [textKey("project_id"), text("name"), text("path"), ts("added_at")]),
  Plan.createTable("runs", [textKey("run_id"), text("task_id"), text("status"), text("lease_holder"), ts("started_at"), ts("completed_at"), ts("lease_until")]),
  Plan.createTable("artifacts", [textKey("artifact_id"), text("task_id"), text("kind"), text("path"), ts("created_at")]),
  Plan.createTable("schema_version", [textKey("version"), ts("applied_at")])
]

/**
 * The statements that create the legacy AgentOS tables (for demos and tests; re-runnable).
 *
 * @since 0.1.0
 */
export const agentosLegacyStatements = (dialect: Dialect): ReadonlyArray<string> =>
  Compile.statements({ id: 1, name: "legacy", steps: agentosLegacyTables }, dialect).map((s) => s.sql)

/** The shadows of migration 44 and whether the seed indexed each: 15 (the seed says "17" but lists these 15). */
const shadows: ReadonlyArray<readonly [table: string, column: string, indexed: boolean]> = [
  ["chat_sessions", "created_at", true],
  ["chat_sessions", "updated_at", true],
  ["chat_messages", "created_at", true],
  ["tasks", "created_at", true],
  ["tasks", "updated_at", true],
  ["task_lineage", "created_at", true],
  ["task_agents", "started_at", true],
  ["task_agents", "ended_at", false],
  ["task_audits", "created_at", true],
  ["projects", "added_at", true],
  ["runs", "started_at", true],
  ["runs", "completed_at", false],
  ["runs", "lease_until", false],
  ["artifacts", "created_at", true],
  ["schema_version", "applied_at", false]
]

/**
 * The seeds' schema evolution as a plan: migration 21 extracts the supervisor audit times from
 * `task_audits.payload` (seed 002), migration 44 adds the 15 epoch-ms shadows (seed 001).
 *
 * @since 0.1.0
 */
export const agentos: Plan.Plan = Plan.make("agentos", [
  Plan.migration(21, "audit decision fields", [
    Plan.extractJson("task_audits", "payload", {
      job: "task_audits.payload",
      targets: [
        {
          column: "source_event_ts",
          paths: ["source_event_ts", "source_ts", "event_timestamp", "task_created_at"],
          fallbackColumn: "created_at",
          as: "timestamp"
        },
        {
          column: "supervisor_processed_at",
          paths: ["supervisor_processed_at", "processed_at", "timestamp"],
          fallbackColumn: "created_at",
          as: "timestamp"
        }
      ],
      where: { column: "event_type", op: "contains", value: "SUPERVISOR" }
    })
  ]),
  Plan.migration(44, "epoch ms timestamps", shadows.map(([table, column, index]) => Plan.epochShadow(table, column, { index })))
])

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
 */
export const chatRoles = ["user", "assistant", "system", "tool"] as const

/**
 * The normalized session store of seed 003 (the reference `ChatStore`): sessions, their messages
 * in append order (`seq`, unique per session), the current agent and the history of agent switches.
 * Times are epoch ms; every child row goes with its session (`ON DELETE CASCADE`).
 *
 * @since 0.1.0
 */
export const chatStore: Plan.Plan = Plan.make("chat-store", [
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
      { name: "role", type: "text", notNull: true, oneOf: [...chatRoles] },
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
    // The seed's indexes on these columns: session activity (listing, cleanup), active sessions,
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
 * The seed's first, two-table session layout that `LegacyImport` reads: a session's messages as one
 * JSON array, the agent history as another, times as TIMESTAMP text. `prefix` renames both tables
 * (`legacy_` gives `legacy_sessions` and `legacy_agent_contexts`, which can live next to `chatStore`).
 *
 * @since 0.1.0
 */
export const chatStoreLegacyTables = (prefix = ""): ReadonlyArray<Plan.CreateTable> => [
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
 */
export const chatStoreLegacyStatements = (dialect: Dialect, prefix = ""): ReadonlyArray<string> =>
  Compile.statements({ id: 1, name: "legacy session store", steps: chatStoreLegacyTables(prefix) }, dialect).map((s) => s.sql)
