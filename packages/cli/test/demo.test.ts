/**
 * `strata demo` end to end on SQLite and PostgreSQL: the built binary against a new database,
 * then again on the same one (it resets what it made), and refusing a database it did not make.
 * Afterwards every backfilled value is checked against what the generator built the text from.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { lateMessage } from "../src/commands/demo.js"
import * as LegacyData from "../src/demo/LegacyData.js"
import * as LegacySessions from "../src/demo/LegacySessions.js"
import { execute, expectedTargets, generate, query, readTargets } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const rows = 300
const sessions = LegacySessions.generate({ rows, seed: LegacyData.defaultSeed })
const lateMs = 1_751_355_000_000 // 2025-07-01T09:30:00+02:00

/** One database per engine for this file, removed at the end. */
const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

/** The state a complete demo leaves: the generator's expectations plus the late row fixed on read. */
const expectedState = () => {
  const tables = generate(rows)
  const expected = expectedTargets(tables)
  expected["chat_messages"]![lateMessage.message_id] = { created_at_ms: lateMs }
  const rejects: Record<string, number> = {}
  if (sessions.expected.agentContexts.rejected > 0) rejects["legacy-import:legacy_agent_contexts"] = sessions.expected.agentContexts.rejected
  if (sessions.expected.sessions.rejected > 0) rejects["legacy-import:legacy_sessions"] = sessions.expected.sessions.rejected
  for (const table of tables) {
    for (const row of table.rows) for (const job of row.rejectedBy) rejects[job] = (rejects[job] ?? 0) + 1
  }
  return { tables, expected, rejects }
}

const rejectsByJob = async (url: string) =>
  Object.fromEntries(
    (await query<{ job: string; n: number }>(url, "SELECT job, count(*) AS n FROM strata_rejects GROUP BY job ORDER BY job"))
      .map((r) => [r.job, Number(r.n)])
  )

// Every test has its own database: the engines and cases run concurrently (each strata process mostly waits).
describe.concurrent("strata demo", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("runs the whole story, again on the same database, and verify catches a tampered row", async () => {
        const url = await newDatabase(engine.name)
        const first = await strata(["demo", "--db", url, "--rows", String(rows)])
        expect(first.code, show(first)).toBe(0)
        for (const line of [
          `strata demo on `,
          "1. Legacy data: 10 AgentOS tables as they were before migration 21",
          `chat_messages ${rows}`,
          "applied 21 \"audit decision fields\"",
          "applied 44 \"epoch ms timestamps\"",
          "Backfill finished in ",
          `stored before the read:   ${lateMessage.message_id}  created_at "2025-07-01T09:30:00+02:00"  created_at_ms NULL`,
          `the read returns:         created_at_ms ${lateMs} (2025-07-01T07:30:00.000Z)`,
          `stored after write-back:  created_at_ms ${lateMs} (2025-07-01T07:30:00.000Z)`,
          "All checks passed: 17 columns",
          "6. Import legacy sessions into the chat store (what 'strata import-legacy' does)",
        "Renamed the legacy tables sessions, agent_contexts to legacy_sessions, legacy_agent_contexts",
        `sessions        ${sessions.sessions.length} read: ${sessions.expected.sessions.imported} imported (${sessions.expected.messages} messages), 0 already in the store, ${sessions.expected.sessions.rejected} rejected`,
        "7. Status: what 'strata status' shows",
          "Migrations: 2 applied, 0 pending."
        ]) expect(first.stdout, show(first)).toContain(line)
        expect(first.stdout).not.toContain("Found the demo database")

        const { expected, rejects, tables } = expectedState()
        expect(await readTargets(url, tables)).toEqual(expected)
        expect(await rejectsByJob(url)).toEqual(rejects)
        expect(await query(url, "SELECT plan, id FROM strata_migrations ORDER BY plan, id")).toEqual([
          { plan: "agentos", id: 21 },
          { plan: "agentos", id: 44 },
          { plan: "chat-store", id: 1 }
        ])

        const second = await strata(["demo", "--db", url, "--rows", String(rows), "--json"])
        expect(second.code, show(second)).toBe(0)
        const report = json(second)
        expect(report.reset).toBe(true)
        expect(report.seeded["chat_messages"]).toBe(rows)
        expect(report.migrate.applied).toEqual([21, 44])
        expect(report.lazy).toEqual({
          messageId: lateMessage.message_id,
          createdAt: lateMessage.created_at,
          storedBeforeMs: null,
          readMs: lateMs,
          storedAfterMs: lateMs
        })
        expect(report.verify.passed).toBe(true)
        expect(report.importLegacy).toMatchObject({
          renamed: ["sessions", "agent_contexts"],
          migrated: [1],
          sessions: { imported: sessions.expected.sessions.imported, rejected: sessions.expected.sessions.rejected, skipped: 0 },
          messages: sessions.expected.messages,
          agentContexts: { imported: sessions.expected.agentContexts.imported, rejected: sessions.expected.agentContexts.rejected },
          agentSwitches: sessions.expected.agentSwitches
        })
        const [store] = await query<Record<string, number>>(
          url,
          "SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages, (SELECT count(*) FROM agent_switches) AS switches"
        )
        expect(store).toEqual({ sessions: sessions.expected.sessions.imported, messages: sessions.expected.messages, switches: sessions.expected.agentSwitches })
        const messages = report.status.columns.find((c: { column: string; table: string }) =>
          c.table === "chat_messages" && c.column === "created_at_ms"
        )
        const fixed = Object.values(expected["chat_messages"]!).filter((v) => v.created_at_ms !== null).length
        // Rejected rows are not pending (issue 10): nothing is left to do for them until their source is fixed.
        expect(messages).toMatchObject({ migrated: fixed, pending: 0, rejected: rejects["chat_messages.created_at_ms"], jobState: "done" })
        expect(await readTargets(url, tables)).toEqual(expected)
        expect(await rejectsByJob(url)).toEqual(rejects)

        // verify: passes, then fails on a tampered row, naming it (exit 1).
        const messageRows = tables.find((t) => t.table === "chat_messages")!
        const victim = messageRows.rows.find((r) => r.expected["created_at_ms"] !== null)!
        const key = String(victim.values["message_id"])
        const clean = await strata(["verify", "--db", url])
        expect(clean.code, show(clean)).toBe(0)
        expect(clean.stdout).toContain("All checks passed: 17 columns")

        await execute(url, `UPDATE chat_messages SET created_at_ms = created_at_ms + 1 WHERE message_id = '${key}'`)
        const failed = await strata(["verify", "--db", url])
        expect(failed.code, show(failed)).toBe(1)
        expect(failed.stdout).toMatch(/chat_messages\.created_at_ms +FAIL /)
        expect(failed.stdout).toContain(
          `FAILED chat_messages.created_at_ms mismatch: 1 row (e.g. ${key}) — created_at_ms differs from the value recomputed from created_at`
        )
        expect(failed.stderr.trim()).toBe(
          `strata: Verification of agentos failed: 1 check(s) found rows: chat_messages.created_at_ms mismatch: 1 (e.g. ${key})`
        )
        const verifyReport = json(await strata(["verify", "--db", url, "--json"]))
        expect(verifyReport.passed).toBe(false)
        expect(verifyReport.checks.filter((c: { status: string }) => c.status === "fail")).toEqual([
          expect.objectContaining({ name: "chat_messages.created_at_ms mismatch", count: 1, sampleKeys: [key] })
        ])
        const otherJob = await strata(["verify", "--db", url, "--job", "tasks.created_at_ms"])
        expect(otherJob.code, show(otherJob)).toBe(0)
      })

      it("refuses a database it did not create, and leaves it alone", async () => {
        const other = await newDatabase(engine.name)
        await execute(other, "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO customers VALUES (1, 'Ada')")
        const result = await strata(["demo", "--db", other, "--rows", "10"])
        expect(result.code, show(result)).toBe(1)
        expect(result.stderr.trim().split("\n")).toHaveLength(1)
        expect(result.stderr).toContain("is not empty (customers) and was not created by 'strata demo'")
        expect(await query(other, "SELECT id, name FROM customers")).toEqual([{ id: 1, name: "Ada" }])
        expect(await query(other, engine.name === "sqlite"
          ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
          : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()")).toEqual([{ name: "customers" }])
      })
    })
  }
})
