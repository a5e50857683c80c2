import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Chunk, Effect, Either, Layer, Logger, Stream } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { BackfillRunner, LazyMigration, Migrator, Progress, Verifier } from "../src/index.js"
import * as JobState from "../src/JobState.js"

/** One person per row; garbage where a legacy import left it. */
const rows: ReadonlyArray<readonly [id: number, fullName: string | null, email: string | null, kind: string]> = [
  [1, "Ada King Lovelace", "Ada@Example.COM", "person"],
  [2, "Plato", "plato@academy.gr", "person"],
  [3, "Grace Hopper", null, "person"],
  [4, "42", "x@y.z", "person"],
  [5, "boom", "b@o.om", "person"],
  [6, "   ", "blank@x.y", "person"],
  [7, "R2 D2", "R2@Droid.net", "robot"],
  [8, "Alan Turing", "ALAN@bletchley.uk", "person"],
  [9, null, "nobody@x.y", "person"]
]

const people = Plan.createTable("people", [
  { name: "id", type: "integer", primaryKey: true },
  { name: "full_name", type: "text" },
  { name: "email", type: "text" },
  { name: "kind", type: "text" }
])

const names = Plan.derive("people", {
  reads: ["full_name"],
  targets: [{ column: "first_name", type: "text" }, { column: "last_name", type: "text", index: true }],
  convert: (row) => {
    if (row.full_name === "boom") throw new Error("the name exploded")
    if (typeof row.full_name !== "string" || row.full_name.trim() === "") return Either.left("no name to split")
    const [first, ...rest] = row.full_name.trim().split(/\s+/)
    return { first_name: first!, last_name: rest.length === 0 ? null : rest.join(" ") }
  },
  filter: { column: "kind", op: "eq", value: "person" }
})

const emails = (expression: string) =>
  Plan.derive("people", {
    reads: ["email"],
    targets: [{ column: "email_lower", type: "text" }],
    convert: (row) => ({ email_lower: row.email === null ? null : String(row.email).toLowerCase() }),
    sql: { sqlite: { email_lower: expression }, postgresql: { email_lower: expression } }
  })

const namesPlan = Plan.make("people", [Plan.migration(1, "people", [people]), Plan.migration(2, "names", [names])])
const emailPlan = (expression: string) =>
  Plan.make("people", [Plan.migration(1, "people", [people]), Plan.migration(2, "emails", [emails(expression)])])

const seed = (plan: Plan.Plan) =>
  Effect.gen(function*() {
    yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
    const sql = yield* SqlClient.SqlClient
    for (const [id, fullName, email, kind] of rows) {
      yield* sql`INSERT INTO people (id, full_name, email, kind) VALUES (${id}, ${fullName}, ${email}, ${kind})`
    }
  })

const readNames = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return (yield* sql<{ id: number; first_name: string | null; last_name: string | null }>`
    SELECT id, first_name, last_name FROM people ORDER BY id`).map((r) => [Number(r.id), r.first_name, r.last_name])
})

const readEmails = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return (yield* sql<{ id: number; email_lower: string | null }>`SELECT id, email_lower FROM people ORDER BY id`)
    .map((r) => [Number(r.id), r.email_lower])
})

const captureLogs = () => {
  const lines: Array<{ readonly message: string; readonly annotations: Record<string, unknown> }> = []
  const logger = Logger.make(({ annotations, message }) => {
    const record: Record<string, unknown> = {}
    for (const [key, value] of annotations) record[key] = value
    lines.push({ message: Array.isArray(message) ? message.map(String).join(" ") : String(message), annotations: record })
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const expectedNames = [
  [1, "Ada", "King Lovelace"],
  [2, "Plato", null],
  [3, "Grace", "Hopper"],
  [4, "42", null],
  [5, null, null],
  [6, null, null],
  [7, null, null],
  [8, "Alan", "Turing"],
  [9, null, null]
]

describeEachEngine("Plan.derive through every service", (engine) => {
  const services = (plan: Plan.Plan) =>
    Layer.mergeAll(
      BackfillRunner.layer(plan).pipe(Layer.orDie),
      Verifier.layer(plan),
      Progress.layer(plan),
      LazyMigration.layer(plan, { flushInterval: "10 millis" }).pipe(Layer.orDie)
    ).pipe(Layer.provideMerge(engine.layer()))

  it.effect("two targets, garbage and a throwing convert: exact values, rejects with reasons, verify passes, then catches a tampered row", () =>
    Effect.gen(function*() {
      yield* seed(namesPlan)
      const sql = yield* SqlClient.SqlClient
      const runner = yield* BackfillRunner.BackfillRunner
      const [summary] = yield* runner.run({ batchSize: 2, fixedBatchSize: true })
      expect(summary).toMatchObject({ job: "people.first_name", outcome: "completed", processed: 9, updated: 5, rejected: 3, fastPath: "none" })
      expect(yield* readNames).toEqual(expectedNames)
      expect((yield* JobState.loadRejects("people.first_name", 10)).map((r) => `${r.rowKey} ${r.reason}`)).toEqual([
        "5 full_name: convert threw Error: the name exploded",
        "6 full_name: no name to split",
        "9 full_name: no name to split"
      ])

      // Plato's NULL last name is an answer: not pending, and a second run does not revisit the row.
      const progress = yield* Progress.report()
      expect(progress.columns.map((c) => [c.column, c.migrated, c.pending, c.rejected, c.withoutValue, c.label])).toEqual([
        ["first_name", 5, 0, 3, 0, "Complete"],
        ["last_name", 3, 0, 3, 2, "Complete"]
      ])
      expect((yield* runner.run())[0]).toMatchObject({ outcome: "alreadyDone", processed: 9, rejected: 3 })

      const verifier = yield* Verifier.Verifier
      const passed = yield* verifier.run()
      const check = (name: string) => passed.checks.find((c) => c.name === name)!
      expect(passed.rowsScanned).toEqual({ "people.first_name": 8 })
      expect([check("people.last_name missing").count, check("people.last_name coverage").count, check("people.full_name unconvertible").count])
        .toEqual([0, 3, 3])

      yield* sql`UPDATE people SET last_name = 'Byron' WHERE id = 1`
      const failed = yield* Effect.flip(verifier.run())
      if (failed._tag !== "VerificationFailed") throw failed
      expect(Verifier.failures(failed.report).map((c) => `${c.name} ${c.count} ${c.sampleKeys.join(",")}`)).toEqual([
        "people.last_name mismatch 1 1"
      ])

      // Read-time fix-up: a row read with its targets NULL comes back computed, and is written back.
      yield* sql`UPDATE people SET first_name = NULL, last_name = NULL WHERE id = 8`
      const read = yield* sql<Record<string, unknown>>`SELECT * FROM people WHERE id = 8`.pipe(LazyMigration.withFixUp("people"))
      expect(read[0]).toMatchObject({ first_name: "Alan", last_name: "Turing" })
      yield* LazyMigration.flush
      expect((yield* readNames)[7]).toEqual([8, "Alan", "Turing"])
      expect(yield* LazyMigration.stats).toMatchObject({ fixed: 1, writtenBack: 1 })
    }).pipe(Effect.provide(services(namesPlan))))

  it.effect("a correct SQL fast path is checked and used: the same values as the function", () =>
    Effect.gen(function*() {
      const plan = emailPlan("lower(email)")
      yield* seed(plan)
      const logs = captureLogs()
      const [summary] = yield* (yield* BackfillRunner.BackfillRunner).run({ batchSize: 3, fixedBatchSize: true }).pipe(Effect.provide(logs.layer))
      expect(summary).toMatchObject({ outcome: "completed", processed: 9, updated: 8, rejected: 0, fastPath: "used" })
      expect(yield* readEmails).toEqual(rows.map(([id, , email]) => [id, email === null ? null : email.toLowerCase()]))
      expect(logs.lines.filter((l) => l.message.startsWith("SQL fast path off"))).toEqual([])
    }).pipe(Effect.provide(services(emailPlan("lower(email)")))))

  it.effect("a wrong SQL fast path (upper where convert lowers) is caught before use and turned off; every row still right", () =>
    Effect.gen(function*() {
      const plan = emailPlan("upper(email)")
      yield* seed(plan)
      const logs = captureLogs()
      const [summary] = yield* (yield* BackfillRunner.BackfillRunner).run({ batchSize: 3, fixedBatchSize: true }).pipe(Effect.provide(logs.layer))
      expect(summary).toMatchObject({ outcome: "completed", processed: 9, updated: 8, rejected: 0, fastPath: "off" })
      expect(yield* readEmails).toEqual(rows.map(([id, , email]) => [id, email === null ? null : email.toLowerCase()]))
      const off = logs.lines.filter((l) => l.message.startsWith("SQL fast path off"))
      expect(off.map((l) => [l.annotations["key"], l.annotations["target"], l.annotations["sql_value"], l.annotations["convert_value"]])).toEqual([
        ["1", "email_lower", `"ADA@EXAMPLE.COM"`, `"ada@example.com"`]
      ])
      expect((yield* Verifier.run()).passed).toBe(true)
    }).pipe(Effect.provide(services(emailPlan("upper(email)")))))

  it.effect("a fast path that goes wrong mid-job is caught by a batch's spot check, turned off, and the rest is right", () =>
    Effect.gen(function*() {
      // Right on the rows the sample before use sees (the first 200 pending), wrong from id 250 on.
      const plan = emailPlan("CASE WHEN id < 250 THEN lower(email) ELSE upper(email) END")
      yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
      const sql = yield* SqlClient.SqlClient
      for (let id = 1; id <= 300; id++) yield* sql`INSERT INTO people (id, email, kind) VALUES (${id}, ${`User${id}@X.org`}, 'person')`
      const logs = captureLogs()
      const [summary] = yield* (yield* BackfillRunner.BackfillRunner).run({ batchSize: 3, fixedBatchSize: true }).pipe(Effect.provide(logs.layer))
      expect(summary).toMatchObject({ processed: 300, updated: 300, fastPath: "off" })
      // The batch starting at 250 checks its first rows before its UPDATE: nothing wrong is written.
      const off = logs.lines.filter((l) => l.message.startsWith("SQL fast path off"))
      expect(off.map((l) => [l.annotations["key"], l.annotations["sql_value"]])).toEqual([["250", `"USER250@X.ORG"`]])
      const wrong = yield* sql<{ n: number | string }>`SELECT count(*) AS n FROM people WHERE email_lower <> lower(email)`
      expect(Number(wrong[0]!.n)).toBe(0)
    }).pipe(Effect.provide(services(emailPlan("CASE WHEN id < 250 THEN lower(email) ELSE upper(email) END")))))

  it.effect("the job's last event says what became of its SQL fast path, as the summary does; a job already done says none", () =>
    Effect.gen(function*() {
      yield* Migrator.run().pipe(Effect.provide(Migrator.layer(emailPlan("CASE WHEN id < 250 THEN lower(email) ELSE upper(email) END"))))
      const sql = yield* SqlClient.SqlClient
      for (let id = 1; id <= 300; id++) yield* sql`INSERT INTO people (id, email, kind) VALUES (${id}, ${`User${id}@X.org`}, 'person')`
      const events = (options: BackfillRunner.Options) =>
        BackfillRunner.stream(options).pipe(Stream.runCollect, Effect.map(Chunk.toReadonlyArray), Effect.provide(captureLogs().layer))
      const first = yield* events({ batchSize: 3, fixedBatchSize: true })
      expect(first.filter((e) => e.fastPath !== undefined).map((e) => [e.phase, e.fastPath])).toEqual([["completed", "off"]])
      const again = yield* events({})
      expect(again.map((e) => [e.phase, e.fastPath])).toEqual([["skipped", "none"]])
    }).pipe(Effect.provide(services(emailPlan("CASE WHEN id < 250 THEN lower(email) ELSE upper(email) END")))))

  it.effect("a fast path whose statement fails is turned off with the engine's words; the job goes on in JavaScript", () =>
    Effect.gen(function*() {
      const plan = emailPlan("no_such_function(email)")
      yield* seed(plan)
      const logs = captureLogs()
      const [summary] = yield* (yield* BackfillRunner.BackfillRunner).run().pipe(Effect.provide(logs.layer))
      expect(summary).toMatchObject({ outcome: "completed", processed: 9, updated: 8, fastPath: "off" })
      const off = logs.lines.filter((l) => l.message.startsWith("SQL fast path off: its statement failed"))
      expect(off).toHaveLength(1)
      expect(String(off[0]!.annotations["reason"])).toMatch(/no_such_function/)
      expect(yield* readEmails).toEqual(rows.map(([id, , email]) => [id, email === null ? null : email.toLowerCase()]))
    }).pipe(Effect.provide(services(emailPlan("no_such_function(email)")))))
})
