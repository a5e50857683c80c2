/**
 * What a dry run reports for the pending migrations, in the order `run` would reach them: each
 * migration's transaction statements, a SQLite ADD COLUMN guard resolved against the live columns
 * and the columns earlier guarded statements of this run add (their later guards would skip), then
 * the constraints it validates once it has committed (PostgreSQL), then its index builds with their phase. Apart from the Migrator's `dryRun` so that it reads as its
 * refusals (the same as `run`'s) followed by this listing; the catalogue read is the caller's, so
 * its error is named there.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Compile } from "@strata/core"
import type { Identifier, Plan } from "@strata/core"
import { Effect } from "effect"
import * as Constraints from "./constraintValidations.js"
import * as IndexBuilds from "./indexBuilds.js"
// Types only (erased): the public shapes are defined once, in the service's module.
import type { PlannedMigration, PlannedStatement } from "../Migrator.js"

/** A statement of the constraint phase (each runs after the migration's transaction). */
const validateStatement = (sql: string): PlannedStatement => ({ sql, text: `${sql};`, guard: undefined, willRun: true, phase: "validate" })

/** An index build after the transaction, with its phase (and the job it waits for). */
const indexStatement = (build: Compile.IndexBuild): PlannedStatement => ({
  sql: build.create,
  text: `${build.create};`,
  guard: undefined,
  willRun: true,
  phase: build.timing,
  afterJob: build.index.afterJob
})

export const plannedMigrations = <E, R>(
  plan: Plan.Plan,
  dialect: "sqlite" | "pg",
  pendingMigrations: ReadonlyArray<Plan.Migration>,
  checksumOf: (migration: Plan.Migration) => string,
  columnExists: (table: Identifier.TableName, column: string) => Effect.Effect<boolean, E, R>
): Effect.Effect<Array<PlannedMigration>, E, R> =>
  Effect.gen(function*() {
    // Columns added by earlier guarded statements of this run: their later guards would skip.
    const added = new Set<string>()
    const pending: Array<PlannedMigration> = []
    for (const migration of pendingMigrations) {
      const statements: Array<PlannedStatement> = []
      for (const statement of Compile.transactionStatements(migration, dialect, plan)) {
        const guard = statement.unlessColumnExists
        if (guard === undefined) {
          statements.push({ sql: statement.sql, text: Compile.render(statement), guard: undefined, willRun: true, phase: "transaction" })
          continue
        }
        const key = `${guard.table.toLowerCase()}.${guard.column.toLowerCase()}`
        const columnExistsNow = added.has(key) || (yield* columnExists(guard.table, guard.column))
        if (!columnExistsNow) added.add(key)
        statements.push({
          sql: statement.sql,
          text: Compile.render(statement),
          guard: { table: guard.table, column: guard.column, columnExists: columnExistsNow },
          willRun: !columnExistsNow,
          phase: "transaction"
        })
      }
      for (const constraint of Compile.constraintValidations(migration, dialect, plan)) {
        statements.push(...[constraint.validate, ...constraint.finish].map(validateStatement))
      }
      statements.push(...Compile.indexBuilds(migration, dialect, plan).map(indexStatement))
      pending.push({ id: migration.id, name: migration.name, checksum: checksumOf(migration), statements })
    }
    return pending
  })

/**
 * What an earlier run left unfinished in `applied` migrations and `run` does before anything else,
 * in plan order: constraints to validate (from a NOT VALID CHECK: its VALIDATE and finish; from a
 * validated one: the finish) and index builds due now (pending, interrupted, or deferred until a
 * job that is done). Each migration once, with only those statements.
 */
export const unfinishedWork = (
  plan: Plan.Plan,
  dialect: "sqlite" | "pg",
  applied: ReadonlyArray<Plan.Migration>,
  checksumOf: (migration: Plan.Migration) => string
): Effect.Effect<Array<PlannedMigration>, SqlError, SqlClient> =>
  Effect.gen(function*() {
    const constraints = yield* Constraints.due(plan, dialect, applied)
    const indexes = yield* IndexBuilds.due(plan, dialect, applied)
    return applied.flatMap((migration): Array<PlannedMigration> => {
      const statements: Array<PlannedStatement> = [
        ...constraints.filter((c) => c.migration.id === migration.id).flatMap(({ constraint, state }) =>
          [...(state === "notValid" ? [constraint.validate] : []), ...constraint.finish].map(validateStatement)
        ),
        ...indexes.filter((i) => i.migration.id === migration.id).map(({ build }) => indexStatement(build))
      ]
      return statements.length === 0 ? [] : [{ id: migration.id, name: migration.name, checksum: checksumOf(migration), statements }]
    })
  })
