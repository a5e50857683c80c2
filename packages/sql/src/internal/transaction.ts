/**
 * `withTransaction` that keeps the reason a transaction failed. @effect/sql's own ends a
 * transaction with `Effect.orDie(ROLLBACK)` / `Effect.orDie(COMMIT)`: when the connection is what
 * failed (a terminated backend, a server restart), the ROLLBACK fails too and its defect replaces
 * the statement's error ("Failed to execute statement", the cause lost); a COMMIT refused for a
 * full disk becomes a defect. Here a failed ROLLBACK is logged at debug level and the original
 * failure is kept, and a failed COMMIT is a typed `SqlError` (after a quiet ROLLBACK, which SQLite
 * needs when COMMIT leaves the transaction open). Same statements, nesting (savepoints) and
 * connection handling as @effect/sql's, sharing its `TransactionConnection`, so transactions opened
 * by the app's client and by strata's nest in each other.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Exit, Option, Scope } from "effect"
import { failureText } from "../SqlErrors.js"

const run = (conn: Connection, statement: string) => conn.executeUnprepared(statement, [], undefined)

// The transaction (or savepoint) is gone either way: the connection failed, or the server already rolled back.
const rollbackQuietly = (conn: Connection, depth: number): Effect.Effect<void> =>
  run(conn, depth === 0 ? "ROLLBACK" : `ROLLBACK TO SAVEPOINT effect_sql_${depth}`).pipe(
    Effect.asVoid,
    Effect.catchAll((error) => Effect.logDebug("rollback failed; the transaction's own failure is reported").pipe(
      Effect.annotateLogs({ reason: failureText(error) })
    ))
  )

/**
 * Runs `effect` in a transaction on `sql` (a savepoint inside an open one).
 */
export const withTransaction = (sql: SqlClient.SqlClient) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> => transaction(sql, undefined, () => effect)

/**
 * A transaction whose BEGIN carries `opening`, statements sent with it in one message (PostgreSQL's
 * simple protocol: values inline, no parameters), so they cost no round trip of their own; the body
 * gets their rows, a list per statement (`undefined` from a driver that does not return them all).
 * Inside an open transaction (a savepoint) nothing is sent with the SAVEPOINT: the body gets
 * `undefined` and runs what it needs itself.
 */
export const withTransactionOpening = (sql: SqlClient.SqlClient, opening: string) =>
<A, E, R>(
  body: (opened: ReadonlyArray<ReadonlyArray<any>> | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> => transaction(sql, opening, body)

const transaction = <A, E, R>(
  sql: SqlClient.SqlClient,
  opening: string | undefined,
  body: (opened: ReadonlyArray<ReadonlyArray<any>> | undefined) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (outer) => {
      const depth = Option.isSome(outer) ? outer.value[1] + 1 : 0
      const acquire: Effect.Effect<readonly [Scope.CloseableScope | undefined, Connection], SqlError> = Option.isSome(outer)
        ? Effect.succeed([undefined, outer.value[0]] as const)
        : Effect.flatMap(Scope.make(), (scope) => Effect.map(Scope.extend(sql.reserve, scope), (conn) => [scope, conn] as const))
      const begin = (conn: Connection): Effect.Effect<ReadonlyArray<ReadonlyArray<any>> | undefined, SqlError> =>
        depth > 0
          ? Effect.as(run(conn, `SAVEPOINT effect_sql_${depth}`), undefined)
          : opening === undefined
          ? Effect.as(run(conn, "BEGIN"), undefined)
          // Several statements: the driver returns a list of rows per statement, BEGIN's first. A
          // driver that returns only the last statement's rows gives the body `undefined`: it then
          // runs the statements again itself, in the same transaction.
          : Effect.map(run(conn, `BEGIN; ${opening}`), (results) =>
            results.length > 1 && results.every(Array.isArray) ? (results as ReadonlyArray<ReadonlyArray<any>>).slice(1) : undefined)
      return Effect.flatMap(acquire, ([scope, conn]) =>
        begin(conn).pipe(
          Effect.flatMap((opened) => restore(body(opened)).pipe(Effect.provideService(SqlClient.TransactionConnection, [conn, depth] as const))),
          Effect.exit,
          Effect.flatMap((exit): Effect.Effect<Exit.Exit<A, E | SqlError>> => {
            if (Exit.isFailure(exit)) return Effect.as(rollbackQuietly(conn, depth), exit)
            if (depth > 0) return Effect.succeed(exit)
            return Effect.flatMap(Effect.exit(run(conn, "COMMIT")), (committed) =>
              Exit.isSuccess(committed)
                ? Effect.succeed<Exit.Exit<A, E | SqlError>>(exit)
                : Effect.as(rollbackQuietly(conn, 0), Exit.failCause(committed.cause)))
          }),
          Effect.flatMap((exit) =>
            scope === undefined ? exit : Effect.zipRight(Scope.close(scope, exit), exit)
          )
        ))
    })
  )

const safe = Symbol.for("@strata/sql/internal/transaction/safe")

/**
 * `sql` with `withTransaction` replaced by this module's; everything else (statements, transforms,
 * the engine's own extras such as SQLite's `backup`) is the client's own.
 */
export const withSafeTransactions = (sql: SqlClient.SqlClient): SqlClient.SqlClient => {
  if (safe in sql) return sql
  // The client is a tagged-template function with properties: copy both onto a new function.
  const call = (...args: Array<any>) => (sql as unknown as (...args: Array<any>) => unknown)(...args)
  const client = Object.assign(call, sql) as unknown as SqlClient.SqlClient
  const withoutTransforms = sql.withoutTransforms
  Object.assign(client, {
    [safe]: true,
    withTransaction: withTransaction(sql),
    safe: client,
    withoutTransforms: () => {
      const bare = withoutTransforms.call(sql)
      return bare === sql ? client : withSafeTransactions(bare)
    }
  })
  return client
}
