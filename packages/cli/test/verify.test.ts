/**
 * `strata verify` on SQLite and PostgreSQL: implausible timestamps the conversion accepts (1969,
 * 9999-12-31 23:59:59, 0001-01-01) are warnings, exit 0 (issue 17 item 4); `--implausible fail`
 * and a plan's `outside: "fail"` make them fail (exit 1); `--plausible-from/--plausible-to` set
 * the window; a bad time is a usage error (exit 2).
 */
import { describe, expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { BackfillRunner, Migrator } from "@strata/sql"
import { Effect, Exit, Logger, LogLevel, Scope } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempDirectory, tempSqliteFile } from "../../../test/support/databases.js"
import { execute, query, withDatabase } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const inScope = <A>(effect: Effect.Effect<A, never, Scope.Scope>) => Effect.runPromise(Scope.extend(effect, scope))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  inScope(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url))

const planOf = (plausible?: Plan.Plausible) =>
  Plan.make("events", [Plan.migration(1, "times", [Plan.epochShadow("events", "happened_at", plausible === undefined ? {} : { plausible })])])

/** The plan as a JSON file the CLI reads. */
const planFile = async (plan: Plan.Plan): Promise<string> => {
  const directory = await inScope(tempDirectory)
  const file = Path.join(directory, "plan.json")
  Fs.writeFileSync(file, JSON.stringify(Plan.toJson(plan)))
  return file
}

/** The events table with the three sentinel dates and an ordinary one, migrated and backfilled. */
const backfilledEvents = async (engine: "sqlite" | "pg") => {
  const url = await newDatabase(engine)
  await execute(
    url,
    `CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)`,
    `INSERT INTO events (id, happened_at) VALUES (1, '1969-07-20 20:17:00'), (2, '9999-12-31 23:59:59'), (3, '0001-01-01'), (4, '2024-01-15 12:00:00')`
  )
  const plan = planOf()
  await withDatabase(
    url,
    Effect.gen(function*() {
      yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
      yield* BackfillRunner.run().pipe(Effect.provide(BackfillRunner.layer(plan)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  return url
}

describe.concurrent("strata verify: plausibility", () => {
  for (const engine of engines) {
    it(`warnings by default, failures when asked, the window from flags or the plan [${engine.name}]`, async () => {
      const url = await backfilledEvents(engine.name)
      const plain = await planFile(planOf())
      const warned = await strata(["verify", "--db", url, "--plan", plain])
      expect(warned.code, show(warned)).toBe(0)
      expect(warned.stdout).toContain(
        "WARNING events.happened_at_ms range: 3 rows (e.g. 1, 2, 3) outside 1970-01-01 to "
      )
      expect(warned.stdout).toMatch(/^events\.happened_at_ms +warn +4 +0 +0 +0 +0 +0 +3 +0$/m)
      expect(warned.stdout).toContain("All checks passed: 1 column, 4 rows read.")

      const asked = await strata(["verify", "--db", url, "--plan", plain, "--implausible", "fail", "--json"])
      expect(asked.code, show(asked)).toBe(1)
      const report = json(asked, "verify")
      expect(report.passed).toBe(false)
      expect(report.checks.find((c: { kind: string }) => c.kind === "range")).toMatchObject({
        status: "fail",
        count: 3,
        sampleKeys: ["1", "2", "3"],
        range: { minMs: 0, maxMs: report.range.maxMs }
      })

      const wide = await strata(["verify", "--db", url, "--plan", plain, "--implausible", "fail", "--plausible-from", "0001-01-01", "--plausible-to", "9999-12-31 23:59:59"])
      expect(wide.code, show(wide)).toBe(0)
      expect(wide.stdout).not.toContain("WARNING")

      // The plan's own setting (not part of the checksum: the applied migration is not drift).
      const strict = await planFile(planOf({ from: "1900-01-01", outside: "fail" }))
      const planned = await strata(["verify", "--db", url, "--plan", strict])
      expect(planned.code, show(planned)).toBe(1)
      expect(planned.stdout).toContain("FAILED events.happened_at_ms range: 2 rows (e.g. 2, 3) outside 1900-01-01 to ")

      const bad = await strata(["verify", "--db", url, "--plan", plain, "--plausible-from", "yesterday"])
      expect(bad.code, show(bad)).toBe(2)
      expect(bad.stderr).toContain("strata: --plausible-from: ")
    })
  }
})

describe.concurrent("strata verify --repair", () => {
  for (const engine of engines) {
    it(`rewrites shadows an old app version left stale, then verifies again [${engine.name}]`, async () => {
      const url = await backfilledEvents(engine.name)
      const plain = await planFile(planOf())
      // An old app version moves events 2 and 4 an hour on without touching the shadow.
      await execute(url, `UPDATE events SET happened_at = '2024-01-15 13:00:00' WHERE id IN (2, 4)`)
      const stale = await strata(["verify", "--db", url, "--plan", plain])
      expect(stale.code, show(stale)).toBe(1)
      expect(stale.stdout).toContain("FAILED events.happened_at_ms mismatch: 2 rows (e.g. 2, 4)")

      const repaired = await strata(["verify", "--db", url, "--plan", plain, "--repair", "--json"])
      expect(repaired.code, show(repaired)).toBe(0)
      const result = json(repaired, "verify")
      expect(result.passed).toBe(true)
      expect(result.repair).toMatchObject({
        repaired: 2,
        skipped: 0,
        columns: [{ column: "happened_at_ms", mismatched: 2, repaired: 2, skipped: 0, repairedKeys: ["2", "4"], skippedKeys: [] }],
        found: { passed: false }
      })
      const rows = await query<{ id: number; happened_at_ms: number }>(url, "SELECT id, happened_at_ms FROM events ORDER BY id")
      expect(rows.map((r) => Number(r.happened_at_ms))).toEqual([-14182980000, 1705323600000, -62135596800000, 1705323600000])

      const again = await strata(["verify", "--db", url, "--plan", plain, "--repair"])
      expect(again.code, show(again)).toBe(0)
      expect(again.stdout).toContain("Nothing to repair: no mismatched values.")
    })
  }
})
