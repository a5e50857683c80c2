/**
 * The demo's legacy AgentOS data, generated from a seed: the pre-migration tables of
 * `Plans.agentosLegacyTables` filled the way years of real writers fill them — timestamps in
 * mixed formats (SQLite's `YYYY-MM-DD HH:MM:SS`, ISO with `T`, `Z`, offsets, fractions,
 * date-only), some NULLs, some garbage, and supervisor audit payloads that name their times
 * differently (or not at all, or are not JSON).
 *
 * Every generated row also says what strata should make of it: the value each target column
 * (`created_at_ms`, `source_event_ts`, …) must hold after a complete backfill, or `null` when the
 * source is NULL or cannot be converted. Those expectations come from how the text was built
 * (the instant first, then its formatting), not from strata's parser, so tests can check the
 * whole pipeline against them.
 *
 * @since 0.1.0
 */
import * as Prng from "./Prng.js"
import { formatted, historyStart, isGarbage, pad, randomInstant, timestampCell, type TimestampCell } from "./TimestampText.js"

/**
 * A value to insert.
 *
 * @since 0.1.0
 */
export type Cell = string | number | null

/**
 * One generated row: what to insert, and what each target column must hold after the backfill.
 *
 * @since 0.1.0
 */
export interface Row {
  readonly values: Readonly<Record<string, Cell>>
  readonly expected: Readonly<Record<string, number | null>>
  /** The backfill jobs that must reject this row (record it in `strata_rejects`). */
  readonly rejectedBy: ReadonlyArray<string>
}

/**
 * One table's generated rows; `key` is its primary key column.
 *
 * @since 0.1.0
 */
export interface Table {
  readonly table: string
  readonly key: string
  readonly columns: ReadonlyArray<string>
  readonly rows: ReadonlyArray<Row>
}

/**
 * How much to generate, and from which seed.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Rows of `chat_messages`, the biggest table; the others are sized from it. */
  readonly rows: number
  readonly seed: number
}

/**
 * The default seed (any integer works; the same seed gives the same data).
 *
 * @since 0.1.0
 */
export const defaultSeed = 20240229

const id = (prefix: string, n: number): string => `${prefix}-${pad(n, 6)}`

const sizes = (rows: number) => {
  const tasks = Math.max(1, Math.ceil(rows / 20))
  return {
    messages: rows,
    sessions: Math.max(1, Math.ceil(rows / 25)),
    tasks,
    lineage: tasks * 2,
    agents: tasks,
    audits: Math.max(1, Math.ceil(rows / 4)),
    projects: Math.max(1, Math.min(25, Math.ceil(rows / 1000))),
    runs: tasks,
    artifacts: tasks,
    versions: Math.min(20, rows)
  }
}

const supervisorEvents = ["SUPERVISOR_DECISION", "SUPERVISOR_REVIEW", "SUPERVISOR_ESCALATION"]
// Not the job's: the filter is case-sensitive, so "supervisor_note" is left alone too.
const otherEvents = ["TASK_CREATED", "AGENT_STEP", "TOOL_CALL", "supervisor_note"]

/** A supervisor audit payload and the two values the extraction must produce from it. */
const auditPayload = (
  prng: Prng.Prng,
  createdAt: TimestampCell,
  createdText: string | null
): {
  readonly payload: string | null
  readonly source: number | null
  readonly processed: number | null
  readonly rejected: boolean
} => {
  const event = randomInstant(prng)
  const processedAt = event + prng.int(1, 3600) * 1000
  const a = formatted(prng, event)
  const b = formatted(prng, processedAt)
  // The fallback column: NULL or empty created_at gives "nothing", other garbage rejects the row.
  const createdIsGarbage = createdText !== null && createdText !== "" && createdAt.ms === null
  const fallback = createdAt.ms
  const rejected = { source: null, processed: null, rejected: true }
  const roll = prng.next()
  if (roll < 0.35) {
    return {
      payload: JSON.stringify({ decision: prng.pick(["approve", "reject", "retry"]), source_event_ts: a.text, supervisor_processed_at: b.text }),
      source: a.ms,
      processed: b.ms,
      rejected: false
    }
  }
  if (roll < 0.5) {
    return { payload: JSON.stringify({ source_ts: a.text, processed_at: b.text, decision: "approve" }), source: a.ms, processed: b.ms, rejected: false }
  }
  if (roll < 0.6) {
    return { payload: JSON.stringify({ event_timestamp: a.text, timestamp: b.text }), source: a.ms, processed: b.ms, rejected: false }
  }
  if (roll < 0.67) {
    // Empty and null values are skipped in favour of the next name.
    return {
      payload: JSON.stringify({ source_event_ts: "", source_ts: a.text, supervisor_processed_at: null, processed_at: b.text }),
      source: a.ms,
      processed: b.ms,
      rejected: false
    }
  }
  if (roll < 0.74) {
    const payload = JSON.stringify({ task_created_at: a.text, decision: "retry" })
    return createdIsGarbage ? { payload, ...rejected } : { payload, source: a.ms, processed: fallback, rejected: false }
  }
  if (roll < 0.84) {
    const payload = JSON.stringify({ decision: prng.pick(["approve", "reject"]), reviewer: "supervisor" })
    return createdIsGarbage ? { payload, ...rejected } : { payload, source: fallback, processed: fallback, rejected: false }
  }
  if (roll < 0.89) {
    return createdIsGarbage ? { payload: null, ...rejected } : { payload: null, source: fallback, processed: fallback, rejected: false }
  }
  if (roll < 0.93) {
    return { payload: `{"source_event_ts": "${a.text ?? ""}", "decision": "appr`, ...rejected }
  }
  if (roll < 0.95) return { payload: "[\"not\", \"an\", \"object\"]", ...rejected }
  if (roll < 0.98) return { payload: JSON.stringify({ source_event_ts: "soon", processed_at: b.text }), ...rejected }
  return { payload: JSON.stringify({ source_event_ts: Math.floor(event / 1000), supervisor_processed_at: b.text }), ...rejected }
}

/**
 * A row whose timestamp targets are shadows of `sources` (`created_at` → `created_at_ms`): the
 * expected values, and the shadow jobs that must reject garbage text.
 */
const shadowRow = (table: string, values: Record<string, Cell>, sources: Record<string, TimestampCell>): Row => ({
  values,
  expected: Object.fromEntries(Object.entries(sources).map(([column, cell]) => [`${column}_ms`, cell.ms])),
  rejectedBy: Object.entries(sources).flatMap(([column, cell]) => (isGarbage(cell) ? [`${table}.${column}_ms`] : []))
})

/**
 * Generates the legacy AgentOS tables for `options` (deterministic: same options, same rows).
 *
 * @since 0.1.0
 */
export const generate = (options: Options): ReadonlyArray<Table> => {
  const prng = Prng.make(options.seed)
  const n = sizes(options.rows)

  const projects: Array<Row> = []
  for (let i = 1; i <= n.projects; i++) {
    const added = timestampCell(prng, randomInstant(prng))
    projects.push(shadowRow("projects",
      { project_id: id("prj", i), name: `project ${i}`, path: `/srv/projects/p${i}`, added_at: added.text },
      { added_at: added }
    ))
  }

  const tasks: Array<Row> = []
  const taskCreated: Array<number> = []
  for (let i = 1; i <= n.tasks; i++) {
    const createdMs = randomInstant(prng)
    taskCreated.push(createdMs)
    const created = timestampCell(prng, createdMs)
    const updated = timestampCell(prng, createdMs + prng.int(0, 86_400) * 1000)
    tasks.push(shadowRow("tasks",
      {
        task_id: id("tsk", i),
        title: `task ${i}`,
        status: prng.pick(["pending", "running", "done", "failed"]),
        created_at: created.text,
        updated_at: updated.text
      },
      { created_at: created, updated_at: updated }
    ))
  }
  const taskOf = () => {
    const index = prng.int(1, n.tasks)
    return { taskId: id("tsk", index), createdMs: taskCreated[index - 1]! }
  }

  const sessions: Array<Row> = []
  const sessionStart: Array<number> = []
  for (let i = 1; i <= n.sessions; i++) {
    const startMs = randomInstant(prng)
    sessionStart.push(startMs)
    const created = timestampCell(prng, startMs)
    const updated = timestampCell(prng, startMs + prng.int(60, 7 * 86_400) * 1000)
    sessions.push(shadowRow("chat_sessions",
      {
        session_id: id("ses", i),
        title: `conversation ${i}`,
        task_id: prng.chance(0.5) ? taskOf().taskId : null,
        metadata: JSON.stringify({ channel: prng.pick(["web", "cli", "api"]) }),
        created_at: created.text,
        updated_at: updated.text
      },
      { created_at: created, updated_at: updated }
    ))
  }

  const messages: Array<Row> = []
  for (let i = 1; i <= n.messages; i++) {
    const session = prng.int(1, n.sessions)
    const created = timestampCell(prng, sessionStart[session - 1]! + prng.int(0, 3 * 86_400) * 1000)
    const role = prng.pick(["user", "assistant", "assistant", "tool", "system"])
    messages.push(shadowRow("chat_messages",
      {
        message_id: id("msg", i),
        session_id: id("ses", session),
        role,
        content: `${role} message ${i}`,
        metadata: prng.chance(0.2) ? JSON.stringify({ tokens: prng.int(5, 900) }) : null,
        created_at: created.text
      },
      { created_at: created }
    ))
  }

  const lineage: Array<Row> = []
  for (let i = 1; i <= n.lineage; i++) {
    const task = taskOf()
    const created = timestampCell(prng, task.createdMs + prng.int(0, 3600) * 1000)
    lineage.push(shadowRow("task_lineage",
      {
        lineage_id: i,
        task_id: task.taskId,
        kind: prng.pick(["spawned", "retried", "split"]),
        ref_id: id("tsk", prng.int(1, n.tasks)),
        phase: prng.pick(["plan", "execute", "review"]),
        created_at: created.text
      },
      { created_at: created }
    ))
  }

  const agents: Array<Row> = []
  for (let i = 1; i <= n.agents; i++) {
    const task = taskOf()
    const startMs = task.createdMs + prng.int(0, 600) * 1000
    const started = timestampCell(prng, startMs)
    // A running agent has no end yet: many NULLs here.
    const ended = prng.chance(0.3) ? { text: null, ms: null } : timestampCell(prng, startMs + prng.int(1, 7200) * 1000)
    agents.push(shadowRow("task_agents",
      {
        id: i,
        task_id: task.taskId,
        agent_name: prng.pick(["planner", "coder", "reviewer", "supervisor"]),
        status: ended.text === null ? "running" : "finished",
        started_at: started.text,
        ended_at: ended.text
      },
      { started_at: started, ended_at: ended }
    ))
  }

  const audits: Array<Row> = []
  for (let i = 1; i <= n.audits; i++) {
    const task = taskOf()
    const created = timestampCell(prng, task.createdMs + prng.int(0, 86_400) * 1000, { nulls: 0.02, garbage: 0.02 })
    const supervisor = prng.chance(0.6)
    const eventType = supervisor ? prng.pick(supervisorEvents) : prng.pick(otherEvents)
    const extracted = supervisor
      ? auditPayload(prng, created, created.text)
      : { payload: prng.chance(0.5) ? JSON.stringify({ step: prng.int(1, 9) }) : null, source: null, processed: null, rejected: false }
    const shadow = shadowRow("task_audits", {
      audit_id: i,
      task_id: task.taskId,
      level: prng.pick(["info", "info", "warning", "error"]),
      event_type: eventType,
      payload: extracted.payload,
      created_at: created.text
    }, { created_at: created })
    audits.push({
      values: shadow.values,
      expected: { ...shadow.expected, source_event_ts: extracted.source, supervisor_processed_at: extracted.processed },
      rejectedBy: [...(extracted.rejected ? ["task_audits.payload"] : []), ...shadow.rejectedBy]
    })
  }

  const runs: Array<Row> = []
  for (let i = 1; i <= n.runs; i++) {
    const task = taskOf()
    const startMs = task.createdMs + prng.int(0, 3600) * 1000
    const started = timestampCell(prng, startMs)
    const completed = prng.chance(0.25) ? { text: null, ms: null } : timestampCell(prng, startMs + prng.int(1, 7200) * 1000)
    const lease = timestampCell(prng, startMs + 300_000)
    runs.push(shadowRow("runs",
      {
        run_id: id("run", i),
        task_id: task.taskId,
        status: completed.text === null ? "running" : "completed",
        lease_holder: `worker-${prng.int(1, 8)}`,
        started_at: started.text,
        completed_at: completed.text,
        lease_until: lease.text
      },
      { started_at: started, completed_at: completed, lease_until: lease }
    ))
  }

  const artifacts: Array<Row> = []
  for (let i = 1; i <= n.artifacts; i++) {
    const task = taskOf()
    const created = timestampCell(prng, task.createdMs + prng.int(0, 7200) * 1000)
    artifacts.push(shadowRow("artifacts",
      {
        artifact_id: id("art", i),
        task_id: task.taskId,
        kind: prng.pick(["diff", "log", "report"]),
        path: `/artifacts/${i}.txt`,
        created_at: created.text
      },
      { created_at: created }
    ))
  }

  const versions: Array<Row> = []
  for (let i = 1; i <= n.versions; i++) {
    const applied = timestampCell(prng, historyStart + i * 30 * 86_400_000, { nulls: 0, garbage: 0 })
    versions.push(shadowRow("schema_version", { version: String(i), applied_at: applied.text }, { applied_at: applied }))
  }

  const table = (name: string, key: string, rows: ReadonlyArray<Row>): Table => ({
    table: name,
    key,
    columns: Object.keys(rows[0]?.values ?? {}),
    rows
  })
  return [
    table("projects", "project_id", projects),
    table("tasks", "task_id", tasks),
    table("chat_sessions", "session_id", sessions),
    table("chat_messages", "message_id", messages),
    table("task_lineage", "lineage_id", lineage),
    table("task_agents", "id", agents),
    table("task_audits", "audit_id", audits),
    table("runs", "run_id", runs),
    table("artifacts", "artifact_id", artifacts),
    table("schema_version", "version", versions)
  ]
}
