/**
 * The one definition of time in strata: instants are `EpochMillis` (integer milliseconds
 * since 1970-01-01T00:00:00Z), and a stored value becomes an instant only through `parse`
 * (text, the default grammar) or `parseWith` / `fromEpoch` (the opt-in forms of `Accept`).
 *
 * The default grammar, exactly (`[x]` optional, `x…` one or more, every field with exactly the
 * digits shown, ASCII digits only):
 *
 * ```
 * timestamp   = [ws…] (date | date-time) [ws…]      ws = space, tab, CR, LF, VT or FF
 * date        = YYYY-MM-DD                          midnight UTC; no zone allowed
 * date-time   = YYYY-MM-DD (T | t | " ") time [zone]          extended format
 *             | YYYYMMDD (T | t) basic-time [zone]            ISO 8601 basic format
 * time        = HH:MM[:SS[(. | ,)F…]]               basic-time = HHMM[SS[(. | ,)F…]]
 * zone        = [" "…] (Z | z | offset) [annotation…]
 *             | [" "…] offset " "… utc              the offset must be zero ("+0000 UTC")
 *             | " "… utc
 * utc         = UTC | GMT                           in any case
 * offset      = (+ | -) HH[[:]MM[[:]SS]]            ±HH, ±HH:MM, ±HHMM, ±HH:MM:SS, ±HHMMSS
 * annotation  = "[" ["!"] (zone-name | ±HH[:]MM) "]"  at most one, first (RFC 9557)
 *             | "[" ["!"] key "=" value "]"         e.g. [u-ca=iso8601]
 * ```
 *
 * - Text without a zone is UTC, whatever the machine's `TZ`.
 * - The fraction (any number of digits, only after seconds, `.` or `,`) is truncated to the
 *   millisecond, as Temporal, Python and PostgreSQL (to 6 digits) do.
 * - Years 0001-9999, months 01-12, real calendar days (`2024-02-30` is rejected, never rolled
 *   over), hours 00-23, minutes and seconds 00-59 (leap seconds are rejected), offset hours
 *   00-23 and minutes and seconds 00-59; the instant itself must fall in years 0001-9999 UTC (so
 *   that whatever `parse` accepts, `toIso` prints and `parse` reads back). A date-time is all
 *   extended or all basic format; its offset may be written either way.
 * - An annotation's zone gives no instant, the offset before it does (as `Temporal.Instant`
 *   reads it); the zone is checked for form only, non-critical tags are ignored, and a critical
 *   tag other than `u-ca` (`[!x-foo=bar]`), or two `u-ca` tags one of which is critical, are
 *   rejected, as RFC 9557 asks of a reader that cannot honour them.
 *
 * Rejected, each with a reason that names what is wrong:
 * - a zone abbreviation other than UTC/GMT (`PST`, `CST`, `IST` name different offsets in different
 *   places), also after an offset; `GMT+8` / `UTC-5` (POSIX reads the sign the other way round);
 * - a zone name without an offset (`2024-01-15 12:00 Europe/Paris`, `2024-01-15T12:00[Europe/Paris]`):
 *   core has no time-zone database, and resolving it through `Intl` would make a stored value's
 *   instant depend on the runtime's zone data, so a backfill, a lazy read and a verify on two
 *   machines could disagree;
 * - `24:00` (opt-in below), `:60`, impossible dates, year 0000, expanded years (`+002024`), week
 *   and ordinal dates, fractions of hours or minutes, two-digit years, `YYYYMMDD` alone (eight
 *   digits could as well be a number), non-ASCII digits or spaces, two spaces between date and time;
 * - epoch numbers, `infinity` and RFC 2822 dates, unless asked for (the reason names the option).
 *
 * Opt-in forms (`Accept`, e.g. on a plan step): `epoch` reads numbers (INTEGER, REAL, bigint) and
 * decimal text (`1705320000`, `1705320000.123`, `1.7e9`) in the declared unit, floored to the
 * millisecond; `infinity` maps PostgreSQL's `infinity` / `-infinity` (any case, `+` allowed) to
 * declared instants, the undeclared side is rejected with that reason; `rfc2822` reads
 * `[Day,] D Mon YYYY HH:MM[:SS] (±HHMM | UT | GMT | Z | EST … PDT) [(comment)]` (a given day name
 * must be the date's); `endOfDay` reads an exact `24:00[:00[.0…]]` as the next day's midnight.
 *
 * Never `Date.parse` (it reads naive text in local time and rolls invalid dates over) and never
 * throws: anything else is an `InvalidTimestamp` with the input and the reason. The grammar with
 * examples, and what "equal to the engines" means exactly: docs/time.md.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Either, ParseResult, Schema } from "effect"
import { civilFromEpochMillis, daysFromCivil, daysInMonth, isoYear, MS_PER_DAY, pad } from "./internal/civil.js"
import { formatWithPattern } from "./internal/formatPattern.js"
import { epochMillisFromNumber, type OptIn, readOptIn, readTimestampText } from "./internal/timestampOptIn.js"
import { MAX_INSTANT, MIN_INSTANT, parseEpochMillis } from "./internal/timestampParse.js"
import { offsetSecondsAt, shortNameAt, zoneFormatters } from "./internal/timeZone.js"

/** The ECMAScript time-value limit: keeping `EpochMillis` inside it makes `toDate` total. */
const DATE_LIMIT = 8_640_000_000_000_000

/**
 * An instant as integer milliseconds since 1970-01-01T00:00:00Z, within the range a JS `Date`
 * can hold (±8.64e15). Zero and negative values are ordinary instants, never "missing".
 * @since 0.1.0
 * @category models
 */
export const EpochMillis = Schema.Number.pipe(
  Schema.int(),
  Schema.between(-DATE_LIMIT, DATE_LIMIT),
  Schema.brand("EpochMillis")
).annotations({ identifier: "EpochMillis", description: "integer milliseconds since 1970-01-01T00:00:00Z" })

/**
 * An instant as integer milliseconds since 1970-01-01T00:00:00Z.
 * @since 0.1.0
 * @category models
 */
export type EpochMillis = typeof EpochMillis.Type

/**
 * Text (or a value) that is not a timestamp, with the offending input and why.
 * @since 0.1.0
 * @category errors
 */
export class InvalidTimestamp extends Schema.TaggedError<InvalidTimestamp>()("InvalidTimestamp", {
  input: Schema.Unknown,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid timestamp ${describeInput(this.input)}: ${this.reason}`
  }
}

/**
 * An instant outside the range a caller accepts.
 * @since 0.1.0
 * @category errors
 */
export class TimestampOutOfRange extends Schema.TaggedError<TimestampOutOfRange>()("TimestampOutOfRange", {
  value: EpochMillis,
  min: EpochMillis,
  max: EpochMillis
}) {
  override get message(): string {
    return this.value < this.min
      ? `timestamp ${toIso(this.value)} (${this.value}) is before the minimum ${toIso(this.min)}`
      : `timestamp ${toIso(this.value)} (${this.value}) is after the maximum ${toIso(this.max)}`
  }
}

/**
 * A time-zone name that the runtime's `Intl` does not know.
 * @since 0.1.0
 * @category errors
 */
export class InvalidTimeZone extends Schema.TaggedError<InvalidTimeZone>()("InvalidTimeZone", {
  input: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid time zone ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

const describeInput = (input: unknown): string =>
  typeof input === "string" ? JSON.stringify(input) : typeof input === "bigint" ? `${input}n` : String(input)

const invalid = (input: unknown, reason: string): Either.Either<never, InvalidTimestamp> => {
  // A bad row is data, not a bug: a stack trace says nothing about it and capturing one costs
  // microseconds per row (backfills meet millions), so it is skipped, as Effect does internally.
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return Either.left(new InvalidTimestamp({ input, reason }, { disableValidation: true }))
  } finally {
    Error.stackTraceLimit = stackTraceLimit
  }
}

/**
 * Checks that a number is an `EpochMillis` (a safe integer within the `Date` range).
 * @since 0.1.0
 * @category models
 */
export const makeEpochMillis = (value: unknown): Either.Either<EpochMillis, InvalidTimestamp> => {
  if (typeof value !== "number") return invalid(value, `expected a number of milliseconds, got ${typeof value}`)
  if (!Number.isSafeInteger(value)) return invalid(value, `${value} is not a safe integer number of milliseconds`)
  if (value < -DATE_LIMIT || value > DATE_LIMIT) return invalid(value, `${value} is outside ±8.64e15 ms`)
  return Either.right(value as EpochMillis)
}

const NO_OPT_IN: OptIn = {}

/**
 * Parses timestamp text (see the module documentation for the exact grammar); never throws.
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string): Either.Either<EpochMillis, InvalidTimestamp> => {
  if (typeof text !== "string") {
    return invalid(text, `expected a string, got ${text === null ? "null" : typeof text}`)
  }
  const result = parseEpochMillis(text)
  if (typeof result === "number") return Either.right(result as EpochMillis)
  // Only a failure pays for the opt-in forms' hints (the reason names the option that reads the text).
  const other = readOptIn(text, NO_OPT_IN, result)
  return typeof other === "number" ? Either.right(other as EpochMillis) : invalid(text, other)
}

/**
 * The unit of a stored epoch number.
 * @since 0.2.0
 * @category models
 */
export const EpochUnit = Schema.Literal("seconds", "milliseconds").annotations({ identifier: "EpochUnit" })

/**
 * The unit of a stored epoch number.
 * @since 0.2.0
 * @category models
 */
export type EpochUnit = typeof EpochUnit.Type

/**
 * The opt-in forms a reader accepts besides the default grammar (see the module documentation);
 * pure data, so a plan step can carry it in JSON. Every field is optional and off when absent.
 * @since 0.2.0
 * @category models
 */
export const Accept = Schema.Struct({
  /** Epoch numbers (INTEGER, REAL, bigint) and decimal text in this unit. */
  epoch: Schema.optional(EpochUnit),
  /** PostgreSQL's `infinity` / `-infinity` as these instants; an undeclared side is rejected. */
  infinity: Schema.optional(Schema.Struct({ positive: Schema.optional(EpochMillis), negative: Schema.optional(EpochMillis) })),
  /** RFC 2822 / HTTP dates: `Mon, 15 Jan 2024 12:00:00 +0000`. */
  rfc2822: Schema.optional(Schema.Boolean),
  /** An exact `24:00:00` as the next day's midnight (ISO 8601's end of day). */
  endOfDay: Schema.optional(Schema.Boolean)
}).annotations({ identifier: "TimestampAccept", description: "opt-in timestamp forms besides the default grammar" })

/**
 * The opt-in forms a reader accepts besides the default grammar.
 * @since 0.2.0
 * @category models
 */
export type Accept = typeof Accept.Type

/**
 * Parses timestamp text under the default grammar plus the opt-in forms of `accept`; never throws.
 * @since 0.2.0
 * @category parsing
 */
export const parseWith = (text: string, accept: Accept): Either.Either<EpochMillis, InvalidTimestamp> => {
  if (typeof text !== "string") {
    return invalid(text, `expected a string, got ${text === null ? "null" : typeof text}`)
  }
  const result = readTimestampText(text, accept)
  return typeof result === "number" ? Either.right(result as EpochMillis) : invalid(text, result)
}

/**
 * The instant of an epoch number in `unit`, floored to the millisecond (a non-integer is read as the
 * shortest decimal that prints back to it, as the engines print a REAL); years 0001-9999 only.
 * @since 0.2.0
 * @category parsing
 */
export const fromEpoch = (value: number | bigint, unit: EpochUnit): Either.Either<EpochMillis, InvalidTimestamp> => {
  if (typeof value !== "number" && typeof value !== "bigint") {
    return invalid(value, `expected a number of ${unit}, got ${value === null ? "null" : typeof value}`)
  }
  const result = epochMillisFromNumber(value, unit)
  return typeof result === "number" ? Either.right(result as EpochMillis) : invalid(value, result)
}

/**
 * The instant of a valid `Date`; an Invalid Date throws a `RangeError` (as `toISOString` does).
 * @since 0.1.0
 * @category models
 */
export const fromDate = (date: Date): EpochMillis => {
  const ms = date.getTime()
  if (Number.isNaN(ms)) throw new RangeError("Timestamp.fromDate: Invalid Date")
  return ms as EpochMillis
}

/**
 * A new `Date` for the instant (always valid, since `EpochMillis` stays in the `Date` range).
 * @since 0.1.0
 * @category conversions
 */
export const toDate = (ms: EpochMillis): Date => new Date(ms)

const isoDateTime = (ms: number, separator: string, suffix: string): string => {
  const t = civilFromEpochMillis(ms)
  return `${isoYear(t.year)}-${pad(t.month, 2)}-${pad(t.day, 2)}${separator}${pad(t.hour, 2)}:${pad(t.minute, 2)}:${
    pad(t.second, 2)
  }.${pad(t.millisecond, 3)}${suffix}`
}

/**
 * ISO 8601 in UTC with milliseconds, e.g. `2024-01-15T12:00:00.000Z` (what `Date#toISOString` prints,
 * without its parser); `parse` reads it back exactly for years 0001-9999.
 * @since 0.1.0
 * @category formatting
 */
export const toIso = (ms: EpochMillis): string => isoDateTime(ms, "T", "Z")

/**
 * SQLite-style text in UTC with milliseconds, e.g. `2024-01-15 12:00:00.123`; `parse` reads it back
 * exactly for years 0001-9999.
 * @since 0.1.0
 * @category formatting
 */
export const toSqlText = (ms: EpochMillis): string => isoDateTime(ms, " ", "")

/**
 * A validated IANA time-zone name (or `UTC`), checked once so that `format` cannot fail.
 * @since 0.1.0
 * @category models
 */
export const TimeZone = Schema.String.pipe(
  Schema.filter((name) => {
    const formatters = zoneFormatters(name)
    return typeof formatters === "string" ? `unknown time zone ${JSON.stringify(name)}: ${formatters}` : true
  }),
  Schema.brand("TimeZone")
).annotations({ identifier: "TimeZone", description: "an IANA time-zone name known to Intl" })

/**
 * A validated IANA time-zone name.
 * @since 0.1.0
 * @category models
 */
export type TimeZone = typeof TimeZone.Type

/**
 * The UTC zone.
 * @since 0.1.0
 * @category models
 */
export const utc: TimeZone = "UTC" as TimeZone

/**
 * Validates an IANA time-zone name such as `Asia/Shanghai` against the runtime's `Intl`.
 * @since 0.1.0
 * @category models
 */
export const makeTimeZone = (name: string): Either.Either<TimeZone, InvalidTimeZone> => {
  const formatters = zoneFormatters(name)
  return typeof formatters === "string"
    ? Either.left(new InvalidTimeZone({ input: name, reason: formatters }))
    : Either.right(name as TimeZone)
}

/**
 * Options of `format`.
 * @since 0.1.0
 * @category models
 */
export interface FormatOptions {
  /**
   * Tokens `YYYY MM DD HH mm ss SSS` (24-hour clock), `Z` (offset, `+08:00`), `z` (the zone's
   * short name as `Intl` spells it in en-US: `UTC`, `EST`, `GMT+8`), `[...]` for literal text;
   * any other character is copied. Default `YYYY-MM-DD HH:mm:ss z`.
   */
  readonly pattern?: string
  /** Default `UTC`. */
  readonly timeZone?: TimeZone
}

/**
 * Human-readable wall time in a zone, e.g. `2024-01-15 12:00:00 UTC`, or
 * `2024-01-15 20:00:00 GMT+8` for `Asia/Shanghai`; total (the zone was validated by `makeTimeZone`).
 * @since 0.1.0
 * @category formatting
 */
export const format = (ms: EpochMillis, options?: FormatOptions): string => {
  const pattern = options?.pattern ?? "YYYY-MM-DD HH:mm:ss z"
  const zone = options?.timeZone
  const formatters = zone === undefined || zone === utc ? undefined : zoneFormatters(zone)
  // A TimeZone value was validated on construction; a forged one falls back to UTC rather than throwing.
  if (formatters === undefined || typeof formatters === "string") {
    return formatWithPattern(pattern, { ...civilFromEpochMillis(ms), offsetSeconds: 0, zoneName: "UTC" })
  }
  const offsetSeconds = offsetSecondsAt(formatters, ms)
  return formatWithPattern(pattern, {
    ...civilFromEpochMillis(ms + offsetSeconds * 1000),
    offsetSeconds,
    zoneName: shortNameAt(formatters, ms)
  })
}

const relativeFormatters = new Map<string, { readonly numeric: Intl.RelativeTimeFormat; readonly now: Intl.RelativeTimeFormat }>()

const relativeFormattersFor = (locale: string) => {
  const cached = relativeFormatters.get(locale)
  if (cached !== undefined) return cached
  let tag = "en"
  try {
    tag = Intl.getCanonicalLocales(locale)[0] ?? "en"
  } catch {
    // A malformed locale tag is display configuration, not data: fall back to English.
  }
  const formatters = {
    numeric: new Intl.RelativeTimeFormat(tag, { numeric: "always" }),
    now: new Intl.RelativeTimeFormat(tag, { numeric: "auto" })
  }
  relativeFormatters.set(locale, formatters)
  return formatters
}

const RELATIVE_UNITS: ReadonlyArray<readonly [Intl.RelativeTimeFormatUnit, number]> = [
  ["year", 365 * MS_PER_DAY],
  ["month", 30 * MS_PER_DAY],
  ["day", MS_PER_DAY],
  ["hour", 3_600_000],
  ["minute", 60_000],
  ["second", 1000]
]

/**
 * Relative time via `Intl.RelativeTimeFormat`: `now` under one second, otherwise the largest whole
 * unit (seconds, minutes, hours, days, 30-day months, 365-day years), truncated toward zero:
 * `1 minute ago`, `2 hours ago`, `in 3 days`. `locale` defaults to `en`; a malformed tag falls back to it.
 * @since 0.1.0
 * @category formatting
 */
export const timeAgo = (ms: EpochMillis, now: EpochMillis, locale = "en"): string => {
  const formatters = relativeFormattersFor(locale)
  const delta = ms - now
  const magnitude = Math.abs(delta)
  for (const [unit, unitMs] of RELATIVE_UNITS) {
    if (magnitude >= unitMs) return formatters.numeric.format(Math.trunc(delta / unitMs), unit)
  }
  return formatters.now.format(0, "second")
}

/**
 * Whether `ms` lies in the last `withinMs` milliseconds: `now - withinMs <= ms <= now`
 * (a future instant is not recent).
 * @since 0.1.0
 * @category predicates
 */
export const isRecent = (ms: EpochMillis, withinMs: number, now: EpochMillis): boolean =>
  ms <= now && now - ms <= withinMs

/**
 * An inclusive range of acceptable instants.
 * @since 0.1.0
 * @category models
 */
export interface Range {
  readonly min: EpochMillis
  readonly max: EpochMillis
}

/**
 * Checks that `ms` is within `range` (both ends inclusive).
 * @since 0.1.0
 * @category validation
 */
export const validate = (ms: EpochMillis, range: Range): Either.Either<EpochMillis, TimestampOutOfRange> =>
  ms < range.min || ms > range.max
    ? Either.left(new TimestampOutOfRange({ value: ms, min: range.min, max: range.max }))
    : Either.right(ms)

/**
 * The usual plausibility range: 1970-01-01T00:00:00Z up to one calendar year after `now`
 * (February 29 maps to February 28), so it never expires the way a fixed year does.
 * @since 0.1.0
 * @category validation
 */
export const defaultRange = (now: EpochMillis): Range => {
  const days = Math.floor(now / MS_PER_DAY)
  const t = civilFromEpochMillis(now)
  const nextYear = t.year + 1
  const day = Math.min(t.day, daysInMonth(nextYear, t.month))
  const max = daysFromCivil(nextYear, t.month, day) * MS_PER_DAY + (now - days * MS_PER_DAY)
  return { min: 0 as EpochMillis, max: Math.min(max, DATE_LIMIT) as EpochMillis }
}

/**
 * The current instant from the `Clock` service (so `TestClock` drives it).
 * @since 0.1.0
 * @category clock
 */
export const now: Effect.Effect<EpochMillis> = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms) as EpochMillis)

const textTransformation = (name: string, encode: (ms: EpochMillis) => string) =>
  Schema.transformOrFail(Schema.String, EpochMillis, {
    strict: true,
    decode: (text, _, ast) =>
      Either.mapLeft(parseEpochMillisEither(text), (reason) => new ParseResult.Type(ast, text, reason)),
    encode: (ms, _, ast) =>
      ms < MIN_INSTANT || ms > MAX_INSTANT
        ? ParseResult.fail(new ParseResult.Type(ast, ms, `${ms} is outside years 0001-9999 and has no ${name} text`))
        : ParseResult.succeed(encode(ms as EpochMillis))
  }).annotations({ identifier: `EpochMillisFrom${name}` })

const parseEpochMillisEither = (text: string): Either.Either<number, string> => {
  const result = readTimestampText(text, NO_OPT_IN)
  return typeof result === "number" ? Either.right(result) : Either.left(result)
}

/**
 * `EpochMillis` from timestamp text (anything `parse` accepts), encoded as `toSqlText`
 * (`2024-01-15 12:00:00.123`); a decode failure carries the parser's reason.
 * @since 0.1.0
 * @category formatting
 */
export const EpochMillisFromSqlText = textTransformation("SqlText", toSqlText)

/**
 * `EpochMillis` from timestamp text (anything `parse` accepts), encoded as `toIso`
 * (`2024-01-15T12:00:00.123Z`).
 * @since 0.1.0
 * @category formatting
 */
export const EpochMillisFromIso = textTransformation("Iso", toIso)
