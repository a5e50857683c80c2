import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Plans } from "@strata/core"
import { Effect, Layer } from "effect"
import { createLegacyTables, insertFixture, presetTargets } from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, Migrator, Progress } from "../src/index.js"

const applyPlan = (plan: Plan.Plan) => Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())

const row = (report: Progress.ProgressReport, column: string) => {
  const found = report.columns.find((c) => `${c.table}.${c.column}` === column)
  if (found === undefined) throw new Error(`no column ${column}`)
  const { job: _job, table: _table, column: _column, ...rest } = found
  return rest
}

describeEachEngine("Progress.report", (engine) => {
  const database = () =>
    Layer.mergeAll(BackfillRunner.layer(Plans.agentos), Progress.layer(Plans.agentos)).pipe(Layer.provideMerge(engine.layer()))

  it.effect("per column counts before, during and after the backfill, with seed 000's labels", () =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* insertFixture
      yield* applyPlan(Plan.upTo(Plans.agentos, 21))

      const notApplied = yield* Progress.report()
      expect(notApplied.columns).toHaveLength(17)
      expect(row(notApplied, "chat_messages.created_at_ms")).toEqual({
        source: "created_at",
        applied: false,
        jobState: "notStarted",
        total: 25,
        migrated: 0,
        pending: 24,
        rejected: 0,
        percent: 0,
        label: "Just started"
      })

      yield* applyPlan(Plans.agentos)
      yield* presetTargets
      const before = yield* Progress.report()
      expect(row(before, "chat_messages.created_at_ms")).toEqual({
        source: "created_at",
        applied: true,
        jobState: "notStarted",
        total: 25,
        migrated: 3,
        pending: 21,
        rejected: 0,
        percent: 12.5,
        label: "Just started"
      })
      expect(row(before, "task_audits.source_event_ts")).toMatchObject({ source: "payload, created_at", total: 21, migrated: 1, pending: 20 })

      const runner = yield* BackfillRunner.BackfillRunner
      yield* runner.run({ jobs: ["chat_messages.created_at_ms"], batchSize: 10, fixedBatchSize: true })
      const after = yield* Progress.report()
      // The 7 rows that cannot be converted stay pending: the report does not pretend they are done.
      expect(row(after, "chat_messages.created_at_ms")).toEqual({
        source: "created_at",
        applied: true,
        jobState: "done",
        total: 25,
        migrated: 17,
        pending: 7,
        rejected: 7,
        percent: (17 / 24) * 100,
        label: "In progress"
      })

      yield* runner.run()
      const done = yield* Progress.report()
      expect(row(done, "task_audits.source_event_ts")).toEqual({
        source: "payload, created_at",
        applied: true,
        jobState: "done",
        total: 21,
        migrated: 11,
        pending: 10,
        rejected: 9,
        percent: (11 / 21) * 100,
        label: "In progress"
      })
      expect(row(done, "task_agents.ended_at_ms")).toMatchObject({ total: 2, migrated: 1, pending: 0, percent: 100, label: "Complete" })
      expect(row(done, "chat_sessions.updated_at_ms")).toMatchObject({ total: 2, migrated: 1, pending: 1, rejected: 1, label: "In progress" })
      expect(row(done, "schema_version.applied_at_ms")).toMatchObject({ total: 2, migrated: 2, pending: 0, label: "Complete" })
      expect([done.migrated, done.pending]).toEqual([
        done.columns.reduce((s, c) => s + c.migrated, 0),
        done.columns.reduce((s, c) => s + c.pending, 0)
      ])
    }).pipe(Effect.provide(database())))

  it.effect("a column whose table does not exist yet is not applied: 0%, Just started, never Complete", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE unrelated (id INTEGER PRIMARY KEY)`
      const report = yield* Progress.report()
      expect(row(report, "tasks.created_at_ms")).toEqual({
        source: "created_at",
        applied: false,
        jobState: "notStarted",
        total: 0,
        migrated: 0,
        pending: 0,
        rejected: 0,
        percent: 0,
        label: "Just started"
      })
      expect([report.migrated, report.pending, report.percent, report.label]).toEqual([0, 0, 0, "Just started"])
    }).pipe(Effect.provide(database())))

  it.effect("empty tables: Just started until the columns are added, Complete once they are", () =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* applyPlan(Plan.upTo(Plans.agentos, 21))
      const before = yield* Progress.report()
      // Migration 21's two columns are applied (and have nothing to do); migration 44's 15 are not.
      expect(before.columns.map((c) => [c.applied, c.percent, c.label])).toEqual(
        before.columns.map((c) => ["source_event_ts", "supervisor_processed_at"].includes(c.column) ? [true, 100, "Complete"] : [false, 0, "Just started"])
      )
      expect(before.columns.filter((c) => c.applied)).toHaveLength(2)
      expect(row(before, "tasks.created_at_ms")).toMatchObject({ applied: false, total: 0, pending: 0, percent: 0, label: "Just started" })
      expect([before.migrated, before.pending, before.percent, before.label]).toEqual([0, 0, (2 / 17) * 100, "Just started"])

      yield* applyPlan(Plans.agentos)
      const after = yield* Progress.report()
      expect(after.columns.every((c) => c.applied && c.percent === 100 && c.label === "Complete")).toBe(true)
      expect([after.percent, after.label]).toEqual([100, "Complete"])
    }).pipe(Effect.provide(database())))
})
