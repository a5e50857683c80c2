import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { Backfill, Compile, FastPath, Identifier, Lazy, Plan, Plans } from "../src/index.js"

const injection = `x"; DROP TABLE y; --`

describe("Identifier", () => {
  it("accepts SQL names and rejects anything that could carry SQL", () => {
    expect(Either.isRight(Identifier.decode("chat_messages"))).toBe(true)
    expect(Either.isRight(Identifier.decode("_x9"))).toBe(true)
    for (const bad of [injection, "a b", "a;b", "a'b", "a\"b", "a.b", "9abc", "", "x".repeat(64), "é"]) {
      const decoded = Identifier.decode(bad)
      expect(Either.isLeft(decoded), bad).toBe(true)
    }
  })

  it("rejects injection when a plan is built in code", () => {
    expect(() => Plan.epochShadow(injection, "created_at")).toThrow(/expected a table name/)
    expect(() => Plan.createIndex("idx", "t", [injection])).toThrow(/DROP TABLE/)
  })
})

describe("Plan.decode", () => {
  it("names the path of the bad field in a JSON plan", () => {
    const json = JSON.stringify({
      name: "p",
      migrations: [{ id: 1, name: "one", steps: [{ _tag: "EpochShadow", table: injection, column: "created_at" }] }]
    })
    const decoded = Plan.fromJson(json, "plan.json")
    expect(Either.isLeft(decoded)).toBe(true)
    const error = Either.getLeft(decoded).pipe((o) => (o._tag === "Some" ? o.value : undefined))!
    expect(error._tag).toBe("InvalidPlan")
    expect(error.issues[0]!.path).toBe("migrations[0].steps[0].table")
    expect(error.message).toContain("plan.json")
    expect(error.message).toContain("migrations[0].steps[0].table")
  })

  it("reports a bad optional identifier once, with the real reason", () => {
    const decoded = Plan.decode({
      name: "p",
      migrations: [{ id: 1, name: "a", steps: [{ _tag: "EpochShadow", table: "t", column: "c", target: "bad name" }] }]
    })
    expect(Either.isLeft(decoded) && decoded.left.issues).toEqual([{
      path: "migrations[0].steps[0].target",
      message: `expected a SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters), got "bad name"`
    }])
  })

  it("rejects malformed JSON, unknown step tags, extra fields and unordered ids", () => {
    const messageOf = (text: string) => Either.match(Plan.fromJson(text, "f.json"), { onLeft: (e) => e.message, onRight: () => "decoded" })
    expect(messageOf("{ nope")).toMatch(/^invalid plan in f\.json: at \(root\): not valid JSON/)
    expect(messageOf(JSON.stringify({ name: "p", migrations: [{ id: 1, name: "a", steps: [{ _tag: "DropEverything" }] }] })))
      .toContain("migrations[0].steps[0]")
    expect(messageOf(JSON.stringify({ name: "p", migrations: [], extra: 1 }))).toContain("extra")
    expect(messageOf(JSON.stringify({
      name: "p",
      migrations: [{ id: 2, name: "a", steps: [] }, { id: 2, name: "b", steps: [] }]
    }))).toContain("migrations[1].id")
    expect(messageOf(JSON.stringify({ name: "p", migrations: [{ id: 0, name: "a", steps: [] }] }))).toContain("migrations[0].id")
  })

  it("round-trips the shipped plan through JSON", () => {
    const json = JSON.stringify(Plan.toJson(Plans.agentos))
    const decoded = Either.getOrThrow(Plan.fromJson(json))
    expect(decoded).toEqual(Plans.agentos)
    expect(decoded.migrations.map(Compile.checksum)).toEqual(Plans.agentos.migrations.map(Compile.checksum))
  })
})

describe("Compile", () => {
  const m44 = Plans.agentos.migrations.find((m) => m.id === 44)!

  it("compiles migration 44 to 15 guarded shadow columns and 11 DESC indexes on SQLite", () => {
    const statements = Compile.statements(m44, "sqlite")
    const adds = statements.filter((s) => s.sql.includes("ADD COLUMN"))
    const indexes = statements.filter((s) => s.sql.startsWith("CREATE INDEX"))
    expect(adds).toHaveLength(15)
    expect(adds.every((s) => s.unlessColumnExists !== undefined)).toBe(true)
    expect(adds[0]).toEqual({
      sql: `ALTER TABLE "chat_sessions" ADD COLUMN "created_at_ms" INTEGER`,
      unlessColumnExists: { table: "chat_sessions", column: "created_at_ms" }
    })
    expect(indexes.map((s) => s.sql.match(/"(idx_[a-z_]+)"/)![1])).toEqual([
      "idx_chat_sessions_created_at_ms",
      "idx_chat_sessions_updated_at_ms",
      "idx_chat_messages_created_at_ms",
      "idx_tasks_created_at_ms",
      "idx_tasks_updated_at_ms",
      "idx_task_lineage_created_at_ms",
      "idx_task_agents_started_at_ms",
      "idx_task_audits_created_at_ms",
      "idx_projects_added_at_ms",
      "idx_runs_started_at_ms",
      "idx_artifacts_created_at_ms"
    ])
    expect(indexes[0]!.sql).toBe(
      `CREATE INDEX IF NOT EXISTS "idx_chat_sessions_created_at_ms" ON "chat_sessions" ("created_at_ms" DESC)`
    )
  })

  it("uses IF NOT EXISTS on PostgreSQL, BIGINT for epoch ms", () => {
    const statements = Compile.statements(m44, "pg")
    expect(statements.every((s) => s.unlessColumnExists === undefined)).toBe(true)
    expect(statements[0]!.sql).toBe(`ALTER TABLE "chat_sessions" ADD COLUMN IF NOT EXISTS "created_at_ms" BIGINT`)
  })

  it("renders tables with keys, checks, defaults and foreign keys per dialect", () => {
    const step = Plan.createTable("messages", [
      { name: "id", type: "integer", autoIncrement: true },
      { name: "session_id", type: "text", notNull: true, references: { table: "sessions", column: "id", onDelete: "cascade" } },
      { name: "role", type: "text", notNull: true, oneOf: ["user", "it's"] },
      { name: "active", type: "boolean", default: true },
      { name: "meta", type: "json" }
    ], { unique: [["session_id", "role"]] })
    const migration = Plan.migration(1, "t", [step])
    expect(Compile.statements(migration, "sqlite")[0]!.sql).toBe(
      `CREATE TABLE IF NOT EXISTS "messages" (\n` +
        `  "id" INTEGER PRIMARY KEY,\n` +
        `  "session_id" TEXT NOT NULL REFERENCES "sessions" ("id") ON DELETE CASCADE,\n` +
        `  "role" TEXT NOT NULL CHECK ("role" IN ('user', 'it''s')),\n` +
        `  "active" INTEGER DEFAULT 1,\n` +
        `  "meta" TEXT,\n` +
        `  UNIQUE ("session_id", "role")\n)`
    )
    expect(Compile.statements(migration, "pg")[0]!.sql).toContain(`"id" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY`)
    expect(Compile.statements(migration, "pg")[0]!.sql).toContain(`"active" BOOLEAN DEFAULT TRUE`)
    expect(Compile.statements(migration, "pg")[0]!.sql).toContain(`"meta" JSONB`)
  })

  it("has a checksum that is stable, content-only and sensitive to edits", () => {
    const a = Plan.migration(7, "seven", [Plan.epochShadow("t", "created_at", { index: true })])
    const renamed = Plan.migration(7, "renamed", [Plan.epochShadow("t", "created_at", { index: true })])
    const edited = Plan.migration(7, "seven", [Plan.epochShadow("t", "created_at", { index: false })])
    const fromJson = Either.getOrThrow(Plan.decode({
      name: "p",
      migrations: [{ name: "seven", steps: [{ index: true, column: "created_at", table: "t", _tag: "EpochShadow" }], id: 7 }]
    })).migrations[0]!
    // Pinned: the same bytes on every machine and run, so a stored checksum never drifts by itself.
    expect(Compile.checksum(a)).toBe("ab3a4625c837e3ff")
    expect(Plans.agentos.migrations.map(Compile.checksum)).toEqual(["431175f7cae44203", "b58958350ffda353"])
    expect(Compile.checksum(renamed)).toBe(Compile.checksum(a))
    expect(Compile.checksum(fromJson)).toBe(Compile.checksum(a))
    expect(Compile.checksum(edited)).not.toBe(Compile.checksum(a))
  })

  it("renders a dry-run statement with its guard", () => {
    expect(Compile.render({ sql: "ALTER TABLE \"t\" ADD COLUMN \"c\" INTEGER", unlessColumnExists: { table: "t" as Identifier.TableName, column: "c" as Identifier.Identifier } }))
      .toBe(`-- only if t.c does not exist yet\nALTER TABLE "t" ADD COLUMN "c" INTEGER;`)
  })
})

describe("Backfill.jobs", () => {
  const jobs = Backfill.jobs(Plans.agentos)
  const audit = jobs.find((j) => j.name === "task_audits.payload")!

  it("derives one job per shadow and one for the audit extraction", () => {
    expect(jobs).toHaveLength(16)
    expect(jobs[0]!.name).toBe("task_audits.payload")
    expect(jobs[1]).toMatchObject({
      name: "chat_sessions.created_at_ms",
      migrationId: 44,
      table: "chat_sessions",
      reads: ["created_at"],
      sources: ["created_at"],
      targets: [{ column: "created_at_ms", type: "bigint", index: { name: "idx_chat_sessions_created_at_ms", desc: true }, epochMillis: true }],
      requires: "created_at",
      fastPath: {
        sqlite: {
          expressions: [{ target: "created_at_ms", sql: FastPath.epochMillisExpression(Identifier.unsafeMake("created_at"), "sqlite") }],
          guard: FastPath.shapeTest(Identifier.unsafeMake("created_at"), "sqlite"),
          textColumns: []
        },
        pg: { textColumns: ["created_at"] }
      }
    })
    expect(audit).toMatchObject({
      migrationId: 21,
      reads: ["payload", "created_at", "event_type"],
      sources: ["payload", "created_at"],
      targets: [
        { column: "source_event_ts", type: "bigint", index: undefined, epochMillis: true },
        { column: "supervisor_processed_at", type: "bigint", index: undefined, epochMillis: true }
      ],
      filter: { column: "event_type", op: "contains", value: "SUPERVISOR" },
      fastPath: { sqlite: undefined, pg: undefined }
    })
    expect(Either.isLeft(Backfill.findJob(Plans.agentos, "nope"))).toBe(true)
  })

  const convert = (payload: unknown, created_at: unknown = "2024-01-15 12:00:00") =>
    audit.convert({ payload, created_at, event_type: "SUPERVISOR_DECISION" })

  it("extracts standard and alternate payload names, skipping nulls and empty strings", () => {
    expect(convert(JSON.stringify({ source_event_ts: "2024-01-15T20:00:00+08:00", supervisor_processed_at: "2024-01-15 12:00:01" })))
      .toEqual(Either.right({ source_event_ts: 1705320000000, supervisor_processed_at: 1705320001000 }))
    expect(convert(JSON.stringify({ source_ts: "", event_timestamp: null, task_created_at: "2024-01-15", processed_at: "2024-01-15T12:00:00.5Z" })))
      .toEqual(Either.right({ source_event_ts: 1705276800000, supervisor_processed_at: 1705320000500 }))
  })

  it("falls back to created_at for missing fields, NULL and empty payloads", () => {
    const fallback = Either.right({ source_event_ts: 1705320000000, supervisor_processed_at: 1705320000000 })
    expect(convert(JSON.stringify({ other: 1 }))).toEqual(fallback)
    expect(convert(null)).toEqual(fallback)
    expect(convert("")).toEqual(fallback)
    expect(convert("  ")).toEqual(fallback)
    expect(convert({ source_ts: "2024-01-15 12:00:00" })).toEqual(fallback)
    expect(convert(null, null)).toEqual(Either.right({ source_event_ts: null, supervisor_processed_at: null }))
  })

  it("rejects what it cannot read, without falling back", () => {
    const reason = (payload: unknown, created_at?: unknown) =>
      Either.match(convert(payload, created_at), { onLeft: (r) => `${r.column}: ${r.reason}`, onRight: () => "converted" })
    expect(reason("{not json")).toMatch(/^payload: invalid JSON/)
    expect(reason("null")).toBe("payload: payload is not a JSON object: null")
    expect(reason("[1,2]")).toBe("payload: payload is not a JSON object: an array")
    expect(reason("42")).toBe("payload: payload is not a JSON object: number 42")
    expect(reason(JSON.stringify({ source_ts: 1705320000 }))).toBe(
      "source_event_ts: payload.source_ts: expected timestamp text, found number 1705320000"
    )
    expect(reason(JSON.stringify({ source_ts: "2024-02-30 10:00:00" }))).toMatch(/^source_event_ts: payload\.source_ts: "2024-02-30 10:00:00": /)
    expect(reason(null, "garbage")).toMatch(/^source_event_ts: fallback created_at: "garbage": /)
  })

  it("converts shadows through Timestamp.parse, keeping 0 and rejecting non-text", () => {
    const shadow = jobs.find((j) => j.name === "chat_messages.created_at_ms")!
    expect(shadow.convert({ created_at: "2024-01-15T12:00:00Z" })).toEqual(Either.right({ created_at_ms: 1705320000000 }))
    expect(shadow.convert({ created_at: "1970-01-01 00:00:00" })).toEqual(Either.right({ created_at_ms: 0 }))
    expect(shadow.convert({ created_at: null })).toEqual(Either.right({ created_at_ms: null }))
    expect(Either.isLeft(shadow.convert({ created_at: 0 }))).toBe(true)
    expect(Either.isLeft(shadow.convert({ created_at: "" }))).toBe(true)
    expect(Either.isLeft(shadow.convert({ created_at: "yesterday" }))).toBe(true)
  })

  it("gives the lazy path the same conversion", () => {
    const rules = Lazy.rulesFor(Plans.agentos, "runs")
    expect(rules.map((r) => r.targets.map((t) => t.column))).toEqual([["started_at_ms"], ["completed_at_ms"], ["lease_until_ms"]])
    expect(Lazy.fix(rules[0]!, { started_at: "2024-01-15 12:00:00+08:00", started_at_ms: null })).toEqual([1705291200000])
    expect(rules[0]!.job).toBe("runs.started_at_ms")
  })

  it("filters audit rows case-sensitively", () => {
    expect(Backfill.matchesFilter(audit.filter, { event_type: "TASK_SUPERVISOR_DONE" })).toBe(true)
    expect(Backfill.matchesFilter(audit.filter, { event_type: "supervisor" })).toBe(false)
    expect(Backfill.matchesFilter(audit.filter, { event_type: null })).toBe(false)
  })
})
