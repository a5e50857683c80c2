import { describe, expect, it } from "@effect/vitest"
import { Options } from "@strata/core"
import { Duration, Either } from "effect"

const invalid = (option: string, reason: string) => ({ option, reason })

describe("Options", () => {
  it("a numeric option not given takes the fallback; one out of range is refused, never clamped", () => {
    expect(Options.resolve("batchSize", undefined, 1000, Options.positiveCount, invalid)).toEqual(Either.right(1000))
    expect(Options.resolve("batchSize", 7, 1000, Options.positiveCount, invalid)).toEqual(Either.right(7))
    expect(Options.resolve("batchSize", 0, 1000, Options.positiveCount, invalid)).toEqual(
      Either.left({ option: "batchSize", reason: "must be a positive integer, got 0" })
    )
    expect(Options.resolve("batchSize", Number.NaN, 1000, Options.positiveCount, invalid)).toEqual(
      Either.left({ option: "batchSize", reason: "must be a positive integer, got NaN" })
    )
    expect(Options.resolve("batchSize", 2.5, 1000, Options.positiveCount, invalid)).toEqual(
      Either.left({ option: "batchSize", reason: "must be a positive integer, got 2.5" })
    )
  })

  it("a duration option accepts every DurationInput form and returns the Duration", () => {
    const pause = (value: Duration.DurationInput | undefined) =>
      Either.map(Options.resolveDuration("pause", value, Duration.millis(5), Options.nonNegativeDuration, invalid), Duration.toMillis)
    expect(pause(undefined)).toEqual(Either.right(5))
    expect(pause(0)).toEqual(Either.right(0))
    expect(pause(40)).toEqual(Either.right(40))
    expect(pause("2 seconds")).toEqual(Either.right(2000))
    expect(pause(Duration.minutes(1))).toEqual(Either.right(60_000))
    expect(pause([1, 500_000_000])).toEqual(Either.right(1500))
    expect(pause(BigInt(3_000_000))).toEqual(Either.right(3))
  })

  it("a duration that Duration.decode would silently turn into zero or infinity is refused, naming the option", () => {
    const reason = (value: unknown, allowed: Options.AllowedDuration = Options.nonNegativeDuration) =>
      Either.match(Options.resolveDuration("pause", value as Duration.DurationInput, 0, allowed, invalid), {
        onLeft: (e) => e,
        onRight: (d) => ({ accepted: Duration.format(d) })
      })
    const form = `(milliseconds as a number, "2 seconds", or a Duration)`
    expect(reason(-5)).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got -5` })
    expect(reason(Number.NaN)).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got NaN` })
    expect(reason(Number.POSITIVE_INFINITY)).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got Infinity` })
    expect(reason(Duration.infinity)).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got Infinity` })
    expect(reason("-5 seconds")).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got "-5 seconds"` })
    expect(reason("soon")).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got "soon"` })
    expect(reason([-1, 0])).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got [-1,0]` })
    expect(reason(BigInt(-1))).toEqual({ option: "pause", reason: `must be a finite duration of zero or more ${form}, got -1n` })
    expect(reason(0, Options.positiveDuration)).toEqual({ option: "pause", reason: `must be a finite duration of more than zero ${form}, got 0` })
    expect(reason(Duration.millis(5), Options.durationOfAtLeast("10 millis"))).toEqual({
      option: "pause",
      reason: `must be a finite duration of at least 10ms ${form}, got 5ms`
    })
    expect(reason(10, Options.durationOfAtLeast("10 millis"))).toEqual({ accepted: "10ms" })
    expect(reason(Duration.infinity, { ...Options.positiveDuration, infinite: true })).toEqual({ accepted: "Infinity" })
  })
})
