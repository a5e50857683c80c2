/**
 * A verifier that may only read (a read-only SQLite file here; a monitoring role or a replica
 * elsewhere) still gets its report: recording the verification for the contract gate is best
 * effort, with a warning, never a reason to fail the verification itself.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Effect, Layer, Logger } from "effect"
import { tempSqliteFile } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator, Verifier } from "../src/index.js"

const plan = Plan.make("events", [
  Plan.migration(1, "events", [
    Plan.createTable("events", [{ name: "event_id", type: "integer", primaryKey: true }, { name: "created_at", type: "timestamp_text" }])
  ]),
  Plan.migration(2, "epoch ms", [Plan.epochShadow("events", "created_at")])
])

it.scoped("verify on a read-only database reports, and warns that nothing was recorded", () =>
  Effect.gen(function*() {
    const file = yield* tempSqliteFile()
    yield* Effect.gen(function*() {
      yield* Migrator.run()
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO events (event_id, created_at) VALUES (1, '2024-01-15 12:00:00'), (2, '2024-01-15T12:00:00.5Z')`
      yield* BackfillRunner.run()
    }).pipe(Effect.provide(Layer.mergeAll(Migrator.layer(plan), BackfillRunner.layer(plan).pipe(Layer.orDie)).pipe(
      Layer.provideMerge(Database.layer({ url: file }))
    )))

    const warnings: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      if (logLevel._tag === "Warning") warnings.push(String(Array.isArray(message) ? message.join(" ") : message))
    })
    const report = yield* Verifier.report().pipe(
      Effect.provide(Verifier.layer(plan).pipe(Layer.provide(SqliteClient.layer({ filename: file, readonly: true })))),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    expect(report.passed).toBe(true)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^verification not recorded \(a contract migration's gate will not see it\): .*readonly/)
  }))
