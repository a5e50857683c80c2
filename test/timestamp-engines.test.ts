/**
 * `Timestamp.parse` agrees with what SQLite and PostgreSQL compute in SQL for the same text,
 * so an in-SQL fast path and the JS path of a backfill can never disagree.
 *
 * The seeds' SQLite backfill used `CAST((julianday(t) - 2440587.5) * 86400000 AS INTEGER)`,
 * which truncates a float that is often a hair below the exact value: about half of all rows
 * came out 1 ms low. The `ROUND` form is exact; a test below shows the plain form is not.
 *
 * These tests only SELECT from literal arrays (no tables), so parallel test files cannot collide.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Timestamp } from "@strata/core"
import { Array as Arr, Effect, Either, FastCheck as fc } from "effect"
import { describePg, pgTestLayer, sqliteTestLayer } from "./support/databases.js"

const BATCH = 500
const SAMPLES = 5000

const FIRST_MS = Date.UTC(1971, 0, 1)
const LAST_MS = Date.UTC(2101, 0, 1) - 1

const pad = (value: number, width: number) => String(value).padStart(width, "0")

/** `YYYY-MM-DD` + separator + `HH:MM:SS`, from Date's own printer (independent of the parser under test). */
const secondText = (ms: number, separator: string) => {
  const iso = new Date(ms).toISOString()
  return `${iso.slice(0, 10)}${separator}${iso.slice(11, 19)}`
}

const secondTexts = fc.tuple(fc.integer({ min: FIRST_MS, max: LAST_MS }), fc.constantFrom("T", " "))
  .map(([ms, separator]) => secondText(ms, separator))

const offset = (form: "colon" | "basic" | "hour") =>
  fc.tuple(fc.constantFrom("+", "-"), fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 59 })).map(
    ([sign, hours, minutes]) =>
      form === "colon"
        ? `${sign}${pad(hours, 2)}:${pad(minutes, 2)}`
        : form === "basic"
        ? `${sign}${pad(hours, 2)}${pad(minutes, 2)}`
        : `${sign}${pad(hours, 2)}`
  )

/** Texts with a fraction of `minDigits`-`maxDigits` digits and a zone drawn from `zones`. */
const fractionalTexts = (minDigits: number, maxDigits: number, zones: fc.Arbitrary<string>) =>
  fc.tuple(
    fc.integer({ min: FIRST_MS, max: LAST_MS }),
    fc.constantFrom("T", " "),
    fc.stringMatching(new RegExp(`^[0-9]{${minDigits},${maxDigits}}$`)),
    zones
  ).map(([ms, separator, fraction, zone]) => `${secondText(ms, separator)}${fraction === "" ? "" : `.${fraction}`}${zone}`)

const sample = <A>(arbitrary: fc.Arbitrary<A>): ReadonlyArray<A> => fc.sample(arbitrary, SAMPLES)

const parsed = (text: string): number => Either.getOrThrow(Timestamp.parse(text))

/** Runs `query` once per batch of 500 texts and concatenates the rows (in input order). */
const inBatches = <Row, E, R>(
  texts: ReadonlyArray<string>,
  query: (batch: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Row>, E, R>
) => Effect.map(Effect.forEach(Arr.chunksOf(texts, BATCH), query), Arr.flatten)

interface SqliteRow {
  readonly text: string
  readonly rounded: number
  readonly truncated: number
}

const sqliteEpochMillis = (texts: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    inBatches(texts, (batch) =>
      sql.unsafe<SqliteRow>(
        `SELECT value AS text,
                CAST(ROUND((julianday(value) - 2440587.5) * 86400000) AS INTEGER) AS rounded,
                CAST((julianday(value) - 2440587.5) * 86400000 AS INTEGER) AS truncated
           FROM json_each(?) ORDER BY key`,
        [JSON.stringify(batch)]
      )))

layer(sqliteTestLayer())("Timestamp.parse vs SQLite julianday", (it) => {
  it.effect("equals CAST(ROUND((julianday(t) - 2440587.5) * 86400000) AS INTEGER) on second-precision text", () =>
    Effect.gen(function*() {
      const texts = sample(secondTexts)
      const rows = yield* sqliteEpochMillis(texts)
      expect(rows.map((row) => row.text)).toEqual(texts)
      const mismatches = rows.filter((row) => row.rounded !== parsed(row.text))
      expect(mismatches).toEqual([])
    }))

  it.effect("equals the ROUND form on millisecond fractions with Z and ±HH:MM offsets", () =>
    Effect.gen(function*() {
      const texts = sample(fractionalTexts(1, 3, fc.oneof(fc.constant(""), fc.constant("Z"), offset("colon"))))
      const rows = yield* sqliteEpochMillis(texts)
      const mismatches = rows.filter((row) => row.rounded !== parsed(row.text))
      expect(mismatches).toEqual([])
    }))

  it.effect("the seeds' plain CAST form is 1 ms low on a large share of rows (the bug ROUND fixes)", () =>
    Effect.gen(function*() {
      const texts = sample(secondTexts)
      const rows = yield* sqliteEpochMillis(texts)
      const low = rows.filter((row) => row.truncated !== parsed(row.text))
      expect(low.length / rows.length).toBeGreaterThan(0.2)
      // Every disagreement is the truncation: exactly one millisecond below the true instant.
      expect(low.filter((row) => row.truncated !== parsed(row.text) - 1)).toEqual([])
    }))
})

describePg("Timestamp.parse vs PostgreSQL", () => {
  // Through Database.layer: every connection's session TimeZone is UTC, as strata always runs it.
  const pgLayer = pgTestLayer()

  const pgEpochMillis = (texts: ReadonlyArray<string>) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      inBatches(texts, (batch) =>
        sql.unsafe<{ readonly text: string; readonly ms: string }>(
          `SELECT t AS text, floor(extract(epoch FROM t::timestamptz) * 1000)::bigint::text AS ms
             FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i`,
          [batch]
        )))

  layer(pgLayer)((it) => {
    it.effect("the session reads naive text as UTC", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql.unsafe<{ readonly zone: string }>("SELECT current_setting('TimeZone') AS zone")
        expect(rows).toEqual([{ zone: "UTC" }])
      }))

    it.effect("equals floor(extract(epoch from t::timestamptz) * 1000) on second-precision text", () =>
      Effect.gen(function*() {
        const texts = sample(secondTexts)
        const rows = yield* pgEpochMillis(texts)
        expect(rows.map((row) => row.text)).toEqual(texts)
        expect(rows.filter((row) => Number(row.ms) !== parsed(row.text))).toEqual([])
      }))

    it.effect("equals it on text with up to 6 fraction digits and Z, ±HH:MM, ±HHMM, ±HH offsets", () =>
      Effect.gen(function*() {
        const zones = fc.oneof(fc.constant(""), fc.constant("Z"), offset("colon"), offset("basic"), offset("hour"))
        const texts = sample(fractionalTexts(0, 6, zones))
        const rows = yield* pgEpochMillis(texts)
        expect(rows.map((row) => row.text)).toEqual(texts)
        expect(rows.filter((row) => Number(row.ms) !== parsed(row.text))).toEqual([])
      }))

    it.effect("equals it on the examples of the time contract", () =>
      Effect.gen(function*() {
        const texts = [
          "2024-01-15 12:00:00",
          "2024-01-15T12:00:00Z",
          "2024-01-15T20:00:00+08:00",
          "2024-01-15T07:00:00-05:00",
          "2024-01-15T12:00",
          "2024-01-15 12:00:00+08:00",
          "2024-01-15",
          "2024-01-15T12:00:00.999999Z",
          "2029-10-25 19:38:55",
          "2000-02-29 23:59:59.999"
        ]
        const rows = yield* pgEpochMillis(texts)
        expect(rows.map((row) => Number(row.ms))).toEqual(texts.map(parsed))
        expect(rows.map((row) => Number(row.ms)).slice(0, 9)).toEqual([
          1705320000000,
          1705320000000,
          1705320000000,
          1705320000000,
          1705320000000,
          1705291200000,
          1705276800000,
          1705320000999,
          1887651535000
        ])
      }))
  })
})
