/**
 * How an index build is told to people: how long it took and what the table's writers felt
 * (a concurrent PostgreSQL build lets them through; a plain build, and every SQLite build, makes
 * them wait for its whole duration). `migrate` and `backfill` both report builds this way.
 *
 * @since 0.2.0
 */
import type { BackfillRunner } from "@strata/sql"

type BuiltIndex = NonNullable<BackfillRunner.JobSummary["indexes"]>[number]

/**
 * `1,234 ms, concurrently: writes to the table went on`, or that another runner built it meanwhile.
 *
 * @since 0.2.0
 * @category text
 */
export const buildNote = (index: BuiltIndex): string =>
  index.durationMs === null
    ? "built meanwhile by another runner"
    : `${index.durationMs} ms, ${index.concurrently ? "concurrently: writes to the table went on" : "writes to the table waited for it"}`
