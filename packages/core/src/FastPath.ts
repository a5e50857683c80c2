/**
 * The in-database fast path of timestamp shadows: a SQL expression per dialect that converts the
 * one shape legacy SQLite writes (`YYYY-MM-DD HH:MM:SS`, `CURRENT_TIMESTAMP`'s format) to epoch
 * milliseconds inside the `UPDATE`, and yields NULL for everything else. The backfill runs it
 * first and sends every row it left NULL through `Timestamp.parse` in JavaScript, so the fast
 * path only has to be right about what it accepts; a property test against both engines proves it
 * equals `Timestamp.parse` there, and that it accepts nothing `Timestamp.parse` rejects.
 *
 * Never raises: an invalid calendar date must not abort the batch's statement.
 *
 * Not trusted either: an engine's date functions differ between versions (SQLite 3.40's `strftime`
 * printed `2023-02-29` back unchanged, 3.53's does not), so before a backfill uses the expression on
 * a connection it runs `selfTestCases` through it there (`selfTestFailure` judges the rows) and
 * converts in JavaScript if the engine gets any of them wrong.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import type { Dialect } from "./Compile.js"
import type { Identifier } from "./Identifier.js"
import { quote } from "./Identifier.js"
import * as Timestamp from "./Timestamp.js"

/**
 * The shape the fast path converts; any other text is left to `Timestamp.parse`.
 *
 * @since 0.1.0
 */
export const shape = "YYYY-MM-DD HH:MM:SS"

const sqliteGlob = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]"

const sqliteShape = (source: string): string => `(typeof(${source}) = 'text' AND ${source} GLOB '${sqliteGlob}')`

const pgShape = (source: string): string => `(${source} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$')`

/**
 * SQLite: the shape by GLOB (ASCII digits only), year 0000 refused (`Timestamp.parse` starts at
 * 0001), hour 24 refused (SQLite 3.53 reads `24:00:01` and even prints it back unchanged), and
 * the text must print back unchanged through `strftime`, which refuses what SQLite would
 * otherwise roll over (`2024-02-30` → March 1) or not read at all (month 13, `23:59:60`). The
 * no-op modifier `'+0 seconds'` makes `strftime` normalise the date before printing it: without a
 * modifier SQLite 3.40 prints `2023-02-29` back as given. `strftime('%s')` is then exact integer
 * seconds (no `julianday` float, which is 1 ms low on about half of all rows).
 */
const sqliteExpression = (source: string): string =>
  `(CASE WHEN ${sqliteShape(source)} AND substr(${source}, 1, 4) <> '0000' ` +
  `AND substr(${source}, 12, 2) < '24' ` +
  `AND strftime('%Y-%m-%d %H:%M:%S', ${source}, '+0 seconds') = ${source} ` +
  `THEN CAST(strftime('%s', ${source}) AS INTEGER) * 1000 END)`

/**
 * PostgreSQL, for text already of the shape: the calendar checked on the digits (text compared under the
 * "C" collation, so no locale is involved; the year as an integer only for February's leap rule)
 * before the text is cast: a cast of an invalid date raises and would abort the whole statement, so
 * the nested CASE guarantees the cast only sees real instants. ISO year-first text reads the same
 * under every DateStyle, and `timestamp` (without zone) ignores the session TimeZone: EXTRACT gives
 * the seconds since 1970-01-01 00:00 of the wall time, read as UTC.
 */
const pgWhenShaped = (source: string): string => {
  const part = (start: number, length: number) => `substr(${source}, ${start}, ${length}) COLLATE "C"`
  const year = `substr(${source}, 1, 4)::int`
  const leap = `(${year} % 4 = 0 AND (${year} % 100 <> 0 OR ${year} % 400 = 0))`
  const lastDay = `(CASE ${part(6, 2)} WHEN '02' THEN (CASE WHEN ${leap} THEN '29' ELSE '28' END) ` +
    `WHEN '04' THEN '30' WHEN '06' THEN '30' WHEN '09' THEN '30' WHEN '11' THEN '30' ELSE '31' END)`
  const valid = `${part(1, 4)} <> '0000' AND ${part(6, 2)} BETWEEN '01' AND '12' AND ${part(9, 2)} >= '01' ` +
    `AND ${part(12, 2)} <= '23' AND ${part(15, 2)} <= '59' AND ${part(18, 2)} <= '59' AND ${part(9, 2)} <= ${lastDay}`
  return `(CASE WHEN ${valid} THEN (EXTRACT(EPOCH FROM ${source}::timestamp))::bigint * 1000 END)`
}

/** PostgreSQL: the shape by regex, then `pgWhenShaped`. */
const pgExpression = (source: string): string => `(CASE WHEN ${pgShape(source)} THEN ${pgWhenShaped(source)} END)`

/**
 * A SQL expression of the column `source`: its epoch milliseconds when it holds exactly
 * `YYYY-MM-DD HH:MM:SS` (UTC) of a real calendar instant that `Timestamp.parse` accepts, NULL
 * for anything else (other shapes, invalid dates, NULL, non-text values). Never raises.
 *
 * @since 0.1.0
 */
export const epochMillisExpression = (source: Identifier, dialect: Dialect): string =>
  dialect === "sqlite" ? sqliteExpression(quote(source)) : pgExpression(quote(source))

/**
 * The part of `epochMillisExpression` after its shape test, on PostgreSQL: for a row whose `source` is
 * known to have the shape (`shapeTest` true, e.g. in the WHERE of the `UPDATE` that sets it), its epoch
 * milliseconds, or NULL for shaped text that is no real instant. `epochMillisExpression` is exactly
 * `(CASE WHEN <shapeTest> THEN <this> END)`, so under the guard the two agree, and the shape's regex runs
 * once per row instead of twice. On text of another shape its cast may raise: use it only under the guard.
 * SQLite has none: its `UPDATE` does not filter on the guard (the expression tests the shape itself).
 *
 * @since 0.3.0
 */
export const epochMillisWhenShaped = (source: Identifier): string => pgWhenShaped(quote(source))

/**
 * A cheap SQL test of the column `source` for the shape alone (no calendar check): true for every
 * value `epochMillisExpression` converts, and also for shaped text that is no real instant
 * (`2024-02-30 10:00:00`, where the expression yields NULL). An `UPDATE` can filter on it and set
 * the full expression, evaluating that once per row.
 *
 * @since 0.1.0
 */
export const shapeTest = (source: Identifier, dialect: Dialect): string =>
  dialect === "sqlite" ? sqliteShape(quote(source)) : pgShape(quote(source))

/**
 * The texts a connection's engine must convert exactly as `Timestamp.parse` does before a backfill
 * uses the fast path there: real instants at the ends of the calendar and around leap days, the
 * impossible dates engines have been seen to roll over (`2023-02-29`, `2024-02-30`, `1900-02-29`),
 * out-of-range fields, and other shapes, which must stay NULL. `expected` is parse's value for the
 * fast path's shape, NULL for anything else.
 *
 * @since 0.2.0
 * @category self-test
 */
export const selfTestCases: ReadonlyArray<{ readonly text: string; readonly expected: number | null }> = [
  "2024-01-15 12:00:00",
  "1970-01-01 00:00:00",
  "1969-12-31 23:59:59",
  "2000-02-29 00:00:00",
  "2024-02-29 23:59:59",
  "0001-01-01 00:00:00",
  "9999-12-31 23:59:59",
  "2023-02-29 00:00:00",
  "2024-02-30 10:00:00",
  "1900-02-29 00:00:00",
  "2100-02-29 12:00:00",
  "2024-04-31 00:00:00",
  "2024-13-01 00:00:00",
  "2024-00-10 00:00:00",
  "2024-01-00 00:00:00",
  "2024-01-15 24:00:00",
  "2024-01-15 23:60:00",
  "2024-01-15 23:59:60",
  "0000-01-01 00:00:00",
  "2024-01-15T12:00:00",
  "2024-01-15 12:00:00.5"
].map((text) => ({
  text,
  expected: /^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$/.test(text)
    ? Either.getOrNull(Timestamp.parse(text))
    : null
}))

/**
 * Why an engine failed the self-test, or undefined when it passed: `values` are what the
 * expression yielded for `selfTestCases`, in order (numbers, numeric text or bigints; NULL as null).
 *
 * @since 0.2.0
 * @category self-test
 */
export const selfTestFailure = (values: ReadonlyArray<unknown>): string | undefined => {
  if (values.length !== selfTestCases.length) {
    return `the self-test returned ${values.length} rows for ${selfTestCases.length} inputs`
  }
  const wrong = selfTestCases.flatMap(({ expected, text }, i) => {
    const value = values[i]
    const got = value === null || value === undefined ? null : Number(value)
    return got === expected ? [] : [`${JSON.stringify(text)} gave ${got ?? "NULL"}, Timestamp.parse ${expected ?? "NULL"}`]
  })
  return wrong.length === 0 ? undefined : `the engine converts ${wrong.length} of ${values.length} inputs differently: ${wrong.join("; ")}`
}
