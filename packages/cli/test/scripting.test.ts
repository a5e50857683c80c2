/**
 * The CLI as scripts use it: `--json` is JSON lines on stdout for every command (progress, then
 * one result) with epoch-ms fields named `…Ms` and no ISO text; failures with `--json` are one JSON
 * object on stderr with the same exit codes; no command silently picks a plan; the options every
 * command takes may come before it; help is strata's own; `strata rejects` lists what backfills
 * rejected (key and reason), exactly the rows recorded; and Ctrl-C after `--restart` says how to resume.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import * as Cli from "../src/Cli.js"
import * as Help from "../src/Help.js"
import { execute, query, seedLegacy } from "./support/legacy.js"
import { json, jsonLines, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const stderrLines = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "")

// ISO 8601 instants (what `appliedAt` used to be): never in JSON output, whose instants are epoch ms.
const isoInstant = /"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/

/** Every key of a JSON value, at any depth. */
const keysOf = (value: unknown): ReadonlyArray<string> =>
  Array.isArray(value)
    ? value.flatMap(keysOf)
    : typeof value === "object" && value !== null
    ? Object.entries(value).flatMap(([key, inner]) => [key, ...keysOf(inner)])
    : []

// Keys that hold epoch ms or ms durations must end in Ms; these are the ones strata's output had without it.
const unsuffixedTimeKeys = ["appliedAt", "checkedAt", "elapsed", "duration", "eta", "at", "before", "after", "read", "min", "max"]

describe("strata --json: JSON lines, one result, one naming convention", () => {
  it.each(engines.map((e) => e.name))("every command [%s]", async (engine) => {
    const url = await newDatabase(engine)
    await seedLegacy(url, 200)
    const runs = {
      "migrate --dry-run": await strata(["migrate", "--db", url, "--json", "--dry-run"]),
      migrate: await strata(["migrate", "--db", url, "--json"]),
      backfill: await strata(["backfill", "--db", url, "--json", "--batch-size", "50"]),
      status: await strata(["status", "--db", url, "--json"]),
      verify: await strata(["verify", "--db", url, "--json"]),
      rejects: await strata(["rejects", "--db", url, "--json"])
    }
    for (const [name, result] of Object.entries(runs)) {
      expect(result.code, `${name}\n${show(result)}`).toBe(0)
      const lines = jsonLines(result)
      expect(lines.length, name).toBeGreaterThan(0)
      expect(lines.slice(0, -1).map((line) => line.type).filter((type) => type !== "progress"), name).toEqual([])
      expect(lines.at(-1)).toMatchObject({ type: "result", command: name.split(" ")[0] })
      expect(result.stdout, name).not.toMatch(isoInstant)
      expect(keysOf(lines).filter((key) => unsuffixedTimeKeys.includes(key)), name).toEqual([])
      expect(result.stderr, name).toBe("")
    }
    expect(jsonLines(runs.backfill).filter((line) => line.type === "progress").length).toBeGreaterThan(16)

    const migrated = json(runs.migrate, "migrate")
    const [applied21] = await query<{ applied_at_ms: number }>(url, "SELECT applied_at_ms FROM strata_migrations WHERE id = 21")
    expect(migrated.applied.map((m: { id: number; appliedAtMs: number }) => [m.id, m.appliedAtMs])[0]).toEqual([21, applied21!.applied_at_ms])

    const status = json(runs.status, "status")
    expect(Object.keys(status)).toEqual(["database", "plan", "migrations", "unknown", "indexes", "constraints", "columns", "migrated", "pending", "rejected", "withoutValue", "percent", "label"])
    expect(status.unknown).toEqual([])
    expect(status.migrations[0]).toMatchObject({ id: 21, state: "applied", appliedAtMs: applied21!.applied_at_ms })

    const verify = json(runs.verify, "verify")
    expect(typeof verify.checkedAtMs).toBe("number")
    expect(verify.range.maxMs).toBeGreaterThan(verify.range.minMs)
  })
})

describe.concurrent("strata --json: failures are one JSON object on stderr, exit codes unchanged", () => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-cli-json-"))
  afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

  const expectJsonFailure = (result: Awaited<ReturnType<typeof strata>>, code: number, expected: Record<string, unknown>) => {
    expect(result.code, show(result)).toBe(code)
    expect(result.stdout).toBe("")
    const lines = stderrLines(result.stderr)
    expect(lines, show(result)).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toEqual(expected)
  }

  it("bad input (exit 2), with the error's fields", async () => {
    expectJsonFailure(await strata(["migrate", "--json", "--plan", "shop", "--db", Path.join(dir, "a.db")]), 2, {
      error: "UnknownPlan",
      message: "unknown plan \"shop\": give a built-in plan (agentos, chat-store), a .json file or a .js/.mjs module",
      source: "shop"
    })
  })

  it("work that failed (exit 1)", async () => {
    const db = Path.join(dir, "missing.db")
    expectJsonFailure(await strata(["status", "--json", "--db", db]), 1, {
      error: "DatabaseMissing",
      message: `database ${db} does not exist; create it with 'strata migrate' (or try 'strata demo')`,
      filename: db
    })
  })

  it("a command line @effect/cli cannot parse (exit 2), without its text", async () => {
    expectJsonFailure(await strata(["migrate", "--json", "--to", "latest"]), 2, {
      error: "UsageError",
      message: "'latest' is not a integer",
      usage: "strata migrate [--db path|url] [--plan name|file] [--json] [--to integer] [--dry-run] [--baseline integer] [--backup FILE]"
    })
  })

  it("an unknown log level (exit 2)", async () => {
    expectJsonFailure(await strata(["status", "--json", "--log-level", "loud"]), 2, {
      error: "InvalidLogLevel",
      message: "Unknown log level \"loud\"; expected one of all, trace, debug, info, warning, warn, error, fatal, none",
      usage: "strata status [--db path|url] [--plan name|file] [--json]"
    })
  })
})

describe.concurrent("strata: no silent plan", () => {
  it("a command that needs a plan refuses to run without --plan or STRATA_PLAN (exit 2)", async () => {
    const db = await newDatabase("sqlite")
    await seedLegacy(db, 10)
    for (const command of ["migrate", "status", "backfill", "verify"]) {
      const result = await strata([command, "--db", db], { env: { STRATA_PLAN: undefined } })
      expect(result.code, show(result)).toBe(2)
      expect(stderrLines(result.stderr)).toEqual([
        "strata: no plan given: pass --plan NAME|FILE or set STRATA_PLAN (built in: agentos, chat-store; or a .json file, a .js/.mjs module)"
      ])
    }
    const tables = await query<{ name: string }>(db, "SELECT name FROM sqlite_master WHERE name LIKE 'strata_%' ORDER BY name")
    expect(tables.map((t) => t.name)).toEqual(["strata_demo"])
  })

  it("STRATA_PLAN names the plan, and --plan wins over it", async () => {
    const db = await newDatabase("sqlite")
    // agentos evolves the legacy tables, so its preflight needs them; chat-store creates its own
    await seedLegacy(db, 10)
    const fromEnv = await strata(["migrate", "--db", db, "--dry-run", "--json"], { env: { STRATA_PLAN: "chat-store" } })
    expect(json(fromEnv, "migrate").plan).toBe("chat-store")
    const given = await strata(["migrate", "--db", db, "--dry-run", "--json", "--plan", "agentos"], { env: { STRATA_PLAN: "chat-store" } })
    expect(json(given, "migrate").plan).toBe("agentos")
  })

  it("demo needs none and ignores STRATA_PLAN (the app's plan)", async () => {
    const db = await newDatabase("sqlite")
    const result = await strata(["demo", "--db", db, "--rows", "20", "--json"], { env: { STRATA_PLAN: "chat-store" } })
    expect(result.code, show(result)).toBe(0)
    expect(json(result, "demo").status.plan).toBe("agentos")
  })
})

describe.concurrent("strata: options every command takes, before the command", () => {
  it("--db, --plan and --json before the subcommand mean the same as after it", async () => {
    const db = await newDatabase("sqlite")
    await seedLegacy(db, 10)
    const env = { STRATA_PLAN: undefined }
    const before = await strata(["--db", db, "--plan", "agentos", "--json", "migrate", "--dry-run"], { env })
    const after = await strata(["migrate", "--dry-run", "--db", db, "--plan", "agentos", "--json"], { env })
    expect(before.code, show(before)).toBe(0)
    expect(before.stdout).toBe(after.stdout)
    const inline = await strata([`--db=${db}`, "--plan=agentos", "status"], { env })
    expect(inline.code, show(inline)).toBe(0)
    expect(inline.stdout).toContain(`Plan agentos on ${db}`)
  })

  it("hoisting leaves everything else where it is", () => {
    expect(Cli.hoistGlobalOptions(["--db", "x", "--json", "status", "--job", "a"])).toEqual(["status", "--db", "x", "--json", "--job", "a"])
    expect(Cli.hoistGlobalOptions(["--db=x", "verify"])).toEqual(["verify", "--db=x"])
    expect(Cli.hoistGlobalOptions(["--db", "x", "nonsense"])).toEqual(["--db", "x", "nonsense"])
    expect(Cli.hoistGlobalOptions(["--version"])).toEqual(["--version"])
    expect(Cli.hoistGlobalOptions(["status", "--db", "x"])).toEqual(["status", "--db", "x"])
  })
})

describe.concurrent("strata --help", () => {
  it("a subcommand's help: strata's usage line, its description, each option's own description", async () => {
    const result = await strata(["backfill", "--help"])
    expect(result.code, show(result)).toBe(0)
    const lines = result.stdout.split("\n")
    expect(lines[0]).toBe(
      "usage: strata backfill [--db path|url] [--plan name|file] [--json] [--job NAME...] [--batch-size integer] [--max-batch-ms integer] [--pause-ms integer] [--writer-turn-ms integer] [--batch-lock-timeout-ms integer] [--dry-run] [--restart] [--backup FILE]"
    )
    expect(lines[2]).toBe("Run the plan's backfill jobs in short batches, resumable, with progress.")
    expect(result.stdout).toMatch(/^ {2}--restart +Forget the selected jobs' checkpoints/m)
    expect(result.stdout).toMatch(/^ {2}--log-level LEVEL +all\|trace\|debug/m)
    for (const boilerplate of ["A user-defined piece of text", "This setting is optional", "--wizard", "--completions", "$ backfill"]) {
      expect(result.stdout).not.toContain(boilerplate)
    }
    expect(await strata(["--db", "x.db", "backfill", "-h"])).toMatchObject({ code: 0, stdout: result.stdout })
  })

  it("every option of every command has a description of its own", () => {
    for (const command of Cli.leafCommands) {
      const options = Help.optionsOf(command)
      expect(options.length).toBeGreaterThanOrEqual(3)
      for (const option of options) {
        expect(option.description, option.usage).not.toMatch(/^(A user-defined piece of text|An integer|A true or false value|This setting)/)
        expect(option.description.length, option.usage).toBeGreaterThan(10)
      }
    }
  })

  it("strata's own help lists every command; bare 'strata' prints it as usage (exit 2)", async () => {
    const help = await strata(["--help"])
    expect(help.code, show(help)).toBe(0)
    for (const name of ["migrate", "status", "backfill", "verify", "rejects", "fleet", "import-legacy", "demo"]) {
      expect(help.stdout).toMatch(new RegExp(`^ {2}${name} +[A-Z]`, "m"))
    }
    const bare = await strata([])
    expect(bare.code).toBe(2)
    expect(bare.stderr.trimEnd()).toBe(help.stdout.trimEnd())
  })
})

describe.concurrent("strata rejects", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      it("lists exactly the recorded rejects: key and reason, per job, --job and --limit", async () => {
        const url = await newDatabase(engine.name)
        await seedLegacy(url, 400)
        // No plan: the jobs recorded in the database (none yet); with one, the plan's jobs.
        const none = await strata(["rejects", "--db", url], { env: { STRATA_PLAN: undefined } })
        expect(none.code, show(none)).toBe(0)
        expect(none.stdout.trim()).toBe(`No rejected rows on ${url} (0 jobs checked).`)
        const planJobs = await strata(["rejects", "--db", url, "--plan", "agentos"])
        expect(planJobs.stdout.trim()).toBe(`No rejected rows on ${url} (16 jobs checked).`)
        expect((await strata(["migrate", "--db", url])).code).toBe(0)
        expect((await strata(["backfill", "--db", url])).code).toBe(0)

        const recorded = await query<{ job: string; row_key: string; reason: string; at_ms: number }>(
          url,
          "SELECT job, row_key, reason, at_ms FROM strata_rejects ORDER BY job, row_key"
        )
        expect(recorded.length).toBeGreaterThan(3)
        const listed = json(await strata(["rejects", "--db", url, "--json"]), "rejects")
        expect(listed.rejected).toBe(recorded.length)
        const rows = listed.jobs.flatMap((job: { job: string; rows: ReadonlyArray<{ rowKey: string; reason: string; atMs: number }> }) =>
          job.rows.map((row) => ({ job: job.job, row_key: row.rowKey, reason: row.reason, at_ms: row.atMs }))
        )
        // Jobs come in plan order, each job's rows in row-key order (as the database sorts them).
        const byJob = (list: ReadonlyArray<{ job: string }>) => [...list].sort((a, b) => (a.job < b.job ? -1 : a.job > b.job ? 1 : 0))
        expect(byJob(rows)).toEqual(recorded)
        const [messageJob, count] = Object.entries(
          recorded.reduce<Record<string, number>>((counts, r) => ({ ...counts, [r.job]: (counts[r.job] ?? 0) + 1 }), {})
        ).sort((a, b) => b[1] - a[1])[0]!
        expect(count).toBeGreaterThan(1)

        const one = json(await strata(["rejects", "--db", url, "--json", "--job", messageJob, "--limit", "1"]), "rejects")
        const first = recorded.find((r) => r.job === messageJob)!
        expect(one.jobs).toEqual([{ job: messageJob, rejected: count, rows: [{ rowKey: first.row_key, reason: first.reason, atMs: first.at_ms }] }])

        const human = await strata(["rejects", "--db", url, "--job", messageJob, "--limit", "1"])
        expect(human.code, show(human)).toBe(0)
        expect(human.stdout).toMatch(new RegExp(`^${messageJob.replace(".", "\\.")} +${first.row_key} +`, "m"))
        expect(human.stdout).toContain(first.reason)
        expect(human.stdout).toContain(`${messageJob}: 1 of ${count} shown (--limit ${count} lists all).`)

        const unknown = await strata(["rejects", "--db", url, "--job", "nope.nothing"], { env: { STRATA_PLAN: undefined } })
        expect(unknown.code, show(unknown)).toBe(2)
        expect(stderrLines(unknown.stderr)[0]).toMatch(/^strata: Unknown job "nope\.nothing": no job of that name has run on this database; known jobs: artifacts\.created_at_ms, /)
        const notInPlan = await strata(["rejects", "--db", url, "--job", messageJob, "--plan", "chat-store"])
        expect(notInPlan.code, show(notInPlan)).toBe(2)
        expect(stderrLines(notInPlan.stderr)).toEqual([`strata: Unknown job ${JSON.stringify(messageJob)}: plan chat-store has no such job; known jobs: (none)`])
        const badLimit = await strata(["rejects", "--db", url, "--limit", "0"])
        expect(badLimit.code, show(badLimit)).toBe(2)
        expect(stderrLines(badLimit.stderr)).toEqual(["strata: --limit must be a positive integer, got 0"])
      })
    })
  }
})

describe("strata backfill --restart, interrupted", () => {
  it("says to resume without --restart, and doing so resumes (it does not start over)", async () => {
    const url = await newDatabase("sqlite")
    await seedLegacy(url, 1200)
    expect((await strata(["migrate", "--db", url])).code).toBe(0)
    expect((await strata(["backfill", "--db", url, "--job", "chat_messages.created_at_ms"])).code).toBe(0)
    await execute(url, "UPDATE chat_messages SET created_at_ms = NULL")

    const job = "chat_messages.created_at_ms"
    const stopped = await strata(["backfill", "--db", url, "--json", "--restart", "--job", job, "--job", "tasks.created_at_ms", "--batch-size", "20", "--pause-ms", "40"], {
      interruptWhen: (stdout) => stdout.includes("\"phase\":\"batch\"")
    })
    expect(stopped.code, show(stopped)).toBe(130)
    const hint = JSON.parse(stderrLines(stopped.stderr).at(-1)!)
    expect(hint.error).toBe("Interrupted")
    expect(hint.message).toContain("Run the command again without --restart to resume where it stopped (with --restart it starts over).")
    expect(hint.message).toContain("Not restarted yet, these keep their earlier checkpoints: tasks.created_at_ms (to start them over: --restart --job tasks.created_at_ms).")
    const [saved] = await query<{ processed: number; state: string }>(url, `SELECT processed, state FROM strata_jobs WHERE job = '${job}'`)
    expect(saved!.processed).toBeGreaterThan(0)
    expect(saved!.processed).toBeLessThan(1200)

    const resumed = await strata(["backfill", "--db", url, "--json", "--job", job])
    expect(resumed.code, show(resumed)).toBe(0)
    const started = jsonLines(resumed).find((line) => line.type === "progress" && line.phase === "started")
    expect(started.processed).toBe(saved!.processed)
    const [pending] = await query<{ n: number }>(url, "SELECT count(*) AS n FROM chat_messages WHERE created_at_ms IS NULL AND created_at IS NOT NULL")
    const [rejected] = await query<{ n: number }>(url, `SELECT count(*) AS n FROM strata_rejects WHERE job = '${job}'`)
    expect(pending!.n).toBe(rejected!.n)
  })
})
