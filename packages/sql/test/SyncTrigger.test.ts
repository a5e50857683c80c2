/**
 * `sync: "trigger"`: while an old app version still writes rows without the step's targets, the
 * trigger the migration installs computes them with the step's SQL fast path. A writer that sets a
 * target wins; a shape the fast path does not convert stays NULL for the backfill and the lazy path.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Compile, Plan, Timestamp } from "@strata/core"
import { Effect, Either, Layer } from "effect"
import * as Path from "node:path"
import { describeEachEngine, pgForeignSchema, tempDirectory } from "../../../test/support/databases.js"
import { BackfillRunner, Database, LazyMigration, Migrator, Verifier } from "../src/index.js"

const ms = (text: string): number => Either.getOrThrow(Timestamp.parse(text))

const eventsPlan = (table: string, sync: boolean) =>
  Plan.make("events", [
    Plan.migration(1, "events", [
      Plan.createTable(table, [
        { name: "event_id", type: "integer", primaryKey: true },
        { name: "created_at", type: "timestamp_text" },
        { name: "email", type: "text" }
      ])
    ]),
    Plan.migration(2, "epoch ms and lower-case email", [
      Plan.epochShadow(table, "created_at", sync ? { sync: "trigger" } : {}),
      Plan.derive(table, {
        reads: ["email"],
        targets: [{ column: "email_lower", type: "text", from: "email", apply: ["lower"] }],
        sql: { sqlite: { email_lower: "lower(email)" }, postgresql: { email_lower: "lower(email)" } },
        ...(sync ? { sync: "trigger" as const } : {})
      })
    ])
  ])

/** What an old app version does: writes only the columns it knows, on the app's own client. */
const oldAppWrites = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = sql.unsafe.bind(sql)
    yield* t(`INSERT INTO ${table} (event_id, created_at, email) VALUES (1, '2024-01-15 12:00:00', 'Ada@Example.COM')`)
    yield* t(`INSERT INTO ${table} (event_id, created_at, email) VALUES (2, '2024-01-15T12:00:00Z', 'x@Y.z')`)
    yield* t(`INSERT INTO ${table} (event_id, created_at, email) VALUES (3, 'not a time', NULL)`)
    // A new app version sets the targets itself (here of a shape the fast path leaves NULL): its values win.
    yield* t(`INSERT INTO ${table} (event_id, created_at, created_at_ms, email, email_lower) VALUES (4, '2024-01-15T12:00:00+02:00', ${
      ms("2024-01-15T12:00:00+02:00")
    }, 'B@b', 'b@b')`)
    yield* t(`INSERT INTO ${table} (event_id, created_at, email) VALUES (5, '2023-06-01 08:30:00', 'Old@Row')`)
    yield* t(`INSERT INTO ${table} (event_id, created_at, email) VALUES (6, '2023-06-01 08:30:00', 'Keep@Me')`)
    // Old app updates a source: the target follows; to a shape the fast path leaves, it goes NULL (not stale).
    yield* t(`UPDATE ${table} SET created_at = '2025-03-04 05:06:07', email = 'New@Row' WHERE event_id = 5`)
    yield* t(`UPDATE ${table} SET created_at = '2025-03-04T05:06:07+01:00' WHERE event_id = 1`)
    // An update that sets the target as well as the source: the writer wins; one that leaves the sources alone changes nothing.
    yield* t(`UPDATE ${table} SET created_at = '2025-01-01T00:00:00Z', created_at_ms = ${ms("2025-01-01T00:00:00Z")} WHERE event_id = 6`)
    yield* t(`UPDATE ${table} SET email = email WHERE event_id = 6`)
  })

const readEvents = (table: string) =>
  Effect.gen(function*() {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const rows = yield* sql.unsafe<{ event_id: number; created_at_ms: number | string | null; email_lower: string | null }>(
      `SELECT event_id, created_at_ms, email_lower FROM ${table} ORDER BY event_id`
    )
    return rows.map((r) => [Number(r.event_id), r.created_at_ms === null ? null : Number(r.created_at_ms), r.email_lower])
  })

const afterOldApp = [
  [1, null, "ada@example.com"],
  [2, null, "x@y.z"],
  [3, null, null],
  [4, ms("2024-01-15T12:00:00+02:00"), "b@b"],
  [5, ms("2025-03-04 05:06:07"), "new@row"],
  [6, ms("2025-01-01T00:00:00Z"), "keep@me"]
]

/** The whole transition on one client: migrate (installing the triggers), old app writes, backfill, verify. */
const transition = (table: string) =>
  Effect.gen(function*() {
    const plan = eventsPlan(table, true)
    yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
    yield* oldAppWrites(table)
    expect(yield* readEvents(table)).toEqual(afterOldApp)

    // A read on the lazy path gets the value the trigger left NULL at once, and writes it back.
    const [read] = yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql.unsafe<Record<string, unknown>>(`SELECT * FROM ${table} WHERE event_id = 2`).pipe(LazyMigration.withFixUp(table))
      yield* LazyMigration.flush
      return rows
    }).pipe(Effect.provide(LazyMigration.layer(plan, { flushInterval: "10 millis" }).pipe(Layer.orDie)))
    expect(Number(Object.entries(read!).find(([column]) => /^created_?at_?ms$/i.test(column))?.[1])).toBe(ms("2024-01-15T12:00:00Z"))
    expect((yield* readEvents(table))[1]).toEqual([2, ms("2024-01-15T12:00:00Z"), "x@y.z"])

    // What the trigger left NULL, the backfill converts in JavaScript (row 3 has no instant to give).
    const summaries = yield* BackfillRunner.run().pipe(Effect.provide(BackfillRunner.layer(plan).pipe(Layer.orDie)))
    expect(summaries.map((s) => [s.job, s.outcome])).toEqual([
      [`${table}.created_at_ms`, "completed"],
      [`${table}.email_lower`, "completed"]
    ])
    expect(yield* readEvents(table)).toEqual([
      [1, ms("2025-03-04T05:06:07+01:00"), "ada@example.com"],
      [2, ms("2024-01-15T12:00:00Z"), "x@y.z"],
      ...afterOldApp.slice(2)
    ])
    const report = yield* Verifier.report().pipe(Effect.provide(Verifier.layer(plan)))
    expect(report.checks.filter((c) => c.status === "fail").map((c) => [c.name, c.count])).toEqual([])
    expect(report.passed).toBe(true)
  })

describeEachEngine("sync triggers", (engine) => {
  it.effect("old app writes get exact targets, a writer's own target wins, the rest is left to the backfill (app's camelCase client)", () =>
    transition("events").pipe(Effect.provide(engine.appLayer({ camelCase: true }))))

  it.effect("the migration re-applies cleanly (triggers are re-runnable) and a writer setting NULL explicitly still gets the value", () =>
    Effect.gen(function*() {
      const plan = eventsPlan("events", true)
      const dialect = yield* Database.dialect
      yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
      const sql = yield* SqlClient.SqlClient
      for (const statement of Compile.statements(plan.migrations[1]!, dialect)) {
        if (/TRIGGER|FUNCTION/.test(statement.sql)) yield* sql.unsafe(statement.sql)
      }
      yield* sql`INSERT INTO events (event_id, created_at, created_at_ms, email) VALUES (1, '2024-01-15 12:00:00', NULL, 'A')`
      expect(yield* readEvents("events")).toEqual([[1, ms("2024-01-15 12:00:00"), "a"]])
    }).pipe(Effect.provide(engine.layer())))

  it.effect("without the option no trigger is installed and the checksum is as before", () =>
    Effect.gen(function*() {
      const plan = eventsPlan("events", false)
      expect(Compile.checksum(plan.migrations[1]!)).not.toEqual(Compile.checksum(eventsPlan("events", true).migrations[1]!))
      yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO events (event_id, created_at, email) VALUES (1, '2024-01-15 12:00:00', 'A')`
      expect(yield* readEvents("events")).toEqual([[1, null, null]])
    }).pipe(Effect.provide(engine.layer())))
})

it.scoped("sync triggers [pg]: a table in a schema off the search_path", () =>
  Effect.gen(function*() {
    const { schema, url } = yield* pgForeignSchema()
    const client = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
    yield* transition(`${schema}.events`).pipe(Effect.provide(client))
    const sql = yield* SqlClient.SqlClient.pipe(Effect.provide(client))
    const functions = yield* sql<{ proname: string }>`
      SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ${schema} ORDER BY p.proname`
    expect(functions.map((f) => f.proname)).toEqual(["strata_sync_events_created_at_ms", "strata_sync_events_email_lower"])
  }))

it.scoped("sync triggers [sqlite]: a table in an attached database", () =>
  Effect.gen(function*() {
    const directory = yield* tempDirectory
    const client = yield* Layer.build(Database.layer({ url: Path.join(directory, "main.db") }).pipe(Layer.orDie))
    const sql = yield* SqlClient.SqlClient.pipe(Effect.provide(client))
    yield* sql.unsafe(`ATTACH DATABASE '${Path.join(directory, "app.db")}' AS app`)
    // A table of the same name in main: the triggers must be app's, on app.events.
    yield* sql.unsafe(`CREATE TABLE events (event_id INTEGER PRIMARY KEY, created_at TEXT, email TEXT)`)
    yield* transition("app.events").pipe(Effect.provide(client))
    const triggers = yield* sql<{ name: string }>`SELECT name FROM app.sqlite_master WHERE type = 'trigger' ORDER BY name`
    expect(triggers.map((t) => t.name)).toEqual([
      "strata_sync_events_created_at_ms_insert",
      "strata_sync_events_created_at_ms_update",
      "strata_sync_events_email_lower_insert",
      "strata_sync_events_email_lower_update"
    ])
    expect(yield* sql`SELECT name FROM main.sqlite_master WHERE type = 'trigger'`).toEqual([])
  }))
