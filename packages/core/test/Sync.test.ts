import { describe, expect, it } from "@effect/vitest"
import { Compile, Plan } from "@strata/core"
import { Either } from "effect"

const shadow = (options: { readonly sync?: "trigger" } = {}) =>
  Plan.migration(2, "shadow", [Plan.epochShadow("app.events", "created_at", options)])

const thrown = (f: () => unknown): Plan.InvalidPlan => {
  try {
    f()
  } catch (error) {
    return error as Plan.InvalidPlan
  }
  throw new Error("expected InvalidPlan")
}

describe("sync: \"trigger\"", () => {
  it("compiles to re-runnable trigger DDL after the columns, named from the step in the table's schema", () => {
    const sqlite = Compile.statements(shadow({ sync: "trigger" }), "sqlite").map((s) => s.sql.split("\n")[0])
    expect(sqlite).toEqual([
      `ALTER TABLE "app"."events" ADD COLUMN "created_at_ms" INTEGER`,
      `CREATE TRIGGER IF NOT EXISTS "app"."strata_sync_events_created_at_ms_insert" AFTER INSERT ON "events"`,
      `CREATE TRIGGER IF NOT EXISTS "app"."strata_sync_events_created_at_ms_update" AFTER UPDATE OF "created_at" ON "events"`
    ])
    const pg = Compile.statements(shadow({ sync: "trigger" }), "pg").map((s) => s.sql.split("\n")[0])
    expect(pg).toEqual([
      `ALTER TABLE "app"."events" ADD COLUMN IF NOT EXISTS "created_at_ms" BIGINT`,
      `CREATE OR REPLACE FUNCTION "app"."strata_sync_events_created_at_ms"() RETURNS trigger LANGUAGE plpgsql AS $strata_sync$`,
      `DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms" ON "app"."events"`,
      `CREATE TRIGGER "strata_sync_events_created_at_ms" BEFORE INSERT OR UPDATE OF "created_at" ON "app"."events" FOR EACH ROW EXECUTE FUNCTION "app"."strata_sync_events_created_at_ms"()`
    ])
    expect(Compile.statements(shadow(), "pg").map((s) => s.sql)).toEqual([pg[0]])
  })

  it("is part of the checksum only when present", () => {
    // Pinned: a plan without the option keeps the checksum it had before the option existed.
    expect(Compile.checksum(shadow())).toBe("514a65fc359cf2df")
    expect(Compile.checksum(shadow({ sync: "trigger" }))).not.toBe(Compile.checksum(shadow()))
  })

  it("round-trips through a JSON plan", () => {
    const plan = Plan.make("p", [
      Plan.migration(1, "derive", [
        Plan.derive("people", {
          reads: ["email"],
          targets: [{ column: "email_lower", type: "text", from: "email", apply: ["lower"] }],
          sql: { sqlite: { email_lower: "lower(email)" }, postgresql: { email_lower: "lower(email)" } },
          sync: "trigger"
        })
      ]),
      shadow({ sync: "trigger" })
    ])
    const json = JSON.stringify(Plan.toJson(plan))
    const decoded = Either.getOrThrow(Plan.fromJson(json))
    expect(decoded.migrations.map(Compile.checksum)).toEqual(plan.migrations.map(Compile.checksum))
    expect(decoded.migrations.map((m) => m.steps.map((s) => ("sync" in s ? s.sync : undefined)))).toEqual([["trigger"], ["trigger"]])
  })

  it("on a derive needs a SQL expression for every target on both engines", () => {
    const error = thrown(() =>
      Plan.derive("people", {
        reads: ["email"],
        targets: [{ column: "email_lower", type: "text", from: "email", apply: ["lower"] }, { column: "email_copy", type: "text", from: "email" }],
        sql: { sqlite: { email_lower: "lower(email)", email_copy: "email" }, postgresql: { email_lower: "lower(email)" } },
        sync: "trigger"
      })
    )
    expect(error.message).toBe(
      `invalid plan in Plan.derive: at sync: sync: "trigger" computes every target in SQL on both engines; missing sql.postgresql.email_copy`
    )
    expect(Either.getLeft(Plan.fromJson(JSON.stringify({
      name: "p",
      migrations: [{ id: 1, name: "m", steps: [{ _tag: "EpochShadow", table: "t", column: "c", sync: "always" }] }]
    }))).pipe((e) => e._tag === "Some" ? e.value.message : "")).toBe(
      `invalid plan in plan: at migrations[0].steps[0].sync: Expected "trigger", actual "always"`
    )
  })
})

describe("Plan.contract", () => {
  const events = Plan.createTable("events", [{ name: "id", type: "integer", primaryKey: true }, { name: "created_at", type: "timestamp_text" }])
  const contractPlan = (jobs: ReadonlyArray<string>) =>
    Plan.make("p", [
      Plan.migration(1, "events", [events]),
      Plan.migration(2, "shadow", [Plan.epochShadow("events", "created_at", { sync: "trigger" })]),
      Plan.migration(3, "contract", [Plan.contract({ jobs, dropSyncTrigger: true, notNull: true, dropSource: true })])
    ])

  it("round-trips through a JSON plan with its checksum", () => {
    const plan = contractPlan(["events.created_at_ms"])
    const decoded = Either.getOrThrow(Plan.fromJson(JSON.stringify(Plan.toJson(plan))))
    expect(decoded.migrations[2]!.steps).toEqual(plan.migrations[2]!.steps)
    expect(decoded.migrations.map(Compile.checksum)).toEqual(plan.migrations.map(Compile.checksum))
    expect(Plan.toJson(plan)).toMatchObject({
      migrations: [{}, {}, { steps: [{ _tag: "Contract", jobs: ["events.created_at_ms"], dropSyncTrigger: true, notNull: true, dropSource: true }] }]
    })
  })

  it("compiles, with its plan, to: drop the trigger, NOT NULL through a validated CHECK (PostgreSQL) or refusing triggers (SQLite), drop the source", () => {
    const plan = contractPlan(["events.created_at_ms"])
    expect(Compile.statements(plan.migrations[2]!, "pg", plan).map((s) => s.sql)).toEqual([
      `DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms" ON "events"`,
      `DROP FUNCTION IF EXISTS "strata_sync_events_created_at_ms"()`,
      `ALTER TABLE "events" DROP CONSTRAINT IF EXISTS "strata_nn_events_created_at_ms"`,
      `ALTER TABLE "events" ADD CONSTRAINT "strata_nn_events_created_at_ms" CHECK ("created_at_ms" IS NOT NULL) NOT VALID`,
      `ALTER TABLE "events" VALIDATE CONSTRAINT "strata_nn_events_created_at_ms"`,
      `ALTER TABLE "events" ALTER COLUMN "created_at_ms" SET NOT NULL`,
      `ALTER TABLE "events" DROP CONSTRAINT IF EXISTS "strata_nn_events_created_at_ms"`,
      `ALTER TABLE "events" DROP COLUMN IF EXISTS "created_at"`
    ])
    // The Migrator's split on PostgreSQL: the CHECK added NOT VALID in the transaction, validated after it commits.
    expect(Compile.transactionStatements(plan.migrations[2]!, "pg", plan).map((s) => s.sql)).toEqual([
      `ALTER TABLE "events" DROP CONSTRAINT IF EXISTS "strata_nn_events_created_at_ms"`,
      `ALTER TABLE "events" ADD CONSTRAINT "strata_nn_events_created_at_ms" CHECK ("created_at_ms" IS NOT NULL) NOT VALID`
    ])
    // The trigger and the source are dropped with the NOT NULL's finish, once existing rows have proved it
    // (until then the trigger fills the target of rows old app versions insert, which the NOT VALID CHECK checks).
    expect(Compile.constraintValidations(plan.migrations[2]!, "pg", plan)).toEqual([{
      kind: "notNull",
      table: "events",
      column: "created_at_ms",
      name: "strata_nn_events_created_at_ms",
      add: [
        `ALTER TABLE "events" DROP CONSTRAINT IF EXISTS "strata_nn_events_created_at_ms"`,
        `ALTER TABLE "events" ADD CONSTRAINT "strata_nn_events_created_at_ms" CHECK ("created_at_ms" IS NOT NULL) NOT VALID`
      ],
      validate: `ALTER TABLE "events" VALIDATE CONSTRAINT "strata_nn_events_created_at_ms"`,
      finish: [
        `ALTER TABLE "events" ALTER COLUMN "created_at_ms" SET NOT NULL`,
        `ALTER TABLE "events" DROP CONSTRAINT IF EXISTS "strata_nn_events_created_at_ms"`,
        `DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms" ON "events"`,
        `DROP FUNCTION IF EXISTS "strata_sync_events_created_at_ms"()`,
        `ALTER TABLE "events" DROP COLUMN IF EXISTS "created_at"`
      ]
    }])
    // SQLite has no constraint phase: its statements all run in the transaction.
    expect(Compile.constraintValidations(plan.migrations[2]!, "sqlite", plan)).toEqual([])
    expect(Compile.transactionStatements(plan.migrations[2]!, "sqlite", plan)).toEqual(Compile.statements(plan.migrations[2]!, "sqlite", plan))
    expect(Compile.statements(plan.migrations[2]!, "sqlite", plan).map((s) => s.sql)).toEqual([
      `DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms_insert"`,
      `DROP TRIGGER IF EXISTS "strata_sync_events_created_at_ms_update"`,
      `CREATE TRIGGER IF NOT EXISTS "strata_nn_events_created_at_ms_insert" BEFORE INSERT ON "events" WHEN NEW."created_at_ms" IS NULL BEGIN SELECT RAISE(ABORT, 'NOT NULL constraint failed: events.created_at_ms'); END`,
      `CREATE TRIGGER IF NOT EXISTS "strata_nn_events_created_at_ms_update" BEFORE UPDATE OF "created_at_ms" ON "events" WHEN NEW."created_at_ms" IS NULL BEGIN SELECT RAISE(ABORT, 'NOT NULL constraint failed: events.created_at_ms'); END`,
      `UPDATE "events" SET "created_at_ms" = "created_at_ms" WHERE "created_at_ms" IS NULL`,
      `ALTER TABLE "events" DROP COLUMN "created_at"`
    ])
  })

  it("names jobs of earlier migrations and at least one action, or InvalidPlan says where", () => {
    expect(thrown(() => contractPlan(["events.created_at"])).message).toBe(
      `invalid plan in Plan.make: at migrations[2].steps[0].jobs[0]: "events.created_at" is not a backfill job of an earlier migration (events.created_at_ms)`
    )
    expect(thrown(() =>
      Plan.make("p", [
        Plan.migration(1, "events", [events]),
        Plan.migration(2, "both", [
          Plan.contract({ jobs: ["events.created_at_ms"], notNull: true }),
          Plan.epochShadow("events", "created_at")
        ])
      ])
    ).message).toBe(
      `invalid plan in Plan.make: at migrations[1].steps[0].jobs[0]: "events.created_at_ms" is not a backfill job of an earlier migration (there is none)`
    )
    expect(thrown(() => Plan.contract({ jobs: ["x"] })).message).toBe(
      "invalid plan in Plan.contract: at (root): a contract step needs at least one action: dropSyncTrigger, notNull or dropSource"
    )
    expect(thrown(() => Plan.contract({ jobs: [] })).message).toContain("at jobs")
  })
})
