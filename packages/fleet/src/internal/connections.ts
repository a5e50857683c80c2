/**
 * How a fleet opens its targets: a SQLite target is its own file and connection, opened for the
 * target and closed after it; PostgreSQL targets of one server share one bounded pool, opened
 * when the server's first target starts and closed with the fleet run.
 *
 * A PostgreSQL target holds one connection of its server's pool for its whole turn, so a pool of
 * N connections runs at most N of that server's targets at once (the others wait for a
 * connection). For a `#schema` target that connection's `search_path` is set to the schema alone
 * and reset before it goes back to the pool, and `Database.StrataSchema` names the schema for
 * strata's own tables.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { Identifier } from "@strata/core"
import { Database } from "@strata/sql"
import { Context, Effect, Layer, RcMap, Scope } from "effect"
import type { Target } from "../Targets.js"

/** The services a target's work runs with. */
export type TargetServices = SqlClient.SqlClient

/** Opens targets; lives as long as the fleet run (its pools close with it). */
export interface Connections {
  readonly open: (target: Target) => Effect.Effect<Context.Context<TargetServices>, Database.DatabaseError, Scope.Scope>
}

const unprepared = (connection: Connection, statement: string) => connection.executeUnprepared(statement, [], undefined)

/**
 * A SqlClient whose every statement and transaction runs on `connection`. The PostgreSQL driver is
 * an optional peer, imported here rather than at module load; a pool is open, so it is installed.
 */
const onConnection = (connection: Connection): Effect.Effect<SqlClient.SqlClient> =>
  Effect.flatMap(Effect.promise(() => import("@effect/sql-pg/PgClient")), (PgClient) =>
    SqlClient.make({
      acquirer: Effect.succeed(connection),
      transactionAcquirer: Effect.succeed(connection),
      compiler: PgClient.makeCompiler(),
      spanAttributes: [[("db.system"), "postgresql"]]
    })).pipe(Effect.provide(Reactivity.layer))

/**
 * Connections for one fleet run. `pgPoolSize` bounds each PostgreSQL server's pool.
 */
export const make = (options: { readonly pgPoolSize: number }): Effect.Effect<Connections, never, Scope.Scope> =>
  Effect.gen(function*() {
    const pools = yield* RcMap.make({
      lookup: (url: string) =>
        Layer.build(Database.layer({ url, maxConnections: options.pgPoolSize, applicationName: "strata fleet" })).pipe(
          Effect.map(Context.get(SqlClient.SqlClient))
        )
    })
    const open = (target: Target): Effect.Effect<Context.Context<TargetServices>, Database.DatabaseError, Scope.Scope> => {
      if (target._tag === "Sqlite") {
        return Layer.build(Database.layer({ url: target.file }))
      }
      return Effect.gen(function*() {
        const pool = yield* RcMap.get(pools, target.url)
        const connection = yield* pool.reserve.pipe(
          Effect.mapError((cause) => new Database.DatabaseUnavailable({ url: target.display, reason: cause.message, cause }))
        )
        const schema = target.schema
        if (schema === undefined) {
          return Context.make(SqlClient.SqlClient, yield* onConnection(connection))
        }
        yield* Effect.acquireRelease(
          unprepared(connection, `SET search_path TO ${Identifier.quote(schema)}`),
          () => Effect.ignore(unprepared(connection, "RESET search_path"))
        ).pipe(Effect.mapError((cause) => new Database.DatabaseUnavailable({ url: target.display, reason: cause.message, cause })))
        return Context.make(SqlClient.SqlClient, yield* onConnection(connection)).pipe(
          Context.add(Database.StrataSchema, schema)
        )
      })
    }
    return { open }
  })
