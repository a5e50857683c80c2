/**
 * Every form `Timestamp.parse` and `Timestamp.parseWith` accept, proved equal to an independent
 * reference on generated inputs: the `Temporal` polyfill (temporal-polyfill, which passes test262's
 * Temporal suite). Where Temporal reads the very same text (lowercase `t`/`z`, a decimal comma, ISO
 * basic format, offsets with seconds, RFC 9557 annotations) both read it; where it does not (a space
 * before the offset, a `UTC` word, surrounding whitespace, RFC 2822, epoch numbers, `24:00`), the
 * reference reads the same instant from its components or digits. Invalid calendar dates must be
 * rejected by both. PostgreSQL's agreement is in timestamp-engines.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Timestamp } from "@strata/core"
import { Either, FastCheck as fc } from "effect"
import { Temporal } from "temporal-polyfill"

const pad = (value: number, width: number) => String(value).padStart(width, "0")

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the instants strata reads. */
const MIN_MS = -62_135_596_800_000
const MAX_MS = 253_402_300_799_999

const parsed = (text: string, accept?: Timestamp.Accept): number | string =>
  Either.match(accept === undefined ? Timestamp.parse(text) : Timestamp.parseWith(text, accept), {
    onLeft: (error) => `rejected: ${error.reason}`,
    onRight: (ms) => ms
  })

/** Temporal's instant for RFC 3339 text with an offset, or its naive wall time read in UTC; undefined where it refuses. */
const temporalMs = (text: string, naive: boolean): number | undefined => {
  try {
    return naive
      ? Temporal.PlainDateTime.from(text).toZonedDateTime("UTC").epochMilliseconds
      : Temporal.Instant.from(text).epochMilliseconds
  } catch {
    return undefined
  }
}

/** What strata must answer given the reference: the same instant inside years 0001-9999, else a rejection. */
const expectAgreement = (text: string, reference: number | undefined, accept?: Timestamp.Accept) => {
  const ours = parsed(text, accept)
  if (reference === undefined) {
    expect(ours).toMatch(/^rejected: ([A-Z][a-z]+ (29|30|31) does not exist in \d{4}|day 00 is out of range \(01-31\))$/)
  } else if (reference < MIN_MS || reference > MAX_MS) {
    expect(ours).toBe("rejected: the instant falls outside years 0001-9999 in UTC")
  } else {
    expect(ours).toBe(reference)
  }
}

const offsetArbitrary = fc.record({
  sign: fc.constantFrom("+", "-"),
  hours: fc.integer({ min: 0, max: 23 }),
  minutes: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 59 })),
  seconds: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 59 })),
  form: fc.constantFrom("hour", "colon", "basic", "colonSeconds", "basicSeconds")
})

type Offset = typeof offsetArbitrary extends fc.Arbitrary<infer A> ? A : never

const offsetText = (o: Offset): string => {
  const [hh, mm, ss] = [pad(o.hours, 2), pad(o.minutes, 2), pad(o.seconds, 2)]
  return o.sign + { hour: hh, colon: `${hh}:${mm}`, basic: `${hh}${mm}`, colonSeconds: `${hh}:${mm}:${ss}`, basicSeconds: `${hh}${mm}${ss}` }[o.form]
}

/** The offset as RFC 3339 with seconds (what Temporal reads canonically), or Z. */
const canonicalOffset = (o: Offset): string => {
  const minutes = o.form === "hour" ? 0 : o.minutes
  const seconds = o.form === "colonSeconds" || o.form === "basicSeconds" ? o.seconds : 0
  return `${o.sign}${pad(o.hours, 2)}:${pad(minutes, 2)}:${pad(seconds, 2)}`
}

const offsetIsZero = (o: Offset): boolean => canonicalOffset(o).slice(1) === "00:00:00"

const dateTimeArbitrary = fc.record({
  year: fc.oneof(fc.integer({ min: 1, max: 9999 }), fc.constantFrom(1, 1600, 1900, 2000, 2024, 9999)),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.oneof(fc.integer({ min: 1, max: 28 }), fc.integer({ min: 29, max: 31 })),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.option(fc.integer({ min: 0, max: 59 }), { freq: 5 }),
  /** Temporal reads at most 9 fraction digits. */
  fraction: fc.option(fc.stringMatching(/^[0-9]{1,9}$/)),
  decimalSign: fc.constantFrom(".", ","),
  basic: fc.boolean(),
  separator: fc.constantFrom("T", "t", " "),
  zone: fc.oneof(
    fc.constant({ kind: "none" as const }),
    fc.record({ kind: fc.constant("Z" as const), letter: fc.constantFrom("Z", "z") }),
    fc.record({ kind: fc.constant("offset" as const), offset: offsetArbitrary })
  ),
  spacesBeforeZone: fc.constantFrom("", "", " ", "  "),
  /** A UTC word (after a naive time or a zero offset) or an annotation (after Z or an offset). */
  suffix: fc.oneof(
    fc.constant(""),
    fc.constantFrom(" UTC", " GMT", " utc"),
    fc.constantFrom("[Asia/Kolkata]", "[!Europe/Paris]", "[u-ca=iso8601]", "[UTC][u-ca=hebrew]", "[+05:30]", "[x-vendor=abc-1]")
  ),
  padding: fc.tuple(fc.constantFrom("", " ", "\t", "\r\n"), fc.constantFrom("", " ", "\r\n", "\n"))
})

type DateTime = typeof dateTimeArbitrary extends fc.Arbitrary<infer A> ? A : never

interface Rendered {
  /** The text strata reads. */
  readonly text: string
  /** The same instant as canonical RFC 3339 (extended, `T`, `.`, offset ±HH:MM:SS or Z); naive when it has no zone. */
  readonly canonical: string
  readonly naive: boolean
  /** Whether Temporal reads `text` itself (no surrounding space, no space before the zone, no UTC word). */
  readonly temporalReadsText: boolean
}

const render = (d: DateTime): Rendered => {
  const second = d.second ?? 0
  const date = d.basic ? `${pad(d.year, 4)}${pad(d.month, 2)}${pad(d.day, 2)}` : `${pad(d.year, 4)}-${pad(d.month, 2)}-${pad(d.day, 2)}`
  const colon = d.basic ? "" : ":"
  let time = `${pad(d.hour, 2)}${colon}${pad(d.minute, 2)}`
  if (d.second !== null) {
    time += `${colon}${pad(d.second, 2)}`
    if (d.fraction !== null) time += `${d.decimalSign}${d.fraction}`
  }
  const separator = d.basic && d.separator === " " ? "T" : d.separator
  let zone = ""
  let canonicalZone = ""
  if (d.zone.kind === "Z") {
    zone = d.spacesBeforeZone + d.zone.letter
    canonicalZone = "Z"
  } else if (d.zone.kind === "offset") {
    zone = d.spacesBeforeZone + offsetText(d.zone.offset)
    canonicalZone = canonicalOffset(d.zone.offset)
  }
  const word = d.suffix.startsWith(" ")
  // A word follows a naive time or a zero offset; an annotation follows Z or an offset.
  const suffix = word
    ? (d.zone.kind === "none" || (d.zone.kind === "offset" && offsetIsZero(d.zone.offset)) ? d.suffix : "")
    : d.zone.kind === "none" ? "" : d.suffix
  if (word && suffix !== "") canonicalZone = "Z"
  const fraction = d.second !== null && d.fraction !== null ? `.${d.fraction}` : ""
  const canonical = `${pad(d.year, 4)}-${pad(d.month, 2)}-${pad(d.day, 2)}T${pad(d.hour, 2)}:${pad(d.minute, 2)}:${pad(second, 2)}${fraction}${canonicalZone}`
  return {
    text: `${d.padding[0]}${date}${separator}${time}${zone}${suffix}${d.padding[1]}`,
    canonical,
    naive: canonicalZone === "",
    temporalReadsText: d.padding.join("") === "" && d.spacesBeforeZone === "" && !word && d.zone.kind !== "none"
  }
}

describe("Timestamp.parse equals Temporal on every default form", () => {
  it.prop("generated date-times in every form: extended and basic, t/T/space, ./, fractions, Z/z, offsets with seconds, spaces, UTC words, annotations, padding", [
    dateTimeArbitrary
  ], ([components]) => {
    const rendered = render(components)
    const reference = temporalMs(rendered.canonical, rendered.naive)
    expectAgreement(rendered.text, reference)
    if (rendered.temporalReadsText) {
      // Temporal reads the very same text to the same instant.
      expect(temporalMs(rendered.text, false)).toBe(reference)
    }
  }, { fastCheck: { numRuns: 20_000 } })

  it.prop("date-only text is midnight UTC, as Temporal.PlainDate in UTC", [
    fc.integer({ min: 1, max: 9999 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 31 }),
    fc.tuple(fc.constantFrom("", " ", "\r\n"), fc.constantFrom("", " ", "\r\n"))
  ], ([year, month, day, [before, after]]) => {
    const text = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`
    let reference: number | undefined
    try {
      reference = Temporal.PlainDate.from(text).toZonedDateTime("UTC").epochMilliseconds
    } catch {
      reference = undefined
    }
    expectAgreement(`${before}${text}${after}`, reference)
  }, { fastCheck: { numRuns: 5000 } })

  it.prop("wherever both read a mutated near-valid text, they read the same instant", [
    dateTimeArbitrary,
    fc.array(fc.record({ at: fc.nat(), char: fc.constantFrom(..."0123456789-:.,TtZz+[]! /") }), { minLength: 1, maxLength: 2 })
  ], ([components, edits]) => {
    let text = render(components).canonical
    for (const edit of edits) {
      const at = edit.at % (text.length + 1)
      text = text.slice(0, at) + edit.char + text.slice(at + 1)
    }
    const ours = parsed(text)
    const naive = temporalMs(text, true)
    const instant = temporalMs(text, false)
    if (typeof ours === "number" && (naive !== undefined || instant !== undefined)) {
      expect(ours).toBe(instant ?? naive)
    }
  }, { fastCheck: { numRuns: 20_000 } })
})

/** Exact epoch nanoseconds of decimal text in `unit`, by BigInt on its digits (the reference, not strata's arithmetic). */
const decimalNanoseconds = (text: string, unit: Timestamp.EpochUnit): bigint => {
  const match = /^([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/.exec(text.trim())!
  const digits = BigInt(`${match[2]}${match[3] ?? ""}`)
  const scale = (unit === "seconds" ? 9 : 6) + Number(match[4] ?? "0") - (match[3] ?? "").length
  // Floor division toward the past for a negative exponent: the reference floors like the instant's own timeline.
  const magnitude = scale >= 0 ? digits * 10n ** BigInt(scale) : digits / 10n ** BigInt(-scale)
  const dropped = scale < 0 && digits % 10n ** BigInt(-scale) !== 0n
  return match[1] === "-" ? -magnitude - (dropped ? 1n : 0n) : magnitude
}

/** Temporal's millisecond of an instant in epoch nanoseconds (it floors), undefined outside years 0001-9999. */
const temporalFromNanoseconds = (ns: bigint): number | undefined => {
  if (ns < BigInt(MIN_MS) * 1_000_000n || ns > BigInt(MAX_MS) * 1_000_000n + 999_999n) return undefined
  return Temporal.Instant.fromEpochNanoseconds(ns).epochMilliseconds
}

describe("Timestamp.parseWith and fromEpoch equal Temporal on the opt-in forms", () => {
  const epochText = fc.tuple(
    fc.constantFrom("", "-", "+"),
    fc.oneof(fc.bigInt({ min: 0n, max: 253402300799n }), fc.bigInt({ min: 0n, max: 253402300799999n })),
    fc.option(fc.stringMatching(/^[0-9]{1,12}$/)),
    fc.option(fc.integer({ min: -20, max: 5 })),
    fc.constantFrom("", " ", "\r\n")
  ).map(([sign, whole, fraction, exponent, padding]) =>
    `${padding}${sign}${whole}${fraction === null ? "" : `.${fraction}`}${exponent === null ? "" : `e${exponent}`}${padding}`
  )

  it.prop("epoch text in seconds and milliseconds is Temporal.Instant.fromEpochNanoseconds of its exact digits, floored to the ms", [
    epochText,
    fc.constantFrom("seconds" as const, "milliseconds" as const)
  ], ([text, unit]) => {
    const reference = temporalFromNanoseconds(decimalNanoseconds(text, unit))
    const ours = parsed(text, { epoch: unit })
    if (reference === undefined) expect(ours).toMatch(/^rejected: .* is outside years 0001-9999$/)
    else expect(ours).toBe(reference === 0 ? 0 : reference)
  }, { fastCheck: { numRuns: 20_000 } })

  it.prop("epoch numbers (INTEGER, REAL, bigint) are the instant of their printed decimal", [
    fc.oneof(
      fc.integer({ min: -62135596800, max: 253402300799 }),
      fc.double({ min: -62135596800, max: 253402300799, noNaN: true }),
      fc.double({ min: -62135596800000, max: 253402300799999, noNaN: true }),
      fc.bigInt({ min: -62135596800000n, max: 253402300799999n })
    ),
    fc.constantFrom("seconds" as const, "milliseconds" as const)
  ], ([value, unit]) => {
    const reference = temporalFromNanoseconds(decimalNanoseconds(typeof value === "bigint" ? value.toString() : String(value), unit))
    const ours = Either.match(Timestamp.fromEpoch(value, unit), { onLeft: (e) => `rejected: ${e.reason}`, onRight: (ms) => ms })
    if (reference === undefined) expect(ours).toMatch(/^rejected: .* is outside years 0001-9999$/)
    else expect(ours).toBe(reference === 0 ? 0 : reference)
  }, { fastCheck: { numRuns: 20_000 } })

  const DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
  /** RFC 5322 §4.3's named zones and their fixed offsets in hours. */
  const NAMED_ZONES: ReadonlyArray<readonly [string, number]> = [
    ["UT", 0], ["GMT", 0], ["Z", 0], ["EST", -5], ["EDT", -4], ["CST", -6], ["CDT", -5], ["MST", -7], ["MDT", -6], ["PST", -8], ["PDT", -7]
  ]

  it.prop("RFC 2822 dates are Temporal's instant of their fields and offset; a wrong day name is rejected", [
    fc.record({
      year: fc.integer({ min: 1000, max: 9999 }),
      month: fc.integer({ min: 1, max: 12 }),
      day: fc.integer({ min: 1, max: 31 }),
      twoDigitDay: fc.boolean(),
      hour: fc.integer({ min: 0, max: 23 }),
      minute: fc.integer({ min: 0, max: 59 }),
      second: fc.option(fc.integer({ min: 0, max: 59 })),
      dayName: fc.constantFrom("right", "right", "none", "wrong"),
      zone: fc.oneof(
        fc.tuple(fc.constantFrom("+", "-"), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([s, h, m]) => ({
          text: `${s}${pad(h, 2)}${pad(m, 2)}`,
          minutes: (s === "+" ? 1 : -1) * (h * 60 + m)
        })),
        fc.constantFrom(...NAMED_ZONES).map(([name, hours]) => ({ text: name, minutes: hours * 60 }))
      ),
      lowercase: fc.boolean(),
      comment: fc.constantFrom("", " (PST)", " (Coordinated Universal Time)")
    })
  ], ([d]) => {
    let plain: Temporal.PlainDateTime | undefined
    try {
      plain = Temporal.PlainDateTime.from({ year: d.year, month: d.month, day: d.day, hour: d.hour, minute: d.minute, second: d.second ?? 0 }, { overflow: "reject" })
    } catch {
      plain = undefined
    }
    const actualDay = plain === undefined ? 0 : plain.dayOfWeek - 1
    const name = d.dayName === "none" ? "" : `${DAY_NAMES[d.dayName === "right" ? actualDay : (actualDay + 3) % 7]}, `
    const time = `${pad(d.hour, 2)}:${pad(d.minute, 2)}${d.second === null ? "" : `:${pad(d.second, 2)}`}`
    const raw = `${name}${d.twoDigitDay ? pad(d.day, 2) : d.day} ${MONTHS[d.month - 1]} ${d.year} ${time} ${d.zone.text}${d.comment}`
    const text = d.lowercase ? raw.toLowerCase() : raw
    const ours = parsed(text, { rfc2822: true })
    if (plain === undefined) {
      expect(ours).toMatch(/^rejected: [A-Z][a-z]+ (29|30|31) does not exist in \d{4}$/)
      return
    }
    const reference = plain.toZonedDateTime("UTC").epochMilliseconds - d.zone.minutes * 60_000
    if (d.dayName === "wrong") expect(ours).toMatch(/^rejected: the date says [A-Z][a-z]{2} but \d{4}-\d{2}-\d{2} is a [A-Z][a-z]{2}$/)
    else if (reference > MAX_MS) expect(ours).toBe("rejected: the instant falls outside years 0001-9999 in UTC")
    else expect(ours).toBe(reference)
  }, { fastCheck: { numRuns: 20_000 } })

  it.prop("24:00:00 under endOfDay is Temporal's next day at midnight, minus the offset", [
    fc.integer({ min: 1, max: 9998 }),
    fc.integer({ min: 1, max: 12 }),
    fc.integer({ min: 1, max: 31 }),
    fc.constantFrom("24:00", "24:00:00", "24:00:00.000", "24:00:00,0"),
    fc.option(offsetArbitrary)
  ], ([year, month, day, time, offset]) => {
    const date = `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}`
    let reference: number | undefined
    try {
      const next = Temporal.PlainDate.from(date).add({ days: 1 })
      reference = Temporal.Instant.from(`${next.toString()}T00:00:00${offset === null ? "Z" : canonicalOffset(offset)}`).epochMilliseconds
    } catch {
      reference = undefined
    }
    expectAgreement(`${date}T${time}${offset === null ? "" : offsetText(offset)}`, reference, { endOfDay: true })
  }, { fastCheck: { numRuns: 5000 } })
})
