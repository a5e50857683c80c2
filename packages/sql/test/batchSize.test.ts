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
