/**
 * The Migrator in a real app's setting: the app's own client with name transforms, tables in a
 * PostgreSQL schema that is not on the `search_path`, strata's own table in a schema of the app's
 * choosing, and SQLite tables in an attached database.
 */
import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan, Plans } from "@strata/core"
import { Effect, Layer } from "effect"
import * as Path from "node:path"
import { describeEachEngine, pgForeignSchema, tempDirectory } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator } from "../src/index.js"

const legacySetup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const statement of Plans.agentosLegacyStatements(dialect)) yield* sql.unsafe(statement)
})

describeEachEngine("Migrator on the app's camelCase client", (engine) => {
  it.effect("applies, reports and re-runs exactly as on a plain client", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* legacySetup
      const result = yield* Migrator.run().pipe(Effect.provide(Migrator.layer(Plans.agentos)))
      expect(result.applied.map((m) => [m.id, m.checksum])).toEqual(
        Plans.agentos.migrations.map((m) => [m.id, Compile.checksum(m)])
      )
      // The app's client renames result columns; strata's own rows were written under their real names.
      const rows = yield* sql.withoutTransforms()<{ plan: string; id: number; applied_at_ms: number }>`
        SELECT plan, id, applied_at_ms FROM strata_migrations ORDER BY id`
      expect(rows.map((r) => [r.plan, Number(r.id), typeof r.applied_at_ms])).toEqual([
        ["agentos", 21, engine.name === "pg" ? "string" : "number"],
        ["agentos", 44, engine.name === "pg" ? "string" : "number"]
      ])
      const status = yield* Migrator.status().pipe(Effect.provide(Migrator.layer(Plans.agentos)))
      expect(status.migrations.map((m) => [m.id, m.state])).toEqual([[21, "applied"], [44, "applied"]])
      const again = yield* Migrator.run().pipe(Effect.provide(Migrator.layer(Plans.agentos)))
      expect(again).toMatchObject({ plan: "agentos", applied: [], alreadyApplied: [21, 44], appliedConcurrently: [], indexes: [] })
      expect(again.deferredIndexes.length).toBe(11)
      const dry = yield* Migrator.dryRun().pipe(Effect.provide(Migrator.layer(Plans.agentos)))
      expect(dry.pending).toEqual([])
    }).pipe(Effect.provide(engine.appLayer({ camelCase: true }))))
})

/** A plan whose every step names `schema.messages`. */
const qualifiedPlan = (schema: string) =>
  Plan.make("qualified", [
    Plan.migration(1, "messages", [
      Plan.createTable(`${schema}.messages`, [
        { name: "message_id", type: "integer", primaryKey: true },
        { name: "sent_at", type: "timestamp_text" }
      ])
    ]),
    Plan.migration(2, "epoch ms and a body", [
      Plan.epochShadow(`${schema}.messages`, "sent_at", { index: true }),
      Plan.addColumn(`${schema}.messages`, "body", "text"),
      Plan.createIndex("idx_messages_body", `${schema}.messages`, ["body"])
    ])
  ])

describe("Migrator with schema-qualified tables", () => {
  it.scoped("PostgreSQL: app.messages outside the search_path; strata_migrations where the app says", () =>
    Effect.gen(function*() {
      const { home, schema, url } = yield* pgForeignSchema()
      const client = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const plan = qualifiedPlan(schema)
      const inSchema = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, client)

      const columns = (nspname: string, table: string) =>
        inSchema(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ name: string; type: string }>`
            SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ${nspname} AND c.relname = ${table} AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`))
      const indexes = (nspname: string) =>
        inSchema(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ indexname: string }>`SELECT indexname FROM pg_indexes WHERE schemaname = ${nspname} ORDER BY indexname`))

      const first = yield* inSchema(Migrator.run().pipe(Effect.provide(Migrator.layer(plan))))
      expect(first.applied.map((m) => m.id)).toEqual([1, 2])
      // The index on the existing table was built concurrently after migration 2 committed; the shadow's waits for its backfill.
      expect(first.indexes.map((i) => [i.migrationId, i.table, i.name])).toEqual([[2, `${schema}.messages`, "idx_messages_body"]])
      expect(first.deferredIndexes.map((i) => [i.name, i.afterJob])).toEqual([["idx_messages_sent_at_ms", `${schema}.messages.sent_at_ms`]])
      expect((yield* columns(schema, "messages")).map((c) => [c.name, c.type])).toEqual([
        ["message_id", "integer"],
        ["sent_at", "text"],
        ["sent_at_ms", "bigint"],
        ["body", "text"]
      ])
      expect((yield* indexes(schema)).map((i) => i.indexname)).toEqual(["idx_messages_body", "messages_pkey"])
      yield* inSchema(BackfillRunner.run().pipe(Effect.provide(BackfillRunner.layer(plan))))
      expect((yield* indexes(schema)).map((i) => i.indexname)).toEqual([
        "idx_messages_body",
        "idx_messages_sent_at_ms",
        "messages_pkey"
      ])
      // Nothing landed in the search_path schema but strata's own table.
      expect((yield* columns(home, "messages")).length).toBe(0)
      expect((yield* columns(home, "strata_migrations")).map((c) => c.name)).toEqual([
        "plan",
        "id",
        "name",
        "checksum",
        "applied_at_ms",
        "duration_ms"
      ])
      const again = yield* inSchema(Migrator.run().pipe(Effect.provide(Migrator.layer(plan))))
      expect(again.applied).toEqual([])
      expect(again.alreadyApplied).toEqual([1, 2])

      // strata's own table in the app's schema: a separate history, so the plan is pending there.
      const elsewhere = Migrator.layer(plan).pipe(Layer.provide(Database.layerStrataSchema(schema).pipe(Layer.orDie)))
      const status = yield* inSchema(Migrator.status().pipe(Effect.provide(elsewhere)))
      expect(status.migrations.map((m) => m.state)).toEqual(["pending", "pending"])
      const rerun = yield* inSchema(Migrator.run().pipe(Effect.provide(elsewhere)))
      // Every statement is re-runnable: the second history records both without changing the table.
      expect(rerun.applied.map((m) => m.id)).toEqual([1, 2])
      expect((yield* columns(schema, "strata_migrations")).length).toBe(6)
      expect((yield* columns(schema, "messages")).length).toBe(4)
    }))

  it.scoped("SQLite: app.messages in an attached database; the ADD COLUMN guard reads that table, not main's", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      const client = yield* Layer.build(
        Database.layer({ url: Path.join(directory, "main.db") }).pipe(Layer.orDie)
      )
      const inDb = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, client)
      const columns = (schema: string, table: string) =>
        inDb(Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql.unsafe<{ name: string }>(`SELECT name FROM pragma_table_info(?, ?) ORDER BY cid`, [table, schema])
        )).pipe(Effect.map((rows) => rows.map((r) => r.name)))

      yield* inDb(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all([
          sql.unsafe(`ATTACH DATABASE '${Path.join(directory, "app.db")}' AS app`),
          // A table of the same name in main already has both added columns: the guard must not look there.
          sql.unsafe(`CREATE TABLE messages (message_id INTEGER PRIMARY KEY, sent_at TIMESTAMP, sent_at_ms INTEGER, body TEXT)`),
          // app.messages already has `body` (a partial earlier run): that ADD COLUMN is skipped.
          sql.unsafe(`CREATE TABLE app.messages (message_id INTEGER PRIMARY KEY, sent_at TIMESTAMP, body TEXT)`)
        ])))
      const plan = Plan.make("qualified", [(qualifiedPlan("app").migrations[1])!])

      const dry = yield* inDb(Migrator.dryRun().pipe(Effect.provide(Migrator.layer(plan))))
      expect(dry.pending.flatMap((m) => m.statements.map((s) => [s.sql, s.willRun, s.phase]))).toEqual([
        [`ALTER TABLE "app"."messages" ADD COLUMN "sent_at_ms" INTEGER`, true, "transaction"],
        [`ALTER TABLE "app"."messages" ADD COLUMN "body" TEXT`, false, "transaction"],
        [`CREATE INDEX IF NOT EXISTS "app"."idx_messages_body" ON "messages" ("body")`, true, "transaction"],
        [`CREATE INDEX IF NOT EXISTS "app"."idx_messages_sent_at_ms" ON "messages" ("sent_at_ms" DESC)`, true, "afterJob"]
      ])
      const result = yield* inDb(Migrator.run().pipe(Effect.provide(Migrator.layer(plan))))
      expect(result.applied.flatMap((m) => m.statements.map((s) => s.skipped))).toEqual([false, true, false])
      yield* inDb(BackfillRunner.run().pipe(Effect.provide(BackfillRunner.layer(plan))))
      expect(yield* columns("app", "messages")).toEqual(["message_id", "sent_at", "body", "sent_at_ms"])
      expect(yield* columns("main", "messages")).toEqual(["message_id", "sent_at", "sent_at_ms", "body"])
      const indexes = yield* inDb(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe<{ name: string }>(`SELECT name FROM app.sqlite_master WHERE type = 'index' ORDER BY name`)))
      expect(indexes.map((i) => i.name)).toEqual(["idx_messages_body", "idx_messages_sent_at_ms"])
    }))
})
