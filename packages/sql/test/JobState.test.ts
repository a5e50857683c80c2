import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import * as JobState from "../src/JobState.js"
import { describeEachEngine, pgTestUrlWithSchema, startedTogether } from "../../../test/support/databases.js"

describeEachEngine("jobState", (engine) => {
  layer(engine.layer())((it) => {
    it.effect("saves, reloads, records rejects once and resets", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* JobState.ensureTables
        yield* JobState.ensureTables
        expect(Option.isNone(yield* JobState.loadCheckpoint("a.b"))).toBe(true)

        yield* TestClock.adjust(1000)
        yield* sql.withTransaction(JobState.saveCheckpoint("a.b", { cursor: "i:10", processed: 10, updated: 7, rejected: 1, alreadySet: 1, outOfScope: 1, state: "running" }))
        yield* TestClock.adjust(500)
        yield* JobState.saveCheckpoint("a.b", { cursor: "i:20", processed: 20, updated: 15, rejected: 2, alreadySet: 2, outOfScope: 1, state: "done" })
        expect(yield* JobState.loadCheckpoint("a.b")).toEqual(Option.some({
          job: "a.b",
          cursor: "i:20",
          processed: 20,
          updated: 15,
          rejected: 2,
          alreadySet: 2,
          outOfScope: 1,
          skipped: [],
          state: "done",
          startedAtMs: 1000,
          updatedAtMs: 1500
        }))
        // Ranges stepped over round-trip, and a save that gives none keeps them.
        const skipped = [{ from: null, to: "i:3" }, { from: "i:7", to: "i:8" }]
        yield* JobState.saveCheckpoint("a.b", { cursor: "i:20", processed: 20, updated: 15, rejected: 2, alreadySet: 2, outOfScope: 1, state: "running", skipped })
        yield* JobState.saveCheckpoint("a.b", { cursor: "i:21", processed: 21, updated: 16, rejected: 2, alreadySet: 2, outOfScope: 1, state: "running" })
        expect(Option.map(yield* JobState.loadCheckpoint("a.b"), (c) => [c.cursor, c.skipped])).toEqual(Option.some(["i:21", skipped]))
        yield* JobState.saveCheckpoint("a.b", { cursor: "i:20", processed: 20, updated: 15, rejected: 2, alreadySet: 2, outOfScope: 1, state: "done", skipped: [] })
        yield* JobState.setState("a.b", "paused")
        expect(Option.map(yield* JobState.loadCheckpoint("a.b"), (c) => c.state)).toEqual(Option.some("paused"))

        expect(yield* JobState.recordRejects("a.b", [{ rowKey: "1", reason: "bad" }, { rowKey: "2", reason: "worse" }], 1500)).toBe(2)
        expect(yield* JobState.recordRejects("a.b", [{ rowKey: "2", reason: "again" }, { rowKey: "3", reason: "new" }], 2000)).toBe(1)
        expect(yield* JobState.recordRejects("a.b", [], 2000)).toBe(0)
        const many = Array.from({ length: 1203 }, (_, i) => ({ rowKey: `m${i}`, reason: "r" }))
        expect(yield* JobState.recordRejects("other", many, 1)).toBe(1203)
        expect(yield* JobState.rejectCount("a.b")).toBe(3)
        expect(yield* JobState.loadRejects("a.b", 2)).toEqual([
          { job: "a.b", rowKey: "1", reason: "bad", atMs: 1500 },
          { job: "a.b", rowKey: "2", reason: "worse", atMs: 1500 }
        ])

        yield* JobState.resetJob("a.b")
        expect(Option.isNone(yield* JobState.loadCheckpoint("a.b"))).toBe(true)
        expect(yield* JobState.rejectCount("a.b")).toBe(0)
        expect(yield* JobState.rejectCount("other")).toBe(1203)
        expect((yield* JobState.loadCheckpoints).map((c) => c.job)).toEqual([])
      }))

    it.effect("upgrades a strata_jobs of an earlier version in place: the new counters are added, the rows kept", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP TABLE IF EXISTS strata_jobs`)
        yield* sql.unsafe(`CREATE TABLE strata_jobs (
          job TEXT PRIMARY KEY, cursor TEXT,
          processed BIGINT NOT NULL DEFAULT 0, updated BIGINT NOT NULL DEFAULT 0, rejected BIGINT NOT NULL DEFAULT 0,
          state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done')),
          started_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL)`)
        yield* sql.unsafe(`INSERT INTO strata_jobs VALUES ('old.job', 'i:5', 10, 6, 1, 'done', 100, 200)`)
        yield* JobState.ensureTables
        yield* JobState.ensureTables
        const old = Option.getOrThrow(yield* JobState.loadCheckpoint("old.job"))
        expect(old).toEqual({
          job: "old.job",
          cursor: "i:5",
          processed: 10,
          updated: 6,
          rejected: 1,
          alreadySet: 0,
          outOfScope: 0,
          skipped: [],
          state: "done",
          startedAtMs: 100,
          updatedAtMs: 200
        })
        // An earlier version did not count the 3 rows it walked past: these counts do not reconcile.
        expect(JobState.reconciles(old)).toBe(false)
        yield* JobState.saveCheckpoint("new.job", { cursor: null, processed: 3, updated: 1, rejected: 0, alreadySet: 1, outOfScope: 1, state: "running" })
        expect(Option.map(yield* JobState.loadCheckpoint("new.job"), JobState.reconciles)).toEqual(Option.some(true))
      }))

    it.effect("startJob and claimCheckpoint create a checkpoint once and never reset one another runner advanced", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* JobState.ensureTables
        yield* JobState.startJob("claimed.job")
        expect(Option.map(yield* JobState.loadCheckpoint("claimed.job"), (c) => [c.cursor, c.processed, c.state])).toEqual(Option.some([null, 0, "running"]))
        yield* sql.withTransaction(Effect.gen(function*() {
          const claimed = yield* JobState.claimCheckpoint("claimed.job")
          yield* JobState.saveCheckpoint("claimed.job", { ...claimed, cursor: "i:3", processed: 3, updated: 3 })
        }))
        yield* JobState.startJob("claimed.job")
        const claimed = yield* sql.withTransaction(JobState.claimCheckpoint("claimed.job"))
        expect([claimed.cursor, claimed.processed, claimed.updated, claimed.state]).toEqual(["i:3", 3, 3, "running"])
        const fresh = yield* sql.withTransaction(JobState.claimCheckpoint("new.claimed.job"))
        expect([fresh.cursor, fresh.processed, fresh.alreadySet, fresh.outOfScope, fresh.state]).toEqual([null, 0, 0, 0, "running"])
      }))

    it.effect("claimCheckpoint applies PostgreSQL settings to the claiming transaction only; on SQLite it refuses them", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* JobState.ensureTables
        const claim = (job: string) => JobState.claimCheckpoint(job, { lock_timeout: "123ms", synchronous_commit: "off" })
        if (engine.name === "sqlite") {
          const refused = yield* Effect.flip(sql.withTransaction(claim("settings.job")))
          expect(refused).toEqual(new JobState.InvalidClaimSettings({ settings: ["lock_timeout", "synchronous_commit"] }))
          return
        }
        const setting = (name: string) =>
          Effect.map(sql.unsafe<{ value: string }>(`SELECT current_setting($1) AS value`, [name]), (rows) => rows[0]!.value)
        const before = [yield* setting("lock_timeout"), yield* setting("synchronous_commit")]
        // Both the first claim (no row yet: created, then locked) and a later one apply them.
        for (const round of [1, 2]) {
          const inside = yield* sql.withTransaction(Effect.gen(function*() {
            const claimed = yield* claim("settings.job")
            return [claimed.job, claimed.state, yield* setting("lock_timeout"), yield* setting("synchronous_commit")]
          }))
          expect([round, ...inside]).toEqual([round, "settings.job", "running", "123ms", "off"])
        }
        expect([yield* setting("lock_timeout"), yield* setting("synchronous_commit")]).toEqual(before)
      }))

    it.effect("pgClaimText claims with its values inline, sent with BEGIN, whatever standard_conforming_strings says", () =>
      Effect.gen(function*() {
        if (engine.name === "sqlite") return
        const sql = yield* SqlClient.SqlClient
        yield* JobState.ensureTables
        // Quotes and backslashes: with standard_conforming_strings off, a backslash in '...' escapes.
        const job = "it's a \\ job\\"
        yield* JobState.startJob(job)
        yield* sql.withTransaction(JobState.saveCheckpoint(job, { cursor: "t:o'k\\", processed: 3, updated: 3, rejected: 0, alreadySet: 0, outOfScope: 0, state: "running" }))
        const text = yield* JobState.pgClaimText(job, { lock_timeout: "123ms", application_name: "strata \\ 'claim'" })
        for (const conforming of ["on", "off"]) {
          const claimed = yield* Effect.scoped(Effect.gen(function*() {
            const conn = yield* sql.reserve
            yield* conn.executeUnprepared(`SET standard_conforming_strings = ${conforming}`, [], undefined)
            const results = (yield* conn.executeUnprepared(`BEGIN; ${text}; SELECT current_setting('lock_timeout') AS lt, current_setting('application_name') AS app`, [], undefined)) as unknown as ReadonlyArray<ReadonlyArray<any>>
            yield* conn.executeUnprepared("ROLLBACK", [], undefined)
            yield* conn.executeUnprepared("RESET standard_conforming_strings", [], undefined)
            return [Option.map(JobState.claimedCheckpoint(results[1]!), (c) => [c.job, c.cursor, c.processed]), results[2]![0]]
          }))
          expect([conforming, ...claimed]).toEqual([conforming, Option.some([job, "t:o'k\\", 3]), { lt: "123ms", app: "strata \\ 'claim'" }])
        }
        // No row: nothing claimed (claimCheckpoint creates one).
        const none = yield* Effect.scoped(Effect.gen(function*() {
          const conn = yield* sql.reserve
          const results = (yield* conn.executeUnprepared(`BEGIN; ${yield* JobState.pgClaimText("no.such.job")}`, [], undefined)) as unknown as ReadonlyArray<ReadonlyArray<any>>
          yield* conn.executeUnprepared("ROLLBACK", [], undefined)
          return JobState.claimedCheckpoint(results[1]!)
        }))
        expect(Option.isNone(none)).toBe(true)
      }))

    it.effect("a rolled-back transaction leaves no checkpoint", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* JobState.ensureTables
        const exit = yield* sql.withTransaction(
          Effect.zipRight(
            JobState.saveCheckpoint("rolled.back", { cursor: null, processed: 1, updated: 1, rejected: 0, alreadySet: 0, outOfScope: 0, state: "running" }),
            Effect.fail("boom" as const)
          )
        ).pipe(Effect.exit)
        expect(exit._tag).toBe("Failure")
        expect(Option.isNone(yield* JobState.loadCheckpoint("rolled.back"))).toBe(true)
      }))
  })
})

describe("key cursors", () => {
  it.effect("round-trip with their type", () =>
      Effect.sync(() => {
        expect(JobState.encodeKeyCursor(42)).toBe("i:42")
        expect(JobState.encodeKeyCursor(-7)).toBe("i:-7")
        expect(JobState.encodeKeyCursor("42")).toBe("t:42")
        expect(JobState.encodeKeyCursor(2n ** 62n)).toBe("i:4611686018427387904")
        expect(JobState.decodeKeyCursor("i:42")).toBe(42)
        expect(JobState.decodeKeyCursor("t:42")).toBe("42")
        expect(JobState.decodeKeyCursor("t:")).toBe("")
        expect(JobState.decodeKeyCursor("i:4611686018427387904")).toBe(2n ** 62n)
        expect(JobState.decodeKeyCursor("x:1")).toBeUndefined()
        expect(JobState.decodeKeyCursor("i:1.5")).toBeUndefined()
      }))
})

describe("jobState tables on PostgreSQL", () => {
  // Backfills started together (a fleet's workers, a deploy's replicas) create strata's tables together; without
  // Database.createInTurn one of them fails on pg_type's unique index in the first round of most runs.
  it.scoped("ensureTables in 8 processes started together, 5 rounds in fresh schemas: every one succeeds", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 5; round++) {
        const { url } = yield* pgTestUrlWithSchema()
        const outcomes = yield* startedTogether(url, 8, JobState.ensureTables)
        expect({ round, outcomes }).toEqual({ round, outcomes: Array.from({ length: 8 }, () => "ok") })
      }
    }), 120_000)
})
