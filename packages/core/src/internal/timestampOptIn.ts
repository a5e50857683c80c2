/**
 * The forms a caller must ask for (`Timestamp.Accept`): epoch numbers with a declared unit,
 * PostgreSQL's `infinity`, RFC 2822 dates, and (inside `parseEpochMillis`) `24:00:00`. None of
 * them is text of the default grammar, so they are tried only after it refused the text, and the
 * common path pays nothing for them. When a form is not enabled, the reason says which option
 * would read it.
 * @internal
 */
import { daysFromCivil, pad } from "./civil.js"
import { MAX_INSTANT, MIN_INSTANT, OUT_OF_RANGE, parseEpochMillis, trimmedEnd, trimmedStart } from "./timestampParse.js"

/** The opt-in forms, as `Timestamp.Accept` decodes them (here without its brands). */
export interface OptIn {
  readonly epoch?: "seconds" | "milliseconds" | undefined
  readonly infinity?: { readonly positive?: number | undefined; readonly negative?: number | undefined } | undefined
  readonly rfc2822?: boolean | undefined
  readonly endOfDay?: boolean | undefined
}

const decimalNumber = /^([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/
const infinityWord = /^([+-]?)infinity$/i
const rfc2822Start = /^(?:[A-Za-z]{3}\s*,|[0-9]{1,2}[ \t]+[A-Za-z]{3}[ \t])/

const outOfRange = (what: string): string => `${what} is outside years 0001-9999`

/**
 * Milliseconds of an exact decimal (sign, digits, fraction digits, exponent) in `unit`, floored to
 * the millisecond (as text fractions are truncated), computed on the digits so no float rounds it.
 */
const epochFromDecimal = (
  negative: boolean,
  integerDigits: string,
  fractionDigits: string,
  exponent: number,
  unit: "seconds" | "milliseconds",
  what: string
): number | string => {
  let digits = integerDigits + fractionDigits
  let point = integerDigits.length + exponent + (unit === "seconds" ? 3 : 0)
  let leading = 0
  while (leading < digits.length - 1 && digits.charCodeAt(leading) === 48) leading++
  digits = digits.slice(leading)
  point -= leading
  // MAX_INSTANT has 15 digits; more integer digits than 16 cannot be in range (and would lose precision).
  if (point > 16) return outOfRange(what)
  const whole = point <= 0 ? 0 : Number(digits.slice(0, point).padEnd(point, "0"))
  const dropped = digits.slice(Math.max(point, 0))
  const inexact = /[1-9]/.test(dropped)
  const ms = negative ? -whole - (inexact ? 1 : 0) : whole
  if (ms < MIN_INSTANT || ms > MAX_INSTANT) return outOfRange(what)
  return ms === 0 ? 0 : ms
}

/**
 * Epoch milliseconds of a number stored in `unit`. A non-integer (a REAL) is read as the shortest
 * decimal that prints back to it (what SQLite and PostgreSQL print for it), so `1705320000.123`
 * seconds is ….123 s and not the binary value a hair below it; then floored to the millisecond.
 */
export const epochMillisFromNumber = (value: number | bigint, unit: "seconds" | "milliseconds"): number | string => {
  const what = `${typeof value === "bigint" ? `${value}n` : String(value)} ${unit}`
  if (typeof value === "bigint") {
    const ms = unit === "seconds" ? value * 1000n : value
    return ms < BigInt(MIN_INSTANT) || ms > BigInt(MAX_INSTANT) ? outOfRange(what) : Number(ms)
  }
  if (!Number.isFinite(value)) return `${value} is not a number of ${unit}`
  if (Number.isSafeInteger(value)) {
    const ms = unit === "seconds" ? value * 1000 : value
    return ms < MIN_INSTANT || ms > MAX_INSTANT ? outOfRange(what) : ms === 0 ? 0 : ms
  }
  const match = decimalNumber.exec(String(value))
  // String() of a finite number always matches; the guard only satisfies the type checker.
  if (match === null) return `${value} is not a number of ${unit}`
  return epochFromDecimal(match[1] === "-", match[2]!, match[3] ?? "", Number(match[4] ?? "0"), unit, what)
}

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] as const
const MONTH_ABBREVIATIONS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"] as const

/** RFC 5322 §4.3's named zones: the only abbreviations an RFC 2822 date may carry, each one fixed offset. */
const RFC2822_ZONES: Readonly<Record<string, number>> = {
  UT: 0,
  GMT: 0,
  Z: 0,
  EDT: -4,
  EST: -5,
  CDT: -5,
  CST: -6,
  MDT: -6,
  MST: -7,
  PDT: -7,
  PST: -8
}

const weekday = (year: number, month: number, day: number): number =>
  (((daysFromCivil(year, month, day) + 4) % 7) + 7) % 7

const rfc2822Grammar =
  /^(?:([A-Za-z]+)[ \t]*,[ \t]*)?([0-9]+)[ \t]+([A-Za-z]+)[ \t]+([0-9]+)[ \t]+([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?[ \t]+([+-][0-9]{4}|[A-Za-z]+)(?:[ \t]*\([^()]*\))?$/

/**
 * An RFC 2822 (RFC 5322 §3.3) date, as email and HTTP (IMF-fixdate) write it:
 * `[Day,] D[D] Mon YYYY HH:MM[:SS] (±HHMM | UT | GMT | Z | EST … PDT) [(comment)]`, case-insensitive
 * names, spaces or tabs between the parts. The day name, when present, must be the date's own.
 */
export const parseRfc2822 = (text: string, endOfDay: boolean): number | string => {
  const start = trimmedStart(text)
  const body = text.slice(start, trimmedEnd(text, start))
  const match = rfc2822Grammar.exec(body)
  if (match === null) {
    return "not an RFC 2822 date ([Day,] D Mon YYYY HH:MM[:SS] ±HHMM, e.g. \"Mon, 15 Jan 2024 12:00:00 +0000\")"
  }
  const [, dayName, dayText, monthText, yearText, hourText, minuteText, secondText, zoneText] = match
  const month = MONTH_ABBREVIATIONS.indexOf(monthText!.toLowerCase() as typeof MONTH_ABBREVIATIONS[number]) + 1
  if (month === 0) return `RFC 2822 month ${JSON.stringify(monthText)} is not one of Jan, Feb, … Dec`
  if (dayText!.length > 2) return `RFC 2822 day ${JSON.stringify(dayText)} has more than 2 digits`
  if (yearText!.length !== 4) {
    return `RFC 2822 year ${JSON.stringify(yearText)} must have 4 digits (2- and 3-digit years are obsolete and not read)`
  }
  let offset = zoneText!
  if (offset.charCodeAt(0) !== 43 && offset.charCodeAt(0) !== 45) {
    const hours = RFC2822_ZONES[offset.toUpperCase()]
    if (hours === undefined) {
      return `RFC 2822 zone ${JSON.stringify(zoneText)} is not one of ±HHMM, UT, GMT, Z, EST, EDT, CST, CDT, MST, MDT, PST, PDT`
    }
    offset = `${hours < 0 ? "-" : "+"}${pad(Math.abs(hours), 2)}00`
  }
  // The same instant as ISO 8601 text, so that ranges, the calendar and 24:00 are decided where parse decides them.
  const iso = `${yearText}-${pad(month, 2)}-${dayText!.padStart(2, "0")}T${hourText}:${minuteText}:${secondText ?? "00"}${offset}`
  const instant = parseEpochMillis(iso, endOfDay)
  const year = Number(yearText)
  const day = Number(dayText)
  // A day name that contradicts the written date is the text's own fault, told before the range:
  // an instant out of range only because of its offset (9999-12-31 18:00 MDT) says less about it.
  if ((typeof instant === "string" && instant !== OUT_OF_RANGE) || dayName === undefined) return instant
  const named = DAY_NAMES.indexOf(dayName.toLowerCase() as typeof DAY_NAMES[number])
  if (named < 0) return `RFC 2822 day name ${JSON.stringify(dayName)} is not one of Mon, Tue, … Sun`
  const actual = weekday(year, month, day)
  if (named !== actual) {
    const name = (i: number) => DAY_NAMES[i]!.charAt(0).toUpperCase() + DAY_NAMES[i]!.slice(1)
    return `the date says ${name(named)} but ${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)} is a ${name(actual)}`
  }
  return instant
}

/**
 * After the default grammar refused `text` (with `reason`): the instant of an opt-in form that
 * `accept` enables, or the reason why not. A form that is not enabled says which option reads it.
 */
export const readOptIn = (text: string, accept: OptIn, reason: string): number | string => {
  const start = trimmedStart(text)
  const body = text.slice(start, trimmedEnd(text, start))
  const number = decimalNumber.exec(body)
  if (number !== null) {
    if (accept.epoch === undefined) {
      return `${JSON.stringify(body)} is a number, not timestamp text: epoch numbers are read only with a declared unit ` +
        "(accept epoch: \"seconds\" or \"milliseconds\")" +
        (/^[0-9]{8}$/.test(body) ? "; a basic-format date needs a time (YYYYMMDDTHHMMSS)" : "")
    }
    return epochFromDecimal(number[1] === "-", number[2]!, number[3] ?? "", Number(number[4] ?? "0"), accept.epoch, `${body} ${accept.epoch}`)
  }
  const infinity = infinityWord.exec(body)
  if (infinity !== null) {
    const past = infinity[1] === "-"
    const declared = past ? accept.infinity?.negative : accept.infinity?.positive
    if (declared !== undefined) return declared
    return `PostgreSQL's ${JSON.stringify(body)} is not an instant; it is read only as a declared value ` +
      `(accept infinity.${past ? "negative" : "positive"})`
  }
  if (rfc2822Start.test(body)) {
    if (accept.rfc2822 === true) return parseRfc2822(text, accept.endOfDay === true)
    const rfc = parseRfc2822(text, accept.endOfDay === true)
    return typeof rfc === "number"
      ? "an RFC 2822 date, which is read only when asked for (accept rfc2822)"
      : reason
  }
  return reason
}

/** Epoch milliseconds of timestamp text under `accept` (the default grammar first), or why it is none. */
export const readTimestampText = (text: string, accept: OptIn): number | string => {
  const result = parseEpochMillis(text, accept.endOfDay === true)
  return typeof result === "number" ? result : readOptIn(text, accept, result)
}
