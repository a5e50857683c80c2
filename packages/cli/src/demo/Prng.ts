/**
 * A small seeded pseudo-random generator (mulberry32) so the demo's data is the same for the
 * same `--rows` and `--seed` on every machine and engine.
 *
 * @since 0.1.0
 */

/**
 * Draws from one seeded sequence.
 *
 * @since 0.1.0
 */
export interface Prng {
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [min, max]. */
  readonly int: (min: number, max: number) => number
  /** One of the items. */
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** True with probability `p`. */
  readonly chance: (p: number) => boolean
}

/**
 * A generator seeded with `seed` (any integer; only its low 32 bits matter).
 *
 * @since 0.1.0
 */
export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    pick: (items) => {
      if (items.length === 0) throw new RangeError("pick from an empty list")
      return items[int(0, items.length - 1)]!
    },
    chance: (p) => next() < p
  }
}
