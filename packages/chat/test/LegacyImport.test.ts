import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Exit, Layer } from "effect"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { ChatPlan, ChatStore, LegacyImport } from "../src/index.js"
import { Database, Migrator } from "@strata/sql"

/** 2024-01-15 12:00:00 UTC. */
const NOON = 1_705_320_000_000
const MINUTE = 60_000

const message = (fields: Record<string, unknown>) => fields

/** The legacy sessions: every row's fate is written by hand below. */
const legacySessions: ReadonlyArray<{ session_id: string | null; messages: string | null; last_activity: string | null }> = [
  {
    session_id: "s01",
    messages: JSON.stringify([
      message({ role: "system", content: "be brief", timestamp: "2024-01-15 11:58:00" }),
      message({ role: "user", content: "list files", timestamp: "2024-01-15T11:59:00Z", token_count: 3 }),
      message({
        role: "assistant",
        content: null,
        tool_calls: [{ id: "c1", type: "function", function: { name: "ls", arguments: "{}" } }],
        token_count: 9,
        metadata: { model: "m1" },
        timestamp: "2024-01-15T20:00:00+08:00"
      })
    ]),
    last_activity: "2024-01-15 12:00:00"
  },
  { session_id: "s02", messages: "[]", last_activity: "2024-01-15 12:01:00" },
  { session_id: "s03", messages: null, last_activity: "2024-01-15T12:02:00.250Z" },
  { session_id: "s04", messages: `[{"role": "user"`, last_activity: "2024-01-15 12:00:00" },
  { session_id: "s05", messages: JSON.stringify([{ role: "user", content: "hi" }, { content: "no role" }]), last_activity: "2024-01-15 12:00:00" },
  { session_id: "s06", messages: JSON.stringify([{ role: "bot", content: "?" }]), last_activity: "2024-01-15 12:00:00" },
  { session_id: "s07", messages: "[]", last_activity: "2024-02-30 10:00:00" },
  { session_id: "s08", messages: JSON.stringify([{ role: "user", content: "x", timestamp: "yesterday" }]), last_activity: "2024-01-15 12:00:00" },
  { session_id: "s09", messages: JSON.stringify({ role: "user" }), last_activity: "2024-01-15 12:00:00" },
  {
    session_id: "s10",
    messages: JSON.stringify([{ role: "user", content: "no time" }, { role: "assistant", content: "also no time", name: "helper" }]),
    last_activity: "2024-01-15 12:05:00"
  },
  { session_id: "s11", messages: JSON.stringify([{ role: "user", token_count: "12" }]), last_activity: "2024-01-15 12:00:00" },
  {
    session_id: "s12",
    messages: JSON.stringify([
      { role: "user", content: "a", timestamp: "2024-01-15 12:10:00" },
      { role: "assistant", content: "b", timestamp: "2024-01-15 12:11:00" }
    ]),
    last_activity: null
  },
  { session_id: "s13", messages: "[]", last_activity: "0" },
  { session_id: "", messages: "[]", last_activity: "2024-01-15 12:00:00" }
]

const legacyContexts: ReadonlyArray<Record<string, string | null>> = [
  {
    session_id: "s01",
    current_agent: "coder",
    agent_history: JSON.stringify([
      { from_agent: null, to_agent: "orchestrator", timestamp: "2024-01-15 11:58:00" },
      { from_agent: "orchestrator", to_agent: "coder", timestamp: "2024-01-15 11:59:30", reason: "code asked", metadata: { k: 1 } }
    ]),
    metadata: JSON.stringify({ team: "a" }),
    created_at: "2024-01-15 11:58:00",
    updated_at: "2024-01-15 11:59:30"
  },
  { session_id: "s02", current_agent: "orchestrator", agent_history: null, metadata: null, created_at: "2024-01-15 12:01:00", updated_at: "2024-01-15 12:01:00" },
  { session_id: "s03", current_agent: "coder", agent_history: JSON.stringify([{ to_agent: "coder" }]), metadata: null, created_at: null, updated_at: null },
  { session_id: "s04", current_agent: "coder", agent_history: "[]", metadata: null, created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15 12:00:00" },
  { session_id: "s10", current_agent: "coder", agent_history: "not json", metadata: null, created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15 12:00:00" },
  { session_id: "zz", current_agent: "coder", agent_history: "[]", metadata: null, created_at: "2024-01-15 12:00:00", updated_at: "2024-01-15 12:00:00" }
]

const expectedTotals = {
  sessions: { scanned: 14, imported: 5, skipped: 0, rejected: 9 },
  messages: 7,
  agentContexts: { scanned: 6, imported: 2, skipped: 0, rejected: 4 },
  agentSwitches: 2
}

const fillLegacy = (prefix: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of ChatPlan.legacyStatements(yield* Database.dialect, prefix)) yield* sql.unsafe(statement)
    yield* sql`INSERT INTO ${sql(`${prefix}sessions`)} ${sql.insert(legacySessions.map((r) => ({ ...r })))}`
    yield* sql`INSERT INTO ${sql(`${prefix}agent_contexts`)} ${sql.insert(legacyContexts.map((r) => ({ ...r })))}`
  })

const migrate = Effect.flatMap(Migrator.make(ChatPlan.plan), (migrator) => migrator.run())

/** Two fresh databases of the engine (SQLite files, or PostgreSQL schemas): the legacy source and the target. */
const databasePair = (engine: "sqlite" | "pg") =>
  Effect.gen(function*() {
    const url = engine === "sqlite"
      ? yield* tempSqliteFile("source.db")
      : (yield* pgTestUrlWithSchema()).url
    const targetUrl = engine === "sqlite"
      ? yield* tempSqliteFile("target.db")
      : (yield* pgTestUrlWithSchema()).url
    return { source: Database.layer({ url }), target: Database.layer({ url: targetUrl }) }
  })

const build = <A>(layer: Layer.Layer<A, unknown>) =>
  Effect.flatMap(Effect.scope, (scope) => Layer.buildWithScope(Layer.orDie(layer), scope))

const storedSnapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return {
    sessions: yield* sql`SELECT id, created_at_ms, last_activity_ms, deleted_at_ms FROM sessions ORDER BY id`,
    messages: yield* sql`SELECT session_id, seq, role, content, name, token_count, created_at_ms FROM messages ORDER BY session_id, seq`,
    contexts: yield* sql`SELECT session_id, current_agent, created_at_ms, updated_at_ms, switch_count FROM agent_contexts ORDER BY session_id`,
    switches: yield* sql`SELECT session_id, from_agent, to_agent, reason, switched_at_ms FROM agent_switches ORDER BY session_id, switched_at_ms`
  }
})

for (const engine of engines) {
  describe(`LegacyImport [${engine.name}]`, () => {
    it.scoped("imports a legacy database with exact counts; bad rows are rejected with the field named", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        yield* fillLegacy("").pipe(Effect.provide(pair.source))
        const target = yield* build(ChatStore.layer.pipe(Layer.provideMerge(pair.target)))
        yield* migrate.pipe(Effect.provide(target))
        const result = yield* LegacyImport.run({ source: pair.source, batchSize: 4 }).pipe(Effect.provide(target))
        expect(result).toEqual({
          ...expectedTotals,
          jobs: { sessions: "legacy-import:sessions", agentContexts: "legacy-import:agent_contexts" }
        })

        const store = Context.get(target, ChatStore.ChatStore)
        const s01 = yield* store.getMessages("s01")
        expect(s01.messages.map((m) => [m.seq, m.role, m.content, m.tokenCount, m.createdAtMs])).toEqual([
          [1, "system", "be brief", null, NOON - 2 * MINUTE],
          [2, "user", "list files", 3, NOON - MINUTE],
          [3, "assistant", null, 9, NOON]
        ])
        expect(s01.messages[2]!.toolCalls).toEqual([{ id: "c1", type: "function", function: { name: "ls", arguments: "{}" } }])
        expect(s01.messages[2]!.metadata).toEqual({ model: "m1" })
        expect(yield* store.getSession("s01")).toMatchObject({ createdAtMs: NOON - 2 * MINUTE, lastActivityMs: NOON, deletedAtMs: null })
        expect(yield* store.getSession("s03")).toMatchObject({ createdAtMs: NOON + 2 * MINUTE + 250, lastActivityMs: NOON + 2 * MINUTE + 250 })
        // Messages without a time take the session's last activity.
        expect((yield* store.getMessages("s10")).messages.map((m) => [m.content, m.name, m.createdAtMs])).toEqual([
          ["no time", null, NOON + 5 * MINUTE],
          ["also no time", "helper", NOON + 5 * MINUTE]
        ])
        // No last activity: the newest message's time.
        expect(yield* store.getSession("s12")).toMatchObject({ createdAtMs: NOON + 10 * MINUTE, lastActivityMs: NOON + 11 * MINUTE })
        expect(yield* store.getAgentSwitchHistory("s01")).toMatchObject([
          { fromAgent: "orchestrator", toAgent: "coder", reason: "code asked", metadata: { k: 1 }, switchedAtMs: NOON - 30_000 },
          { fromAgent: null, toAgent: "orchestrator", reason: null, metadata: null, switchedAtMs: NOON - 2 * MINUTE }
        ])
        const context = yield* store.getAgentContext("s01")
        expect(context._tag === "Some" && context.value).toEqual({
          sessionId: "s01",
          currentAgent: "coder",
          createdAtMs: NOON - 2 * MINUTE,
          updatedAtMs: NOON - 30_000,
          switchCount: 2,
          metadata: { team: "a" }
        })

        const rejects = yield* LegacyImport.rejects({ source: pair.source }).pipe(Effect.provide(target))
        const reasons = Object.fromEntries(rejects.map((r) => [`${r.job.replace("legacy-import:", "")}/${r.rowKey}`, r.reason]))
        expect(Object.keys(reasons).sort()).toEqual([
          "agent_contexts/s03",
          "agent_contexts/s04",
          "agent_contexts/s10",
          "agent_contexts/zz",
          "sessions/",
          "sessions/s04",
          "sessions/s05",
          "sessions/s06",
          "sessions/s07",
          "sessions/s08",
          "sessions/s09",
          "sessions/s11",
          "sessions/s13"
        ])
        expect(reasons["sessions/"]).toBe("session_id: must not be empty")
        expect(reasons["sessions/s04"]).toMatch(/^messages: not valid JSON \(/)
        expect(reasons["sessions/s05"]).toBe("messages[1].role: missing")
        expect(reasons["sessions/s06"]).toBe(`messages[0].role: must be one of user, assistant, system, tool, not "bot"`)
        expect(reasons["sessions/s07"]).toMatch(/^last_activity: "2024-02-30 10:00:00": /)
        expect(reasons["sessions/s08"]).toMatch(/^messages\[0\]\.timestamp: "yesterday": /)
        expect(reasons["sessions/s09"]).toBe("messages: expected a JSON array, found object")
        expect(reasons["sessions/s11"]).toMatch(/^messages\[0\]\.token_count: /)
        // SQLite's TIMESTAMP affinity stored the text "0" as the integer 0; PostgreSQL kept the text.
        if (engine.name === "sqlite") expect(reasons["sessions/s13"]).toBe("last_activity: expected timestamp text, found number 0")
        else expect(reasons["sessions/s13"]).toMatch(/^last_activity: "0": /)
        expect(reasons["agent_contexts/s03"]).toBe("agent_history[0].timestamp: missing")
        expect(reasons["agent_contexts/s04"]).toMatch(/^session_id: no such session in the store/)
        expect(reasons["agent_contexts/s10"]).toMatch(/^agent_history: not valid JSON \(/)

        // Running again changes nothing and reports the same totals.
        const before = yield* storedSnapshot.pipe(Effect.provide(target))
        const again = yield* LegacyImport.run({ source: pair.source, batchSize: 4 }).pipe(Effect.provide(target))
        expect(again).toEqual(result)
        expect(yield* storedSnapshot.pipe(Effect.provide(target))).toEqual(before)
        // A restart scans everything again: what is there is skipped, never duplicated.
        const restarted = yield* LegacyImport.run({ source: pair.source, batchSize: 5, restart: true }).pipe(Effect.provide(target))
        expect(restarted).toMatchObject({
          sessions: { scanned: 14, imported: 0, skipped: 5, rejected: 9 },
          messages: 0,
          agentContexts: { scanned: 6, imported: 0, skipped: 2, rejected: 4 },
          agentSwitches: 0
        })
        expect(yield* storedSnapshot.pipe(Effect.provide(target))).toEqual(before)
      }))

    it.scoped("keeps legacy fields the store has no column for in the metadata, or rejects the row naming the clash", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        const source = yield* build(pair.source)
        const rows: ReadonlyArray<readonly [string, ReadonlyArray<Record<string, unknown>>]> = [
          ["x01", [{
            role: "user",
            content: "see the file",
            attachments: [{ name: "a.png", bytes: 12 }],
            model: "gpt-x",
            metadata: { lang: "en" },
            timestamp: "2024-01-15 12:00:00"
          }]],
          // The same value at the top and in metadata: kept once.
          ["x02", [{ role: "assistant", model: "m1", metadata: { model: "m1" }, timestamp: "2024-01-15 12:00:00" }]],
          // A different value: neither may overwrite the other.
          ["x03", [{ role: "user", content: "ok" }, { role: "assistant", model: "m2", metadata: { model: "m1" } }]],
          // The time used is `timestamp`; a `created_at` at another instant is kept, one at the same instant is not.
          ["x04", [
            { role: "user", timestamp: "2024-01-15 12:00:00", created_at: "2024-01-15 11:00:00" },
            { role: "user", timestamp: "2024-01-15 12:00:00", created_at: "2024-01-15T12:00:00Z", metadata: null }
          ]],
          // Extra fields need an object to go into.
          ["x05", [{ role: "user", extra: 1, metadata: "text" }]],
          // A null is a value too.
          ["x06", [{ role: "tool", tool_call_id: "c1", content: "[]", exit_code: null }]]
        ]
        const contexts = [{
          session_id: "x01",
          current_agent: "coder",
          agent_history: JSON.stringify([
            { to_agent: "coder", to: "other", from: null, timestamp: "2024-01-15 12:00:00", tool: "router", metadata: { k: 1 } }
          ]),
          metadata: null,
          created_at: "2024-01-15 12:00:00",
          updated_at: "2024-01-15 12:00:00"
        }]
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          for (const statement of ChatPlan.legacyStatements(yield* Database.dialect)) yield* sql.unsafe(statement)
          for (const [id, messages] of rows) {
            yield* sql`INSERT INTO sessions (session_id, messages, last_activity) VALUES (${id}, ${JSON.stringify(messages)}, ${"2024-01-15 12:30:00"})`
          }
          for (const c of contexts) {
            yield* sql`INSERT INTO agent_contexts (session_id, current_agent, agent_history, metadata, created_at, updated_at)
              VALUES (${c.session_id}, ${c.current_agent}, ${c.agent_history}, ${c.metadata}, ${c.created_at}, ${c.updated_at})`
          }
        }).pipe(Effect.provide(source))
        const target = yield* build(ChatStore.layer.pipe(Layer.provideMerge(pair.target)))
        yield* migrate.pipe(Effect.provide(target))
        const result = yield* LegacyImport.run({ source: pair.source, batchSize: 2 }).pipe(Effect.provide(target))
        expect(result).toMatchObject({
          sessions: { scanned: 6, imported: 4, skipped: 0, rejected: 2 },
          messages: 5,
          agentContexts: { scanned: 1, imported: 1, rejected: 0 },
          agentSwitches: 1
        })
        const store = Context.get(target, ChatStore.ChatStore)
        const metadataOf = (id: string) => Effect.map(store.getMessages(id), (page) => page.messages.map((m) => m.metadata))
        expect(yield* metadataOf("x01")).toEqual([{ lang: "en", attachments: [{ name: "a.png", bytes: 12 }], model: "gpt-x" }])
        expect(yield* metadataOf("x02")).toEqual([{ model: "m1" }])
        expect(yield* metadataOf("x04")).toEqual([{ created_at: "2024-01-15 11:00:00" }, null])
        expect((yield* store.getMessages("x04")).messages.map((m) => m.createdAtMs)).toEqual([NOON, NOON])
        expect(yield* metadataOf("x06")).toEqual([{ exit_code: null }])
        expect(yield* store.getAgentSwitchHistory("x01")).toMatchObject([
          { fromAgent: null, toAgent: "coder", metadata: { k: 1, to: "other", tool: "router" }, switchedAtMs: NOON }
        ])
        const rejects = yield* LegacyImport.rejects({ source: pair.source }).pipe(Effect.provide(target))
        expect(rejects.map((r) => [r.rowKey, r.reason])).toEqual([
          ["x03", "messages[1].model: kept in messages[1].metadata.model (the store has no field for it), which already holds a different value"],
          ["x05", `messages[0].metadata: expected a JSON object, found "text" (it must hold messages[0].extra)`]
        ])
        // The rejected rows stay in the legacy table as they were.
        const kept = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ session_id: string; messages: string }>`SELECT session_id, messages FROM sessions WHERE session_id IN ('x03', 'x05') ORDER BY session_id`)
          .pipe(Effect.provide(source))
        expect(kept.map((r) => [r.session_id, JSON.parse(r.messages)])).toEqual([["x03", rows[2]![1]], ["x05", rows[4]![1]]])
      }))

    it.scoped("an interrupted import resumes to the same totals and rows as one run", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        yield* fillLegacy("").pipe(Effect.provide(pair.source))
        const target = yield* build(pair.target)
        yield* migrate.pipe(Effect.provide(target))
        let batches = 0
        const interrupted = yield* Effect.exit(
          LegacyImport.run({
            source: pair.source,
            batchSize: 3,
            onProgress: () => ++batches === 2 ? Effect.interrupt : Effect.void
          }).pipe(Effect.provide(target))
        )
        expect(Exit.isInterrupted(interrupted)).toBe(true)
        const state = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ job: string; state: string; processed: number }>`SELECT job, state, processed FROM strata_jobs`).pipe(Effect.provide(target))
        expect(state).toEqual([{ job: "legacy-import:sessions", state: "paused", processed: 6 }])
        const resumed = yield* LegacyImport.run({ source: pair.source, batchSize: 3 }).pipe(Effect.provide(target))
        expect(resumed).toMatchObject(expectedTotals)
        expect((yield* storedSnapshot.pipe(Effect.provide(target))).messages).toHaveLength(7)
      }))

    it.scoped("in place: renames the legacy tables, migrates, imports from legacy_*", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        const database = yield* build(pair.target)
        yield* fillLegacy("").pipe(Effect.provide(database))
        // The chat-store tables cannot be created over the legacy ones: the Migrator's preflight refuses, typed, and changes nothing.
        const blocked = yield* Effect.flip(migrate.pipe(Effect.provide(database)))
        expect(blocked._tag).toBe("PreflightFailed")
        expect(blocked._tag === "PreflightFailed" && blocked.problems[0]).toMatchObject({ _tag: "TargetColumnConflict", table: "sessions", found: null })
        expect(yield* LegacyImport.renameLegacyTables.pipe(Effect.provide(database))).toEqual(["sessions", "agent_contexts"])
        expect(yield* LegacyImport.renameLegacyTables.pipe(Effect.provide(database))).toEqual([])
        yield* migrate.pipe(Effect.provide(database))
        const result = yield* LegacyImport.run().pipe(Effect.provide(database))
        expect(result).toEqual({
          ...expectedTotals,
          jobs: { sessions: "legacy-import:legacy_sessions", agentContexts: "legacy-import:legacy_agent_contexts" }
        })
      }))

    it.scoped("refuses a target without the chat-store tables and a source without the legacy ones", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        const target = yield* build(pair.target)
        const notMigrated = yield* Effect.flip(LegacyImport.run({ source: pair.source }).pipe(Effect.provide(target)))
        expect(notMigrated).toEqual(new LegacyImport.TargetNotMigrated({ table: "sessions" }))
        yield* migrate.pipe(Effect.provide(target))
        const missing = yield* Effect.flip(LegacyImport.run({ source: pair.source }).pipe(Effect.provide(target)))
        expect(missing).toEqual(new LegacyImport.LegacyTableMissing({ table: "sessions", reason: "does not exist" }))
        const notLegacy = yield* Effect.flip(LegacyImport.run({ tables: { sessions: "sessions" } }).pipe(Effect.provide(target)))
        expect(notLegacy.message).toBe("legacy table sessions: has no column session_id (not the legacy layout)")
        const badName = yield* Effect.flip(LegacyImport.run({ tables: { sessions: "x; DROP TABLE sessions" } }).pipe(Effect.provide(target)))
        expect(badName._tag).toBe("InvalidTableName")
      }))

    it.scoped("refuses a batchSize that is not a positive integer with InvalidLegacyImportOptions, writing nothing", () =>
      Effect.gen(function*() {
        const pair = yield* databasePair(engine.name)
        yield* fillLegacy("").pipe(Effect.provide(pair.source))
        const target = yield* build(ChatStore.layer.pipe(Layer.provideMerge(pair.target)))
        yield* migrate.pipe(Effect.provide(target))
        const empty = yield* storedSnapshot.pipe(Effect.provide(target))
        for (const [batchSize, shown] of [[Number.NaN, "NaN"], [-3, "-3"], [2.5, "2.5"], [0, "0"]] as const) {
          const error = yield* Effect.flip(LegacyImport.run({ source: pair.source, batchSize }).pipe(Effect.provide(target)))
          expect(error).toEqual(
            new LegacyImport.InvalidLegacyImportOptions({ option: "batchSize", reason: `must be a positive integer, got ${shown}` })
          )
          expect(error.message).toBe(`Invalid legacy import option batchSize: must be a positive integer, got ${shown}`)
        }
        expect(empty.sessions).toEqual([])
        expect(yield* storedSnapshot.pipe(Effect.provide(target))).toEqual(empty)
        // Refused before strata_jobs is even created: no checkpoint, no reject.
        const sql = Context.get(target, SqlClient.SqlClient)
        const jobTables = engine.name === "pg"
          ? yield* sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables
              WHERE table_schema = current_schema() AND table_name IN ('strata_jobs', 'strata_rejects')`
          : yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE name IN ('strata_jobs', 'strata_rejects')`
        expect(jobTables).toEqual([])
        // The same import with a valid size then does the whole job.
        const result = yield* LegacyImport.run({ source: pair.source, batchSize: 4 }).pipe(Effect.provide(target))
        expect(result).toMatchObject(expectedTotals)
      }))
  })
}
