/**
 * SQLite: the backfill runner checkpoints the WAL itself between batches (`PRAGMA
 * wal_checkpoint(PASSIVE)`: it takes no lock the app waits for, and skips pages a reader still
 * needs), so the WAL starts over instead of growing batch after batch. Without it the checkpoint
 * falls to whichever connection's commit takes the WAL past `wal_autocheckpoint` (1,000 pages by
 * default): during a backfill that is mostly the app's, which then waits for the copy (stalls of
 * hundreds of ms were measured).
 *
 * Not after every batch, though: each checkpoint also syncs the database file, about 1.5-2 ms (11
 * ms on a busy machine), against 17 ms for a batch at 1M rows. It runs once the WAL has grown by
 * about `targetFrames` (half the default autocheckpoint, so the WAL stays well under it), judged
 * from how many frames a batch leaves (the `log` column of the checkpoint's result, which also
 * counts the app's own frames, so a busy app makes checkpoints come sooner). A quarter made every
 * batch of a 1M-row backfill checkpoint (each left about 136 frames), 120 syncs a run.
 *
 * The frames a batch leaves are an estimate that only falls slowly: when another connection's
 * autocheckpoint started the WAL over since the last checkpoint, `log` counts only the frames
 * after that, and taking it at its word would space checkpoints further and further apart until
 * commits (the app's among them) pay for the copy again.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect } from "effect"
import { failureText } from "../SqlErrors.js"

/** Frames the WAL may grow by between two checkpoints: 2 MiB at 4 KiB pages, half of `wal_autocheckpoint`'s default. */
export const defaultTargetFrames = 512

/** How fast the estimate of frames per batch may fall from one checkpoint to the next. */
const estimateDecay = 0.75

/** At most this many batches between two checkpoints, however small they are. */
const maxBatchesBetween = 64

/** One job's checkpoints: call `afterBatch` after each committed batch; it returns the ms it took (0 when none was due). */
export interface WalCheckpoints {
  readonly afterBatch: Effect.Effect<number, never, SqlClient.SqlClient>
  /** Checkpoints run so far. */
  readonly count: () => number
}

/** The checkpoints of one job's run. */
export const make = (targetFrames: number = defaultTargetFrames): Effect.Effect<WalCheckpoints> =>
  Effect.sync(() => {
    let batchesSince = 0
    let every = 1
    let count = 0
    let perBatch = 0
    const afterBatch = Effect.gen(function*() {
      batchesSince++
      if (batchesSince < every) return 0
      const sql = yield* SqlClient.SqlClient
      const started = yield* Clock.currentTimeNanos
      // Best effort: inside a transaction the caller holds open (the runner called within one) SQLite
      // refuses it ("database table is locked"), and the WAL is then left to the usual autocheckpoint.
      const frames = yield* sql.unsafe("PRAGMA wal_checkpoint(PASSIVE)").values.pipe(
        Effect.map((rows) => Number(rows[0]?.[1] ?? -1)),
        Effect.catchAll((error) =>
          Effect.as(Effect.logDebug("WAL checkpoint after the batch skipped").pipe(Effect.annotateLogs({ reason: failureText(error) })), -1)
        )
      )
      count++
      // -1: not in WAL mode, or refused; 0: nothing written since. Either way, look again later.
      const measured = frames > 0 ? frames / batchesSince : 0
      perBatch = Math.max(measured, perBatch * estimateDecay)
      every = perBatch > 0 ? Math.max(1, Math.min(maxBatchesBetween, Math.floor(targetFrames / perBatch))) : maxBatchesBetween
      batchesSince = 0
      return Number((yield* Clock.currentTimeNanos) - started) / 1e6
    })
    return { afterBatch, count: () => count }
  })
