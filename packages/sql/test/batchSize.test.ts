import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { nextBatchSize, statementSizes } from "../src/internal/batchSize.js"

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

describe("statementSizes", () => {
  it("starts at its initial size under the cap, and follows each key's own statement times", () => {
    const sizes = statementSizes(50, 500)
    expect(sizes.size("a", 5000)).toBe(500)
    expect(sizes.size("a", 200)).toBe(200)
    // Quick: twofold a statement, up to the cap. Slow: in proportion, aiming at a third of the target.
    sizes.ran("a", 5000, 500, 500, 2)
    expect(sizes.size("a", 5000)).toBe(1000)
    sizes.ran("b", 5000, 500, 500, 300)
    expect(sizes.size("b", 5000)).toBe(27)
    expect(sizes.size("a", 5000)).toBe(1000)
    sizes.ran("a", 1200, 1000, 1000, 1)
    expect(sizes.size("a", 5000)).toBe(1200)
  })

  it("a statement smaller than its size (the last of a round) only shrinks the size, and only when it ran over half the target", () => {
    const sizes = statementSizes(50, 500)
    // Ten rows in 2 ms: quick, but says nothing about 500; in 20 ms: slow per row, yet within the target.
    sizes.ran("a", 5000, 500, 10, 2)
    sizes.ran("a", 5000, 500, 10, 20)
    expect(sizes.size("a", 5000)).toBe(500)
    // 100 rows in 60 ms: 0.6 ms a row, so 27 rows aim at a third of the target.
    sizes.ran("a", 5000, 500, 100, 60)
    expect(sizes.size("a", 5000)).toBe(27)
  })

  it.prop("a full statement over half the target never grows its size; one within a sixth of it never shrinks it", [
    fc.integer({ min: 1, max: 5000 }),
    fc.double({ min: 0, max: 10_000, noNaN: true })
  ], ([size, ms]) => {
    const sizes = statementSizes(60, size)
    sizes.ran("t", 5000, size, size, ms)
    const next = sizes.size("t", 5000)
    if (next < 1 || next > 5000 || !Number.isInteger(next)) return false
    if (ms > 30 && next > size) return false
    if (ms <= 10 && next < size) return false
    return true
  })
})
