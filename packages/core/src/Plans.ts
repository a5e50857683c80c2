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
