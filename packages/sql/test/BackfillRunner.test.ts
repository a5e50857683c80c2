import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Plans, Timestamp } from "@strata/core"
import { Chunk, Duration, Effect, Either, FastCheck as fc, Layer, Option, Stream } from "effect"
import {
  auditCases,
  chatMessageCases,
  createLegacyTables,
  expectedRejects,
  expectedState,
  insertFixture,
  insertGenerated,
  NOON,
  presetTargets,
  readEverything,
  readState
} from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, Migrator } from "../src/index.js"
import * as JobState from "../src/JobState.js"

const applyPlan = (plan: Plan.Plan) => Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())

/** Legacy tables with the fixed fixture, the agentos migrations applied, preset targets written. */
const fixtureDatabase = Effect.gen(function*() {
  yield* createLegacyTables
  yield* insertFixture
  yield* applyPlan(Plans.agentos)
  yield* presetTargets
})

const rejectsTable = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ job: string; row_key: string }>`SELECT job, row_key FROM strata_rejects`
  return rows.map((r) => `${r.job} ${r.row_key}`).sort()
})

const tableExists = (name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.onDialectOrElse({
      pg: () => sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_tables WHERE tablename = ${name} AND schemaname = current_schema()`,
      orElse: () => sql<{ n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ${name}`
    })
    return Number(rows[0]?.n) > 0
  })

const chatJob = "chat_messages.created_at_ms"
const auditJob = "task_audits.payload"

describeEachEngine("BackfillRunner", (engine) => {
  const database = (plan: Plan.Plan = Plans.agentos) => BackfillRunner.layer(plan).pipe(Layer.provideMerge(engine.layer()))

  it.effect("backfills the agentos plan on legacy data to exactly the expected values, never overwriting", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const summaries = yield* runner.run({ batchSize: 4, fixedBatchSize: true })
      expect(yield* readState).toEqual(expectedState())
      expect(yield* rejectsTable).toEqual(expectedRejects)

      const byJob = Object.fromEntries(summaries.map((s) => [s.job, s]))
      expect(summaries.map((s) => s.job)).toEqual([
        "task_audits.payload",
        "chat_sessions.created_at_ms",
        "chat_sessions.updated_at_ms",
        "chat_messages.created_at_ms",
        "tasks.created_at_ms",
        "tasks.updated_at_ms",
        "task_lineage.created_at_ms",
        "task_agents.started_at_ms",
        "task_agents.ended_at_ms",
        "task_audits.created_at_ms",
        "projects.added_at_ms",
        "runs.started_at_ms",
        "runs.completed_at_ms",
        "runs.lease_until_ms",
        "artifacts.created_at_ms",
        "schema_version.applied_at_ms"
      ])
      expect(summaries.every((s) => s.outcome === "completed")).toBe(true)
      // 25 messages: 7 rejects, m10 NULL (nothing to do), m16-m18 preset (not pending): 14 written.
      expect(byJob[chatJob]).toMatchObject({ processed: 25, updated: 14, rejected: 7, alreadySet: 3, outOfScope: 1, batches: 7 })
      // 23 audits: 9 rejects; 15, 16 filtered out; 17 nothing found; 11 written (18 only its second column).
      expect(byJob[auditJob]).toMatchObject({ processed: 23, updated: 11, rejected: 9, alreadySet: 0, outOfScope: 3, batches: 6 })
      expect(byJob["task_audits.created_at_ms"]).toMatchObject({ processed: 23, updated: 18, rejected: 3 })
      expect(byJob["chat_sessions.updated_at_ms"]).toMatchObject({ processed: 2, updated: 1, rejected: 1 })
      expect(byJob["task_agents.ended_at_ms"]).toMatchObject({ processed: 2, updated: 1, rejected: 0 })

      const checkpoint = yield* JobState.loadCheckpoint(chatJob)
      expect(Option.map(checkpoint, (c) => [c.cursor, c.processed, c.updated, c.rejected, c.alreadySet, c.outOfScope, c.state])).toEqual(
        Option.some(["t:m25", 25, 14, 7, 3, 1, "done"])
      )
      // Every job's walked rows are accounted for.
      expect(summaries.filter((s) => s.processed !== s.updated + s.rejected + s.alreadySet + s.outOfScope)).toEqual([])
    }).pipe(Effect.provide(database())))

  it.effect("records why each row was rejected", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      yield* runner.run({ jobs: [chatJob, auditJob] })
      const reasons = Object.fromEntries(
        [...(yield* JobState.loadRejects(chatJob, 100)), ...(yield* JobState.loadRejects(auditJob, 100))].map((r) => [`${r.job} ${r.rowKey}`, r.reason])
      )
      expect(reasons[`${chatJob} m09`]).toMatch(/^created_at: "garbage": /)
      expect(reasons[`${chatJob} m13`]).toMatch(/^created_at: "2024-02-30 10:00:00": /)
      // m12 holds 0: SQLite's affinity stores the number 0, PostgreSQL's TEXT column the text "0", which Timestamp.parse refuses.
      expect(reasons[`${chatJob} m12`]).toBe(
        engine.name === "sqlite"
          ? "created_at: expected timestamp text, found number 0"
          : `created_at: "0": ${Either.getLeft(Timestamp.parse("0")).pipe(Option.getOrThrow).reason}`
      )
      expect(reasons[`${auditJob} 8`]).toMatch(/^payload: invalid JSON: /)
      expect(reasons[`${auditJob} 9`]).toBe("payload: payload is not a JSON object: null")
      expect(reasons[`${auditJob} 10`]).toBe("payload: payload is not a JSON object: an array")
      expect(reasons[`${auditJob} 11`]).toBe("payload: payload is not a JSON object: number 42")
      expect(reasons[`${auditJob} 13`]).toBe(`source_event_ts: payload.source_event_ts: expected timestamp text, found number 1705312800000`)
      expect(reasons[`${auditJob} 19`]).toMatch(/^supervisor_processed_at: fallback created_at: |^source_event_ts: fallback created_at: /)
    }).pipe(Effect.provide(database())))

  it.effect("a finished job is not scanned again; restart re-scans it and finds nothing left to write", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      yield* runner.run()
      const before = yield* readEverything
      const again = yield* runner.run()
      expect(again.every((s) => s.outcome === "alreadyDone" && s.batches === 0)).toBe(true)
      expect(again.find((s) => s.job === chatJob)).toMatchObject({ processed: 25, updated: 14, rejected: 7 })
      const restarted = yield* runner.run({ restart: true, jobs: [chatJob] })
      expect(restarted).toHaveLength(1)
      expect(restarted[0]).toMatchObject({ outcome: "completed", processed: 25, updated: 0, rejected: 7, alreadySet: 17, outOfScope: 1 })
      expect(yield* readEverything).toEqual(before)
      expect(yield* rejectsTable).toEqual(expectedRejects)
    }).pipe(Effect.provide(database())))

  it.effect("a job finished by an earlier version, whose counts do not reconcile, is scanned again and ends with counts that do", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      yield* runner.run({ jobs: [chatJob] })
      const before = yield* readEverything
      // What an earlier version left: no already_set / out_of_scope counters, 4 rows walked past uncounted.
      yield* sql.unsafe(`ALTER TABLE strata_jobs DROP COLUMN already_set`)
      yield* sql.unsafe(`ALTER TABLE strata_jobs DROP COLUMN out_of_scope`)
      const [again] = yield* runner.run({ jobs: [chatJob] })
      expect(again).toMatchObject({ outcome: "completed", processed: 25, updated: 0, rejected: 7, alreadySet: 17, outOfScope: 1 })
      expect(Option.map(yield* JobState.loadCheckpoint(chatJob), (c) => [c.processed, c.alreadySet, c.outOfScope, c.state])).toEqual(
        Option.some([25, 17, 1, "done"])
      )
      expect(yield* readEverything).toEqual(before)
      expect((yield* rejectsTable).filter((r) => r.startsWith(chatJob))).toEqual(expectedRejects.filter((r) => r.startsWith(chatJob)))
    }).pipe(Effect.provide(database())))

  it.effect("a dry run writes nothing (not even its own tables), ends, and counts what a real run then does", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const before = yield* readEverything
      const dry = yield* runner.run({ dryRun: true, batchSize: 3, fixedBatchSize: true })
      expect(yield* readEverything).toEqual(before)
      expect(yield* tableExists("strata_jobs")).toBe(false)
      expect(yield* tableExists("strata_rejects")).toBe(false)
      const real = yield* runner.run()
      expect(dry.map((s) => [s.job, s.outcome, s.processed, s.updated, s.rejected, s.alreadySet, s.outOfScope])).toEqual(
        real.map((s) => [s.job, "dryRun", s.processed, s.updated, s.rejected, s.alreadySet, s.outOfScope])
      )
    }).pipe(Effect.provide(database())))

  it.effect("a dry run over all-garbage data ends", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* createLegacyTables
      yield* applyPlan(Plans.agentos)
      for (let i = 0; i < 50; i++) {
        yield* sql`INSERT INTO chat_messages (message_id, created_at) VALUES (${`k${i}`}, ${`garbage ${i}`})`
      }
      const runner = yield* BackfillRunner.BackfillRunner
      const [dry] = yield* runner.run({ dryRun: true, jobs: [chatJob], batchSize: 7, fixedBatchSize: true })
      expect(dry).toMatchObject({ outcome: "dryRun", processed: 50, updated: 0, rejected: 50, batches: 8 })
      const [real] = yield* runner.run({ jobs: [chatJob], batchSize: 7, fixedBatchSize: true })
      expect(real).toMatchObject({ outcome: "completed", processed: 50, updated: 0, rejected: 50, batches: 8 })
      expect((yield* rejectsTable).length).toBe(50)
    }).pipe(Effect.provide(database())))

  /** Runs `body` on a fresh database with `count` generated rows from `seed`; returns what it left behind. */
  const onGenerated = <A, E>(count: number, seed: number, body: (runner: BackfillRunner.BackfillRunner) => Effect.Effect<A, E, SqlClient.SqlClient>) =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* applyPlan(Plans.agentos)
      yield* insertGenerated(count, seed)
      const result = yield* body(yield* BackfillRunner.BackfillRunner)
      return {
        result,
        state: yield* readState,
        rejects: yield* rejectsTable,
        checkpoints: (yield* JobState.loadCheckpoints).map((c) => [c.job, c.cursor, c.processed, c.updated, c.rejected, c.alreadySet, c.outOfScope, c.state])
      }
    }).pipe(Effect.provide(database()))

  it.effect("the fast path and the pure-JS path write the same values", () =>
    Effect.gen(function*() {
      const options = { jobs: [chatJob], batchSize: 50, fixedBatchSize: true }
      const fast = yield* onGenerated(600, 7, (runner) => runner.run(options))
      const slow = yield* onGenerated(600, 7, (runner) => runner.run({ ...options, fastPath: false }))
      expect(slow.state).toEqual(fast.state)
      expect(slow.rejects).toEqual(fast.rejects)
      expect(slow.checkpoints).toEqual(fast.checkpoints)
      expect(fast.result[0]!.updated).toBeGreaterThan(300)
      expect(fast.result[0]!.rejected).toBeGreaterThan(30)
    }))

  it.effect("unknown job names fail with the known ones listed; nothing runs", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const error = yield* Effect.flip(runner.run({ jobs: [chatJob, "chat_messages.nope"] }))
      expect(error._tag).toBe("UnknownJob")
      expect(error.message).toContain(`"chat_messages.nope"`)
      expect(error.message).toContain("task_audits.payload, chat_sessions.created_at_ms")
      expect(yield* tableExists("strata_jobs")).toBe(false)
    }).pipe(Effect.provide(database())))

  it.effect("a job whose migration is not applied fails naming the job and the migration", () =>
    Effect.gen(function*() {
      yield* createLegacyTables
      yield* applyPlan(Plan.upTo(Plans.agentos, 21))
      const runner = yield* BackfillRunner.BackfillRunner
      const error = yield* Effect.flip(runner.run())
      expect(error).toMatchObject({ _tag: "MigrationNotApplied", job: "chat_sessions.created_at_ms", migrationId: 44, table: "chat_sessions", columns: ["created_at_ms"] })
      expect(error.message).toBe(
        "Job chat_sessions.created_at_ms needs migration 44: chat_sessions has no column created_at_ms; apply the migration first (strata migrate)"
      )
      // Nothing ran, not even the job whose migration is applied.
      expect(yield* tableExists("strata_jobs")).toBe(false)
      const [audits] = yield* runner.run({ jobs: [auditJob] })
      expect(audits!.outcome).toBe("completed")
    }).pipe(Effect.provide(database())))

  it.effect("refuses options that are not allowed, naming each, never clamping; nothing runs", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const refused = (options: BackfillRunner.Options) =>
        Effect.map(Effect.flip(runner.run(options)), (e) => e._tag === "InvalidBackfillOptions" ? [e.option, e.reason] : [e._tag, e.message])
      const form = `(milliseconds as a number, "2 seconds", or a Duration)`
      expect(yield* refused({ batchSize: 0 })).toEqual(["batchSize", "must be a positive integer, got 0"])
      expect(yield* refused({ batchSize: 2.5 })).toEqual(["batchSize", "must be a positive integer, got 2.5"])
      expect(yield* refused({ minBatchSize: Number.NaN })).toEqual(["minBatchSize", "must be a positive integer, got NaN"])
      expect(yield* refused({ minBatchSize: 500, maxBatchSize: 100 })).toEqual(["minBatchSize", "must be at most maxBatchSize (100), got 500"])
      // Once clamped silently into the bounds; now refused.
      expect(yield* refused({ batchSize: 5, minBatchSize: 10 })).toEqual(["batchSize", "must lie within minBatchSize and maxBatchSize (10 to 100000), got 5"])
      expect(yield* refused({ batchSize: 200_000 })).toEqual(["batchSize", "must lie within minBatchSize and maxBatchSize (10 to 100000), got 200000"])
      expect(yield* refused({ maxBatchTime: -1 })).toEqual(["maxBatchTime", `must be a finite duration of more than zero ${form}, got -1`])
      expect(yield* refused({ maxBatchTime: 0 })).toEqual(["maxBatchTime", `must be a finite duration of more than zero ${form}, got 0`])
      expect(yield* refused({ pause: -5 })).toEqual(["pause", `must be a finite duration of zero or more ${form}, got -5`])
      expect(yield* refused({ batchLockTimeout: 0 })).toEqual(["batchLockTimeout", `must be a finite duration of more than zero ${form}, got 0`])
      expect(yield* refused({ pause: "soon" as Duration.DurationInput })).toEqual(["pause", `must be a finite duration of zero or more ${form}, got "soon"`])
      expect(yield* BackfillRunner.checkOptions({ pause: -5 }).pipe(Effect.flip, Effect.map((e) => e.option))).toBe("pause")
      expect(yield* tableExists("strata_jobs")).toBe(false)
      // A fixed size needs no bounds; the default first size follows the bounds given.
      const [fixed] = yield* runner.run({ jobs: [chatJob], batchSize: 5, minBatchSize: 10, fixedBatchSize: true, pause: Duration.zero })
      expect(fixed).toMatchObject({ outcome: "completed", processed: 25, batches: 5 })
      const [bounded] = yield* runner.run({ jobs: [auditJob], minBatchSize: 1, maxBatchSize: 8, maxBatchTime: "1 second" })
      expect(bounded).toMatchObject({ outcome: "completed", processed: 23, batches: 3 })
    }).pipe(Effect.provide(database())))

  it.effect("the stream reports started, each batch and completed, with the job's counts", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const events = Chunk.toReadonlyArray(yield* Stream.runCollect(runner.stream({ jobs: [chatJob], batchSize: 10, fixedBatchSize: true })))
      expect(events.map((e) => [e.phase, e.processed, e.updated, e.rejected, e.total, e.batchSize, e.done])).toEqual([
        ["started", 0, 0, 0, 25, 0, false],
        ["batch", 10, 8, 1, 25, 10, false],
        ["batch", 20, 10, 6, 25, 10, false],
        ["completed", 25, 14, 7, 25, 5, true],
        // The job's deferred index, built once it is done, is its last event (same counts).
        ["indexed", 25, 14, 7, 25, 5, true]
      ])
      expect(events.at(-1)!.indexes?.map((i) => [i.name, i.table])).toEqual([["idx_chat_messages_created_at_ms", "chat_messages"]])
      expect(events.slice(0, -1).every((e) => e.indexes === undefined)).toBe(true)
      expect(events.every((e) => e.job === chatJob && e.table === "chat_messages" && !e.dryRun)).toBe(true)
      expect(events.map((e) => e.percent)).toEqual([0, 40, 80, 100, 100])
      const skipped = Chunk.toReadonlyArray(yield* Stream.runCollect(runner.stream({ jobs: [chatJob] })))
      expect(skipped.map((e) => [e.phase, e.processed, e.done])).toEqual([["skipped", 25, true]])
    }).pipe(Effect.provide(database())))

  it.effect("stopping the stream stops at a batch boundary with the checkpoint saved; the next run resumes", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const options = { jobs: [chatJob], batchSize: 5, fixedBatchSize: true }
      const firstTwo = yield* Stream.runCollect(runner.stream(options).pipe(Stream.take(2)))
      expect(Chunk.toReadonlyArray(firstTwo).map((e) => e.phase)).toEqual(["started", "batch"])
      const saved = Option.getOrThrow(yield* JobState.loadCheckpoint(chatJob))
      expect(saved.state).toBe("paused")
      expect(saved.processed % 5).toBe(0)
      expect(saved.processed).toBeGreaterThanOrEqual(5)
      const [rest] = yield* runner.run(options)
      expect(rest).toMatchObject({ outcome: "completed", processed: 25, updated: 14, rejected: 7, batches: Math.ceil((25 - saved.processed) / 5) })
      expect((yield* readState)["chat_messages"]).toEqual(expectedState()["chat_messages"])
    }).pipe(Effect.provide(database())))

  it.effect("two runners of the same job take turns: no batch is done twice, counts are not doubled", () =>
    Effect.gen(function*() {
      const options = { jobs: [chatJob, auditJob], batchSize: 13, fixedBatchSize: true }
      const together = yield* onGenerated(400, 11, (runner) =>
        Effect.all([runner.run(options), runner.run(options)], { concurrency: 2 }))
      const single = yield* onGenerated(400, 11, (runner) => runner.run(options))
      expect(together.state).toEqual(single.state)
      expect(together.rejects).toEqual(single.rejects)
      expect(together.checkpoints).toEqual(single.checkpoints)
      const [a, b] = together.result
      // Each job completed in one of the runners; the other found it done or finished the last batch.
      expect([...a!, ...b!].filter((s) => s.outcome === "completed").length).toBeGreaterThanOrEqual(2)
    }))

  it.effect("grows the batch while batches are far under the target (TestClock: every batch takes 0 ms)", () =>
    Effect.gen(function*() {
      yield* fixtureDatabase
      const runner = yield* BackfillRunner.BackfillRunner
      const events = yield* Stream.runCollect(runner.stream({ jobs: [chatJob], batchSize: 1, minBatchSize: 1 }))
      expect(Chunk.toReadonlyArray(events).filter((e) => e.phase === "batch" || e.phase === "completed").map((e) => e.batchSize)).toEqual([1, 2, 4, 8, 10])
    }).pipe(Effect.provide(database())))

  const keysPlan = (options: { readonly key?: string } = {}) =>
    Plan.make("keys", [Plan.migration(1, "shadow", [Plan.epochShadow("events", "at", options)])])

  const keyCase = (ddl: string, options: { readonly key?: string } = {}) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(ddl)
      for (let i = 0; i < 9; i++) {
        yield* sql.unsafe(`INSERT INTO events (name, grp, at) VALUES ('n${i}', 'g${i % 2}', '2024-01-15 12:00:0${i}')`)
      }
      const plan = keysPlan(options)
      const applied = yield* Effect.either(applyPlan(plan))
      // The Migrator's preflight refuses a table without a usable key before changing anything, with
      // the runner's own reason; the target is then added by hand so the runner's check is tested too.
      const preflight = Either.isLeft(applied) && applied.left._tag === "PreflightFailed"
        ? applied.left.problems.map((p) => ({ _tag: p._tag, ...("reason" in p ? { reason: p.reason } : {}) }))
        : []
      if (Either.isLeft(applied)) {
        yield* sql.unsafe(`ALTER TABLE events ADD COLUMN at_ms BIGINT`)
        yield* Effect.flatMap(Migrator.make(plan), (migrator) => migrator.baseline(1))
      }
      const runner = yield* BackfillRunner.make(plan)
      const summaries = yield* Effect.either(runner.run({ batchSize: 2, fixedBatchSize: true }))
      const values = Either.isRight(summaries)
        ? (yield* sql<{ at_ms: number }>`SELECT at_ms FROM events ORDER BY at_ms`).map((r) => Number(r.at_ms) - NOON)
        : []
      const cursor = Option.getOrNull(Option.flatMap(yield* JobState.loadCheckpoint("events.at_ms").pipe(Effect.orElseSucceed(() => Option.none())), (c) => Option.fromNullable(c.cursor)))
      return { summaries: Either.mapLeft(summaries, (e) => ({ _tag: e._tag, message: e.message, ...("reason" in e ? { reason: e.reason } : {}) })), values, cursor, preflight }
    }).pipe(Effect.provide(database()))

  it.effect("walks a table by its declared key, and refuses tables with no usable key", () =>
    Effect.gen(function*() {
      const all = [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]
      const declared = yield* keyCase(`CREATE TABLE events (name TEXT NOT NULL UNIQUE, grp TEXT, at TEXT)`, { key: "name" })
      expect(declared.values).toEqual(all)
      expect(declared.preflight).toEqual([])
      const composite = yield* keyCase(`CREATE TABLE events (name TEXT, grp TEXT, at TEXT, PRIMARY KEY (name, grp))${engine.name === "sqlite" ? " WITHOUT ROWID" : ""}`)
      const reason = engine.name === "sqlite"
        ? "its primary key (name, grp) has 2 columns and it is a WITHOUT ROWID table"
        : "its primary key (name, grp) has 2 columns"
      expect(composite.preflight).toEqual([{ _tag: "BatchKeyMissing", reason }])
      expect(Either.isLeft(composite.summaries) && composite.summaries.left).toMatchObject({ _tag: "NoBatchKey", reason })
    }).pipe(Effect.provide(database())))

  if (engine.name === "sqlite") {
    it.effect("walks a SQLite table without a primary key by its rowid", () =>
      Effect.gen(function*() {
        const result = yield* keyCase(`CREATE TABLE events (name TEXT, grp TEXT, at TIMESTAMP)`)
        expect(result.values).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
        expect(result.cursor).toBe("i:9")
      }))
  } else {
    it.effect("walks a PostgreSQL table by a uuid primary key; refuses one without a primary key, or with a key of another type", () =>
      Effect.gen(function*() {
        const uuid = yield* keyCase(`CREATE TABLE events (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name TEXT, grp TEXT, at TEXT)`)
        expect(uuid.preflight).toEqual([])
        expect(uuid.values).toEqual([0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
        expect(uuid.cursor).toMatch(/^t:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
        const none = yield* keyCase(`CREATE TABLE events (name TEXT, grp TEXT, at TEXT)`)
        expect(none.preflight).toEqual([{ _tag: "BatchKeyMissing", reason: "it has no primary key" }])
        expect(Either.isLeft(none.summaries) && none.summaries.left).toMatchObject({ _tag: "NoBatchKey", reason: "it has no primary key" })
        const numeric = yield* keyCase(`CREATE TABLE events (id numeric PRIMARY KEY DEFAULT random(), name TEXT, grp TEXT, at TEXT)`)
        expect(numeric.preflight).toEqual([{ _tag: "BatchKeyMissing", reason: "its primary key id has type numeric, neither integer nor text" }])
        expect(Either.isLeft(numeric.summaries) && numeric.summaries.left).toMatchObject({
          _tag: "NoBatchKey",
          reason: "its primary key id has type numeric, neither integer nor text"
        })
      }))
  }

  it.effect.prop(
    "interrupted at random points and resumed, the result equals a one-shot run, and every checkpoint matches the table",
    [
      fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 30 })), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 1, max: 12 }),
      fc.boolean()
    ],
    ([interruptions, batchSize, fastPath]) =>
      Effect.gen(function*() {
        yield* fixtureDatabase
        const runner = yield* BackfillRunner.BackfillRunner
        const options = { jobs: [chatJob, auditJob], batchSize, fixedBatchSize: true, fastPath }
        for (const [events, yields] of interruptions) {
          // Read `events` progress events, yielding `yields` times at each so the run moves on meanwhile;
          // then the stream stops, interrupting the run wherever it is (often inside a batch).
          yield* runner.stream(options).pipe(
            Stream.tap(() => Effect.repeatN(Effect.yieldNow(), yields)),
            Stream.take(events),
            Stream.runDrain
          )
          yield* checkpointMatchesTable
        }
        const final = yield* runner.run(options)
        expect(final.map((s) => s.outcome === "completed" || s.outcome === "alreadyDone")).toEqual([true, true])
        const state = yield* readState
        const expected = expectedState()
        expect(state["chat_messages"]).toEqual(expected["chat_messages"])
        expect(Object.fromEntries(Object.entries(state["task_audits"]!).map(([k, v]) => [k, { ...v, created_at_ms: null }]))).toEqual(
          Object.fromEntries(Object.entries(expected["task_audits"]!).map(([k, v]) => [k, { ...v, created_at_ms: null }]))
        )
        expect(yield* rejectsTable).toEqual(expectedRejects.filter((r) => r.startsWith(chatJob) || r.startsWith(auditJob)))
        const checkpoints = yield* JobState.loadCheckpoints
        expect(checkpoints.map((c) => [c.job, c.processed, c.updated, c.rejected, c.alreadySet, c.outOfScope, c.state])).toEqual([
          [auditJob, 23, 11, 9, 0, 3, "done"],
          [chatJob, 25, 14, 7, 3, 1, "done"]
        ].sort())
      }).pipe(Effect.provide(database())),
    { fastCheck: { numRuns: 25 } }
  )
})

/** After an interrupt: for each job, every row up to the saved cursor is final and every row after it untouched. */
const checkpointMatchesTable = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if (!(yield* tableExists("strata_jobs"))) return
  const expected = expectedState()
  const checkpoints = yield* JobState.loadCheckpoints
  for (const checkpoint of checkpoints) {
    const cursor = checkpoint.cursor === null ? undefined : JobState.decodeKeyCursor(checkpoint.cursor)
    const done = checkpoint.state === "done"
    if (checkpoint.job === chatJob) {
      const rows = yield* sql<{ message_id: string; created_at_ms: number | null }>`SELECT message_id, created_at_ms FROM chat_messages ORDER BY message_id`
      for (const row of rows) {
        const passed = done || (cursor !== undefined && row.message_id <= String(cursor))
        const initial = chatMessageCases.find((c) => c.key === row.message_id)!.preset ?? null
        expect([row.message_id, row.created_at_ms]).toEqual([row.message_id, passed ? expected["chat_messages"]![row.message_id]!.created_at_ms : initial])
      }
    }
    if (checkpoint.job === auditJob) {
      const rows = yield* sql<{ audit_id: number; source_event_ts: number | null; supervisor_processed_at: number | null }>`SELECT audit_id, source_event_ts, supervisor_processed_at FROM task_audits ORDER BY audit_id`
      for (const row of rows) {
        const passed = done || (cursor !== undefined && row.audit_id <= Number(cursor))
        const c = auditCases.find((a) => a.id === row.audit_id)!
        const final = expected["task_audits"]![String(row.audit_id)]!
        expect([row.audit_id, row.source_event_ts, row.supervisor_processed_at]).toEqual(
          passed ? [row.audit_id, final.source_event_ts, final.supervisor_processed_at] : [row.audit_id, c.presetSource ?? null, null]
        )
      }
    }
  }
})
