/**
 * A backfill batch on PostgreSQL's SQL fast path as one statement. A batch there used to be a
 * dozen round trips (the checkpoint read, a key-range probe, a spot check, the UPDATE, a second
 * read of the range for rows left to JavaScript, the checkpoint write), each paid again by every
 * batch; at the batch sizes a 50 ms target allows, that fixed part was a third of a backfill's
 * time. This statement, run after the batch has claimed its checkpoint (the row lock), walks the
 * next key range once and:
 *
 * - counts its rows, those outside the job's scope and those whose targets are all set, from the
 *   statement's snapshot (before anything is written); with one target, only when the write did not
 *   convert the whole range (a range of `size` keys all converted has nothing else to count);
 * - converts the pending rows the fast path takes (its guard, or all its expressions NOT NULL)
 *   with conditional writes (`COALESCE(target, value)` on rows whose target is still NULL, so an
 *   app's value written meanwhile is kept, and such a row is not counted);
 * - advances the job's checkpoint row by what it did: cursor to the range's last key, counters;
 * - returns those counts, the last key, whether rows follow, and the first pending rows of the
 *   range as they were before the write (the row function's inputs and the fast path's values),
 *   for the runner's spot check.
 *
 * All parts of one statement see one snapshot, so the returned rows are the values the UPDATE
 * converted. The runner checks them against the row function and, at a disagreement, rolls the
 * whole batch back (rows and checkpoint) and does it again in JavaScript: checked, never trusted.
 * Rows of the range the fast path left pending (its guard false, or a value it cannot compute) are
 * `pending - written`; the runner converts those in JavaScript in the same transaction, as before.
 * @internal
 */
import { Backfill, Checks, Identifier } from "@strata/core"
import type { KeyValue } from "../JobState.js"
import { keyCursorSql } from "../JobState.js"
import { afterCursor, allSetSql, type JobTable, outOfScopeSql, Params, pendingSql, selectList } from "./jobTable.js"

/** Pending rows per batch the runner checks against the row function (the rows the fast path wrote first). */
export const spotCheckRows = 4

/** The statement and its parameters. */
export interface FastBatchStatement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
}

const column = (name: string) => `__strata_${name}`

/**
 * The batch statement: the next key range of at most `size` rows after `cursor`, converted by `fast`,
 * with the checkpoint row of `job` in `jobsTable` (quoted) advanced, stamped `nowMs`.
 */
export const fastBatchStatement = (
  table: JobTable,
  fast: Backfill.SqlFastPath,
  job: string,
  jobsTable: string,
  cursor: KeyValue | undefined,
  size: number,
  nowMs: number
): FastBatchStatement => {
  const params = new Params("pg")
  const t = Identifier.quoteTable(table.job.table)
  const key = table.key.sql
  const targets = Backfill.targetColumns(table.job)
  const multiTarget = targets.length > 1
  const after = afterCursor(table, params, cursor)
  const limit = params.bind(size)
  const wasNull = multiTarget ? targets.map((target, i) => `, ${Identifier.quote(target)} IS NULL AS was_null_${i}`).join("") : ""
  const inRange = `${after} AND ${key} <= (SELECT last_k FROM range_end)`
  const pending = pendingSql(table, params)
  // The WHERE filters on the guard when there is one, so each row's value skips the guard's own test.
  const sets = fast.expressions.map(({ sql: expression, target, whenGuarded }) =>
    `${Identifier.quote(target)} = COALESCE(${t}.${Identifier.quote(target)}, (${fast.guard === undefined ? expression : whenGuarded ?? expression}))`
  )
  const converts = fast.guard ?? fast.expressions.map(({ sql: expression }) => `(${expression}) IS NOT NULL`).join(" AND ")
  // A row counts as written when a target it had NULL got a value (a guarded row whose value is NULL stays pending).
  const written = multiTarget
    ? `SELECT count(*) AS n FROM written_rows u JOIN range_rows r ON r.k = u.k WHERE ${
      targets.map((target, i) => `(r.was_null_${i} AND u.${Identifier.quote(target)} IS NOT NULL)`).join(" OR ")
    }`
    : `SELECT count(*) AS n FROM written_rows u WHERE u.${Identifier.quote(targets[0]!)} IS NOT NULL`
  const values = fast.expressions.map(({ sql: expression }, i) => `(${expression}) AS ${Checks.fastPathColumn(i)}`)
  const guard = fast.guard === undefined ? [] : [`${fast.guard} AS __strata_guarded`]
  const jobParam = params.bind(job)
  const nowParam = params.bind(nowMs)
  // "Is there a next row" is the first key after the range, not EXISTS: PostgreSQL plans an EXISTS
  // over `key > last` as a sequential scan that passes every row before the range (quadratic).
  // The range's last key: the size-th key after the cursor, read from the key's index (the same
  // snapshot as the rest, so the same row); at the table's end, where fewer rows follow, the
  // largest key after the cursor (max() has no uuid version on PostgreSQL 15). Sorting every range
  // for its largest key cost a batch about 0.4 ms of the server's CPU.
  const sizeth = `(SELECT ${key} FROM ${t} WHERE ${after} ORDER BY ${key} OFFSET ${params.bind(size - 1)} LIMIT 1)`
  const writes = `written_rows AS (UPDATE ${t} SET ${sets.join(", ")} WHERE ${inRange} AND ${pending} AND ${converts} ` +
    `RETURNING ${key} AS k, ${targets.map(Identifier.quote).join(", ")}), written AS (${written}), `
  const head = multiTarget
    ? `WITH range_rows AS MATERIALIZED (` +
      `SELECT ${key} AS k, ${outOfScopeSql(table, params)} AS oos, ${allSetSql(table)} AS allset${wasNull} ` +
      `FROM ${t} WHERE ${after} ORDER BY ${key} LIMIT ${limit}), ` +
      `summary AS (SELECT count(*) AS n, count(*) FILTER (WHERE oos) AS oos, count(*) FILTER (WHERE NOT oos AND allset) AS allset, ` +
      `COALESCE(${sizeth}, (SELECT k FROM range_rows ORDER BY k DESC LIMIT 1)) AS last_k FROM range_rows), ` +
      `range_end AS (SELECT last_k FROM summary), ${writes}`
    // One target: the range's rows are read for their counts only when the UPDATE did not write
    // all of them (some out of scope, already set, or left to JavaScript); a range of `size` keys
    // all written has nothing else to count. Reading every range first cost a batch a walk of its
    // rows through the heap (about 1.5 ms of 2,000 rows' 15), almost always to count zeros.
    : `WITH range_end AS MATERIALIZED (SELECT COALESCE(b.k, (SELECT ${key} FROM ${t} WHERE ${after} ORDER BY ${key} DESC LIMIT 1)) AS last_k, ` +
      // OFFSET 0 keeps the subquery from being pulled up, which would walk the index twice for `b.k`.
      `b.k IS NOT NULL AS full_range FROM (SELECT ${sizeth} AS k OFFSET 0) b), ${writes}` +
      // Same snapshot as the UPDATE's scan: the rows as they were before it wrote.
      `range_rows AS MATERIALIZED (SELECT count(*) AS n, count(*) FILTER (WHERE oos) AS oos, count(*) FILTER (WHERE NOT oos AND allset) AS allset ` +
      `FROM (SELECT ${outOfScopeSql(table, params)} AS oos, ${allSetSql(table)} AS allset FROM ${t} WHERE ${inRange}) r), ` +
      `summary AS (SELECT CASE WHEN e.full_range AND w.n = ${limit} THEN ${limit} ELSE (SELECT n FROM range_rows) END AS n, ` +
      `CASE WHEN e.full_range AND w.n = ${limit} THEN 0 ELSE (SELECT oos FROM range_rows) END AS oos, ` +
      `CASE WHEN e.full_range AND w.n = ${limit} THEN 0 ELSE (SELECT allset FROM range_rows) END AS allset, e.last_k ` +
      `FROM range_end e, written w), `
  const sql = head +
    `checkpoint AS (UPDATE ${jobsTable} SET cursor = ${keyCursorSql("s.last_k", table.key.kind)}, ` +
    `processed = processed + s.oos + s.allset + w.n, updated = updated + w.n, already_set = already_set + s.allset, ` +
    `out_of_scope = out_of_scope + s.oos, updated_at_ms = ${nowParam} ` +
    `FROM summary s, written w WHERE job = ${jobParam} AND s.n > 0 RETURNING 1), ` +
    `sample AS (SELECT ${[selectList(table), ...values, ...guard].join(", ")} FROM ${t} ` +
    `WHERE ${inRange} AND ${pending} ORDER BY ${key} LIMIT ${spotCheckRows}) ` +
    `SELECT s.n AS ${column("n")}, s.oos AS ${column("oos")}, s.allset AS ${column("allset")}, s.last_k AS ${column("last")}, ` +
    `w.n AS ${column("written")}, (SELECT ${key} FROM ${t} WHERE ${key} > s.last_k ORDER BY ${key} LIMIT 1) IS NOT NULL AS ${column("more")}, ` +
    `(SELECT count(*) FROM checkpoint) AS ${column("saved")}, sample.* ` +
    `FROM summary s CROSS JOIN written w LEFT JOIN sample ON TRUE ORDER BY sample.__strata_key`
  return { sql, params: params.values }
}

/** What the batch statement did, read from its rows. */
export interface FastBatchResult {
  /** Rows in the key range (0: none left after the cursor; nothing was written). */
  readonly rows: number
  readonly outOfScope: number
  readonly alreadySet: number
  /** Rows the fast path wrote a value into. */
  readonly written: number
  /** Pending rows of the range the fast path did not write: the runner's JavaScript part. */
  readonly leftOver: number
  readonly end: unknown
  readonly last: boolean
  /** Whether the checkpoint row was advanced (it must be, whenever `rows` > 0). */
  readonly saved: boolean
  /** Up to `spotCheckRows` pending rows of the range as they were, with the fast path's values. */
  readonly sample: ReadonlyArray<Record<string, unknown>>
}

/**
 * The statement's rows as a result. Its summary columns are on every row; `undefined` for a column
 * the rows lack (a client renaming result columns), which the runner reports.
 */
export const readFastBatch = (rows: ReadonlyArray<Record<string, unknown>>): FastBatchResult | { readonly missing: string } => {
  const first = rows[0] ?? {}
  for (const name of ["n", "oos", "allset", "last", "written", "more", "saved"]) {
    if (first[column(name)] === undefined) return { missing: column(name) }
  }
  const count = (name: string) => Number(first[column(name)])
  const rowCount = count("n")
  return {
    rows: rowCount,
    outOfScope: count("oos"),
    alreadySet: count("allset"),
    written: count("written"),
    leftOver: rowCount - count("oos") - count("allset") - count("written"),
    end: first[column("last")],
    last: first[column("more")] === false,
    saved: count("saved") === 1,
    sample: rows.filter((row) => row["__strata_key"] != null)
  }
}
