/**
 * Adaptive batch sizing: each batch is one transaction that holds the write lock (SQLite) or row
 * locks (PostgreSQL) for its whole duration, so the size follows the measured duration toward
 * half of the target. Half, because batch times jitter (a WAL checkpoint, a GC pause, a cold page)
 * and the target is a ceiling, not an average.
 */

/** Bounds of the batch size. */
export interface Bounds {
  readonly min: number
  readonly max: number
}

const clamp = (value: number, bounds: Bounds): number => Math.min(bounds.max, Math.max(bounds.min, Math.floor(value)))

/**
 * The next batch's size after `size` rows took `batchMs`: over the target, shrink in proportion
 * (aiming at half the target); under a quarter of it, grow (at most doubling, so one lucky fast
 * batch cannot make the next one huge); otherwise keep.
 */
export const nextBatchSize = (size: number, batchMs: number, targetMs: number, bounds: Bounds): number => {
  if (batchMs > targetMs) return clamp(size * (targetMs / 2) / batchMs, bounds)
  if (batchMs < targetMs / 4) {
    const proportional = batchMs > 0 ? size * (targetMs / 2) / batchMs : Number.POSITIVE_INFINITY
    return clamp(Math.min(size * 2, proportional), bounds)
  }
  return clamp(size, bounds)
}
