/**
 * Bad input never produces a stack trace: one line naming the problem on stderr and the documented
 * exit code (2: fix the command line; 1: the work could not be done).
 */
import { describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { seedLegacy } from "./support/legacy.js"
import { show, strata } from "./support/strata.js"

let dir = ""
beforeAll(() => {
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-cli-errors-"))
})
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const file = (name: string, text: string): string => {
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, text)
  return path
}

const stderrLines = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "")

/** The run failed with exactly one stderr line, which is `line`. */
const expectOneLine = (result: { readonly code: number | null; readonly stderr: string; readonly stdout: string }, code: number, line: string) => {
  expect(result.code, show(result as never)).toBe(code)
  expect(stderrLines(result.stderr)).toEqual([line])
  expect(result.stdout).toBe("")
}

describe.concurrent("strata: bad input", () => {
  it("an unreadable plan file", async () => {
    const missing = Path.join(dir, "p.json")
    expectOneLine(await strata(["migrate", "--plan", missing, "--db", Path.join(dir, "a.db")]), 2, `strata: cannot read plan ${missing}: ENOENT: no such file`)
  })

  it("a plan file that is not JSON", async () => {
    const plan = file("broken.json", "{\"name\": \"x\", \"migrations\": [")
    const result = await strata(["migrate", "--plan", plan, "--db", Path.join(dir, "b.db")])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)).toHaveLength(1)
    expect(result.stderr).toMatch(new RegExp(`^strata: invalid plan in ${plan.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: at \\(root\\): not valid JSON: `))
  })

  it("a plan whose step is malformed names the field's path", async () => {
    const plan = file("bad-step.json", JSON.stringify({
      name: "shop",
      migrations: [{ id: 1, name: "orders", steps: [{ _tag: "EpochShadow", table: "orders; DROP TABLE x", column: "created_at" }] }]
    }))
    const result = await strata(["migrate", "--plan", plan, "--db", Path.join(dir, "c.db")])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)).toHaveLength(1)
    expect(result.stderr).toContain(`strata: invalid plan in ${plan}: at migrations[0].steps[0].table: `)
    expect(Fs.existsSync(Path.join(dir, "c.db"))).toBe(false)
  })

  it("a plan module that exports no plan", async () => {
    const plan = file("empty.mjs", "export const notAPlan = 1\n")
    expectOneLine(
      await strata(["status", "--plan", plan, "--db", Path.join(dir, "d.db")]),
      2,
      `strata: cannot read plan ${plan}: the module exports no plan (expected a default export or an export named "plan")`
    )
  })

  it("a plan module exporting a plan is used", async () => {
    const plan = file("plan.mjs", `export const plan = ${JSON.stringify({
      name: "shop",
      migrations: [{ id: 1, name: "orders", steps: [{ _tag: "CreateTable", table: "orders", columns: [{ name: "id", type: "integer", primaryKey: true }] }] }]
    })}\n`)
    const db = Path.join(dir, "module.db")
    const result = await strata(["migrate", "--plan", plan, "--db", db])
    expect(result.code, show(result)).toBe(0)
    expect(result.stdout).toContain("applied     1  orders")
  })

  it("a plan module whose constructor refuses its input gets the JSON plan's message", async () => {
    const core = pathToFileURL(fileURLToPath(new URL("../../core/dist/index.js", import.meta.url))).href
    const plan = file("injected.mjs", [
      `import { Plan } from ${JSON.stringify(core)}`,
      `export const plan = Plan.make("shop", [Plan.migration(1, "m", [Plan.epochShadow("messages; drop table messages", "created_at")])])`
    ].join("\n"))
    const json = file("injected.json", JSON.stringify({
      name: "shop",
      migrations: [{ id: 1, name: "m", steps: [{ _tag: "EpochShadow", table: "messages; drop table messages", column: "created_at" }] }]
    }))
    const reason = `expected a table name (an identifier, or schema.table with each part an identifier: letters, digits and _, not starting with a digit, at most 63 characters), got "messages; drop table messages"`
    expectOneLine(
      await strata(["migrate", "--plan", plan, "--db", Path.join(dir, "injected.db")]),
      2,
      `strata: invalid plan in Plan.epochShadow: at table: ${reason}`
    )
    expectOneLine(
      await strata(["migrate", "--plan", json, "--db", Path.join(dir, "injected.db")]),
      2,
      `strata: invalid plan in ${json}: at migrations[0].steps[0].table: ${reason}`
    )
  })

  it("an unknown built-in plan name", async () => {
    expectOneLine(
      await strata(["migrate", "--plan", "shop", "--db", Path.join(dir, "e.db")]),
      2,
      "strata: unknown plan \"shop\": give a built-in plan (agentos, chat-store), a .json file or a .js/.mjs module"
    )
  })

  it("a --db URL strata cannot use", async () => {
    expectOneLine(
      await strata(["status", "--db", "mysql://root:secret@localhost/app"]),
      2,
      "strata: Invalid database URL \"mysql://root:***@localhost/app\": unsupported scheme \"mysql:\"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…)"
    )
  })

  it("an unreachable PostgreSQL server (password redacted)", async () => {
    const result = await strata(["status", "--db", "postgres://app:secret@127.0.0.1:1/app"])
    expect(result.code, show(result)).toBe(1)
    const lines = stderrLines(result.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^strata: Cannot open database postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/app: .*ECONNREFUSED/)
    expect(result.stderr).not.toContain("secret")
  })

  it("a SQLite file in a directory that does not exist", async () => {
    const db = Path.join(dir, "nowhere", "x.db")
    expectOneLine(
      await strata(["migrate", "--db", db]),
      1,
      `strata: Cannot open database ${db}: directory ${Path.join(dir, "nowhere")} does not exist`
    )
  })

  it("a failed migrate of a new SQLite file leaves no file behind", async () => {
    const db = Path.join(dir, "first.db")
    const result = await strata(["migrate", "--db", db])
    expect(result.code, show(result)).toBe(1)
    expect(stderrLines(result.stderr).at(-1)).toBe(
      "strata: Plan agentos cannot apply to this database, nothing was changed: migration 21 \"audit decision fields\": table task_audits does not exist (the extractJson step on task_audits.payload) and no earlier migration creates it (and 15 more)"
    )
    expect(Fs.readdirSync(dir).filter((name) => name.startsWith("first.db"))).toEqual([])
  })

  it("status, verify and backfill do not create a missing SQLite file", async () => {
    const db = Path.join(dir, "missing.db")
    for (const command of ["status", "verify", "backfill"]) {
      expectOneLine(
        await strata([command, "--db", db]),
        1,
        `strata: database ${db} does not exist; create it with 'strata migrate' (or try 'strata demo')`
      )
    }
    expect(Fs.existsSync(db)).toBe(false)
  })

  it("an unknown job names the plan's jobs", async () => {
    const db = Path.join(dir, "jobs.db")
    await seedLegacy(db, 20)
    const result = await strata(["backfill", "--db", db, "--job", "chat_messages.nope"])
    expect(result.code, show(result)).toBe(2)
    const lines = stderrLines(result.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^strata: Unknown job "chat_messages\.nope"; the plan's jobs are: task_audits\.payload, chat_sessions\.created_at_ms, /)
  })

  it("backfill numbers out of range, named as typed (the runner's own check, before the database is opened)", async () => {
    expectOneLine(
      await strata(["backfill", "--db", Path.join(dir, "numbers.db"), "--batch-size", "0", "--pause-ms", "-5"]),
      2,
      "strata: --batch-size must be a positive integer, got 0"
    )
    expectOneLine(
      await strata(["backfill", "--db", Path.join(dir, "numbers.db"), "--pause-ms", "-5"]),
      2,
      `strata: --pause-ms must be a finite duration of zero or more (milliseconds as a number, "2 seconds", or a Duration), got -5`
    )
    expectOneLine(
      await strata(["backfill", "--db", Path.join(dir, "numbers.db"), "--writer-turn-ms", "-1"]),
      2,
      `strata: --writer-turn-ms must be a finite duration of zero or more (milliseconds as a number, "2 seconds", or a Duration), got -1`
    )
    expectOneLine(
      await strata(["backfill", "--db", Path.join(dir, "numbers.db"), "--batch-lock-timeout-ms", "0"]),
      2,
      `strata: --batch-lock-timeout-ms must be a finite duration of more than zero (milliseconds as a number, "2 seconds", or a Duration), got 0`
    )
    expectOneLine(
      await strata(["backfill", "--db", Path.join(dir, "numbers.db"), "--max-batch-ms", "0"]),
      2,
      `strata: --max-batch-ms must be a finite duration of more than zero (milliseconds as a number, "2 seconds", or a Duration), got 0`
    )
  })

  it("--to a migration the plan does not have", async () => {
    const db = Path.join(dir, "to.db")
    await seedLegacy(db, 20)
    expectOneLine(await strata(["migrate", "--db", db, "--to", "7"]), 2, "strata: Migration 7 is not in plan agentos (its migrations: 21, 44)")
  })

  it("STRATA_DATABASE_URL is the default --db", async () => {
    expectOneLine(
      await strata(["status"], { env: { STRATA_DATABASE_URL: "mysql://localhost/env" } }),
      2,
      "strata: Invalid database URL \"mysql://localhost/env\": unsupported scheme \"mysql:\"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…)"
    )
  })

  it("--log-level debug adds the stack trace", async () => {
    const result = await strata(["migrate", "--plan", "shop", "--db", Path.join(dir, "f.db"), "--log-level", "debug"])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)[0]).toBe(
      "strata: unknown plan \"shop\": give a built-in plan (agentos, chat-store), a .json file or a .js/.mjs module"
    )
    expect(result.stderr).toMatch(/\n\s+at .*PlanSource\.js/)
  })
})

describe.concurrent("strata: usage errors print the usage (exit 2)", () => {
  it("a value of the wrong type", async () => {
    const result = await strata(["migrate", "--to", "latest"])
    expect(result.code, show(result)).toBe(2)
    expect(result.stderr).toContain("'latest' is not a integer")
    expect(result.stderr).toContain("usage: strata migrate [--db path|url] [--plan name|file] [--json] [--to integer]")
    expect(result.stderr).toContain("Run 'strata migrate --help' for details.")
    expect(result.stdout).toBe("")
  })

  it("an unknown option", async () => {
    const result = await strata(["backfill", "--batchsize", "10"])
    expect(result.code, show(result)).toBe(2)
    expect(result.stderr).toContain("Received unknown argument: '--batchsize'")
    expect(result.stderr).toContain("usage: strata backfill ")
  })

  it("an unknown subcommand", async () => {
    const result = await strata(["migrat"])
    expect(result.code, show(result)).toBe(2)
    expect(result.stderr).toContain("usage: strata <command> [options]   (commands: migrate, status, validate, backfill, verify, rejects, fleet, import-legacy, demo)")
  })

  it("an unknown log level", async () => {
    const result = await strata(["status", "--log-level", "loud"])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)[0]).toBe(
      "strata: Unknown log level \"loud\"; expected one of all, trace, debug, info, warning, warn, error, fatal, none"
    )
    expect(result.stderr).toContain("usage: strata status ")
  })

  it("demo --rows out of range", async () => {
    expectOneLine(await strata(["demo", "--rows", "0", "--db", Path.join(dir, "g.db")]), 2, "strata: --rows must be between 1 and 1,000,000, got 0")
    expect(Fs.existsSync(Path.join(dir, "g.db"))).toBe(false)
  })

  it("--help and --version", async () => {
    const help = await strata(["--help"])
    expect(help.code, show(help)).toBe(0)
    for (const command of ["migrate", "status", "backfill", "verify", "import-legacy", "demo"]) expect(help.stdout).toContain(command)
    const migrateHelp = await strata(["migrate", "--help"])
    expect(migrateHelp.code).toBe(0)
    expect(migrateHelp.stdout).toContain("--dry-run")
    expect(migrateHelp.stdout).not.toMatch(/\x1b\[/)
    const version = await strata(["--version"])
    const pkg = JSON.parse(Fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
    expect(version.code).toBe(0)
    expect(version.stdout.trim()).toBe(pkg.version)
  })
})
