/**
 * The whole chat flow on the client an application already has: its own driver layer, once plain
 * and once with the name transforms many Effect apps use (`snakeToCamel` on results,
 * `camelToSnake` on query names), on SQLite and on PostgreSQL (in a schema that is not `public`).
 * Migrating the chat-store plan, every ChatStore operation, WriteBehind's buffered appends and
 * merged reads, and a LegacyImport must give exactly the same results on both clients, and the
 * results must be the expected ones.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Migrator } from "@strata/sql"
import { Effect, Layer, Option, TestClock } from "effect"
import { engines } from "../../../test/support/databases.js"
import { ChatPlan, ChatStore, LegacyImport, WriteBehind } from "../src/index.js"

const NOON = 1_705_320_000_000

/** Legacy tables beside the store (legacy_*), written with the app's client but without its transforms' help. */
const fillLegacy = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = sql.onDialectOrElse({ pg: () => "pg" as const, orElse: () => "sqlite" as const })
  for (const statement of ChatPlan.legacyStatements(dialect, "legacy_")) yield* sql.unsafe(statement)
  const messages = JSON.stringify([
    { role: "user", content: "hello", timestamp: "2024-01-15 12:00:00", token_count: 2 },
    { role: "assistant", content: "hi", timestamp: "2024-01-15 12:00:05", model: "m1" }
  ])
  const insert = dialect === "pg"
    ? "INSERT INTO legacy_sessions (session_id, messages, last_activity) VALUES ($1, $2, $3)"
    : "INSERT INTO legacy_sessions (session_id, messages, last_activity) VALUES (?, ?, ?)"
  yield* sql.unsafe(insert, ["legacy-1", messages, "2024-01-15 12:00:05"])
  yield* sql.unsafe(insert, ["legacy-2", "not json", "2024-01-15 12:00:05"])
  const context = dialect === "pg"
    ? "INSERT INTO legacy_agent_contexts (session_id, current_agent, agent_history, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)"
    : "INSERT INTO legacy_agent_contexts (session_id, current_agent, agent_history, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
  yield* sql.unsafe(context, [
    "legacy-1",
    "coder",
    JSON.stringify([{ to_agent: "coder", timestamp: "2024-01-15 12:00:01" }]),
    JSON.stringify({ team: "a" }),
    "2024-01-15 12:00:00",
    "2024-01-15 12:00:01"
  ])
})

/** Everything the services hand back over one flow, in order. */
const flow = Effect.gen(function*() {
  yield* TestClock.setTime(NOON)
  const migration = yield* Migrator.run()
  const store = yield* ChatStore.ChatStore
  const created = yield* store.createSession({ id: "s-1", title: "Planning", description: null })
  yield* store.createSession({ id: "s-2" })
  const appended = yield* store.appendMessages("s-1", [
    { id: "m-1", role: "system", content: "be brief", tokenCount: 3, createdAtMs: NOON - 2000 },
    {
      id: "m-2",
      role: "assistant",
      content: null,
      toolCalls: [{ id: "c1", type: "function", function: { name: "ls", arguments: "{}" } }],
      toolCallId: null,
      metadata: { model: "m1", nested: { createdAt: 1 } },
      tokenCount: 9,
      createdAtMs: NOON - 1000
    },
    { id: "m-3", role: "tool", name: "ls", toolCallId: "c1", content: "[]", createdAtMs: NOON }
  ])
  yield* TestClock.adjust(5000)
  const switched = [
    yield* store.switchAgent("s-1", "orchestrator"),
    yield* store.switchAgent("s-1", "coder", "code asked", { reason_code: 7 })
  ].map(({ id: _id, ...rest }) => rest)
  const reads = {
    session: yield* store.getSession("s-1"),
    page: yield* store.getMessages("s-1", { page: 1, pageSize: 2 }),
    after: yield* store.getMessagesAfter("s-1", 1, 10),
    recent: yield* store.getRecentMessages("s-1", 2),
    stats: yield* store.getSessionStats("s-1"),
    context: Option.getOrNull(yield* store.getAgentContext("s-1")),
    history: (yield* store.getAgentSwitchHistory("s-1")).map(({ id: _id, ...rest }) => rest),
    list: yield* store.listSessions({ limit: 1 })
  }
  const nextPage = yield* store.listSessions({ limit: 1, cursor: reads.list.nextCursor })
  const deleted = yield* store.softDelete("s-2")
  const restored = yield* store.restore("s-2")

  const behind = yield* Effect.scoped(Effect.gen(function*() {
    const wb = yield* WriteBehind.WriteBehind
    const buffered = [
      yield* wb.append("s-2", { role: "user", content: "one", tokenCount: 1 }),
      yield* wb.append("s-2", { role: "assistant", content: "two", tokenCount: 2, metadata: { k: "v" } })
    ].map(({ id: _id, ...rest }) => rest)
    const merged = {
      page: (yield* wb.getMessages("s-2")).messages.map(({ id: _id, ...rest }) => rest),
      recent: (yield* wb.getRecentMessages("s-2", 1)).map((m) => m.content),
      after: (yield* wb.getMessagesAfter("s-2", 1, 5)).map((m) => m.content),
      stats: yield* wb.getSessionStats("s-2")
    }
    yield* wb.flush
    const stored = (yield* store.getMessages("s-2")).messages.map(({ id: _id, ...rest }) => rest)
    const { flushed, pending, poisoned } = yield* wb.metrics
    return { buffered, merged, stored, metrics: { flushed, pending, poisoned } }
  }).pipe(Effect.provide(WriteBehind.layer({ interval: "1 hour" }))))

  yield* fillLegacy
  const imported = yield* LegacyImport.run({ batchSize: 1 })
  const legacy = {
    messages: (yield* store.getMessages("legacy-1")).messages.map(({ id: _id, ...rest }) => rest),
    history: (yield* store.getAgentSwitchHistory("legacy-1")).map(({ id: _id, ...rest }) => rest),
    rejects: (yield* LegacyImport.rejects()).map((r) => [r.job, r.rowKey, r.reason])
  }
  yield* TestClock.adjust(10_000)
  const cleaned = yield* store.cleanupInactive("5 seconds")
  const purged = yield* store.purgeDeleted(0)
  yield* store.hardDelete("s-1")
  const afterDelete = yield* Effect.flip(store.getSession("s-1"))

  return {
    applied: migration.applied.map((m) => m.id),
    created,
    appended,
    switched,
    reads,
    nextPage,
    deleted,
    restored,
    behind,
    imported,
    legacy,
    cleaned,
    purged,
    afterDelete: afterDelete._tag
  }
})

const servicesOn = (client: Layer.Layer<SqlClient.SqlClient>) =>
  Layer.mergeAll(Migrator.layer(ChatPlan.plan), ChatStore.layer).pipe(Layer.provideMerge(client))

for (const engine of engines) {
  describe(`the chat flow on the app's own client [${engine.name}]`, () => {
    it.effect("gives the same, expected results with and without camelCase name transforms", () =>
      Effect.gen(function*() {
        const plain = yield* flow.pipe(Effect.provide(servicesOn(engine.appLayer())))
        const camel = yield* flow.pipe(Effect.provide(servicesOn(engine.appLayer({ camelCase: true }))))
        expect(camel).toEqual(plain)

        expect(plain.applied).toEqual([1])
        expect(plain.created).toEqual({
          id: "s-1",
          title: "Planning",
          description: null,
          createdAtMs: NOON,
          lastActivityMs: NOON,
          isActive: true,
          deletedAtMs: null
        })
        expect(plain.appended.map((m) => [m.id, m.seq, m.role, m.createdAtMs])).toEqual([
          ["m-1", 1, "system", NOON - 2000],
          ["m-2", 2, "assistant", NOON - 1000],
          ["m-3", 3, "tool", NOON]
        ])
        expect(plain.reads.page.messages.map((m) => m.id)).toEqual(["m-1", "m-2"])
        expect(plain.reads.page.messages[1]).toEqual(plain.appended[1])
        expect(plain.reads.page.messages[1]!.toolCalls).toEqual([{ id: "c1", type: "function", function: { name: "ls", arguments: "{}" } }])
        expect(plain.reads.page.messages[1]!.metadata).toEqual({ model: "m1", nested: { createdAt: 1 } })
        expect(plain.reads.after.map((m) => m.id)).toEqual(["m-2", "m-3"])
        expect(plain.reads.recent.map((m) => m.id)).toEqual(["m-2", "m-3"])
        expect(plain.reads.stats).toEqual({
          sessionId: "s-1",
          messageCount: 3,
          totalTokens: 12,
          firstMessageAtMs: NOON - 2000,
          lastMessageAtMs: NOON,
          createdAtMs: NOON,
          lastActivityMs: NOON + 5000
        })
        expect(plain.reads.context).toEqual({
          sessionId: "s-1",
          currentAgent: "coder",
          createdAtMs: NOON + 5000,
          updatedAtMs: NOON + 5000,
          switchCount: 2,
          metadata: null
        })
        expect(plain.reads.history.map((s) => [s.fromAgent, s.toAgent, s.reason, s.metadata])).toEqual([
          ["orchestrator", "coder", "code asked", { reason_code: 7 }],
          [null, "orchestrator", null, null]
        ])
        expect(plain.reads.list.sessions.map((s) => s.id)).toEqual(["s-1"])
        expect(plain.nextPage.sessions.map((s) => s.id)).toEqual(["s-2"])
        expect([plain.deleted.deletedAtMs, plain.restored.deletedAtMs]).toEqual([NOON + 5000, null])
        expect(plain.behind.buffered.map((m) => [m.seq, m.content, m.metadata])).toEqual([[1, "one", null], [2, "two", { k: "v" }]])
        expect(plain.behind.merged).toMatchObject({
          recent: ["two"],
          after: ["two"],
          stats: { messageCount: 2, totalTokens: 3 }
        })
        expect(plain.behind.merged.page).toEqual(plain.behind.buffered)
        expect(plain.behind.stored).toEqual(plain.behind.buffered)
        expect(plain.behind.metrics).toEqual({ flushed: 2, pending: 0, poisoned: 0 })
        expect(plain.imported).toEqual({
          sessions: { scanned: 2, imported: 1, skipped: 0, rejected: 1 },
          messages: 2,
          agentContexts: { scanned: 1, imported: 1, skipped: 0, rejected: 0 },
          agentSwitches: 1,
          jobs: { sessions: "legacy-import:legacy_sessions", agentContexts: "legacy-import:legacy_agent_contexts" }
        })
        expect(plain.legacy.messages.map((m) => [m.seq, m.content, m.tokenCount, m.metadata, m.createdAtMs])).toEqual([
          [1, "hello", 2, null, NOON],
          [2, "hi", null, { model: "m1" }, NOON + 5000]
        ])
        expect(plain.legacy.history.map((s) => [s.toAgent, s.switchedAtMs])).toEqual([["coder", NOON + 1000]])
        expect(plain.legacy.rejects).toHaveLength(1)
        expect(plain.legacy.rejects[0]!.slice(0, 2)).toEqual(["legacy-import:legacy_sessions", "legacy-2"])
        // s-1 (activity NOON + 5 s) and legacy-1 (NOON + 5 s) are idle 10 s later; s-2's last message was appended at NOON + 5 s too.
        expect(plain.cleaned).toBe(3)
        expect(plain.purged).toBe(0)
        expect(plain.afterDelete).toBe("SessionNotFound")
      }))
  })
}
