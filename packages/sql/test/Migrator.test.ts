import { describe, expect, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan, Plans } from "@strata/core"
import { Deferred, Effect, Either, Exit, Fiber, HashMap, Layer, Logger, Schedule, TestClock } from "effect"
import { describeEachEngine, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator } from "../src/index.js"
import { advisoryLockKey } from "../src/internal/lockedTransaction.js"

const T0 = 1_700_000_000_000

const [m21, m44] = Plans.agentos.migrations as readonly [Plan.Migration, Plan.Migration]

const legacySetup = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = yield* Database.dialect
  for (const statement of Plans.agentosLegacyStatements(dialect)) yield* sql.unsafe(statement)
})

type ColumnKind = "text" | "timestamp" | "key" | "epoch"

const declaredType: Record<"sqlite" | "pg", Record<ColumnKind, string>> = {
  sqlite: { text: "TEXT", timestamp: "TIMESTAMP", key: "INTEGER", epoch: "INTEGER" },
  pg: { text: "text", timestamp: "text", key: "bigint", epoch: "bigint" }
}

const t = "text" as const
const ts = "timestamp" as const
const key = "key" as const
const ms = "epoch" as const

/** The AgentOS tables after migrations 21 and 44: legacy columns, then the added ones in statement order. */
const agentosColumns: Record<string, ReadonlyArray<readonly [string, ColumnKind]>> = {
  chat_sessions: [["session_id", t], ["title", t], ["task_id", t], ["metadata", t], ["created_at", ts], ["updated_at", ts], ["created_at_ms", ms], ["updated_at_ms", ms]],
  chat_messages: [["message_id", t], ["session_id", t], ["role", t], ["content", t], ["metadata", t], ["created_at", ts], ["created_at_ms", ms]],
  tasks: [["task_id", t], ["title", t], ["status", t], ["created_at", ts], ["updated_at", ts], ["created_at_ms", ms], ["updated_at_ms", ms]],
  task_lineage: [["lineage_id", key], ["task_id", t], ["kind", t], ["ref_id", t], ["phase", t], ["created_at", ts], ["created_at_ms", ms]],
  task_agents: [["id", key], ["task_id", t], ["agent_name", t], ["status", t], ["started_at", ts], ["ended_at", ts], ["started_at_ms", ms], ["ended_at_ms", ms]],
  task_audits: [["audit_id", key], ["task_id", t], ["level", t], ["event_type", t], ["payload", t], ["created_at", ts], ["source_event_ts", ms], ["supervisor_processed_at", ms], ["created_at_ms", ms]],
  projects: [["project_id", t], ["name", t], ["path", t], ["added_at", ts], ["added_at_ms", ms]],
  runs: [["run_id", t], ["task_id", t], ["status", t], ["lease_holder", t], ["started_at", ts], ["completed_at", ts], ["lease_until", ts], ["started_at_ms", ms], ["completed_at_ms", ms], ["lease_until_ms", ms]],
  artifacts: [["artifact_id", t], ["task_id", t], ["kind", t], ["path", t], ["created_at", ts], ["created_at_ms", ms]],
  schema_version: [["version", t], ["applied_at", ts], ["applied_at_ms", ms]]
}

/** The 11 DESC indexes of migration 44 as `status` shows them after migrate: deferred until their backfill job is done. */
const deferredAgentosIndexes = [
  ["chat_messages", "created_at_ms"],
  ["chat_sessions", "created_at_ms"],
  ["chat_sessions", "updated_at_ms"],
  ["tasks", "created_at_ms"],
  ["tasks", "updated_at_ms"],
  ["task_lineage", "created_at_ms"],
  ["task_agents", "started_at_ms"],
  ["task_audits", "created_at_ms"],
  ["projects", "added_at_ms"],
  ["runs", "started_at_ms"],
  ["artifacts", "created_at_ms"]
].map(([table, column]) => ({
  migrationId: 44,
  name: `idx_${table}_${column}`,
  table,
  state: "deferred",
  afterJob: `${table}.${column}`,
  startedAtMs: null,
  finishedAtMs: null,
  durationMs: null,
  attempts: 0
})).sort((a, b) => (a.name < b.name ? -1 : 1))

/** The 11 DESC indexes of migration 44, by name. */
const agentosIndexes = [
  ["idx_artifacts_created_at_ms", "artifacts", "created_at_ms"],
  ["idx_chat_messages_created_at_ms", "chat_messages", "created_at_ms"],
  ["idx_chat_sessions_created_at_ms", "chat_sessions", "created_at_ms"],
  ["idx_chat_sessions_updated_at_ms", "chat_sessions", "updated_at_ms"],
  ["idx_projects_added_at_ms", "projects", "added_at_ms"],
  ["idx_runs_started_at_ms", "runs", "started_at_ms"],
  ["idx_task_agents_started_at_ms", "task_agents", "started_at_ms"],
  ["idx_task_audits_created_at_ms", "task_audits", "created_at_ms"],
  ["idx_task_lineage_created_at_ms", "task_lineage", "created_at_ms"],
  ["idx_tasks_created_at_ms", "tasks", "created_at_ms"],
  ["idx_tasks_updated_at_ms", "tasks", "updated_at_ms"]
].map(([name, table, column]) => ({ name, table, column, desc: true }))

const columnsOf = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = (yield* Database.dialect) === "sqlite"
      ? yield* sql<{ name: string; type: string }>`SELECT name, type FROM pragma_table_info(${table}) ORDER BY cid`
      : yield* sql<{ name: string; type: string }>`
          SELECT column_name AS name, data_type AS type FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = ${table} ORDER BY ordinal_position`
    return rows.map((row) => [row.name, row.type] as const)
  })

const expectedColumns = (table: string, dialect: "sqlite" | "pg", without: ReadonlyArray<string> = []) =>
  agentosColumns[table]!.filter(([name]) => !without.includes(name)).map(([name, kind]) => [name, declaredType[dialect][kind]] as const)

/** Every index that is not a primary key's, with its first column and direction. */
const secondaryIndexes = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = (yield* Database.dialect) === "sqlite"
    ? yield* sql<{ name: string; table: string; column: string; desc: number }>`
        SELECT m.name AS name, m.tbl_name AS "table", x.name AS "column", x."desc" AS "desc"
        FROM sqlite_master m, pragma_index_xinfo(m.name) x
        WHERE m.type = 'index' AND m.sql IS NOT NULL AND x.key = 1 AND x.seqno = 0 ORDER BY m.name`
    : yield* sql<{ name: string; table: string; column: string; desc: boolean }>`
        SELECT i.relname AS name, c.relname AS "table", a.attname AS "column", (ix.indoption[0] & 1) = 1 AS "desc"
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class c ON c.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ix.indkey[0]
        WHERE n.nspname = current_schema() AND NOT ix.indisprimary ORDER BY i.relname`
  return rows.map((row) => ({ name: row.name, table: row.table, column: row.column, desc: Boolean(row.desc) }))
})

const tableExists = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = (yield* Database.dialect) === "sqlite"
      ? yield* sql<{ n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${table}`
      : yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ${table}`
    return Number(rows[0]?.n) === 1
  })

interface HistoryRow {
  readonly plan: string
  readonly id: number
  readonly name: string
  readonly checksum: string
  readonly applied_at_ms: number
  readonly duration_ms: number | null
}

const historyRows = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<Record<string, unknown>>`
    SELECT plan, id, name, checksum, applied_at_ms, duration_ms FROM strata_migrations ORDER BY plan, id`
  return rows.map((row): HistoryRow => ({
    plan: String(row["plan"]),
    id: Number(row["id"]),
    name: String(row["name"]),
    checksum: String(row["checksum"]),
    applied_at_ms: Number(row["applied_at_ms"]),
    duration_ms: row["duration_ms"] == null ? null : Number(row["duration_ms"])
  }))
})

const historyRow = (
  plan: string,
  migration: Plan.Migration,
  appliedAtMs: number,
  durationMs: number | null
): HistoryRow => ({
  plan,
  id: migration.id,
  name: migration.name,
  checksum: Compile.checksum(migration),
  applied_at_ms: appliedAtMs,
  duration_ms: durationMs
})

/** Everything in the schema: tables, columns with types, indexes with definitions. */
const schemaSnapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if ((yield* Database.dialect) === "sqlite") {
    return yield* sql`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`
  }
  const columns = yield* sql`
    SELECT table_name, column_name, data_type, ordinal_position FROM information_schema.columns
    WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`
  const indexes = yield* sql`SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname`
  return [...columns, ...indexes]
})

const insertHistoryRow = (row: HistoryRow) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`INSERT INTO strata_migrations (plan, id, name, checksum, applied_at_ms, duration_ms)
        VALUES (${row.plan}, ${row.id}, ${row.name}, ${row.checksum}, ${row.applied_at_ms}, ${row.duration_ms})`)

const widgetsTable = Plan.createTable("widgets", [{ name: "widget_id", type: "integer", primaryKey: true }])
const gadgetsTable = Plan.createTable("gadgets", [{ name: "gadget_id", type: "integer", primaryKey: true }])
const insertIntoMissingTable = Plan.sql({
  sqlite: "INSERT INTO no_such_table VALUES (1)",
  pg: "INSERT INTO no_such_table VALUES (1)"
})

describeEachEngine("Migrator", (engine) => {
  const withDatabase = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.provide(effect, engine.layer())

  it.effect("applies agentos to the legacy tables: the exact columns and 11 DESC indexes; re-running is a no-op", () =>
    withDatabase(Effect.gen(function*() {
      const dialect = yield* Database.dialect
      yield* legacySetup
      yield* TestClock.setTime(T0)
      const migrator = yield* Migrator.make(Plans.agentos)

      const first = yield* migrator.run()
      expect(first.plan).toBe("agentos")
      expect(first.applied.map((m) => [m.id, m.name, m.checksum, m.appliedAtMs, m.durationMs])).toEqual([
        [21, "audit decision fields", Compile.checksum(m21), T0, 0],
        [44, "epoch ms timestamps", Compile.checksum(m44), T0, 0]
      ])
      // 4 + 11 ADD COLUMNs in the transaction; the 11 indexes of backfilled columns wait for their backfill.
      expect(first.applied.map((m) => m.statements.length)).toEqual([2, 15])
      expect(first.applied.flatMap((m) => m.statements.filter((s) => s.skipped))).toEqual([])
      expect(first.alreadyApplied).toEqual([])
      expect(first.appliedConcurrently).toEqual([])
      expect(first.indexes).toEqual([])
      expect(first.deferredIndexes).toEqual(deferredAgentosIndexes)

      for (const table of Object.keys(agentosColumns)) {
        expect([table, yield* columnsOf(table)]).toEqual([table, expectedColumns(table, dialect)])
      }
      expect(yield* secondaryIndexes).toEqual([])
      const rows = yield* historyRows
      expect(rows).toEqual([historyRow("agentos", m21, T0, 0), historyRow("agentos", m44, T0, 0)])

      yield* TestClock.adjust("1 hour")
      const second = yield* migrator.run()
      expect(second).toEqual({
        plan: "agentos",
        applied: [],
        alreadyApplied: [21, 44],
        appliedConcurrently: [],
        indexes: [],
        deferredIndexes: deferredAgentosIndexes,
        lockTimeoutMs: dialect === "pg" ? 2000 : undefined,
        constraints: []
      })
      expect(yield* historyRows).toEqual(rows)
      expect(yield* secondaryIndexes).toEqual([])
      // Deferred until jobs that have not run: nothing for the next run to do first.
      expect((yield* migrator.dryRun()).unfinished).toEqual([])

      const status = yield* migrator.status()
      const migrations = [
        { state: "applied", id: 21, name: m21.name, checksum: Compile.checksum(m21), appliedAtMs: T0, durationMs: 0 },
        { state: "applied", id: 44, name: m44.name, checksum: Compile.checksum(m44), appliedAtMs: T0, durationMs: 0 }
      ]
      expect(status).toEqual({ plan: "agentos", migrations, unknown: [], indexes: deferredAgentosIndexes, constraints: [] })

      // The backfill builds each column's index when its job is done (the legacy tables are empty: at once).
      const jobs = yield* Effect.flatMap(BackfillRunner.make(Plans.agentos), (runner) => runner.run())
      expect(jobs.flatMap((job) => (job.indexes ?? []).map((index) => index.name)).sort()).toEqual(agentosIndexes.map((i) => i.name))
      expect(yield* secondaryIndexes).toEqual(agentosIndexes)
      const built = T0 + 3_600_000
      expect((yield* migrator.status()).indexes).toEqual(
        deferredAgentosIndexes.map((index) => ({ ...index, state: "valid", startedAtMs: built, finishedAtMs: built, durationMs: 0, attempts: 1 }))
      )
      // Nothing left for migrate.
      expect(yield* migrator.run()).toMatchObject({ applied: [], indexes: [], deferredIndexes: [] })
      expect((yield* migrator.dryRun()).unfinished).toEqual([])

      // A run killed after a job was done and before its index was built leaves the index deferred,
      // its job done: the dry run lists the build that the next run does first, which builds it.
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP INDEX idx_chat_messages_created_at_ms`
      yield* sql`UPDATE strata_indexes SET state = 'deferred' WHERE index_name = 'idx_chat_messages_created_at_ms'`
      const dry = yield* migrator.dryRun()
      expect([dry.pending, dry.unfinished.map((m) => [m.id, m.statements.map((s) => [s.phase, s.afterJob, s.sql])])]).toEqual([[], [[44, [[
        "afterJob",
        "chat_messages.created_at_ms",
        dialect === "pg"
          ? `CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_chat_messages_created_at_ms" ON "chat_messages" ("created_at_ms" DESC)`
          : `CREATE INDEX IF NOT EXISTS "idx_chat_messages_created_at_ms" ON "chat_messages" ("created_at_ms" DESC)`
      ]]]]])
      // Not valid meanwhile: the plan's index is not there, and validate says what migrate does first.
      const unbuilt = yield* migrator.validate()
      expect([unbuilt.ok, unbuilt.unfinished]).toEqual([false, dry.unfinished])
      expect(Migrator.ValidationFailed.fromReport(unbuilt).message).toBe(
        "Plan agentos is not valid on this database (unfinished (index builds or constraint validations 'strata migrate' does first): 44)"
      )
      expect((yield* migrator.run()).indexes.map((i) => i.name)).toEqual(["idx_chat_messages_created_at_ms"])
      expect(yield* secondaryIndexes).toEqual(agentosIndexes)
      expect((yield* migrator.dryRun()).unfinished).toEqual([])
      expect(yield* migrator.validate()).toMatchObject({ ok: true, unfinished: [] })
    })))

  it.effect("logs each applied migration with plan, migration_id and migration_name", () =>
    withDatabase(Effect.gen(function*() {
      yield* legacySetup
      const entries: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const capture = Logger.make(({ annotations, message }) => {
        entries.push({
          message: Array.isArray(message) ? message[0] : message,
          annotations: Object.fromEntries(HashMap.toEntries(annotations))
        })
      })
      yield* Migrator.run().pipe(
        Effect.provide(Migrator.layer(Plans.agentos)),
        Effect.provide(Logger.replace(Logger.defaultLogger, capture))
      )
      expect(entries.filter((e) => e.message === "migration applied").map((e) => e.annotations)).toEqual([
        { plan: "agentos", migration_id: 21, migration_name: "audit decision fields", duration_ms: 0 },
        { plan: "agentos", migration_id: 44, migration_name: "epoch ms timestamps", duration_ms: 0 }
      ])
      expect(entries.filter((e) => e.message === "applying migration").map((e) => e.annotations["migration_id"])).toEqual([
        21,
        44
      ])
    })))

  it.effect("dry run changes nothing (not even strata_migrations) and lists exactly what run executes", () =>
    withDatabase(Effect.gen(function*() {
      const dialect = yield* Database.dialect
      yield* legacySetup
      const migrator = yield* Migrator.make(Plans.agentos)
      const before = yield* schemaSnapshot

      const dry = yield* migrator.dryRun()
      expect(yield* schemaSnapshot).toEqual(before)
      expect(yield* tableExists("strata_migrations")).toBe(false)
      expect(dry.plan).toBe("agentos")
      expect(dry.dialect).toBe(dialect)
      expect(dry.createsHistoryTable).toBe(true)
      expect(dry.alreadyApplied).toEqual([])
      expect(dry.pending.map((m) => [m.id, m.name, m.checksum])).toEqual([
        [21, m21.name, Compile.checksum(m21)],
        [44, m44.name, Compile.checksum(m44)]
      ])
      const compiled = [m21, m44].flatMap((m) => Compile.transactionStatements(m, dialect))
      const planned = dry.pending.flatMap((m) => m.statements)
      const inTransaction = planned.filter((s) => s.phase === "transaction")
      expect(inTransaction.map((s) => s.sql)).toEqual(compiled.map((s) => s.sql))
      expect(inTransaction.map((s) => s.text)).toEqual(compiled.map(Compile.render))
      // Then the 11 deferred index builds, each named with its job.
      expect(planned.slice(inTransaction.length).map((s) => [s.phase, s.afterJob, s.sql])).toEqual(
        Compile.indexBuilds(m44, dialect).map((b) => ["afterJob", b.index.afterJob, b.create])
      )
      expect(planned.length).toBe(inTransaction.length + 11)
      expect(planned.every((s) => s.willRun)).toBe(true)
      expect(planned.filter((s) => s.guard !== undefined).length).toBe(dialect === "sqlite" ? 17 : 0)

      const result = yield* migrator.run()
      const executed = result.applied.flatMap((m) => m.statements.filter((s) => !s.skipped).map((s) => s.sql))
      expect(executed).toEqual(inTransaction.filter((s) => s.willRun).map((s) => s.sql))

      // With the history table present, a dry run leaves schema and history rows untouched too.
      const rows = yield* historyRows
      const afterRun = yield* schemaSnapshot
      const again = yield* migrator.dryRun()
      expect(again).toEqual({ plan: "agentos", dialect, createsHistoryTable: false, pending: [], alreadyApplied: [21, 44], unfinished: [] })
      expect(yield* schemaSnapshot).toEqual(afterRun)
      expect(yield* historyRows).toEqual(rows)
    })))

  it.effect("partial state: a column that already exists is skipped by its guard (SQLite) or IF NOT EXISTS (PG), and dry run says so", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dialect = yield* Database.dialect
      yield* legacySetup
      yield* sql.unsafe(`ALTER TABLE chat_messages ADD COLUMN created_at_ms ${dialect === "pg" ? "BIGINT" : "INTEGER"}`)
      const migrator = yield* Migrator.make(Plans.agentos)
      const alter = `ALTER TABLE "chat_messages" ADD COLUMN${dialect === "pg" ? " IF NOT EXISTS" : ""} "created_at_ms" ${
        dialect === "pg" ? "BIGINT" : "INTEGER"
      }`

      const dry = yield* migrator.dryRun()
      const planned = dry.pending.flatMap((m) => m.statements)
      const guarded = planned.find((s) => s.sql === alter)
      expect(guarded).toEqual(
        dialect === "sqlite"
          ? {
            sql: alter,
            text: `-- only if chat_messages.created_at_ms does not exist yet\n${alter};`,
            guard: { table: "chat_messages", column: "created_at_ms", columnExists: true },
            willRun: false,
            phase: "transaction"
          }
          : { sql: alter, text: `${alter};`, guard: undefined, willRun: true, phase: "transaction" }
      )
      expect(planned.filter((s) => !s.willRun).length).toBe(dialect === "sqlite" ? 1 : 0)

      const result = yield* migrator.run()
      const statements = result.applied.flatMap((m) => m.statements)
      expect(statements.map((s) => [s.sql, s.skipped])).toEqual(
        planned.filter((s) => s.phase === "transaction").map((s) => [s.sql, !s.willRun])
      )
      expect(yield* columnsOf("chat_messages")).toEqual(expectedColumns("chat_messages", dialect))
    })))

  it.effect("drift: a tampered stored checksum is reported by status, and run refuses naming it", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* legacySetup
      yield* TestClock.setTime(T0)
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run())
      yield* sql`UPDATE strata_migrations SET checksum = '0000000000000000' WHERE plan = 'agentos' AND id = 44`
      const rows = yield* historyRows

      const extended = Plan.make("agentos", [
        m21,
        m44,
        Plan.migration(50, "later table", [Plan.createTable("later_table", [{ name: "id", type: "integer", primaryKey: true }])])
      ])
      const migrator = yield* Migrator.make(extended)
      const status = yield* migrator.status()
      expect(status.migrations.map((m) => m.state)).toEqual(["applied", "drifted", "pending"])
      expect(status.migrations[1]).toEqual({
        state: "drifted",
        id: 44,
        name: "epoch ms timestamps",
        stored: "0000000000000000",
        expected: Compile.checksum(m44),
        appliedAtMs: T0,
        durationMs: 0
      })

      const error = yield* Effect.flip(migrator.run())
      expect(error).toBeInstanceOf(Migrator.MigrationDrifted)
      expect(error).toMatchObject({
        _tag: "MigrationDrifted",
        plan: "agentos",
        id: 44,
        name: "epoch ms timestamps",
        stored: "0000000000000000",
        expected: Compile.checksum(m44)
      })
      expect(error.message).toBe(
        `Migration 44 "epoch ms timestamps" of plan agentos changed after it was applied (stored checksum 0000000000000000, plan checksum ${
          Compile.checksum(m44)
        }); restore the applied steps and put changes in a new migration`
      )
      expect(yield* tableExists("later_table")).toBe(false)
      expect(yield* historyRows).toEqual(rows)
      expect((yield* Effect.flip(migrator.dryRun()))._tag).toBe("MigrationDrifted")
      // Even when `to` stops before the drifted migration: the plan no longer describes the database.
      expect((yield* Effect.flip(migrator.run({ to: 21 })))._tag).toBe("MigrationDrifted")
    })))

  it.effect("drift: a plan whose migration 44 was edited is refused before anything runs", () =>
    withDatabase(Effect.gen(function*() {
      yield* legacySetup
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run({ to: 21 }))
      yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run())
      const edited44 = Plan.migration(44, "epoch ms timestamps", [
        ...m44.steps,
        Plan.epochShadow("chat_messages", "created_at", { target: "created_ms" })
      ])
      const edited = Plan.make("agentos", [
        m21,
        edited44,
        Plan.migration(45, "after", [Plan.createTable("after_table", [{ name: "id", type: "integer", primaryKey: true }])])
      ])
      expect(Compile.checksum(edited44)).not.toBe(Compile.checksum(m44))
      const migrator = yield* Migrator.make(edited)
      const status = yield* migrator.status()
      expect(status.migrations.map((m) => [m.id, m.state])).toEqual([[21, "applied"], [44, "drifted"], [45, "pending"]])
      const error = yield* Effect.flip(migrator.run())
      expect(error).toMatchObject({
        _tag: "MigrationDrifted",
        id: 44,
        name: "epoch ms timestamps",
        stored: Compile.checksum(m44),
        expected: Compile.checksum(edited44)
      })
      expect(yield* tableExists("after_table")).toBe(false)
      expect((yield* columnsOf("chat_messages")).map(([name]) => name)).not.toContain("created_ms")
    })))

  it.effect("a failing migration rolls back entirely, earlier ones stay applied, and the fixed plan then applies", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dialect = yield* Database.dialect
      yield* TestClock.setTime(T0)
      const good = Plan.migration(1, "create widgets", [widgetsTable])
      const bad = Plan.migration(2, "half good", [Plan.addColumn("widgets", "colour", "text"), gadgetsTable, insertIntoMissingTable])
      const failing = yield* Migrator.make(Plan.make("failing", [good, bad]))

      const error = yield* Effect.flip(failing.run())
      const cause = dialect === "sqlite"
        ? "no such table: no_such_table (SQLITE_ERROR)"
        : `relation "no_such_table" does not exist (42P01)`
      expect(error).toBeInstanceOf(Migrator.MigrationFailed)
      expect(error).toMatchObject({
        _tag: "MigrationFailed",
        plan: "failing",
        id: 2,
        name: "half good",
        statement: "INSERT INTO no_such_table VALUES (1)",
        cause
      })
      expect(error.message).toBe(
        `Migration 2 "half good" of plan failing failed and was rolled back: ${cause}; statement: INSERT INTO no_such_table VALUES (1)`
      )
      expect(yield* historyRows).toEqual([historyRow("failing", good, T0, 0)])
      expect(yield* tableExists("widgets")).toBe(true)
      expect(yield* tableExists("gadgets")).toBe(false)
      expect((yield* columnsOf("widgets")).map(([name]) => name)).toEqual(["widget_id"])
      expect((yield* failing.status()).migrations.map((m) => m.state)).toEqual(["applied", "pending"])

      // The failed migration was never recorded, so a corrected version of it is simply pending.
      const fixed = Plan.migration(2, "half good", [
        Plan.addColumn("widgets", "colour", "text"),
        gadgetsTable,
        Plan.sql({ sqlite: "INSERT INTO gadgets VALUES (7)", pg: "INSERT INTO gadgets VALUES (7)" })
      ])
      const result = yield* Effect.flatMap(Migrator.make(Plan.make("failing", [good, fixed])), (m) => m.run())
      expect(result.applied.map((m) => m.id)).toEqual([2])
      expect(result.alreadyApplied).toEqual([1])
      expect((yield* columnsOf("widgets")).map(([name]) => name)).toEqual(["widget_id", "colour"])
      expect((yield* sql<{ gadget_id: number }>`SELECT gadget_id FROM gadgets`).map((r) => Number(r.gadget_id))).toEqual([7])
      expect(yield* historyRows).toEqual([historyRow("failing", good, T0, 0), historyRow("failing", fixed, T0, 0)])
    })))

  it.effect("baseline records migrations as applied without running them; run then applies only the rest", () =>
    withDatabase(Effect.gen(function*() {
      const dialect = yield* Database.dialect
      yield* legacySetup
      yield* TestClock.setTime(T0)
      const migrator = yield* Migrator.make(Plans.agentos)

      expect(yield* migrator.baseline(21)).toEqual({ plan: "agentos", baselined: [21], alreadyApplied: [] })
      // Not run: migration 21's columns are still absent.
      expect(yield* columnsOf("task_audits")).toEqual(
        expectedColumns("task_audits", dialect, ["source_event_ts", "supervisor_processed_at", "created_at_ms"])
      )
      expect(yield* historyRows).toEqual([historyRow("agentos", m21, T0, null)])
      expect((yield* migrator.status()).migrations).toEqual([
        { state: "applied", id: 21, name: m21.name, checksum: Compile.checksum(m21), appliedAtMs: T0, durationMs: null },
        { state: "pending", id: 44, name: m44.name, checksum: Compile.checksum(m44) }
      ])

      yield* TestClock.adjust("1 minute")
      expect(yield* migrator.baseline(21)).toEqual({ plan: "agentos", baselined: [], alreadyApplied: [21] })

      const result = yield* migrator.run()
      expect(result.applied.map((m) => m.id)).toEqual([44])
      expect(result.alreadyApplied).toEqual([21])
      expect(yield* columnsOf("task_audits")).toEqual(
        expectedColumns("task_audits", dialect, ["source_event_ts", "supervisor_processed_at"])
      )
      expect(yield* historyRows).toEqual([historyRow("agentos", m21, T0, null), historyRow("agentos", m44, T0 + 60_000, 0)])

      const notInPlan = yield* Effect.flip(migrator.baseline(30))
      expect(notInPlan).toBeInstanceOf(Migrator.MigrationNotInPlan)
      expect(notInPlan.message).toBe("Migration 30 is not in plan agentos (its migrations: 21, 44)")
    })))

  it.effect("baseline refuses when an applied migration it covers has another checksum, and marks nothing", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const migrator = yield* Migrator.make(Plans.agentos)
      yield* migrator.baseline(21)
      yield* sql`UPDATE strata_migrations SET checksum = 'ffffffffffffffff' WHERE plan = 'agentos' AND id = 21`
      const error = yield* Effect.flip(migrator.baseline(44))
      expect(error).toMatchObject({ _tag: "MigrationDrifted", id: 21, stored: "ffffffffffffffff", expected: Compile.checksum(m21) })
      expect((yield* historyRows).map((row) => row.id)).toEqual([21])
    })))

  it.effect("`to` applies up to and including that id; an id not in the plan is a typed error naming it", () =>
    withDatabase(Effect.gen(function*() {
      const dialect = yield* Database.dialect
      yield* legacySetup
      const migrator = yield* Migrator.make(Plans.agentos)

      expect((yield* migrator.dryRun({ to: 21 })).pending.map((m) => m.id)).toEqual([21])
      const first = yield* migrator.run({ to: 21 })
      expect(first.applied.map((m) => m.id)).toEqual([21])
      expect(yield* columnsOf("chat_sessions")).toEqual(expectedColumns("chat_sessions", dialect, ["created_at_ms", "updated_at_ms"]))
      expect((yield* migrator.status()).migrations.map((m) => m.state)).toEqual(["applied", "pending"])
      expect((yield* migrator.run({ to: 21 })).applied).toEqual([])

      for (const to of [30, 99]) {
        const error = yield* Effect.flip(migrator.run({ to }))
        expect(error).toEqual(new Migrator.MigrationNotInPlan({ plan: "agentos", id: to, known: [21, 44] }))
        expect((yield* Effect.flip(migrator.dryRun({ to })))._tag).toBe("MigrationNotInPlan")
      }
      expect((yield* migrator.status()).migrations.map((m) => m.state)).toEqual(["applied", "pending"])

      const rest = yield* migrator.run()
      expect(rest.applied.map((m) => m.id)).toEqual([44])
      expect(rest.alreadyApplied).toEqual([21])
    })))

  it.effect("a second plan coexists in the same database, keyed by (plan, id)", () =>
    withDatabase(Effect.gen(function*() {
      yield* legacySetup
      yield* TestClock.setTime(T0)
      const chat1 = Plan.migration(1, "chat store", [Plan.createTable("chat_store_items", [{ name: "item_id", type: "text", primaryKey: true }])])
      const chat21 = Plan.migration(21, "same id as agentos", [Plan.addColumn("chat_store_items", "body", "text")])
      const agentos = yield* Migrator.make(Plans.agentos)
      const chat = yield* Migrator.make(Plan.make("chat", [chat1, chat21]))

      expect((yield* agentos.run()).applied.map((m) => m.id)).toEqual([21, 44])
      expect((yield* chat.run()).applied.map((m) => m.id)).toEqual([1, 21])
      expect(yield* historyRows).toEqual([
        historyRow("agentos", m21, T0, 0),
        historyRow("agentos", m44, T0, 0),
        historyRow("chat", chat1, T0, 0),
        historyRow("chat", chat21, T0, 0)
      ])
      const agentosStatus = yield* agentos.status()
      expect(agentosStatus.migrations.map((m) => [m.id, m.state])).toEqual([[21, "applied"], [44, "applied"]])
      expect(agentosStatus.unknown).toEqual([])
      const chatStatus = yield* chat.status()
      expect(chatStatus.migrations.map((m) => [m.id, m.state])).toEqual([[1, "applied"], [21, "applied"]])
      expect(chatStatus.unknown).toEqual([])
      expect((yield* agentos.run()).applied).toEqual([])
      expect((yield* chat.run()).applied).toEqual([])
    })))

  it.effect("unknown and out-of-order history: refused below pending work, tolerated when nothing is pending", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* legacySetup
      yield* TestClock.setTime(T0)
      const migrator = yield* Migrator.make(Plans.agentos)
      yield* migrator.run({ to: 21 })

      const removed: HistoryRow = { plan: "agentos", id: 30, name: "removed from the plan", checksum: "abc", applied_at_ms: T0, duration_ms: 5 }
      yield* insertHistoryRow(removed)
      expect((yield* migrator.status()).unknown).toEqual([
        { id: 30, name: "removed from the plan", checksum: "abc", appliedAtMs: T0, durationMs: 5 }
      ])
      const unknown = yield* Effect.flip(migrator.run())
      expect(unknown).toEqual(new Migrator.UnknownMigrationApplied({ plan: "agentos", id: 30, name: "removed from the plan" }))
      expect(unknown.message).toBe(
        `Migration 30 "removed from the plan" is recorded as applied for plan agentos but is not in the plan; put it back in the plan before applying later migrations`
      )
      expect((yield* Effect.flip(migrator.dryRun()))._tag).toBe("UnknownMigrationApplied")
      // `to` that stops below the unknown migration has nothing to go past.
      expect((yield* migrator.run({ to: 21 })).applied).toEqual([])

      yield* sql`DELETE FROM strata_migrations WHERE id = 30`
      yield* insertHistoryRow({ ...removed, id: 99, name: "from a newer plan" })
      const outOfOrder = yield* Effect.flip(migrator.run())
      expect(outOfOrder).toEqual(
        new Migrator.MigrationOutOfOrder({ plan: "agentos", id: 44, name: "epoch ms timestamps", latestAppliedId: 99 })
      )
      expect((yield* migrator.status()).migrations.map((m) => m.state)).toEqual(["applied", "pending"])

      // A known migration applied ahead of a pending one is out of order too.
      yield* sql`DELETE FROM strata_migrations WHERE id = 99`
      yield* sql`DELETE FROM strata_migrations WHERE id = 21`
      yield* insertHistoryRow(historyRow("agentos", m44, T0, 0))
      expect(yield* Effect.flip(migrator.run())).toEqual(
        new Migrator.MigrationOutOfOrder({ plan: "agentos", id: 21, name: "audit decision fields", latestAppliedId: 44 })
      )

      // A database ahead of the plan (a newer version migrated it) is fine when nothing is pending.
      yield* sql`DELETE FROM strata_migrations WHERE plan = 'agentos'`
      yield* migrator.baseline(44)
      yield* insertHistoryRow({ ...removed, id: 99, name: "from a newer plan" })
      // Baselined: strata did not run migration 44, so it tracks no index of it.
      expect(yield* migrator.run()).toEqual({
        plan: "agentos",
        applied: [],
        alreadyApplied: [21, 44],
        appliedConcurrently: [],
        indexes: [],
        deferredIndexes: [],
        lockTimeoutMs: (yield* Database.dialect) === "pg" ? 2000 : undefined,
        constraints: []
      })
      expect((yield* migrator.status()).unknown.map((m) => m.id)).toEqual([99])
    })))

  it.effect("identifier injection in a JSON plan is rejected at decode, before anything can run", () =>
    withDatabase(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE y (id INTEGER)`
      const before = yield* schemaSnapshot
      const evil = '"x\\"; DROP TABLE y; --"'
      const attempts = [
        `{"_tag":"CreateTable","table":${evil},"columns":[{"name":"a","type":"text"}]}`,
        `{"_tag":"AddColumn","table":"y","column":{"name":${evil},"type":"text"}}`,
        `{"_tag":"CreateIndex","name":${evil},"table":"y","columns":["id"]}`,
        `{"_tag":"EpochShadow","table":"y","column":"id","target":${evil}}`
      ]
      const paths = [
        "migrations[0].steps[0].table",
        "migrations[0].steps[0].column.name",
        "migrations[0].steps[0].name",
        "migrations[0].steps[0].target"
      ]
      for (const [index, step] of attempts.entries()) {
        const decoded = Plan.fromJson(`{"name":"evil","migrations":[{"id":1,"name":"inject","steps":[${step}]}]}`, "evil.json")
        expect(Either.isLeft(decoded)).toBe(true)
        if (Either.isLeft(decoded)) {
          const problem = index === 0
            ? `expected a table name (an identifier, or schema.table with each part an identifier: letters, digits and _, not starting with a digit, at most 63 characters), got "x\\"; DROP TABLE y; --"`
            : `expected a SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters), got "x\\"; DROP TABLE y; --"`
          expect(decoded.left.issues[0]).toEqual({ path: paths[index], message: problem })
          expect(decoded.left.message.startsWith(`invalid plan in evil.json: at ${paths[index]}: ${problem}`)).toBe(true)
        }
      }
      expect(yield* schemaSnapshot).toEqual(before)
      expect(yield* tableExists("y")).toBe(true)
      expect(yield* tableExists("strata_migrations")).toBe(false)
    })))
})

describe("Migrator lock timeout and interruption", () => {
  const holdPlan = Plan.make("held", [
    Plan.migration(1, "needs the lock", [Plan.createTable("held_table", [{ name: "id", type: "integer", primaryKey: true }])])
  ])

  /**
   * While `holder` keeps the lock, a runner with a 300 ms lock timeout gives up with a typed error;
   * afterwards it succeeds. Both clients are opened before the lock is taken.
   */
  const expectTimeoutWhileHeld = (
    holder: (held: Deferred.Deferred<void>) => Effect.Effect<void, unknown, SqlClient.SqlClient>,
    holderLayer: Layer.Layer<SqlClient.SqlClient>,
    runnerLayer: Layer.Layer<SqlClient.SqlClient>
  ) =>
    Effect.gen(function*() {
      const holderClient = yield* Layer.build(holderLayer)
      const runnerClient = yield* Layer.build(runnerLayer)
      const held = yield* Deferred.make<void>()
      const fiber = yield* holder(held).pipe(Effect.provide(holderClient), Effect.fork)
      yield* Deferred.await(held)
      const runner = Effect.flatMap(Migrator.make(holdPlan, { runnerTimeout: "300 millis" }), (m) => m.run()).pipe(
        Effect.provide(runnerClient)
      )
      const error = yield* Effect.flip(runner)
      expect(error).toBeInstanceOf(Migrator.MigrationLockTimeout)
      const timeout = error as Migrator.MigrationLockTimeout
      expect(timeout.waitedMs).toBeGreaterThanOrEqual(300)
      expect(timeout.message).toBe(
        `Gave up after ${timeout.waitedMs} ms waiting for the migration lock of plan held (another runner holds it)`
      )
      yield* Fiber.join(fiber)
      const result = yield* runner
      expect(result.applied.map((m) => m.id)).toEqual([1])
    })

  it.live("SQLite: another connection's write transaction", () =>
    Effect.scoped(Effect.gen(function*() {
      const file = yield* tempSqliteFile()
      yield* expectTimeoutWhileHeld(
        (held) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              sql`CREATE TABLE holding_the_write_lock (id INTEGER)`.pipe(
                Effect.zipRight(Deferred.succeed(held, undefined)),
                Effect.zipRight(Effect.sleep("800 millis"))
              )
            )),
        Database.layer({ url: file }).pipe(Layer.orDie),
        Database.layer({ url: file }).pipe(Layer.orDie)
      )
    })))

  it.live("PostgreSQL: another session holding the plan's advisory lock", () =>
    Effect.scoped(Effect.gen(function*() {
      const { schema, url } = yield* pgTestUrlWithSchema()
      // The runner lock names the history table with the schema it resolves to.
      const lockKey = advisoryLockKey(`${schema}.strata_migrations:held`)
      yield* expectTimeoutWhileHeld(
        (held) =>
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            sql.withTransaction(
              sql`SELECT pg_advisory_xact_lock(${lockKey}::bigint)`.pipe(
                Effect.zipRight(Deferred.succeed(held, undefined)),
                Effect.zipRight(Effect.sleep("800 millis"))
              )
            )),
        Database.layer({ url }).pipe(Layer.orDie),
        Database.layer({ url }).pipe(Layer.orDie)
      )
    })))

  it.live("SQLite: a runner interrupted while it waits for the lock leaves nothing behind and frees its connection", () =>
    Effect.scoped(Effect.gen(function*() {
      const file = yield* tempSqliteFile()
      const holderClient = yield* Layer.build(Database.layer({ url: file }).pipe(Layer.orDie))
      const runnerClient = yield* Layer.build(Database.layer({ url: file }).pipe(Layer.orDie))
      const held = yield* Deferred.make<void>()
      const holder = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(
          sql`CREATE TABLE holding_the_write_lock (id INTEGER)`.pipe(
            Effect.zipRight(Deferred.succeed(held, undefined)),
            Effect.zipRight(Effect.sleep("600 millis"))
          )
        )).pipe(Effect.provide(holderClient), Effect.fork)
      yield* Deferred.await(held)
      const runner = Effect.flatMap(Migrator.make(holdPlan), (m) => m.run()).pipe(Effect.provide(runnerClient))
      const waiting = yield* Effect.fork(runner)
      yield* Effect.sleep("150 millis")
      const exit = yield* Fiber.interrupt(waiting)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Fiber.join(holder)
      // The interrupted runner's connection is free again (no transaction or permit left held).
      expect(yield* tableExists("held_table").pipe(Effect.provide(runnerClient))).toBe(false)
      expect((yield* runner).applied.map((m) => m.id)).toEqual([1])
    })))

  it.live("PostgreSQL: a migration interrupted mid-statement rolls back and releases the lock", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      const runnerClient = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const observerClient = yield* Layer.build(Database.layer({ url }).pipe(Layer.orDie))
      const slow = Plan.make("held", [
        Plan.migration(1, "needs the lock", [
          Plan.createTable("held_table", [{ name: "id", type: "integer", primaryKey: true }]),
          Plan.sql({ sqlite: "SELECT 1", pg: "SELECT pg_sleep(30)" })
        ])
      ])
      const running = yield* Effect.fork(
        Effect.flatMap(Migrator.make(slow), (m) => m.run()).pipe(Effect.provide(runnerClient))
      )
      const sleeping = Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'`
      ).pipe(Effect.provide(observerClient), Effect.map((rows) => rows[0]?.n ?? 0))
      yield* sleeping.pipe(Effect.repeat({ until: (n) => n === 1, schedule: Schedule.spaced("20 millis") }))
      const exit = yield* Fiber.interrupt(running)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Effect.provide(
        Effect.gen(function*() {
          expect(yield* tableExists("held_table")).toBe(false)
          expect(yield* historyRows).toEqual([])
        }),
        observerClient
      )
      // The advisory lock went with the rolled-back transaction: a short lock timeout suffices now.
      const result = yield* Effect.flatMap(Migrator.make(holdPlan, { runnerTimeout: "2 seconds" }), (m) => m.run()).pipe(
        Effect.provide(observerClient)
      )
      expect(result.applied.map((m) => m.id)).toEqual([1])
    })))
})
