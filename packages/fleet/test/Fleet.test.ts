import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Fleet, Ledger, Targets } from "../src/index.js"
import { fleetPlan, onDatabase, seedMessages, targetState } from "../../../test/fixtures/fleetTenants.js"
import { tempDirectory } from "../../../test/support/databases.js"

const makeTenants = (directory: string, count: number, rows = 120) =>
  Effect.promise(async () => {
    Fs.mkdirSync(Path.join(directory, "tenants"))
    for (let i = 0; i < count; i++) {
      await onDatabase(Path.join(directory, "tenants", `t${String(i).padStart(3, "0")}.db`), seedMessages(rows, i))
    }
    const file = Path.join(directory, "targets.txt")
    Fs.writeFileSync(file, "# every tenant\ntenants/*.db\n")
    return file
  })


const withFleet = <A, E>(ledgerUrl: string, effect: Effect.Effect<A, E, Fleet.Fleet>) =>
  effect.pipe(
    Effect.provide(Fleet.layer(fleetPlan)),
    Effect.provide(Ledger.layer(ledgerUrl)),
    Logger.withMinimumLogLevel(LogLevel.None)
  )

describe("Fleet on SQLite tenants", () => {
  it.scoped("migrates and backfills every tenant, and resumes nothing twice", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      const file = yield* makeTenants(directory, 6)
      const targets = yield* Targets.load(file)
      expect(targets.map((t) => Path.basename(t.display))).toEqual(["t000.db", "t001.db", "t002.db", "t003.db", "t004.db", "t005.db"])
      const ledger = Ledger.defaultLocation(file)
      expect(ledger).toBe(Path.join(directory, "targets.fleet.db"))
      const migrated = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 3 }))
      expect([migrated.done, migrated.failed, migrated.skipped]).toEqual([6, 0, 0])
      expect(migrated.targets.map((t) => t.migrationsApplied)).toEqual([2, 2, 2, 2, 2, 2])
      const again = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 3 }))
      expect(again.resumed).toBe(false)
      expect(again.targets.map((t) => t.migrationsApplied)).toEqual([0, 0, 0, 0, 0, 0])
      const backfilled = yield* withFleet(ledger, Fleet.backfill({ targets, targetsFile: file, concurrency: 2 }))
      expect(backfilled.targets.map((t) => [t.state, t.jobsDone, t.rows, t.rejects])).toEqual(
        Array.from({ length: 6 }, () => ["done", 1, 118, 2])
      )
      const state = yield* Effect.promise(() => onDatabase(targets[0]!.id, targetState))
      expect(state.jobs).toEqual(["messages.created_at_ms:120/118/2/done"])
      const status = yield* withFleet(ledger, Fleet.status({ targets }))
      expect(status.counts).toEqual({ ok: 6, behind: 0, drifted: 0, failed: 0, unreachable: 0 })
    }))
})

describe("Targets", () => {
  it("names the bad line", () => {
    const parsed = Targets.parse("# c\n\nmysql://x/y\n", { file: "t.txt", baseDir: "/" })
    expect(Either.isLeft(parsed) && parsed.left.message).toBe(
      `t.txt:3: unsupported scheme "mysql:"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…): mysql://x/y`
    )
  })
})
