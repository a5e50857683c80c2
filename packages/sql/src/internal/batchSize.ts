/**
 * Adaptive batch sizing: each batch is one transaction that holds the write lock (SQLite) or row
 * locks (PostgreSQL) for its whole duration, so the size follows the measured duration toward a
 * third of the target. A third, because batch times jitter (a WAL checkpoint at commit, a GC pause,
 * another process on the core) by 2-3x on a busy machine, and the target is a ceiling, not an average.
 */

/** Bounds of the batch size. */
export interface Bounds {
  readonly min: number
  readonly max: number
}

const clamp = (value: number, bounds: Bounds): number => Math.min(bounds.max, Math.max(bounds.min, Math.floor(value)))

/**
 * The next batch's size after `size` rows took `batchMs`, aiming at `targetMs / 3`: over half the
 * target, shrink in proportion; under half the aim, grow in proportion but at most twofold (one
 * lucky fast batch must not make the next one huge); otherwise keep.
 */
export const nextBatchSize = (size: number, batchMs: number, targetMs: number, bounds: Bounds): number => {
  const aim = targetMs / 3
  if (batchMs > targetMs / 2) return clamp(size * aim / batchMs, bounds)
  if (batchMs < aim / 2) {
    const proportional = batchMs > 0 ? size * aim / batchMs : Number.POSITIVE_INFINITY
    return clamp(Math.min(size * 2, proportional), bounds)
  }
  return clamp(size, bounds)
}
