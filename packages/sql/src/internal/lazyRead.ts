/**
 * LazyMigration's read path: the plan's rules prepared per table (`tableRules`), the app's naming of
 * columns (`appColumnNames`, for clients that rename result columns), and the synchronous fix-up of
 * rows read (`readPath`), which fills NULL targets in copies of the rows and offers each fixed row to
 * the write-back queue (`lazyWriteBackQueue`). Apart from the write-back because it runs on every
 * read: its loops allocate nothing for rows that need nothing and never wait.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Backfill, Identifier, Plan } from "@strata/core"
import { Identifier as Identifiers, Lazy } from "@strata/core"
import { Effect, Either, Metric, Option } from "effect"
// Types only (erased): the public shapes are defined once, in the service's module.
import type { Fixable } from "../LazyMigration.js"
import type { PendingRows } from "./pendingRows.js"

/** The counts behind `Stats` (all but `pending`): the read path adds to some, the write-back to the rest. */
export interface Counts {
  fixed: number
  unparseable: number
  queued: number
  dropped: number
  writtenBack: number
  alreadySet: number
  failed: number
  unkeyed: number
  coalesced: number
  statements: number
}

export const emptyCounts = (): Counts => ({
  fixed: 0,
  unparseable: 0,
  queued: 0,
  dropped: 0,
  writtenBack: 0,
  alreadySet: 0,
  failed: 0,
  unkeyed: 0,
  coalesced: 0,
  statements: 0
})

export type Counter = Metric.Metric.Counter<number>

export interface TableMetrics {
  readonly fixed: Counter
  readonly unparseable: Counter
  readonly dropped: Counter
  readonly writtenBack: Counter
  readonly alreadySet: Counter
  readonly failures: Counter
  readonly unkeyed: Counter
  readonly statementMs: Metric.Metric.Histogram<number>
}

/** The rules of one table, prepared once so the read path only loops. */
export interface TableRules {
  readonly table: Identifier.TableName
  readonly declaredKey: Identifier.Identifier | undefined
  readonly rules: ReadonlyArray<Lazy.Rule>
  /** Where each rule's targets start in `targets`. */
  readonly offsets: ReadonlyArray<number>
  /** Per rule, the positions (in the rule's targets) of integer targets, whose stored values come back as numbers. */
  readonly integerTargets: ReadonlyArray<ReadonlyArray<number>>
  /** Every target of the table's rules, in rule order. */
  readonly targets: ReadonlyArray<Backfill.Target>
  /** Per rule, each target's name in the app's rows (its client may rename result columns). */
  readonly appTargets: ReadonlyArray<ReadonlyArray<string>>
  /**
   * Per rule, the columns it uses as (real name, the app's name) when the app's client renames any of them:
   * the rule then computes from a copy of the row under the real names. Undefined: the row is used as read.
   */
  readonly renamed: ReadonlyArray<ReadonlyArray<readonly [string, string]> | undefined>
  readonly metrics: TableMetrics
  /**
   * Read-path counts not yet added to `metrics`. A tagged metric update costs about a microsecond (its
   * key is hashed), as much as the whole fix-up, so readers count in plain numbers and the background
   * fiber publishes them every round.
   */
  readonly unpublished: { fixed: number; unparseable: number; dropped: number }
}

/** Every column a rule reads or writes. */
export const ruleColumns = (rule: Lazy.Rule): ReadonlyArray<string> => [
  ...new Set([
    ...rule.targets.map((t) => t.column),
    ...rule.reads,
    ...(rule.requires === undefined ? [] : [rule.requires]),
    ...(rule.filter === undefined ? [] : [rule.filter.column])
  ])
]

/** The plan's rules by table; `appName` gives a column's name in the app's rows; `metrics` are tagged per table. */
export const tableRules = (
  plan: Plan.Plan,
  appName: (column: string) => string,
  metrics: TableMetrics
): ReadonlyMap<string, TableRules> => {
  const byTable = new Map<string, Array<Lazy.Rule>>()
  for (const rule of Lazy.rules(plan)) {
    const rules = byTable.get(rule.table) ?? []
    // Two steps writing the same target would fix it twice; the first wins.
    const owned = (column: string) => rules.some((r) => r.targets.some((t) => t.column === column))
    if (!rule.targets.some((t) => owned(t.column))) rules.push(rule)
    byTable.set(rule.table, rules)
  }
  const tables = new Map<string, TableRules>()
  for (const [table, rules] of byTable) {
    const tagged = (counter: Counter) => Metric.tagged(counter, "table", table)
    tables.set(table, {
      table: rules[0]!.table,
      declaredKey: rules.find((r) => r.key !== undefined)?.key,
      rules,
      offsets: rules.map((_, r) => rules.slice(0, r).reduce((n, rule) => n + rule.targets.length, 0)),
      integerTargets: rules.map((rule) =>
        rule.targets.flatMap((t, i) => (t.type === "integer" || t.type === "bigint" ? [i] : []))
      ),
      targets: rules.flatMap((r) => r.targets),
      appTargets: rules.map((rule) => rule.targets.map((t) => appName(t.column))),
      renamed: rules.map((rule) => {
        const columns = ruleColumns(rule).map((column) => [column, appName(column)] as const)
        return columns.every(([real, app]) => real === app) ? undefined : columns
      }),
      metrics: {
        fixed: tagged(metrics.fixed),
        unparseable: tagged(metrics.unparseable),
        dropped: tagged(metrics.dropped),
        writtenBack: tagged(metrics.writtenBack),
        alreadySet: tagged(metrics.alreadySet),
        failures: tagged(metrics.failures),
        unkeyed: tagged(metrics.unkeyed),
        statementMs: Metric.tagged(metrics.statementMs, "table", table)
      },
      unpublished: { fixed: 0, unparseable: 0, dropped: 0 }
    })
  }
  return tables
}

/**
 * A stored integer (epoch ms) as a number: node-postgres returns BIGINT as text (and SQLite's safe
 * integer mode as bigint), so integer targets come back as numbers on both engines. Other values are left alone.
 */
const storedMillis = (value: unknown): unknown => {
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value
  if (typeof value === "string" && /^-?\d{1,16}$/.test(value)) {
    const millis = Number(value)
    return Number.isSafeInteger(millis) ? millis : value
  }
  return value
}

/**
 * The name the app's client gives each column in its rows (`transformResultNames`, e.g. snake_case to
 * camelCase), found by asking it for a row with those columns. A client that renames nothing gives each back.
 */
export const appColumnNames = (sql: SqlClient.SqlClient, columns: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, string>> => {
  if (columns.length === 0) return Effect.succeed(new Map())
  const probe = `SELECT ${columns.map((column) => `NULL AS ${Identifiers.quote(column)}`).join(", ")}`
  return Effect.map(Effect.either(sql.unsafe<Record<string, unknown>>(probe).unprepared), (result) => {
    const names = Either.isRight(result) && result.right.length === 1 ? Object.keys(result.right[0]!) : []
    // Two columns renamed to one name (or a probe that failed): the names as written are the best guess.
    return new Map(columns.map((column, i) => [column, names.length === columns.length ? names[i]! : column]))
  })
}

/** Under the rule's real column names, the fix of a row in the app's naming (see `TableRules.renamed`). */
const fixRenamed = (
  rule: Lazy.Rule,
  appTargets: ReadonlyArray<string>,
  columns: ReadonlyArray<readonly [string, string]>,
  row: Readonly<Record<string, unknown>>
): Lazy.Fix => {
  let missing = false
  for (let t = 0; t < appTargets.length; t++) {
    if (row[appTargets[t]!] == null) {
      missing = true
      break
    }
  }
  if (!missing) return undefined
  const real: Record<string, unknown> = {}
  for (let c = 0; c < columns.length; c++) {
    const [realName, appName] = columns[c]!
    const value = row[appName]
    if (value !== undefined) real[realName] = value
  }
  return Lazy.fix(rule, real)
}

/** What the read path needs from the layer: the rules, the counts, and the write-back's queue. */
export interface ReadPathInput {
  readonly planName: string
  readonly enabled: boolean
  readonly writeBack: boolean
  readonly tables: ReadonlyMap<string, TableRules>
  readonly counts: Counts
  readonly queue: PendingRows
  /** Rings the write-back when a full batch waits; true when it did (see `lazyWriteBackQueue`). */
  readonly backlogIsFull: () => boolean
  /** Called between reads: hears the write-back thread's answer even when a tight read loop keeps the event loop from turning. */
  readonly pollWriter: (() => void) | undefined
}

type Combinator = <A extends Fixable, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** The service's read operations (`fixUp`, `fixRows`, `withFixUp`). */
export const readPath = (input: ReadPathInput) => {
  const { backlogIsFull, counts, enabled, planName, pollWriter, queue, tables, writeBack } = input
  const warnedTables = new Set<string>()

  // The read path: synchronous, no Effect operations of its own beyond handing the value on, and no
  // allocation for rows that need nothing. Offering to the queue never waits.
  let backlogFull = false
  const fixRowsNow = <Row extends object>(rules: TableRules, rows: ReadonlyArray<Row>): ReadonlyArray<Row> => {
    let fixedRows = 0
    let queuedRows = 0
    let droppedRows = 0
    let result: Array<Row> | undefined
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Readonly<Record<string, unknown>>
      let patch: Record<string, unknown> | undefined
      let values: Array<Backfill.Value | null> | undefined
      for (let r = 0; r < rules.rules.length; r++) {
        const rule = rules.rules[r]!
        const appTargets = rules.appTargets[r]!
        const integers = rules.integerTargets[r]!
        for (let t = 0; t < integers.length; t++) {
          const column = appTargets[integers[t]!]!
          const current = row[column]
          if (current == null || typeof current === "number") continue
          const normalised = storedMillis(current)
          if (normalised !== current) (patch ??= {})[column] = normalised
        }
        const renamed = rules.renamed[r]
        const fix = renamed === undefined ? Lazy.fix(rule, row) : fixRenamed(rule, appTargets, renamed, row)
        if (fix === undefined) continue
        if (fix === Lazy.unconvertible) {
          counts.unparseable++
          rules.unpublished.unparseable++
          continue
        }
        const offset = rules.offsets[r]!
        for (let t = 0; t < fix.length; t++) {
          const value = fix[t]!
          if (value === null) continue
          ;(patch ??= {})[appTargets[t]!] = value
          ;(values ??= rules.targets.map(() => null))[offset + t] = value
        }
      }
      if (patch === undefined) continue
      result ??= rows.slice()
      result[i] = { ...row, ...patch } as Row
      if (values === undefined) continue
      fixedRows++
      if (!writeBack) continue
      if (queue.offer(rules, row, values)) {
        queuedRows++
      } else {
        droppedRows++
      }
    }
    if (fixedRows > 0) {
      counts.fixed += fixedRows
      rules.unpublished.fixed += fixedRows
    }
    if (droppedRows > 0) {
      counts.dropped += droppedRows
      rules.unpublished.dropped += droppedRows
    }
    if (queuedRows > 0) counts.queued += queuedRows
    if ((queuedRows > 0 || droppedRows > 0) && backlogIsFull()) backlogFull = true
    return result ?? rows
  }

  const fixValueNow = <A extends Fixable>(rules: TableRules, value: A): A => {
    if (value == null) return value
    if (Array.isArray(value)) return fixRowsNow(rules, value) as unknown as A
    if (Option.isOption(value)) {
      if (Option.isNone(value)) return value
      const rows = [value.value as object]
      const fixed = fixRowsNow(rules, rows)
      return (fixed === rows ? value : Option.some(fixed[0])) as unknown as A
    }
    return fixRowsNow(rules, [value])[0] as A
  }

  // While a full batch waits, the reader that added to it yields one scheduler turn (see `batchFull` in `lazyWriteBackQueue`).
  const handOn = <A>(value: A): Effect.Effect<A> => {
    if (pollWriter !== undefined) pollWriter()
    if (!backlogFull) return Effect.succeed(value)
    backlogFull = false
    return Effect.as(Effect.yieldNow(), value)
  }

  const unknownTable = (table: string) =>
    warnedTables.has(table) ? Effect.void : Effect.suspend(() => {
      warnedTables.add(table)
      return Effect.logWarning("lazy migration has no rules for this table; its rows are returned as read").pipe(
        Effect.annotateLogs({ table, plan: planName })
      )
    })

  const fixUp = <A extends Fixable>(table: string, value: A): Effect.Effect<A> => {
    if (!enabled) return Effect.succeed(value)
    const rules = tables.get(table)
    if (rules === undefined) return Effect.as(unknownTable(table), value)
    return Effect.suspend(() => handOn(fixValueNow(rules, value)))
  }

  const fixRows = <Row extends object>(table: string, rows: ReadonlyArray<Row>): Effect.Effect<ReadonlyArray<Row>> =>
    fixUp(table, rows)

  // One combinator per table, made once: a read through it allocates nothing of ours but the flatMap.
  const combinators = new Map<string, Combinator>()
  const makeCombinator = (table: string): Combinator => {
    if (!enabled) return (self) => self
    const rules = tables.get(table)
    if (rules === undefined) return (self) => Effect.zipLeft(self, unknownTable(table))
    const continuation = (value: Fixable) => handOn(fixValueNow(rules, value))
    return <A extends Fixable, E, R>(self: Effect.Effect<A, E, R>) =>
      Effect.flatMap(self, continuation as unknown as (value: A) => Effect.Effect<A>)
  }
  const withFixUp = (table: string): Combinator => {
    let combinator = combinators.get(table)
    if (combinator === undefined) {
      combinator = makeCombinator(table)
      combinators.set(table, combinator)
    }
    return combinator
  }

  return { fixUp, fixRows, withFixUp } as const
}
