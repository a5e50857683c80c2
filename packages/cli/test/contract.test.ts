/**
 * `strata migrate` and a contract migration, from a JSON plan on SQLite and PostgreSQL: refused
 * (exit 1, the unverified job named, nothing applied) until `strata verify` has passed after the
 * backfill; then applied.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { execute, query } from "./support/legacy.js"
import { show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-cli-contract-"))
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  Fs.rmSync(dir, { recursive: true, force: true })
})
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope))

const plan = Path.join(dir, "events.json")
Fs.writeFileSync(plan, JSON.stringify({
  name: "events",
  migrations: [
    {
      id: 1,
      name: "events",
      steps: [{ _tag: "CreateTable", table: "events", columns: [{ name: "id", type: "integer", primaryKey: true }, { name: "created_at", type: "timestamp_text" }] }]
    },
    { id: 2, name: "epoch ms", steps: [{ _tag: "EpochShadow", table: "events", column: "created_at", sync: "trigger" }] },
    { id: 3, name: "contract", steps: [{ _tag: "Contract", jobs: ["events.created_at_ms"], dropSyncTrigger: true, notNull: true }] }
  ]
}))

describe.concurrent("strata migrate, contract", () => {
  for (const engine of engines) {
    it(`[${engine.name}] refused until verify passes, then applied`, async () => {
      const url = await newDatabase(engine.name)
      const to2 = await strata(["migrate", "--db", url, "--plan", plan, "--to", "2"])
      expect(to2.code, show(to2)).toBe(0)
      await execute(url, "INSERT INTO events (id, created_at) VALUES (1, '2024-01-15 12:00:00'), (2, '2024-01-15T12:00:00+01:00')")

      const refused = await strata(["migrate", "--db", url, "--plan", plan])
      expect(refused.code, show(refused)).toBe(1)
      expect(refused.stderr).toContain(
        `strata: Migration 3 "contract" of plan events is a contract and was not applied, nothing was changed: events.created_at_ms was never verified`
      )
      const refusedJson = await strata(["migrate", "--db", url, "--plan", plan, "--json"])
      expect(refusedJson.code).toBe(1)
      expect(JSON.parse(refusedJson.stderr.trim().split("\n").at(-1)!)).toMatchObject({ error: "ContractUnverified" })
      const dry = await strata(["migrate", "--db", url, "--plan", plan, "--dry-run"])
      expect(dry.code, show(dry)).toBe(1)
      expect(dry.stderr).toContain("events.created_at_ms was never verified")
      expect((await query<{ id: number }>(url, "SELECT id FROM strata_migrations ORDER BY id")).map((r) => Number(r.id))).toEqual([1, 2])

      // The trigger converted row 1; row 2's offset is the backfill's. A verify before it fails and keeps the gate shut.
      const early = await strata(["verify", "--db", url, "--plan", plan])
      expect(early.code, show(early)).toBe(1)
      const afterFailed = await strata(["migrate", "--db", url, "--plan", plan])
      expect(afterFailed.code).toBe(1)
      expect(afterFailed.stderr).toContain("events.created_at_ms failed its latest verification (events.created_at_ms missing)")

      expect((await strata(["backfill", "--db", url, "--plan", plan])).code).toBe(0)
      const verified = await strata(["verify", "--db", url, "--plan", plan])
      expect(verified.code, show(verified)).toBe(0)
      const planned = await strata(["migrate", "--db", url, "--plan", plan, "--dry-run"])
      expect(planned.code, show(planned)).toBe(0)
      const validatePhase = "-- after the transaction commits, each in a transaction of its own (the app keeps reading and writing meanwhile):"
      if (engine.name === "pg") {
        // PostgreSQL: the NOT NULL goes in as a NOT VALID CHECK, validated once the migration has committed.
        expect(planned.stdout).toMatch(/CHECK \("created_at_ms" IS NOT NULL\) NOT VALID;/)
        expect(planned.stdout.indexOf(validatePhase)).toBeGreaterThan(planned.stdout.indexOf("NOT VALID;"))
        expect(planned.stdout.slice(planned.stdout.indexOf(validatePhase))).toMatch(/VALIDATE CONSTRAINT .*\n.*SET NOT NULL/s)
      } else {
        expect(planned.stdout).not.toContain(validatePhase)
      }
      const applied = await strata(["migrate", "--db", url, "--plan", plan])
      expect(applied.code, show(applied)).toBe(0)
      if (engine.name === "pg") {
        expect(applied.stdout).toMatch(
          /validated +3 {2}\S+ on events\.created_at_ms {2}\(validated in \d+ ms: reads and writes to the table went on, SET NOT NULL held the table \d+ ms\)/
        )
      } else {
        expect(applied.stdout).not.toContain("validated")
      }
      expect((await query<{ id: number }>(url, "SELECT id FROM strata_migrations ORDER BY id")).map((r) => Number(r.id))).toEqual([1, 2, 3])
    }, 300_000)
  }

  it("[pg] a NOT NULL the rows refused: the dry run shows the validation the next migrate does first; fixed, migrate finishes it", async () => {
    const url = await newDatabase("pg")
    expect((await strata(["migrate", "--db", url, "--plan", plan, "--to", "2"])).code).toBe(0)
    // A row without a source verifies (NULL is its answer) but cannot be NOT NULL.
    await execute(url, "INSERT INTO events (id, created_at) VALUES (1, '2024-01-15 12:00:00'), (2, NULL)")
    expect((await strata(["backfill", "--db", url, "--plan", plan])).code).toBe(0)
    expect((await strata(["verify", "--db", url, "--plan", plan])).code).toBe(0)
    const refused = await strata(["migrate", "--db", url, "--plan", plan])
    expect(refused.code, show(refused)).toBe(1)
    expect(refused.stderr).toContain("does not hold for existing rows")

    const dry = await strata(["migrate", "--db", url, "--plan", plan, "--dry-run"])
    expect(dry.code, show(dry)).toBe(0)
    expect(dry.stdout).toMatch(/-- migration 3 "contract" \(checksum [0-9a-f]+\), applied; an earlier run left this unfinished, done first\n/)
    expect(dry.stdout).toContain(`ALTER TABLE "events" VALIDATE CONSTRAINT "strata_nn_events_created_at_ms";`)
    expect(dry.stdout).toContain(`DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms" ON "events";`)
    expect(dry.stdout).toContain("-- No migration to apply; migrate would finish the work above.")
    const dryJson = JSON.parse((await strata(["migrate", "--db", url, "--plan", plan, "--dry-run", "--json"])).stdout)
    expect([dryJson.pending, dryJson.unfinished.map((m: { id: number; statements: ReadonlyArray<{ phase: string }> }) => [m.id, m.statements[0]!.phase])])
      .toEqual([[], [[3, "validate"]]])

    await execute(url, "DELETE FROM events WHERE id = 2")
    const finished = await strata(["migrate", "--db", url, "--plan", plan])
    expect(finished.code, show(finished)).toBe(0)
    expect(finished.stdout).toMatch(/validated +3 /)
    const after = await strata(["migrate", "--db", url, "--plan", plan, "--dry-run"])
    expect(after.stdout).toContain("-- Nothing to apply.")
    expect(after.stdout).not.toContain("unfinished")
  }, 300_000)
})
