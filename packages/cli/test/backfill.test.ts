/**
 * `strata backfill` end to end on SQLite and PostgreSQL: Ctrl-C (SIGINT) stops at a batch
 * boundary with exit 130 and the checkpoint saved; running again resumes and ends in exactly the
 * state of an uninterrupted run (values, job counters, rejects). Dry run writes nothing; `status
 * --json` reports exact counts.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import type * as LegacyData from "../src/demo/LegacyData.js"
import { expectedTargets, query, readTargets, seedLegacy } from "./support/legacy.js"
import { json, jsonLines, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const rows = 1200

/** A migrated legacy database with the demo's data, nothing backfilled. */
const migratedLegacy = async (engine: "sqlite" | "pg") => {
  const url = await newDatabase(engine)
  const tables = await seedLegacy(url, rows)
  const migrated = await strata(["migrate", "--db", url])
  expect(migrated.code, show(migrated)).toBe(0)
  return { url, tables }
}

const jobRows = (url: string) =>
  query(url, "SELECT job, cursor, processed, updated, rejected, state FROM strata_jobs ORDER BY job")

const rejectRows = (url: string) => query(url, "SELECT job, row_key, reason FROM strata_rejects ORDER BY job, row_key")

/**
 * Per column, what `status` must count after a complete backfill, from the generator's expectations:
 * nothing pending; a NULL left by a reject is rejected, any other NULL has no value (issue 10).
 */
const expectedColumnCounts = (tables: ReadonlyArray<LegacyData.Table>) => {
  const counts: Record<string, { migrated: number; pending: number; rejected: number; withoutValue: number }> = {}
  for (const table of tables) {
    for (const column of Object.keys(table.rows[0]!.expected)) {
      const extracted = column === "source_event_ts" || column === "supervisor_processed_at"
      const inScope = (row: LegacyData.Row) => !extracted || String(row.values["event_type"]).includes("SUPERVISOR")
      const job = extracted ? "task_audits.payload" : `${table.table}.${column}`
      const unset = table.rows.filter((r) => inScope(r) && r.expected[column] === null)
      const rejected = unset.filter((r) => r.rejectedBy.includes(job)).length
      counts[`${table.table}.${column}`] = {
        migrated: table.rows.filter((r) => inScope(r) && r.expected[column] !== null).length,
        pending: 0,
        rejected,
        withoutValue: unset.length - rejected
      }
    }
  }
  return counts
}

// Every test has its own database: the engines and cases run concurrently (each strata process mostly waits).
describe.concurrent("strata backfill", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("interrupted with SIGINT, then resumed, equals a one-shot run", async () => {
        const [oneShot, interrupted] = await Promise.all([migratedLegacy(engine.name), migratedLegacy(engine.name)])

        const full = await strata(["backfill", "--db", oneShot.url])
        expect(full.code, show(full)).toBe(0)
        expect(full.stdout).toMatch(/chat_messages\.created_at_ms +done +1,200\/1,200 rows {2}100\.0%/)
        expect(full.stdout).toContain("Backfill finished in ")
        expect(full.stdout).toContain("16 jobs, ")
        // Each job's deferred index is built when the job is done, and reported on its own line
        // (these tables are small: a plain build on PostgreSQL too, which the table's writes wait for).
        expect(full.stdout).toMatch(
          /chat_messages\.created_at_ms +indexed +idx_chat_messages_created_at_ms built: \d+ ms, writes to the table waited for it\n/
        )
        expect(full.stdout.match(/ indexed +idx_\w+ built: /g)).toHaveLength(11)

        // Small, paced batches so the run is still going when Ctrl-C arrives after its first batch.
        const stopped = await strata(["backfill", "--db", interrupted.url, "--json", "--batch-size", "20", "--pause-ms", "40"], {
          interruptWhen: (stdout) => stdout.includes("\"phase\":\"batch\"")
        })
        expect(stopped.code, show(stopped)).toBe(130)
        // With --json the interruption is one JSON object on stderr.
        expect(JSON.parse(stopped.stderr.trim().split("\n").at(-1)!)).toEqual({
          error: "Interrupted",
          message: "interrupted; every finished batch is saved. Run the same command again to resume where it stopped."
        })
        const events = jsonLines(stopped)
        expect(events.every((e) => e.type === "progress")).toBe(true)
        expect(events.some((e) => e.type === "result")).toBe(false)
        const saved = await jobRows(interrupted.url)
        expect(saved.length).toBeGreaterThan(0)
        expect(saved.some((j) => j["state"] !== "done")).toBe(true)
        expect(await readTargets(interrupted.url, interrupted.tables)).not.toEqual(expectedTargets(interrupted.tables))

        const resumed = await strata(["backfill", "--db", interrupted.url, "--json"])
        expect(resumed.code, show(resumed)).toBe(0)
        const summary = json(resumed, "backfill")
        expect(jsonLines(resumed).slice(0, -1).every((e) => e.type === "progress")).toBe(true)
        expect(summary.jobs).toHaveLength(16)
        // Each job's SQL fast path in this run: used, or none (a job already done, a column without one); never off here.
        const fastPaths = summary.jobs.map((j: Record<string, unknown>) => [j["outcome"], j["fastPath"]])
        expect(fastPaths.filter(([outcome, fast]: Array<unknown>) => fast !== "used" && fast !== "none" || (outcome === "alreadyDone" && fast !== "none"))).toEqual([])
        expect(fastPaths).toContainEqual(["completed", "used"])

        const expected = expectedTargets(oneShot.tables)
        expect(await readTargets(oneShot.url, oneShot.tables)).toEqual(expected)
        expect(await readTargets(interrupted.url, interrupted.tables)).toEqual(expected)
        expect(await jobRows(interrupted.url)).toEqual(await jobRows(oneShot.url))
        expect(await rejectRows(interrupted.url)).toEqual(await rejectRows(oneShot.url))

        const status = json(await strata(["status", "--db", interrupted.url, "--json"]))
        const counts = expectedColumnCounts(interrupted.tables)
        expect(status.columns).toHaveLength(17)
        for (const column of status.columns) {
          expect({
            column: `${column.table}.${column.column}`,
            migrated: column.migrated,
            pending: column.pending,
            rejected: column.rejected,
            withoutValue: column.withoutValue,
            jobState: column.jobState
          })
            .toEqual({ column: `${column.table}.${column.column}`, ...counts[`${column.table}.${column.column}`], jobState: "done" })
        }
        const messages = counts["chat_messages.created_at_ms"]!
        expect(status.columns.find((c: { table: string }) => c.table === "chat_messages")).toMatchObject({
          total: rows,
          percent: 100,
          label: "Complete",
          summary: `done, ${messages.rejected} rejected, ${messages.withoutValue} without a source value`
        })
      })

      it("--dry-run writes nothing", async () => {
        const { url, tables } = await migratedLegacy(engine.name)
        const before = await readTargets(url, tables)
        const result = await strata(["backfill", "--db", url, "--dry-run", "--job", "chat_messages.created_at_ms"])
        expect(result.code, show(result)).toBe(0)
        const messages = tables.find((t) => t.table === "chat_messages")!
        const convertible = messages.rows.filter((r) => r.expected["created_at_ms"] !== null).length
        const garbage = messages.rows.filter((r) => r.rejectedBy.length > 0).length
        expect(result.stdout).toContain(
          `Dry run finished in `
        )
        expect(result.stdout).toContain(`1 job, 1,200 rows walked, ${convertible.toLocaleString("en-US")} would be updated, ${garbage} rejected.`)
        expect(await readTargets(url, tables)).toEqual(before)
        const strataTables = await query<{ name: string }>(
          url,
          engine.name === "sqlite"
            ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'strata_%' ORDER BY name"
            : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE 'strata_%' ORDER BY table_name"
        )
        // No checkpoint either: the jobs table is not even created (migrate created strata_indexes for the deferred indexes).
        expect(strataTables.map((t) => t.name)).toEqual(["strata_demo", "strata_indexes", "strata_migrations"])
      })
    })
  }
})
