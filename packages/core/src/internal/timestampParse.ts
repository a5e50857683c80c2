/**
 * The hand-written timestamp text parser behind `Timestamp.parse` (the default grammar; the
 * module documentation of `Timestamp` gives it in full).
 *
 * One pass over char codes, no regular expression, no allocation on success: backfills call it
 * for every row. Syntax is checked first (so a malformed string reports where it went wrong),
 * then field ranges and the calendar (so `2024-02-30` says why it is wrong). Surrounding
 * whitespace is skipped by moving the bounds, never by `trim()`, which would copy the string.
 * @internal
 */
import { daysFromCivil, daysInMonth, monthName, MS_PER_DAY, pad } from "./civil.js"

/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants with a four-digit UTC year. */
export const MIN_INSTANT = -62_135_596_800_000
export const MAX_INSTANT = 253_402_300_799_999

/** Why a well-formed date and time is refused: its instant, after the offset, is outside the range. */
export const OUT_OF_RANGE = "the instant falls outside years 0001-9999 in UTC"

const CHAR_SPACE = 32
const CHAR_PLUS = 43
const CHAR_COMMA = 44
const CHAR_MINUS = 45
const CHAR_DOT = 46
const CHAR_COLON = 58
const CHAR_T = 84
const CHAR_Z = 90
const CHAR_LOWER_T = 116
const CHAR_LOWER_Z = 122
const CHAR_BRACKET = 91

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

/** ASCII whitespace (tab, LF, VT, FF, CR, space): what may surround a timestamp. */
export const isAsciiSpace = (code: number): boolean => code === CHAR_SPACE || (code >= 9 && code <= 13)

const isLetter = (code: number): boolean => (code >= 65 && code <= 90) || (code >= 97 && code <= 122)

/** How a reason shows one character: quoted, or by code point when it would not be visible. */
export const describeChar = (char: string): string => {
  const code = char.codePointAt(0) ?? 0
  return code > 127 && /\s/u.test(char)
    ? `U+${code.toString(16).toUpperCase().padStart(4, "0")}, a non-ASCII space`
    : JSON.stringify(char)
}

const expected = (text: string, what: string, at: number, end: number): string =>
  `unrecognised format: expected ${what} at position ${at}` +
  (at >= end ? " (the text ends there)" : ` (found ${describeChar(text.charAt(at))})`)

/** The text's bounds without surrounding ASCII whitespace (positions in a reason stay those of the text as given). */
export const trimmedStart = (text: string): number => {
  let start = 0
  while (start < text.length && isAsciiSpace(text.charCodeAt(start))) start++
  return start
}

export const trimmedEnd = (text: string, start: number): number => {
  let end = text.length
  while (end > start && isAsciiSpace(text.charCodeAt(end - 1))) end--
  return end
}

/** The run of characters from `at` up to the next space or the end: a zone token, for reasons only. */
const tokenAt = (text: string, at: number, end: number): string => {
  let stop = at
  while (stop < end && text.charCodeAt(stop) !== CHAR_SPACE) stop++
  return text.slice(at, stop)
}

/** Why a word after the time is not accepted (UTC and GMT are, and are handled before). */
const zoneWordReason = (token: string): string => {
  if (/^(UTC|GMT)[+-]/i.test(token)) {
    return `time zone ${JSON.stringify(token)} is ambiguous (POSIX TZ rules read it as west of Greenwich, most other ` +
      "software as east); write the offset instead (\"+08:00\" or \"-08:00\")"
  }
  if (token.includes("/")) {
    return `time-zone name ${JSON.stringify(token)} without an offset: strata has no time-zone database, so local time ` +
      "there has no instant; write the offset (\"+01:00\"), or the offset and the zone in brackets (\"+01:00[Europe/Paris]\")"
  }
  return `time-zone abbreviation ${JSON.stringify(token)} is ambiguous (CST, IST and many others name different offsets ` +
    "in different places); write the offset instead (e.g. \"-08:00\"); only UTC and GMT are read as a zone"
}

/** `UTC` or `GMT` (any case) at `at`, not followed by more of a zone's name (`UTCX`, `GMT+8`, `UTC/x`). */
const isUtcWord = (text: string, at: number): boolean => {
  const word = text.slice(at, at + 3).toUpperCase()
  const next = text.charCodeAt(at + 3)
  return (word === "UTC" || word === "GMT") && !(isLetter(next) || (next >= 48 && next <= 57) || next === 47 ||
    next === CHAR_PLUS || next === CHAR_MINUS || next === 95)
}

const isZoneNameStart = (code: number): boolean => isLetter(code) || code === CHAR_DOT || code === 95
const isZoneNameChar = (code: number): boolean =>
  isZoneNameStart(code) || (code >= 48 && code <= 57) || code === CHAR_MINUS || code === CHAR_PLUS

/** RFC 9557 time-zone-name: parts of letters, digits, `.`, `_`, `-`, `+` joined by `/` (a part is neither `.` nor `..`). */
const isZoneName = (name: string): boolean => {
  for (const part of name.split("/")) {
    if (part === "" || part === "." || part === ".." || part.length > 14 || !isZoneNameStart(part.charCodeAt(0))) return false
    for (let i = 1; i < part.length; i++) if (!isZoneNameChar(part.charCodeAt(i))) return false
  }
  return true
}

/** An offset as a time-zone annotation: `±HH:MM` or `±HHMM`. */
const isOffsetName = (name: string): boolean => /^[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])$/.test(name)

const suffixKey = /^[a-z_][a-z0-9_-]*$/
const suffixValues = /^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$/

/**
 * RFC 9557 annotations from `at` to `end`: at most one time zone (`[Asia/Kolkata]`, `[!UTC]`,
 * `[+05:30]`), first, then any number of tags (`[u-ca=iso8601]`). The offset before them gives the
 * instant: the zone is checked for form only (strata has no time-zone database), non-critical tags
 * are ignored, and a critical tag strata does not know (`[!x-foo=bar]`) is refused, as RFC 9557
 * requires of a reader that cannot honour it. Returns undefined when they are well formed.
 */
const annotationsReason = (text: string, at: number, end: number): string | undefined => {
  let position = at
  let first = true
  let calendars = 0
  let criticalCalendar = false
  while (position < end) {
    if (text.charCodeAt(position) !== CHAR_BRACKET) return expected(text, "\"[\" or the end", position, end)
    const close = text.indexOf("]", position)
    if (close < 0 || close >= end) return `unrecognised format: the annotation at position ${position} has no closing "]"`
    const annotation = text.slice(position, close + 1)
    const critical = text.charCodeAt(position + 1) === 33
    const body = text.slice(position + (critical ? 2 : 1), close)
    const equals = body.indexOf("=")
    if (equals < 0) {
      if (!first) return `the time-zone annotation ${annotation} must come first, and only once`
      if (!isZoneName(body) && !isOffsetName(body)) return `${annotation} is not a time-zone annotation (RFC 9557)`
    } else {
      const key = body.slice(0, equals)
      if (!suffixKey.test(key) || !suffixValues.test(body.slice(equals + 1))) {
        return `${annotation} is not an RFC 9557 annotation`
      }
      // The calendar only says how to display the date; the digits are ISO 8601's whatever it names.
      if (critical && key !== "u-ca") return `critical annotation ${annotation} is not understood`
      if (key === "u-ca") {
        calendars++
        criticalCalendar ||= critical
        // RFC 9557: two values of one key, one of them critical, are an inconsistency the reader must not pass over.
        if (calendars > 1 && criticalCalendar) return `the calendar annotations conflict (${annotation} and another u-ca, one critical)`
      }
    }
    first = false
    position = close + 1
  }
  return undefined
}

/** Why civil fields are not a date-time (called only once they failed the parser's checks). */
const civilReason = (
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  exactEndOfDay: boolean
): string => {
  if (year === 0) return "year 0000 is out of range (0001-9999)"
  if (month < 1 || month > 12) return `month ${pad(month, 2)} is out of range (01-12)`
  if (day < 1 || day > 31) return `day ${pad(day, 2)} is out of range (01-31)`
  if (day > daysInMonth(year, month)) return `${monthName(month)} ${day} does not exist in ${pad(year, 4)}`
  if (exactEndOfDay) {
    return "hour 24 is out of range (00-23); 24:00:00 as the next day's midnight is an opt-in form (accept endOfDay)"
  }
  if (hour > 23) return `hour ${pad(hour, 2)} is out of range (00-23)`
  if (minute > 59) return `minute ${pad(minute, 2)} is out of range (00-59)`
  return `second ${pad(second, 2)} is out of range (00-59; leap seconds are not accepted)`
}

/** Why an offset (or an offset with a UTC word) is not one. */
const offsetReason = (hour: number, minute: number, second: number, word: string): string => {
  if (hour > 23) return `offset hour ${pad(hour, 2)} is out of range (00-23)`
  if (minute > 59) return `offset minute ${pad(minute, 2)} is out of range (00-59)`
  if (second > 59) return `offset second ${pad(second, 2)} is out of range (00-59)`
  return `the offset contradicts ${word}, which is +00:00`
}

/** Whether the fraction digits in [from, to) are all zero (for `24:00:00.000`). */
const zeroDigits = (text: string, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (text.charCodeAt(i) !== 48) return false
  return true
}

/**
 * Epoch milliseconds for `text`, or a human-readable reason why it is not a timestamp, under the
 * default grammar (`endOfDay` also reads an exact `24:00[:00[.0…]]` as the next day's midnight).
 * Positions in reasons are 0-based offsets into `text` as given.
 */
export const parseEpochMillis = (text: string, endOfDay = false): number | string => {
  let end = text.length
  if (end === 0) return "empty string"
  let s = 0
  if (text.charCodeAt(0) <= CHAR_SPACE || text.charCodeAt(end - 1) <= CHAR_SPACE) {
    s = trimmedStart(text)
    if (s === end) return "the text is only whitespace"
    end = trimmedEnd(text, s)
  }

  const yearHigh = twoDigits(text, s)
  const yearLow = twoDigits(text, s + 2)
  if (yearHigh < 0 || yearLow < 0) return expected(text, "a 4-digit year", s, end)
  const year = yearHigh * 100 + yearLow
  // Extended (YYYY-MM-DD, HH:MM:SS) or basic (YYYYMMDD, HHMMSS) format: the fifth character says which.
  const basic = text.charCodeAt(s + 4) !== CHAR_MINUS
  let month: number
  let day: number
  let position: number
  if (!basic) {
    month = twoDigits(text, s + 5)
    if (month < 0) return expected(text, "a 2-digit month", s + 5, end)
    if (text.charCodeAt(s + 7) !== CHAR_MINUS) return expected(text, "\"-\" after the month", s + 7, end)
    day = twoDigits(text, s + 8)
    if (day < 0) return expected(text, "a 2-digit day", s + 8, end)
    position = s + 10
  } else {
    if (!isDigitAt(text, s + 4)) return expected(text, "\"-\" after the year", s + 4, end)
    month = twoDigits(text, s + 4)
    if (month < 0) return expected(text, "a 2-digit month", s + 4, end)
    day = twoDigits(text, s + 6)
    if (day < 0) return expected(text, "a 2-digit day", s + 6, end)
    if (s + 8 === end) {
      return "a basic-format date (YYYYMMDD) needs a time (YYYYMMDDTHHMMSS): eight digits alone could as well be a number"
    }
    position = s + 8
  }

  let hour = 0
  let minute = 0
  let second = 0
  let millisecond = 0
  let fractionStart = 0
  let fractionEnd = 0
  let offsetMs = 0
  let offsetHour = 0
  let offsetMinute = 0
  let offsetSecond = 0
  let offsetSign = 0
  let utcWord = false

  if (position < end) {
    const separator = text.charCodeAt(position)
    if (separator === CHAR_Z || separator === CHAR_LOWER_Z || separator === CHAR_PLUS || separator === CHAR_MINUS) {
      return "a zone designator needs a time of day (YYYY-MM-DDTHH:MM...)"
    }
    if (separator !== CHAR_T && separator !== CHAR_LOWER_T && (basic || separator !== CHAR_SPACE)) {
      return expected(text, basic ? "\"T\" between date and time" : "\"T\" or \" \" between date and time", position, end)
    }
    position++
    hour = twoDigits(text, position)
    if (hour < 0) return expected(text, "a 2-digit hour", position, end)
    position += 2
    if (!basic) {
      if (text.charCodeAt(position) !== CHAR_COLON) return expected(text, "\":\" after the hour", position, end)
      position++
    }
    minute = twoDigits(text, position)
    if (minute < 0) return expected(text, "a 2-digit minute", position, end)
    position += 2
    const hasSeconds = basic ? isDigitAt(text, position) : text.charCodeAt(position) === CHAR_COLON
    if (hasSeconds) {
      if (!basic) position++
      second = twoDigits(text, position)
      if (second < 0) return expected(text, "a 2-digit second", position, end)
      position += 2
      const mark = text.charCodeAt(position)
      if (mark === CHAR_DOT || mark === CHAR_COMMA) {
        position++
        if (!isDigitAt(text, position)) return expected(text, "fraction digits after the decimal sign", position, end)
        fractionStart = position
        // Truncate (floor) to the millisecond: read three digits, then only check the rest are digits.
        let scale = 100
        while (isDigitAt(text, position)) {
          millisecond += (text.charCodeAt(position) - 48) * scale
          scale = scale / 10 | 0
          position++
        }
        fractionEnd = position
      }
    }
    if (position < end) {
      const zoneAt = position
      let zone = text.charCodeAt(position)
      // Ruby's Time#to_s and Go's time.String() put a space before the offset.
      while (zone === CHAR_SPACE) zone = text.charCodeAt(++position)
      let wordAt = -1
      if (zone === CHAR_Z || zone === CHAR_LOWER_Z) {
        position++
      } else if (zone === CHAR_PLUS || zone === CHAR_MINUS) {
        offsetSign = zone === CHAR_PLUS ? 1 : -1
        offsetHour = twoDigits(text, position + 1)
        if (offsetHour < 0) return expected(text, "a 2-digit offset hour", position + 1, end)
        position += 3
        // ±HH, ±HH:MM, ±HH:MM:SS or ±HHMM, ±HHMMSS: seconds in the same form as the minutes.
        const colon = text.charCodeAt(position) === CHAR_COLON
        if (colon || isDigitAt(text, position)) {
          if (colon) position++
          offsetMinute = twoDigits(text, position)
          if (offsetMinute < 0) return expected(text, "a 2-digit offset minute", position, end)
          position += 2
          if (colon ? text.charCodeAt(position) === CHAR_COLON : isDigitAt(text, position)) {
            if (colon) position++
            offsetSecond = twoDigits(text, position)
            if (offsetSecond < 0) return expected(text, "a 2-digit offset second", position, end)
            position += 2
          }
        }
        offsetMs = offsetSign * (offsetHour * 3_600_000 + offsetMinute * 60_000 + offsetSecond * 1000)
        // Go's time.String(): "+0000 UTC".
        if (position < end && text.charCodeAt(position) === CHAR_SPACE) {
          const spaceAt = position
          while (text.charCodeAt(position) === CHAR_SPACE) position++
          if (!isLetter(text.charCodeAt(position))) return expected(text, "the end", spaceAt, end)
          wordAt = position
        }
      } else if (position > zoneAt && isLetter(zone)) {
        wordAt = position
      } else if (zone === CHAR_BRACKET) {
        return `the annotation ${tokenAt(text, position, end)} needs an offset or "Z" before it: strata has no ` +
          "time-zone database, so local time in a named zone has no instant; write the offset, e.g. \"+01:00[Europe/Paris]\""
      } else {
        return expected(text, "\"Z\", \"+HH:MM\", \"-HH:MM\" or the end", zoneAt, end)
      }
      if (wordAt >= 0) {
        if (!isUtcWord(text, wordAt)) return zoneWordReason(tokenAt(text, wordAt, end))
        utcWord = true
        position = wordAt + 3
      } else if (position < end && text.charCodeAt(position) === CHAR_BRACKET) {
        const reason = annotationsReason(text, position, end)
        if (reason !== undefined) return reason
        position = end
      }
    }
    if (position < end) return expected(text, "the end", position, end)
  }

  // The ranges and the calendar, each group in one branch on the common path (the reasons apart).
  if (
    year === 0 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 ||
    second > 59
  ) {
    const exactEndOfDay = hour === 24 && minute === 0 && second === 0 && zeroDigits(text, fractionStart, fractionEnd)
    if (!(endOfDay && exactEndOfDay) || year === 0 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
      return civilReason(year, month, day, hour, minute, second, exactEndOfDay && !endOfDay)
    }
  }
  if (offsetHour > 23 || offsetMinute > 59 || offsetSecond > 59 || (utcWord && offsetMs !== 0)) {
    return offsetReason(offsetHour, offsetMinute, offsetSecond, text.slice(position - 3, position))
  }
  const instant = daysFromCivil(year, month, day) * MS_PER_DAY + hour * 3_600_000 + minute * 60_000 + second * 1000 +
    millisecond - offsetMs
  // Keeps "whatever parse accepts, toIso prints and parse reads back" true at the ends of the range.
  return instant < MIN_INSTANT || instant > MAX_INSTANT ? OUT_OF_RANGE : instant
}
