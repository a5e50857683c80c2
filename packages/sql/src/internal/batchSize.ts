/**
 * Adaptive batch sizing. Each batch is one transaction holding the write lock (SQLite) or row locks
 * (PostgreSQL) for its whole duration, which costs a fixed part (begin, checkpoint row, commit: an
 * fsync on PostgreSQL, several ms on a busy disk) and a part per row. The size follows the measured
 * per-row cost toward an aim of the fixed part plus a third of what the target leaves: a third,
 * because batch times jitter 2-3x on a busy machine (a WAL checkpoint at commit, a GC pause, another
 * process on the core), and the target is a ceiling, not an average.
 */

/** Bounds of the batch size. */
export interface Bounds {
  readonly min: number
  readonly max: number
}

const clamp = (value: number, bounds: Bounds): number => Math.min(bounds.max, Math.max(bounds.min, Math.floor(value)))

/**
 * A batch's time split into its fixed part (at most the whole) and the part per row, with the room
 * the target leaves the rows and the aim within it (a third); undefined when the fixed part alone
 * reaches the target.
 */
const split = (batchMs: number, targetMs: number, fixedMs: number) => {
  const fixed = Math.max(0, Math.min(fixedMs, batchMs))
  if (fixed >= targetMs) return undefined
  const room = targetMs - fixed
  return { room, aim: room / 3, variable: batchMs - fixed }
}

/**
 * The next batch's size after `size` rows took `batchMs`, of which about `fixedMs` does not depend
 * on the rows. Over half the room the target leaves, shrink in proportion; under half the aim, grow in
 * proportion but at most twofold (one lucky fast batch must not make the next one huge); otherwise
 * keep. When the fixed part alone reaches the target, the smallest batch.
 */
export const nextBatchSize = (size: number, batchMs: number, targetMs: number, bounds: Bounds, fixedMs = 0): number => {
  const parts = split(batchMs, targetMs, fixedMs)
  if (parts === undefined) return bounds.min
  const { aim, room, variable } = parts
  if (variable > room / 2) return clamp(size * aim / variable, bounds)
  if (variable < aim / 2) {
    const proportional = variable > 0 ? size * aim / variable : Number.POSITIVE_INFINITY
    return clamp(Math.min(size * 2, proportional), bounds)
  }
  return clamp(size, bounds)
}

/**
 * The sizes of one walk's batches, which follow the cost per row smoothed over the batches toward
 * the same aim as `nextBatchSize`. `nextBatchSize` alone keeps a size anywhere between half the aim
 * and half the room, a threefold band, so a walk's sizes depended on its history: each slow batch
 * (a GC pause, a checkpoint, another process on the core) cut the size in proportion, and nothing
 * brought it back up unless a batch then ran under half the aim. On PostgreSQL one 35 ms batch left
 * the rest of a 1M-row walk at 1,408 rows where about 2,100 met the aim: 711 batches instead of about 480,
 * each paying the batch's fixed cost again. Here a slow batch still shrinks the next one at once
 * (over half the room, in proportion, as before), but counts only as one sample of the cost per row
 * afterwards, so the sizes come back toward the aim over the next few batches.
 *
 * Never grows after a batch that ran over the aim, never shrinks after one that ran under it.
 */
export const batchSizer = (targetMs: number, bounds: Bounds) => {
  // Smoothed ms per row of the rows' part of a batch; undefined before the first full batch.
  let perRow: number | undefined = undefined
  return {
    /** The next size after a batch asked for `size` rows, walked `rows`, and took `batchMs`, about `fixedMs` of it fixed. */
    next: (size: number, rows: number, batchMs: number, fixedMs = 0): number => {
      const parts = split(batchMs, targetMs, fixedMs)
      if (parts === undefined) return bounds.min
      const { aim, room, variable } = parts
      const slow = variable > room / 2
      // A batch with fewer rows than its size (the table's or a range's end) says little about the size: only when slow.
      if (rows < size) return slow ? clamp(Math.min(size, Math.max(rows, 1) * aim / variable), bounds) : clamp(size, bounds)
      const cost = variable / rows
      perRow = perRow === undefined || slow ? cost : 0.7 * perRow + 0.3 * cost
      const toward = perRow > 0 ? aim / perRow : Number.POSITIVE_INFINITY
      const proposed = slow ? size * aim / variable : Math.min(size * 2, toward)
      const next = variable > aim ? Math.min(size, proposed) : Math.max(size, proposed)
      return clamp(next, bounds)
    }
  }
}

/**
 * Sizes of a stream of statements, one size per key (a table), each statement aimed to run within
 * `targetMs` by `nextBatchSize`: for writers whose statements are cut from whatever rows are waiting,
 * such as the lazy write-back, where a statement holds SQLite's write lock (or its rows' locks) for as
 * long as it runs. A statement smaller than its size (the last of a round) says little about the size:
 * it only shrinks the size when it ran over half the target itself.
 */
export const statementSizes = (targetMs: number, initial: number) => {
  const sizes = new Map<string, number>()
  return {
    /** Rows for the next statement of `key`, at most `cap`. */
    size: (key: string, cap: number): number => Math.min(cap, sizes.get(key) ?? initial),
    /** A statement of `key` that was cut at `size` rows and had `rows` took `ms`. */
    ran: (key: string, cap: number, size: number, rows: number, ms: number): void => {
      const bounds = { min: 1, max: cap }
      if (rows >= size) sizes.set(key, nextBatchSize(size, ms, targetMs, bounds))
      else if (ms > targetMs / 2) sizes.set(key, Math.min(size, nextBatchSize(rows, ms, targetMs, bounds)))
    }
  }
}
