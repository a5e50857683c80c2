/**
 * Checking of the numeric options services take (counts, milliseconds). A value given but out of
 * range is refused with the service's own typed error rather than clamped: `Math.max(1, NaN)` is NaN,
 * and a clamp hides the caller's mistake. A value not given takes the service's default.
 */
import { Either } from "effect"

/** What a numeric option allows. */
export interface Allowed {
  /** Whole numbers only (a count). */
  readonly integer: boolean
  /** The smallest allowed value. */
  readonly min: number
  /** Named in the message (e.g. "milliseconds"). */
  readonly unit?: string | undefined
}

/** A count of at least one (batch sizes, capacities). */
export const positiveCount: Allowed = { integer: true, min: 1 }

/** A number of milliseconds of at least `min`. */
export const millis = (min: number): Allowed => ({ integer: false, min, unit: "milliseconds" })

const describe = (allowed: Allowed): string => {
  if (allowed.integer) return allowed.min === 1 ? "a positive integer" : `an integer of at least ${allowed.min}`
  if (allowed.unit === undefined) return `a finite number of at least ${allowed.min}`
  return allowed.min === 0 ? `zero or more ${allowed.unit}` : `a finite number of ${allowed.unit} of at least ${allowed.min}`
}

// Callers without types (plain JS, a decoded config) can pass a string: show it quoted.
const shown = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

/** Why `value` is not allowed ("must be a positive integer, got NaN"), or `undefined` when it is. */
export const problem = (value: unknown, allowed: Allowed): string | undefined => {
  const ok = typeof value === "number" && Number.isFinite(value) && value >= allowed.min &&
    (!allowed.integer || Number.isSafeInteger(value))
  return ok ? undefined : `must be ${describe(allowed)}, got ${shown(value)}`
}

/**
 * The option's value (`fallback` when not given), or `invalid(option, reason)` when it was given
 * but is not allowed. The fallback is trusted (it is the service's own default).
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
