import { describe, expect, it } from "@effect/vitest"
import { Timestamp } from "@strata/core"
import { Effect, Either, FastCheck as fc, Schema, TestClock } from "effect"

const ms = (value: number) => value as Timestamp.EpochMillis

const parseRight = (text: string): number => Either.getOrThrow(Timestamp.parse(text))

const reasonOf = (input: unknown): string =>
  Either.match(Timestamp.parse(input as string), {
    onLeft: (error) => {
      expect(error._tag).toBe("InvalidTimestamp")
      expect(error.input).toBe(input)
      return error.reason
    },
    onRight: (value) => `parsed as ${value}`
  })

const zone = (name: string) => Either.getOrThrow(Timestamp.makeTimeZone(name))

/** First and last instants whose text has a four-digit year that `parse` accepts. */
const MIN_TEXT_MS = Date.UTC(2000, 0, 1) - 730_119 * 86_400_000 // 0001-01-01T00:00:00.000Z
const MAX_TEXT_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999)

/** Independent oracle: a UTC instant from components via Date's setters (no string parsing), or undefined if the date rolls over. */
const oracleUtc = (year: number, month: number, day: number, hour: number, minute: number, second: number, milli: number) => {
  const date = new Date(0)
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day)
  date.setUTCHours(hour, minute, second, milli)
  const valid = date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day
  return valid ? date.getTime() : undefined
}

describe("Timestamp.parse", () => {
  it.each([
    ["2024-01-15 12:00:00", 1705320000000],
    ["2024-01-15T12:00:00Z", 1705320000000],
    ["2024-01-15T20:00:00+08:00", 1705320000000],
    ["2024-01-15T07:00:00-05:00", 1705320000000],
    ["2024-01-15T12:00", 1705320000000],
    ["2024-01-15 12:00:00+08:00", 1705291200000],
    ["2024-01-15", 1705276800000],
    ["2024-01-15T12:00:00.999999Z", 1705320000999],
    ["2029-10-25 19:38:55", 1887651535000],
    ["2024-01-15T20:00:00+0800", 1705320000000],
    ["2024-01-15T20:00:00+08", 1705320000000],
    ["2024-01-15T12:00:00-00:00", 1705320000000],
    ["2024-01-15T17:30+05:30", 1705320000000],
    ["2024-01-15 12:00:00.1", 1705320000100],
    ["2024-01-15 12:00:00.12", 1705320000120],
    ["2024-01-15 12:00:00.123", 1705320000123],
    ["2024-01-15 12:00:00.1239", 1705320000123],
    ["2024-01-15 12:00:00.000000000000000000009", 1705320000000],
    ["1970-01-01", 0],
    ["1970-01-01 00:00:00.000", 0],
    ["1969-12-31 23:59:59.999", -1],
    ["1970-01-01T00:00:00+00:01", -60000],
    ["0001-01-01", MIN_TEXT_MS],
    ["9999-12-31 23:59:59.999", MAX_TEXT_MS],
    ["2000-02-29", 951782400000],
    ["1600-02-29", Date.UTC(1600, 1, 29)],
    ["0001-01-01T00:00:00-01:00", MIN_TEXT_MS + 3_600_000],
    ["9999-12-31T23:59:59.999+01:00", MAX_TEXT_MS - 3_600_000],
    ["2023-12-31T23:59:59.999Z", 1704067199999]
  ])("%s is %d", (text, expected) => {
    expect(Timestamp.parse(text)).toStrictEqual(Either.right(expected))
  })

  it.each([
    ["2024-02-30", "February 30 does not exist in 2024"],
    ["2023-02-29", "February 29 does not exist in 2023"],
    ["1900-02-29", "February 29 does not exist in 1900"],
    ["2024-04-31 10:00", "April 31 does not exist in 2024"],
    ["2024-13-01", "month 13 is out of range (01-12)"],
    ["2024-00-10", "month 00 is out of range (01-12)"],
    ["2024-01-00", "day 00 is out of range (01-31)"],
    ["2024-01-32", "day 32 is out of range (01-31)"],
    ["0000-01-01", "year 0000 is out of range (0001-9999)"],
    ["2024-01-15 24:00:00", "hour 24 is out of range (00-23)"],
    ["2024-01-15T24:00", "hour 24 is out of range (00-23)"],
    ["2024-01-15 12:60:00", "minute 60 is out of range (00-59)"],
    ["2024-01-15 23:59:60", "second 60 is out of range (00-59; leap seconds are not accepted)"],
    ["2024-01-15T12:00:00+25:00", "offset hour 25 is out of range (00-23)"],
    ["2024-01-15T12:00:00+05:60", "offset minute 60 is out of range (00-59)"],
    ["", "empty string"],
    [" ", "leading or trailing whitespace is not allowed"],
    ["   ", "leading or trailing whitespace is not allowed"],
    [" 2024-01-15", "leading or trailing whitespace is not allowed"],
    ["2024-01-15 ", "leading or trailing whitespace is not allowed"],
    ["2024-01-15 12:00:00\n", "leading or trailing whitespace is not allowed"],
    ["2024-1-5", "unrecognised format: expected a 2-digit month at position 5 (found \"1\")"],
    ["2024-01-5", "unrecognised format: expected a 2-digit day at position 8 (found \"5\")"],
    ["2024-01", "unrecognised format: expected \"-\" after the month at position 7 (the text ends there)"],
    ["24-01-15", "unrecognised format: expected a 4-digit year at position 0 (found \"2\")"],
    ["20240115", "unrecognised format: expected \"-\" after the year at position 4 (found \"0\")"],
    ["2024/01/15", "unrecognised format: expected \"-\" after the year at position 4 (found \"/\")"],
    ["2024-01-15 12:00:00x", "unrecognised format: expected \"Z\", \"+HH:MM\", \"-HH:MM\" or the end at position 19 (found \"x\")"],
    ["2024-01-15T12:00:00Zjunk", "unrecognised format: expected the end at position 20 (found \"j\")"],
    ["2024-01-15 12", "unrecognised format: expected \":\" after the hour at position 13 (the text ends there)"],
    ["2024-01-15 12:0", "unrecognised format: expected a 2-digit minute at position 14 (found \"0\")"],
    ["2024-01-15 12:00:5", "unrecognised format: expected a 2-digit second at position 17 (found \"5\")"],
    ["2024-01-15 12:00:00.", "unrecognised format: expected fraction digits after \".\" at position 20 (the text ends there)"],
    ["2024-01-15 12:00.5", "unrecognised format: expected \"Z\", \"+HH:MM\", \"-HH:MM\" or the end at position 16 (found \".\")"],
    ["2024-01-15t12:00", "unrecognised format: expected \"T\" or \" \" between date and time at position 10 (found \"t\")"],
    ["2024-01-15  12:00", "unrecognised format: expected a 2-digit hour at position 11 (found \" \")"],
    ["2024-01-15T12:00z", "unrecognised format: expected \"Z\", \"+HH:MM\", \"-HH:MM\" or the end at position 16 (found \"z\")"],
    ["2024-01-15T12:00:00+8", "unrecognised format: expected a 2-digit offset hour at position 20 (found \"8\")"],
    ["2024-01-15T12:00:00+08:0", "unrecognised format: expected a 2-digit offset minute at position 23 (found \"0\")"],
    ["2024-01-15T12:00:00+08:00:00", "unrecognised format: expected the end at position 25 (found \":\")"],
    ["0001-01-01 00:59:59.999+01:00", "the instant falls outside years 0001-9999 in UTC"],
    ["9999-12-31T23:00:00-01:00", "the instant falls outside years 0001-9999 in UTC"],
    ["2024-01-15Z", "a zone designator needs a time of day (YYYY-MM-DDTHH:MM...)"],
    ["2024-01-15+08:00", "a zone designator needs a time of day (YYYY-MM-DDTHH:MM...)"],
    ["now", "unrecognised format: expected a 4-digit year at position 0 (found \"n\")"],
    ["1705320000000", "unrecognised format: expected \"-\" after the year at position 4 (found \"3\")"],
    ["２０２４-01-15", "unrecognised format: expected a 4-digit year at position 0 (found \"２\")"]
  ])("rejects %j: %s", (text, reason) => {
    expect(reasonOf(text)).toBe(reason)
  })

  it("rejects non-string input from untyped callers without throwing", () => {
    expect(reasonOf(1705320000000)).toBe("expected a string, got number")
    expect(reasonOf(null)).toBe("expected a string, got null")
    expect(reasonOf(undefined)).toBe("expected a string, got undefined")
    expect(reasonOf({})).toBe("expected a string, got object")
    expect(reasonOf(new Date(0))).toBe("expected a string, got object")
  })

  it("names the input and the reason in the error message", () => {
    const error = Either.getLeft(Timestamp.parse("2024-02-30")).pipe((option) => option._tag === "Some" ? option.value : undefined)
    expect(error?.message).toBe("invalid timestamp \"2024-02-30\": February 30 does not exist in 2024")
  })

  it("knows leap years: divisible by 4, except centuries, except every 400 years", () => {
    expect(parseRight("2000-02-29")).toBe(Date.UTC(2000, 1, 29))
    expect(parseRight("2024-02-29")).toBe(Date.UTC(2024, 1, 29))
    expect(parseRight("0004-02-29")).toBe(oracleUtc(4, 2, 29, 0, 0, 0, 0))
    expect(reasonOf("1900-02-29")).toBe("February 29 does not exist in 1900")
    expect(reasonOf("2100-02-29")).toBe("February 29 does not exist in 2100")
    expect(reasonOf("2023-02-29")).toBe("February 29 does not exist in 2023")
  })

  it(`reads naive text as UTC whatever the machine's zone (TZ=${process.env["TZ"] ?? "unset"})`, () => {
    expect(parseRight("2024-06-01 00:00:00")).toBe(Date.UTC(2024, 5, 1))
    expect(parseRight("2024-01-15")).toBe(Date.UTC(2024, 0, 15))
    // The same wall time in the local zone (what Date.parse would do) differs by the local offset.
    const localOffsetMs = new Date(2024, 5, 1).getTimezoneOffset() * 60_000
    expect(parseRight("2024-06-01 00:00:00")).toBe(new Date(2024, 5, 1).getTime() - localOffsetMs)
  })

  it.prop("reads naive text as UTC (random wall times, compared with Date.UTC)", [
    fc.date({ min: new Date(Date.UTC(1900, 0, 1)), max: new Date(Date.UTC(2100, 0, 1)), noInvalidDate: true }),
    fc.constantFrom("T", " ")
  ], ([date, separator]) => {
    const iso = date.toISOString()
    const text = `${iso.slice(0, 10)}${separator}${iso.slice(11, 23)}`
    expect(parseRight(text)).toBe(
      Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds(), date.getUTCMilliseconds())
    )
  }, { fastCheck: { numRuns: 2000 } })
})

const digits = (value: number, width: number) => String(value).padStart(width, "0")

const componentsArbitrary = fc.record({
  year: fc.integer({ min: 1, max: 9999 }),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 31 }),
  time: fc.option(
    fc.record({
      separator: fc.constantFrom("T", " "),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      seconds: fc.option(
        fc.record({ second: fc.integer({ min: 0, max: 59 }), fraction: fc.option(fc.stringMatching(/^[0-9]{1,12}$/)) })
      ),
      zone: fc.option(
        fc.oneof(
          fc.constant({ kind: "Z" as const }),
          fc.record({
            kind: fc.constantFrom("colon" as const, "basic" as const, "hour" as const),
            sign: fc.constantFrom(1, -1),
            hours: fc.integer({ min: 0, max: 23 }),
            minutes: fc.integer({ min: 0, max: 59 })
          })
        )
      )
    })
  )
})

type Components = typeof componentsArbitrary extends fc.Arbitrary<infer A> ? A : never

const componentsToText = (c: Components): string => {
  let text = `${digits(c.year, 4)}-${digits(c.month, 2)}-${digits(c.day, 2)}`
  if (c.time === null) return text
  const t = c.time
  text += `${t.separator}${digits(t.hour, 2)}:${digits(t.minute, 2)}`
  if (t.seconds !== null) {
    text += `:${digits(t.seconds.second, 2)}`
    if (t.seconds.fraction !== null) text += `.${t.seconds.fraction}`
  }
  if (t.zone !== null) {
    if (t.zone.kind === "Z") text += "Z"
    else {
      const sign = t.zone.sign === 1 ? "+" : "-"
      const hh = digits(t.zone.hours, 2)
      const mm = digits(t.zone.minutes, 2)
      text += t.zone.kind === "colon" ? `${sign}${hh}:${mm}` : t.zone.kind === "basic" ? `${sign}${hh}${mm}` : `${sign}${hh}`
    }
  }
  return text
}

/** The oracle's answer: ms or undefined (invalid calendar date). */
const componentsToOracle = (c: Components): number | undefined => {
  const t = c.time
  const fraction = t?.seconds?.fraction ?? ""
  const milli = Number((fraction + "000").slice(0, 3))
  const base = oracleUtc(c.year, c.month, c.day, t?.hour ?? 0, t?.minute ?? 0, t?.seconds?.second ?? 0, milli)
  if (base === undefined) return undefined
  const zoneValue = t?.zone
  if (zoneValue == null || zoneValue.kind === "Z") return base
  const minutes = zoneValue.kind === "hour" ? 0 : zoneValue.minutes
  return base - zoneValue.sign * (zoneValue.hours * 60 + minutes) * 60_000
}

describe("Timestamp.parse against an independent oracle", () => {
  it.prop("agrees with Date's UTC setters on generated components, valid or not", [componentsArbitrary], ([components]) => {
    const text = componentsToText(components)
    const expected = componentsToOracle(components)
    const result = Timestamp.parse(text)
    if (expected === undefined) {
      expect(reasonOf(text)).toMatch(/^[A-Z][a-z]+ (29|30|31) does not exist in \d{4}$/)
    } else if (expected < MIN_TEXT_MS || expected > MAX_TEXT_MS) {
      expect(reasonOf(text)).toBe("the instant falls outside years 0001-9999 in UTC")
    } else {
      expect(result).toStrictEqual(Either.right(expected))
    }
  }, { fastCheck: { numRuns: 20_000 } })

  it.prop("round-trips toIso over years 0001-9999", [fc.integer({ min: MIN_TEXT_MS, max: MAX_TEXT_MS })], ([value]) => {
    expect(Timestamp.parse(Timestamp.toIso(ms(value)))).toStrictEqual(Either.right(value))
  }, { fastCheck: { numRuns: 20_000 } })

  it.prop("round-trips toSqlText over years 0001-9999", [fc.integer({ min: MIN_TEXT_MS, max: MAX_TEXT_MS })], ([value]) => {
    expect(Timestamp.parse(Timestamp.toSqlText(ms(value)))).toStrictEqual(Either.right(value))
  }, { fastCheck: { numRuns: 20_000 } })

  it("round-trips the ends of the text range", () => {
    for (const value of [MIN_TEXT_MS, MIN_TEXT_MS + 1, -1, 0, 1, MAX_TEXT_MS - 1, MAX_TEXT_MS]) {
      expect(parseRight(Timestamp.toIso(ms(value)))).toBe(value)
      expect(parseRight(Timestamp.toSqlText(ms(value)))).toBe(value)
    }
  })

  it.prop("toIso prints what Date#toISOString prints, over the whole EpochMillis range", [
    fc.integer({ min: -8.64e15, max: 8.64e15 })
  ], ([value]) => {
    expect(Timestamp.toIso(ms(value))).toBe(new Date(value).toISOString())
  }, { fastCheck: { numRuns: 20_000 } })
})

describe("Timestamp.parse never throws", () => {
  const checkTotal = (text: string) => {
    const result = Timestamp.parse(text)
    if (Either.isRight(result)) {
      expect(Number.isSafeInteger(result.right)).toBe(true)
    } else {
      expect(result.left).toBeInstanceOf(Timestamp.InvalidTimestamp)
      expect(result.left.input).toBe(text)
      expect(result.left.reason.length).toBeGreaterThan(0)
    }
  }

  it.prop("on 100k arbitrary strings", [fc.oneof(fc.string(), fc.fullUnicodeString(), fc.string({ unit: "binary" }))], ([text]) => {
    checkTotal(text)
  }, { fastCheck: { numRuns: 100_000 } })

  const nearValid = fc.tuple(
    fc.integer({ min: MIN_TEXT_MS, max: MAX_TEXT_MS }),
    fc.constantFrom("iso", "sql", "offset"),
    fc.array(
      fc.record({
        at: fc.nat(),
        action: fc.constantFrom("replace", "insert", "delete"),
        char: fc.constantFrom(..."0123456789-:.TZ+ tz/\u0000\u00a0".split(""))
      }),
      { minLength: 1, maxLength: 3 }
    )
  ).map(([value, form, edits]) => {
    let text = form === "iso"
      ? Timestamp.toIso(ms(value))
      : form === "sql"
      ? Timestamp.toSqlText(ms(value))
      : `${Timestamp.toSqlText(ms(value))}+05:30`
    for (const edit of edits) {
      const at = edit.at % (text.length + 1)
      text = edit.action === "insert"
        ? text.slice(0, at) + edit.char + text.slice(at)
        : edit.action === "delete"
        ? text.slice(0, at) + text.slice(at + 1)
        : text.slice(0, at) + edit.char + text.slice(at + 1)
    }
    return text
  })

  it.prop("on 100k near-valid strings, and whatever it accepts is re-printed to the same instant", [nearValid], ([text]) => {
    checkTotal(text)
    const result = Timestamp.parse(text)
    if (Either.isRight(result)) {
      const printed = Timestamp.toIso(result.right)
      expect(Timestamp.parse(printed)).toStrictEqual(result)
    }
  }, { fastCheck: { numRuns: 100_000 } })
})

describe("EpochMillis", () => {
  it("is a branded safe integer where zero and negatives are values", () => {
    const decode = Schema.decodeUnknownEither(Timestamp.EpochMillis)
    expect(decode(0)).toStrictEqual(Either.right(0))
    expect(decode(-1)).toStrictEqual(Either.right(-1))
    expect(decode(8.64e15)).toStrictEqual(Either.right(8.64e15))
    expect(Either.isLeft(decode(1.5))).toBe(true)
    expect(Either.isLeft(decode(8.64e15 + 1))).toBe(true)
    expect(Either.isLeft(decode("0"))).toBe(true)
  })

  it("makeEpochMillis says why a value is not an instant", () => {
    const reason = (value: unknown) => Either.match(Timestamp.makeEpochMillis(value), { onLeft: (e) => e.reason, onRight: String })
    expect(reason(0)).toBe("0")
    expect(reason(-5)).toBe("-5")
    expect(reason(1.5)).toBe("1.5 is not a safe integer number of milliseconds")
    expect(reason(Number.NaN)).toBe("NaN is not a safe integer number of milliseconds")
    expect(reason(9e15)).toBe("9000000000000000 is outside ±8.64e15 ms")
    expect(reason("1705320000000")).toBe("expected a number of milliseconds, got string")
  })
})

describe("Date conversions and text output", () => {
  it("fromDate / toDate", () => {
    expect(Timestamp.fromDate(new Date(Date.UTC(2024, 0, 15, 12)))).toBe(1705320000000)
    expect(Timestamp.fromDate(new Date(0))).toBe(0)
    expect(Timestamp.toDate(ms(1705320000000)).toISOString()).toBe("2024-01-15T12:00:00.000Z")
    expect(() => Timestamp.fromDate(new Date(Number.NaN))).toThrow(RangeError)
  })

  it("toIso and toSqlText keep every millisecond", () => {
    expect(Timestamp.toIso(ms(1705320000000))).toBe("2024-01-15T12:00:00.000Z")
    expect(Timestamp.toSqlText(ms(1705320000123))).toBe("2024-01-15 12:00:00.123")
    expect(Timestamp.toSqlText(ms(0))).toBe("1970-01-01 00:00:00.000")
    expect(Timestamp.toSqlText(ms(-1))).toBe("1969-12-31 23:59:59.999")
    expect(Timestamp.toIso(ms(MIN_TEXT_MS))).toBe("0001-01-01T00:00:00.000Z")
    expect(Timestamp.toIso(ms(MAX_TEXT_MS))).toBe("9999-12-31T23:59:59.999Z")
  })

  it("format defaults to UTC with the zone's name", () => {
    expect(Timestamp.format(ms(1705320000000))).toBe("2024-01-15 12:00:00 UTC")
    expect(Timestamp.format(ms(1705320000123), { timeZone: Timestamp.utc, pattern: "YYYY-MM-DD[T]HH:mm:ss.SSSZ" }))
      .toBe("2024-01-15T12:00:00.123+00:00")
  })

  it("format uses IANA zones through Intl, with daylight saving time", () => {
    expect(Timestamp.format(ms(1705320000000), { timeZone: zone("Asia/Shanghai") })).toBe("2024-01-15 20:00:00 GMT+8")
    expect(Timestamp.format(ms(1705320000000), { timeZone: zone("Asia/Shanghai"), pattern: "YYYY-MM-DD HH:mm Z" }))
      .toBe("2024-01-15 20:00 +08:00")
    expect(Timestamp.format(ms(1705320000000), { timeZone: zone("America/New_York") })).toBe("2024-01-15 07:00:00 EST")
    expect(Timestamp.format(ms(Date.UTC(2024, 6, 1, 12)), { timeZone: zone("America/New_York"), pattern: "HH:mm z Z" }))
      .toBe("08:00 EDT -04:00")
    expect(Timestamp.format(ms(Date.UTC(2024, 0, 15, 12)), { timeZone: zone("Asia/Kolkata"), pattern: "HH:mm Z" }))
      .toBe("17:30 +05:30")
    // Before standard time, New York kept local mean time, an offset with seconds.
    expect(Timestamp.format(ms(Date.UTC(1850, 0, 1)), { timeZone: zone("America/New_York"), pattern: "YYYY-MM-DD HH:mm:ss Z" }))
      .toBe("1849-12-31 19:03:58 -04:56:02")
  })

  it("format's pattern: literal text in brackets, other characters copied", () => {
    expect(Timestamp.format(ms(1705320000000), { pattern: "[Today is] DD/MM/YYYY [at] HH[h]mm" }))
      .toBe("Today is 15/01/2024 at 12h00")
    expect(Timestamp.format(ms(1705320000000), { pattern: "" })).toBe("")
    expect(Timestamp.format(ms(1705320000000), { pattern: "[unclosed YYYY" })).toBe("unclosed YYYY")
  })

  it("an unknown zone is a typed error at validation, never inside format", () => {
    const result = Timestamp.makeTimeZone("Mars/Olympus_Mons")
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left._tag).toBe("InvalidTimeZone")
      expect(result.left.input).toBe("Mars/Olympus_Mons")
    }
    expect(Either.isLeft(Schema.decodeUnknownEither(Timestamp.TimeZone)("Mars/Olympus_Mons"))).toBe(true)
    expect(Schema.decodeUnknownEither(Timestamp.TimeZone)("Europe/Paris")).toStrictEqual(Either.right("Europe/Paris"))
  })
})

describe("Timestamp.timeAgo", () => {
  const now = ms(1705320000000)
  it.each([
    [0, "now"],
    [-999, "now"],
    [999, "now"],
    [-1000, "1 second ago"],
    [-30_000, "30 seconds ago"],
    [-60_000, "1 minute ago"],
    [-119_999, "1 minute ago"],
    [-120_000, "2 minutes ago"],
    [-3_600_000, "1 hour ago"],
    [-7_200_000, "2 hours ago"],
    [-86_400_000, "1 day ago"],
    [3 * 86_400_000, "in 3 days"],
    [60_000, "in 1 minute"],
    [-45 * 86_400_000, "1 month ago"],
    [-400 * 86_400_000, "1 year ago"],
    [2 * 365 * 86_400_000, "in 2 years"]
  ])("%d ms from now is %s", (delta, text) => {
    expect(Timestamp.timeAgo(ms(now + delta), now)).toBe(text)
  })

  it("speaks other locales and falls back to English on a malformed tag", () => {
    expect(Timestamp.timeAgo(ms(now - 7_200_000), now, "fr")).toBe("il y a 2 heures")
    expect(Timestamp.timeAgo(ms(now - 7_200_000), now, "de")).toBe("vor 2 Stunden")
    expect(Timestamp.timeAgo(ms(now - 7_200_000), now, "not a locale!")).toBe("2 hours ago")
  })
})

describe("Timestamp.isRecent / validate / defaultRange / now", () => {
  const now = ms(1705320000000)

  it("isRecent is the closed interval [now - within, now]", () => {
    expect(Timestamp.isRecent(now, 1000, now)).toBe(true)
    expect(Timestamp.isRecent(ms(now - 1000), 1000, now)).toBe(true)
    expect(Timestamp.isRecent(ms(now - 1001), 1000, now)).toBe(false)
    expect(Timestamp.isRecent(ms(now + 1), 1000, now)).toBe(false)
    expect(Timestamp.isRecent(ms(0), 1000, ms(500))).toBe(true)
  })

  it("validate takes the range as a parameter, both ends inclusive", () => {
    const range = { min: ms(0), max: ms(1000) }
    expect(Timestamp.validate(ms(0), range)).toStrictEqual(Either.right(0))
    expect(Timestamp.validate(ms(1000), range)).toStrictEqual(Either.right(1000))
    const below = Timestamp.validate(ms(-1), range)
    const above = Timestamp.validate(ms(1001), range)
    expect(Either.isLeft(below) && below.left._tag === "TimestampOutOfRange" && below.left.message)
      .toBe("timestamp 1969-12-31T23:59:59.999Z (-1) is before the minimum 1970-01-01T00:00:00.000Z")
    expect(Either.isLeft(above) && above.left.message)
      .toBe("timestamp 1970-01-01T00:00:01.001Z (1001) is after the maximum 1970-01-01T00:00:01.000Z")
  })

  it("defaultRange runs from the epoch to one calendar year after now", () => {
    expect(Timestamp.defaultRange(now)).toStrictEqual({ min: 0, max: parseRight("2025-01-15 12:00:00") })
    expect(Timestamp.defaultRange(ms(parseRight("2024-02-29 08:30:00.250")))).toStrictEqual({
      min: 0,
      max: parseRight("2025-02-28 08:30:00.250")
    })
    const later = ms(parseRight("2031-06-01"))
    expect(Either.isRight(Timestamp.validate(ms(parseRight("2031-12-31")), Timestamp.defaultRange(later)))).toBe(true)
    expect(Either.isLeft(Timestamp.validate(ms(parseRight("2032-06-02")), Timestamp.defaultRange(later)))).toBe(true)
  })

  it.effect("now reads the Clock, so TestClock drives it", () =>
    Effect.gen(function*() {
      expect(yield* Timestamp.now).toBe(0)
      yield* TestClock.setTime(1705320000000)
      expect(yield* Timestamp.now).toBe(1705320000000)
      yield* TestClock.adjust("1500 millis")
      expect(yield* Timestamp.now).toBe(1705320001500)
    }))
})

describe("EpochMillisFromSqlText / EpochMillisFromIso", () => {
  it("decode with parse and encode with toSqlText / toIso", () => {
    expect(Schema.decodeUnknownEither(Timestamp.EpochMillisFromSqlText)("2024-01-15T20:00:00+08:00"))
      .toStrictEqual(Either.right(1705320000000))
    expect(Schema.encodeEither(Timestamp.EpochMillisFromSqlText)(ms(1705320000123)))
      .toStrictEqual(Either.right("2024-01-15 12:00:00.123"))
    expect(Schema.encodeEither(Timestamp.EpochMillisFromIso)(ms(1705320000123)))
      .toStrictEqual(Either.right("2024-01-15T12:00:00.123Z"))
  })

  it("a decode failure carries the parser's reason", () => {
    const result = Schema.decodeUnknownEither(Timestamp.EpochMillisFromSqlText)("2024-02-30 10:00:00")
    expect(Either.isLeft(result) && result.left.message).toBe(
      "EpochMillisFromSqlText\n└─ Transformation process failure\n   └─ February 30 does not exist in 2024"
    )
  })

  it("refuses to encode instants outside years 0001-9999 instead of printing text that cannot be read back", () => {
    const result = Schema.encodeEither(Timestamp.EpochMillisFromSqlText)(ms(MAX_TEXT_MS + 1))
    expect(Either.isLeft(result) && result.left.message).toContain("is outside years 0001-9999")
  })
})
