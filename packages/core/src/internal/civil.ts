/**
 * Proleptic Gregorian calendar arithmetic on plain integers, after Howard Hinnant's
 * `days_from_civil` / `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html).
 * Done by hand so that no result depends on `Date`'s parser or the machine's time zone.
 * @internal
 */

/** Milliseconds in one UTC day (no leap seconds, as in POSIX time). */
export const MS_PER_DAY = 86_400_000

const MONTH_NAMES = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December"
] as const

/** English month name for 1-12, used in error reasons. */
export const monthName = (month: number): string => MONTH_NAMES[month - 1] ?? `month ${month}`

/** Whether `year` is a Gregorian leap year. */
export const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

/** Number of days in `month` (1-12) of `year`. */
export const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (isLeapYear(year) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31

/** Days since 1970-01-01 of a valid civil date (month 1-12, day 1-31). */
export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

/** A civil date in the proleptic Gregorian calendar (astronomical year numbering: year 0 = 1 BC). */
export interface CivilDate {
  readonly year: number
  readonly month: number
  readonly day: number
}

/** The civil date of a day count since 1970-01-01. */
export const civilFromDays = (days: number): CivilDate => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const dayOfEra = z - era * 146_097
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365
  )
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100))
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153)
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day }
}

/** The broken-down UTC fields of an epoch-milliseconds value. */
export interface CivilDateTime extends CivilDate {
  readonly hour: number
  readonly minute: number
  readonly second: number
  readonly millisecond: number
}

/** Splits epoch milliseconds into civil UTC fields (works for any safe integer). */
export const civilFromEpochMillis = (ms: number): CivilDateTime => {
  const days = Math.floor(ms / MS_PER_DAY)
  const msOfDay = ms - days * MS_PER_DAY
  const { day, month, year } = civilFromDays(days)
  return {
    year,
    month,
    day,
    hour: Math.floor(msOfDay / 3_600_000),
    minute: Math.floor(msOfDay / 60_000) % 60,
    second: Math.floor(msOfDay / 1000) % 60,
    millisecond: msOfDay % 1000
  }
}

/** Zero-padded decimal of a non-negative integer. */
export const pad = (value: number, width: number): string => String(value).padStart(width, "0")

/**
 * A year as ISO 8601 writes it: four digits for 0000-9999, otherwise the expanded
 * six-digit form with a sign (`+010000`, `-000001`), as `Date.prototype.toISOString` does.
 */
export const isoYear = (year: number): string =>
  year >= 0 && year <= 9999 ? pad(year, 4) : (year < 0 ? "-" : "+") + pad(Math.abs(year), 6)
