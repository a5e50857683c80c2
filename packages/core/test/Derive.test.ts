import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { Backfill, Checks, Compile, Lazy, Plan, Transform } from "../src/index.js"

const people = Plan.derive("people", {
  reads: ["full_name", "email"],
  targets: [
    { column: "first_name", type: "text" },
    { column: "last_name", type: "text" },
    { column: "email_lower", type: "text", index: true }
  ],
  convert: (row) => {
    if (row.full_name === "boom") throw new TypeError("no names today")
    if (typeof row.full_name !== "string") return Either.left(`full_name is ${row.full_name === null ? "NULL" : typeof row.full_name}`)
    const [first, ...rest] = row.full_name.split(" ")
    return { first_name: first!, last_name: rest.length === 0 ? null : rest.join(" "), email_lower: row.email === null ? null : String(row.email).toLowerCase() }
  },
  sql: { sqlite: { email_lower: "lower(email)" }, postgresql: { email_lower: "lower(email)" } },
  filter: { column: "kind", op: "eq", value: "person" }
})

const plan = Plan.make("people", [Plan.migration(1, "derive names", [people])])
const job = Backfill.jobs(plan)[0]!

const reasonOf = (result: Either.Either<Backfill.RowValues, Backfill.RejectReason>) =>
  Either.match(result, { onLeft: (r) => `${r.column}: ${r.reason}`, onRight: () => "converted" })

describe("Plan.derive", () => {
  it("becomes a job with typed targets, its reads and filter, and a per-engine fast path", () => {
    expect(job).toMatchObject({
      name: "people.first_name",
      migrationId: 1,
      table: "people",
      key: undefined,
      reads: ["full_name", "email", "kind"],
      sources: ["full_name", "email"],
      targets: [
        { column: "first_name", type: "text", index: undefined, epochMillis: false },
        { column: "last_name", type: "text", index: undefined, epochMillis: false },
        { column: "email_lower", type: "text", index: { name: "idx_people_email_lower", desc: false }, epochMillis: false }
      ],
      requires: undefined,
      filter: { column: "kind", op: "equals", value: "person" },
      fastPath: {
        sqlite: { expressions: [{ target: "email_lower", sql: "lower(email)" }], guard: undefined, textColumns: [] },
        pg: { expressions: [{ target: "email_lower", sql: "lower(email)" }], guard: undefined, textColumns: [] }
      }
    })
    // It covers one target of three, so no engine may use it (every row would still need the function).
    expect(Backfill.fastPathOn(job, "sqlite")).toBeUndefined()
  })

  it("converts through the function: NULL is an answer, throws and lefts reject the whole row", () => {
    const row = (full_name: unknown, email: unknown = "Ada@Example.COM") => ({ full_name, email, kind: "person", first_name: "stale" })
    expect(job.convert(row("Ada King Lovelace"))).toEqual(
      Either.right({ first_name: "Ada", last_name: "King Lovelace", email_lower: "ada@example.com" })
    )
    expect(job.convert(row("Plato", null))).toEqual(Either.right({ first_name: "Plato", last_name: null, email_lower: null }))
    expect(reasonOf(job.convert(row("boom")))).toBe("full_name, email: convert threw TypeError: no names today")
    expect(reasonOf(job.convert(row(42)))).toBe("full_name, email: full_name is number")
    expect(reasonOf(job.convert(row(null)))).toBe("full_name, email: full_name is NULL")
  })

  it("gives the function only the step's reads", () => {
    const seen: Array<unknown> = []
    const spy = Backfill.jobs(Plan.make("p", [Plan.migration(1, "m", [Plan.derive("t", {
      reads: ["a"],
      targets: [{ column: "b", type: "integer" }],
      convert: (row) => {
        seen.push({ ...row })
        return { b: 1 }
      },
      filter: { column: "kind", op: "equals", value: "x" }
    })])]))[0]!
    spy.convert({ a: 1, kind: "x", b: null, __strata_key: 7 })
    expect(seen).toEqual([{ a: 1 }])
  })

  it("rejects what cannot be stored in a target instead of writing part of a row", () => {
    const make = (type: Plan.ColumnType, convert: (row: { readonly v: any }) => Plan.DeriveResult<"out">) =>
      Backfill.jobs(Plan.make("p", [Plan.migration(1, "m", [Plan.derive("t", { reads: ["v"], targets: [{ column: "out", type }], convert })])]))[0]!
    const text = make("text", (row) => ({ out: row.v }))
    expect(reasonOf(text.convert({ v: 5 }))).toBe("out: expected text, got number 5")
    const integer = make("integer", (row) => ({ out: row.v }))
    expect(integer.convert({ v: 2_147_483_647 })).toEqual(Either.right({ out: 2_147_483_647 }))
    expect(reasonOf(integer.convert({ v: 2_147_483_648 }))).toBe("out: expected a 32-bit integer, got number 2147483648")
    expect(reasonOf(integer.convert({ v: 1.5 }))).toBe("out: expected a 32-bit integer, got number 1.5")
    const big = make("bigint", (row) => ({ out: row.v }))
    expect(big.convert({ v: 2n ** 62n })).toEqual(Either.right({ out: 2n ** 62n }))
    expect(big.convert({ v: 12n })).toEqual(Either.right({ out: 12 }))
    expect(reasonOf(big.convert({ v: 2n ** 63n }))).toBe("out: expected a 64-bit integer, got bigint 9223372036854775808")
    expect(reasonOf(make("real", (row) => ({ out: row.v })).convert({ v: Number.NaN }))).toBe("out: expected a finite number, got number NaN")
    expect(reasonOf(make("boolean", (row) => ({ out: row.v })).convert({ v: 1 }))).toBe("out: expected a boolean, got number 1")
    const json = make("json", (row) => ({ out: row.v }))
    expect(json.convert({ v: { a: [1, "x", null] } })).toEqual(Either.right({ out: { a: [1, "x", null] } }))
    expect(reasonOf(json.convert({ v: { a: 1n } }))).toBe("out: expected a JSON value, got object [object Object]")
    expect(reasonOf(make("text", () => ({}) as never).convert({ v: 1 }))).toBe(
      "out: convert returned no value for it (return null to leave it NULL)"
    )
    expect(reasonOf(make("text", () => ({ out: "a", typo: "b" }) as never).convert({ v: 1 }))).toBe(
      "typo: convert returned a value for a column that is not a target (targets: out)"
    )
    expect(reasonOf(make("text", () => "a" as never).convert({ v: 1 }))).toBe(
      "v: convert returned \"a\", not an object of target values"
    )
  })

  it("adds its targets (and indexes) in order, on both dialects", () => {
    const migration = plan.migrations[0]!
    expect(Compile.statements(migration, "sqlite").map((s) => s.sql)).toEqual([
      `ALTER TABLE "people" ADD COLUMN "first_name" TEXT`,
      `ALTER TABLE "people" ADD COLUMN "last_name" TEXT`,
      `ALTER TABLE "people" ADD COLUMN "email_lower" TEXT`,
      `CREATE INDEX IF NOT EXISTS "idx_people_email_lower" ON "people" ("email_lower")`
    ])
    const typed = Plan.migration(2, "typed", [Plan.derive("app.t", {
      reads: ["s"],
      targets: [{ column: "n", type: "bigint", from: "s", apply: ["timestamp"] }, { column: "j", type: "json", from: "s", apply: [{ json: "a" }] }]
    })])
    expect(Compile.statements(typed, "pg").map((s) => s.sql)).toEqual([
      `ALTER TABLE "app"."t" ADD COLUMN IF NOT EXISTS "n" BIGINT`,
      `ALTER TABLE "app"."t" ADD COLUMN IF NOT EXISTS "j" JSONB`
    ])
  })

  it("checks its targets by type and recomputes them exactly", () => {
    const [checks] = Checks.forJobs(plan)
    expect(checks!.specs.map((s) => `${s.kind} ${s.column}`)).toEqual([
      "mismatch first_name", "missing first_name", "orphan first_name", "coverage first_name",
      "mismatch last_name", "missing last_name", "orphan last_name", "coverage last_name",
      "mismatch email_lower", "missing email_lower", "orphan email_lower", "coverage email_lower",
      "unconvertible full_name, email", "rejects full_name, email"
    ])
    const range = { min: 0, max: 1 } as never
    const row = { full_name: "Plato", email: "P@X", kind: "person", first_name: "Plato", last_name: null, email_lower: "P@X" }
    expect(Checks.verdict(checks!, row, range).targets.map((t) => `${t.column} ${t.outcome}`)).toEqual([
      "first_name match", "last_name empty", "email_lower mismatch"
    ])
    expect(Checks.verdict(checks!, { ...row, kind: "robot" }, range).applies).toBe(false)
    expect(Checks.verdict(checks!, { ...row, full_name: "boom" }, range).unconvertible).toBe(
      "full_name, email: convert threw TypeError: no names today"
    )
  })

  it("compares stored values exactly, whatever the driver's representation", () => {
    expect(Checks.sameValue("bigint", "9007199254740993", 9007199254740993n)).toBe(true)
    expect(Checks.sameValue("bigint", 5n, 5)).toBe(true)
    expect(Checks.sameValue("integer", "5", 6)).toBe(false)
    expect(Checks.sameValue("boolean", 1, true)).toBe(true)
    expect(Checks.sameValue("boolean", 0, true)).toBe(false)
    expect(Checks.sameValue("boolean", "1", true)).toBe(false)
    expect(Checks.sameValue("json", `{"b":1,"a":[true]}`, { a: [true], b: 1 })).toBe(true)
    expect(Checks.sameValue("json", { b: 1, a: [true] }, { a: [true], b: 1 })).toBe(true)
    expect(Checks.sameValue("json", `{"a":1}`, { a: 2 })).toBe(false)
    expect(Checks.sameValue("real", 0.1 + 0.2, 0.3)).toBe(false)
    expect(Checks.sameValue("text", "a", "a")).toBe(true)
  })

  it("fixes a read row's missing targets only, from the same function", () => {
    const [rule] = Lazy.rulesFor(plan, "people")
    const read = { full_name: "Ada Lovelace", email: "A@B", kind: "person", first_name: null, last_name: "Kept", email_lower: null }
    expect(Lazy.fix(rule!, read)).toEqual(["Ada", null, "a@b"])
    expect(Lazy.fix(rule!, { ...read, first_name: "x", email_lower: "y" })).toBeUndefined()
    // A NULL the function gives is an answer: nothing to fill, nothing to write.
    expect(Lazy.fix(rule!, { full_name: "Plato", email: null, kind: "person", first_name: "Plato", last_name: null, email_lower: null }))
      .toBeUndefined()
    expect(Lazy.fix(rule!, { ...read, full_name: "boom" })).toBe(Lazy.unconvertible)
    const { kind: _, ...withoutFilterColumn } = read
    expect(Lazy.fix(rule!, withoutFilterColumn)).toBeUndefined()
    expect(Lazy.fix(rule!, { ...read, kind: "robot" })).toBeUndefined()
  })
})

describe("built-in transforms", () => {
  const builtins = Plan.derive("accounts", {
    reads: ["email", "status", "payload"],
    targets: [
      { column: "email_norm", type: "text", from: "email", apply: ["trim", "lower"] },
      { column: "status_code", type: "integer", from: "status", apply: [{ map: { active: 1, closed: 2 } }] },
      { column: "signed_up_ms", type: "bigint", from: "payload", apply: [{ json: "signup.at" }, "timestamp"] },
      { column: "plan_name", type: "text", from: "payload", apply: [{ json: "plan" }, { map: { p: "pro" }, otherwise: null }] }
    ]
  })
  const accounts = Backfill.workOf(builtins)!

  it("run as a pipeline per target, each target's source named in a reason", () => {
    const row = { email: "  Ada@Example.COM ", status: "active", payload: JSON.stringify({ signup: { at: "2024-01-15 12:00:00" }, plan: "p" }) }
    expect(accounts.convert(row)).toEqual(Either.right({ email_norm: "ada@example.com", status_code: 1, signed_up_ms: 1705320000000, plan_name: "pro" }))
    expect(accounts.convert({ email: null, status: null, payload: null })).toEqual(
      Either.right({ email_norm: null, status_code: null, signed_up_ms: null, plan_name: null })
    )
    expect(accounts.convert({ ...row, payload: `{"plan":"x"}` })).toEqual(
      Either.right({ email_norm: "ada@example.com", status_code: 1, signed_up_ms: null, plan_name: null })
    )
    expect(reasonOf(accounts.convert({ ...row, status: "paused" }))).toBe(`status: map: "paused" is not in the map`)
    expect(reasonOf(accounts.convert({ ...row, email: 7 }))).toBe("email: trim: expected text, found number 7")
    expect(reasonOf(accounts.convert({ ...row, payload: "{" }))).toMatch(/^payload: invalid JSON: /)
    expect(reasonOf(accounts.convert({ ...row, payload: `{"signup":{"at":"yesterday"}}` }))).toMatch(/^payload: "yesterday": /)
    expect(accounts.convert({ ...row, payload: `{"plan":5}` })).toEqual(
      Either.right({ email_norm: "ada@example.com", status_code: 1, signed_up_ms: null, plan_name: null })
    )
    expect(reasonOf(accounts.convert({ ...row, status: 3 }))).toBe(`status: map: number 3 is not in the map`)
  })

  it("mark epoch-ms targets for the range check", () => {
    expect(accounts.targets.map((t) => t.epochMillis)).toEqual([false, false, true, false])
  })

  it("are the same readers TS code can call", () => {
    expect(Transform.lower("ÀB")).toEqual(Either.right("àb"))
    expect(Transform.trim(null)).toEqual(Either.right(null))
    expect(Transform.jsonPath("a.b")({ a: { b: 0 } })).toEqual(Either.right(0))
    expect(Transform.jsonPath("a.b")("")).toEqual(Either.right(null))
    expect(Transform.jsonPath("a")("[1]")).toEqual(Either.left("payload is not a JSON object: an array"))
    expect(Transform.valueMap({ "1": "one" })(1)).toEqual(Either.right("one"))
    expect(Transform.valueMap({ a: 1 }, { otherwise: 0 })(null)).toEqual(Either.right(0))
    expect(Transform.timestamp("1970-01-01 00:00:00")).toEqual(Either.right(0))
    expect(Transform.pipeline([])(undefined)).toEqual(Either.right(null))
  })

  it("decode from a JSON plan, which then round-trips with its checksum", () => {
    const text = JSON.stringify(Plan.toJson(Plan.make("accounts", [Plan.migration(3, "normalise", [builtins])])))
    const decoded = Either.getOrThrow(Plan.fromJson(text, "accounts.json"))
    expect(decoded.migrations[0]!.steps[0]).toEqual(builtins)
    expect(Compile.checksum(decoded.migrations[0]!)).toBe(Compile.checksum(Plan.migration(3, "other name", [builtins])))
  })
})

describe("plans that carry functions", () => {
  it("refuse toJson with a typed error naming the step", () => {
    expect(() => Plan.toJson(plan)).toThrow(Plan.PlanNotSerializable)
    expect(() => Plan.toJson(plan)).toThrow(
      "plan people cannot be written as JSON: at migrations[0].steps[0].convert: the Derive (people) step carries a function; " +
        "a JSON plan names built-in transforms instead (from/apply)"
    )
  })

  it("have a checksum that covers the step's data but not the function's code", () => {
    const withConvert = (convert: (row: { readonly a: any }) => Plan.DeriveResult<"b">, type: Plan.ColumnType = "text") =>
      Compile.checksum(Plan.migration(1, "m", [Plan.derive("t", { reads: ["a"], targets: [{ column: "b", type }], convert })]))
    const lower = withConvert((row) => ({ b: String(row.a).toLowerCase() }))
    expect(withConvert((row) => ({ b: String(row.a).toUpperCase() }))).toBe(lower)
    expect(withConvert((row) => ({ b: String(row.a) }), "json")).not.toBe(lower)
    const builtin = Compile.checksum(Plan.migration(1, "m", [Plan.derive("t", { reads: ["a"], targets: [{ column: "b", type: "text", from: "a", apply: ["lower"] }] })]))
    expect(builtin).not.toBe(lower)
    // Pinned: a derive's checksum is as stable as any other step's.
    expect(lower).toBe(Compile.checksum(Plan.migration(1, "again", [Plan.derive("t", { reads: ["a"], targets: [{ column: "b", type: "text" }], convert: () => ({ b: null }) })])))
  })
})

describe("constructors fail like a JSON plan", () => {
  const thrown = (f: () => unknown): Plan.InvalidPlan => {
    try {
      f()
    } catch (error) {
      if (error instanceof Plan.InvalidPlan) return error
      throw error
    }
    throw new Error("did not throw")
  }
  const jsonIssue = (...steps: ReadonlyArray<unknown>) =>
    Either.match(Plan.decode({ name: "p", migrations: [{ id: 1, name: "m", steps }] }, "plan.json"), {
      onLeft: (e) => e.message,
      onRight: () => "decoded"
    })

  it("name the field and the value, in the words the CLI prints for a JSON plan", () => {
    const injection = thrown(() => Plan.epochShadow("messages; drop table messages", "created_at"))
    const expected =
      `at table: expected a table name (an identifier, or schema.table with each part an identifier: letters, digits and _, not starting with a digit, at most 63 characters), got "messages; drop table messages"`
    expect(injection.message).toBe(`invalid plan in Plan.epochShadow: ${expected}`)
    expect(jsonIssue({ _tag: "EpochShadow", table: "messages; drop table messages", column: "created_at" })).toBe(
      `invalid plan in plan.json: ${expected.replace("at table", "at migrations[0].steps[0].table")}`
    )
    expect(injection.message).not.toContain("Predicate refinement failure")
  })

  it("report duplicate migration ids at the second one", () => {
    const duplicate = thrown(() => Plan.make("p", [Plan.migration(2, "a", []), Plan.migration(2, "b", [])]))
    expect(duplicate._tag).toBe("InvalidPlan")
    expect(duplicate.message).toBe("invalid plan in Plan.make: at migrations[1].id: migration ids must be unique and ascending: 2 follows 2")
  })

  it("report two steps with one backfill job name at the second (they would share its checkpoint)", () => {
    const audit = (target: string, job?: string) =>
      Plan.extractJson("audits", "payload", { targets: [{ column: target, paths: [`$.${target}`], as: "text" }], ...(job === undefined ? {} : { job }) })
    const clash = thrown(() => Plan.make("p", [Plan.migration(1, "a", [audit("kind")]), Plan.migration(2, "b", [audit("actor")])]))
    expect(clash._tag).toBe("InvalidPlan")
    expect(clash.message).toBe(
      `invalid plan in Plan.make: at migrations[1].steps[0]: backfill job names must be unique: "audits.payload" is also the job of a step in migration 1 (give one step its own "job")`
    )
    const named = Plan.make("p", [Plan.migration(1, "a", [audit("kind")]), Plan.migration(2, "b", [audit("actor", "audits.actor")])])
    expect(Backfill.jobs(named).map((j) => j.name)).toEqual(["audits.payload", "audits.actor"])
    expect(jsonIssue({ _tag: "Derive", table: "t", job: "t.c_ms", reads: ["a"], targets: [{ column: "b", type: "text", from: "a" }] }, {
      _tag: "EpochShadow", table: "t", column: "c"
    })).toBe(
      `invalid plan in plan.json: at migrations[0].steps[1]: backfill job names must be unique: "t.c_ms" is also the job of a step in migration 1 (give one step its own "job")`
    )
  })

  it("report bad types, unknown options and derive mistakes by path", () => {
    expect(thrown(() => Plan.addColumn("t", "c", "varchar" as never)).message).toBe(
      `invalid plan in Plan.addColumn: at column.type: Expected "integer" | "bigint" | "real" | "text" | "boolean" | "json" | "timestamp_text", actual "varchar"`
    )
    expect(thrown(() => Plan.migration(0, "m", [])).message).toBe("invalid plan in Plan.migration: at id: Expected a positive number, actual 0")
    expect(thrown(() => Plan.epochShadow("t", "c", { indx: true } as never)).message).toBe(
      `invalid plan in Plan.epochShadow: at indx: is unexpected, expected: "table" | "column" | "target" | "index" | "key" | "accept" | "plausible" | "sync" | "_tag"`
    )
    const derive = (options: Plan.DeriveOptions<string, string>) => thrown(() => Plan.derive("t", options)).message
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text" }] })).toBe(
      "invalid plan in Plan.derive: at targets[0].from: a step without convert needs from (a column of reads) on every target"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text", from: "c" }] })).toBe(
      "invalid plan in Plan.derive: at targets[0].from: c is not one of reads (a)"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text", from: "a", apply: ["timestamp"] }] })).toBe(
      "invalid plan in Plan.derive: at targets[0].type: timestamp gives epoch milliseconds: the type must be bigint, got text"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text", from: "a" }], convert: () => ({ b: null }) })).toBe(
      "invalid plan in Plan.derive: at targets[0].from: a step with convert computes every target; remove from/apply, or convert"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text" }, { column: "b", type: "text" }], convert: () => ({ b: null }) })).toBe(
      "invalid plan in Plan.derive: at targets[1].column: target b is listed twice"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "a", type: "text" }], convert: () => ({ a: null }) })).toBe(
      "invalid plan in Plan.derive: at targets[0].column: target a is also read; a derive writes new columns"
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text" }], convert: () => ({ b: null }), sql: { sqlite: { c: "1" } } })).toBe(
      `invalid plan in Plan.derive: at sql.sqlite.c: "c" is not a target of the step (b)`
    )
    expect(derive({ reads: ["a"], targets: [{ column: "b", type: "text" }], convert: 3 as never })).toBe(
      "invalid plan in Plan.derive: at convert: expected a function (row) => values, got number 3"
    )
    expect(derive({ reads: [`x"; DROP TABLE y; --`], targets: [{ column: "b", type: "text" }], convert: () => ({ b: null }) })).toBe(
      `invalid plan in Plan.derive: at reads[0]: expected a SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters), got "x\\"; DROP TABLE y; --"`
    )
  })

  it("are the same issues a JSON plan gets for a derive", () => {
    expect(jsonIssue({ _tag: "Derive", table: "t", reads: ["a"], targets: [{ column: "b", type: "text", from: "c" }] })).toBe(
      "invalid plan in plan.json: at migrations[0].steps[0].targets[0].from: c is not one of reads (a)"
    )
    expect(jsonIssue({ _tag: "Derive", table: "t", reads: ["a"], targets: [{ column: "b", type: "text", from: "a", apply: ["upper"] }] }))
      .toContain("migrations[0].steps[0].targets[0].apply[0]")
  })
})

describe("the README's derive example", () => {
  it("compiles and converts as the README says", () => {
    // --- README derive example starts ---
    const step = Plan.derive("people", {
      reads: ["full_name", "email"],
      targets: [{ column: "first_name", type: "text" }, { column: "last_name", type: "text" }, { column: "email_lower", type: "text", index: true }],
      convert: (row) => {
        if (typeof row.full_name !== "string") return Either.left("no name to split") // recorded in strata_rejects
        const [first, ...rest] = row.full_name.split(" ")
        return { first_name: first ?? null, last_name: rest.length > 0 ? rest.join(" ") : null, email_lower: row.email?.toLowerCase() ?? null }
      },
      key: "id", filter: { column: "kind", op: "eq", value: "person" } // optional
    })
    // --- README derive example ends ---
    const work = Backfill.workOf(step)!
    expect(work.convert({ full_name: "Plato", email: "P@A.GR", kind: "person" })).toEqual(
      Either.right({ first_name: "Plato", last_name: null, email_lower: "p@a.gr" })
    )
    expect(reasonOf(work.convert({ full_name: null, email: null, kind: "person" }))).toBe("full_name, email: no name to split")
  })
})
