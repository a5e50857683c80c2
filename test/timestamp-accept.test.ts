/**
 * The opt-in timestamp forms of a plan step (`accept` on `epochShadow` and on `extractJson`'s
 * timestamp targets) work identically through the backfill, the lazy read-time fix-up and the
 * verifier, on SQLite and PostgreSQL: `Date.now()` in an INTEGER column, `time.time()` in a REAL
 * column, RFC 2822 / `infinity` / `24:00` / epoch text in a TIMESTAMP text column, and epoch numbers
 * inside a JSON payload. Text of the fast path's shape still goes through SQL; every other row
 * through the step's own reading in JavaScript.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Compile, Plan, type Timestamp } from "@strata/core"
import { BackfillRunner, Database, JobState, LazyMigration, Verifier } from "@strata/sql"
import { Effect, Either, Layer } from "effect"
import { describeEachEngine, type Engine } from "./support/databases.js"

const NOON = 1705320000000 // 2024-01-15T12:00:00Z
const MAX = 253402300799999 as Timestamp.EpochMillis // 9999-12-31T23:59:59.999Z
const MIN = -62135596800000 as Timestamp.EpochMillis // 0001-01-01T00:00:00.000Z

const plan = Plan.make("accept_test", [
  Plan.migration(1, "readings", [
    Plan.createTable("readings", [
      { name: "reading_id", type: "integer", primaryKey: true },
      { name: "taken_ms", type: "bigint" },
      { name: "taken_s", type: "real" },
      { name: "noted_at", type: "timestamp_text" },
      { name: "payload", type: "json" }
    ])
  ]),
  Plan.migration(2, "shadows", [
    Plan.epochShadow("readings", "taken_ms", { target: "taken_ms_at", accept: { epoch: "milliseconds" } }),
    Plan.epochShadow("readings", "taken_s", { target: "taken_s_at", accept: { epoch: "seconds" } }),
    Plan.epochShadow("readings", "noted_at", {
      accept: { epoch: "seconds", rfc2822: true, endOfDay: true, infinity: { positive: MAX, negative: MIN } }
    }),
    Plan.extractJson("readings", "payload", {
      targets: [{ column: "event_at", paths: ["ts"], as: "timestamp", accept: { epoch: "milliseconds" } }]
    })
  ])
])

const JOBS = ["readings.taken_ms_at", "readings.taken_s_at", "readings.noted_at_ms", "readings.payload"]

interface Reading {
  readonly reading_id: number
  readonly taken_ms: number | null
  readonly taken_s: number | null
  readonly noted_at: string | null
  readonly payload: unknown
}

const readings: ReadonlyArray<Reading> = [
  { reading_id: 1, taken_ms: NOON + 123, taken_s: 1705320000.123, noted_at: "Mon, 15 Jan 2024 12:00:00 +0000", payload: { ts: NOON + 123 } },
  { reading_id: 2, taken_ms: 0, taken_s: -1.5, noted_at: "infinity", payload: { ts: "2024-01-15T12:00:00Z" } },
  { reading_id: 3, taken_ms: null, taken_s: null, noted_at: "-infinity", payload: null },
  { reading_id: 4, taken_ms: NOON, taken_s: 1705320000, noted_at: "2024-12-31T24:00:00Z", payload: { ts: "1705320000123" } },
  { reading_id: 5, taken_ms: NOON, taken_s: 1705320000.9999, noted_at: "1705320000", payload: { ts: 1705320000123.9 } },
  { reading_id: 6, taken_ms: NOON, taken_s: 0, noted_at: "2024-01-15 12:00:00", payload: { ts: "Mon, 15 Jan 2024 12:00:00 +0000" } },
  { reading_id: 7, taken_ms: 1705320000000000, taken_s: 1705320000000, noted_at: "2024-01-15 12:00:00 PST", payload: { ts: 1e300 } },
  { reading_id: 8, taken_ms: NOON, taken_s: NOON / 1000, noted_at: "2024-02-30 10:00:00", payload: { ts: "-1" } }
]

/** What each job must write, by row (null: nothing to write or rejected). */
const expected = {
  taken_ms_at: [NOON + 123, 0, null, NOON, NOON, NOON, null, NOON],
  taken_s_at: [NOON + 123, -1500, null, NOON, NOON + 999, 0, null, NOON],
  noted_at_ms: [NOON, MAX, MIN, Date.UTC(2025, 0, 1), NOON, NOON, null, null],
  event_at: [NOON + 123, NOON, null, NOON + 123, NOON + 123, null, null, -1]
}

/** The rows each job rejects, with its reason. */
const expectedRejects = {
  "readings.taken_ms_at": [["7", "taken_ms: 1705320000000000 milliseconds is outside years 0001-9999"]],
  "readings.taken_s_at": [["7", "taken_s: 1705320000000 seconds is outside years 0001-9999"]],
  "readings.noted_at_ms": [
    ["7", "noted_at: \"2024-01-15 12:00:00 PST\": time-zone abbreviation \"PST\" is ambiguous (CST, IST and many others name different offsets in different places); write the offset instead (e.g. \"-08:00\"); only UTC and GMT are read as a zone"],
    ["8", "noted_at: \"2024-02-30 10:00:00\": February 30 does not exist in 2024"]
  ],
  "readings.payload": [
    ["6", "event_at: payload.ts: \"Mon, 15 Jan 2024 12:00:00 +0000\": an RFC 2822 date, which is read only when asked for (accept rfc2822)"],
    ["7", "event_at: payload.ts: 1e+300 milliseconds is outside years 0001-9999"]
  ]
}

const applyPlan = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const migration of plan.migrations) {
    for (const statement of Compile.statements(migration, dialect)) yield* sql.unsafe(statement.sql)
  }
}).pipe(Effect.orDie)

const insertReadings = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const r of readings) {
    const payload = r.payload === null ? null : JSON.stringify(r.payload)
    yield* dialect === "pg"
      ? sql`INSERT INTO readings (reading_id, taken_ms, taken_s, noted_at, payload)
            VALUES (${r.reading_id}, ${r.taken_ms}, ${r.taken_s}, ${r.noted_at}, ${payload}::jsonb)`
      : sql`INSERT INTO readings (reading_id, taken_ms, taken_s, noted_at, payload)
            VALUES (${r.reading_id}, ${r.taken_ms}, ${r.taken_s}, ${r.noted_at}, ${payload})`
  }
}).pipe(Effect.orDie)

const storedTargets = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ readonly taken_ms_at: unknown; readonly taken_s_at: unknown; readonly noted_at_ms: unknown; readonly event_at: unknown }>`
    SELECT taken_ms_at, taken_s_at, noted_at_ms, event_at FROM readings ORDER BY reading_id`).pipe(
    Effect.map((rows) => ({
      taken_ms_at: rows.map((r) => (r.taken_ms_at == null ? null : Number(r.taken_ms_at))),
      taken_s_at: rows.map((r) => (r.taken_s_at == null ? null : Number(r.taken_s_at))),
      noted_at_ms: rows.map((r) => (r.noted_at_ms == null ? null : Number(r.noted_at_ms))),
      event_at: rows.map((r) => (r.event_at == null ? null : Number(r.event_at)))
    })),
    Effect.orDie
  )

const rejectsOf = (job: string) =>
  Effect.map(JobState.loadRejects(job, 100), (rows) => rows.map((r) => [r.rowKey, r.reason])).pipe(Effect.orDie)

const database = (engine: Engine) =>
  Layer.mergeAll(BackfillRunner.layer(plan), Verifier.layer(plan)).pipe(
    Layer.provideMerge(Layer.provideMerge(Layer.effectDiscard(applyPlan), engine.layer()))
  )

describeEachEngine("opt-in timestamp forms through backfill, lazy fix-up and verify", (engine) => {
  it.effect("the backfill converts every opt-in form, with and without the fast path, and rejects the rest with the reason", () =>
    Effect.gen(function*() {
      yield* insertReadings
      const runner = yield* BackfillRunner.BackfillRunner
      const summaries = yield* runner.run({ jobs: JOBS })
      expect(summaries.map((s) => [s.job, s.processed, s.updated, s.rejected])).toEqual([
        ["readings.taken_ms_at", 8, 6, 1],
        ["readings.taken_s_at", 8, 6, 1],
        ["readings.noted_at_ms", 8, 6, 2],
        ["readings.payload", 8, 5, 2]
      ])
      expect(yield* storedTargets).toEqual(expected)
      for (const [job, rejects] of Object.entries(expectedRejects)) expect(yield* rejectsOf(job)).toEqual(rejects)

      // The same through JavaScript alone.
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE readings SET taken_ms_at = NULL, taken_s_at = NULL, noted_at_ms = NULL, event_at = NULL`
      yield* runner.run({ jobs: JOBS, restart: true, fastPath: false })
      expect(yield* storedTargets).toEqual(expected)
    }).pipe(Effect.provide(database(engine))))

  it.effect("the verifier recomputes with the step's own reading: every stored value matches, the rejects are unconvertible", () =>
    Effect.gen(function*() {
      yield* insertReadings
      yield* (yield* BackfillRunner.BackfillRunner).run({ jobs: JOBS })
      const report = yield* Verifier.report({ range: { min: MIN, max: MAX } })
      expect(Verifier.failures(report)).toEqual([])
      const count = (name: string) => report.checks.find((c) => c.name === name)?.count
      expect(count("readings.noted_at_ms mismatch")).toBe(0)
      expect(count("readings.noted_at_ms coverage")).toBe(6)
      expect(count("readings.noted_at unconvertible")).toBe(2)
      expect(count("readings.taken_s_at coverage")).toBe(6)
      expect(count("readings.event_at coverage")).toBe(5)

      // A stored value the step's reading disagrees with is a mismatch.
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE readings SET noted_at_ms = noted_at_ms + 1 WHERE reading_id = 4`
      const after = yield* Verifier.report({ range: { min: MIN, max: MAX } })
      expect(Verifier.failures(after).map((c) => `${c.name} ${c.count} ${c.sampleKeys.join(",")}`)).toEqual([
        "readings.noted_at_ms mismatch 1 4"
      ])
    }).pipe(Effect.provide(database(engine))))

  it.effect("the lazy fix-up gives a read the backfill's values at once and writes them back", () =>
    Effect.gen(function*() {
      yield* insertReadings
      const sql = yield* SqlClient.SqlClient
      const read = sql<Record<string, unknown>>`
        SELECT reading_id, taken_ms, taken_s, noted_at, taken_ms_at, taken_s_at, noted_at_ms FROM readings ORDER BY reading_id`
      const fixed = yield* read.pipe(LazyMigration.withFixUp("readings"))
      const number = (value: unknown) => (value == null ? null : Number(value))
      expect({
        taken_ms_at: fixed.map((r) => number(r["taken_ms_at"])),
        taken_s_at: fixed.map((r) => number(r["taken_s_at"])),
        noted_at_ms: fixed.map((r) => number(r["noted_at_ms"]))
      }).toEqual({ taken_ms_at: expected.taken_ms_at, taken_s_at: expected.taken_s_at, noted_at_ms: expected.noted_at_ms })
      yield* LazyMigration.flush
      const stored = yield* storedTargets
      expect([stored.taken_ms_at, stored.taken_s_at, stored.noted_at_ms]).toEqual([
        expected.taken_ms_at,
        expected.taken_s_at,
        expected.noted_at_ms
      ])
    }).pipe(
      Effect.provide(LazyMigration.layer(plan, { enabled: true, writeBack: true, flushInterval: "1 hour" }).pipe(Layer.orDie)),
      Effect.provide(database(engine))
    ))

  it("a plan with opt-in forms round-trips through JSON, and a wrong option is refused naming its path", () => {
    expect(Either.getOrThrow(Plan.fromJson(JSON.stringify(Plan.toJson(plan))))).toEqual(plan)
    const json = Plan.toJson(plan) as { migrations: Array<{ steps: Array<Record<string, unknown>> }> }
    json.migrations[1]!.steps[0]!["accept"] = { epoch: "minutes" }
    const decoded = Plan.decode(json, "p.json")
    expect(decoded._tag).toBe("Left")
    if (decoded._tag === "Left") expect(decoded.left.message).toMatch(/^invalid plan in p\.json: at migrations\[1\]\.steps\[0\]\.accept\.epoch: /)
  })
})
