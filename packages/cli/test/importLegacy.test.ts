/**
 * `strata import-legacy` end to end on SQLite and PostgreSQL: legacy tables still under their old
 * names are renamed, the chat-store plan applied, every importable session, message, agent context
 * and switch lands exactly once (a re-run adds nothing), broken rows are rejected and listed; from
 * another database with --from; and a database without legacy tables is refused untouched.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import * as LegacySessions from "../src/demo/LegacySessions.js"
import * as Seed from "../src/demo/Seed.js"
import { query, withDatabase } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const dataset = LegacySessions.generate({ rows: 2000, seed: 7 })

const seedLegacySessions = (url: string) => withDatabase(url, Seed.seedLegacySessions(dataset))

const storeCounts = async (url: string) => {
  const [row] = await query<Record<string, number>>(
    url,
    `SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages,
            (SELECT count(*) FROM agent_contexts) AS agent_contexts, (SELECT count(*) FROM agent_switches) AS agent_switches`
  )
  return Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]))
}

const expectedCounts = {
  sessions: dataset.expected.sessions.imported,
  messages: dataset.expected.messages,
  agent_contexts: dataset.expected.agentContexts.imported,
  agent_switches: dataset.expected.agentSwitches
}

const tablesOf = async (url: string, engine: "sqlite" | "pg") =>
  (await query<{ name: string }>(
    url,
    engine === "sqlite"
      ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
      : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
  )).map((r) => r.name)

describe.concurrent("strata import-legacy", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("renames, migrates and imports in place; a re-run adds nothing", async () => {
        const url = await newDatabase(engine.name)
        await seedLegacySessions(url)
        const { expected } = dataset
        const first = await strata(["import-legacy", "--db", url, "--batch-size", "25"])
        expect(first.code, show(first)).toBe(0)
        expect(first.stdout).toContain(
          "Renamed the legacy tables sessions, agent_contexts to legacy_sessions, legacy_agent_contexts (the chat store uses those names)."
        )
        expect(first.stdout).toContain("Applied plan chat-store: 1 \"session store\".")
        expect(first.stdout).toContain(
          `  sessions        ${dataset.sessions.length} read: ${expected.sessions.imported} imported (${expected.messages.toLocaleString("en-US")} messages), 0 already in the store, ${expected.sessions.rejected} rejected`
        )
        expect(first.stdout).toContain(
          `  agent contexts  ${dataset.agentContexts.length} read: ${expected.agentContexts.imported} imported (${expected.agentSwitches} agent switches), 0 already in the store, ${expected.agentContexts.rejected} rejected`
        )
        // The first five rejects of each table, in key order, with the field at fault.
        const listed = (table: string) => first.stdout.split("\n").filter((line) => line.startsWith(`  ${table} legacy-`))
        expect(listed("legacy_sessions")).toHaveLength(Math.min(5, expected.sessions.rejected))
        expect(listed("legacy_agent_contexts")).toHaveLength(Math.min(5, expected.agentContexts.rejected))
        const firstRejected = [...dataset.sessions].filter((s) => !s.imported).map((s) => s.values.session_id).sort()[0]!
        expect(listed("legacy_sessions")[0]).toMatch(new RegExp(`^  legacy_sessions ${firstRejected}: (messages|last_activity)`))
        expect(await storeCounts(url)).toEqual(expectedCounts)
        expect(await query(url, "SELECT job, count(*) AS n FROM strata_rejects GROUP BY job ORDER BY job")).toEqual([
          { job: "legacy-import:legacy_agent_contexts", n: expected.agentContexts.rejected },
          { job: "legacy-import:legacy_sessions", n: expected.sessions.rejected }
        ])

        const again = json(await strata(["import-legacy", "--db", url, "--json"]))
        expect(again).toMatchObject({
          renamed: [],
          migrated: [],
          sessions: { scanned: dataset.sessions.length, imported: expected.sessions.imported, rejected: expected.sessions.rejected },
          messages: expected.messages,
          agentContexts: { imported: expected.agentContexts.imported, rejected: expected.agentContexts.rejected },
          agentSwitches: expected.agentSwitches
        })
        expect(await storeCounts(url)).toEqual(expectedCounts)
      })

      it("refuses a database without legacy tables and changes nothing", async () => {
        const url = await newDatabase(engine.name)
        await query(url, "CREATE TABLE customers (id INTEGER PRIMARY KEY)")
        const result = await strata(["import-legacy", "--db", url])
        expect(result.code, show(result)).toBe(1)
        expect(result.stderr.trim()).toBe("strata: legacy table legacy_sessions: does not exist")
        expect(await tablesOf(url, engine.name)).toEqual(["customers"])
      })
    })
  }

  it("--from another database", async () => {
    const source = await newDatabase("sqlite")
    const target = await newDatabase("sqlite")
    await seedLegacySessions(source)
    const result = await strata(["import-legacy", "--db", target, "--from", source, "--json"])
    expect(result.code, show(result)).toBe(0)
    const summary = json(result)
    expect(summary).toMatchObject({
      source,
      legacyTables: { sessions: "sessions", agentContexts: "agent_contexts" },
      renamed: [],
      migrated: [1],
      sessions: { imported: dataset.expected.sessions.imported, rejected: dataset.expected.sessions.rejected },
      messages: dataset.expected.messages
    })
    // The first five rejects of each legacy table.
    expect(summary.rejects).toHaveLength(Math.min(5, dataset.expected.sessions.rejected) + Math.min(5, dataset.expected.agentContexts.rejected))
    expect(await storeCounts(target)).toEqual(expectedCounts)
    // The source keeps its tables as they were.
    expect(await tablesOf(source, "sqlite")).toEqual(["agent_contexts", "sessions"])

    const missing = await strata(["import-legacy", "--db", target, "--from", `${source}.missing`])
    expect(missing.code, show(missing)).toBe(2)
    expect(missing.stderr.trim()).toBe(`strata: --from ${source}.missing: no such database file`)
  })
})
