/**
 * The write-back's bounded buffer of fixed rows waiting to be written: offered by the read path (never
 * waits: a full or closed buffer refuses the row), taken in batches by the write-back.
 *
 * Three plain arrays rather than an Effect `Queue`: readers offer a row on every unmigrated read, and each
 * row waits for thousands of reads before its batch is taken, so it outlives young-generation collections.
 * Effect's queue adds a linked-list node per row and its bookkeeping; measured (`pnpm bench lazy`, and a
 * scratch loop of the same shape) the scavenges and offers of a 10,000-row `Queue.dropping` cost readers
 * about 3 µs a row, against about 0.3 µs for these arrays. Single-threaded: offers and takes never interleave.
 */
import type { Backfill } from "@strata/core"
import type { TableRules } from "./lazyRead.js"

/**
 * Fixed rows taken together, by position: row `i` of table `tables[i]`, as read (`rows[i]`, for its key),
 * with one value per target of its table (`values[i]`; null: not fixed here).
 */
export interface PendingBatch {
  readonly tables: ReadonlyArray<TableRules>
  readonly rows: ReadonlyArray<Readonly<Record<string, unknown>>>
  readonly values: ReadonlyArray<ReadonlyArray<Backfill.Value | null>>
}

/** The buffer of one layer (see the module documentation). */
export interface PendingRows {
  /** Adds a fixed row; false (nothing kept) when the buffer is full or closed. */
  readonly offer: (
    table: TableRules,
    row: Readonly<Record<string, unknown>>,
    values: ReadonlyArray<Backfill.Value | null>
  ) => boolean
  /** Rows waiting now (0 once closed). */
  readonly size: () => number
  /** Takes the oldest `n` rows (fewer when fewer wait), in the order they were offered. */
  readonly takeUpTo: (n: number) => PendingBatch
  /** Refuses every later offer and forgets the rows still waiting (they stay pending in the database). */
  readonly close: () => void
}

/** An empty buffer of at most `capacity` rows. */
export const pendingRows = (capacity: number): PendingRows => {
  let tables: Array<TableRules> = []
  let rows: Array<Readonly<Record<string, unknown>>> = []
  let values: Array<ReadonlyArray<Backfill.Value | null>> = []
  let closed = false
  const offer: PendingRows["offer"] = (table, row, fixed) => {
    if (closed || tables.length >= capacity) return false
    tables.push(table)
    rows.push(row)
    values.push(fixed)
    return true
  }
  const takeUpTo = (n: number): PendingBatch => {
    const count = Math.min(Math.max(0, Math.trunc(n)), tables.length)
    if (count < tables.length) return { tables: tables.splice(0, count), rows: rows.splice(0, count), values: values.splice(0, count) }
    const taken = { tables, rows, values }
    tables = []
    rows = []
    values = []
    return taken
  }
  return {
    offer,
    size: () => tables.length,
    takeUpTo,
    close: () => {
      closed = true
      tables = []
      rows = []
      values = []
    }
  }
}
