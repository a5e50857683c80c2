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
 * @since 0.1.0
 */
import type { Dialect } from "./Compile.js"
import type { Identifier } from "./Identifier.js"
import { quote } from "./Identifier.js"

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
 * otherwise roll over (`2024-02-30` → March 1) or not read at all (month 13, `23:59:60`). `strftime('%s')` is then exact integer seconds (no `julianday` float, which is
 * 1 ms low on about half of all rows).
 */
const sqliteExpression = (source: string): string =>
  `(CASE WHEN ${sqliteShape(source)} AND substr(${source}, 1, 4) <> '0000' ` +
  `AND substr(${source}, 12, 2) < '24' ` +
  `AND strftime('%Y-%m-%d %H:%M:%S', ${source}) = ${source} ` +
  `THEN CAST(strftime('%s', ${source}) AS INTEGER) * 1000 END)`

/**
 * PostgreSQL: the shape by regex, then the calendar checked in integers (leap years included)
 * before any date arithmetic, then epoch ms computed from the digits (days-from-civil), so no cast
 * of a date can ever raise and no server setting (DateStyle, TimeZone) is involved. The nested
 * CASE guarantees the digit casts only run on text the regex accepted.
 */
const pgExpression = (source: string): string => {
  const part = (start: number, length: number) => `substr(${source}, ${start}, ${length})::int`
  const year = part(1, 4)
  const month = part(6, 2)
  const day = part(9, 2)
  const hour = part(12, 2)
  const minute = part(15, 2)
  const second = part(18, 2)
  const leap = `((${year} % 4 = 0 AND ${year} % 100 <> 0) OR ${year} % 400 = 0)`
  const monthDays =
    `(CASE WHEN ${month} = 2 THEN (CASE WHEN ${leap} THEN 29 ELSE 28 END) WHEN ${month} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)`
  const valid =
    `${year} >= 1 AND ${month} BETWEEN 1 AND 12 AND ${day} >= 1 AND ${day} <= ${monthDays} ` +
    `AND ${hour} <= 23 AND ${minute} <= 59 AND ${second} <= 59`
  // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil, for years >= 0,
  // where integer division truncating toward zero is floor division).
  const marchYear = `(${year} - (CASE WHEN ${month} <= 2 THEN 1 ELSE 0 END))::bigint`
  const marchMonth = `((${month} + 9) % 12)`
  const days =
    `(365 * ${marchYear} + ${marchYear} / 4 - ${marchYear} / 100 + ${marchYear} / 400 + (153 * ${marchMonth} + 2) / 5 + ${day} - 1 - 719468)`
  const millis = `((${days} * 86400 + ${hour} * 3600 + ${minute} * 60 + ${second}) * 1000)`
  return `(CASE WHEN ${pgShape(source)} THEN (CASE WHEN ${valid} THEN ${millis} END) END)`
}

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
 * A cheap SQL test of the column `source` for the shape alone (no calendar check): true for every
 * value `epochMillisExpression` converts, and also for shaped text that is no real instant
 * (`2024-02-30 10:00:00`, where the expression yields NULL). An `UPDATE` can filter on it and set
 * the full expression, evaluating that once per row.
 *
 * @since 0.1.0
 */
export const shapeTest = (source: Identifier, dialect: Dialect): string =>
  dialect === "sqlite" ? sqliteShape(quote(source)) : pgShape(quote(source))
