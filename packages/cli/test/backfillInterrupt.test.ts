/**
 * `strata backfill` stopped mid-job on SQLite and PostgreSQL with no pause between batches
 * (`--pause-ms 0`), on a table big enough that the job would run for many seconds: by SIGINT, by
 * SIGTERM (what Kubernetes sends) and by Ctrl-C typed on a real terminal (util-linux `script -e`
 * runs it under a pty and returns its exit code). Each stops at the next batch boundary with exit
 * 130 and the job `paused`, short of the end; running again finishes with exactly what a one-shot
 * run gives (every value, every counter). On SQLite better-sqlite3 never yields inside the batch
 * loop: before the runner gave the event loop a turn between batches, the signal was honoured only
 * when the job had ended.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Plans } from "@strata/core"
import { Effect, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import { query, withDatabase } from "./support/legacy.js"
import { binPath, json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const job = "chat_messages.created_at_ms"
const FIRST = 1_600_000_000

/**
 * The legacy tables with `rows` messages whose times are ISO text (`2020-09-13T12:26:40Z`, not the
 * fast path's shape, so every row goes through JavaScript), message i at FIRST + i seconds.
 */
const seed = (url: string, engine: "sqlite" | "pg", rows: number) =>
  withDatabase(
    url,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      for (const statement of Plans.agentosLegacyStatements(engine)) yield* sql.unsafe(statement)
      yield* sql.unsafe(
        engine === "sqlite"
          ? `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
             INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
             SELECT printf('m%08d', i), 's', 'user', 'x', strftime('%Y-%m-%dT%H:%M:%SZ', ${FIRST} + i, 'unixepoch') FROM n`
          : `INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
             SELECT 'm' || lpad(i::text, 8, '0'), 's', 'user', 'x',
                    to_char(to_timestamp(${FIRST} + i) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
             FROM generate_series(1, ${rows}) AS i`
      )
    })
  )

interface Stopped {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `strata backfill --job … --pause-ms 0` and stops it once `ready(stdout)`: with `signal`, or by typing Ctrl-C into a pty. */
const backfillAndStop = (url: string, how: "SIGINT" | "SIGTERM" | "pty", ready: (stdout: string) => boolean, extra: ReadonlyArray<string>) =>
  new Promise<Stopped>((resolve, reject) => {
    const args = [binPath, "backfill", "--db", url, "--plan", "agentos", "--job", job, "--pause-ms", "0", ...extra]
    const env = { ...process.env, NO_COLOR: "1", STRATA_DATABASE_URL: undefined, FORCE_COLOR: undefined }
    const quoted = (a: string) => `'${a.replace(/'/g, "'\\''")}'`
    const child = how === "pty"
      ? spawn("script", ["-qefc", [process.execPath, ...args].map(quoted).join(" "), "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] })
      : spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let signalled = false
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`backfill did not stop\nstdout:\n${stdout}\nstderr:\n${stderr}`))
    }, 240_000)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (!signalled && ready(stdout)) {
        signalled = true
        if (how === "pty") child.stdin!.write("\u0003")
        else child.kill(how)
      }
    })
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const jobRow = async (url: string) => {
  const [row] = await query<Record<string, unknown>>(
    url,
    `SELECT cursor, processed, updated, rejected, already_set, out_of_scope, state FROM strata_jobs WHERE job = '${job}'`
  )
  return row === undefined ? undefined : {
    ...row,
    processed: Number(row["processed"]),
    updated: Number(row["updated"]),
    rejected: Number(row["rejected"]),
    already_set: Number(row["already_set"]),
    out_of_scope: Number(row["out_of_scope"])
  }
}

// One engine after the other: seeding SQLite in this process blocks its event loop for seconds.
describe("strata backfill, interrupted with no pause", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      // About 2 µs per row through JavaScript on SQLite, several times that on PostgreSQL: many seconds either way.
      const rows = engine.name === "sqlite" ? 1_000_000 : 500_000
      it("SIGINT, SIGTERM and Ctrl-C on a terminal each stop at a batch boundary with exit 130; a re-run equals a one-shot run", async () => {
        const url = await newDatabase(engine.name)
        await seed(url, engine.name, rows)
        const migrated = await strata(["migrate", "--db", url])
        expect(migrated.code, show(migrated)).toBe(0)

        let walked = 0
        for (const how of ["SIGINT", "SIGTERM", "pty"] as const) {
          // JSON progress lines say when a batch is in; on the terminal, the progress bar's first count above zero.
          const stopped = how === "pty"
            ? await backfillAndStop(url, how, (stdout) => /[1-9][\d,]*\/[\d,]+ rows/.test(stdout), [])
            : await backfillAndStop(url, how, (stdout) => stdout.includes("\"phase\":\"batch\""), ["--json"])
          expect(stopped.code, `${how}: exit ${stopped.code}\n${stopped.stdout.slice(-2000)}\n${stopped.stderr}`).toBe(130)
          expect(stopped.stderr + stopped.stdout).toContain("interrupted; every finished batch is saved.")
          const saved = await jobRow(url)
          expect(saved, how).toMatchObject({ state: "paused", rejected: 0, already_set: 0, out_of_scope: 0 })
          // It stopped where it was, far from the end, and later than the run before it.
          expect(saved!.processed, how).toBeGreaterThan(walked)
          expect(saved!.processed, how).toBeLessThan(rows)
          expect(saved!.updated).toBe(saved!.processed)
          walked = saved!.processed
        }

        const resumed = await strata(["backfill", "--db", url, "--job", job, "--pause-ms", "0", "--json"], { timeoutMs: 600_000 })
        expect(resumed.code, show(resumed)).toBe(0)
        expect(json(resumed, "backfill").jobs).toMatchObject([{ job, processed: rows, updated: rows, rejected: 0 }])
        // What a one-shot run leaves: every row converted exactly, every counter exact, the job done.
        expect(await jobRow(url)).toEqual({
          cursor: `t:m${String(rows).padStart(8, "0")}`,
          processed: rows,
          updated: rows,
          rejected: 0,
          already_set: 0,
          out_of_scope: 0,
          state: "done"
        })
        const [check] = await query<{ right: number | string; wrong: number | string }>(
          url,
          engine.name === "sqlite"
            ? `SELECT sum(created_at_ms = (${FIRST} + CAST(substr(message_id, 2) AS INTEGER)) * 1000) AS "right",
                      sum(created_at_ms IS NULL OR created_at_ms <> (${FIRST} + CAST(substr(message_id, 2) AS INTEGER)) * 1000) AS wrong
               FROM chat_messages`
            : `SELECT count(*) FILTER (WHERE created_at_ms = (${FIRST} + substr(message_id, 2)::bigint) * 1000) AS "right",
                      count(*) FILTER (WHERE created_at_ms IS DISTINCT FROM (${FIRST} + substr(message_id, 2)::bigint) * 1000) AS wrong
               FROM chat_messages`
        )
        expect([Number(check!.right), Number(check!.wrong)]).toEqual([rows, 0])
        expect(await query(url, "SELECT count(*) AS n FROM strata_rejects")).toEqual([{ n: 0 }])
      }, 900_000)
    })
  }
})
