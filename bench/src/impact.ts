/**
 * "Without downtime", measured where the application feels it. An application process
 * (`impactApp.ts`: its own connection, one INSERT and one point SELECT every `BENCH_APP_PERIOD_MS`,
 * default 2 ms) runs against a `BENCH_ROWS`-row `chat_messages` table (default 1,000,000, its
 * `created_at` NOT in key order, as in most real tables) while the `strata` command runs beside it,
 * phase after phase: idle, `migrate` (an epoch shadow with its index), `lazy` (another process reads
 * `BENCH_IMPACT_LAZY_READS` random rows, default 100,000, through `LazyMigration`, whose write-back writes
 * the fixed rows: `impactLazy.ts`), `backfill` (its batches, up to strata's `backfill job completed`
 * log line), `index` (the rest of the backfill command: the target's deferred index), `verify`.
 *
 * For each phase: the app's response time from when each operation was due (so a stall also
 * counts against the operations it delayed) as p50, p99 and max, its achieved rate, and the phase's
 * duration; the ratio column compares each figure with the idle phase of the same run. The backfill's
 * duration is also compared with the same backfill on an identical table with no app running (after
 * the same lazy reads, so both backfills find the same rows left).
 *
 * Goals (issue "Zero downtime"): during the backfill the app's max stall ≤ 2× the batch target
 * (100 ms at the default 50 ms) and its p99 ≤ the target; the backfill under load within 1.5× its
 * time alone. Runs on SQLite, and on PostgreSQL when `STRATA_BENCH_PG_URL` (or `STRATA_TEST_PG_URL`)
 * is set (each run in a schema of its own, dropped at the end).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Plans } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect, Logger, LogLevel } from "effect"
import * as Child from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import type { LazyReport } from "./impactLazy.js"
import { median, repetitions } from "./harness.js"

const ROWS = Number(process.env["BENCH_ROWS"] ?? "1000000")
const PERIOD_MS = Number(process.env["BENCH_APP_PERIOD_MS"] ?? "2")
const IDLE_MS = 3000
/** A directory to write each run's timeline to (the app's samples, the phases, strata's debug logs), to find where stalls come from. */
const TRACE_DIR = process.env["BENCH_IMPACT_TRACE"]
/** Extra flags for both `strata backfill` runs (alone and beside the app), e.g. `--max-batch-ms 80`, to compare settings. */
const BACKFILL_ARGS = (process.env["BENCH_IMPACT_BACKFILL_ARGS"] ?? "").split(" ").filter((arg) => arg.length > 0)
/** The engines to run, e.g. `sqlite` or `pg` (default: both, PostgreSQL when a URL is set). */
const DIALECTS = process.env["BENCH_IMPACT_DIALECTS"]?.split(",")
const here = Path.dirname(fileURLToPath(import.meta.url))
const appScript = Path.join(here, "impactApp.js")
const lazyScript = Path.join(here, "impactLazy.js")
const LAZY_READS = Number(process.env["BENCH_IMPACT_LAZY_READS"] ?? "100000")
const strataBin = Path.join(here, "..", "..", "packages", "cli", "dist", "bin.js")

type Dialect = "sqlite" | "pg"
/**
 * `index` is the end of `strata backfill`: the target's index, built once the column is filled. On
 * SQLite every index build holds the write lock for its whole duration, so it is a phase of its own.
 */
type Phase = "idle" | "migrate" | "lazy" | "backfill" | "index" | "verify"
const phases: ReadonlyArray<Phase> = ["idle", "migrate", "lazy", "backfill", "index", "verify"]

const plan = {
  name: "impact",
  migrations: [{
    id: 1,
    name: "message times in epoch ms",
    steps: [{ _tag: "EpochShadow", table: "chat_messages", column: "created_at", index: true }]
  }]
}

const runEffect = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(
    effect.pipe(Effect.provide(Database.layer({ url })), Logger.withMinimumLogLevel(LogLevel.None), Effect.orDie)
  )

/** The legacy table with `ROWS` messages whose times are a permutation of the keys' order. */
const createData = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of Plans.agentosLegacyStatements(dialect)) yield* sql.unsafe(statement)
    // 7919 is prime and shares no factor with 2 or 5, so (i * 7919) % ROWS permutes 0..ROWS-1 for ROWS = 10^k.
    if (dialect === "sqlite") {
      yield* sql.unsafe(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
         INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
         SELECT printf('m%08d', i), 's' || (i % 1000), 'user', 'hello',
                strftime('%Y-%m-%d %H:%M:%S', 1600000000 + ((i * 7919) % ${ROWS}) * 37, 'unixepoch') FROM n`
      )
    } else {
      yield* sql.unsafe(
        `INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
         SELECT 'm' || lpad(i::text, 8, '0'), 's' || (i % 1000), 'user', 'hello',
                to_char(to_timestamp(1600000000 + ((i::bigint * 7919) % ${ROWS}) * 37) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
         FROM generate_series(1, ${ROWS}) AS i`
      )
      yield* sql.unsafe(`ANALYZE chat_messages`)
    }
  })

/** What a Node script run to its end (`runNode`) left: its exit code, output and wall time. */
interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/**
 * Runs `script` under this Node to its end. Resolved at `close`, not `exit`: a child's last output may
 * still be in its pipes when it exits, and the phase split reads strata's last log lines.
 */
const runNode = (script: string, args: ReadonlyArray<string>): Promise<Finished> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = Child.spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += String(chunk)))
    child.stderr.on("data", (chunk) => (stderr += String(chunk)))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }))
  })

const lastLines = (text: string): string => text.trim().split("\n").slice(-3).join(" | ")

/**
 * Runs the built `strata` command to its end and returns its wall time. `verify` may exit 1: the app
 * keeps inserting rows the way an old app version does (source only), and verify rightly reports
 * those as missing their target; the phase is measured either way.
 */
const runStrata = async (args: ReadonlyArray<string>, accepted: ReadonlyArray<number> = [0], logs?: Array<string>): Promise<number> => {
  const traced = logs === undefined ? args : [...args, "--json", "--log-level", TRACE_DIR === undefined ? "info" : "debug"]
  const { code, ms, stderr } = await runNode(strataBin, traced)
  logs?.push(...stderr.split("\n").filter((line) => line.length > 0))
  if (code === null || !accepted.includes(code)) throw new Error(`strata ${args[0]} exited ${code}: ${lastLines(stderr)}`)
  return ms
}

/** When strata first logged a message starting with `message` (its JSON log lines on stderr), in epoch ms. */
const loggedAt = (lines: ReadonlyArray<string>, message: string): number | undefined => {
  for (const line of lines) {
    if (!line.startsWith("{")) continue
    const entry = JSON.parse(line) as { readonly message?: unknown; readonly timestamp?: unknown }
    if (typeof entry.message === "string" && entry.message.startsWith(message) && typeof entry.timestamp === "string") {
      return Date.parse(entry.timestamp)
    }
  }
  return undefined
}

/** Runs the lazily migrating reader to its end; fails unless every read came back fixed and its counts reconcile. */
const runLazy = async (dialect: Dialect, url: string, planFile: string): Promise<LazyReport> => {
  const { code, stderr, stdout } = await runNode(lazyScript, [url, planFile, String(ROWS), String(LAZY_READS)])
  if (code !== 0) throw new Error(`impactLazy exited ${code}: ${stdout.trim()} ${lastLines(stderr)}`)
  const result = JSON.parse(stdout.trim().split("\n").pop()!) as LazyReport
  // On SQLite the write-back must run on its own thread, as in an app on a database file.
  if (dialect === "sqlite" && result.path !== "Worker") throw new Error(`the lazy write-back ran on ${result.path}, not its own thread`)
  return result
}

interface App {
  readonly stop: () => Promise<ReadonlyArray<readonly [number, number, number]>>
}

const startApp = (dialect: Dialect, target: string, directory: string): Promise<App> =>
  new Promise((resolve, reject) => {
    const samplesFile = Path.join(directory, `samples-${Date.now()}.json`)
    const child = Child.spawn(process.execPath, [appScript, dialect, target, String(PERIOD_MS), samplesFile], {
      stdio: ["pipe", "pipe", "inherit"]
    })
    let output = ""
    let finished: (() => void) | undefined
    child.stdout.on("data", (chunk) => {
      output += String(chunk)
      if (output.includes("ready\n")) {
        output = output.replace("ready\n", "")
        resolve({
          stop: () =>
            new Promise((done, failed) => {
              finished = () => done(JSON.parse(Fs.readFileSync(samplesFile, "utf8")))
              child.once("exit", (code) => (code === 0 ? finished?.() : failed(new Error(`app exited ${code}`))))
              child.stdin.end()
            })
        })
      }
    })
    child.on("error", reject)
  })

interface PhaseFigures {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly rate: number
  readonly durationMs: number
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!

const figures = (samples: ReadonlyArray<readonly [number, number, number]>, from: number, to: number): PhaseFigures => {
  // Response time from when the operation was due: a stall counts against every operation it delayed.
  const inPhase = samples.filter(([due]) => due >= from && due < to)
  if (to <= from) return { p50: 0, p99: 0, max: 0, rate: 0, durationMs: 0 }
  const response = inPhase.map(([due, began, latency]) => began - due + latency).sort((a, b) => a - b)
  return {
    p50: percentile(response, 0.5),
    p99: percentile(response, 0.99),
    max: response[response.length - 1] ?? 0,
    rate: inPhase.length / ((to - from) / 1000),
    durationMs: to - from
  }
}

interface Target {
  readonly url: string
  /** What the app connects to: the SQLite file, or the URL. */
  readonly appTarget: string
  readonly cleanup: () => Promise<void>
}

const sqliteTarget = (directory: string, name: string): Promise<Target> => {
  const file = Path.join(directory, `${name}.db`)
  return Promise.resolve({ url: file, appTarget: file, cleanup: () => Promise.resolve(void Fs.rmSync(file, { force: true })) })
}

const pgTarget = async (baseUrl: string, name: string): Promise<Target> => {
  const schema = `strata_impact_${name}_${process.pid}`
  await runEffect(baseUrl, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`CREATE SCHEMA "${schema}"`)))
  const parsed = new URL(baseUrl)
  parsed.searchParams.set("options", `-c search_path=${schema}`)
  const url = parsed.toString()
  return {
    url,
    appTarget: url,
    cleanup: () => runEffect(baseUrl, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA "${schema}" CASCADE`))).then(() => undefined)
  }
}

interface RunResult {
  readonly phases: Readonly<Record<Phase, PhaseFigures>>
  readonly backfillAloneMs: number
  /** The lazy reader beside the app. */
  readonly lazy: LazyReport
}

const oneRun = async (dialect: Dialect, directory: string, planFile: string, pgUrl: string | undefined): Promise<RunResult> => {
  const make = (name: string) => (dialect === "sqlite" ? sqliteTarget(directory, name) : pgTarget(pgUrl!, name))
  const alone = await make("alone")
  const loaded = await make("loaded")
  try {
    await runEffect(alone.url, createData(dialect))
    await runEffect(loaded.url, createData(dialect))
    const logs: Array<string> = []
    const strata = (command: string, target: Target, logged?: Array<string>) =>
      runStrata(
        [command, "--db", target.url, "--plan", planFile, ...(command === "backfill" ? BACKFILL_ARGS : [])],
        command === "verify" ? [0, 1] : [0],
        logged
      )
    // The same migrate, lazy reads and backfill with nobody else on the database: the backfill's own time.
    await strata("migrate", alone)
    await runLazy(dialect, alone.url, planFile)
    const backfillAloneMs = await strata("backfill", alone)

    const app = await startApp(dialect, loaded.appTarget, directory)
    const windows: Array<readonly [Phase, number, number]> = []
    const idleStart = Date.now() + 100
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS + 100))
    windows.push(["idle", idleStart, Date.now()])
    let lazy: LazyReport | undefined
    for (const phase of ["migrate", "lazy", "backfill", "verify"] as const) {
      const from = Date.now()
      const phaseLogs: Array<string> = []
      if (phase === "lazy") lazy = await runLazy(dialect, loaded.url, planFile)
      else await strata(phase, loaded, phaseLogs)
      const to = Date.now()
      logs.push(...phaseLogs)
      // The backfill phase is the job's batches (the runner's own turns for the app included); what
      // follows, from the job's end to the command's, is the index phase: the deferred index's build
      // and its bookkeeping. On SQLite the build takes the write lock before it logs "building index",
      // so an app write due in between waited through the whole build: split at the batches' end.
      const indexFrom = phase === "backfill" ? loggedAt(phaseLogs, "backfill job completed") : undefined
      if (phase !== "backfill") windows.push([phase, from, to])
      else if (indexFrom === undefined) windows.push(["backfill", from, to], ["index", to, to])
      else windows.push(["backfill", from, indexFrom], ["index", indexFrom, to])
    }
    const samples = await app.stop()
    if (TRACE_DIR !== undefined) {
      Fs.mkdirSync(TRACE_DIR, { recursive: true })
      Fs.writeFileSync(Path.join(TRACE_DIR, `${dialect}-${Date.now()}.json`), JSON.stringify({ windows, samples, logs }))
    }
    const byPhase = Object.fromEntries(windows.map(([phase, from, to]) => [phase, figures(samples, from, to)])) as Record<Phase, PhaseFigures>
    return { phases: byPhase, backfillAloneMs, lazy: lazy! }
  } finally {
    await alone.cleanup()
    await loaded.cleanup()
  }
}

const rowsFor = (dialect: Dialect, runs: ReadonlyArray<RunResult>): ReadonlyArray<BenchmarkRow> => {
  const med = (pick: (run: RunResult) => number) => median(runs.map(pick))
  const rows: Array<BenchmarkRow> = []
  const idle = (metric: keyof PhaseFigures) => med((r) => r.phases.idle[metric])
  for (const phase of phases) {
    for (const metric of ["p50", "p99", "max"] as const) {
      const value = med((r) => r.phases[phase][metric])
      rows.push({ case: `${dialect}: app response ${metric}, ${phase}`, median: value, unit: "ms", ratio: value / idle(metric) })
    }
    const rate = med((r) => r.phases[phase].rate)
    rows.push({ case: `${dialect}: app rate, ${phase}`, median: rate, unit: "ops/s", ratio: rate / idle("rate") })
    if (phase !== "idle") rows.push({ case: `${dialect}: ${phase} duration`, median: med((r) => r.phases[phase].durationMs), unit: "ms" })
  }
  rows.push(
    { case: `${dialect}: lazy reads' rows written back (of ${LAZY_READS.toLocaleString("en-US")} reads)`, median: med((r) => r.lazy.writtenBack), unit: "rows" },
    { case: `${dialect}: lazy write-back rows dropped or failed`, median: med((r) => r.lazy.dropped + r.lazy.failed), unit: "rows" },
    { case: `${dialect}: lazy write-back statements`, median: med((r) => r.lazy.statements), unit: "statements" },
    { case: `${dialect}: lazy write-back statement time, mean`, median: med((r) => r.lazy.statementMeanMs), unit: "ms" },
    { case: `${dialect}: lazy write-back statement time, longest`, median: med((r) => r.lazy.statementMaxMs), unit: "ms" }
  )
  const alone = med((r) => r.backfillAloneMs)
  rows.push({ case: `${dialect}: backfill alone (baseline)`, median: alone, unit: "ms", ratio: 1 })
  // The whole command both times: its batches and its index build.
  const beside = (r: RunResult) => r.phases.backfill.durationMs + r.phases.index.durationMs
  rows.push({ case: `${dialect}: backfill beside the app`, median: med(beside), unit: "ms", ratio: med((r) => beside(r) / r.backfillAloneMs) })
  return rows
}

/** @internal */
export const benchmark: BenchmarkModule = {
  name: "impact",
  description:
    `An app (INSERT + point SELECT every ${PERIOD_MS} ms, own process and connection) beside strata on a ${ROWS.toLocaleString("en-US")}-row table with out-of-order times: its response time per phase (ratio vs idle), and the backfill's time beside it vs alone.`,
  run: async () => {
    const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-impact-"))
    const planFile = Path.join(directory, "impact-plan.json")
    Fs.writeFileSync(planFile, JSON.stringify(plan))
    const pgUrl = process.env["STRATA_BENCH_PG_URL"] ?? process.env["STRATA_TEST_PG_URL"]
    const rows: Array<BenchmarkRow> = []
    try {
      const available: ReadonlyArray<Dialect> = pgUrl === undefined ? ["sqlite"] : ["sqlite", "pg"]
      for (const dialect of available.filter((d) => DIALECTS === undefined || DIALECTS.includes(d))) {
        const runs: Array<RunResult> = []
        for (let i = 0; i < repetitions(); i++) runs.push(await oneRun(dialect, directory, planFile, pgUrl))
        rows.push(...rowsFor(dialect, runs))
      }
    } finally {
      Fs.rmSync(directory, { recursive: true, force: true })
    }
    return rows
  }
}
