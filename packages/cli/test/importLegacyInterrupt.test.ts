/**
 * `strata import-legacy` stopped mid-import on SQLite and PostgreSQL, with no pause between
 * batches: by SIGINT, by SIGTERM (what Kubernetes sends) and by Ctrl-C typed on a real terminal
 * (util-linux `script -e` runs it under a pty and returns its exit code). Each stops at the next batch boundary with exit 130
 * and the job `paused`; running the same command again finishes the import with exactly the
 * counts of an uninterrupted one. (On SQLite better-sqlite3 never yields inside the batch loop, and
 * the signal was honoured only when the import had ended.)
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { spawn } from "node:child_process"
import { afterAll } from "vitest"
import { engines, pgTestUrlWithSchema, tempSqliteFile } from "../../../test/support/databases.js"
import * as LegacySessions from "../src/demo/LegacySessions.js"
import * as Seed from "../src/demo/Seed.js"
import { query, withDatabase } from "./support/legacy.js"
import { binPath, json, show, strata } from "./support/strata.js"

const scope = Effect.runSync(Scope.make())
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))
const newDatabase = (engine: "sqlite" | "pg"): Promise<string> =>
  Effect.runPromise(
    Scope.extend(engine === "sqlite" ? tempSqliteFile() : Effect.map(pgTestUrlWithSchema(), (s) => s.url), scope)
  )

const dataset = LegacySessions.generate({ rows: 3000, seed: 11 })

const expectedCounts = {
  sessions: dataset.expected.sessions.imported,
  messages: dataset.expected.messages,
  agent_contexts: dataset.expected.agentContexts.imported,
  agent_switches: dataset.expected.agentSwitches
}

const storeCounts = async (url: string) => {
  const [row] = await query<Record<string, number>>(
    url,
    `SELECT (SELECT count(*) FROM sessions) AS sessions, (SELECT count(*) FROM messages) AS messages,
            (SELECT count(*) FROM agent_contexts) AS agent_contexts, (SELECT count(*) FROM agent_switches) AS agent_switches`
  )
  return Object.fromEntries(Object.entries(row!).map(([k, v]) => [k, Number(v)]))
}

const jobStates = async (url: string) =>
  (await query<{ job: string; state: string; processed: number }>(url, "SELECT job, state, processed FROM strata_jobs ORDER BY job"))
    .map((j) => ({ job: j.job, state: j.state, processed: Number(j.processed) }))

interface Stopped {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  /** ms from the signal to the process's exit. */
  readonly stopMs: number
}

/**
 * Runs `strata import-legacy --db url --batch-size 10 …extra` and stops it once `ready(stdout)`:
 * with `signal`, or, for "pty", by typing Ctrl-C into the terminal `script` gives it.
 */
const importAndStop = (url: string, how: "SIGINT" | "SIGTERM" | "pty", ready: (stdout: string) => boolean, extra: ReadonlyArray<string> = []) =>
  new Promise<Stopped>((resolve, reject) => {
    const args = [binPath, "import-legacy", "--db", url, "--batch-size", "10", ...extra]
    const env = { ...process.env, NO_COLOR: "1", STRATA_DATABASE_URL: undefined, FORCE_COLOR: undefined }
    const child = how === "pty"
      ? spawn("script", ["-qefc", args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ").replace(/^/, `'${process.execPath}' `), "/dev/null"], {
        env,
        stdio: ["pipe", "pipe", "pipe"]
      })
      : spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let signalledAt: number | undefined
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`import-legacy did not stop\nstdout:\n${stdout}\nstderr:\n${stderr}`))
    }, 120_000)
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (signalledAt === undefined && ready(stdout)) {
        signalledAt = Date.now()
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
      resolve({ code, stdout, stderr, stopMs: signalledAt === undefined ? -1 : Date.now() - signalledAt })
    })
  })

const firstProgressEvent = (stdout: string) => stdout.includes("\"type\":\"progress\"")

describe.concurrent("strata import-legacy, interrupted", () => {
  for (const engine of engines) {
    describe(`[${engine.name}]`, () => {
      for (const how of ["SIGINT", "SIGTERM", "pty"] as const) {
        it(`${how === "pty" ? "Ctrl-C on a terminal" : how} stops at a batch boundary with exit 130; a re-run finishes with the exact counts`, async () => {
          const url = await newDatabase(engine.name)
          await withDatabase(url, Seed.seedLegacySessions(dataset))
          // JSON progress lines say when the first batch is in; on the terminal, the progress bar's first draw.
          const stopped = how === "pty"
            ? await importAndStop(url, how, (stdout) => /sessions .*\d+\/[\d,]+/.test(stdout))
            : await importAndStop(url, how, firstProgressEvent, ["--json"])
          expect(stopped.code, `${how}: exit ${stopped.code}\n${stopped.stdout}\n${stopped.stderr}`).toBe(130)
          expect(stopped.stderr + stopped.stdout).toContain("interrupted; every finished batch is saved.")
          const [sessionsJob] = await jobStates(url)
          expect(sessionsJob).toMatchObject({ job: "legacy-import:legacy_sessions", state: "paused" })
          expect(sessionsJob!.processed).toBeGreaterThan(0)
          expect(sessionsJob!.processed).toBeLessThan(dataset.sessions.length)
          expect(await storeCounts(url)).not.toEqual(expectedCounts)

          const resumed = await strata(["import-legacy", "--db", url, "--json"])
          expect(resumed.code, show(resumed)).toBe(0)
          const result = json(resumed)
          expect(result).toMatchObject({
            sessions: {
              scanned: dataset.sessions.length,
              imported: dataset.expected.sessions.imported,
              skipped: 0,
              rejected: dataset.expected.sessions.rejected
            },
            messages: dataset.expected.messages,
            agentContexts: { imported: dataset.expected.agentContexts.imported, skipped: 0, rejected: dataset.expected.agentContexts.rejected },
            agentSwitches: dataset.expected.agentSwitches
          })
          expect(await storeCounts(url)).toEqual(expectedCounts)
          expect(await jobStates(url)).toEqual([
            { job: "legacy-import:legacy_agent_contexts", state: "done", processed: dataset.agentContexts.length },
            { job: "legacy-import:legacy_sessions", state: "done", processed: dataset.sessions.length }
          ])
        })
      }
    })
  }
})
