/**
 * Unprepared statements with their failures typed. Two traps of @effect/sql-sqlite-node make this
 * necessary: `executeUnprepared` calls better-sqlite3's `prepare` eagerly, when the effect is built
 * (and SQLite applies some PRAGMAs, such as `busy_timeout`, at prepare time), and an error thrown by
 * `prepare` (syntax error, missing table, several statements in one string) escapes as a defect
 * rather than a `SqlError`.
 */
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import { Effect } from "effect"

const asSqlError = <A>(effect: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
  Effect.catchAllDefect(effect, (defect) =>
    defect instanceof Error
      ? Effect.fail(new SqlError({ cause: defect, message: "Failed to prepare statement" }))
      : Effect.die(defect))

/** Runs a statement unprepared (no prepare cache), a driver's prepare error as a `SqlError`. */
export const unprepared = <A extends object>(statement: Statement.Statement<A>): Effect.Effect<ReadonlyArray<A>, SqlError> =>
  asSqlError(Effect.suspend(() => statement.unprepared))

/** Runs SQL text on a reserved connection, prepared only when the effect runs. */
export const executeOn = (
  connection: Connection,
  sql: string,
  params: ReadonlyArray<unknown> = []
): Effect.Effect<ReadonlyArray<any>, SqlError> =>
  asSqlError(Effect.suspend(() => connection.executeUnprepared(sql, params, undefined)))
