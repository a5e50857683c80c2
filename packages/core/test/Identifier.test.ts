import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { Compile, Identifier, Plan } from "../src/index.js"

describe("Identifier.TableName", () => {
  it("accepts a table or schema.table, each part an identifier, and nothing else", () => {
    for (const good of ["messages", "app.messages", "_a._b9"]) {
      expect(Either.isRight(Identifier.decodeTableName(good)), good).toBe(true)
    }
    for (const bad of ["a.b.c", ".a", "a.", "a..b", "a.b;c", "a b.c", "\"a\".b", "9a.b", `a.${"x".repeat(64)}`, ""]) {
      const decoded = Identifier.decodeTableName(bad)
      expect(Either.isLeft(decoded), bad).toBe(true)
    }
  })

  it("splits and quotes each part on its own", () => {
    const qualified = Identifier.decodeTableName("app.messages").pipe(Either.getOrThrow)
    const plain = Identifier.decodeTableName("messages").pipe(Either.getOrThrow)
    expect(Identifier.tableParts(qualified)).toEqual({ schema: "app", table: "messages" })
    expect(Identifier.tableParts(plain)).toEqual({ schema: undefined, table: "messages" })
    expect(Identifier.quoteTable(qualified)).toBe(`"app"."messages"`)
    expect(Identifier.quoteTable(plain)).toBe(`"messages"`)
    expect(Identifier.qualify("app" as Identifier.Identifier, "strata_jobs" as Identifier.Identifier)).toBe("app.strata_jobs")
    expect(Identifier.qualify(undefined, "strata_jobs" as Identifier.Identifier)).toBe("strata_jobs")
  })

  it("plans name schema-qualified tables; DDL quotes them per engine and names indexes after the table alone", () => {
    const migration = Plan.migration(1, "app schema", [
      Plan.createTable("app.messages", [{ name: "id", type: "integer", primaryKey: true }, { name: "sent_at", type: "timestamp_text" }]),
      Plan.epochShadow("app.messages", "sent_at", { index: true })
    ])
    expect(Compile.statements(migration, "pg").map((s) => s.sql)).toEqual([
      `CREATE TABLE IF NOT EXISTS "app"."messages" (\n  "id" INTEGER PRIMARY KEY,\n  "sent_at" TEXT\n)`,
      `ALTER TABLE "app"."messages" ADD COLUMN IF NOT EXISTS "sent_at_ms" BIGINT`,
      `CREATE INDEX IF NOT EXISTS "idx_messages_sent_at_ms" ON "app"."messages" ("sent_at_ms" DESC)`
    ])
    const sqlite = Compile.statements(migration, "sqlite").map((s) => s.sql)
    expect(sqlite[2]).toBe(`CREATE INDEX IF NOT EXISTS "app"."idx_messages_sent_at_ms" ON "messages" ("sent_at_ms" DESC)`)
    expect(() => Plan.epochShadow("a.b.c", "x")).toThrow(/expected a table name/)
  })
})
