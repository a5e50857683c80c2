/**
 * The in-SQL fast path of timestamp shadows equals `Timestamp.parse` on both engines: for every
 * text of the exact `YYYY-MM-DD HH:MM:SS` shape it yields parse's epoch ms, or NULL where parse
 * rejects (invalid calendar dates, hour 24, leap seconds, year 0000); every other text is NULL (left
 * to the JS path). No text makes the expression raise. The self-test the runner runs before using
 * it passes on both engines, and fails (turning the fast path off, with a warning) for an
 * expression that gets any of its inputs wrong.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { FastPath, type Identifier, Timestamp } from "@strata/core"
import { Effect, Either, FastCheck as fc, Logger } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { confirmFastPath, confirmFastPathWith, type Expression, selfTestFailureWith } from "../src/internal/fastPathSelfTest.js"
import * as SqlErrors from "../src/SqlErrors.js"

const pad = (value: number, width: number) => String(value).padStart(width, "0")

const fastShape = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/

/** What the fast path must yield: parse's value for the exact shape, NULL for anything else. */
const expected = (text: string): number | null =>
  fastShape.test(text) ? Either.getOrNull(Timestamp.parse(text)) : null

const field = (max: number, width: number, special: ReadonlyArray<number>) =>
  fc.oneof(fc.integer({ min: 0, max }), fc.constantFrom(...special)).map((n) => pad(n, width))

/** Second-precision texts with valid and invalid calendar fields (Feb 29/30, month 13, 24:00, :60). */
const shapeTexts = fc.tuple(
  field(9999, 4, [0, 1, 1899, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 2400, 9999]),
  field(19, 2, [0, 1, 2, 4, 9, 11, 12, 13]),
  field(39, 2, [0, 1, 28, 29, 30, 31, 32]),
  field(29, 2, [0, 23, 24]),
  field(69, 2, [0, 59, 60]),
  field(69, 2, [0, 59, 60, 61])
).map(([y, mo, d, h, mi, s]) => `${y}-${mo}-${d} ${h}:${mi}:${s}`)

/** Texts of other shapes: T separator, fractions, zones, date only, padding, garbage. */
const otherTexts = fc.oneof(
  shapeTexts.map((t) => t.replace(" ", "T")),
  shapeTexts.map((t) => `${t}.123`),
  shapeTexts.map((t) => `${t}Z`),
  shapeTexts.map((t) => `${t}+08:00`),
  shapeTexts.map((t) => t.slice(0, 10)),
  shapeTexts.map((t) => ` ${t}`),
  shapeTexts.map((t) => `${t}\n`),
  shapeTexts.map((t) => t.replace(/0/g, "٠")),
  fc.constantFrom("", "0", "now", "CURRENT_TIMESTAMP", "2024-01-15 12:00", "2024-1-15 12:00:00", "１９７０-01-01 00:00:00"),
  fc.string({ maxLength: 25 })
)

const texts = fc.array(fc.oneof({ weight: 3, arbitrary: shapeTexts }, { weight: 1, arbitrary: otherTexts }), {
  minLength: 1,
  maxLength: 300
})

const source = "src" as Identifier.Identifier

const evaluate = (values: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.onDialectOrElse({
      pg: () =>
        sql.unsafe<{ src: string; ms: number | null }>(
          `SELECT src, ${FastPath.epochMillisExpression(source, "pg")} AS ms FROM unnest($1::text[]) WITH ORDINALITY AS t(src, n) ORDER BY n`,
          [values]
        ),
      orElse: () =>
        sql.unsafe<{ src: string; ms: number | null }>(
          `SELECT src, ${FastPath.epochMillisExpression(source, "sqlite")} AS ms FROM (SELECT value AS src, key AS n FROM json_each(?)) ORDER BY n`,
          [JSON.stringify(values)]
        )
    })
  })

describeEachEngine("FastPath.epochMillisExpression", (engine) => {
  layer(engine.layer())((it) => {
    it.effect("fixed cases", () =>
      Effect.gen(function*() {
        const rows = yield* evaluate([
          "2024-01-15 12:00:00",
          "1970-01-01 00:00:00",
          "1969-12-31 23:59:59",
          "0001-01-01 00:00:00",
          "9999-12-31 23:59:59",
          "2024-02-29 00:00:00",
          "2023-02-29 00:00:00",
          "2024-02-30 10:00:00",
          "1900-02-29 00:00:00",
          "2000-02-29 00:00:00",
          "2024-04-31 00:00:00",
          "2024-13-01 00:00:00",
          "2024-01-15 24:00:00",
          "2024-01-15 23:59:60",
          "0000-01-01 00:00:00",
          "2024-01-15T12:00:00",
          "2024-01-15 12:00:00.5",
          "2024-01-15"
        ])
        expect(rows.map((r) => r.ms)).toEqual([
          1705320000000,
          0,
          -1000,
          -62135596800000,
          253402300799000,
          1709164800000,
          null,
          null,
          null,
          951782400000,
          null,
          null,
          null,
          null,
          null,
          null,
          null,
          null
        ])
      }))

    it.effect.prop("equals Timestamp.parse on the shape, NULL elsewhere", [texts], ([values]) =>
      Effect.gen(function*() {
        const rows = yield* evaluate(values)
        expect(rows.map((r) => r.src)).toEqual(values)
        expect(rows.map((r) => r.ms)).toEqual(values.map(expected))
      }), { fastCheck: { numRuns: 100 } })

    if (engine.name === "pg") {
      // What the batch UPDATE sets, under its WHERE's guard: the regex once per row, the same values.
      it.effect.prop("under its guard, the expression without the guard's own test gives the same values, and never raises", [texts], ([values]) =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const rows = yield* sql.unsafe<{ src: string; ms: number | null }>(
            `SELECT src, ${FastPath.epochMillisWhenShaped(source)} AS ms FROM unnest($1::text[]) WITH ORDINALITY AS t(src, n) ` +
              `WHERE ${FastPath.shapeTest(source, "pg")} ORDER BY n`,
            [values]
          )
          const shaped = values.filter((value) => fastShape.test(value))
          expect(rows.map((r) => r.src)).toEqual(shaped)
          expect(rows.map((r) => r.ms)).toEqual(shaped.map(expected))
        }), { fastCheck: { numRuns: 100 } })
    }
  })
})

/** The seeds' expressions: no calendar guard (SQLite rolls 2024-02-30 over; PostgreSQL raises on it). */
const unguarded: Expression = (column, dialect) =>
  dialect === "sqlite"
    ? `CAST(strftime('%s', "${column}") AS INTEGER) * 1000`
    : `(EXTRACT(EPOCH FROM "${column}"::timestamp))::bigint * 1000`

/** The real expression, 1 ms low on real instants (as the seeds' julianday CAST was on about half the rows). */
const oneMsLow: Expression = (column, dialect) => `(${FastPath.epochMillisExpression(column, dialect)}) - 1`

const captureLogs = () => {
  const lines: Array<{ readonly level: string; readonly message: string; readonly reason: unknown }> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    let reason: unknown = undefined
    for (const [key, value] of annotations) if (key === "reason") reason = value
    lines.push({ level: logLevel.label, message: text, reason })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const columns = { source: "created_at" as Identifier.Identifier, target: "created_at_ms" as Identifier.Identifier }

describe("FastPath.selfTestCases", () => {
  it("are parse's answers: real instants at the calendar's ends and leap days, NULL for impossible dates and other shapes", () => {
    expect(FastPath.selfTestCases.map((c) => [c.text, c.expected])).toEqual([
      ["2024-01-15 12:00:00", 1705320000000],
      ["1970-01-01 00:00:00", 0],
      ["1969-12-31 23:59:59", -1000],
      ["2000-02-29 00:00:00", 951782400000],
      ["2024-02-29 23:59:59", 1709251199000],
      ["0001-01-01 00:00:00", -62135596800000],
      ["9999-12-31 23:59:59", 253402300799000],
      ["2023-02-29 00:00:00", null],
      ["2024-02-30 10:00:00", null],
      ["1900-02-29 00:00:00", null],
      ["2100-02-29 12:00:00", null],
      ["2024-04-31 00:00:00", null],
      ["2024-13-01 00:00:00", null],
      ["2024-00-10 00:00:00", null],
      ["2024-01-00 00:00:00", null],
      ["2024-01-15 24:00:00", null],
      ["2024-01-15 23:60:00", null],
      ["2024-01-15 23:59:60", null],
      ["0000-01-01 00:00:00", null],
      ["2024-01-15T12:00:00", null],
      ["2024-01-15 12:00:00.5", null]
    ])
  })

  it("selfTestFailure names every input the engine got wrong", () => {
    const right = FastPath.selfTestCases.map((c) => c.expected)
    expect(FastPath.selfTestFailure(right)).toBeUndefined()
    expect(FastPath.selfTestFailure(right.map((v) => (v === null ? null : String(v))))).toBeUndefined()
    expect(FastPath.selfTestFailure(right.map((v) => (v === null ? null : BigInt(v))))).toBeUndefined()
    const rolled = right.map((v, i) => (i === 7 ? 1677628800000 : v))
    expect(FastPath.selfTestFailure(rolled)).toBe(
      "the engine converts 1 of 21 inputs differently: \"2023-02-29 00:00:00\" gave 1677628800000, Timestamp.parse NULL"
    )
    expect(FastPath.selfTestFailure(right.map((v, i) => (i === 0 ? null : v)))).toBe(
      "the engine converts 1 of 21 inputs differently: \"2024-01-15 12:00:00\" gave NULL, Timestamp.parse 1705320000000"
    )
    expect(FastPath.selfTestFailure(right.slice(1))).toBe("the self-test returned 20 rows for 21 inputs")
  })
})

describeEachEngine("the fast path's self-test", (engine) => {
  layer(engine.layer())((it) => {
    it.effect("the real expression passes on this engine", () =>
      Effect.gen(function*() {
        expect(yield* selfTestFailureWith(engine.name, FastPath.epochMillisExpression)).toBeUndefined()
        const logs = captureLogs()
        expect(yield* confirmFastPath(engine.name, columns).pipe(Effect.provide(logs.layer))).toEqual(columns)
        expect(logs.lines.filter((l) => l.level === "WARN")).toEqual([])
      }))

    it.effect("an expression without the calendar guard fails it, naming the impossible dates", () =>
      Effect.gen(function*() {
        const reason = yield* selfTestFailureWith(engine.name, unguarded)
        if (engine.name === "sqlite") {
          expect(reason).toBe(
            "the engine converts 9 of 21 inputs differently: " +
              "\"2023-02-29 00:00:00\" gave 1677628800000, Timestamp.parse NULL; " +
              "\"2024-02-30 10:00:00\" gave 1709287200000, Timestamp.parse NULL; " +
              "\"1900-02-29 00:00:00\" gave -2203891200000, Timestamp.parse NULL; " +
              "\"2100-02-29 12:00:00\" gave 4107585600000, Timestamp.parse NULL; " +
              "\"2024-04-31 00:00:00\" gave 1714521600000, Timestamp.parse NULL; " +
              "\"2024-01-15 24:00:00\" gave 1705363200000, Timestamp.parse NULL; " +
              "\"0000-01-01 00:00:00\" gave -62167219200000, Timestamp.parse NULL; " +
              "\"2024-01-15T12:00:00\" gave 1705320000000, Timestamp.parse NULL; " +
              "\"2024-01-15 12:00:00.5\" gave 1705320000000, Timestamp.parse NULL"
          )
        } else {
          // PostgreSQL raises on the first impossible date: a failing statement fails the self-test too.
          expect(reason).toMatch(/^the self-test statement failed: .*date\/time field value out of range: "2023-02-29 00:00:00"/)
        }
      }))

    it.effect("an expression 1 ms low fails it on every real instant", () =>
      Effect.gen(function*() {
        expect(yield* selfTestFailureWith(engine.name, oneMsLow)).toBe(
          "the engine converts 7 of 21 inputs differently: " +
            "\"2024-01-15 12:00:00\" gave 1705319999999, Timestamp.parse 1705320000000; " +
            "\"1970-01-01 00:00:00\" gave -1, Timestamp.parse 0; " +
            "\"1969-12-31 23:59:59\" gave -1001, Timestamp.parse -1000; " +
            "\"2000-02-29 00:00:00\" gave 951782399999, Timestamp.parse 951782400000; " +
            "\"2024-02-29 23:59:59\" gave 1709251198999, Timestamp.parse 1709251199000; " +
            "\"0001-01-01 00:00:00\" gave -62135596800001, Timestamp.parse -62135596800000; " +
            "\"9999-12-31 23:59:59\" gave 253402300798999, Timestamp.parse 253402300799000"
        )
      }))

    it.effect("a failed self-test turns the fast path off, with a warning that gives the reason", () =>
      Effect.gen(function*() {
        const logs = captureLogs()
        const decided = yield* confirmFastPathWith(oneMsLow)(engine.name, columns).pipe(Effect.provide(logs.layer))
        expect(decided).toBeUndefined()
        const warnings = logs.lines.filter((l) => l.level === "WARN")
        expect(warnings.map((l) => l.message)).toEqual([
          "SQL fast path off: the engine failed its self-test; every row converts in JavaScript"
        ])
        expect(String(warnings[0]!.reason)).toMatch(/^the engine converts 7 of 21 inputs differently: "2024-01-15 12:00:00" gave 1705319999999/)
      }))

    // A lost connection says nothing of the engine: it fails as the database's error, with no
    // warning that the fast path is off (a backend terminated in the self-test of a CLI run printed
    // "SQL fast path off" and then the connection error).
    it.effect("a self-test whose connection is lost fails with the database's error, leaving the fast path alone", () =>
      Effect.gen(function*() {
        if (engine.name === "sqlite") return
        const killer: Expression = (source, dialect) =>
          `(CASE WHEN pg_terminate_backend(pg_backend_pid()) THEN length(${FastPath.epochMillisExpression(source, dialect)}::text) END)`
        const logs = captureLogs()
        // A client of its own: the terminated connection is not the file's shared one.
        const failed = yield* confirmFastPathWith(killer)(engine.name, columns).pipe(
          Effect.provide(logs.layer),
          Effect.flip,
          Effect.provide(engine.layer())
        )
        expect(SqlErrors.isConnectionLost(failed), SqlErrors.failureText(failed)).toBe(true)
        expect(SqlErrors.failureText(failed)).toMatch(/terminating connection due to administrator command|Connection terminated/)
        expect(logs.lines.filter((l) => l.level === "WARN")).toEqual([])
      }))

    it.effect("a job without a fast path runs no self-test", () =>
      Effect.gen(function*() {
        const never: Expression = () => {
          throw new Error("the self-test ran for a job without a fast path")
        }
        expect(yield* confirmFastPathWith(never)(engine.name, undefined)).toBeUndefined()
      }))
  })
})
