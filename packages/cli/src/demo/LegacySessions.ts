/**
 * The demo's legacy session store in its first layout, generated from a random seed: `sessions`
 * with every message in one JSON array, `agent_contexts` with the agent history as another, times
 * as TIMESTAMP text in mixed formats. A few rows are broken the ways real ones are (invalid JSON, a
 * message without a role or with an unknown one, an unreadable time, a count that is text, an agent
 * context whose session is gone), and each generated row says whether `LegacyImport` must import
 * or reject it, so the totals an import reports can be checked exactly.
 *
 * @since 0.1.0
 */
import * as Prng from "./Prng.js"
import { formatted, pad, randomInstant } from "./TimestampText.js"

/**
 * A legacy `sessions` row and what the import must make of it.
 *
 * @since 0.1.0
 */
export interface Session {
  readonly values: {
    readonly session_id: string
    readonly messages: string | null
    readonly last_activity: string | null
  }
  readonly imported: boolean
  /** Messages it becomes (0 when rejected). */
  readonly messages: number
}

/**
 * A legacy `agent_contexts` row and what the import must make of it.
 *
 * @since 0.1.0
 */
export interface AgentContext {
  readonly values: {
    readonly session_id: string
    readonly current_agent: string
    readonly agent_history: string | null
    readonly metadata: string | null
    readonly created_at: string | null
    readonly updated_at: string | null
  }
  readonly imported: boolean
  /** Agent switches it becomes (0 when rejected). */
  readonly switches: number
}

/**
 * The generated legacy store and the totals a complete import must report.
 *
 * @since 0.1.0
 */
export interface Dataset {
  readonly sessions: ReadonlyArray<Session>
  readonly agentContexts: ReadonlyArray<AgentContext>
  readonly expected: {
    readonly sessions: { readonly imported: number; readonly rejected: number }
    readonly messages: number
    readonly agentContexts: { readonly imported: number; readonly rejected: number }
    readonly agentSwitches: number
  }
}

const roles = ["user", "assistant", "assistant", "tool", "system"] as const
const agents = ["planner", "coder", "reviewer", "supervisor"] as const

/** A message object as the old app stored it: the time under `timestamp`, `created_at`, or absent. */
const legacyMessage = (prng: Prng.Prng, index: number, atMs: number): Record<string, unknown> => {
  const role = prng.pick(roles)
  const message: Record<string, unknown> = { role, content: `${role} says ${index}` }
  const where = prng.next()
  if (where < 0.6) message["timestamp"] = formatted(prng, atMs).text
  else if (where < 0.8) message["created_at"] = formatted(prng, atMs).text
  if (role === "tool") {
    message["name"] = "search"
    message["tool_call_id"] = `call_${index}`
  }
  if (prng.chance(0.3)) message["token_count"] = prng.int(1, 800)
  return message
}

/** Breaks a session row one of the ways real rows were broken (the import rejects it). */
const breakSession = (
  prng: Prng.Prng,
  messages: Array<Record<string, unknown>>,
  lastActivity: string
): { readonly messages: string; readonly last_activity: string } => {
  const kind = prng.int(0, 5)
  const withMessage = (change: (m: Record<string, unknown>) => void) => {
    const copy = messages.length > 0 ? messages.map((m) => ({ ...m })) : [{ role: "user", content: "hi" }]
    change(copy[copy.length - 1]!)
    return { messages: JSON.stringify(copy), last_activity: lastActivity }
  }
  switch (kind) {
    case 0:
      return { messages: `${JSON.stringify(messages).slice(0, -1)}, {"role": "user", "content": "cut off`, last_activity: lastActivity }
    case 1:
      return withMessage((m) => delete m["role"])
    case 2:
      return withMessage((m) => (m["role"] = "robot"))
    case 3:
      return withMessage((m) => (m["timestamp"] = "yesterday"))
    case 4:
      return withMessage((m) => (m["token_count"] = "many"))
    default:
      return { messages: JSON.stringify(messages), last_activity: "not a date" }
  }
}

/**
 * Generates the legacy session store for `rows` (the demo's size: one session per 25 rows) and
 * `seed` (deterministic: same options, same rows).
 *
 * @since 0.1.0
 */
export const generate = (options: { readonly rows: number; readonly seed: number }): Dataset => {
  // Its own sequence, so the AgentOS data does not change with this generator.
  const prng = Prng.make(options.seed ^ 0x5e55104)
  const count = Math.max(1, Math.ceil(options.rows / 25))
  const sessions: Array<Session> = []
  const contexts: Array<AgentContext> = []
  for (let i = 1; i <= count; i++) {
    const sessionId = `legacy-${pad(i, 6)}`
    const start = randomInstant(prng)
    const n = prng.int(0, 10)
    const messages: Array<Record<string, unknown>> = []
    let last = start
    for (let m = 0; m < n; m++) {
      last = start + m * 60_000 + prng.int(0, 59) * 1000
      messages.push(legacyMessage(prng, m + 1, last))
    }
    const lastActivity = formatted(prng, last).text!
    const broken = prng.chance(0.06)
    const session: Session = broken
      ? { values: { session_id: sessionId, ...breakSession(prng, messages, lastActivity) }, imported: false, messages: 0 }
      : {
        values: {
          session_id: sessionId,
          // An empty conversation was sometimes stored as NULL rather than [].
          messages: n === 0 && prng.chance(0.5) ? null : JSON.stringify(messages),
          last_activity: lastActivity
        },
        imported: true,
        messages: n
      }
    sessions.push(session)

    if (!prng.chance(0.6)) continue
    const switches = prng.int(0, 4)
    const history: Array<Record<string, unknown>> = []
    let agent: string = prng.pick(agents)
    for (let s = 0; s < switches; s++) {
      const next: string = prng.pick(agents.filter((a) => a !== agent))
      const at = formatted(prng, start + s * 120_000).text
      // Two spellings of each field were in use.
      history.push(prng.chance(0.5)
        ? { from_agent: agent, to_agent: next, reason: "handoff", timestamp: at }
        : { from: agent, to: next, switched_at: at })
      agent = next
    }
    const brokenContext = prng.chance(0.05)
    if (brokenContext) {
      if (history.length === 0 || prng.chance(0.5)) history.push({ from: agent, reason: "no target" })
      else history[history.length - 1]!["timestamp"] = "soon"
    }
    const created = formatted(prng, start).text
    const updated = formatted(prng, last).text
    contexts.push({
      values: {
        session_id: sessionId,
        current_agent: agent,
        agent_history: JSON.stringify(history),
        metadata: prng.chance(0.3) ? JSON.stringify({ model: "gpt-4" }) : null,
        created_at: created,
        updated_at: updated
      },
      // A context is imported only with its session: the store's agent_contexts reference sessions.
      imported: !brokenContext && session.imported,
      switches: !brokenContext && session.imported ? history.length : 0
    })
  }
  // A context left behind when its session was deleted by hand.
  contexts.push({
    values: {
      session_id: "legacy-orphan",
      current_agent: "planner",
      agent_history: "[]",
      metadata: null,
      created_at: "2024-05-01 10:00:00",
      updated_at: "2024-05-01 10:05:00"
    },
    imported: false,
    switches: 0
  })
  const imported = sessions.filter((s) => s.imported).length
  const contextsImported = contexts.filter((c) => c.imported).length
  return {
    sessions,
    agentContexts: contexts,
    expected: {
      sessions: { imported, rejected: sessions.length - imported },
      messages: sessions.reduce((sum, s) => sum + s.messages, 0),
      agentContexts: { imported: contextsImported, rejected: contexts.length - contextsImported },
      agentSwitches: contexts.reduce((sum, c) => sum + c.switches, 0)
    }
  }
}
