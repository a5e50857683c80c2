import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plans, type Timestamp } from "@strata/core"
import { Effect, Layer, TestClock } from "effect"
import { createLegacyTables, insertFixture, insertGenerated, NOON, presetTargets } from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, Migrator, Verifier } from "../src/index.js"

const applyPlan = Effect.flatMap(Migrator.make(Plans.agentos), (migrator) => migrator.run())

const fixtureDatabase = Effect.gen(function*() {
  yield* createLegacyTables
  yield* insertFixture
  yield* applyPlan
  yield* presetTargets
})

/** 2026-01-01T00:00:00Z: the default range then ends 2027-01-01T00:00:00Z. */
const NOW = 1767225600000
const YEAR_AFTER = 1798761600000

const pick = (report: Verifier.VerificationReport, name: string) => {
  const check = report.checks.find((c) => c.name === name)
  if (check === undefined) throw new Error(`no check ${name}`)
  return { status: check.status, count: check.count, total: check.total, sampleKeys: check.sampleKeys }
}

describeEachEngine("Verifier", (engine) => {
  const database = () =>
    Layer.mergeAll(BackfillRunner.layer(Plans.agentos), Verifier.layer(Plans.agentos)).pipe(Layer.provideMerge(engine.layer()))

  it.effect("after the backfill: exact counts and sample keys per check, failing on the mismatches it finds, warning on the range", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      yield* fixtureDatabase
      yield* (yield* BackfillRunner.BackfillRunner).run()
      const report = yield* Verifier.report()
      expect(report.range).toEqual({ min: 0, max: YEAR_AFTER })
      expect(report.checkedAtMs).toBe(NOW)
      expect(report.checks).toHaveLength(117)
      expect(report.passed).toBe(false)
      // Issue 17: m15's 1969 value is what the conversion gives; out of the plausible window it warns, it does not fail.
      expect(Verifier.failures(report).map((c) => `${c.name} ${c.count} ${c.sampleKeys.join(",")}`)).toEqual([
        "task_audits.source_event_ts mismatch 1 18",
        "chat_messages.created_at_ms mismatch 1 m16"
      ])
      expect(pick(report, "chat_messages.created_at_ms range")).toEqual({ status: "warn", count: 1, total: 17, sampleKeys: ["m15"] })
      expect(report.checks.find((c) => c.name === "chat_messages.created_at_ms range")!.range).toEqual({ min: 0, max: YEAR_AFTER })
      expect(pick(report, "chat_messages.created_at_ms mismatch")).toEqual({ status: "fail", count: 1, total: 16, sampleKeys: ["m16"] })
      expect(pick(report, "chat_messages.created_at_ms missing")).toEqual({ status: "pass", count: 0, total: 16, sampleKeys: [] })
      expect(pick(report, "chat_messages.created_at_ms orphan")).toEqual({ status: "pass", count: 0, total: 17, sampleKeys: [] })
      expect(pick(report, "chat_messages.created_at_ms coverage")).toEqual({ status: "info", count: 16, total: 16, sampleKeys: [] })
      expect(pick(report, "chat_messages.created_at unconvertible")).toEqual({
        status: "info",
        count: 8,
        total: 25,
        sampleKeys: ["m09", "m11", "m12", "m13", "m18"]
      })
      expect(pick(report, "chat_messages.created_at rejects")).toEqual({
        status: "info",
        count: 7,
        total: 7,
        sampleKeys: ["m09", "m11", "m12", "m13", "m19"]
      })
      // task_audits: 21 rows match the filter (15 and 16 do not); 9 cannot be read.
      expect(pick(report, "task_audits.payload, created_at unconvertible")).toMatchObject({ count: 9, total: 21 })
      expect(pick(report, "task_audits.supervisor_processed_at coverage")).toEqual({ status: "info", count: 10, total: 10, sampleKeys: [] })
      // Every row of a column in one count (issue 10): chat messages 17 set (m18's preset included), m10 without a source, 7 unconvertible.
      expect(report.columns.find((c) => c.column === "created_at_ms" && c.table === "chat_messages")).toEqual({
        job: "chat_messages.created_at_ms",
        table: "chat_messages",
        column: "created_at_ms",
        rows: 25,
        migrated: 17,
        missing: 0,
        unconvertible: 7,
        withoutValue: 1
      })
      expect(report.columns.find((c) => c.column === "source_event_ts")).toMatchObject({ rows: 21, migrated: 11, missing: 0, unconvertible: 9, withoutValue: 1 })
      expect(report.columns).toHaveLength(17)
      expect(report.columns.every((c) => c.migrated + c.missing + c.unconvertible + c.withoutValue === c.rows)).toBe(true)
      expect(report.rowsScanned["task_audits.payload"]).toBe(21)
      expect(report.rowsScanned["chat_messages.created_at_ms"]).toBe(25)

      const failed = yield* Effect.flip(Verifier.run())
      expect(failed._tag).toBe("VerificationFailed")
      if (failed._tag === "VerificationFailed") {
        expect(failed.report).toEqual(report)
        expect(failed.message).toBe(
          "Verification of agentos failed: 2 check(s) found rows: task_audits.source_event_ts mismatch: 1 (e.g. 18); chat_messages.created_at_ms mismatch: 1 (e.g. m16)"
        )
      }
    }).pipe(Effect.provide(database())))

  it.effect("finds missing and orphan values, in both directions and in payload columns", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      yield* fixtureDatabase
      yield* (yield* BackfillRunner.BackfillRunner).run()
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE chat_messages SET created_at_ms = NULL WHERE message_id IN ('m01', 'm03')`
      yield* sql`UPDATE chat_messages SET created_at_ms = ${NOON} WHERE message_id = 'm10'`
      yield* sql`UPDATE task_audits SET supervisor_processed_at = 5 WHERE audit_id = 17`
      const report = yield* Verifier.report({ jobs: ["chat_messages.created_at_ms", "task_audits.payload"] })
      expect(report.checks).toHaveLength(7 + 12)
      expect(pick(report, "chat_messages.created_at_ms missing")).toEqual({ status: "fail", count: 2, total: 16, sampleKeys: ["m01", "m03"] })
      expect(pick(report, "chat_messages.created_at_ms orphan")).toEqual({ status: "fail", count: 1, total: 16, sampleKeys: ["m10"] })
      expect(pick(report, "chat_messages.created_at_ms coverage")).toEqual({ status: "info", count: 14, total: 16, sampleKeys: [] })
      expect(report.columns.find((c) => c.table === "chat_messages")).toMatchObject({ rows: 25, migrated: 16, missing: 2, unconvertible: 7, withoutValue: 0 })
      expect(pick(report, "task_audits.supervisor_processed_at orphan")).toEqual({ status: "fail", count: 1, total: 11, sampleKeys: ["17"] })
    }).pipe(Effect.provide(database())))

  it.effect("the range is a parameter, and by default follows the Clock (never a fixed year)", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      yield* (yield* BackfillRunner.BackfillRunner).run()
      const jobs = ["chat_messages.created_at_ms"]
      const wide = { min: -1000, max: YEAR_AFTER } as Timestamp.Range
      expect(pick(yield* Verifier.report({ jobs, range: wide }), "chat_messages.created_at_ms range").count).toBe(0)
      // Seen from 2023-06-01, values up to 2024-06-01 are plausible: only the 1969 one is out.
      yield* TestClock.setTime(1685577600000)
      const early = yield* Verifier.report({ jobs })
      expect(early.range.max).toBe(1717200000000)
      expect(pick(early, "chat_messages.created_at_ms range")).toEqual({ status: "warn", count: 1, total: 17, sampleKeys: ["m15"] })
      yield* TestClock.setTime(1640995200000) // 2022-01-01: the range ends 2023-01-01, before every 2024 value
      const earlier = yield* Verifier.report({ jobs })
      expect(pick(earlier, "chat_messages.created_at_ms range")).toMatchObject({ status: "warn", count: 13 })
    }).pipe(Effect.provide(database())))

  it.effect("passes on consistent data, in small batches, and names unknown jobs", () =>
    Effect.gen(function*() {
      // The generator writes years up to 2029: seen from 2030-06-01 they are all plausible.
      yield* TestClock.setTime(1906502400000)
      yield* createLegacyTables
      yield* applyPlan
      yield* insertGenerated(300, 3)
      const sql = yield* SqlClient.SqlClient
      // The generator's presets are arbitrary numbers: clear them so every value comes from the backfill.
      yield* sql`UPDATE chat_messages SET created_at_ms = NULL`
      yield* sql`UPDATE task_audits SET source_event_ts = NULL`
      yield* (yield* BackfillRunner.BackfillRunner).run({ jobs: ["chat_messages.created_at_ms", "task_audits.payload"] })
      const report = yield* Verifier.run({ jobs: ["chat_messages.created_at_ms", "task_audits.payload"], batchSize: 7 })
      expect(report.passed).toBe(true)
      expect(report.rowsScanned["chat_messages.created_at_ms"]).toBe(300)
      const coverage = pick(report, "chat_messages.created_at_ms coverage")
      expect(coverage.count).toBe(coverage.total)
      const unknown = yield* Effect.flip(Verifier.run({ jobs: ["nope"] }))
      expect(unknown).toMatchObject({ _tag: "UnknownJob", job: "nope" })
    }).pipe(Effect.provide(database())))

  it.effect("a batch size that is not a positive integer is a typed error naming the option", () =>
    Effect.gen(function*() {
      for (const batchSize of [0, -5, 2.5, Number.NaN]) {
        const error = yield* Effect.flip(Verifier.report({ batchSize }))
        expect(error).toMatchObject({ _tag: "InvalidVerifyOptions", option: "batchSize", reason: `must be a positive integer, got ${batchSize}` })
        expect(error.message).toBe(`Invalid verify option batchSize: must be a positive integer, got ${batchSize}`)
      }
    }).pipe(Effect.provide(database())))
})
