/**
 * Three PostgreSQL sessions on one fresh schema holding an `orders` table of 1,000 rows: `holder`
 * (the app's long transaction), `app` (the app's steady statements) and `migrator` (strata). The
 * Migrator's lock and index-phase tests watch how one session's locks reach the others.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { pgTestUrlWithSchema } from "../../../test/support/databases.js"
import { Database } from "../src/index.js"

export const ordersSessions = Effect.gen(function*() {
  const { url } = yield* pgTestUrlWithSchema()
  const open = () => Layer.build(Database.layer({ url }).pipe(Layer.orDie))
  const holder = yield* open()
  const app = yield* open()
  const migrator = yield* open()
  yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql`CREATE TABLE orders (order_id BIGINT PRIMARY KEY, amount BIGINT NOT NULL)`,
      sql`INSERT INTO orders SELECT n, n * 10 FROM generate_series(1, 1000) AS n`
    ])).pipe(Effect.provide(holder))
  return { holder, app, migrator }
})
