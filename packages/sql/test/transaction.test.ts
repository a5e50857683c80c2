/**
 * strata's transactions fail with the database's own error, never a defect: a COMMIT the database
 * refuses is a typed `SqlError` naming the cause (data unchanged), and a ROLLBACK that fails after
 * the connection died keeps the statement's error (e.g. a terminated PostgreSQL backend) instead of
 * replacing it with "Failed to execute statement", and logs nothing above debug. Both for the client
 * `Database.layer` opens and for `Database.strataClient` over an app's own client.
 */
import { describe, expect, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Effect, Exit, Logger, LogLevel } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { Database, SqlErrors } from "../src/index.js"

// A child row whose parent is missing passes every statement and fails only at COMMIT (the check is deferred).
const deferredTables = [
  "CREATE TABLE tx_parent (id INTEGER PRIMARY KEY)",
  "CREATE TABLE tx_child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES tx_parent (id) DEFERRABLE INITIALLY DEFERRED)"
]

/** Runs `effect` collecting the level and message of every log line at warning or above. */
const warnings = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) lines.push(`${logLevel.label} ${String(message)}`)
    })
    const exit = yield* Effect.exit(effect).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return { exit, lines }
  })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  expect(Cause.isDie(exit.cause), Cause.pretty(exit.cause)).toBe(false)
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a typed failure: ${Cause.pretty(exit.cause)}`)
  return failure.value
}

const clients = (engine: Parameters<Parameters<typeof describeEachEngine>[1]>[0]) => [
  { name: "Database.layer's client", layer: engine.layer(), client: SqlClient.SqlClient },
  { name: "Database.strataClient over the app's client", layer: engine.appLayer(), client: Database.strataClient }
] as const

describeEachEngine("strata's transactions", (engine) => {
  for (const { client, layer: clientLayer, name } of clients(engine)) {
    describe(name, () => {
      layer(clientLayer)((it) => {
        it.effect("a COMMIT the database refuses is a typed SqlError naming the cause, and nothing is stored", () =>
          Effect.gen(function*() {
            const sql = yield* client
            if (engine.name === "sqlite") yield* sql.unsafe("PRAGMA foreign_keys = ON")
            for (const statement of deferredTables) yield* sql.unsafe(statement)
            const { exit, lines } = yield* warnings(sql.withTransaction(sql.unsafe("INSERT INTO tx_child VALUES (1, 99)")))
            const error = failureOf(exit)
            expect(error).toBeInstanceOf(SqlError)
            expect(SqlErrors.failureText(error)).toMatch(
              engine.name === "sqlite" ? /^FOREIGN KEY constraint failed \(SQLITE_CONSTRAINT_FOREIGNKEY\)$/ : /violates foreign key constraint .*\(23503\)$/
            )
            expect(lines).toEqual([])
            expect(yield* sql.unsafe("SELECT id FROM tx_child")).toEqual([])
            // The connection is usable afterwards, in and out of transactions; a savepoint's failure stays inside it.
            yield* sql.unsafe("INSERT INTO tx_parent VALUES (1)")
            const nested = yield* sql.withTransaction(
              Effect.gen(function*() {
                yield* sql.unsafe("INSERT INTO tx_child VALUES (2, 1)")
                yield* sql.withTransaction(Effect.zipRight(sql.unsafe("INSERT INTO tx_child VALUES (3, 1)"), Effect.fail("undo 3"))).pipe(
                  Effect.flip
                )
                return yield* sql.unsafe<{ id: number }>("SELECT id FROM tx_child ORDER BY id")
              })
            )
            expect(nested.map((r) => Number(r.id))).toEqual([2])
            expect((yield* sql.unsafe<{ id: number }>("SELECT id FROM tx_child ORDER BY id")).map((r) => Number(r.id))).toEqual([2])
          }))

        if (engine.name === "pg") {
          it.effect("a backend terminated inside a transaction fails with PostgreSQL's reason, though the ROLLBACK fails too", () =>
            Effect.gen(function*() {
              const sql = yield* client
              const { exit, lines } = yield* warnings(
                sql.withTransaction(
                  Effect.zipRight(sql.unsafe("SELECT 1"), sql.unsafe("SELECT pg_terminate_backend(pg_backend_pid())"))
                )
              )
              const error = failureOf(exit)
              expect(error).toBeInstanceOf(SqlError)
              expect(SqlErrors.failureText(error)).toBe("terminating connection due to administrator command (57P01)")
              expect(lines).toEqual([])
              // The pool replaces the dead connection.
              expect(yield* sql.unsafe<{ n: number }>("SELECT 1 AS n")).toEqual([{ n: 1 }])
            }))
        }
      })
    })
  }
})
