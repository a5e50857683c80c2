/**
 * `strata validate` as a CI gate, and the preflight through `strata migrate` (with and without
 * --dry-run) on SQLite and PostgreSQL: exit 1 on pending migrations, drift and steps that cannot
 * apply, each named; nothing changes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Plan, Plans } from "@strata/core"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempDirectory, tempSqliteFile } from "../../../test/support/databases.js"
import { execute, query, seedLegacy } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const inScope = <A>(effect: Effect.Effect<A, never, Scope.Scope>): Promise<A> => Effect.runPromise(Scope.extend(effect, scope))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  inScope(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url))

/** The agentos plan and a migration 50 whose shadow names a column that does not exist. */
const typoPlanFile = async (): Promise<string> => {
  const directory = await inScope(tempDirectory)
  const plan = Plan.make("agentos", [
    ...Plans.agentos.migrations,
    Plan.migration(50, "message edits", [Plan.epochShadow("chat_messages", "edited_at")])
  ])
  const file = Path.join(directory, "typo.json")
  Fs.writeFileSync(file, JSON.stringify(Plan.toJson(plan)))
  return file
}

describe.concurrent("strata validate", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("pending, a step that cannot apply, valid, drifted", async () => {
        const url = await newDatabase(engine.name)
        await seedLegacy(url, 20)
        const typo = await typoPlanFile()

        const fresh = await strata(["validate", "--db", url])
        expect(fresh.code, show(fresh)).toBe(1)
        expect(fresh.stdout.trim().split("\n")).toEqual([
          `Plan agentos on ${url}`,
          `  pending  migration 21 "audit decision fields"`,
          `  pending  migration 44 "epoch ms timestamps"`,
          "Not valid: 2 migrations pending; 'strata migrate' applies them."
        ])
        expect(fresh.stderr.trim()).toBe("strata: Plan agentos is not valid on this database (pending: 21, 44)")

        const problem =
          `migration 50 "message edits": chat_messages.edited_at does not exist (the timestamp source column)`
        const badDry = await strata(["migrate", "--db", url, "--plan", typo, "--dry-run"])
        expect(badDry.code, show(badDry)).toBe(1)
        expect(badDry.stderr.trim()).toBe(`strata: Plan agentos cannot apply to this database, nothing was changed: ${problem}`)
        const bad = await strata(["migrate", "--db", url, "--plan", typo])
        expect(bad.code, show(bad)).toBe(1)
        expect(bad.stderr.trim()).toBe(`strata: Plan agentos cannot apply to this database, nothing was changed: ${problem}`)
        // Not even migrations 21 and 44, which could apply: the preflight runs before anything.
        const tables = engine.name === "sqlite"
          ? "SELECT count(*) AS n FROM sqlite_master WHERE name = 'strata_migrations'"
          : "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'strata_migrations'"
        expect(await query(url, tables)).toEqual([{ n: 0 }])
        const badValidate = await strata(["validate", "--db", url, "--plan", typo])
        expect(badValidate.code, show(badValidate)).toBe(1)
        expect(badValidate.stdout).toContain(`  cannot apply  ${problem}\n`)
        expect(badValidate.stdout).toContain("Not valid: 1 problem would stop 'strata migrate'.")
        expect(badValidate.stderr.trim()).toBe(
          `strata: Plan agentos is not valid on this database (pending: 21, 44, 50; 1 step problem, first: ${problem})`
        )

        const migrated = await strata(["migrate", "--db", url])
        expect(migrated.code, show(migrated)).toBe(0)
        const valid = await strata(["validate", "--db", url])
        expect(valid.code, show(valid)).toBe(0)
        expect(valid.stdout.trim().split("\n")).toEqual([
          `Plan agentos on ${url}`,
          "Valid: all 2 migrations applied as the plan has them."
        ])

        // A backfill killed after its job was done and before the job's index was built: not valid
        // (the plan's index is not there) until the next migrate builds it.
        const backfilled = await strata(["backfill", "--db", url])
        expect(backfilled.code, show(backfilled)).toBe(0)
        await execute(url, "DROP INDEX idx_chat_messages_created_at_ms")
        await execute(url, "UPDATE strata_indexes SET state = 'deferred' WHERE index_name = 'idx_chat_messages_created_at_ms'")
        const unbuilt = await strata(["validate", "--db", url])
        expect(unbuilt.code, show(unbuilt)).toBe(1)
        const build = engine.name === "pg" ? "CREATE INDEX CONCURRENTLY IF NOT EXISTS" : "CREATE INDEX IF NOT EXISTS"
        expect(unbuilt.stdout.trim().split("\n")).toEqual([
          `Plan agentos on ${url}`,
          `  unfinished  migration 44 "epoch ms timestamps": ${build} "idx_chat_messages_created_at_ms" ON "chat_messages" ("created_at_ms" DESC) (its backfill chat_messages.created_at_ms is done)`,
          "Not valid: 1 applied migration has work left; 'strata migrate' finishes it."
        ])
        expect(unbuilt.stderr.trim()).toBe(
          "strata: Plan agentos is not valid on this database (unfinished (index builds or constraint validations 'strata migrate' does first): 44)"
        )
        const unbuiltJson = json(await strata(["validate", "--db", url, "--json"]), "validate")
        expect([unbuiltJson.ok, unbuiltJson.unfinished]).toEqual([false, [{
          id: 44,
          name: "epoch ms timestamps",
          statements: [{
            sql: `${build} "idx_chat_messages_created_at_ms" ON "chat_messages" ("created_at_ms" DESC)`,
            phase: "afterJob",
            afterJob: "chat_messages.created_at_ms"
          }]
        }]])
        const finished = await strata(["migrate", "--db", url])
        expect(finished.code, show(finished)).toBe(0)
        const validAgain = await strata(["validate", "--db", url])
        expect([validAgain.code, validAgain.stdout.trim().split("\n").at(-1)]).toEqual([0, "Valid: all 2 migrations applied as the plan has them."])

        await execute(url, "UPDATE strata_migrations SET checksum = '0000000000000000' WHERE id = 21")
        const drifted = await strata(["validate", "--db", url, "--json"])
        expect(drifted.code, show(drifted)).toBe(1)
        const report = json(drifted, "validate")
        expect(report.ok).toBe(false)
        expect(report.migrations.map((m: { id: number; state: string }) => [m.id, m.state])).toEqual([
          [21, "drifted"],
          [44, "applied"]
        ])
        expect(report.refusal).toMatchObject({ _tag: "MigrationDrifted", id: 21, stored: "0000000000000000" })
        expect(report.problems).toEqual([])
        expect(JSON.parse(drifted.stderr)).toMatchObject({ error: "ValidationFailed", drifted: [21], pending: [] })
      })
    })
  }
})
