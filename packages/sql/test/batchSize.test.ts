import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { batchSizer, nextBatchSize, statementSizes } from "../src/internal/batchSize.js"

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

describe("batchSizer", () => {
  // A walk whose rows cost `perRowMs` each and whose batches pay `fixedMs` besides; `spikes` maps a
  // batch's index to how many times slower its rows ran (a GC pause, a checkpoint, another process).
  const walk = (batches: number, perRowMs: number, fixedMs: number, spikes: Record<number, number> = {}, first = 1000) => {
    const sizer = batchSizer(50, bounds)
    const sizes: Array<number> = []
    let size = first
    for (let i = 0; i < batches; i++) {
      sizes.push(size)
      size = sizer.next(size, size, fixedMs + size * perRowMs * (spikes[i] ?? 1), fixedMs)
    }
    return sizes
  }
  // 8 µs a row, 3 ms fixed: the aim is (50 - 3) / 3 ms of rows, 1,958 rows.
  const aimed = Math.floor(((50 - 3) / 3) / 0.008)

  it("converges on the aim from a first size below or above it", () => {
    for (const first of [100, 1000, 50_000]) {
      const sizes = walk(30, 0.008, 3, {}, first)
      expect(Math.abs(sizes[29]! - aimed)).toBeLessThanOrEqual(aimed * 0.02)
    }
  })

  it("shrinks at once after a slow batch, and comes back to the aim afterwards", () => {
    // Batch 20's rows ran 2.5 times slower (34 ms for 1,958 rows): the next batch is cut in
    // proportion; by ten batches later the size is back near the aim. The rule of nextBatchSize
    // alone kept the cut size for the rest of the walk (anywhere from half the aim to half the room).
    const sizes = walk(40, 0.008, 3, { 20: 2.5 })
    expect(sizes[20]).toBe(aimed)
    expect(sizes[21]).toBeLessThanOrEqual(Math.ceil(aimed / 2.5))
    expect(sizes[31]).toBeGreaterThanOrEqual(Math.floor(aimed * 0.9))
    expect(sizes[39]).toBeGreaterThanOrEqual(Math.floor(aimed * 0.97))
  })

  it("follows a lasting change in the cost per row, both ways", () => {
    const sizer = batchSizer(50, bounds)
    let size = 2000
    for (let i = 0; i < 30; i++) size = sizer.next(size, size, 3 + size * 0.016, 3)
    expect(Math.abs(size - aimed / 2)).toBeLessThanOrEqual(aimed * 0.02)
    for (let i = 0; i < 30; i++) size = sizer.next(size, size, 3 + size * 0.004, 3)
    expect(Math.abs(size - aimed * 2)).toBeLessThanOrEqual(aimed * 0.04)
  })

  it("a batch with fewer rows than its size (a range's end) only shrinks the size, and only when slow", () => {
    const sizer = batchSizer(50, bounds)
    expect(sizer.next(1000, 1000, 11, 3)).toBeGreaterThan(1000)
    expect(sizer.next(2000, 10, 4, 3)).toBe(2000)
    expect(sizer.next(2000, 0, 4, 3)).toBe(2000)
    // 100 rows in 43 ms: 0.4 ms a row, so 39 rows aim at a third of the room.
    expect(sizer.next(2000, 100, 43, 3)).toBe(39)
    expect(sizer.next(1000, 1000, 60, 55)).toBe(bounds.min)
  })

  it.prop("stays within bounds, never grows after a batch over its aim nor shrinks after one under it", [
    fc.array(fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.double({ min: 0, max: 2000, noNaN: true }), fc.double({ min: 0, max: 40, noNaN: true })), { minLength: 1, maxLength: 30 })
  ], ([batches]) => {
    const sizer = batchSizer(60, bounds)
    for (const [size, batchMs, fixedMs] of batches) {
      const next = sizer.next(size, size, batchMs, fixedMs)
      if (next < bounds.min || next > bounds.max || !Number.isInteger(next)) return false
      const fixed = Math.min(fixedMs, batchMs)
      const aim = (60 - fixed) / 3
      if (batchMs - fixed > aim && next > Math.max(size, bounds.min)) return false
      if (batchMs - fixed < aim && next < Math.min(size, bounds.max)) return false
    }
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
