import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { nextBatchSize } from "../src/internal/batchSize.js"

const bounds = { min: 10, max: 100_000 }

describe("nextBatchSize", () => {
  it("shrinks in proportion when a batch took longer than the target, aiming at half of it", () => {
    expect(nextBatchSize(10_000, 100, 50, bounds)).toBe(2500)
    expect(nextBatchSize(10_000, 51, 50, bounds)).toBe(4901)
    expect(nextBatchSize(100, 100_000, 50, bounds)).toBe(10)
  })

  it("grows at most twofold when far under the target, keeps it in between", () => {
    expect(nextBatchSize(1000, 1, 50, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 0, 50, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 10, 50, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 12.4, 50, bounds)).toBe(2000)
    expect(nextBatchSize(1000, 20, 50, bounds)).toBe(1000)
    expect(nextBatchSize(1000, 50, 50, bounds)).toBe(1000)
    expect(nextBatchSize(80_000, 1, 50, bounds)).toBe(100_000)
  })

  it.prop("stays within bounds, and never grows after a slow batch nor shrinks after a fast one", [
    fc.integer({ min: 10, max: 100_000 }),
    fc.double({ min: 0, max: 10_000, noNaN: true }),
    fc.double({ min: 1, max: 1000, noNaN: true })
  ], ([size, batchMs, targetMs]) => {
    const next = nextBatchSize(size, batchMs, targetMs, bounds)
    if (next < bounds.min || next > bounds.max || !Number.isInteger(next)) return false
    if (batchMs > targetMs && next > size) return false
    if (batchMs <= targetMs && next < size) return false
    return true
  })
})
