import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Exit, Layer, Option, TestClock } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { ChatModel, ChatPlan, ChatStore } from "../src/index.js"
import { Migrator } from "@strata/sql"

const applyChatStorePlan = Effect.flatMap(Migrator.make(ChatPlan.plan), (migrator) => migrator.run())

const storeLayer = (database: Layer.Layer<SqlClient.SqlClient>) =>
  ChatStore.layer.pipe(
    Layer.provideMerge(Layer.effectDiscard(applyChatStorePlan).pipe(Layer.provideMerge(database))),
    Layer.orDie
  )

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

const count = (statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(sql.unsafe<{ n: number | string }>(statement), (rows) => Number(rows[0]?.n)))

let counter = 0
const freshId = (label: string) => `${label}-${++counter}`

describeEachEngine("ChatStore", (engine) => {
  layer(storeLayer(engine.layer()))((it) => {
    it.effect("creates and reads a session; a live id cannot be created twice", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(1_705_320_000_123)
        const id = freshId("create")
        const created = yield* store.createSession({ id, title: "Planning", description: null })
        expect(created).toEqual({
          id,
          title: "Planning",
          description: null,
          createdAtMs: 1_705_320_000_123,
          lastActivityMs: 1_705_320_000_123,
          isActive: true,
          deletedAtMs: null
        })
        expect(yield* store.getSession(id)).toEqual(created)
        const again = yield* failure(store.createSession({ id }))
        expect(again._tag).toBe("SessionExists")
        expect(again.message).toBe(`session "${id}" already exists`)
      }))

    it.effect("names the field of every invalid argument", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const id = freshId("invalid")
        yield* store.createSession({ id })
        const fieldOf = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
          Effect.map(failure(effect), (error) => [error._tag, (error as unknown as { field?: string }).field])
        expect(yield* fieldOf(store.createSession({ id: "" }))).toEqual(["InvalidInput", "id"])
        expect(yield* fieldOf(store.createSession({ id: "   " }))).toEqual(["InvalidInput", "id"])
        expect(yield* fieldOf(store.getSession(""))).toEqual(["InvalidInput", "sessionId"])
        expect(yield* fieldOf(store.getMessages(id, { page: 0 }))).toEqual(["InvalidInput", "page"])
        expect(yield* fieldOf(store.getMessages(id, { page: 1.5 }))).toEqual(["InvalidInput", "page"])
        expect(yield* fieldOf(store.getMessages(id, { pageSize: 0 }))).toEqual(["InvalidInput", "pageSize"])
        expect(yield* fieldOf(store.getMessages(id, { pageSize: ChatModel.maxPageSize + 1 }))).toEqual([
          "InvalidInput",
          "pageSize"
        ])
        expect(yield* fieldOf(store.getMessagesAfter(id, -1, 10))).toEqual(["InvalidInput", "afterSeq"])
        expect(yield* fieldOf(store.getRecentMessages(id, 0))).toEqual(["InvalidInput", "count"])
        expect(yield* fieldOf(store.listSessions({ limit: 0 }))).toEqual(["InvalidInput", "limit"])
        expect(yield* fieldOf(store.listSessions({ cursor: "not-a-cursor" }))).toEqual(["InvalidInput", "cursor"])
        expect(yield* fieldOf(store.getAgentSwitchHistory(id, { limit: -3 }))).toEqual(["InvalidInput", "limit"])
        expect(yield* fieldOf(store.cleanupInactive(-1))).toEqual(["InvalidInput", "olderThan"])
        expect(yield* fieldOf(store.switchAgent(id, ""))).toEqual(["InvalidInput", "toAgent"])
        expect(
          yield* fieldOf(store.appendMessages(id, [{ role: "user" }, { role: "robot" as "user" }]))
        ).toEqual(["InvalidInput", "messages[1].role"])
        expect(yield* fieldOf(store.appendMessages(id, [{ role: "user", tokenCount: -1 }]))).toEqual([
          "InvalidInput",
          "messages[0].tokenCount"
        ])
        expect(yield* fieldOf(store.appendMessages(id, [{ role: "user", content: "a\u0000b" }]))).toEqual([
          "InvalidInput",
          "messages[0].content"
        ])
        expect(
          yield* fieldOf(store.appendMessages(id, [{ id: "m-x", role: "user" }, { id: "m-x", role: "user" }]))
        ).toEqual(["InvalidInput", "messages[1].id"])
        const role = yield* failure(store.appendMessages(id, [{ role: "robot" as "user" }]))
        expect(role.message).toBe(
          "invalid messages[0].role: must be one of user, assistant, system, tool, not \"robot\""
        )
        const missing = yield* failure(store.getMessages("no-such-session"))
        expect(missing).toEqual(new ChatModel.SessionNotFound({ sessionId: "no-such-session" }))
        expect((yield* store.getMessages(id)).messages).toEqual([])
      }))

    it.effect("appends with the next seq, keeps every field, and never rewrites history", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(1_000_000)
        const id = freshId("append")
        yield* store.createSession({ id })
        yield* TestClock.adjust(5)
        const first = yield* store.appendMessages(id, [
          { role: "system", content: "be brief" },
          {
            id: `${id}-call`,
            role: "assistant",
            content: null,
            toolCalls: [{ id: "call_1", type: "function", function: { name: "ls", arguments: "{}" } }],
            tokenCount: 12,
            metadata: { model: "m1", nested: { n: 0 } }
          }
        ])
        yield* TestClock.adjust(5)
        const second = yield* store.appendMessages(id, [
          { role: "tool", toolCallId: "call_1", name: "ls", content: "a b", createdAtMs: 999_000 }
        ])
        expect([...first, ...second].map((m) => m.seq)).toEqual([1, 2, 3])
        const page = yield* store.getMessages(id, { page: 1, pageSize: 10 })
        expect(page.hasMore).toBe(false)
        expect(page.messages).toEqual([...first, ...second])
        expect(page.messages[1]).toEqual({
          id: `${id}-call`,
          sessionId: id,
          seq: 2,
          role: "assistant",
          content: null,
          name: null,
          toolCallId: null,
          toolCalls: [{ id: "call_1", type: "function", function: { name: "ls", arguments: "{}" } }],
          tokenCount: 12,
          metadata: { model: "m1", nested: { n: 0 } },
          createdAtMs: 1_000_005
        })
        expect(page.messages[0]!.createdAtMs).toBe(1_000_005)
        expect(page.messages[2]!.createdAtMs).toBe(999_000)
        // Activity moves forward to the newest message, never back to an older supplied time.
        expect((yield* store.getSession(id)).lastActivityMs).toBe(1_000_005)
        const duplicate = yield* failure(store.appendMessages(id, [{ id: `${id}-call`, role: "user" }]))
        expect(duplicate).toEqual(new ChatModel.MessageExists({ messageId: `${id}-call`, sessionId: id }))
        expect((yield* store.getMessages(id)).messages).toHaveLength(3)
      }))

    it.effect("concurrent appends to one session get distinct, gap-free seqs", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const id = freshId("concurrent")
        yield* store.createSession({ id })
        const batches = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, writer) => writer),
          (writer) =>
            store.appendMessages(
              id,
              Array.from({ length: 5 }, (_, i) => ({ role: "user" as const, content: `w${writer}-${i}` }))
            ),
          { concurrency: "unbounded" }
        )
        for (const batch of batches) {
          // One call's messages are contiguous and in the order given.
          expect(batch.map((m) => m.seq)).toEqual(Array.from({ length: 5 }, (_, i) => batch[0]!.seq + i))
        }
        const stored = yield* store.getMessagesAfter(id, 0, 1000)
        expect(stored.map((m) => m.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1))
        expect(new Set(stored.map((m) => m.content)).size).toBe(100)
      }))

    it.effect("pages are stable under equal timestamps; keyset and recent reads agree", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(2_000_000)
        const id = freshId("paging")
        yield* store.createSession({ id })
        const contents = Array.from({ length: 23 }, (_, i) => `m${i + 1}`)
        // Every message has the same created_at_ms: order comes from seq alone.
        for (let i = 0; i < contents.length; i += 4) {
          yield* store.appendMessages(id, contents.slice(i, i + 4).map((content) => ({ role: "user" as const, content })))
        }
        const pages = yield* Effect.forEach([1, 2, 3, 4], (page) => store.getMessages(id, { page, pageSize: 7 }))
        expect(pages.map((p) => p.messages.map((m) => m.content))).toEqual([
          contents.slice(0, 7),
          contents.slice(7, 14),
          contents.slice(14, 21),
          contents.slice(21)
        ])
        expect(pages.map((p) => p.hasMore)).toEqual([true, true, true, false])
        expect((yield* store.getMessages(id, { page: 5, pageSize: 7 })).messages).toEqual([])
        const after = yield* store.getMessagesAfter(id, 20, 10)
        expect(after.map((m) => [m.seq, m.content])).toEqual([[21, "m21"], [22, "m22"], [23, "m23"]])
        const recent = yield* store.getRecentMessages(id, 4)
        expect(recent.map((m) => m.content)).toEqual(["m20", "m21", "m22", "m23"])
      }))

    it.effect("stats sum the tokens and report first and last message times", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(3_000_000)
        const id = freshId("stats")
        yield* store.createSession({ id })
        expect(yield* store.getSessionStats(id)).toEqual({
          sessionId: id,
          messageCount: 0,
          totalTokens: 0,
          firstMessageAtMs: null,
          lastMessageAtMs: null,
          createdAtMs: 3_000_000,
          lastActivityMs: 3_000_000
        })
        yield* TestClock.adjust(100)
        yield* store.appendMessages(id, [{ role: "user", tokenCount: 7 }, { role: "assistant", tokenCount: 0 }])
        yield* TestClock.adjust(100)
        yield* store.appendMessages(id, [{ role: "assistant", tokenCount: 35 }, { role: "tool" }])
        expect(yield* store.getSessionStats(id)).toEqual({
          sessionId: id,
          messageCount: 4,
          totalTokens: 42,
          firstMessageAtMs: 3_000_100,
          lastMessageAtMs: 3_000_200,
          createdAtMs: 3_000_000,
          lastActivityMs: 3_000_200
        })
      }))

    it.effect("agent switches: current agent, count, history newest first", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(4_000_000)
        const id = freshId("agents")
        yield* store.createSession({ id })
        expect(yield* store.getAgentContext(id)).toEqual(Option.none())
        const first = yield* store.switchAgent(id, "orchestrator")
        // Two switches in the same millisecond: the id breaks the tie.
        const second = yield* store.switchAgent(id, "coder", "user asked for code", { ticket: 7 })
        yield* TestClock.adjust(10)
        const third = yield* store.switchAgent(id, "reviewer", null)
        expect(first).toMatchObject({ fromAgent: null, toAgent: "orchestrator", reason: null, metadata: null })
        expect(second).toMatchObject({
          sessionId: id,
          fromAgent: "orchestrator",
          toAgent: "coder",
          reason: "user asked for code",
          metadata: { ticket: 7 },
          switchedAtMs: 4_000_000
        })
        expect(yield* store.getAgentSwitchHistory(id)).toEqual([third, second, first])
        expect(yield* store.getAgentSwitchHistory(id, { limit: 2 })).toEqual([third, second])
        expect(yield* store.getAgentContext(id)).toEqual(Option.some({
          sessionId: id,
          currentAgent: "reviewer",
          createdAtMs: 4_000_000,
          updatedAtMs: 4_000_010,
          switchCount: 3,
          metadata: null
        }))
      }))

    it.effect("soft delete keeps the first time, blocks writes and re-creation; restore undoes it", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(5_000_000)
        const id = freshId("soft")
        yield* store.createSession({ id })
        yield* TestClock.adjust(1000)
        const deleted = yield* store.softDelete(id)
        expect(deleted).toMatchObject({ isActive: false, deletedAtMs: 5_001_000 })
        yield* TestClock.adjust(1000)
        expect(yield* store.softDelete(id)).toMatchObject({ isActive: false, deletedAtMs: 5_001_000 })
        expect(yield* failure(store.createSession({ id }))).toEqual(
          new ChatModel.SessionDeleted({ sessionId: id, deletedAtMs: 5_001_000 })
        )
        expect((yield* failure(store.appendMessages(id, [{ role: "user" }])))._tag).toBe("SessionDeleted")
        expect((yield* failure(store.switchAgent(id, "coder")))._tag).toBe("SessionDeleted")
        expect(yield* store.restore(id)).toMatchObject({ isActive: true, deletedAtMs: null })
        expect((yield* store.appendMessages(id, [{ role: "user" }]))[0]!.seq).toBe(1)
        expect((yield* failure(store.softDelete("no-such")))._tag).toBe("SessionNotFound")
      }))

    it.effect("hard delete cascades: no orphans are left", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const id = freshId("hard")
        const keep = freshId("keep")
        for (const session of [id, keep]) {
          yield* store.createSession({ id: session })
          yield* store.appendMessages(session, [{ role: "user" }, { role: "assistant" }])
          yield* store.switchAgent(session, "coder")
        }
        yield* store.hardDelete(id)
        expect((yield* failure(store.getSession(id)))._tag).toBe("SessionNotFound")
        for (const table of ["messages", "agent_contexts", "agent_switches"]) {
          expect(yield* count(`SELECT count(*) AS n FROM ${table} WHERE session_id = '${id}'`)).toBe(0)
          expect(yield* count(`SELECT count(*) AS n FROM ${table} WHERE session_id = '${keep}'`)).toBeGreaterThan(0)
          expect(
            yield* count(`SELECT count(*) AS n FROM ${table} t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id)`)
          ).toBe(0)
        }
        expect((yield* failure(store.hardDelete(id)))._tag).toBe("SessionNotFound")
      }))

    it.effect("a failed transaction scope leaves nothing behind", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        const id = freshId("tx")
        const exit = yield* Effect.exit(store.withTransaction(Effect.gen(function*() {
          yield* store.createSession({ id })
          yield* store.appendMessages(id, [{ role: "user" }])
          return yield* Effect.fail("abort" as const)
        })))
        expect(exit).toEqual(Exit.fail("abort"))
        expect((yield* failure(store.getSession(id)))._tag).toBe("SessionNotFound")
        yield* store.withTransaction(Effect.gen(function*() {
          yield* store.createSession({ id })
          yield* store.appendMessages(id, [{ role: "user" }, { role: "assistant" }])
        }))
        expect((yield* store.getSessionStats(id)).messageCount).toBe(2)
      }))
  })

  // Listing, cleanup and purge see every session, so they get a database of their own.
  layer(storeLayer(engine.layer()))((it) => {
    it.effect("lists by last activity with a stable keyset cursor under equal times", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(10_000)
        for (const id of ["a", "b", "c", "d", "e", "f", "g"]) yield* store.createSession({ id })
        yield* TestClock.setTime(20_000)
        yield* store.appendMessages("c", [{ role: "user" }])
        yield* store.softDelete("e")
        const seen: Array<string> = []
        let cursor: string | null = null
        let pages = 0
        do {
          const page: ChatModel.SessionPage = yield* store.listSessions({ limit: 2, cursor })
          seen.push(...page.sessions.map((s) => s.id))
          cursor = page.nextCursor
          pages++
        } while (cursor !== null)
        expect(seen).toEqual(["c", "g", "f", "d", "b", "a"])
        expect(pages).toBe(3)
        const all = yield* store.listSessions({ includeDeleted: true, limit: 100 })
        expect(all.sessions.map((s) => s.id)).toEqual(["c", "g", "f", "e", "d", "b", "a"])
        expect(all.nextCursor).toBeNull()
      }))

    it.effect("cleanupInactive soft-deletes idle sessions; purgeDeleted removes old deletions", () =>
      Effect.gen(function*() {
        const store = yield* ChatStore.ChatStore
        yield* TestClock.setTime(100_000_000)
        yield* store.createSession({ id: "busy" })
        yield* store.appendMessages("busy", [{ role: "user" }])
        const hour = 3_600_000
        yield* TestClock.adjust(25 * hour)
        yield* store.appendMessages("busy", [{ role: "user" }])
        // Everything but "busy" is idle for more than 24 hours (including the listing test's sessions).
        const idle = yield* count("SELECT count(*) AS n FROM sessions WHERE deleted_at_ms IS NULL") 
        const cleaned = yield* store.cleanupInactive(24 * hour)
        expect(cleaned).toBe(idle - 1)
        expect(yield* store.cleanupInactive(24 * hour)).toBe(0)
        expect((yield* store.getSession("busy")).isActive).toBe(true)
        expect(yield* store.purgeDeleted(30 * 24 * hour)).toBe(0)
        yield* TestClock.adjust(31 * 24 * hour)
        const deleted = yield* count("SELECT count(*) AS n FROM sessions WHERE deleted_at_ms IS NOT NULL")
        expect(deleted).toBe(cleaned + 1)
        expect(yield* store.purgeDeleted(30 * 24 * hour)).toBe(deleted)
        expect(yield* count("SELECT count(*) AS n FROM sessions")).toBe(1)
        expect(yield* count("SELECT count(*) AS n FROM messages WHERE session_id <> 'busy'")).toBe(0)
      }))
  })
})

describe("ChatModel.validateMessages", () => {
  it("reports the first bad message by index", () => {
    expect(ChatModel.validateMessages([{ role: "user" }, { role: "assistant", toolCalls: 1n }])).toEqual(
      Either.left(new ChatModel.InvalidInput({ field: "messages[1].toolCalls", reason: "must be JSON-serialisable" }))
    )
  })
})
