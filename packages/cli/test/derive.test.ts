/**
 * A `derive` step through the CLI on SQLite and PostgreSQL: from a `.mjs` plan with its own row
 * function (migrate, backfill with progress, verify, status, verify after a tampered row), and from a
 * JSON plan that names built-in transforms.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { execute, query } from "./support/legacy.js"
import { json, jsonLines, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-cli-derive-"))
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  Fs.rmSync(dir, { recursive: true, force: true })
})
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope))

const core = pathToFileURL(fileURLToPath(new URL("../../core/dist/index.js", import.meta.url))).href
const effect = pathToFileURL(
  Path.join(Path.dirname(createRequire(import.meta.url).resolve("effect/package.json")), "dist/esm/index.js")
).href

const table = `Plan.createTable("people", [
  { name: "id", type: "integer", primaryKey: true },
  { name: "full_name", type: "text" },
  { name: "email", type: "text" },
  { name: "status", type: "text" }
])`

const modulePlan = Path.join(dir, "people.mjs")
Fs.writeFileSync(modulePlan, `import { Either } from ${JSON.stringify(effect)}
import { Plan } from ${JSON.stringify(core)}

export default Plan.make("people", [
  Plan.migration(1, "people", [${table}]),
  Plan.migration(2, "names", [
    Plan.derive("people", {
      reads: ["full_name"],
      targets: [{ column: "first_name", type: "text" }, { column: "last_name", type: "text" }],
      convert: (row) => {
        if (row.full_name === "boom") throw new Error("the name exploded")
        if (typeof row.full_name !== "string") return Either.left("no name to split")
        const [first, ...rest] = row.full_name.split(" ")
        return { first_name: first, last_name: rest.length === 0 ? null : rest.join(" ") }
      }
    })
  ])
])
`)

const jsonPlan = Path.join(dir, "accounts.json")
Fs.writeFileSync(jsonPlan, JSON.stringify({
  name: "accounts",
  migrations: [
    { id: 1, name: "people", steps: [{ _tag: "CreateTable", table: "people", columns: [
      { name: "id", type: "integer", primaryKey: true },
      { name: "full_name", type: "text" },
      { name: "email", type: "text" },
      { name: "status", type: "text" }
    ] }] },
    { id: 2, name: "normalise", steps: [{
      _tag: "Derive",
      table: "people",
      reads: ["email", "status"],
      targets: [
        { column: "email_norm", type: "text", index: true, from: "email", apply: ["trim", "lower"] },
        { column: "status_code", type: "integer", from: "status", apply: [{ map: { active: 1, closed: 2 } }] }
      ],
      sql: { sqlite: { email_norm: "lower(trim(email))", status_code: "CASE status WHEN 'active' THEN 1 WHEN 'closed' THEN 2 END" },
        postgresql: { email_norm: "lower(btrim(email))", status_code: "CASE status WHEN 'active' THEN 1 WHEN 'closed' THEN 2 END" } }
    }] }
  ]
}))

// The same plan with a SQL fast path that disagrees with its transforms (upper where they lower).
const wrongFastPlan = Path.join(dir, "accounts-wrong.json")
Fs.writeFileSync(wrongFastPlan, Fs.readFileSync(jsonPlan, "utf8").replaceAll("lower(", "upper("))

const insertPeople = (url: string) =>
  execute(
    url,
    `INSERT INTO people (id, full_name, email, status) VALUES
      (1, 'Ada Lovelace', ' Ada@Example.COM ', 'active'),
      (2, 'Plato', 'plato@academy.gr', 'closed'),
      (3, NULL, NULL, NULL),
      (4, 'boom', 'x@y.z', 'paused'),
      (5, 'Alan Mathison Turing', 'ALAN@bletchley.uk', 'active')`
  )

const columns = async (url: string, names: string) =>
  (await query<Record<string, unknown>>(url, `SELECT id, ${names} FROM people ORDER BY id`)).map((r) =>
    Object.values(r).map((v) => (typeof v === "bigint" || (typeof v === "string" && /^\d+$/.test(v)) ? Number(v) : v))
  )

describe.each(engines)("strata with a derive step [$name]", (engine) => {
  it("from a .mjs plan: migrate, backfill with progress, verify, status; a tampered row fails verify", async () => {
    const url = await newDatabase(engine.name)
    const plan = ["--plan", modulePlan, "--db", url]
    expect((await strata(["migrate", ...plan])).code).toBe(0)
    await insertPeople(url)

    const backfill = await strata(["backfill", ...plan, "--json"])
    expect(backfill.code, show(backfill)).toBe(0)
    const events = jsonLines(backfill).filter((e) => e.type === "progress")
    expect(events.at(-1)).toMatchObject({ job: "people.first_name", phase: "completed", processed: 5, updated: 3, rejected: 2, percent: 100 })
    expect(await columns(url, "first_name, last_name")).toEqual([
      [1, "Ada", "Lovelace"],
      [2, "Plato", null],
      [3, null, null],
      [4, null, null],
      [5, "Alan", "Mathison Turing"]
    ])
    expect((await query(url, "SELECT row_key, reason FROM strata_rejects ORDER BY row_key")).map((r) => Object.values(r).join(" "))).toEqual([
      "3 full_name: no name to split",
      "4 full_name: convert threw Error: the name exploded"
    ])

    const human = await strata(["backfill", ...plan])
    expect(human.code, show(human)).toBe(0)
    expect(human.stdout).toContain("people.first_name")

    const verify = await strata(["verify", ...plan])
    expect(verify.code, show(verify)).toBe(0)
    const status = json(await strata(["status", ...plan, "--json"]))
    expect(status.columns.map((c: Record<string, unknown>) => [c.column, c.migrated, c.pending, c.rejected, c.label])).toEqual([
      ["first_name", 3, 0, 2, "Complete"],
      ["last_name", 2, 0, 2, "Complete"]
    ])

    await execute(url, "UPDATE people SET first_name = 'Augusta' WHERE id = 1")
    const tampered = await strata(["verify", ...plan])
    expect(tampered.code, show(tampered)).toBe(1)
    expect(tampered.stderr).toContain("people.first_name mismatch: 1 (e.g. 1)")
  })

  it("from a JSON plan naming built-in transforms, with a SQL fast path (checked against them)", async () => {
    const url = await newDatabase(engine.name)
    const plan = ["--plan", jsonPlan, "--db", url]
    expect((await strata(["migrate", ...plan])).code).toBe(0)
    await insertPeople(url)
    const backfill = await strata(["backfill", ...plan, "--json"])
    expect(backfill.code, show(backfill)).toBe(0)
    const job = json(backfill, "backfill").jobs[0]
    expect(job).toMatchObject({ job: "people.email_norm", processed: 5, updated: 3, rejected: 1, fastPath: "used" })
    expect(job.processed).toBe(job.updated + job.rejected + job.alreadySet + job.outOfScope)
    expect(await columns(url, "email_norm, status_code")).toEqual([
      [1, "ada@example.com", 1],
      [2, "plato@academy.gr", 2],
      [3, null, null],
      [4, null, null],
      [5, "alan@bletchley.uk", 1]
    ])
    expect((await query(url, "SELECT row_key, reason FROM strata_rejects")).map((r) => Object.values(r).join(" "))).toEqual([
      `4 status: map: "paused" is not in the map`
    ])
    const verify = await strata(["verify", ...plan])
    expect(verify.code, show(verify)).toBe(0)
  })

  it("a SQL fast path that disagrees with its transforms: turned off, said in the summary and the JSON, every value still right", async () => {
    const url = await newDatabase(engine.name)
    const plan = ["--plan", wrongFastPlan, "--db", url]
    expect((await strata(["migrate", ...plan])).code).toBe(0)
    await insertPeople(url)
    const backfill = await strata(["backfill", ...plan])
    expect(backfill.code, show(backfill)).toBe(0)
    expect(backfill.stdout).toContain(
      "The SQL fast path was turned off for people.email_norm: it failed a check (see the warning above); the rest of that job went through JavaScript, several times slower."
    )
    expect(await columns(url, "email_norm")).toEqual([[1, "ada@example.com"], [2, "plato@academy.gr"], [3, null], [4, null], [5, "alan@bletchley.uk"]])
    await execute(url, "UPDATE people SET email_norm = NULL, status_code = NULL")
    const again = await strata(["backfill", ...plan, "--json", "--restart"])
    expect(again.code, show(again)).toBe(0)
    expect(json(again, "backfill").jobs[0]).toMatchObject({ job: "people.email_norm", fastPath: "off" })
  })
})
