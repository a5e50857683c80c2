/**
 * The DDL of a data step's sync trigger (`sync: "trigger"`): while old app versions still write
 * rows without the step's targets, the trigger computes them with the step's SQL fast path, so the
 * values are exactly what the backfill's fast path writes. It acts only when the writer left the
 * targets alone: on INSERT every target is NULL; on UPDATE a source changed and no target did. A
 * shape the expression does not convert leaves the targets NULL (all of them: the row function may
 * reject the row), for the lazy read path and the backfill.
 *
 * SQLite: two `AFTER` triggers (`<name>_insert`, `<name>_update` on the sources) that update the row
 * by its key (`rowid` when the step declares none). PostgreSQL: one `BEFORE INSERT OR UPDATE OF`
 * the sources trigger running a plpgsql function of the same name in the table's schema, which sets
 * `NEW`'s targets from a one-row subquery over `NEW`'s sources (so the step's expressions, written
 * over column names, apply unchanged). Sources are compared as text on PostgreSQL, which also covers
 * `json` (it has no equality).
 */
import type * as Backfill from "../Backfill.js"
import type { Identifier } from "../Identifier.js"
import { quote, quoteTable, tableParts } from "../Identifier.js"
import * as Plan from "../Plan.js"

type Dialect = "sqlite" | "pg"

const stringLiteral = (value: string): string => `'${value.replace(/'/g, "''")}'`

/** The job's row filter over the row `row` (`NEW`), as the runner's `filterSql` writes it. */
const filterOn = (filter: Backfill.Filter | undefined, row: string, dialect: Dialect): string | undefined => {
  if (filter === undefined) return undefined
  const column = `${row}.${quote(filter.column)}`
  if (filter.op === "equals") return `${column} = ${stringLiteral(filter.value)}`
  return dialect === "pg"
    ? `strpos(${column}, ${stringLiteral(filter.value)}) > 0`
    : `instr(${column}, ${stringLiteral(filter.value)}) > 0`
}

/** The expressions the trigger computes, one per target in target order (the plan guarantees each). */
const expressions = (work: Backfill.Work, dialect: Dialect): ReadonlyArray<{ readonly target: Identifier; readonly sql: string }> => {
  const fast = work.fastPath[dialect]
  return work.targets.map((t) => {
    const found = fast?.expressions.find((e) => e.target === t.column)
    if (found === undefined) throw new Error(`sync trigger of job ${work.name}: no ${dialect} expression for ${t.column}`)
    return found
  })
}

/** The trigger's (and on PostgreSQL its function's) base name. */
export const triggerName = (work: Backfill.Work): Identifier => Plan.syncTriggerName(work.table, work.targets[0]!.column)

/** `name` qualified with the table's schema (SQLite names a trigger's database this way; PostgreSQL a function's schema). */
const inTableSchema = (work: Backfill.Work, name: string): string => {
  const schema = tableParts(work.table).schema
  return schema === undefined ? quote(name) : `${quote(schema)}.${quote(name)}`
}

const sqliteStatements = (work: Backfill.Work, key: Identifier | undefined): ReadonlyArray<string> => {
  const base = triggerName(work)
  // Inside a trigger SQLite takes only the bare table name: the trigger's own database's.
  const table = quote(tableParts(work.table).table)
  const exprs = expressions(work, "sqlite")
  const allPresent = exprs.map((e) => `(${e.sql}) IS NOT NULL`).join(" AND ")
  const set = exprs.map((e) =>
    `${quote(e.target)} = ${exprs.length === 1 ? `(${e.sql})` : `CASE WHEN ${allPresent} THEN (${e.sql}) END`}`
  ).join(", ")
  const rowKey = key === undefined ? "rowid = NEW.rowid" : `${quote(key)} = NEW.${quote(key)}`
  const update = `UPDATE ${table} SET ${set} WHERE ${rowKey};`
  const filter = filterOn(work.filter, "NEW", "sqlite")
  const insertWhen = [...work.targets.map((t) => `NEW.${quote(t.column)} IS NULL`), ...(filter === undefined ? [] : [filter])]
  const sourceChanged = `(${work.sources.map((s) => `NEW.${quote(s)} IS NOT OLD.${quote(s)}`).join(" OR ")})`
  const updateWhen = [
    sourceChanged,
    ...work.targets.map((t) => `NEW.${quote(t.column)} IS OLD.${quote(t.column)}`),
    ...(filter === undefined ? [] : [filter])
  ]
  return [
    `CREATE TRIGGER IF NOT EXISTS ${inTableSchema(work, `${base}_insert`)} AFTER INSERT ON ${table}\n` +
    `WHEN ${insertWhen.join(" AND ")}\nBEGIN\n  ${update}\nEND`,
    `CREATE TRIGGER IF NOT EXISTS ${inTableSchema(work, `${base}_update`)} AFTER UPDATE OF ${
      work.sources.map(quote).join(", ")
    } ON ${table}\n` +
    `WHEN ${updateWhen.join(" AND ")}\nBEGIN\n  ${update}\nEND`
  ]
}

/** A dollar-quote tag that does not occur in `body`. */
const dollarTag = (body: string): string => {
  for (let i = 0;; i++) {
    const tag = i === 0 ? "$strata_sync$" : `$strata_sync${i}$`
    if (!body.includes(tag)) return tag
  }
}

const pgStatements = (work: Backfill.Work): ReadonlyArray<string> => {
  const base = triggerName(work)
  const fn = inTableSchema(work, base)
  const exprs = expressions(work, "pg")
  const textColumns = new Set<string>(work.fastPath.pg?.textColumns ?? [])
  const rowColumns = [...new Set([...work.sources, ...(work.filter === undefined ? [] : [work.filter.column])])]
  const row = rowColumns.map((c) => `NEW.${quote(c)}${textColumns.has(c) ? "::text" : ""} AS ${quote(c)}`).join(", ")
  const targets = work.targets.map((t) => `NEW.${quote(t.column)}`)
  const asText = (column: string, side: "NEW" | "OLD") => `${side}.${quote(column)}::text`
  const sourceChanged = work.sources.map((s) => `${asText(s, "NEW")} IS DISTINCT FROM ${asText(s, "OLD")}`).join(" OR ")
  const targetSet = work.targets.map((t) => `${asText(t.column, "NEW")} IS DISTINCT FROM ${asText(t.column, "OLD")}`).join(" OR ")
  const filter = filterOn(work.filter, "NEW", "pg")
  const lines = [
    "BEGIN",
    "  IF TG_OP = 'INSERT' THEN",
    `    IF ${targets.map((t) => `${t} IS NOT NULL`).join(" OR ")} THEN RETURN NEW; END IF;`,
    `  ELSIF NOT (${sourceChanged}) OR ${targetSet} THEN`,
    "    RETURN NEW;",
    "  END IF;",
    ...(filter === undefined ? [] : [`  IF NOT COALESCE(${filter}, FALSE) THEN RETURN NEW; END IF;`]),
    `  SELECT ${exprs.map((e) => `(${e.sql})`).join(", ")} INTO ${targets.join(", ")} FROM (SELECT ${row}) AS strata_row;`,
    ...(targets.length === 1
      ? []
      : [`  IF ${targets.map((t) => `${t} IS NULL`).join(" OR ")} THEN ${targets.map((t) => `${t} := NULL;`).join(" ")} END IF;`]),
    "  RETURN NEW;",
    "END"
  ]
  const body = lines.join("\n")
  const tag = dollarTag(body)
  return [
    `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS ${tag}\n${body}\n${tag}`,
    `DROP TRIGGER IF EXISTS ${quote(base)} ON ${quoteTable(work.table)}`,
    `CREATE TRIGGER ${quote(base)} BEFORE INSERT OR UPDATE OF ${work.sources.map(quote).join(", ")} ON ${
      quoteTable(work.table)
    } FOR EACH ROW EXECUTE FUNCTION ${fn}()`
  ]
}

/** The statements that install (or replace) a step's sync trigger; re-runnable. */
export const createStatements = (work: Backfill.Work, dialect: Dialect): ReadonlyArray<string> =>
  dialect === "sqlite" ? sqliteStatements(work, work.key) : pgStatements(work)

/** The statements that remove a step's sync trigger (and its function); re-runnable. */
export const dropStatements = (work: Backfill.Work, dialect: Dialect): ReadonlyArray<string> => {
  const base = triggerName(work)
  return dialect === "sqlite"
    ? [`DROP TRIGGER IF EXISTS ${inTableSchema(work, `${base}_insert`)}`, `DROP TRIGGER IF EXISTS ${inTableSchema(work, `${base}_update`)}`]
    : [`DROP TRIGGER IF EXISTS ${quote(base)} ON ${quoteTable(work.table)}`, `DROP FUNCTION IF EXISTS ${inTableSchema(work, base)}()`]
}
