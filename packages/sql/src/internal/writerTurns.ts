/**
 * SQLite: turns for other writers between a backfill's batches.
 *
 * SQLite hands its write lock to no one in particular. A writer that finds it taken sleeps in its
 * busy handler (1, 2, 5, 10, 15, 20, 25, … up to 100 ms between tries) and tries again; a runner
 * that begins its next batch as soon as the last one committed finds the lock free first nearly
 * every time. Measured with `pnpm bench impact` (1M rows, an app writing every 2 ms beside
 * back-to-back batches of about 20 ms): the app got through a few dozen times in 5 s, with waits
 * up to 1.4 s, although no batch held the lock longer than 68 ms.
 *
 * So after a batch, while another connection is writing, the runner leaves the lock free until
 * that writer has had its turn. It knows another connection wrote from `PRAGMA data_version`,
 * which changes when any other connection commits. A turn polls it every millisecond and ends
 * once a commit came and then `settleMs` passed without one (the writer has caught up), or at
 * `maxGap`. `settleMs` is one poll: an app that writes every few ms has caught up when a poll
 * sees no new commit (2 ms never settled beside an app writing every 2 ms). `maxGap` is longer
 * than the busy handler's sleep after a wait as long as a batch (10 ms for waits under 18 ms,
 * 15 ms under 33 ms), so a writer that waited through the batch wakes inside the turn.
 *
 * Turns are given while another connection committed in the last `activeFor`, and once every
 * `probeEvery` regardless: a writer that came while batches ran back to back may not have got in
 * yet, and a probe is how its first commit is seen. Alone, the runner pays one probe per
 * `probeEvery` (under 3% at the defaults).
 *
 * The first probe comes `firstProbe` into the job, not `probeEvery`: at the start nothing tells the
 * runner an app is writing (a writer that began to wait during the first batch cannot commit, so
 * `PRAGMA data_version` cannot show it), and until the first probe that writer waits through batch
 * after batch. Seen with `pnpm bench impact` before this (1 run of 5): an app write that arrived as
 * the job began waited 181 ms, through the job's first ten batches.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Effect } from "effect"

/** How turns are given; `maxGapMs` 0 gives none. */
export interface TurnSettings {
  readonly maxGapMs: number
  readonly settleMs: number
  readonly activeForMs: number
  readonly probeEveryMs: number
  /** How far into the job the first probe comes (at the first batch that ends after it). */
  readonly firstProbeMs: number
}

/** The defaults, for the default 50 ms batch target (batches aim at about 17 ms). */
export const defaultTurns: TurnSettings = { maxGapMs: 15, settleMs: 1, activeForMs: 5_000, probeEveryMs: 500, firstProbeMs: 10 }

/** One job's turns: call `afterBatch` after each committed batch; it returns the ms it waited. */
export interface WriterTurns {
  readonly afterBatch: Effect.Effect<number, never, SqlClient.SqlClient>
  /** Turns given, and how many of them another writer used. */
  readonly given: () => { readonly turns: number; readonly used: number }
}

const nowMs = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos) / 1e6)

/** `PRAGMA data_version` of the runner's connection, by position (the app's client may rename columns); undefined if it cannot be read. */
const dataVersion: Effect.Effect<number | undefined, never, SqlClient.SqlClient> = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.unsafe("PRAGMA data_version").values.pipe(
    Effect.map((rows) => {
      const value = rows[0]?.[0]
      return typeof value === "number" || typeof value === "bigint" ? Number(value) : undefined
    }),
    Effect.orElseSucceed(() => undefined)
  ))

/** The turns of one job's run. */
export const make = (settings: TurnSettings): Effect.Effect<WriterTurns> =>
  Effect.gen(function*() {
    let lastVersion: number | undefined = undefined
    let lastForeignCommit = Number.NEGATIVE_INFINITY
    // As if the last probe was `probeEvery` before the first one is due.
    let lastTurn = (yield* nowMs) - settings.probeEveryMs + Math.min(settings.firstProbeMs, settings.probeEveryMs)
    let turns = 0
    let used = 0
    const afterBatch = Effect.gen(function*() {
      if (settings.maxGapMs <= 0) return 0
      const start = yield* nowMs
      const version = yield* dataVersion
      if (version === undefined) return 0
      if (lastVersion !== undefined && version !== lastVersion) lastForeignCommit = start
      lastVersion = version
      if (start - lastForeignCommit >= settings.activeForMs && start - lastTurn < settings.probeEveryMs) return 0
      turns++
      let committedAt: number | undefined = undefined
      let now = start
      while (now - start < settings.maxGapMs && (committedAt === undefined || now - committedAt < settings.settleMs)) {
        yield* Effect.sleep("1 millis")
        now = yield* nowMs
        const seen = yield* dataVersion
        if (seen !== undefined && seen !== lastVersion) {
          lastVersion = seen
          committedAt = now
          lastForeignCommit = now
        }
      }
      if (committedAt !== undefined) used++
      lastTurn = now
      return now - start
    })
    return { afterBatch, given: () => ({ turns, used }) }
  })
