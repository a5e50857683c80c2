/**
 * The Migrator's preflight: pending steps checked against the live schema before anything is
 * applied. Each refusal names the migration and `table.column`, and the schema (strata_migrations
 * included) is exactly as before.
 */
import { expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan } from "@strata/core"
import { Effect } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { Database, Migrator } from "../src/index.js"

/** Every table, column (with type) and index of the schema. */
const schemaSnapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* Database.dialect) === "sqlite") {
    return yield* sql`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`
  }
  const columns = yield* sql`
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
  const indexes = yield* sql`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`
  return [...columns, ...indexes]
})

const exec = (...statements: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.forEach(statements, (s) => sql.unsafe(s), { discard: true }))

/** `run` and `dryRun` both refuse with the same problems, and nothing changes. */
const refused = (plan: Plan.Plan) =>
  Effect.gen(function*() {
    const before = yield* schemaSnapshot
    const migrator = yield* Migrator.make(plan)
    const error = yield* Effect.flip(migrator.run())
    expect(error._tag).toBe("PreflightFailed")
    const dry = yield* Effect.flip(migrator.dryRun())
    expect(dry).toEqual(error)
    expect(yield* schemaSnapshot).toEqual(before)
    const validation = yield* migrator.validate()
    expect(validation.ok).toBe(false)
    const failed = error as Migrator.PreflightFailed
    expect(validation.problems).toEqual(failed.problems)
    return failed
  })

const at = { plan: "app", migrationId: 2, migrationName: "times" }

describeEachEngine("Migrator preflight", (engine) => {
  const pg = engine.name === "pg"
  const bigint = pg ? "BIGINT" : "INTEGER"
  const withMessages = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.gen(function*() {
      yield* exec(`CREATE TABLE messages (message_id ${bigint} PRIMARY KEY, sent_at TEXT, count_sent INTEGER, payload TEXT)`)
      return yield* effect
    }).pipe(Effect.provide(engine.layer()))

  it.effect("a typo in a shadow's source column is refused before its ADD COLUMN runs", () =>
    withMessages(Effect.gen(function*() {
      const plan = Plan.make("app", [
        Plan.migration(1, "fine", [Plan.addColumn("messages", "body", "text")]),
        Plan.migration(2, "times", [Plan.epochShadow("messages", "sentat")])
      ])
      const error = yield* refused(plan)
      expect(error.problems).toEqual([
        new Migrator.SourceColumnMissing({ ...at, table: "messages", column: "sentat", role: "timestamp source" })
      ])
      expect(error.message).toBe(
        `Plan app cannot apply to this database, nothing was changed: migration 2 "times": messages.sentat does not exist (the timestamp source column)`
      )
      // Migration 1 is fine, and `to` stops before the bad one: that applies.
      const result = yield* Effect.flatMap(Migrator.make(plan), (m) => m.run({ to: 1 }))
      expect(result.applied.map((m) => m.id)).toEqual([1])
    })))

  it.effect("a table that does not exist, unless an earlier migration (or raw SQL) creates it", () =>
    withMessages(Effect.gen(function*() {
      const missing = Plan.make("app", [
        Plan.migration(2, "times", [Plan.addColumn("nope", "x", "text"), Plan.createIndex("idx_gone", "gone", ["a"])])
      ])
      const error = yield* refused(missing)
      expect(error.problems).toEqual([
        new Migrator.TableMissing({ ...at, table: "nope", column: "x", needs: "ADD COLUMN" }),
        new Migrator.TableMissing({ ...at, table: "gone", column: "a", needs: "an index on" })
      ])
      expect(error.problems[0]!.message).toBe(
        `migration 2 "times": table nope does not exist (ADD COLUMN nope.x) and no earlier migration creates it`
      )

      const created = Plan.make("app", [
        Plan.migration(1, "tables", [
          Plan.createTable("events", [{ name: "event_id", type: "integer", primaryKey: true }, { name: "at", type: "timestamp_text" }]),
          Plan.sql({ sqlite: "CREATE TABLE raw_table (id INTEGER PRIMARY KEY)", pg: "CREATE TABLE raw_table (id BIGINT PRIMARY KEY)" })
        ]),
        Plan.migration(2, "times", [
          Plan.epochShadow("events", "at", { index: true }),
          Plan.addColumn("raw_table", "note", "text")
        ])
      ])
      const result = yield* Effect.flatMap(Migrator.make(created), (m) => m.run())
      expect(result.applied.map((m) => m.id)).toEqual([1, 2])
    })))

  it.effect("a source of a type the step cannot read", () =>
    withMessages(Effect.gen(function*() {
      if (pg) yield* exec(`ALTER TABLE messages ADD COLUMN seen_at timestamptz`)
      const plan = Plan.make("app", [
        Plan.migration(2, "times", [
          Plan.epochShadow("messages", "count_sent"),
          ...(pg ? [Plan.epochShadow("messages", "seen_at")] : [])
        ])
      ])
      const error = yield* refused(plan)
      const expected = pg ? "text, varchar or char" : "a column without INTEGER or REAL affinity, e.g. TEXT or TIMESTAMP"
      expect(error.problems).toEqual([
        new Migrator.SourceColumnUnreadable({
          ...at,
          table: "messages",
          column: "count_sent",
          role: "timestamp source",
          type: pg ? "integer" : "INTEGER",
          expected
        }),
        ...(pg
          ? [
            new Migrator.SourceColumnUnreadable({
              ...at,
              table: "messages",
              column: "seen_at",
              role: "timestamp source",
              type: "timestamp with time zone",
              expected
            })
          ]
          : [])
      ])
      expect(error.problems[0]!.message).toBe(
        `migration 2 "times": messages.count_sent has type ${pg ? "integer" : "INTEGER"}, which the step cannot read as its timestamp source (expected ${expected})`
      )
    })))

  it.effect("a target present with another type is refused; with the same type it is a re-run", () =>
    withMessages(Effect.gen(function*() {
      yield* exec(`ALTER TABLE messages ADD COLUMN sent_at_ms TEXT`)
      const plan = Plan.make("app", [Plan.migration(2, "times", [Plan.epochShadow("messages", "sent_at", { index: true })])])
      const error = yield* refused(plan)
      expect(error.problems).toEqual([
        new Migrator.TargetColumnConflict({
          ...at,
          table: "messages",
          column: "sent_at_ms",
          found: pg ? "text" : "TEXT",
          expected: bigint
        })
      ])
      expect(error.problems[0]!.message).toBe(
        `migration 2 "times": messages.sent_at_ms exists with type ${pg ? "text" : "TEXT"}, not ${bigint}; strata never changes a column's type`
      )
      yield* exec(`ALTER TABLE messages DROP COLUMN sent_at_ms`, `ALTER TABLE messages ADD COLUMN sent_at_ms ${bigint}`)
      const result = yield* Effect.flatMap(Migrator.make(plan), (m) => m.run())
      expect(result.applied.map((m) => m.id)).toEqual([2])
    })))

  it.effect("a table the plan creates that exists without one of its columns", () =>
    withMessages(Effect.gen(function*() {
      const plan = Plan.make("app", [
        Plan.migration(2, "times", [
          Plan.createTable("messages", [{ name: "message_id", type: "integer", primaryKey: true }, { name: "author", type: "text" }])
        ])
      ])
      const error = yield* refused(plan)
      expect(error.problems).toEqual([
        new Migrator.TargetColumnConflict({ ...at, table: "messages", column: "author", found: null, expected: "TEXT" })
      ])
    })))

  it.effect("a job without a batch key, and the JSON extraction's payload, fallback and filter columns", () =>
    withMessages(Effect.gen(function*() {
      yield* exec(
        pg
          ? `CREATE TABLE audits (event_type TEXT, body TEXT, created_at TEXT)`
          : `CREATE TABLE audits (event_type TEXT, body TEXT, created_at TEXT, PRIMARY KEY (event_type, body)) WITHOUT ROWID`
      )
      const plan = Plan.make("app", [
        Plan.migration(2, "times", [
          Plan.extractJson("audits", "payload", {
            targets: [{ column: "source_ts", paths: ["ts"], fallbackColumn: "created", as: "timestamp" }],
            where: { column: "kind", op: "equals", value: "x" }
          }),
          Plan.extractJson("audits", "body", { targets: [{ column: "source", paths: ["source"], as: "text" }] })
        ])
      ])
      const error = yield* refused(plan)
      const noKey = pg ? "it has no primary key" : "its primary key (event_type, body) has 2 columns and it is a WITHOUT ROWID table"
      expect(error.problems).toEqual([
        new Migrator.SourceColumnMissing({ ...at, table: "audits", column: "payload", role: "JSON payload" }),
        new Migrator.SourceColumnMissing({ ...at, table: "audits", column: "created", role: "fallback" }),
        new Migrator.SourceColumnMissing({ ...at, table: "audits", column: "kind", role: "filter" }),
        new Migrator.BatchKeyMissing({ ...at, table: "audits", job: "audits.payload", reason: noKey }),
        new Migrator.BatchKeyMissing({ ...at, table: "audits", job: "audits.body", reason: noKey })
      ])
      expect(error.problems[3]!.message).toBe(
        `migration 2 "times": job audits.payload cannot walk audits in batches: ${noKey}; declare a unique, ordered key column in the plan step (key)`
      )
      expect(error.message.endsWith("(and 4 more)")).toBe(true)
    })))

  it.effect("a sync trigger without a declared key on a WITHOUT ROWID table (SQLite) is refused; with the key it applies and fills the app's rows", () =>
    withMessages(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* exec(
        pg
          ? `CREATE TABLE notes (note_id TEXT PRIMARY KEY, written_at TEXT)`
          : `CREATE TABLE notes (note_id TEXT PRIMARY KEY, written_at TEXT) WITHOUT ROWID`
      )
      const withKey = (key?: string) =>
        Plan.make("app", [Plan.migration(2, "times", [Plan.epochShadow("notes", "written_at", { sync: "trigger", ...(key === undefined ? {} : { key }) })])])
      if (!pg) {
        const error = yield* refused(withKey())
        expect(error.problems).toEqual([new Migrator.SyncTriggerKeyMissing({ ...at, table: "notes", job: "notes.written_at_ms" })])
        expect(error.problems[0]!.message).toBe(
          `migration 2 "times": the sync trigger of job notes.written_at_ms would find its rows by rowid, and notes is a WITHOUT ROWID table; declare the table's key column in the plan step (key)`
        )
      }
      // PostgreSQL's trigger sets NEW's columns and needs no key; on SQLite the declared key addresses the row.
      yield* Effect.flatMap(Migrator.make(withKey(pg ? undefined : "note_id")), (m) => m.run())
      yield* sql`INSERT INTO notes (note_id, written_at) VALUES ('n1', '2024-01-15 12:00:00')`
      const rows = yield* sql<{ ms: number | string }>`SELECT written_at_ms AS ms FROM notes`
      expect(rows.map((r) => Number(r.ms))).toEqual([Date.UTC(2024, 0, 15, 12)])
    })))

  it.effect("validate: ok only when every migration is applied with its checksum", () =>
    withMessages(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const m1 = Plan.migration(1, "fine", [Plan.addColumn("messages", "body", "text")])
      const m2 = Plan.migration(2, "times", [Plan.epochShadow("messages", "sent_at")])
      const migrator = yield* Migrator.make(Plan.make("app", [m1, m2]))

      const fresh = yield* migrator.validate()
      expect([fresh.ok, fresh.migrations.map((m) => m.state), fresh.refusal, fresh.problems]).toEqual([
        false,
        ["pending", "pending"],
        undefined,
        []
      ])
      // validate changes nothing: strata_migrations is not even created.
      expect((yield* schemaSnapshot).some((row) => JSON.stringify(row).includes("strata_migrations"))).toBe(false)

      yield* migrator.run()
      const done = yield* migrator.validate()
      expect([done.ok, done.migrations.map((m) => m.state), done.refusal, done.problems]).toEqual([
        true,
        ["applied", "applied"],
        undefined,
        []
      ])

      yield* sql`UPDATE strata_migrations SET checksum = 'bad' WHERE id = 2`
      const drifted = yield* migrator.validate()
      expect(drifted.ok).toBe(false)
      expect(drifted.migrations.map((m) => m.state)).toEqual(["applied", "drifted"])
      expect(drifted.refusal).toEqual(
        new Migrator.MigrationDrifted({ plan: "app", id: 2, name: "times", stored: "bad", expected: Compile.checksum(m2) })
      )
    })))
})
