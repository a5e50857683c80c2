/**
 * A frozen copy of `Timestamp.parse`'s text parser as it was before issue 12 widened the grammar
 * (commit b7004f4), with the calendar helpers it used: the baseline of the benchmark's "within 1.2x
 * of the old parser" budget, measured in the same run as today's parser. Never edit it and never
 * import it outside the benchmark: it is a measuring stick, not a second definition of time.
 */
/* eslint-disable */
const MS_PER_DAY = 86_400_000

const MONTH_NAMES = [
  "January", "February", "March", "April", "May", "June",
  "July", "August", "September", "October", "November", "December"
] as const

/** English month name for 1-12, used in error reasons. */
const monthName = (month: number): string => MONTH_NAMES[month - 1] ?? `month ${month}`

/** Whether `year` is a Gregorian leap year. */
const isLeapYear = (year: number): boolean => (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0

/** Number of days in `month` (1-12) of `year`. */
const daysInMonth = (year: number, month: number): number =>
  month === 2 ? (isLeapYear(year) ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31

/** Days since 1970-01-01 of a valid civil date (month 1-12, day 1-31). */
const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yearOfEra = y - era * 400
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146_097 + dayOfEra - 719_468
}

const pad = (value: number, width: number): string => String(value).padStart(width, "0")


/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants with a four-digit UTC year. */
const MIN_INSTANT = -62_135_596_800_000
const MAX_INSTANT = 253_402_300_799_999

const CHAR_SPACE = 32
const CHAR_PLUS = 43
const CHAR_MINUS = 45
const CHAR_DOT = 46
const CHAR_COLON = 58
const CHAR_T = 84
const CHAR_Z = 90

/** Value of two ASCII digits at `at`, or -1 (also past the end, where charCodeAt gives NaN). */
const twoDigits = (text: string, at: number): number => {
  const tens = text.charCodeAt(at) - 48
  const ones = text.charCodeAt(at + 1) - 48
  return tens >= 0 && tens <= 9 && ones >= 0 && ones <= 9 ? tens * 10 + ones : -1
}

const isDigitAt = (text: string, at: number): boolean => {
  const code = text.charCodeAt(at)
  return code >= 48 && code <= 57
}

const expected = (text: string, what: string, at: number): string =>
  text.length !== text.trim().length
    ? "leading or trailing whitespace is not allowed"
    : `unrecognised format: expected ${what} at position ${at}` +
      (at >= text.length ? " (the text ends there)" : ` (found ${JSON.stringify(text.charAt(at))})`)

/**
 * Epoch milliseconds for `text`, or a human-readable reason why it is not a timestamp.
 * Grammar (positions are 0-based, every field has exactly the digits shown):
 * `YYYY-MM-DD` | `YYYY-MM-DD(T| )HH:MM[:SS[.F+]][Z|±HH[[:]MM]]`.
 */
export const parseEpochMillisBaseline = (text: string): number | string => {
  const length = text.length
  if (length === 0) return "empty string"

  const yearHigh = twoDigits(text, 0)
  const yearLow = twoDigits(text, 2)
  if (yearHigh < 0 || yearLow < 0) return expected(text, "a 4-digit year", 0)
  if (text.charCodeAt(4) !== CHAR_MINUS) return expected(text, "\"-\" after the year", 4)
  const month = twoDigits(text, 5)
  if (month < 0) return expected(text, "a 2-digit month", 5)
  if (text.charCodeAt(7) !== CHAR_MINUS) return expected(text, "\"-\" after the month", 7)
  const day = twoDigits(text, 8)
  if (day < 0) return expected(text, "a 2-digit day", 8)
  const year = yearHigh * 100 + yearLow

  let hour = 0
  let minute = 0
  let second = 0
  let millisecond = 0
  let offsetSign = 0
  let offsetHour = 0
  let offsetMinute = 0

  if (length > 10) {
    const separator = text.charCodeAt(10)
    if (separator === CHAR_Z || separator === CHAR_PLUS || separator === CHAR_MINUS) {
      return "a zone designator needs a time of day (YYYY-MM-DDTHH:MM...)"
    }
    if (separator !== CHAR_T && separator !== CHAR_SPACE) {
      return expected(text, "\"T\" or \" \" between date and time", 10)
    }
    hour = twoDigits(text, 11)
    if (hour < 0) return expected(text, "a 2-digit hour", 11)
    if (text.charCodeAt(13) !== CHAR_COLON) return expected(text, "\":\" after the hour", 13)
    minute = twoDigits(text, 14)
    if (minute < 0) return expected(text, "a 2-digit minute", 14)
    let position = 16
    if (text.charCodeAt(position) === CHAR_COLON) {
      second = twoDigits(text, 17)
      if (second < 0) return expected(text, "a 2-digit second", 17)
      position = 19
      if (text.charCodeAt(position) === CHAR_DOT) {
        position++
        if (!isDigitAt(text, position)) return expected(text, "fraction digits after \".\"", position)
        // Truncate (floor) to the millisecond: read three digits, then only check the rest are digits.
        let scale = 100
        while (isDigitAt(text, position)) {
          millisecond += (text.charCodeAt(position) - 48) * scale
          scale = scale / 10 | 0
          position++
        }
      }
    }
    if (position < length) {
      const zone = text.charCodeAt(position)
      if (zone === CHAR_Z) {
        position++
      } else if (zone === CHAR_PLUS || zone === CHAR_MINUS) {
        offsetSign = zone === CHAR_PLUS ? 1 : -1
        offsetHour = twoDigits(text, position + 1)
        if (offsetHour < 0) return expected(text, "a 2-digit offset hour", position + 1)
        position += 3
        if (position < length) {
          if (text.charCodeAt(position) === CHAR_COLON) position++
          offsetMinute = twoDigits(text, position)
          if (offsetMinute < 0) return expected(text, "a 2-digit offset minute", position)
          position += 2
        }
      } else {
        return expected(text, "\"Z\", \"+HH:MM\", \"-HH:MM\" or the end", position)
      }
    }
    if (position < length) return expected(text, "the end", position)
  }

  if (year === 0) return "year 0000 is out of range (0001-9999)"
  if (month < 1 || month > 12) return `month ${pad(month, 2)} is out of range (01-12)`
  if (day < 1 || day > 31) return `day ${pad(day, 2)} is out of range (01-31)`
  if (day > daysInMonth(year, month)) return `${monthName(month)} ${day} does not exist in ${pad(year, 4)}`
  if (hour > 23) return `hour ${pad(hour, 2)} is out of range (00-23)`
  if (minute > 59) return `minute ${pad(minute, 2)} is out of range (00-59)`
  if (second > 59) return `second ${pad(second, 2)} is out of range (00-59; leap seconds are not accepted)`
  if (offsetHour > 23) return `offset hour ${pad(offsetHour, 2)} is out of range (00-23)`
  if (offsetMinute > 59) return `offset minute ${pad(offsetMinute, 2)} is out of range (00-59)`

  const local = daysFromCivil(year, month, day) * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 +
    millisecond
  if (offsetSign === 0) return local
  const instant = local - offsetSign * (offsetHour * 3_600_000 + offsetMinute * 60_000)
  // Keeps "whatever parse accepts, toIso prints and parse reads back" true at the ends of the range.
  if (instant < MIN_INSTANT || instant > MAX_INSTANT) return "the instant falls outside years 0001-9999 in UTC"
  return instant
}
