/**
 * Issue 17 item 4: dates the conversion accepts but a plausibility window would not (the Moon
 * landing in 1969, a "never" sentinel of 9999-12-31 23:59:59, Go's zero time 0001-01-01) are
 * backfilled, and verify passes with a warning per column instead of failing. The window and
 * whether values outside it fail are the plan's (per target) and the caller's (options).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Effect, Layer, TestClock } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, Migrator, Verifier } from "../src/index.js"

/** 2026-01-01T00:00:00Z: the default window ends 2027-01-01. */
const NOW = 1767225600000
const YEAR_AFTER = 1798761600000
const MOON = -14182980000 // 1969-07-20 20:17:00 UTC
const NEVER = 253402300799000 // 9999-12-31 23:59:59 UTC
const GO_ZERO = -62135596800000 // 0001-01-01 00:00:00 UTC
const NOON = 1705320000000 // 2024-01-15 12:00:00 UTC

const planWith = (plausible?: Plan.Plausible) =>
  Plan.make("events", [Plan.migration(1, "times", [Plan.epochShadow("events", "happened_at", plausible === undefined ? {} : { plausible })])])

/** The table, migrated and backfilled with `plan`; then the Verifier for it. */
const backfilled = (plan: Plan.Plan) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(NOW)
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)`)
    yield* sql.unsafe(`INSERT INTO events (id, happened_at) VALUES
      (1, '1969-07-20 20:17:00'), (2, '9999-12-31 23:59:59'), (3, '0001-01-01'), (4, '2024-01-15 12:00:00')`)
    yield* Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())
    yield* Effect.flatMap(BackfillRunner.make(plan), (runner) => runner.run())
    const stored = yield* sql.unsafe<{ id: number; happened_at_ms: number | string }>(`SELECT id, happened_at_ms FROM events ORDER BY id`)
    // The conversion accepts all four: the backfill stored each one.
    expect(stored.map((r) => Number(r.happened_at_ms))).toEqual([MOON, NEVER, GO_ZERO, NOON])
    return yield* Verifier.make(plan)
  })

const rangeCheck = (report: Verifier.VerificationReport) => {
  const check = report.checks.find((c) => c.kind === "range")!
  return { status: check.status, count: check.count, total: check.total, sampleKeys: check.sampleKeys, range: check.range }
}

describeEachEngine("Verifier plausibility", (engine) => {
  const database = () => Layer.empty.pipe(Layer.provideMerge(engine.layer()))

  it.effect("values the conversion accepts but the default window does not: a warning, verification passes", () =>
    Effect.gen(function*() {
      const verifier = yield* backfilled(planWith())
      const report = yield* verifier.run()
      expect(report.passed).toBe(true)
      expect(rangeCheck(report)).toEqual({ status: "warn", count: 3, total: 4, sampleKeys: ["1", "2", "3"], range: { min: 0, max: YEAR_AFTER } })
      expect(Verifier.failures(report)).toEqual([])
      expect(report.checks.filter((c) => c.status === "fail" || c.kind === "mismatch").map((c) => [c.kind, c.status, c.count])).toEqual([
        ["mismatch", "pass", 0]
      ])
    }).pipe(Effect.provide(database())))

  it.effect("the plan's window: values inside it are plausible; outside: \"fail\" makes the rest fail", () =>
    Effect.gen(function*() {
      const wide = yield* backfilled(planWith({ from: "0001-01-01", to: "9999-12-31 23:59:59" }))
      const widely = yield* wide.run()
      expect(rangeCheck(widely)).toEqual({ status: "pass", count: 0, total: 4, sampleKeys: [], range: { min: GO_ZERO, max: NEVER } })
      // One end of the plan's own, the other the default; the plan says values outside fail.
      const strict = yield* Verifier.make(planWith({ from: "1900-01-01", outside: "fail" }))
      const failed = yield* Effect.flip(strict.run())
      expect(failed._tag).toBe("VerificationFailed")
      if (failed._tag === "VerificationFailed") {
        expect(rangeCheck(failed.report)).toEqual({ status: "fail", count: 2, total: 4, sampleKeys: ["2", "3"], range: { min: -2208988800000, max: YEAR_AFTER } })
        expect(failed.message).toBe("Verification of events failed: 1 check(s) found rows: events.happened_at_ms range: 2 (e.g. 2, 3)")
      }
    }).pipe(Effect.provide(database())))

  it.effect("the caller's window and implausible option override the plan's, end by end", () =>
    Effect.gen(function*() {
      const verifier = yield* backfilled(planWith({ from: "0001-01-01", to: "9999-12-31 23:59:59" }))
      // implausible: "fail" alone keeps the plan's window: nothing outside it.
      expect(rangeCheck(yield* verifier.run({ implausible: "fail" }))).toMatchObject({ status: "pass", count: 0 })
      // A narrower upper end from the caller, the plan's lower end kept: the sentinel fails.
      const failed = yield* Effect.flip(verifier.run({ range: { max: YEAR_AFTER }, implausible: "fail" }))
      expect(failed._tag === "VerificationFailed" && rangeCheck(failed.report)).toEqual({
        status: "fail",
        count: 1,
        total: 4,
        sampleKeys: ["2"],
        range: { min: GO_ZERO, max: YEAR_AFTER }
      })
      expect(rangeCheck(yield* verifier.report({ range: { min: 0, max: YEAR_AFTER } }))).toMatchObject({ status: "warn", count: 3 })
      const refusals = [
        [{ range: { min: 5, max: 4 } }, "range", "min 5 is after max 4"],
        [{ range: { min: 1.5 } }, "range.min", "must be an integer of epoch milliseconds, got 1.5"],
        [{ implausible: "never" as "fail" }, "implausible", `must be "warn" or "fail", got "never"`]
      ] as const
      for (const [options, option, reason] of refusals) {
        expect(yield* Effect.flip(verifier.report(options))).toMatchObject({ _tag: "InvalidVerifyOptions", option, reason })
      }
    }).pipe(Effect.provide(database())))
})
