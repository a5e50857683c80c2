/**
 * Progress arithmetic for long work (backfills, migration status): counters in, percent, rate,
 * ETA and a status label out. Pure: elapsed time is passed in, never read from a clock.
 *
 * Labels, from the share of a column's rows done:
 *
 * ```
 * Complete      nothing left (done >= total; also when there is nothing to do)
 * Almost done   at least 80% done
 * In progress   at least 20% done
 * Just started  below 20%
 * ```
 *
 * "Complete" is decided on the counts, never on a rounded percent: 999,999 of 1,000,000 is
 * "Almost done" even though it prints as 99.9%.
 *
 * @since 0.1.0
 */

/**
 * A status label of a progress report.
 *
 * @since 0.1.0
 */
export type Label = "Complete" | "Almost done" | "In progress" | "Just started"

/**
 * The lower bounds (percent done) of the labels below "Complete".
 *
 * @since 0.1.0
 */
export const thresholds = { almostDone: 80, inProgress: 20 } as const

/**
 * The share of `total` that is `done`, 0-100 (exact, unrounded); 100 when `total` is 0.
 *
 * @since 0.1.0
 */
export const percent = (done: number, total: number): number => {
  if (total <= 0) return 100
  return Math.min(100, Math.max(0, (done / total) * 100))
}

/**
 * The share of `total` that is `done`, 0-100, rounded down to one decimal: the figure reports
 * return and print, so text and JSON agree (`65.7`, never `65.78947368421053`), unfinished work
 * never reads `100`, and it is computed from the counts (29 of 100 is `29`, where flooring the
 * float `percent` gives 28.9). 100 when `total` is 0.
 *
 * @since 0.2.0
 */
export const roundedPercent = (done: number, total: number): number => {
  if (total <= 0) return 100
  return Math.min(100, Math.max(0, Math.floor((done * 1000) / total) / 10))
}

/**
 * The label for `done` of `total` (see the module documentation).
 *
 * @since 0.1.0
 */
export const label = (done: number, total: number): Label => {
  if (done >= total) return "Complete"
  const p = percent(done, total)
  if (p >= thresholds.almostDone) return "Almost done"
  if (p >= thresholds.inProgress) return "In progress"
  return "Just started"
}

/**
 * Rows per second for `count` rows in `elapsedMs`; `undefined` until some time has passed.
 *
 * @since 0.1.0
 */
export const rate = (count: number, elapsedMs: number): number | undefined =>
  elapsedMs > 0 ? (count / elapsedMs) * 1000 : undefined

/**
 * Milliseconds left for `remaining` rows at `rowsPerSecond`: 0 when nothing remains, `undefined`
 * when the rate is unknown or zero.
 *
 * @since 0.1.0
 */
export const etaMs = (remaining: number, rowsPerSecond: number | undefined): number | undefined => {
  if (remaining <= 0) return 0
  if (rowsPerSecond === undefined || !(rowsPerSecond > 0)) return undefined
  return Math.ceil((remaining / rowsPerSecond) * 1000)
}

/**
 * Counters of a piece of work at one moment.
 *
 * @since 0.1.0
 */
export interface Counters {
  /** Rows handled so far (over the whole job, including earlier runs). */
  readonly done: number
  /** Rows in all (an estimate while the table changes). */
  readonly total: number
  /** Rows handled in this run, and how long this run has taken: the rate's basis. */
  readonly doneThisRun: number
  readonly elapsedMs: number
}

/**
 * What a progress line shows.
 *
 * @since 0.1.0
 */
export interface Summary {
  readonly percent: number
  readonly label: Label
  readonly rowsPerSecond: number | undefined
  readonly etaMs: number | undefined
}

/**
 * Percent, label, rate and ETA from counters. The rate is this run's (earlier runs may have
 * run at another time and speed); the ETA is the remaining rows at that rate.
 *
 * @since 0.1.0
 */
export const summarize = (counters: Counters): Summary => {
  const rowsPerSecond = rate(counters.doneThisRun, counters.elapsedMs)
  return {
    percent: percent(counters.done, counters.total),
    label: label(counters.done, counters.total),
    rowsPerSecond,
    etaMs: etaMs(counters.total - counters.done, rowsPerSecond)
  }
}

/**
 * A percent with one decimal, rounded down so that unfinished work never prints as `100.0%`.
 *
 * @since 0.1.0
 */
export const formatPercent = (value: number): string => `${(Math.floor(value * 10) / 10).toFixed(1)}%`

/**
 * A duration for people: `<1s`, `42s`, `3m 05s`, `2h 07m` (rounded up to the unit shown, so an ETA
 * never promises too little).
 *
 * @since 0.1.0
 */
export const formatDuration = (ms: number): string => {
  if (!Number.isFinite(ms) || ms < 0) return "?"
  if (ms < 1000) return "<1s"
  const seconds = Math.ceil(ms / 1000)
  if (seconds < 60) return `${seconds}s`
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${String(seconds % 60).padStart(2, "0")}s`
  const minutes = Math.ceil(seconds / 60)
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`
}

/**
 * A rate for people: `950 rows/s`, `12.3k rows/s`, `1.2M rows/s`; `-` when unknown.
 *
 * @since 0.1.0
 */
export const formatRate = (rowsPerSecond: number | undefined): string => {
  if (rowsPerSecond === undefined || !Number.isFinite(rowsPerSecond)) return "- rows/s"
  if (rowsPerSecond < 1000) return `${Math.round(rowsPerSecond)} rows/s`
  if (rowsPerSecond < 1_000_000) return `${(rowsPerSecond / 1000).toFixed(1)}k rows/s`
  return `${(rowsPerSecond / 1_000_000).toFixed(1)}M rows/s`
}
