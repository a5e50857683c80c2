import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Checks from "../src/Checks.js"
import * as Compile from "../src/Compile.js"
import * as Plan from "../src/Plan.js"
import * as Plans from "../src/Plans.js"
import type * as Timestamp from "../src/Timestamp.js"

const range = { min: 0, max: 1_800_000_000_000 } as Timestamp.Range
const NOON = 1705320000000

describe("Checks", () => {
  it("derives the checks of every job and target from the plan", () => {
    const all = Checks.checks(Plans.agentos)
    expect(all).toHaveLength(2 * 5 + 2 + 15 * 7)
    // Issue 17: the range check is a plausibility warning unless the plan says it fails.
    expect(all.filter((c) => c.job === "task_audits.payload").map((c) => `${c.kind} ${c.column} ${c.failing}`)).toEqual([
      "range source_event_ts false",
      "mismatch source_event_ts true",
      "missing source_event_ts true",
      "orphan source_event_ts true",
      "coverage source_event_ts false",
      "range supervisor_processed_at false",
      "mismatch supervisor_processed_at true",
      "missing supervisor_processed_at true",
      "orphan supervisor_processed_at true",
      "coverage supervisor_processed_at false",
      "unconvertible payload, created_at false",
      "rejects payload, created_at false"
    ])
    expect(all.find((c) => c.job === "chat_messages.created_at_ms" && c.kind === "missing")).toEqual({
      kind: "missing",
      job: "chat_messages.created_at_ms",
      table: "chat_messages",
      column: "created_at_ms",
      failing: true,
      warning: false,
      description: "created_at converts to a value but created_at_ms is NULL"
    })
  })

  it("plausibility: a warning by default, a failure when the step says so, with the step's own window", () => {
    const plan = Plan.make("p", [Plan.migration(1, "m", [
      Plan.epochShadow("events", "happened_at"),
      Plan.epochShadow("events", "due_at", { plausible: { from: "0001-01-01", to: "9999-12-31 23:59:59" } }),
      Plan.epochShadow("events", "born_at", { plausible: { from: -2208988800000, outside: "fail" } }),
      Plan.derive("events", {
        reads: ["raw"],
        targets: [{ column: "raw_ms", type: "bigint" }, { column: "seen_ms", type: "bigint", plausible: { to: "2030-01-01" } }],
        convert: () => ({ raw_ms: null, seen_ms: null })
      })
    ])])
    const ranges = Checks.checks(plan).filter((c) => c.kind === "range").map((c) => `${c.table}.${c.column} ${c.failing} ${c.warning}`)
    // A bigint a convert function computes is checked only when the step asks (seen_ms, not raw_ms).
    expect(ranges).toEqual([
      "events.happened_at_ms false true",
      "events.due_at_ms false true",
      "events.born_at_ms true false",
      "events.seen_ms false true"
    ])
    const [happened, due, born, derived] = Checks.forJobs(plan)
    expect(Checks.window(happened!.job.targets[0]!, range)).toEqual(range)
    expect(Checks.window(due!.job.targets[0]!, range)).toEqual({ min: -62135596800000, max: 253402300799000 })
    expect(Checks.window(born!.job.targets[0]!, range)).toEqual({ min: -2208988800000, max: range.max })
    expect(derived!.timestampTargets).toEqual(["seen_ms"])
    expect(Checks.window(derived!.job.targets[1]!, range)).toEqual({ min: 0, max: 1893456000000 })
    const outside = (checks: Checks.JobChecks, row: Record<string, unknown>) => Checks.verdict(checks, row, range).targets.map((t) => [t.outcome, t.outOfRange])
    // Go's zero time and a "never" sentinel: what the conversion gives, plausible only in due_at's window.
    expect(outside(happened!, { happened_at: "0001-01-01", happened_at_ms: -62135596800000 })).toEqual([["match", true]])
    expect(outside(due!, { due_at: "0001-01-01", due_at_ms: -62135596800000 })).toEqual([["match", false]])
    expect(outside(due!, { due_at: "9999-12-31 23:59:59", due_at_ms: 253402300799000 })).toEqual([["match", false]])
    expect(outside(born!, { born_at: "1969-07-20 20:17:00", born_at_ms: -14182980000 })).toEqual([["match", false]])
    expect(outside(born!, { born_at: "1800-01-01", born_at_ms: -5364662400000 })).toEqual([["match", true]])
  })

  it("a plausibility setting is checked when the plan is made, and is not part of the checksum", () => {
    expect(() => Plan.epochShadow("events", "happened_at", { plausible: { from: "yesterday" } })).toThrow(
      /at plausible\.from: .*yesterday/
    )
    expect(() => Plan.epochShadow("events", "happened_at", { plausible: { from: "2024-01-01", to: "2023-01-01" } })).toThrow(
      /at plausible\.to: to is before from \("2023-01-01" < "2024-01-01"\)/
    )
    expect(() => Plan.extractJson("t", "payload", { targets: [{ column: "kind", paths: ["kind"], as: "text", plausible: {} }] })).toThrow(
      /plausible applies to timestamp targets/
    )
    expect(() =>
      Plan.derive("t", { reads: ["a"], targets: [{ column: "b", type: "text", from: "a", plausible: {} }] })
    ).toThrow(/plausible applies to epoch-ms targets \(type bigint\), not text/)
    const bare = Plan.migration(1, "m", [Plan.epochShadow("events", "happened_at")])
    const tuned = Plan.migration(1, "m", [Plan.epochShadow("events", "happened_at", { plausible: { from: "0001-01-01", outside: "fail" } })])
    expect(Compile.checksum(tuned)).toBe(Compile.checksum(bare))
    expect(Compile.checksum(Plan.migration(1, "m", [Plan.epochShadow("events", "happened_at", { index: true })]))).not.toBe(Compile.checksum(bare))
    // And it round-trips through a JSON plan.
    const json = JSON.stringify(Plan.toJson(Plan.make("p", [tuned])))
    expect(Either.getOrThrow(Plan.fromJson(json, "p.json"))).toMatchObject({
      migrations: [{ steps: [{ plausible: { from: "0001-01-01", outside: "fail" } }] }]
    })
  })

  it("text targets are not range-checked", () => {
    const plan = Plan.make("p", [Plan.migration(1, "m", [
      Plan.extractJson("t", "payload", { targets: [{ column: "kind", paths: ["kind"], as: "text" }] })
    ])])
    expect(Checks.checks(plan).map((c) => c.kind)).toEqual(["mismatch", "missing", "orphan", "coverage", "unconvertible", "rejects"])
  })

  it("judges a row exactly against the recomputed value", () => {
    const [shadow] = Checks.forJobs(Plans.agentos).filter((j) => j.job.name === "chat_messages.created_at_ms")
    const judge = (created_at: unknown, created_at_ms: unknown) =>
      Checks.verdict(shadow!, { created_at, created_at_ms }, range).targets.map((t) => [t.outcome, t.outOfRange])
    expect(judge("2024-01-15 12:00:00", NOON)).toEqual([["match", false]])
    expect(judge("2024-01-15 12:00:00", BigInt(NOON))).toEqual([["match", false]])
    expect(judge("2024-01-15 12:00:00", String(NOON))).toEqual([["match", false]])
    expect(judge("2024-01-15 12:00:00.123", NOON + 122)).toEqual([["mismatch", false]])
    expect(judge("2024-01-15 12:00:00", NOON - 1000)).toEqual([["mismatch", false]])
    expect(judge("2024-01-15 12:00:00", null)).toEqual([["missing", false]])
    expect(judge(null, NOON)).toEqual([["orphan", false]])
    expect(judge(null, null)).toEqual([["empty", false]])
    expect(judge("1969-12-31 23:59:59", -1000)).toEqual([["match", true]])
    expect(judge("garbage", 5)).toEqual([["unverifiable", false]])
    expect(judge("garbage", -5)).toEqual([["unverifiable", true]])
    expect(Checks.verdict(shadow!, { created_at: 0, created_at_ms: null }, range).unconvertible).toBe(
      "created_at: expected timestamp text, found number 0"
    )
  })

  it("skips rows outside the job's filter and compares JSON targets per column", () => {
    const [audit] = Checks.forJobs(Plans.agentos).filter((j) => j.job.name === "task_audits.payload")
    const row = {
      event_type: "SUPERVISOR_DECISION",
      payload: JSON.stringify({ source_event_ts: "2024-01-15T10:00:00Z" }),
      created_at: null,
      source_event_ts: 1705312800000,
      supervisor_processed_at: 99
    }
    expect(Checks.verdict(audit!, row, range).targets.map((t) => t.outcome)).toEqual(["match", "orphan"])
    expect(Checks.verdict(audit!, { ...row, event_type: "TASK_CREATED" }, range)).toEqual({ applies: false, unconvertible: undefined, targets: [] })
    expect(Checks.verdict(audit!, { ...row, payload: "[1]" }, range).unconvertible).toBe("payload: payload is not a JSON object: an array")
  })
})
