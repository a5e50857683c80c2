/**
 * Timestamp text the way years of different writers stored it, built from a known instant so the
 * instant strata must read back is known too: SQLite's `YYYY-MM-DD HH:MM:SS`, ISO with `T`, `Z`,
 * offsets, fractions, date-only, minutes only; NULLs; and garbage.
 *
 * @since 0.1.0
 */
import { Timestamp } from "@strata/core"
import type * as Prng from "./Prng.js"

/**
 * A timestamp value: the text stored, and the instant strata must read from it (null: none).
 *
 * @since 0.1.0
 */
export interface TimestampCell {
  readonly text: string | null
  readonly ms: number | null
}

/**
 * Text that is there but is no timestamp: the job converting it rejects the row.
 *
 * @since 0.1.0
 */
export const isGarbage = (cell: TimestampCell): boolean => cell.text !== null && cell.ms === null

/**
 * 2023-01-01T00:00:00Z .. 2025-06-30T00:00:00Z: a couple of years of history.
 *
 * @since 0.1.0
 */
export const historyStart = 1_672_531_200_000

const historyEnd = 1_751_241_600_000

/**
 * Values no writer should have stored but some did: empty text, words, impossible dates, other
 * locales' formats, whitespace, numbers (SQLite's NUMERIC affinity stores "0" as the integer 0).
 *
 * @since 0.1.0
 */
export const garbage: ReadonlyArray<string> = [
  "",
  "not a date",
  "yesterday",
  "2024-02-30 10:00:00",
  "2023-13-01 00:00:00",
  "2024-01-05 24:00:00",
  "13/05/2024 10:00",
  "2024-01-05  09:00:00",
  "0",
  "1700000000"
]

const iso = (ms: number): string => Timestamp.toIso(ms as Timestamp.EpochMillis)

/**
 * `n` with leading zeros to `width` digits.
 *
 * @since 0.1.0
 */
export const pad = (n: number, width: number): string => String(n).padStart(width, "0")

const offsetText = (minutes: number, style: "colon" | "compact" | "hours"): string => {
  const sign = minutes < 0 ? "-" : "+"
  const abs = Math.abs(minutes)
  const hh = pad(Math.floor(abs / 60), 2)
  const mm = pad(abs % 60, 2)
  return style === "colon" ? `${sign}${hh}:${mm}` : style === "compact" ? `${sign}${hh}${mm}` : `${sign}${hh}`
}

/**
 * A well-formed timestamp for `secondMs` (whole seconds) in one of the formats seen in the wild.
 *
 * @since 0.1.0
 */
export const formatted = (prng: Prng.Prng, secondMs: number): TimestampCell => {
  const roll = prng.next()
  const t = iso(secondMs) // YYYY-MM-DDTHH:MM:SS.000Z
  const date = t.slice(0, 10)
  const time = t.slice(11, 19)
  if (roll < 0.7) return { text: `${date} ${time}`, ms: secondMs }
  if (roll < 0.75) return { text: `${date}T${time}`, ms: secondMs }
  if (roll < 0.8) return { text: `${date}T${time}Z`, ms: secondMs }
  if (roll < 0.84) {
    const millis = prng.int(0, 999)
    return { text: `${date}T${time}.${pad(millis, 3)}Z`, ms: secondMs + millis }
  }
  if (roll < 0.88) {
    const micros = prng.int(0, 999_999)
    return { text: `${date} ${time}.${pad(micros, 6)}`, ms: secondMs + Math.floor(micros / 1000) }
  }
  if (roll < 0.93) {
    // The local wall-clock time at an offset, written with the offset: the same instant.
    const offsetMinutes = prng.pick([-480, -300, -210, 60, 120, 330, 540, 600])
    const local = iso(secondMs + offsetMinutes * 60_000)
    const style = prng.pick(["colon", "compact", "hours"] as const)
    const usable = style === "hours" && offsetMinutes % 60 !== 0 ? "colon" : style
    return { text: `${local.slice(0, 10)}T${local.slice(11, 19)}${offsetText(offsetMinutes, usable)}`, ms: secondMs }
  }
  if (roll < 0.97) {
    const midnight = secondMs - (secondMs % 86_400_000)
    return { text: date, ms: midnight }
  }
  const minute = secondMs - (secondMs % 60_000)
  return { text: `${date} ${t.slice(11, 16)}`, ms: minute }
}

/**
 * A whole-second instant in [from, to] (default: the history range).
 *
 * @since 0.1.0
 */
export const randomInstant = (prng: Prng.Prng, from = historyStart, to = historyEnd): number =>
  from + prng.int(0, Math.floor((to - from) / 1000)) * 1000

/**
 * A TIMESTAMP column value: mostly well formed, sometimes NULL, sometimes garbage.
 *
 * @since 0.1.0
 */
export const timestampCell = (
  prng: Prng.Prng,
  secondMs: number,
  rates: { readonly nulls: number; readonly garbage: number } = { nulls: 0.03, garbage: 0.02 }
): TimestampCell => {
  const roll = prng.next()
  if (roll < rates.nulls) return { text: null, ms: null }
  if (roll < rates.nulls + rates.garbage) return { text: prng.pick(garbage), ms: null }
  return formatted(prng, secondMs)
}
