/**
 * A fleet of 200 SQLite tenants and 3 PostgreSQL schemas, run by the real `strata fleet` process
 * at --concurrency 4 and SIGKILLed twice during `migrate` and twice during `backfill`, then
 * resumed: every target ends exactly as a one-shot run of the same plan on a copy of the same
 * data (migrations and checksums, every row's value, the job counters, the rejects), and no
 * migration was applied twice (each target has one history row per migration, and its ledger row
 * carries the same checksum and the same applied-at time as the target's own history).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Compile } from "@strata/core"
import { Fleet, Ledger, Targets } from "@strata/fleet"
import { Effect, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fleetPlan, onDatabase, seedMessages, targetState, writePlanFile } from "./fixtures/fleetTenants.js"
import { createPgTestSchema, pgTestUrl } from "./support/databases.js"
import { resultOf, run, targetEvents } from "./support/fleetProcesses.js"

const TENANTS = 200
const ROWS = 60

const seedTenants = async (directory: string) => {
  Fs.mkdirSync(Path.join(directory, "tenants"), { recursive: true })
  for (let i = 0; i < TENANTS; i++) {
    const file = Path.join(directory, "tenants", `t${String(i).padStart(3, "0")}.db`)
    await onDatabase(file, seedMessages(ROWS, i))
  }
}

describe("fleet run SIGKILLed and resumed", () => {
  it("ends every target exactly as a one-shot run, and applies no migration twice", async () => {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-fleet-kill-"))
    const schemas = await Promise.all([0, 1, 2, 3, 4, 5].map(() => createPgTestSchema()))
    try {
      const pg = pgTestUrl()
      const killed = Path.join(root, "killed")
      const oneShot = Path.join(root, "one-shot")
      await seedTenants(killed)
      Fs.cpSync(Path.join(killed, "tenants"), Path.join(oneShot, "tenants"), { recursive: true })
      for (const [i, s] of schemas.entries()) await onDatabase(s.url, seedMessages(ROWS, 1000 + (i % 3)))
      const lines = (set: ReadonlyArray<{ schema: string }>) => ["# the tenants", "tenants/*.db", ...set.map((s) => `${pg}#${s.schema}`)].join("\n")
      Fs.writeFileSync(Path.join(killed, "targets.txt"), lines(schemas.slice(0, 3)))
      Fs.writeFileSync(Path.join(oneShot, "targets.txt"), lines(schemas.slice(3)))
      writePlanFile(Path.join(killed, "plan.json"))
      const total = TENANTS + 3

      // The one-shot reference, in process.
      const referenceTargets = await Effect.runPromise(Targets.load(Path.join(oneShot, "targets.txt")))
      await Effect.runPromise(Effect.gen(function*() {
        const options = { targets: referenceTargets, targetsFile: Path.join(oneShot, "targets.txt"), concurrency: 4 }
        expect((yield* Fleet.migrate(options)).done).toBe(total)
        expect((yield* Fleet.backfill(options)).done).toBe(total)
      }).pipe(
        Effect.provide(Fleet.layer(fleetPlan)),
        Effect.provide(Ledger.layer(Path.join(oneShot, "ledger.db"))),
        Logger.withMinimumLogLevel(LogLevel.None)
      ))

      const fleet = (operation: string, killAfter?: number) =>
        run([
          "fleet", operation, "--targets", "targets.txt", "--plan", "plan.json", "--concurrency", "4", "--json",
          // Small batches, so kills land inside targets' backfills too.
          ...(operation === "backfill" ? ["--batch-size", "10"] : [])
        ], {
          cwd: killed,
          ...(killAfter === undefined ? {} : { killWhen: (l) => targetEvents(l).length >= killAfter })
        })

      const invocations: Record<string, Array<Awaited<ReturnType<typeof fleet>>>> = { migrate: [], backfill: [] }
      for (const operation of ["migrate", "backfill"] as const) {
        for (const after of [25, 60]) {
          const killedRun = await fleet(operation, after)
          expect(killedRun.signal, killedRun.stderr).toBe("SIGKILL")
          expect(resultOf(killedRun.lines)).toBeUndefined()
          invocations[operation]!.push(killedRun)
        }
        const resumed = await fleet(operation)
        const notDone = targetEvents(resumed.lines).filter((e) => e["state"] !== "done").map((e) => `${e["target"]}: ${e["reason"]}`)
        expect(notDone, resumed.stderr).toEqual([])
        expect(resumed.code, resumed.stderr).toBe(0)
        invocations[operation]!.push(resumed)
        const result = resultOf(resumed.lines)!
        expect([result["resumed"], result["done"], result["failed"], result["skipped"]]).toEqual([true, total, 0, 0])
        // The resumed invocation did not open again what the killed ones had finished.
        const finishedEarlier = new Set(invocations[operation]!.slice(0, 2).flatMap((i) => targetEvents(i.lines).map((e) => e["target"])))
        expect(finishedEarlier.size).toBeGreaterThanOrEqual(60)
        const reopened = targetEvents(resumed.lines).filter((e) => e["fromEarlierInvocation"] === false && finishedEarlier.has(e["target"]))
        expect(reopened).toEqual([])
      }

      // Every migration reported applied at most once across the invocations (a kill can hide a report, never add one).
      const appliedReports = invocations["migrate"]!.flatMap((i) => targetEvents(i.lines)).filter((e) => e["fromEarlierInvocation"] === false)
        .reduce((n, e) => n + Number(e["migrationsApplied"]), 0)
      expect(appliedReports).toBeLessThanOrEqual(total * 2)

      const targets = await Effect.runPromise(Targets.load(Path.join(killed, "targets.txt")))
      const urlOf = (t: Targets.Target, set: typeof schemas) =>
        t._tag === "Sqlite" ? t.file : set.find((s) => s.schema === t.schema)!.url
      const checksums = fleetPlan.migrations.map((m) => `${m.id}:${Compile.checksum(m)}`)
      const ledgerRows = await onDatabase(Path.join(killed, "targets.fleet.db"), Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ target: string; migration_id: number; checksum: string; applied_at_ms: number }>`
          SELECT target, migration_id, checksum, applied_at_ms FROM strata_fleet_migrations ORDER BY target, migration_id`))
      expect(ledgerRows.length).toBe(total * 2)
      for (const [i, target] of targets.entries()) {
        const state = await onDatabase(urlOf(target, schemas), targetState)
        const reference = referenceTargets[i]!
        const expected = await onDatabase(urlOf(reference, schemas), targetState)
        expect(state, target.display).toEqual(expected)
        expect(state.migrations).toEqual(checksums)
        expect(state.jobs).toEqual([`messages.created_at_ms:${ROWS}/${ROWS - 1}/1/done`])
        const history = await onDatabase(urlOf(target, schemas), Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ id: number; checksum: string; applied_at_ms: number }>`SELECT id, checksum, applied_at_ms FROM strata_migrations ORDER BY id`))
        const recorded = ledgerRows.filter((r) => r.target === target.id)
        expect(recorded.map((r) => [Number(r.migration_id), r.checksum, Number(r.applied_at_ms)]), target.display).toEqual(
          history.map((h) => [Number(h.id), h.checksum, Number(h.applied_at_ms)])
        )
      }
    } finally {
      for (const s of schemas) await s.drop()
      Fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
