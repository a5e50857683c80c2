/**
 * Issue 10: `strata status` (text and JSON), `Progress.report` and `strata verify` / `Verifier.report`
 * agree on a finished backfill that has rejects and NULL sources, on SQLite and PostgreSQL: per
 * column the same rows migrated, pending (none), rejected and without a source value, counted once
 * from the job's cursor and `strata_rejects` and once by recomputing every row. Percentages have one
 * decimal in both outputs.
 */
import { describe, expect, it } from "@effect/vitest"
import { Plans } from "@strata/core"
import { BackfillRunner, Migrator, Progress, Verifier } from "@strata/sql"
import { Effect, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import { afterAll } from "vitest"
import { chatMessageCases, createLegacyTables, insertFixture } from "../../../test/fixtures/agentosLegacy.js"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { withDatabase } from "./support/legacy.js"
import { json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

/** The cells of the text table's line for `column` (cells are separated by two or more spaces). */
const cells = (stdout: string, column: string): ReadonlyArray<string> => {
  const line = stdout.split("\n").find((l) => l.startsWith(`${column} `))
  if (line === undefined) throw new Error(`no line for ${column} in:\n${stdout}`)
  return line.trim().split(/\s{2,}/)
}

// The fixture's chat messages, by hand. No presets are written here, so m16 and m17 take what their
// source gives and m18 ("garbage") is rejected like the others whose text does not parse; m10 has no source.
const unparsable = (c: (typeof chatMessageCases)[number]) => c.expected === "reject" || c.key === "m18"
const messages = {
  migrated: chatMessageCases.filter((c) => c.source !== null && !unparsable(c)).length,
  rejected: chatMessageCases.filter(unparsable).length,
  withoutValue: chatMessageCases.filter((c) => c.source === null).length
}

const reports = Layer.mergeAll(Progress.layer(Plans.agentos), Verifier.layer(Plans.agentos))

describe.concurrent("status, Progress.report and verify agree", () => {
  for (const engine of engines) {
    it(`on a finished backfill with rejects and NULL sources, and percentages with one decimal [${engine.name}]`, async () => {
      const url = await newDatabase(engine.name)
      const backfill = (jobs?: ReadonlyArray<string>) =>
        withDatabase(
          url,
          BackfillRunner.run({ jobs }).pipe(
            Effect.provide(BackfillRunner.layer(Plans.agentos)),
            Logger.withMinimumLogLevel(LogLevel.Warning)
          )
        )
      await withDatabase(url, Effect.gen(function*() {
        yield* createLegacyTables
        yield* insertFixture
        yield* Migrator.run().pipe(Effect.provide(Migrator.layer(Plans.agentos)))
      }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))

      // Partly backfilled: the overall percent has one decimal in JSON and in text.
      await backfill(["chat_messages.created_at_ms", "task_audits.payload"])
      const partJson = json(await strata(["status", "--db", url, "--json"]), "status")
      const partText = await strata(["status", "--db", url])
      expect(partJson.pending).toBeGreaterThan(0)
      expect(partJson.percent).toBe(Math.floor((partJson.migrated * 1000) / (partJson.migrated + partJson.pending)) / 10)
      expect(String(partJson.percent)).toMatch(/^\d+(\.\d)?$/)
      expect(partText.stdout).toContain(`(${partJson.percent.toFixed(1)}%, ${partJson.label}).`)
      for (const column of partJson.columns) expect(String(column.percent)).toMatch(/^\d+(\.\d)?$/)

      await backfill()
      const statusJson = json(await strata(["status", "--db", url, "--json"]), "status")
      const statusText = await strata(["status", "--db", url])
      expect(statusText.code, show(statusText)).toBe(0)
      const verifyJsonRun = await strata(["verify", "--db", url, "--json"])
      const verifyJson = json(verifyJsonRun, "verify")
      const verifyText = await strata(["verify", "--db", url])
      const api = await withDatabase(
        url,
        Effect.all({ progress: Progress.report(), verification: Verifier.report() }).pipe(Effect.provide(reports))
      )
      expect(statusJson.columns).toEqual(api.progress.columns)
      expect([statusJson.migrated, statusJson.pending, statusJson.rejected, statusJson.withoutValue, statusJson.percent, statusJson.label])
        .toEqual([api.progress.migrated, api.progress.pending, api.progress.rejected, api.progress.withoutValue, api.progress.percent, api.progress.label])
      expect(verifyJson.columns).toEqual(api.verification.columns)
      expect(verifyJsonRun.code).toBe(verifyText.code)

      // Exact, for the fixture's chat messages: 16 + 0 + 8 + 1 = 25.
      expect(messages).toEqual({ migrated: 16, rejected: 8, withoutValue: 1 })
      const progressOf = (table: string, column: string) => api.progress.columns.find((c) => c.table === table && c.column === column)!
      const verifiedOf = (table: string, column: string) => api.verification.columns.find((c) => c.table === table && c.column === column)!
      expect(progressOf("chat_messages", "created_at_ms")).toMatchObject({
        jobState: "done",
        total: 25,
        ...messages,
        pending: 0,
        percent: 100,
        label: "Complete",
        summary: "done, 8 rejected, 1 without a source value"
      })
      expect(verifiedOf("chat_messages", "created_at_ms")).toEqual({
        job: "chat_messages.created_at_ms",
        table: "chat_messages",
        column: "created_at_ms",
        rows: 25,
        migrated: 16,
        missing: 0,
        unconvertible: 8,
        withoutValue: 1
      })

      // Every column: the cursor's count and the recomputation's count are the same numbers, in both outputs.
      expect(api.progress.columns).toHaveLength(17)
      for (const p of api.progress.columns) {
        const v = verifiedOf(p.table, p.column)
        const name = `${p.table}.${p.column}`
        expect({ name, rows: v.rows, migrated: v.migrated, pending: v.missing, rejected: v.unconvertible, withoutValue: v.withoutValue })
          .toEqual({ name, rows: p.total, migrated: p.migrated, pending: p.pending, rejected: p.rejected, withoutValue: p.withoutValue })
        expect(p.pending).toBe(0)
        expect(p.summary).toBe(
          p.rejected + p.withoutValue === 0
            ? "Complete"
            : ["done", ...(p.rejected > 0 ? [`${p.rejected} rejected`] : []), ...(p.withoutValue > 0 ? [`${p.withoutValue} without a source value`] : [])].join(", ")
        )
        // status: COLUMN FROM BACKFILL MIGRATED PENDING REJECTED NO VALUE DONE STATUS
        expect(cells(statusText.stdout, name).slice(2)).toEqual(["done", String(p.migrated), "0", String(p.rejected), String(p.withoutValue), "100.0%", p.summary])
        // verify: COLUMN RESULT MIGRATED MISSING UNCONVERTIBLE NO VALUE ...
        expect(cells(verifyText.stdout, name).slice(2, 6)).toEqual([String(v.migrated), "0", String(v.unconvertible), String(v.withoutValue)])
      }
      expect(statusText.stdout).toContain(
        `Columns: ${api.progress.migrated} rows migrated, 0 pending, ${api.progress.rejected} rejected, ${api.progress.withoutValue} without a source value (100.0%, Complete).`
      )
    })
  }
})
