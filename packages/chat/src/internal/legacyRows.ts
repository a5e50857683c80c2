/**
 * Legacy session rows → chat-store rows, as pure functions: a row converts whole or not at all
 * (`Either.left` is the reason it was rejected, naming the field). Times are legacy text, read only
 * through `Backfill.timestampFromColumn` / `Timestamp.parse`.
 *
 * Legacy message objects: `role` (required), `content` (text or null), `name`, `tool_call_id`,
 * `tool_calls` (any JSON), `token_count` (non-negative integer), `metadata` (object), and the time as
 * `timestamp` or `created_at` (text; absent means the session's `last_activity`). Legacy agent-history
 * entries: `to_agent` or `to` (required), `from_agent` or `from`, `reason`, `metadata`, and the time as
 * `timestamp` or `switched_at` (required).
 *
 * Nothing in a legacy object is dropped. A field the store has no column for (`attachments`,
 * `model`, …), and an alias the import did not use that says something else (a `created_at`
 * beside the `timestamp` that was used, at another instant), goes into the message's (or the
 * switch's) `metadata` under its own name, next to what `metadata` already holds. When `metadata`
 * already has that key with a different value, the row is rejected, naming both, rather than one
 * overwriting the other; the same value twice is kept once.
 */
import { Backfill, Timestamp } from "@strata/core"
import { Either } from "effect"
import * as ChatModel from "../ChatModel.js"

/** A legacy `sessions` row as read. */
export interface LegacySessionRow {
  readonly session_id: unknown
  readonly messages: unknown
  readonly last_activity: unknown
}

/** A legacy `agent_contexts` row as read. */
export interface LegacyAgentContextRow {
  readonly session_id: unknown
  readonly current_agent: unknown
  readonly agent_history: unknown
  readonly metadata: unknown
  readonly created_at: unknown
  readonly updated_at: unknown
}

export interface ImportedSession {
  readonly id: string
  readonly createdAtMs: Timestamp.EpochMillis
  readonly lastActivityMs: Timestamp.EpochMillis
  readonly messages: ReadonlyArray<ChatModel.Message>
}

export interface ImportedSwitch {
  readonly fromAgent: string | null
  readonly toAgent: string
  readonly reason: string | null
  readonly metadata: unknown
  readonly switchedAtMs: Timestamp.EpochMillis
}

export interface ImportedAgentContext {
  readonly sessionId: string
  readonly currentAgent: string
  readonly createdAtMs: Timestamp.EpochMillis
  readonly updatedAtMs: Timestamp.EpochMillis
  readonly metadata: unknown
  readonly switches: ReadonlyArray<ImportedSwitch>
}

const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value
}

/** A JSON column: text on SQLite (and legacy TEXT on PostgreSQL), already parsed from json/jsonb columns. */
const jsonColumn = (value: unknown, field: string): Either.Either<unknown, string> => {
  if (value === null || value === undefined) return Either.right(null)
  if (typeof value !== "string") return Either.right(value)
  try {
    return Either.right(JSON.parse(value))
  } catch (error) {
    return Either.left(`${field}: not valid JSON (${(error as Error).message})`)
  }
}

const isObject = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const optionalText = (value: unknown, field: string): Either.Either<string | null, string> =>
  value === null || value === undefined
    ? Either.right(null)
    : typeof value === "string"
    ? Either.right(value)
    : Either.left(`${field}: expected text or null, found ${describe(value)}`)

/** A legacy time (JSON text under one of `names`, the first present): its ms and the name it came from. */
interface JsonTime {
  readonly ms: Timestamp.EpochMillis
  readonly name: string
}

/** Legacy time text (`timestamp`/`created_at` in JSON): `undefined` when absent. */
const jsonTime = (
  entry: Readonly<Record<string, unknown>>,
  names: ReadonlyArray<string>,
  field: string
): Either.Either<JsonTime | undefined, string> => {
  for (const name of names) {
    const value = entry[name]
    if (value === null || value === undefined) continue
    if (typeof value !== "string") {
      return Either.left(`${field}.${name}: expected timestamp text, found ${describe(value)}`)
    }
    return Either.map(
      Either.mapLeft(Timestamp.parse(value), (error) => `${field}.${name}: ${describe(value)}: ${error.reason}`),
      (ms): JsonTime | undefined => ({ ms, name })
    )
  }
  return Either.right(undefined)
}

/** JSON text of `value` with object keys sorted: equal for equal JSON values, whatever their key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    isObject(inner) ? Object.fromEntries(Object.keys(inner).sort().map((k) => [k, inner[k]])) : inner)

/**
 * The aliases in `names` other than `used` that say something `used` does not: present, not null,
 * and neither the same value nor (with `sameTime`) the same instant.
 */
const unusedAliases = (
  entry: Readonly<Record<string, unknown>>,
  names: ReadonlyArray<string>,
  used: string | undefined,
  sameTime = false
): ReadonlyArray<string> =>
  names.filter((name) => {
    if (name === used) return false
    const value = entry[name]
    if (value === null || value === undefined) return false
    if (used === undefined) return true
    const usedValue = entry[used]
    if (canonical(value) === canonical(usedValue)) return false
    if (sameTime && typeof value === "string" && typeof usedValue === "string") {
      const a = Timestamp.parse(value)
      const b = Timestamp.parse(usedValue)
      return !(Either.isRight(a) && Either.isRight(b) && a.right === b.right)
    }
    return true
  })

/**
 * `metadata` with the entry's fields the store keeps nowhere else (every key not in `consumed`),
 * under their own names. `metadata` must be an object or null; a key it already holds with a
 * different value rejects the row.
 */
const withKeptFields = (
  entry: Readonly<Record<string, unknown>>,
  consumed: ReadonlySet<string>,
  field: string
): Either.Either<Readonly<Record<string, unknown>> | null, string> => {
  const metadata = entry["metadata"] ?? null
  const kept = Object.keys(entry).filter((key) => !consumed.has(key) && entry[key] !== undefined)
  if (kept.length === 0) return Either.right(metadata as Readonly<Record<string, unknown>> | null)
  if (metadata !== null && !isObject(metadata)) {
    return Either.left(`${field}.metadata: expected a JSON object, found ${describe(metadata)} (it must hold ${field}.${kept[0]})`)
  }
  const merged: Record<string, unknown> = { ...metadata }
  for (const key of kept) {
    if (Object.hasOwn(merged, key)) {
      if (canonical(merged[key]) === canonical(entry[key])) continue
      return Either.left(
        `${field}.${key}: kept in ${field}.metadata.${key} (the store has no field for it), which already holds a different value`
      )
    }
    merged[key] = entry[key]
  }
  return Either.right(merged)
}

const messageFields = ["role", "content", "name", "tool_call_id", "tool_calls", "token_count", "metadata"]
const messageTimes = ["timestamp", "created_at"]
const switchFields = ["reason", "metadata"]
const switchTimes = ["timestamp", "switched_at"]

const columnTime = (value: unknown, field: string): Either.Either<Timestamp.EpochMillis | null, string> =>
  Either.mapLeft(Backfill.timestampFromColumn(value), (reason) => `${field}: ${reason}`)

const sessionIdOf = (value: unknown): Either.Either<string, string> =>
  typeof value !== "string"
    ? Either.left(`session_id: expected text, found ${describe(value)}`)
    : Either.mapLeft(ChatModel.validateId(value, "session_id"), (error) => error.message.replace(/^invalid /, ""))

/** The row key a reject is recorded under. */
export const rowKey = (value: unknown): string => (typeof value === "string" ? value : String(value))

/** Converts a legacy session row: the session, and its messages in array order as `seq` 1..n. */
export const importSession = (row: LegacySessionRow): Either.Either<ImportedSession, string> =>
  Either.gen(function*() {
    const id = yield* sessionIdOf(row.session_id)
    const lastActivity = yield* columnTime(row.last_activity, "last_activity")
    const parsed = yield* jsonColumn(row.messages, "messages")
    const entries = parsed === null ? [] : parsed
    if (!Array.isArray(entries)) return yield* Either.left(`messages: expected a JSON array, found ${describe(entries)}`)
    const inputs: Array<ChatModel.NewMessage> = []
    const times: Array<Timestamp.EpochMillis | undefined> = []
    for (let i = 0; i < entries.length; i++) {
      const field = `messages[${i}]`
      const entry: unknown = entries[i]
      if (!isObject(entry)) return yield* Either.left(`${field}: expected an object, found ${describe(entry)}`)
      if (entry["role"] === undefined || entry["role"] === null) return yield* Either.left(`${field}.role: missing`)
      const time = yield* jsonTime(entry, messageTimes, field)
      times.push(time?.ms)
      const content = yield* optionalText(entry["content"], `${field}.content`)
      const name = yield* optionalText(entry["name"], `${field}.name`)
      const toolCallId = yield* optionalText(entry["tool_call_id"], `${field}.tool_call_id`)
      const unusedTimes = unusedAliases(entry, messageTimes, time?.name, true)
      const consumed = new Set([...messageFields, ...messageTimes.filter((n) => !unusedTimes.includes(n))])
      const metadata = yield* withKeptFields(entry, consumed, field)
      inputs.push({
        role: entry["role"] as ChatModel.Role,
        content,
        name,
        toolCallId,
        toolCalls: entry["tool_calls"] ?? null,
        tokenCount: (entry["token_count"] ?? null) as number | null,
        metadata: metadata as ChatModel.JsonObject | null
      })
    }
    const known = times.filter((t): t is Timestamp.EpochMillis => t !== undefined)
    const newestKnown = known.reduce<Timestamp.EpochMillis | null>((a, b) => (a === null || b > a ? b : a), null)
    const fallback = lastActivity ?? newestKnown
    if (fallback === null) return yield* Either.left("last_activity: NULL, and no message has a time")
    // The store's own validation (roles, NUL characters, JSON, token counts), with legacy field names.
    const valid = yield* Either.mapLeft(
      ChatModel.validateMessages(inputs, "messages"),
      (error) => `${error.field.replace(/toolCalls/, "tool_calls").replace(/tokenCount/, "token_count").replace(/toolCallId/, "tool_call_id")}: ${error.reason}`
    )
    const messages = valid.map((message, i) =>
      ChatModel.toMessage({ ...message, createdAtMs: times[i] ?? fallback }, id, i + 1, times[i] ?? fallback)
    )
    let createdAtMs = fallback
    let lastActivityMs = fallback
    for (const time of known) {
      if (time < createdAtMs) createdAtMs = time
      if (time > lastActivityMs) lastActivityMs = time
    }
    return { id, createdAtMs, lastActivityMs, messages }
  })

/** Converts a legacy agent-context row and its history (the switches, oldest first as stored). */
export const importAgentContext = (row: LegacyAgentContextRow): Either.Either<ImportedAgentContext, string> =>
  Either.gen(function*() {
    const sessionId = yield* sessionIdOf(row.session_id)
    if (typeof row.current_agent !== "string" || row.current_agent.trim() === "") {
      return yield* Either.left(`current_agent: expected an agent name, found ${describe(row.current_agent)}`)
    }
    const createdAt = yield* columnTime(row.created_at, "created_at")
    const updatedAt = yield* columnTime(row.updated_at, "updated_at")
    const metadata = yield* jsonColumn(row.metadata, "metadata")
    if (metadata !== null && !isObject(metadata)) {
      return yield* Either.left(`metadata: expected a JSON object, found ${describe(metadata)}`)
    }
    const parsed = yield* jsonColumn(row.agent_history, "agent_history")
    const entries = parsed === null ? [] : parsed
    if (!Array.isArray(entries)) return yield* Either.left(`agent_history: expected a JSON array, found ${describe(entries)}`)
    const switches: Array<ImportedSwitch> = []
    for (let i = 0; i < entries.length; i++) {
      const field = `agent_history[${i}]`
      const entry: unknown = entries[i]
      if (!isObject(entry)) return yield* Either.left(`${field}: expected an object, found ${describe(entry)}`)
      const toName = entry["to_agent"] != null ? "to_agent" : "to"
      const to = entry[toName]
      if (typeof to !== "string" || to.trim() === "") return yield* Either.left(`${field}.to_agent: missing`)
      const fromName = entry["from_agent"] != null ? "from_agent" : "from"
      const from = yield* optionalText(entry[fromName], `${field}.from_agent`)
      const reason = yield* optionalText(entry["reason"], `${field}.reason`)
      const switchMetadata = entry["metadata"] ?? null
      if (switchMetadata !== null && !isObject(switchMetadata)) {
        return yield* Either.left(`${field}.metadata: expected a JSON object, found ${describe(switchMetadata)}`)
      }
      const at = yield* jsonTime(entry, switchTimes, field)
      if (at === undefined) return yield* Either.left(`${field}.timestamp: missing`)
      const unused = [
        ...unusedAliases(entry, ["to_agent", "to"], toName),
        ...unusedAliases(entry, ["from_agent", "from"], fromName),
        ...unusedAliases(entry, switchTimes, at.name, true)
      ]
      const consumed = new Set([...switchFields, "to_agent", "to", "from_agent", "from", ...switchTimes].filter((n) => !unused.includes(n)))
      const metadata = yield* withKeptFields(entry, consumed, field)
      switches.push({ fromAgent: from, toAgent: to, reason, metadata, switchedAtMs: at.ms })
    }
    const first = switches[0]?.switchedAtMs
    const last = switches[switches.length - 1]?.switchedAtMs
    const created = createdAt ?? first ?? updatedAt
    const updated = updatedAt ?? last ?? createdAt
    if (created == null || updated == null) return yield* Either.left("created_at, updated_at: both NULL and no history")
    return { sessionId, currentAgent: row.current_agent, createdAtMs: created, updatedAtMs: updated, metadata, switches }
  })
