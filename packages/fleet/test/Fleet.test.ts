import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
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

/** Six tenants; the third has no messages table, so its migration fails. */
const withBrokenTenant = (directory: string) =>
  Effect.gen(function*() {
    const file = yield* makeTenants(directory, 6, 20)
    const broken = Path.join(directory, "tenants", "t002.db")
    yield* Effect.promise(() => onDatabase(broken, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE messages`)))
    return { file, targets: yield* Targets.load(file), ledger: Ledger.defaultLocation(file) }
  })

describe("Fleet failures", () => {
  it.scoped("continues past a failing target by default, records it, and a rerun retries only it", () =>
    Effect.gen(function*() {
      const { file, ledger, targets } = yield* withBrokenTenant(yield* tempDirectory)
      const summary = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 2 }))
      expect(summary.targets.map((t) => t.state)).toEqual(["done", "done", "failed", "done", "done", "done"])
      expect([summary.done, summary.failed, summary.skipped, summary.stoppedBy]).toEqual([5, 1, 0, undefined])
      expect(summary.targets[2]!.reason).toBe(
        `Plan fleet-tenants cannot apply to this database, nothing was changed: migration 1 "message times in epoch ms": table messages does not exist (the epochShadow step on messages.created_at) and no earlier migration creates it (and 1 more)`
      )
      const rerun = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 2 }))
      expect(rerun.resumed).toBe(true)
      expect(rerun.targets.map((t) => [t.state, t.fromEarlierInvocation])).toEqual([
        ["done", true], ["done", true], ["failed", false], ["done", true], ["done", true], ["done", true]
      ])
      const status = yield* withFleet(ledger, Fleet.status({ targets }))
      expect(status.targets.map((t) => t.state)).toEqual(["ok", "ok", "failed", "ok", "ok", "ok"])
      expect(status.targets[2]!.pending).toEqual([1, 2])
    }))

  it.scoped("stops the rollout when a canary target fails", () =>
    Effect.gen(function*() {
      const { file, ledger, targets } = yield* withBrokenTenant(yield* tempDirectory)
      const summary = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 4, canary: 3 }))
      expect(summary.targets.map((t) => t.state)).toEqual(["done", "done", "failed", "skipped", "skipped", "skipped"])
      expect(summary.stoppedBy).toBe("canary")
      expect(summary.targets[3]!.reason).toBe(`not started: canary target ${targets[2]!.display} failed`)
      // The skipped targets were never opened: nothing was applied there.
      const untouched = yield* Effect.promise(() =>
        onDatabase(targets[4]!.id, Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT name FROM sqlite_master WHERE name = 'strata_migrations'`)))
      expect(untouched).toEqual([])
    }))

  it.scoped("with --fail-fast starts no target after the first failure (the canary before it passed)", () =>
    Effect.gen(function*() {
      const { file, ledger, targets } = yield* withBrokenTenant(yield* tempDirectory)
      const summary = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 1, canary: 2, failFast: true }))
      // --fail-fast: after the third (failing) target nothing more starts.
      expect(summary.targets.map((t) => t.state)).toEqual(["done", "done", "failed", "skipped", "skipped", "skipped"])
      expect(summary.stoppedBy).toBe("failFast")
    }))

  it.scoped("refuses an option out of range, naming it", () =>
    Effect.gen(function*() {
      const { file, ledger, targets } = yield* withBrokenTenant(yield* tempDirectory)
      const error = yield* withFleet(ledger, Fleet.migrate({ targets, targetsFile: file, concurrency: 0 })).pipe(Effect.flip)
      expect(error.message).toBe("invalid fleet option concurrency: must be a positive integer, got 0")
      const backfill = yield* withFleet(ledger, Fleet.backfill({ targets, targetsFile: file, backfill: { batchSize: 0 } })).pipe(Effect.flip)
      expect(backfill._tag).toBe("InvalidBackfillOptions")
    }))
})

describe("Targets", () => {
  const message = (text: string) => {
    const parsed = Targets.parse(text, { file: "t.txt", baseDir: "/nonexistent-dir" })
    return Either.isLeft(parsed) ? parsed.left.message : parsed.right
  }
  it("reads PostgreSQL URLs and schemas, comments and JSON lists", () => {
    expect(message("postgres://u:secret@h:5432/app#tenant_7   # a schema\npostgresql://h/app\n")).toEqual([
      { _tag: "Pg", id: "postgres://u:***@h:5432/app#tenant_7", url: "postgres://u:secret@h:5432/app", schema: "tenant_7", display: "postgres://u:***@h:5432/app#tenant_7" },
      { _tag: "Pg", id: "postgresql://h/app", url: "postgresql://h/app", schema: undefined, display: "postgresql://h/app" }
    ])
    expect(message(`["postgres://h/app#a"]`)).toEqual([
      { _tag: "Pg", id: "postgres://h/app#a", url: "postgres://h/app", schema: "a", display: "postgres://h/app#a" }
    ])
  })
  it("refuses a bad schema, a missing file, an empty glob, a duplicate and an empty file, naming the line", () => {
    expect(message("postgres://h/app#7x")).toBe(`t.txt:1: schema "7x" after # is not a SQL identifier (letters, digits and _, not starting with a digit): postgres://h/app#7x`)
    expect(message("\nmissing.db")).toBe("t.txt:2: no such SQLite file (a fleet never creates its tenants' databases): missing.db")
    expect(message("none/*.db")).toBe("t.txt:1: the glob matches no file: none/*.db")
    expect(message("postgres://h/a#s\npostgres://h/a#s")).toBe("t.txt:2: postgres://h/a#s is already listed on line 1: postgres://h/a#s")
    expect(message("# nothing\n")).toBe("targets file t.txt lists no database")
    expect(message(`[1]`)).toBe("t.txt:1: expected a non-empty string: 1")
  })

  it("names the bad line", () => {
    const parsed = Targets.parse("# c\n\nmysql://x/y\n", { file: "t.txt", baseDir: "/" })
    expect(Either.isLeft(parsed) && parsed.left.message).toBe(
      `t.txt:3: unsupported scheme "mysql:"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…): mysql://x/y`
    )
  })
})
