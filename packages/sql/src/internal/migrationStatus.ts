/**
 * What `status` (and `validate`, which extends it) reports about the plan's migrations, read from
 * the rows of `strata_migrations`: each plan migration applied, pending or drifted, and the rows
 * the plan does not have. A pure reading of rows already fetched, apart from the Migrator's
 * operations so both share it and it can be read without the I/O around it.
 */
import type { Plan } from "@strata/core"
// Types only (erased): the public shapes are defined once, in the service's module.
import type { MigrationStatus, StatusReport } from "../Migrator.js"
import type { ConstraintStatus } from "./constraintValidations.js"
import type { IndexStatus } from "./indexBuilds.js"
import type { HistoryRow } from "./migrationHistory.js"

/** The facts about the plan the reading needs (the Migrator computes them once). */
export interface PlanFacts {
  readonly plan: Plan.Plan
  readonly planIds: ReadonlySet<number>
  readonly checksumOf: (migration: Plan.Migration) => string
}

export const statusOf = (
  { checksumOf, plan, planIds }: PlanFacts,
  rows: ReadonlyArray<HistoryRow>,
  indexes: ReadonlyArray<IndexStatus>,
  constraints: ReadonlyArray<ConstraintStatus>
): StatusReport => {
  const recorded = new Map(rows.map((row) => [row.id, row]))
  const migrations = plan.migrations.map((migration): MigrationStatus => {
    const checksum = checksumOf(migration)
    const row = recorded.get(migration.id)
    if (row === undefined) return { state: "pending", id: migration.id, name: migration.name, checksum }
    return row.checksum === checksum
      ? {
        state: "applied",
        id: migration.id,
        name: migration.name,
        checksum,
        appliedAtMs: row.appliedAtMs,
        durationMs: row.durationMs
      }
      : {
        state: "drifted",
        id: migration.id,
        name: migration.name,
        stored: row.checksum,
        expected: checksum,
        appliedAtMs: row.appliedAtMs,
        durationMs: row.durationMs
      }
  })
  const unknown = rows.filter((row) => !planIds.has(row.id)).map((row) => ({ ...row }))
  return { plan: plan.name, migrations, unknown, indexes, constraints }
}
