/**
 * Failures name their cause in the one line strata prints (issue 17 item 6): a full disk, a
 * terminated PostgreSQL backend, a ROLLBACK that fails after the connection died (no WARN with a
 * stack before the real message), a plan nested too deeply to decode, and a plan whose names carry
 * control characters (printed escaped, never sent to the terminal raw).
 */
import { describe, expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Effect, Either, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll } from "vitest"
import { describePg, pgTestDatabase, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { query, seedLegacy } from "./support/legacy.js"
import { show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const inScope = <A>(effect: Effect.Effect<A, never, Scope.Scope>): Promise<A> => Effect.runPromise(Scope.extend(effect, scope))

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-cli-causes-"))
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))
const file = (name: string, text: string): string => {
  const path = Path.join(dir, name)
  Fs.writeFileSync(path, text)
  return path
}

const stderrLines = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "")

describe("a full disk", () => {
  it("a backfill whose commit cannot be written names the disk error, not 'unexpected error'", async () => {
    const db = await inScope(tempSqliteFile())
    await seedLegacy(db, 6000)
    expect((await strata(["migrate", "--db", db])).code).toBe(0)
    // 200 KB: the database is larger already, so the first commits that grow the WAL past it fail.
    const result = await strata(["backfill", "--db", db, "--job", "chat_messages.created_at_ms"], { fileSizeLimitBlocks: 400 })
    expect(result.code, show(result)).toBe(1)
    expect(stderrLines(result.stderr)).toEqual([
      "strata: Job chat_messages.created_at_ms: database error: disk I/O error (SQLITE_IOERR_WRITE)"
    ])
    // What was committed before the disk filled stays, and the job resumes from it once there is room.
    const resumed = await strata(["backfill", "--db", db, "--job", "chat_messages.created_at_ms"])
    expect(resumed.code, show(resumed)).toBe(0)
    const [left] = await query<{ n: number }>(
      db,
      "SELECT count(*) AS n FROM chat_messages WHERE created_at_ms IS NULL AND created_at IS NOT NULL AND message_id NOT IN (SELECT row_key FROM strata_rejects)"
    )
    expect(left!.n).toBe(0)
  })
})

describePg("a lost PostgreSQL connection", () => {
  it("terminated backends during a backfill: one line with PostgreSQL's reason", async () => {
    const { database, url } = await inScope(pgTestDatabase())
    await seedLegacy(url, 3000)
    expect((await strata(["migrate", "--db", url])).code).toBe(0)
    const admin = process.env["STRATA_TEST_PG_URL"]!
    let killing: Promise<void> | undefined
    let done = false
    const killAll = async () => {
      while (!done) {
        await query(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database])
        await new Promise((resolve) => setTimeout(resolve, 150))
      }
    }
    const result = await strata(["backfill", "--db", url, "--batch-size", "20", "--pause-ms", "10"], {
      onStdout: (stdout) => {
        if (killing === undefined && stdout.includes(" running ")) killing = killAll()
      }
    })
    done = true
    await killing
    expect(result.code, show(result)).toBe(1)
    const lines = stderrLines(result.stderr)
    expect(lines, show(result)).toHaveLength(1)
    // Which of pg's words arrives depends on where the kill lands: in a query, between queries, or
    // on a pooled client already broken by an earlier kill. Each names the lost connection.
    expect(lines[0]).toMatch(
      /^strata: Job [a-z_]+\.[a-z_]+: database error: (terminating connection due to administrator command \(57P01\)|Connection terminated unexpectedly|Client has encountered a connection error and is not queryable)$/
    )
  })

  it("a migration whose connection dies: the real reason, and no WARN about the failed ROLLBACK", async () => {
    const { url } = await inScope(pgTestUrlWithSchema())
    const plan = file("killer.json", JSON.stringify({
      name: "killer",
      migrations: [{ id: 1, name: "terminate", steps: [{ _tag: "Sql", sqlite: ["SELECT 1"], pg: ["SELECT pg_terminate_backend(pg_backend_pid())"] }] }]
    }))
    const result = await strata(["migrate", "--db", url, "--plan", plan])
    expect(result.code, show(result)).toBe(1)
    expect(stderrLines(result.stderr)).toEqual([
      "strata: Migration 1 \"terminate\" of plan killer failed and was rolled back: terminating connection due to administrator command (57P01); statement: SELECT pg_terminate_backend(pg_backend_pid())"
    ])
  })
})

describe.concurrent("hostile plans", () => {
  const tooDeep = "plan too deeply nested (more than 64 levels of arrays and objects)"

  it("a JSON plan nested 100,000 deep is refused as too deeply nested (exit 2)", async () => {
    const plan = file("deep.json", `{"name":"deep","migrations":${"[".repeat(100_000)}${"]".repeat(100_000)}}`)
    const db = Path.join(dir, "deep.db")
    const result = await strata(["migrate", "--db", db, "--plan", plan])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)).toEqual([`strata: invalid plan in ${plan}: at (root): ${tooDeep}`])
    expect(Fs.existsSync(db)).toBe(false)
  })

  it("a module exporting a cyclic plan is refused the same way", async () => {
    const plan = file("cyclic.mjs", "const plan = { name: 'loop', migrations: [] }\nplan.migrations.push(plan)\nexport default plan\n")
    const result = await strata(["status", "--db", Path.join(dir, "cyclic.db"), "--plan", plan])
    expect(result.code, show(result)).toBe(2)
    expect(stderrLines(result.stderr)).toEqual([`strata: invalid plan in ${plan}: at (root): ${tooDeep}`])
  })

  it("Plan.decode refuses depth, and still decodes a plan at the limit's side", () => {
    let deep: unknown = []
    for (let i = 0; i < 100_000; i++) deep = [deep]
    const refused = Plan.decode({ name: "deep", migrations: deep })
    expect(Either.isLeft(refused) && refused.left.issues).toEqual([{ path: "(root)", message: tooDeep }])
    expect(Either.isRight(Plan.decode({ name: "shallow", migrations: [] }))).toBe(true)
  })

  it("control characters in a plan's names are printed escaped", async () => {
    const name = "evil\u001b]0;pwned\u0007\u001b[2J\r"
    const plan = file("evil.json", JSON.stringify({
      name,
      migrations: [{ id: 1, name: "flip \u202egnp.exe", steps: [{ _tag: "Sql", sqlite: ["SELECT 1"], pg: ["SELECT 1"] }] }]
    }))
    const db = Path.join(dir, "evil.db")
    const dry = await strata(["migrate", "--db", db, "--plan", plan, "--dry-run"])
    expect(dry.code, show(dry)).toBe(0)
    expect(dry.stdout).toContain("-- Dry run: plan evil\\x1b]0;pwned\\x07\\x1b[2J\\r on ")
    expect(dry.stdout).toContain("-- migration 1 \"flip \\u202egnp.exe\"")
    expect(dry.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/)
    const refused = await strata(["migrate", "--db", db, "--plan", plan, "--to", "7"])
    expect(refused.code, show(refused)).toBe(2)
    expect(stderrLines(refused.stderr)).toEqual(["strata: Migration 7 is not in plan evil\\x1b]0;pwned\\x07\\x1b[2J\\r (its migrations: 1)"])
    // JSON output carries the name as it is, JSON-escaped.
    const json = await strata(["migrate", "--db", db, "--plan", plan, "--dry-run", "--json"])
    expect(JSON.parse(json.stdout.trim().split("\n").at(-1)!).plan).toBe(name)
  })
})
