import { describe, expect, it } from "@effect/vitest"
import * as Checks from "../src/Checks.js"
import * as Plan from "../src/Plan.js"
import * as Plans from "../src/Plans.js"
import type * as Timestamp from "../src/Timestamp.js"

const range = { min: 0, max: 1_800_000_000_000 } as Timestamp.Range
const NOON = 1705320000000

describe("Checks", () => {
  it("derives the checks of every job and target from the plan", () => {
    const all = Checks.checks(Plans.agentos)
    expect(all).toHaveLength(2 * 5 + 2 + 15 * 7)
    expect(all.filter((c) => c.job === "task_audits.payload").map((c) => `${c.kind} ${c.column} ${c.failing}`)).toEqual([
      "range source_event_ts true",
      "mismatch source_event_ts true",
      "missing source_event_ts true",
      "orphan source_event_ts true",
      "coverage source_event_ts false",
      "range supervisor_processed_at true",
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
      description: "created_at converts to a value but created_at_ms is NULL"
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
