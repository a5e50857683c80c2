/**
 * `strata status`: the plan's migrations (applied, pending, drifted) and, per backfilled column,
 * rows migrated, pending, rejected and without a source value, and its state (Complete, "done, N
 * rejected, M without a source value", Almost done, In progress, Just started): `Progress.report`'s numbers. Reads only; exit 0 whatever it finds (`migrate` and
 * `verify` are the gates).
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { type Plan, Progress as CoreProgress, Timestamp } from "@strata/core"
import { Migrator, Progress } from "@strata/sql"
import { Effect } from "effect"
import type { SqlClient } from "@effect/sql/SqlClient"
import * as Output from "../Output.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import * as Table from "../Table.js"

const jobStateWords: Record<Progress.ColumnProgress["jobState"], string> = {
  notStarted: "not run",
  running: "running",
  paused: "paused",
  done: "done"
}

const indexStateWords = (index: Migrator.IndexStatus): string => {
  switch (index.state) {
    case "deferred":
      return `after backfill ${index.afterJob ?? ""}`
    case "invalid":
      return "INVALID (rebuilt by migrate)"
    default:
      return index.state
  }
}

const when = (ms: number): string => Timestamp.format(ms as Timestamp.EpochMillis, { pattern: "YYYY-MM-DD HH:mm:ss" })

const duration = (ms: number | null): string => (ms === null ? "baselined" : `${Table.count(ms)} ms`)

/**
 * The report for people: the migrations table, then the columns table with an overall line.
 *
 * @since 0.1.0
 */
export const statusLines = (
  migrations: Migrator.StatusReport,
  progress: Progress.ProgressReport,
  database: string
): ReadonlyArray<string> => {
  const migrationTable = Table.render<Migrator.MigrationStatus>([
    { header: "MIGRATION", align: "right", cell: (m) => String(m.id) },
    { header: "NAME", cell: (m) => m.name },
    { header: "STATE", cell: (m) => (m.state === "drifted" ? "DRIFTED" : m.state) },
    { header: "APPLIED AT (UTC)", cell: (m) => (m.state === "pending" ? "" : when(m.appliedAtMs)) },
    { header: "DURATION", align: "right", cell: (m) => (m.state === "pending" ? "" : duration(m.durationMs)) }
  ], migrations.migrations)
  const drifted = migrations.migrations.flatMap((m) =>
    m.state === "drifted"
      ? [`DRIFTED: migration ${m.id} "${m.name}" was changed after it was applied (stored checksum ${m.stored}, plan checksum ${m.expected}); 'strata migrate' refuses until the plan matches again.`]
      : []
  )
  const unknown = migrations.unknown.map((m) =>
    `Recorded but not in the plan: migration ${m.id} "${m.name}", applied ${when(m.appliedAtMs)} UTC (a newer plan?).`
  )
  const columnTable = Table.render<Progress.ColumnProgress>([
    { header: "COLUMN", cell: (c) => `${c.table}.${c.column}` },
    { header: "FROM", cell: (c) => c.source },
    { header: "BACKFILL", cell: (c) => (c.applied ? jobStateWords[c.jobState] : "column missing") },
    { header: "MIGRATED", align: "right", cell: (c) => Table.count(c.migrated) },
    { header: "PENDING", align: "right", cell: (c) => Table.count(c.pending) },
    { header: "REJECTED", align: "right", cell: (c) => Table.count(c.rejected) },
    { header: "NO VALUE", align: "right", cell: (c) => Table.count(c.withoutValue) },
    { header: "DONE", align: "right", cell: (c) => CoreProgress.formatPercent(c.percent) },
    { header: "STATUS", cell: (c) => c.summary }
  ], progress.columns)
  const indexTable = Table.render<Migrator.IndexStatus>([
    { header: "INDEX", cell: (i) => i.name },
    { header: "TABLE", cell: (i) => i.table },
    { header: "MIGRATION", align: "right", cell: (i) => String(i.migrationId) },
    { header: "STATE", cell: (i) => indexStateWords(i) },
    { header: "DURATION", align: "right", cell: (i) => (i.durationMs === null ? "" : `${Table.count(i.durationMs)} ms`) }
  ], migrations.indexes)
  const unbuilt = migrations.indexes.filter((i) => i.state === "pending" || i.state === "building" || i.state === "invalid")
  const unvalidated = migrations.constraints.filter((c) => c.state === "notValid" || c.state === "validated")
  const pendingMigrations = migrations.migrations.filter((m) => m.state === "pending").length
  return [
    `Plan ${migrations.plan} on ${database}`,
    "",
    ...migrationTable,
    ...(drifted.length + unknown.length > 0 ? ["", ...drifted, ...unknown] : []),
    ...(migrations.indexes.length > 0 ? ["", ...indexTable] : []),
    ...(unbuilt.length > 0
      ? [`Indexes not built yet: ${unbuilt.map((i) => i.name).join(", ")}; 'strata migrate' builds them (an INVALID one, left by an interrupted build, is dropped and built again).`]
      : []),
    ...(unvalidated.length > 0
      ? [`Constraints not validated yet: ${
        unvalidated.map((c) => `${c.name} on ${c.table}.${c.column} (${c.state === "notValid" ? "NOT VALID" : "validated, NOT NULL not set yet"})`).join(", ")
      }; new rows are checked already, 'strata migrate' validates the existing ones.`]
      : []),
    "",
    ...(progress.columns.length === 0 ? ["The plan has no backfilled columns."] : columnTable),
    "",
    `Migrations: ${migrations.migrations.length - pendingMigrations} applied, ${pendingMigrations} pending` +
    `${drifted.length > 0 ? `, ${drifted.length} drifted` : ""}.` +
    (progress.columns.length === 0
      ? ""
      : ` Columns: ${Table.count(progress.migrated)} rows migrated, ${Table.count(progress.pending)} pending, ` +
        `${Table.count(progress.rejected)} rejected, ${Table.count(progress.withoutValue)} without a source value ` +
        `(${CoreProgress.formatPercent(progress.percent)}, ${progress.label}).`),
    ...(progress.rejected > 0
      ? ["Rejected rows could not be converted; they stay NULL until their source is fixed ('strata rejects' lists them)."]
      : []),
    ...(progress.withoutValue > 0
      ? ["Rows without a source value (or whose row function gives NULL) keep the column NULL: nothing is left to do for them."]
      : [])
  ]
}

/**
 * The report for machines: `migrations`, `unknown` (recorded, not in the plan) and `columns`, plus
 * totals; the field names are `Migrator.StatusReport`'s and `Progress.ProgressReport`'s.
 *
 * @since 0.1.0
 */
export const statusJson = (migrations: Migrator.StatusReport, progress: Progress.ProgressReport, database: string) => ({
  database,
  plan: migrations.plan,
  migrations: migrations.migrations,
  unknown: migrations.unknown,
  indexes: migrations.indexes,
  constraints: migrations.constraints,
  columns: progress.columns,
  migrated: progress.migrated,
  pending: progress.pending,
  rejected: progress.rejected,
  withoutValue: progress.withoutValue,
  percent: progress.percent,
  label: progress.label
})

/**
 * Reads both reports.
 *
 * @since 0.1.0
 */
export const readStatus = (
  plan: Plan.Plan
): Effect.Effect<
  readonly [Migrator.StatusReport, Progress.ProgressReport],
  Migrator.StatusError | Migrator.InvalidMigratorOptions | Progress.ProgressError,
  SqlClient
> =>
  Effect.all([Migrator.status().pipe(Effect.provide(Migrator.layer(plan))), Progress.report().pipe(Effect.provide(Progress.layer(plan)))])

/**
 * The `status` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make("status", SharedOptions.shared, (args) =>
  Session.run(
    args,
    Session.withDatabase(args, { mustExist: true }, ({ plan, target }) =>
      Effect.gen(function*() {
        const [migrations, progress] = yield* readStatus(plan)
        yield* Output.either(
          args.json,
          "status",
          () => statusJson(migrations, progress, target.display),
          () => statusLines(migrations, progress, target.display)
        )
      }))
  )).pipe(Command.withDescription("Show migrations applied/pending/drifted and each backfilled column's progress."))
