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
