/**
 * `strata migrate` and `strata status` end to end on SQLite and PostgreSQL: dry run changes
 * nothing, --to stops where asked, --backup copies first (SQLite) or refuses (PostgreSQL),
 * re-running is a no-op, a tampered checksum shows as drifted and blocks migrate, baseline records
 * without running.
 */
import { describe, expect, it } from "@effect/vitest"
import { Compile, Plans } from "@strata/core"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { execute, query, seedLegacy } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const checksum44 = Compile.checksum(Plans.agentos.migrations[1]!)

const columnsOf = async (url: string, engine: "sqlite" | "pg", table: string): Promise<ReadonlyArray<string>> =>
  (await query<{ name: string }>(
    url,
    engine === "sqlite"
      ? `SELECT name FROM pragma_table_info('${table}') ORDER BY cid`
      : `SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '${table}' ORDER BY ordinal_position`
  )).map((r) => r.name)

const tablesOf = async (url: string, engine: "sqlite" | "pg"): Promise<ReadonlyArray<string>> =>
  (await query<{ name: string }>(
    url,
    engine === "sqlite"
      ? "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
      : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name"
  )).map((r) => r.name)

const legacyMessageColumns = ["message_id", "session_id", "role", "content", "metadata", "created_at"]

const states = (report: { migrations: ReadonlyArray<{ id: number; state: string }> }) =>
  report.migrations.map((m) => [m.id, m.state])

// Every test has its own database: the engines and cases run concurrently (each strata process mostly waits).
describe.concurrent("strata migrate", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("dry run, --to, backup, no-op re-run, drift", async () => {
        const url = await newDatabase(engine.name)
        await seedLegacy(url, 50)
        const tablesBefore = await tablesOf(url, engine.name)

        const dry = await strata(["migrate", "--db", url, "--dry-run"])
        expect(dry.code, show(dry)).toBe(0)
        expect(dry.stdout).toContain("-- strata_migrations would be created.")
        expect(dry.stdout).toMatch(/ALTER TABLE "chat_messages" ADD COLUMN (IF NOT EXISTS )?"created_at_ms"/)
        // The shadow's index is built once its backfill is done (on PostgreSQL concurrently).
        expect(dry.stdout).toContain("-- later, when its backfill job is done (strata backfill builds it):")
        expect(dry.stdout).toContain(
          `-- after backfill chat_messages.created_at_ms\nCREATE INDEX ${engine.name === "pg" ? "CONCURRENTLY " : ""}IF NOT EXISTS "idx_chat_messages_created_at_ms" ON "chat_messages" ("created_at_ms" DESC);`
        )
        expect(dry.stdout).toContain("-- 2 migrations would be applied.")
        const dryJson = json(await strata(["migrate", "--db", url, "--dry-run", "--json", "--to", "21"]))
        expect(dryJson.pending.map((m: { id: number }) => m.id)).toEqual([21])
        expect(dryJson.createsHistoryTable).toBe(true)
        expect(await tablesOf(url, engine.name)).toEqual(tablesBefore)
        expect(await columnsOf(url, engine.name, "chat_messages")).toEqual(legacyMessageColumns)

        const to21 = await strata(["migrate", "--db", url, "--to", "21"])
        expect(to21.code, show(to21)).toBe(0)
        // The locks it took, bounded and reported: on PostgreSQL each wait under lock_timeout (2 s by default).
        expect(to21.stdout).toMatch(
          engine.name === "pg"
            ? /applied +21 {2}audit decision fields {2}\(2 statements, (\d+) ms: table locks held \1 ms, each wait at most 2000 ms, 1 attempt\)/
            : /applied +21 {2}audit decision fields {2}\(2 statements, (\d+) ms: the write lock held \1 ms\)/
        )
        expect(to21.stdout).toContain("1 migration applied; the database is at migration 21.")
        const after21 = json(await strata(["status", "--db", url, "--json"]))
        expect(states(after21)).toEqual([[21, "applied"], [44, "pending"]])
        expect(after21.columns.filter((c: { applied: boolean }) => c.applied).map((c: { column: string }) => c.column))
          .toEqual(["source_event_ts", "supervisor_processed_at"])

        if (engine.name === "sqlite") {
          const backup = Path.join(Path.dirname(url), "before-44.db")
          const migrated = await strata(["migrate", "--db", url, "--backup", backup])
          expect(migrated.code, show(migrated)).toBe(0)
          expect(migrated.stdout).toContain("1 migration applied; the database is at migration 44.")
          // The copy is a working database as it was before migration 44.
          const copy = json(await strata(["status", "--db", backup, "--json"]))
          expect(states(copy)).toEqual([[21, "applied"], [44, "pending"]])
          expect(await columnsOf(backup, "sqlite", "chat_messages")).toEqual(legacyMessageColumns)
          expect(await query(backup, "SELECT count(*) AS n FROM chat_messages")).toEqual([{ n: 50 }])
          const again = await strata(["migrate", "--db", url, "--backup", backup])
          expect(again.code, show(again)).toBe(1)
          expect(again.stderr.trim()).toBe(
            `strata: Backup destination ${backup} already exists; choose a new file name (it is never overwritten)`
          )
          expect(Fs.statSync(backup).size).toBeGreaterThan(0)
        } else {
          const refused = await strata(["migrate", "--db", url, "--backup", "/tmp/never.db"])
          expect(refused.code, show(refused)).toBe(1)
          expect(refused.stderr.trim()).toBe(
            "strata: Online backup is only available for SQLite databases; for PostgreSQL (pg) use pg_dump"
          )
          expect(states(json(await strata(["status", "--db", url, "--json"])))).toEqual([[21, "applied"], [44, "pending"]])
          const migrated = await strata(["migrate", "--db", url])
          expect(migrated.code, show(migrated)).toBe(0)
          expect(migrated.stdout).toContain("1 migration applied; the database is at migration 44.")
        }
        expect(await columnsOf(url, engine.name, "chat_messages")).toEqual([...legacyMessageColumns, "created_at_ms"])

        const noopJson = json(await strata(["migrate", "--db", url, "--json"]))
        expect(noopJson).toMatchObject({ applied: [], lockTimeoutMs: engine.name === "pg" ? 2000 : null })
        const noop = await strata(["migrate", "--db", url])
        expect(noop.code, show(noop)).toBe(0)
        expect(noop.stdout).toContain("Nothing to apply; the database is at migration 44.")
        expect(noop.stdout).toContain(
          "  deferred   44  idx_chat_messages_created_at_ms on chat_messages  (built when backfill chat_messages.created_at_ms is done)"
        )
        const deferred = await strata(["status", "--db", url])
        expect(deferred.stdout).toMatch(/idx_chat_messages_created_at_ms +chat_messages +44 +after backfill chat_messages\.created_at_ms/)

        await execute(url, "UPDATE strata_migrations SET checksum = '0000000000000000' WHERE id = 44")
        const status = await strata(["status", "--db", url])
        expect(status.code, show(status)).toBe(0)
        expect(status.stdout).toMatch(/44 {2}epoch ms timestamps +DRIFTED /)
        expect(status.stdout).toContain(
          `DRIFTED: migration 44 "epoch ms timestamps" was changed after it was applied (stored checksum 0000000000000000, plan checksum ${checksum44})`
        )
        const statusJson = json(await strata(["status", "--db", url, "--json"]))
        expect(statusJson.migrations[1]).toMatchObject({ id: 44, state: "drifted", stored: "0000000000000000", expected: checksum44 })

        const blocked = await strata(["migrate", "--db", url])
        expect(blocked.code, show(blocked)).toBe(1)
        expect(blocked.stdout).toBe("")
        expect(blocked.stderr.trim()).toBe(
          `strata: Migration 44 "epoch ms timestamps" of plan agentos changed after it was applied (stored checksum 0000000000000000, plan checksum ${checksum44}); restore the applied steps and put changes in a new migration`
        )
      })

      it("baseline records without running", async () => {
        const url = await newDatabase(engine.name)
        await seedLegacy(url, 10)
        const result = await strata(["migrate", "--db", url, "--baseline", "21"])
        expect(result.code, show(result)).toBe(0)
        expect(result.stdout).toContain("Recorded as applied without running: 21.")
        expect(await query(url, "SELECT id, duration_ms FROM strata_migrations ORDER BY id")).toEqual([{ id: 21, duration_ms: null }])
        expect(await columnsOf(url, engine.name, "task_audits")).toEqual(["audit_id", "task_id", "level", "event_type", "payload", "created_at"])
        const combined = await strata(["migrate", "--db", url, "--baseline", "21", "--dry-run"])
        expect(combined.code, show(combined)).toBe(2)
        expect(combined.stderr.trim()).toBe("strata: --baseline cannot be combined with --to or --dry-run")
      })
    })
  }
})

describe("strata migrate --dry-run on a SQLite file that does not exist", () => {
  it("plans against an empty database and creates nothing", async () => {
    const url = await newDatabase("sqlite")
    const result = await strata(["migrate", "--db", url, "--dry-run", "--plan", "chat-store"])
    expect(result.code, show(result)).toBe(0)
    expect(result.stdout).toContain(`-- Dry run: plan chat-store on ${url} (does not exist yet) (sqlite); nothing is changed.`)
    expect(result.stdout).toContain("CREATE TABLE IF NOT EXISTS \"sessions\"")
    expect(Fs.existsSync(url)).toBe(false)
  })
})
