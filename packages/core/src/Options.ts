/**
 * Checking of the options services take: numbers (counts) and durations. A value given but out of
 * range is refused with the service's own typed error rather than clamped: `Math.max(1, NaN)` is NaN,
 * `Duration.millis(-5)` is silently zero, and a clamp hides the caller's mistake. A value not given
 * takes the service's default.
 *
 * @since 0.1.0
 */
import { Duration, Either, Option } from "effect"

/**
 * What a numeric option allows.
 *
 * @since 0.1.0
 * @category models
 */
export interface Allowed {
  /** Whole numbers only (a count). */
  readonly integer: boolean
  /** The smallest allowed value. */
  readonly min: number
  /** Named in the message (e.g. "milliseconds"). */
  readonly unit?: string | undefined
}

/**
 * A count of at least one (batch sizes, capacities).
 *
 * @since 0.1.0
 * @category allowed values
 */
export const positiveCount: Allowed = { integer: true, min: 1 }

/**
 * A number of milliseconds of at least `min` (for options that are still plain numbers; new ones are durations).
 *
 * @since 0.1.0
 * @category allowed values
 */
export const millis = (min: number): Allowed => ({ integer: false, min, unit: "milliseconds" })

const describe = (allowed: Allowed): string => {
  if (allowed.integer) return allowed.min === 1 ? "a positive integer" : `an integer of at least ${allowed.min}`
  if (allowed.unit === undefined) return `a finite number of at least ${allowed.min}`
  return allowed.min === 0 ? `zero or more ${allowed.unit}` : `a finite number of ${allowed.unit} of at least ${allowed.min}`
}

// Callers without types (plain JS, a decoded config) can pass a string: show it quoted.
const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

/**
 * Why `value` is not allowed ("must be a positive integer, got NaN"), or `undefined` when it is.
 *
 * @since 0.1.0
 * @category checks
 */
export const problem = (value: unknown, allowed: Allowed): string | undefined => {
  const ok = typeof value === "number" && Number.isFinite(value) && value >= allowed.min &&
    (!allowed.integer || Number.isSafeInteger(value))
  return ok ? undefined : `must be ${describe(allowed)}, got ${shown(value)}`
}

/**
 * The option's value (`fallback` when not given), or `invalid(option, reason)` when it was given
 * but is not allowed. The fallback is trusted (it is the service's own default).
 *
 * @since 0.1.0
 * @category checks
 */
export const resolve = <E>(
  option: string,
  value: number | undefined,
  fallback: number,
  allowed: Allowed,
  invalid: (option: string, reason: string) => E
): Either.Either<number, E> => {
  // null too, as `??` treats it today (an untyped caller's "not set").
  if (value == null) return Either.right(fallback)
  const reason = problem(value, allowed)
  return reason === undefined ? Either.right(value) : Either.left(invalid(option, reason))
}

/**
 * What a duration option allows: at least `min` (or more than `min`, when `exclusive`), and
 * `Duration.infinity` only when `infinite`.
 *
 * @since 0.2.0
 * @category models
 */
export interface AllowedDuration {
  readonly min: Duration.Duration
  readonly exclusive: boolean
  readonly infinite: boolean
}

/**
 * Zero or more (pauses, grace periods).
 *
 * @since 0.2.0
 * @category allowed values
 */
export const nonNegativeDuration: AllowedDuration = { min: Duration.zero, exclusive: false, infinite: false }

/**
 * More than zero (intervals, time targets).
 *
 * @since 0.2.0
 * @category allowed values
 */
export const positiveDuration: AllowedDuration = { min: Duration.zero, exclusive: true, infinite: false }

/**
 * At least `min`.
 *
 * @since 0.2.0
 * @category allowed values
 */
export const durationOfAtLeast = (min: Duration.DurationInput): AllowedDuration => ({
  min: Duration.decode(min),
  exclusive: false,
  infinite: false
})

const describeDuration = (allowed: AllowedDuration): string => {
  const bound = Duration.isZero(allowed.min)
    ? allowed.exclusive ? "more than zero" : "zero or more"
    : `${allowed.exclusive ? "more than" : "at least"} ${Duration.format(allowed.min)}`
  return `a ${allowed.infinite ? "" : "finite "}duration of ${bound} (milliseconds as a number, "2 seconds", or a Duration)`
}

const shownDuration = (value: unknown): string => {
  if (Duration.isDuration(value)) return Duration.format(value)
  if (Array.isArray(value)) return JSON.stringify(value)
  if (typeof value === "bigint") return `${value}n`
  return shown(value)
}

const isNonNegative = (n: unknown): boolean => typeof n === "number" && !Number.isNaN(n) && n >= 0

/**
 * The duration `value` stands for, or none when it is not one. Stricter than `Duration.decode`,
 * which turns NaN and negative numbers (and "-5 seconds") into zero without a word.
 */
const strictDuration = (value: unknown): Option.Option<Duration.Duration> => {
  if (Duration.isDuration(value)) return Option.some(value)
  if (typeof value === "number" && !isNonNegative(value)) return Option.none()
  if (typeof value === "bigint" && value < BigInt(0)) return Option.none()
  if (Array.isArray(value) && !value.every(isNonNegative)) return Option.none()
  if (typeof value === "string" && value.trimStart().startsWith("-")) return Option.none()
  return Duration.decodeUnknown(value)
}

/**
 * Why `value` is not an allowed duration ("must be a finite duration of zero or more …, got -5"),
 * or `undefined` when it is.
 *
 * @since 0.2.0
 * @category checks
 */
export const durationProblem = (value: unknown, allowed: AllowedDuration): string | undefined => {
  const ok = Option.match(strictDuration(value), {
    onNone: () => false,
    onSome: (duration) =>
      (allowed.infinite || Duration.isFinite(duration)) &&
      (allowed.exclusive ? Duration.greaterThan(duration, allowed.min) : Duration.greaterThanOrEqualTo(duration, allowed.min))
  })
  return ok ? undefined : `must be ${describeDuration(allowed)}, got ${shownDuration(value)}`
}

/**
 * The duration option's value (`fallback` when not given), or `invalid(option, reason)` when it
 * was given but is not allowed. The fallback is trusted (it is the service's own default).
 *
 * @since 0.2.0
 * @category checks
 */
export const resolveDuration = <E>(
  option: string,
  value: Duration.DurationInput | undefined,
  fallback: Duration.DurationInput,
  allowed: AllowedDuration,
  invalid: (option: string, reason: string) => E
): Either.Either<Duration.Duration, E> => {
  if (value == null) return Either.right(Duration.decode(fallback))
  const reason = durationProblem(value, allowed)
  return reason === undefined ? Either.right(Duration.decode(value)) : Either.left(invalid(option, reason))
}
