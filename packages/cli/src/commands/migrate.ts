/**
 * `strata migrate [--to N] [--dry-run] [--baseline N] [--backup FILE]`: applies the plan's pending
 * migrations (each in its own transaction), or shows what it would run, or records migrations the
 * database already has as applied.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Database, Migrator } from "@strata/sql"
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as IndexBuild from "../IndexBuild.js"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import * as Target from "../Target.js"

/**
 * `--backup FILE`, shared with `backfill`: an online copy of the SQLite database before anything changes.
 *
 * @since 0.1.0
 */
export const backupOption = Options.text("backup").pipe(
  Options.withPseudoName("FILE"),
  Options.withDescription(
    "Before changing anything, copy the SQLite database to FILE with SQLite's online backup (the file must not exist)."
  ),
  Options.optional
)

/**
 * Takes the `--backup` copy, if asked for; refuses when there is nothing to copy yet.
 *
 * @since 0.1.0
 */
export const backupFirst = (target: { readonly display: string; readonly exists: boolean }, backup: Option.Option<string>) =>
  Option.match(backup, {
    onNone: () => Effect.void,
    onSome: (file) =>
      target.exists
        ? Effect.zipRight(Database.backup(file), Effect.logInfo("backup written").pipe(Effect.annotateLogs({ backup: file })))
        : new Outcome.BadArgument({ message: `nothing to back up: ${target.display} does not exist yet` })
  })

/** The locks a migration took, as bounded as they were: held for its transaction, each wait under lock_timeout (PostgreSQL). */
const lockNote = (result: Migrator.RunResult, migration: Migrator.AppliedMigration): string =>
  result.lockTimeoutMs === undefined
    ? `: the write lock held ${migration.durationMs} ms`
    : `: table locks held ${migration.durationMs} ms, each wait at most ${result.lockTimeoutMs} ms, ${migration.attempts} attempt${
      migration.attempts === 1 ? "" : "s"
    }`

const migrationLines = (result: Migrator.RunResult, database: string): ReadonlyArray<string> => {
  const lines = [`Plan ${result.plan} on ${database}`]
  for (const migration of result.applied) {
    const ran = migration.statements.filter((s) => !s.skipped).length
    lines.push(
      `  applied  ${String(migration.id).padStart(4)}  ${migration.name}  (${ran} statement${ran === 1 ? "" : "s"}, ${migration.durationMs} ms${
        lockNote(result, migration)
      })`
    )
  }
  for (const index of result.indexes) {
    lines.push(
      `  index    ${String(index.migrationId).padStart(4)}  ${index.name} on ${index.table}  (${
        IndexBuild.buildNote(index)
      }${index.rebuiltInvalid ? ", an INVALID index left by an interrupted build was dropped first" : ""})`
    )
  }
  for (const constraint of result.constraints) {
    const validate = constraint.validateMs === null ? [] : [`validated in ${constraint.validateMs} ms: reads and writes to the table went on`]
    const finish = constraint.finishMs === null ? [] : [`SET NOT NULL held the table ${constraint.finishMs} ms`]
    lines.push(
      `  validated${String(constraint.migrationId).padStart(4)}  ${constraint.name} on ${constraint.table}.${constraint.column}  (${
        [...validate, ...finish].join(", ")
      })`
    )
  }
  for (const index of result.deferredIndexes) {
    lines.push(`  deferred ${String(index.migrationId).padStart(4)}  ${index.name} on ${index.table}  (built when backfill ${index.afterJob ?? ""} is done)`)
  }
  if (result.appliedConcurrently.length > 0) {
    lines.push(`  applied meanwhile by another runner: ${result.appliedConcurrently.join(", ")}`)
  }
  const latest = [...result.alreadyApplied, ...result.appliedConcurrently, ...result.applied.map((m) => m.id)]
  const at = latest.length === 0 ? "no migrations applied" : `at migration ${Math.max(...latest)}`
  lines.push(
    result.applied.length === 0
      ? `Nothing to apply; the database is ${at}.`
      : `${result.applied.length} migration${result.applied.length === 1 ? "" : "s"} applied; the database is ${at}.`
  )
  return lines
}

const oneLine = (text: string): string => text.split("\n").filter((line) => !line.startsWith("--")).join(" ")

/** A migration's statements for a dry run, each phase under a comment saying when it runs. */
const plannedLines = (migration: Migrator.PlannedMigration, heading: string): ReadonlyArray<string> => {
  const lines = ["", `-- migration ${migration.id} "${migration.name}" (checksum ${migration.checksum})${heading}`]
  let phase: Migrator.PlannedStatement["phase"] = "transaction"
  for (const statement of migration.statements) {
    if (statement.phase !== phase) {
      phase = statement.phase
      lines.push(
        phase === "validate"
          ? "-- after the transaction commits, each in a transaction of its own (the app keeps reading and writing meanwhile):"
          : phase === "afterCommit"
          ? "-- after the transaction commits, outside it (the app keeps writing meanwhile):"
          : "-- later, when its backfill job is done (strata backfill builds it):"
      )
    }
    if (statement.phase === "afterJob") lines.push(`-- after backfill ${statement.afterJob ?? ""}`)
    // `text` is Compile.render's: terminated, a guard as a comment line.
    lines.push(statement.willRun ? statement.text : `-- skipped, the column exists: ${oneLine(statement.text)}`)
  }
  return lines
}

const dryRunLines = (result: Migrator.DryRunResult, database: string): ReadonlyArray<string> => {
  const lines = [`-- Dry run: plan ${result.plan} on ${database} (${result.dialect}); nothing is changed.`]
  if (result.createsHistoryTable) lines.push("-- strata_migrations would be created.")
  for (const migration of result.unfinished) {
    lines.push(...plannedLines(migration, ", applied; an earlier run left this unfinished, done first"))
  }
  if (result.pending.length === 0) {
    if (result.unfinished.length === 0) lines.push("-- Nothing to apply.")
    else lines.push("", "-- No migration to apply; migrate would finish the work above.")
    return lines
  }
  for (const migration of result.pending) lines.push(...plannedLines(migration, ""))
  lines.push("", `-- ${result.pending.length} migration${result.pending.length === 1 ? "" : "s"} would be applied.`)
  return lines
}

const plannedJson = (migration: Migrator.PlannedMigration) => ({
  id: migration.id,
  name: migration.name,
  checksum: migration.checksum,
  statements: migration.statements.map((s) => ({
    sql: s.sql,
    willRun: s.willRun,
    phase: s.phase,
    ...(s.afterJob !== undefined ? { afterJob: s.afterJob } : {})
  }))
})

const dryRunJson = (result: Migrator.DryRunResult, database: string) => ({
  database,
  plan: result.plan,
  dialect: result.dialect,
  dryRun: true,
  createsHistoryTable: result.createsHistoryTable,
  alreadyApplied: result.alreadyApplied,
  unfinished: result.unfinished.map(plannedJson),
  pending: result.pending.map(plannedJson)
})

const runJson = (result: Migrator.RunResult, database: string) => ({
  database,
  plan: result.plan,
  applied: result.applied.map((m) => ({
    id: m.id,
    name: m.name,
    checksum: m.checksum,
    appliedAtMs: m.appliedAtMs,
    durationMs: m.durationMs,
    attempts: m.attempts,
    statements: m.statements.filter((s) => !s.skipped).length
  })),
  lockTimeoutMs: result.lockTimeoutMs ?? null,
  alreadyApplied: result.alreadyApplied,
  appliedConcurrently: result.appliedConcurrently,
  indexes: result.indexes,
  deferredIndexes: result.deferredIndexes,
  constraints: result.constraints
})

/**
 * The `migrate` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make(
  "migrate",
  {
    ...SharedOptions.shared,
    to: Options.integer("to").pipe(
      Options.withDescription("Apply migrations up to and including this id (default: all)."),
      Options.optional
    ),
    dryRun: Options.boolean("dry-run").pipe(
      Options.withDescription("Print the SQL that would run, change nothing.")
    ),
    baseline: Options.integer("baseline").pipe(
      Options.withDescription(
        "Record the plan's migrations up to this id as applied without running them (the database already has them)."
      ),
      Options.optional
    ),
    backup: backupOption
  },
  (options) =>
    Session.run(
      options,
      Effect.gen(function*() {
        if (Option.isSome(options.baseline) && (options.dryRun || Option.isSome(options.to))) {
          return yield* new Outcome.BadArgument({ message: "--baseline cannot be combined with --to or --dry-run" })
        }
        if (options.dryRun && Option.isSome(options.backup)) {
          return yield* new Outcome.BadArgument({ message: "--backup has no effect with --dry-run (nothing is changed)" })
        }
        const to = Option.getOrUndefined(options.to)
        // A dry run changes nothing, not even by creating the SQLite file: a missing file is planned as an empty database.
        const shared = options.dryRun ? { ...options, db: yield* dryRunDatabase(options.db) } : options
        const before = yield* Target.resolve(shared.db, { mustExist: false })
        yield* Session.withDatabase(shared, { mustExist: false }, ({ plan, target }) =>
          Effect.gen(function*() {
            const database = options.dryRun && target.url !== options.db ? `${options.db} (does not exist yet)` : target.display
            if (options.dryRun) {
              const result = yield* Migrator.dryRun({ to })
              return yield* Output.either(options.json, "migrate", () => dryRunJson(result, database), () => dryRunLines(result, database))
            }
            yield* backupFirst(target, options.backup)
            if (Option.isSome(options.baseline)) {
              const result = yield* Migrator.baseline(options.baseline.value)
              return yield* Output.either(options.json, "migrate", () => ({ database, baseline: true, ...result }), () => [
                  `Plan ${result.plan} on ${database}`,
                  result.baselined.length === 0
                    ? "Nothing to baseline; those migrations are already recorded."
                    : `Recorded as applied without running: ${result.baselined.join(", ")}.`,
                  ...(result.alreadyApplied.length > 0 ? [`Already applied: ${result.alreadyApplied.join(", ")}.`] : [])
                ])
            }
            const result = yield* Migrator.run({ to })
            return yield* Output.either(options.json, "migrate", () => runJson(result, database), () => migrationLines(result, database))
          }).pipe(Effect.provide(Migrator.layer(plan)))).pipe(
            // A failed first migrate leaves no empty database file behind (it is closed by now).
            Effect.tapErrorCause(() => (before.exists ? Effect.void : removeNewSqliteFile(before)))
          )
      })
    )
).pipe(Command.withDescription("Apply the plan's pending migrations, each in its own transaction."))

/** Removes a SQLite file this command created (and its WAL side files). */
const removeNewSqliteFile = (target: Target.Target) =>
  Effect.sync(() => {
    if (target.sqliteFile === undefined || target.sqliteFile === ":memory:") return
    for (const file of [target.sqliteFile, `${target.sqliteFile}-wal`, `${target.sqliteFile}-shm`, `${target.sqliteFile}-journal`]) {
      Fs.rmSync(file, { force: true })
    }
  })

const dryRunDatabase = (db: string) =>
  Effect.map(Target.resolve(db, { mustExist: false }), (target) => (target.exists ? db : ":memory:"))
