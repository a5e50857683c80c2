/**
 * The @effect/cluster tables of a cluster database (its message and runner storage). Workers starting
 * together on a new cluster database race to create them (PostgreSQL's `CREATE TABLE IF NOT EXISTS`
 * is not safe against a concurrent one: a duplicate key on `pg_type_typname_nsp_index`), so each
 * worker creates them once, under an advisory lock, before its runner starts.
 * @internal
 */
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"

/** Creates the tables under the advisory lock; holds one connection of the client while they are created on others. */
export const createClusterTables = (config: Partial<ShardingConfig.ShardingConfig["Type"]>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* connection.executeRaw("SELECT pg_advisory_lock(7316001)", [])
      yield* Effect.addFinalizer(() => Effect.ignore(connection.executeRaw("SELECT pg_advisory_unlock(7316001)", [])))
      yield* Effect.scoped(Layer.build(Layer.mergeAll(SqlMessageStorage.layer, SqlRunnerStorage.layer).pipe(
        Layer.provide(ShardingConfig.layer(config))
      )))
    }))
  })
