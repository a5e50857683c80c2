/**
 * The contract between `run.ts` and a benchmark module, and the measuring helpers modules share.
 * See the top of `run.ts` for how to add a module.
 */

/** One line of a benchmark's result table. */
export interface BenchmarkRow {
  /** What was measured, e.g. `Timestamp.parse`. */
  readonly case: string
  /** Median over the repetitions (see `repetitions`). */
  readonly median: number
  /** Unit of `median`, e.g. `ns/op`, `ms`, `rows/s`. */
  readonly unit: string
  /**
   * `median / baseline median` for the baseline measured in the same run (the baseline row itself
   * is 1); for time units below 1 means faster than the baseline. Undefined when there is no baseline.
   */
  readonly ratio?: number | undefined
}

/** A benchmark: a name to select it by (`pnpm bench <name>`) and a run that returns its table. */
export interface BenchmarkModule {
  readonly name: string
  /** One-line description printed above the table. */
  readonly description: string
  readonly run: () => Promise<ReadonlyArray<BenchmarkRow>>
}

/** Repetitions per case: `BENCH_RUNS` (at least 5), default 7. */
export const repetitions = (): number => {
  const requested = Number(process.env["BENCH_RUNS"] ?? "7")
  return Number.isInteger(requested) && requested >= 5 ? requested : 7
}

/** The median of a non-empty list. */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Runs a full collection when node was started with `--expose-gc` (as `pnpm bench` does), so one case's garbage is not billed to the next. */
export const collectGarbage = (): void => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) gc()
}

/** Wall time of `work` in milliseconds, after a garbage collection. */
export const timeMs = (work: () => void): number => {
  collectGarbage()
  const start = process.hrtime.bigint()
  work()
  return Number(process.hrtime.bigint() - start) / 1e6
}

/**
 * Times each case `repetitions()` times, interleaving the cases within each repetition so drift
 * (thermal, other load) hits all of them alike, and returns the per-case medians in milliseconds.
 */
export const interleavedMedians = (cases: ReadonlyArray<() => void>): ReadonlyArray<number> => {
  const times: Array<Array<number>> = cases.map(() => [])
  for (let repetition = 0; repetition < repetitions(); repetition++) {
    cases.forEach((work, index) => times[index]!.push(timeMs(work)))
  }
  return times.map(median)
}

/** mulberry32: a fixed-seed generator, so every case and run works on the same inputs in the same (random) order. */
export const seededRandom = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** The key of the impact benchmark's `chat_messages` row `i` (`m00000001`...), as its data and its processes write and read it. */
export const messageKey = (i: number): string => `m${String(i).padStart(8, "0")}`
