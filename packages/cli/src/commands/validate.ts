/**
 * `strata validate`: a CI gate. Exit 0 when every migration of the plan is applied with its
 * checksum and finished; exit 1, saying what is wrong, on drift, pending migrations, pending steps
 * that would not apply to the live schema (the Migrator's preflight), or an applied migration's
 * index build or constraint validation still to do (an INVALID index an interrupted build left, a
 * constraint still NOT VALID, a constraint gone from the catalogue). Changes nothing.
 *
 * @since 0.2.0
 */
import { Command } from "@effect/cli"
import { Migrator } from "@strata/sql"
import { Effect } from "effect"
import * as Output from "../Output.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"

const migrationLine = (migration: Migrator.MigrationStatus): ReadonlyArray<string> => {
  switch (migration.state) {
    case "applied":
      return []
    case "pending":
      return [`  pending  migration ${migration.id} "${migration.name}"`]
    case "drifted":
      return [
        `  DRIFTED  migration ${migration.id} "${migration.name}" (stored checksum ${migration.stored}, plan checksum ${migration.expected})`
      ]
  }
}

/**
 * The report for people: what is wrong, one line each, then the verdict.
 *
 * @since 0.2.0
 */
export const validationLines = (report: Migrator.ValidationReport, database: string): ReadonlyArray<string> => {
  // A drift is already listed with its migration; other refusals (unknown or out-of-order history) are not.
  const refusal = report.refusal === undefined || report.refusal._tag === "MigrationDrifted" ? [] : [`  refused  ${report.refusal.message}`]
  const unfinished = report.unfinished.flatMap((migration) =>
    migration.statements.map((statement) =>
      `  unfinished  migration ${migration.id} "${migration.name}": ${statement.sql}${
        statement.phase === "afterJob" ? ` (its backfill ${statement.afterJob ?? ""} is done)` : ""
      }`
    )
  )
  const missing = report.constraints.filter((c) => c.state === "missing").map((c) =>
    `  MISSING  constraint ${c.name} on ${c.table}.${c.column} (migration ${c.migrationId}): not in the catalogue`
  )
  const wrong = [
    ...report.migrations.flatMap(migrationLine),
    ...refusal,
    ...report.problems.map((problem) => `  cannot apply  ${problem.message}`),
    ...unfinished,
    ...missing
  ]
  const pending = report.migrations.filter((m) => m.state === "pending").length
  const left = report.unfinished.length
  return [
    `Plan ${report.plan} on ${database}`,
    ...wrong,
    report.ok
      ? `Valid: all ${report.migrations.length} migration${report.migrations.length === 1 ? "" : "s"} applied as the plan has them.`
      : report.problems.length > 0
      ? `Not valid: ${report.problems.length} problem${report.problems.length === 1 ? "" : "s"} would stop 'strata migrate'.`
      : pending > 0 && report.refusal === undefined
      ? `Not valid: ${pending} migration${pending === 1 ? "" : "s"} pending; 'strata migrate' applies ${pending === 1 ? "it" : "them"}.`
      : left > 0 && missing.length === 0 && report.refusal === undefined
      ? `Not valid: ${left} applied migration${left === 1 ? " has" : "s have"} work left; 'strata migrate' finishes it.`
      : "Not valid: the database and the plan disagree."
  ]
}

/** A typed error as JSON: its tag, its fields, its message. */
const errorJson = (error: { readonly _tag: string; readonly message: string }): Readonly<Record<string, unknown>> => ({
  ...error,
  _tag: error._tag,
  message: error.message
})

/**
 * The report for machines (`--json`): the Migrator's report, errors as their fields plus `message`.
 *
 * @since 0.2.0
 */
export const validationJson = (report: Migrator.ValidationReport, database: string) => ({
  database,
  plan: report.plan,
  ok: report.ok,
  migrations: report.migrations,
  unknown: report.unknown,
  refusal: report.refusal === undefined ? null : errorJson(report.refusal),
  problems: report.problems.map(errorJson),
  unfinished: report.unfinished.map((migration) => ({
    id: migration.id,
    name: migration.name,
    statements: migration.statements.map((s) => ({ sql: s.sql, phase: s.phase as string, ...(s.afterJob !== undefined ? { afterJob: s.afterJob } : {}) }))
  })),
  indexes: report.indexes,
  constraints: report.constraints.map((c) => ({
    migrationId: c.migrationId,
    kind: c.kind as string,
    table: c.table,
    column: c.column,
    name: c.name,
    state: c.state
  }))
})

/**
 * The `validate` subcommand.
 *
 * @since 0.2.0
 */
export const command = Command.make("validate", SharedOptions.shared, (args) =>
  Session.run(
    args,
    Session.withDatabase(args, { mustExist: true }, ({ plan, target }) =>
      Effect.gen(function*() {
        const report = yield* Migrator.validate().pipe(Effect.provide(Migrator.layer(plan)))
        yield* Output.either(
          args.json,
          "validate",
          () => validationJson(report, target.display),
          () => validationLines(report, target.display)
        )
        if (!report.ok) return yield* Migrator.ValidationFailed.fromReport(report)
      }))
  )).pipe(
    Command.withDescription(
      "Exit 1 when the database is not exactly at the plan: drift, pending migrations, steps that cannot apply, or an applied migration's index build or constraint validation left to do."
    )
  )
