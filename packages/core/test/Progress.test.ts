import { describe, expect, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as Progress from "../src/Progress.js"

describe("Progress", () => {
  it("labels as seed 000's report, Complete only when nothing is left", () => {
    expect(Progress.label(120, 150)).toBe("Almost done")
    expect(Progress.label(750, 1500)).toBe("In progress")
    expect(Progress.label(150, 150)).toBe("Complete")
    expect(Progress.label(0, 0)).toBe("Complete")
    expect(Progress.label(999_999, 1_000_000)).toBe("Almost done")
    expect(Progress.label(80, 100)).toBe("Almost done")
    expect(Progress.label(79, 100)).toBe("In progress")
    expect(Progress.label(20, 100)).toBe("In progress")
    expect(Progress.label(19, 100)).toBe("Just started")
    expect(Progress.label(0, 100)).toBe("Just started")
  })

  it("percent is exact, bounded, and 100 for nothing to do", () => {
    expect(Progress.percent(120, 150)).toBe(80)
    expect(Progress.percent(0, 0)).toBe(100)
    expect(Progress.percent(5, 4)).toBe(100)
    expect(Progress.formatPercent(Progress.percent(999_999, 1_000_000))).toBe("99.9%")
    expect(Progress.formatPercent(Progress.percent(1990, 3300))).toBe("60.3%")
    expect(Progress.formatPercent(100)).toBe("100.0%")
    expect(Progress.formatPercent(0)).toBe("0.0%")
  })

  it("roundedPercent: one decimal, rounded down from the counts, and printed as it is", () => {
    expect(Progress.roundedPercent(25, 38)).toBe(65.7) // 65.78947368421053 unrounded
    expect(Progress.roundedPercent(29, 100)).toBe(29) // flooring the float percent gives 28.9
    expect(Progress.roundedPercent(999_999, 1_000_000)).toBe(99.9)
    expect(Progress.roundedPercent(17, 24)).toBe(70.8)
    expect(Progress.roundedPercent(3, 3)).toBe(100)
    expect(Progress.roundedPercent(0, 0)).toBe(100)
    expect(Progress.roundedPercent(5, 4)).toBe(100)
    expect(Progress.roundedPercent(0, 7)).toBe(0)
    FastCheck.assert(
      FastCheck.property(FastCheck.integer({ min: 1, max: 10_000_000 }), FastCheck.nat(), (total, seed) => {
        const done = seed % (total + 1)
        const rounded = Progress.roundedPercent(done, total)
        // Exactly tenths, never above the exact share, within 0.1 of it, and printed with the same digits.
        expect(Number.isInteger(Math.round(rounded * 10)) && Math.abs(rounded * 10 - Math.round(rounded * 10)) < 1e-9).toBe(true)
        expect(rounded * total <= done * 100 + 1e-6).toBe(true)
        expect(done * 100 - rounded * total < 0.1 * total + 1e-6).toBe(true)
        expect(Progress.formatPercent(rounded)).toBe(`${rounded.toFixed(1)}%`)
      })
    )
  })

  it("rate and ETA", () => {
    expect(Progress.rate(500, 0)).toBeUndefined()
    expect(Progress.rate(500, 250)).toBe(2000)
    expect(Progress.etaMs(1000, 2000)).toBe(500)
    expect(Progress.etaMs(0, undefined)).toBe(0)
    expect(Progress.etaMs(-3, 10)).toBe(0)
    expect(Progress.etaMs(10, undefined)).toBeUndefined()
    expect(Progress.etaMs(10, 0)).toBeUndefined()
    expect(Progress.etaMs(1, 3)).toBe(334)
    expect(Progress.summarize({ done: 600, total: 1000, doneThisRun: 100, elapsedMs: 1000 })).toEqual({
      percent: 60,
      label: "In progress",
      rowsPerSecond: 100,
      etaMs: 4000
    })
  })

  it("formats durations and rates for people", () => {
    expect(Progress.formatDuration(0)).toBe("<1s")
    expect(Progress.formatDuration(999)).toBe("<1s")
    expect(Progress.formatDuration(1000)).toBe("1s")
    expect(Progress.formatDuration(1001)).toBe("2s")
    expect(Progress.formatDuration(59_500)).toBe("1m 00s")
    expect(Progress.formatDuration(185_000)).toBe("3m 05s")
    expect(Progress.formatDuration(3_599_500)).toBe("1h 00m")
    expect(Progress.formatDuration(7_620_000)).toBe("2h 07m")
    expect(Progress.formatDuration(-1)).toBe("?")
    expect(Progress.formatDuration(Number.NaN)).toBe("?")
    expect(Progress.formatRate(undefined)).toBe("- rows/s")
    expect(Progress.formatRate(950.4)).toBe("950 rows/s")
    expect(Progress.formatRate(12_345)).toBe("12.3k rows/s")
    expect(Progress.formatRate(1_234_567)).toBe("1.2M rows/s")
  })

  it.prop("the label follows the percent thresholds and Complete means done >= total", [
    FastCheck.nat(10_000),
    FastCheck.nat(10_000)
  ], ([a, b]) => {
    const [done, total] = a <= b ? [a, b] : [b, a]
    const value = Progress.label(done, total)
    const p = Progress.percent(done, total)
    if (done >= total) return value === "Complete"
    return value === (p >= 80 ? "Almost done" : p >= 20 ? "In progress" : "Just started") && p < 100
  })
})
