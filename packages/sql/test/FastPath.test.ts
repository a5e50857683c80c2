/**
 * The in-SQL fast path of timestamp shadows equals `Timestamp.parse` on both engines: for every
 * text of the exact `YYYY-MM-DD HH:MM:SS` shape it yields parse's epoch ms, or NULL where parse
 * rejects (invalid calendar dates, hour 24, leap seconds, year 0000); every other text is NULL (left
 * to the JS path). No text makes the expression raise.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, layer } from "@effect/vitest"
import { FastPath, type Identifier, Timestamp } from "@strata/core"
import { Effect, Either, FastCheck as fc } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"

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
  })
})
