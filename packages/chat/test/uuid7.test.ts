import { describe, expect, it } from "@effect/vitest"
import { uuid7 } from "../src/internal/uuid7.js"

describe("uuid7", () => {
  it("is a version 7, variant 10 UUID carrying the millisecond", () => {
    const id = uuid7(1_705_320_000_123)
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBeGreaterThanOrEqual(1_705_320_000_123)
  })

  it("increases within a millisecond, across its counter's overflow, and when the clock goes back", () => {
    const ids = [
      ...Array.from({ length: 10_000 }, () => uuid7(1_800_000_000_000)),
      uuid7(1_799_999_999_000),
      uuid7(1_800_000_000_500)
    ]
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
  })
})
