import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { nextBatchSize } from "../src/internal/batchSize.js"

const bounds = { min: 10, max: 100_000 }

describe("nextBatchSize", () => {
  it("shrinks in proportion when a batch took over half the target, aiming at a third of it", () => {
    expect(nextBatchSize(10_000, 100, 60, bounds)).toBe(2000)
    expect(nextBatchSize(10_000, 40, 60, bounds)).toBe(5000)
    expect(nextBatchSize(100, 100_000, 60, bounds)).toBe(10)
  })

  it("grows at most twofold when under half the aim, keeps it in between", () => {
    expect(nextBatchSize(1000, 1, 60, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 0, 60, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 8, 60, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 9.5, 60, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 10, 60, bounds)).toBe(1000)
    expect(nextBatchSize(1000, 30, 60, bounds)).toBe(1000)
    expect(nextBatchSize(80_000, 1, 60, bounds)).toBe(100_000)
  })

  it("sizes the part per row: a fixed cost (commit fsync) is not scaled with the rows", () => {
    // 1,000 rows in 20 ms of which 12 are fixed: 8 µs a row, the aim is (50 - 12) / 3 = 12.7 ms of rows.
    expect(nextBatchSize(1000, 20, 50, bounds, 12)).toBe(1000)
    expect(nextBatchSize(500, 16, 50, bounds, 12)).toBe(1000)
    expect(nextBatchSize(4000, 44, 50, bounds, 12)).toBe(1583)
    // Ignoring the fixed part, the same batch would look too slow to grow.
    expect(nextBatchSize(500, 16, 50, bounds)).toBe(500)
    expect(nextBatchSize(1000, 60, 50, bounds, 55)).toBe(10)
  })

  it.prop("stays within bounds, never grows after a slow batch nor shrinks after a fast one", [
    fc.integer({ min: 10, max: 100_000 }),
    fc.double({ min: 0, max: 10_000, noNaN: true }),
    fc.double({ min: 1, max: 1000, noNaN: true })
  ], ([size, batchMs, targetMs]) => {
    const next = nextBatchSize(size, batchMs, targetMs, bounds)
    if (next < bounds.min || next > bounds.max || !Number.isInteger(next)) return false
    if (batchMs > targetMs / 2 && next > size) return false
    if (batchMs <= targetMs / 3 && next < size) return false
    return true
  })
})
