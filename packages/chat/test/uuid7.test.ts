import { describe, expect, it } from "@effect/vitest"
import { uuid7 } from "../src/internal/uuid7.js"

/** The 48-bit Unix-ms time part of a UUIDv7. */
const timeOf = (id: string): number => parseInt(id.slice(0, 8) + id.slice(9, 13), 16)

/** The 12-bit counter after the version nibble. */
const counterOf = (id: string): number => parseInt(id.slice(15, 18), 16)

describe("uuid7", () => {
  // The first id of this file's module instance: no earlier id can hold its time back.
  it("is a version 7, variant 10 UUID carrying exactly the millisecond it was made for", () => {
    const id = uuid7(1_705_320_000_123)
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(timeOf(id)).toBe(1_705_320_000_123)
    // A fresh millisecond starts the counter in its lower half, leaving room to count.
    expect(counterOf(id)).toBeLessThanOrEqual(0x7ff)
  })

  it("increases within a millisecond, across its counter's overflow, and when the clock goes back", () => {
    const sameMs = Array.from({ length: 10_000 }, () => uuid7(1_800_000_000_000))
    const back = uuid7(1_799_999_999_000)
    const later = uuid7(1_800_000_000_500)
    const ids = [...sameMs, back, later]
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)

    // Within the millisecond the counter counts by one; on overflow the time part moves on by 1 ms and the counter restarts at 0.
    for (let i = 1; i < sameMs.length; i++) {
      const [previous, id] = [sameMs[i - 1]!, sameMs[i]!]
      const expected = counterOf(previous) === 0xfff
        ? [timeOf(previous) + 1, 0]
        : [timeOf(previous), counterOf(previous) + 1]
      expect([timeOf(id), counterOf(id)]).toEqual(expected)
    }
    // 10,000 ids from a counter starting below 2,048 overflow at least twice: the time part ran ahead of the clock.
    expect(timeOf(sameMs[sameMs.length - 1]!)).toBeGreaterThan(1_800_000_000_001)
    // The clock going back does not take the time part back: it stays where it was and the counter goes on.
    const last = sameMs[sameMs.length - 1]!
    expect([timeOf(back), counterOf(back)]).toEqual(
      counterOf(last) === 0xfff ? [timeOf(last) + 1, 0] : [timeOf(last), counterOf(last) + 1]
    )
    // A time ahead of the last one is used as given.
    expect(timeOf(later)).toBe(1_800_000_000_500)
  })
})
