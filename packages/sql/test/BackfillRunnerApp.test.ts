/**
 * The BackfillRunner in a real user's app: on the app's own client (with and without the
 * camelCase name transforms), on a PostgreSQL schema off the search_path, with strata's tables
 * moved by `Database.StrataSchema`; and counts that reconcile on random tables with random garbage
 * and random interrupts, equal to a one-shot run.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan, Plans } from "@strata/core"
import { Effect, FastCheck as fc, Layer, Option, Stream } from "effect"
import {
  createLegacyTables,
  expectedRejects,
  expectedState,
  insertFixture,
  insertGenerated,
  presetTargets,
  readState
} from "../../../test/fixtures/agentosLegacy.js"
import { describeEachEngine, describePg, pgForeignSchema } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator } from "../src/index.js"
import * as JobState from "../src/JobState.js"

const applyPlan = (plan: Plan.Plan) => Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())

const rejectRows = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ job: string; row_key: string }>`SELECT job, row_key FROM strata_rejects ORDER BY job, row_key`
  return rows.map((r) => `${r.job} ${r.row_key}`).sort()
})

const checkpointRows = Effect.map(
  JobState.loadCheckpoints,
  (checkpoints) => checkpoints.map((c) => [c.job, c.cursor, c.processed, c.updated, c.rejected, c.alreadySet, c.outOfScope, c.state])
)

describeEachEngine("BackfillRunner on the app's own client", (engine) => {
  /** The agentos fixture plus generated rows, backfilled on `client`; what it left, read without transforms. */
  const backfillOn = (client: Layer.Layer<SqlClient.SqlClient>, fastPath: boolean) =>
    Effect.gen(function*() {
      yield* Database.withStrataClient(Effect.gen(function*() {
        yield* createLegacyTables
        yield* insertFixture
        yield* applyPlan(Plans.agentos)
        yield* presetTargets
        yield* insertGenerated(300, 5)
      }))
      const summaries = yield* BackfillRunner.run({ fastPath, batchSize: 40, fixedBatchSize: true })
      return yield* Database.withStrataClient(Effect.gen(function*() {
        return {
          summaries: summaries.map((s) => [s.job, s.outcome, s.processed, s.updated, s.rejected, s.alreadySet, s.outOfScope]),
          state: yield* readState,
          rejects: yield* rejectRows,
          checkpoints: yield* checkpointRows
        }
      }))
    }).pipe(Effect.provide(BackfillRunner.layer(Plans.agentos).pipe(Layer.provideMerge(client))))

  // A backfill commits batch by batch and builds its indexes on connections of its own: inside an
  // open transaction it hung on both engines (the index build waiting for the transaction around it).
  it.effect("inside the app's own open transaction run and stream refuse with RunInsideTransaction, writing nothing", () =>
    Effect.gen(function*() {
      const stateNow = Database.withStrataClient(Effect.all({ state: readState, checkpoints: checkpointRows }))
      yield* Database.withStrataClient(Effect.gen(function*() {
        yield* createLegacyTables
        yield* insertFixture
        yield* applyPlan(Plans.agentos)
        yield* insertGenerated(50, 5)
        yield* JobState.ensureTables
      }))
      const before = yield* stateNow
      expect(before.checkpoints).toEqual([])
      const sql = yield* SqlClient.SqlClient
      const options = { batchSize: 40 }
      const refusedRun = yield* sql.withTransaction(BackfillRunner.run(options)).pipe(Effect.flip)
      const refusedStream = yield* sql.withTransaction(Stream.runDrain(BackfillRunner.stream(options))).pipe(Effect.flip)
      expect([refusedRun._tag, refusedStream._tag]).toEqual(["RunInsideTransaction", "RunInsideTransaction"])
      expect(refusedStream.message).toContain("run it outside any transaction")
      expect(yield* stateNow).toEqual(before)
      // Outside one, the same run goes through.
      const [first] = yield* BackfillRunner.run(options)
      expect(first?.outcome).toBe("completed")
    }).pipe(Effect.provide(BackfillRunner.layer(Plans.agentos).pipe(Layer.provideMerge(engine.appLayer())))))

  for (const fastPath of [true, false]) {
    it.effect(`with camelCase name transforms it backfills exactly what a plain client does (${fastPath ? "fast path" : "JavaScript path"})`, () =>
      Effect.gen(function*() {
        const plain = yield* backfillOn(engine.appLayer(), fastPath)
        const camel = yield* backfillOn(engine.appLayer({ camelCase: true }), fastPath)
        expect(camel).toEqual(plain)
        // The fixture's part is exact: every convertible row written, and text-keyed rejects stored with their real key.
        const fixture = expectedState()
        expect(Object.fromEntries(Object.entries(camel.state["chat_messages"]!).filter(([k]) => k.startsWith("m")))).toEqual(fixture["chat_messages"])
        expect(camel.rejects.filter((r) => r.startsWith("chat_messages.created_at_ms m"))).toEqual(
          expectedRejects.filter((r) => r.startsWith("chat_messages.created_at_ms "))
        )
        expect(camel.rejects.some((r) => r.endsWith(" undefined"))).toBe(false)
        expect(camel.summaries.every(([, outcome]) => outcome === "completed")).toBe(true)
        expect(camel.checkpoints.every(([, , processed, updated, rejected, alreadySet, outOfScope]) =>
          processed === Number(updated) + Number(rejected) + Number(alreadySet) + Number(outOfScope)
        )).toBe(true)
      }))
  }

  it.effect("a client that renames result columns behind strata's back fails with ColumnNotInRow, leaving the table as it was", () =>
    Effect.gen(function*() {
      const app = yield* SqlClient.SqlClient
      const sql = app.withoutTransforms()
      yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)`)
      yield* sql.unsafe(`INSERT INTO events (id, happened_at) VALUES (1, '2024-01-15T12:00:00Z'), (2, '2024-01-15 12:00:01')`)
      const plan = Plan.make("events", [Plan.migration(1, "shadow", [Plan.epochShadow("events", "happened_at")])])
      yield* Database.withStrataClient(applyPlan(plan))
      // A broken client: its "transform-free" version still renames result columns.
      const broken: SqlClient.SqlClient = new Proxy(app, {
        get: (target, property) => (property === "withoutTransforms" ? () => broken : Reflect.get(target, property))
      })
      const error = yield* Effect.flip(
        Effect.flatMap(BackfillRunner.make(plan), (runner) => runner.run({ fastPath: false })).pipe(
          Effect.provideService(SqlClient.SqlClient, broken)
        )
      )
      expect(error).toMatchObject({ _tag: "ColumnNotInRow", job: "events.happened_at_ms", table: "events", column: "__strata_key" })
      expect(yield* sql.unsafe(`SELECT id, happened_at_ms FROM events ORDER BY id`)).toEqual([
        { id: 1, happened_at_ms: null },
        { id: 2, happened_at_ms: null }
      ])
    }).pipe(Effect.provide(engine.appLayer({ camelCase: true }))))

  /** A table whose UPDATE trigger skips some rows: `lost` ones outright, `raced` ones after setting the target itself. */
  const triggerTable = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(`CREATE TABLE notes (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, noted_at TEXT)`)
    const plan = Plan.make("notes", [Plan.migration(1, "shadow", [Plan.epochShadow("notes", "noted_at")])])
    yield* applyPlan(plan)
    if (engine.name === "sqlite") {
      yield* sql.unsafe(`CREATE TRIGGER notes_guard BEFORE UPDATE ON notes FOR EACH ROW WHEN OLD.kind <> 'plain' BEGIN
        UPDATE notes SET noted_at_ms = 42 WHERE id = OLD.id AND OLD.kind = 'raced';
        SELECT RAISE(IGNORE);
      END`)
    } else {
      yield* sql.unsafe(`CREATE FUNCTION notes_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.kind = 'plain' OR pg_trigger_depth() > 1 THEN RETURN NEW; END IF;
          IF OLD.kind = 'raced' THEN UPDATE notes SET noted_at_ms = 42 WHERE id = OLD.id; END IF;
          RETURN NULL;
        END $$`)
      yield* sql.unsafe(`CREATE TRIGGER notes_guard BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION notes_guard()`)
    }
    return plan
  })

  it.effect("a row set by someone else between the read and the write counts as already set; its value is kept", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const plan = yield* triggerTable
      yield* sql.unsafe(`INSERT INTO notes (id, kind, noted_at) VALUES (1, 'plain', '2024-01-15T12:00:00Z'), (2, 'raced', '2024-01-15T12:00:01Z'), (3, 'plain', '2024-01-15T12:00:02Z')`)
      const [summary] = yield* Effect.flatMap(BackfillRunner.make(plan), (runner) => runner.run({ fastPath: false }))
      expect(summary).toMatchObject({ outcome: "completed", processed: 3, updated: 2, rejected: 0, alreadySet: 1, outOfScope: 0 })
      expect((yield* sql<{ id: number; noted_at_ms: number | string }>`SELECT id, noted_at_ms FROM notes ORDER BY id`).map((r) => Number(r.noted_at_ms)))
        .toEqual([1705320000000, 42, 1705320002000])
    }).pipe(Effect.provide(engine.layer())))

  for (const fastPath of [true, false]) {
    it.effect(`a batch whose UPDATE writes fewer rows than it converted fails with BatchWriteMismatch; nothing of it is kept (${fastPath ? "fast path" : "JavaScript path"})`, () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const plan = yield* triggerTable
        yield* sql.unsafe(`INSERT INTO notes (id, kind, noted_at) VALUES (1, 'plain', '2024-01-15 12:00:00'), (2, 'lost', '2024-01-15 12:00:01'), (3, 'plain', '2024-01-15T12:00:02Z')`)
        const error = yield* Effect.flip(Effect.flatMap(BackfillRunner.make(plan), (runner) => runner.run({ fastPath })))
        expect(error).toMatchObject({ _tag: "BatchWriteMismatch", job: "notes.noted_at_ms", table: "notes", keys: ["2"] })
        expect(error.message).toContain("not written: 2")
        expect((yield* sql<{ noted_at_ms: unknown }>`SELECT noted_at_ms FROM notes ORDER BY id`).map((r) => r.noted_at_ms)).toEqual([null, null, null])
        const saved = Option.getOrThrow(yield* JobState.loadCheckpoint("notes.noted_at_ms"))
        expect([saved.processed, saved.state]).toEqual([0, "running"])
      }).pipe(Effect.provide(engine.layer())))
  }
})

describePg("BackfillRunner on a PostgreSQL schema off the search_path", () => {
  it.scoped("backfills schema.table, with strata's tables in the connection's schema or in Database.StrataSchema", () =>
    Effect.gen(function*() {
      const { home, schema, url } = yield* pgForeignSchema()
      const plan = Plan.make("foreign", [
        Plan.migration(1, "shadow", [Plan.epochShadow(`${schema}.events`, "happened_at")])
      ])
      const client = Database.layer({ url })
      const values = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // The same table name on the search_path, which must not be touched.
        yield* sql.unsafe(`CREATE TABLE events (id TEXT PRIMARY KEY, happened_at TEXT)`)
        yield* sql.unsafe(`INSERT INTO events VALUES ('a', '2024-01-15 12:00:00')`)
        yield* sql.unsafe(`CREATE TABLE "${schema}".events (id TEXT PRIMARY KEY, happened_at TEXT)`)
        yield* sql.unsafe(`INSERT INTO "${schema}".events VALUES ('a', '2024-01-15 12:00:00'), ('b', 'garbage'), ('c', '2024-01-15T20:00:01+08:00'), ('d', NULL)`)
        yield* applyPlan(plan)
        const [summary] = yield* BackfillRunner.run({ batchSize: 2, fixedBatchSize: true })
        expect(summary).toMatchObject({ job: `${schema}.events.happened_at_ms`, outcome: "completed", processed: 4, updated: 2, rejected: 1, alreadySet: 0, outOfScope: 1 })
        expect(yield* sql.unsafe(`SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_name LIKE 'strata_%' AND table_schema IN ('${home}', '${schema}') ORDER BY 1, 2`))
          .toEqual([{ s: home, t: "strata_jobs" }, { s: home, t: "strata_migrations" }, { s: home, t: "strata_rejects" }])
        expect(yield* sql.unsafe(`SELECT job, row_key FROM strata_rejects`)).toEqual([{ job: `${schema}.events.happened_at_ms`, row_key: "b" }])
        // The search_path's own events table was neither migrated nor touched.
        expect(yield* sql.unsafe(`SELECT column_name AS c FROM information_schema.columns WHERE table_schema = '${home}' AND table_name = 'events' ORDER BY ordinal_position`))
          .toEqual([{ c: "id" }, { c: "happened_at" }])
        return yield* sql.unsafe(`SELECT id, happened_at_ms FROM "${schema}".events ORDER BY id`)
      }).pipe(Effect.provide(BackfillRunner.layer(plan).pipe(Layer.provideMerge(client))))
      expect(values).toEqual([
        { id: "a", happened_at_ms: 1705320000000 },
        { id: "b", happened_at_ms: null },
        { id: "c", happened_at_ms: 1705320001000 },
        { id: "d", happened_at_ms: null }
      ])

      // With Database.StrataSchema, the runner keeps its job state there instead (restart: scanned again).
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [summary] = yield* BackfillRunner.run({ restart: true })
        expect(summary).toMatchObject({ outcome: "completed", processed: 4, updated: 0, rejected: 1, alreadySet: 2, outOfScope: 1 })
        expect(yield* sql.unsafe(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = '${schema}' AND table_name LIKE 'strata_%' ORDER BY 1`))
          .toEqual([{ t: "strata_jobs" }, { t: "strata_rejects" }])
        expect(yield* sql.unsafe(`SELECT job, processed, state FROM "${schema}".strata_jobs`)).toEqual([
          { job: `${schema}.events.happened_at_ms`, processed: 4, state: "done" }
        ])
      }).pipe(
        Effect.provide(BackfillRunner.layer(plan).pipe(Layer.provideMerge(Layer.merge(client, Database.layerStrataSchema(schema)))))
      )
    }))
})

/** One row of a random table: a key, a timestamp source, a payload, a kind (the filter), a preset target. */
interface RandomRow {
  readonly at: string | null
  readonly payload: string | null
  readonly kind: string
  readonly preset: boolean
}

const timestampText = fc.oneof(
  fc.constantFrom("2024-01-15 12:00:00", "1999-12-31 23:59:59", "2024-02-29 00:00:01"), // the fast path's shape
  fc.constantFrom("2024-01-15T12:00:00.123Z", "2024-01-15T20:00:00+08:00", "2024-01-15"), // JavaScript only
  fc.constantFrom("2024-02-30 10:00:00", "2023-13-01 00:00:00"), // shaped, impossible
  fc.string({ maxLength: 8 }) // garbage
)

const randomRow: fc.Arbitrary<RandomRow> = fc.record({
  at: fc.option(timestampText, { nil: null }),
  payload: fc.option(
    fc.oneof(
      timestampText.map((t) => JSON.stringify({ t })),
      fc.constant(JSON.stringify({ t: 5 })),
      fc.constant("{}"),
      fc.constant("not json"),
      fc.constant("[1]")
    ),
    { nil: null }
  ),
  kind: fc.constantFrom("X-1", "Y", "xX"),
  preset: fc.boolean()
})

const randomPlan = Plan.make("random", [
  Plan.migration(1, "targets", ["a", "b"].flatMap((t) => [
    Plan.epochShadow(`items_${t}`, "at"),
    Plan.extractJson(`items_${t}`, "payload", {
      targets: [{ column: "p_ms", paths: ["t"], as: "timestamp", fallbackColumn: "at" }],
      where: { column: "kind", op: "contains", value: "X" }
    })
  ]))
])

const jobsOf = (t: "a" | "b") => [`items_${t}.at_ms`, `items_${t}.payload`]

describeEachEngine("BackfillRunner counts", (engine) => {
  it.effect.prop(
    "on random tables with random garbage and random interrupts, walked = updated + rejected + alreadySet + outOfScope, each exact, equal to a one-shot run",
    [
      fc.array(randomRow, { maxLength: 40 }),
      fc.boolean(),
      fc.array(fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 20 })), { maxLength: 6 }),
      fc.integer({ min: 1, max: 7 }),
      fc.boolean()
    ],
    ([rows, textKeys, interruptions, batchSize, fastPath]) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const keys = rows.map((_, i) => (textKeys ? `k${String((i * 7919) % 1000).padStart(3, "0")}-${i}` : (i * 7919) % 100_003))
        for (const t of ["a", "b"]) {
          yield* sql.unsafe(`CREATE TABLE items_${t} (id ${textKeys ? "TEXT" : "INTEGER"} PRIMARY KEY, at TEXT, payload TEXT, kind TEXT NOT NULL)`)
        }
        yield* applyPlan(randomPlan)
        for (const t of ["a", "b"]) {
          for (const [i, row] of rows.entries()) {
            yield* sql.unsafe(
              engine.name === "pg"
                ? `INSERT INTO items_${t} (id, at, payload, kind, at_ms) VALUES ($1, $2, $3, $4, $5)`
                : `INSERT INTO items_${t} (id, at, payload, kind, at_ms) VALUES (?, ?, ?, ?, ?)`,
              [keys[i], row.at, row.payload, row.kind, row.preset ? 7 : null]
            )
          }
        }
        const runner = yield* BackfillRunner.make(randomPlan)
        const options = { batchSize, fixedBatchSize: true, fastPath }
        for (const [events, yields] of interruptions) {
          yield* runner.stream({ ...options, jobs: jobsOf("a") }).pipe(
            Stream.tap(() => Effect.repeatN(Effect.yieldNow(), yields)),
            Stream.take(events),
            Stream.runDrain
          )
          const saved = yield* JobState.loadCheckpoints
          expect(saved.filter((c) => !JobState.reconciles(c))).toEqual([])
        }
        const resumed = yield* runner.run({ ...options, jobs: jobsOf("a") })
        const oneShot = yield* runner.run({ ...options, jobs: jobsOf("b") })
        expect(resumed.every((s) => s.outcome === "completed" || s.outcome === "alreadyDone")).toBe(true)

        const counts = (t: "a" | "b") =>
          Effect.map(JobState.loadCheckpoints, (all) =>
            all.filter((c) => c.job.startsWith(`items_${t}.`)).map((c) => [c.job.slice(8), c.state, ...Object.values(JobState.countsOf(c))]))
        const state = (t: "a" | "b") =>
          Effect.map(
            sql.unsafe<Record<string, unknown>>(`SELECT id, at_ms, p_ms FROM items_${t} ORDER BY id`),
            (all) => all.map((r) => [String(r["id"]), r["at_ms"] == null ? null : Number(r["at_ms"]), r["p_ms"] == null ? null : Number(r["p_ms"])])
          )
        const rejects = (job: string) =>
          Effect.map(JobState.loadRejects(job, 1000), (all) => all.map((r) => r.rowKey).sort())
        expect(yield* counts("a")).toEqual(yield* counts("b"))
        expect(yield* state("a")).toEqual(yield* state("b"))
        expect(yield* rejects("items_a.at_ms")).toEqual(yield* rejects("items_b.at_ms"))
        expect(yield* rejects("items_a.payload")).toEqual(yield* rejects("items_b.payload"))

        // Each count is what the table shows: walked every row, updated the NULL targets that got a value, rejected what is recorded.
        const after = yield* state("a")
        const byJob = Object.fromEntries((yield* JobState.loadCheckpoints).map((c) => [c.job, c]))
        const shadow = byJob["items_a.at_ms"]!
        const extract = byJob["items_a.payload"]!
        expect([shadow.state, shadow.processed, extract.state, extract.processed]).toEqual(["done", rows.length, "done", rows.length])
        const sortedRows = keys.map((key, i) => ({ key: String(key), row: rows[i]! })).sort((x, y) =>
          textKeys ? (x.key < y.key ? -1 : x.key > y.key ? 1 : 0) : Number(x.key) - Number(y.key)
        )
        expect(shadow.updated).toBe(sortedRows.filter(({ row }, i) => !row.preset && after[i]![1] !== null).length)
        expect(extract.updated).toBe(after.filter((r) => r[2] !== null).length)
        expect(shadow.rejected).toBe((yield* rejects("items_a.at_ms")).length)
        expect(extract.rejected).toBe((yield* rejects("items_a.payload")).length)
        expect(shadow.outOfScope).toBe(rows.filter((r) => r.at === null).length)
        expect(shadow.alreadySet).toBe(rows.filter((r) => r.at !== null && r.preset).length)
        expect(extract.outOfScope + extract.alreadySet).toBe(rows.length - extract.updated - extract.rejected)
        expect(extract.alreadySet).toBe(0)
        expect(oneShot.map((s) => s.processed)).toEqual([rows.length, rows.length])
      }).pipe(Effect.provide(engine.layer())),
    { fastCheck: { numRuns: engine.name === "pg" ? 15 : 30 } }
  )
})
