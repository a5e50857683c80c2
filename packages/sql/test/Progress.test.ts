import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Plans, Progress as CoreProgress } from "@strata/core"
import { Effect, Layer, Option, Stream } from "effect"
import { chatMessageCases, createLegacyTables, insertFixture, presetTargets } from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, JobState, Migrator, Progress } from "../src/index.js"

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
        jobCounts: { processed: 0, updated: 0, rejected: 0, alreadySet: 0, outOfScope: 0 },
        total: 25,
        migrated: 0,
        pending: 24,
        rejected: 0,
        withoutValue: 1,
        percent: 0,
        label: "Just started",
        summary: "Just started"
      })

      yield* applyPlan(Plans.agentos)
      yield* presetTargets
      const before = yield* Progress.report()
      expect(row(before, "chat_messages.created_at_ms")).toEqual({
        source: "created_at",
        applied: true,
        jobState: "notStarted",
        jobCounts: { processed: 0, updated: 0, rejected: 0, alreadySet: 0, outOfScope: 0 },
        total: 25,
        migrated: 3,
        pending: 21,
        rejected: 0,
        withoutValue: 1,
        percent: 12.5,
        label: "Just started",
        summary: "Just started"
      })
      expect(row(before, "task_audits.source_event_ts")).toMatchObject({ source: "payload, created_at", total: 21, migrated: 1, pending: 20 })

      const runner = yield* BackfillRunner.BackfillRunner
      yield* runner.run({ jobs: ["chat_messages.created_at_ms"], batchSize: 10, fixedBatchSize: true })
      const after = yield* Progress.report()
      // Issue 10: the 7 rows that cannot be converted and the one without a source are not pending
      // (they read "In progress" at 70.8% forever before); every row is in one count: 17 + 0 + 7 + 1 = 25.
      expect(row(after, "chat_messages.created_at_ms")).toEqual({
        source: "created_at",
        applied: true,
        jobState: "done",
        // The run's own counts: m16..m18 were preset, m10 has no source, 7 rejected, 14 written.
        jobCounts: { processed: 25, updated: 14, rejected: 7, alreadySet: 3, outOfScope: 1 },
        total: 25,
        migrated: 17,
        pending: 0,
        rejected: 7,
        withoutValue: 1,
        percent: 100,
        label: "Complete",
        summary: "done, 7 rejected, 1 without a source value"
      })

      yield* runner.run()
      const done = yield* Progress.report()
      expect(row(done, "task_audits.source_event_ts")).toEqual({
        source: "payload, created_at",
        applied: true,
        jobState: "done",
        // 23 rows walked: 2 outside the filter and audit 17 with nothing to extract, 9 rejected, 11 written.
        jobCounts: { processed: 23, updated: 11, rejected: 9, alreadySet: 0, outOfScope: 3 },
        total: 21,
        migrated: 11,
        pending: 0,
        rejected: 9,
        withoutValue: 1,
        percent: 100,
        label: "Complete",
        summary: "done, 9 rejected, 1 without a source value"
      })
      expect(row(done, "task_agents.ended_at_ms")).toMatchObject({
        total: 2,
        migrated: 1,
        pending: 0,
        withoutValue: 1,
        percent: 100,
        label: "Complete",
        summary: "done, 1 without a source value"
      })
      expect(row(done, "chat_sessions.updated_at_ms")).toMatchObject({
        total: 2,
        migrated: 1,
        pending: 0,
        rejected: 1,
        withoutValue: 0,
        label: "Complete",
        summary: "done, 1 rejected"
      })
      expect(row(done, "schema_version.applied_at_ms")).toMatchObject({ total: 2, migrated: 2, pending: 0, label: "Complete", summary: "Complete" })
      expect(done.columns.every((c) => c.migrated + c.pending + c.rejected + c.withoutValue === c.total)).toBe(true)
      expect([done.migrated, done.pending, done.rejected, done.withoutValue, done.percent, done.label]).toEqual([
        done.columns.reduce((s, c) => s + c.migrated, 0),
        0,
        done.columns.reduce((s, c) => s + c.rejected, 0),
        done.columns.reduce((s, c) => s + c.withoutValue, 0),
        100,
        "Complete"
      ])
    }).pipe(Effect.provide(database())))

  it.effect("during a run, pending is the rows the job's cursor has not reached; a row it passed is rejected or has no value", () =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* insertFixture
      yield* applyPlan(Plans.agentos)
      yield* presetTargets
      const job = "chat_messages.created_at_ms"
      // Stop the run after its first batch of 5 (the runner may finish a batch or more first).
      yield* BackfillRunner.stream({ jobs: [job], batchSize: 5, fixedBatchSize: true }).pipe(
        Stream.takeUntil((event) => event.phase === "batch"),
        Stream.runDrain
      )
      const checkpoint = Option.getOrThrow(yield* JobState.loadCheckpoint(job))
      const reached = JobState.decodeKeyCursor(checkpoint.cursor!) as string
      // What each fixture row must count as, from its hand-written expectation and whether the cursor passed it.
      const expected = { migrated: 0, pending: 0, rejected: 0, withoutValue: 0 }
      for (const c of chatMessageCases) {
        const passed = c.key <= reached
        if (c.preset !== undefined || (passed && typeof c.expected === "number")) expected.migrated++
        else if (c.source === null || (passed && c.expected === null)) expected.withoutValue++
        else if (passed) expected.rejected++
        else expected.pending++
      }
      const report = yield* Progress.report({ jobs: [job] })
      expect(report.columns.map((c) => [c.jobState, c.total, c.migrated, c.pending, c.rejected, c.withoutValue])).toEqual([
        [checkpoint.state, 25, expected.migrated, expected.pending, expected.rejected, expected.withoutValue]
      ])
      expect(report.columns[0]!.percent).toBe(CoreProgress.roundedPercent(expected.migrated, expected.migrated + expected.pending))
      expect([report.migrated, report.pending, report.rejected, report.withoutValue]).toEqual([
        expected.migrated,
        expected.pending,
        expected.rejected,
        expected.withoutValue
      ])
      const unknown = yield* Effect.flip(Progress.report({ jobs: ["nope"] }))
      expect(unknown).toMatchObject({ _tag: "UnknownJob", job: "nope" })
    }).pipe(Effect.provide(database())))

  it.effect("rows added after a finished job are pending (ahead of its cursor), unless they have no source value", () =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* insertFixture
      yield* applyPlan(Plans.agentos)
      yield* presetTargets
      const job = "chat_messages.created_at_ms"
      yield* BackfillRunner.run({ jobs: [job] })
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO chat_messages (message_id, session_id, role, content, created_at) VALUES
        ('m26', 's1', 'user', 'hi', '2024-01-15 12:00:00'), ('m27', 's1', 'user', 'hi', 'garbage'), ('m28', 's1', 'user', 'hi', NULL)`
      const report = yield* Progress.report({ jobs: [job] })
      expect(report.columns.map((c) => [c.jobState, c.total, c.migrated, c.pending, c.rejected, c.withoutValue, c.percent, c.label, c.summary]))
        .toEqual([["done", 28, 17, 2, 7, 2, 89.4, "Almost done", "Almost done"]])
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
        jobCounts: { processed: 0, updated: 0, rejected: 0, alreadySet: 0, outOfScope: 0 },
        total: 0,
        migrated: 0,
        pending: 0,
        rejected: 0,
        withoutValue: 0,
        percent: 0,
        label: "Just started",
        summary: "Just started"
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
      // 2 of 17 columns, rounded down to one decimal (11.76470588235294 before issue 10).
      expect([before.migrated, before.pending, before.percent, before.label]).toEqual([0, 0, 11.7, "Just started"])

      yield* applyPlan(Plans.agentos)
      const after = yield* Progress.report()
      expect(after.columns.every((c) => c.applied && c.percent === 100 && c.label === "Complete")).toBe(true)
      expect([after.percent, after.label]).toEqual([100, "Complete"])
    }).pipe(Effect.provide(database())))
})
