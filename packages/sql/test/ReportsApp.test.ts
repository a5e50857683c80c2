/**
 * The Verifier and the progress report in a real user's app: on the app's own client (with and
 * without the camelCase name transforms) they report exactly the same, and on PostgreSQL a plan
 * whose table lives in a schema off the search_path is verified and counted like any other.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Plans } from "@strata/core"
import { Effect, Layer, TestClock } from "effect"
import { createLegacyTables, insertFixture, presetTargets } from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine, describePg, pgForeignSchema } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator, Progress, Verifier } from "../src/index.js"

/** 2026-01-01T00:00:00Z. */
const NOW = 1767225600000

const applyPlan = (plan: Plan.Plan) => Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())

const reportsOf = (plan: Plan.Plan) => Layer.mergeAll(Verifier.layer(plan), Progress.layer(plan))

/** The backfill is set-up here, not under test: it runs on strata's client, whatever the app's does. */
const runnerOnStrataClient = BackfillRunner.layer(Plans.agentos).pipe(
  Layer.provide(Layer.effect(SqlClient.SqlClient, Database.strataClient))
)

describeEachEngine("Verifier and Progress on the app's own client", (engine) => {
  /** The agentos fixture, backfilled; then both reports, through the services built on `client`. */
  const reportsOn = (client: Layer.Layer<SqlClient.SqlClient>) =>
    Effect.gen(function*() {
      yield* TestClock.setTime(NOW)
      yield* Database.withStrataClient(Effect.gen(function*() {
        yield* createLegacyTables
        yield* insertFixture
        yield* applyPlan(Plans.agentos)
        yield* presetTargets
        yield* (yield* BackfillRunner.BackfillRunner).run()
      }))
      return { verification: yield* Verifier.report(), progress: yield* Progress.report() }
    }).pipe(
      Effect.provide(Layer.mergeAll(reportsOf(Plans.agentos), runnerOnStrataClient).pipe(Layer.provideMerge(client)))
    )

  it.effect("with camelCase name transforms both report exactly what a plain client gets", () =>
    Effect.gen(function*() {
      const plain = yield* reportsOn(engine.appLayer())
      const camel = yield* reportsOn(engine.appLayer({ camelCase: true }))
      expect(camel).toEqual(plain)
      // And what they report is the data, not a transform's NULLs: the fixture's exact counts.
      const coverage = camel.verification.checks.find((c) => c.name === "chat_messages.created_at_ms coverage")
      expect(coverage).toMatchObject({ count: 16, total: 16 })
      expect(camel.verification.rowsScanned["chat_messages.created_at_ms"]).toBe(25)
      const column = camel.progress.columns.find((c) => c.job === "chat_messages.created_at_ms")
      expect(column).toMatchObject({ jobState: "done", total: 25, migrated: 17, rejected: 7 })
      // Field names are strata's own, whatever the client does to row keys.
      expect(Object.keys(column!)).toContain("jobState")
    }))
})

describePg("Verifier and Progress on a PostgreSQL schema off the search_path", () => {
  for (const strataTables of ["home", "app"] as const) {
    it.scoped(`verify and count app.events, with strata's tables in the ${strataTables === "home" ? "connection's own schema" : "app's schema (StrataSchema)"}`, () =>
      Effect.gen(function*() {
        const { home, schema, url } = yield* pgForeignSchema()
        const table = `${schema}.events`
        const plan = Plan.make("events", [Plan.migration(1, "shadow", [Plan.epochShadow(table, "happened_at")])])
        yield* Effect.gen(function*() {
          yield* TestClock.setTime(NOW)
          const sql = yield* SqlClient.SqlClient
          yield* sql.unsafe(`CREATE TABLE "${schema}".events (id INTEGER PRIMARY KEY, happened_at TEXT)`)
          yield* sql.unsafe(`INSERT INTO "${schema}".events (id, happened_at) VALUES
            (1, '2024-01-15 12:00:00'), (2, '2024-01-15T12:00:00Z'), (3, 'garbage'), (4, NULL)`)
          yield* applyPlan(plan)
          yield* (yield* BackfillRunner.BackfillRunner).run()
          // An unqualified table of that name must not be what they read.
          yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT, happened_at_ms BIGINT)`)
          const verification = yield* Verifier.run()
          expect(verification.checks.map((c) => [c.name, c.status, c.count, c.total])).toEqual([
            [`${table}.happened_at_ms range`, "pass", 0, 2],
            [`${table}.happened_at_ms mismatch`, "pass", 0, 2],
            [`${table}.happened_at_ms missing`, "pass", 0, 2],
            [`${table}.happened_at_ms orphan`, "pass", 0, 2],
            [`${table}.happened_at_ms coverage`, "info", 2, 2],
            [`${table}.happened_at unconvertible`, "info", 1, 4],
            [`${table}.happened_at rejects`, "info", 1, 1]
          ])
          const progress = yield* Progress.report()
          expect(progress.columns.map((c) => [c.table, c.column, c.applied, c.jobState, c.total, c.migrated, c.pending, c.rejected, c.withoutValue])).toEqual([
            [table, "happened_at_ms", true, "done", 4, 2, 0, 1, 1]
          ])
          expect(verification.columns.map((c) => [c.rows, c.migrated, c.missing, c.unconvertible, c.withoutValue])).toEqual([[4, 2, 0, 1, 1]])
          // strata's tables are where the app put them, and nowhere else.
          const where = yield* sql.unsafe<{ schema: string }>(
            `SELECT table_schema AS schema FROM information_schema.tables WHERE table_name = 'strata_rejects' AND table_schema IN ($1, $2)`,
            [home, schema]
          )
          expect(where.map((r) => r.schema)).toEqual([strataTables === "home" ? home : schema])
        }).pipe(
          Effect.provide(
            Layer.mergeAll(reportsOf(plan), BackfillRunner.layer(plan)).pipe(
              Layer.provideMerge(Database.layer({ url })),
              Layer.provide(strataTables === "home" ? Layer.empty : Database.layerStrataSchema(schema))
            )
          )
        )
      }))
  }
})
