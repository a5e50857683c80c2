/**
 * The BackfillRunner against the physical limit: a 1,000,000-row `chat_messages.created_at` →
 * `created_at_ms` backfill (legacy AgentOS table, text primary key, the plan's DESC index on the
 * target), every text in SQLite's `CURRENT_TIMESTAMP` shape. Cases, each on a fresh copy of the same
 * data, interleaved within each repetition:
 *
 * - baseline: one `UPDATE chat_messages SET created_at_ms = <expr>` statement (the fast path's
 *   expression), which locks the table for its whole run, then `CREATE INDEX` of the plan's index on
 *   the target (the migration defers that index until the backfill is done, and the runner builds it
 *   when the job finishes: its time is part of the runner's total, given on its own as "index build");
 * - the runner (fast path on, adaptive batches, default 50 ms target), its longest batch transaction;
 * - the runner with `fastPath: false` (every row read, parsed by `Timestamp.parse`, written back);
 * - the floor of batching (`floor`): the baseline's UPDATE over key ranges of `BENCH_FLOOR_BATCH`
 *   rows (default 2,000) known in advance, one transaction each, then the index: what batching
 *   costs by itself, without the runner's claim, counts and checks;
 * - the seeds' approach: batches of 10,000 re-selected with `LIMIT` and no cursor
 *   (`UPDATE ... WHERE key IN (SELECT key ... WHERE created_at_ms IS NULL LIMIT 10000)` until no row changes),
 *   with the seed's expression on SQLite (`CAST((julianday(x) - 2440587.5) * 86400000 AS INTEGER)`, 1 ms
 *   low on about half the rows) and `extract(epoch ...)` on PostgreSQL.
 *
 * The same on PostgreSQL when `STRATA_BENCH_PG_URL` (or `STRATA_TEST_PG_URL`) is set, in a schema of
 * its own (dropped at the end); every PostgreSQL case starts, like a SQLite copy, as the migration left
 * the table: rows refilled, no index on the target, `strata_indexes` as recorded, no job state.
 *
 * Then the same on out-of-order data (created_at not in key order): the baseline (one UPDATE then
 * CREATE INDEX on that data) and the runner's fast path.
 *
 * `BENCH_ROWS` scales the table (default 1,000,000); `BENCH_ENGINES` (`sqlite,pg`, default both),
 * `BENCH_DATA` (`inOrder,outOfOrder`, default both) and `BENCH_CASES` (`fast,js,floor,seeds`, default
 * `fast`; the baseline always runs; the pure-JS path and the seeds' approach, in-order data only, and
 * the floor, on both, when listed) narrow or widen a run.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { FastPath, type Identifier, Plans } from "@strata/core"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import { Duration, Effect, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions } from "./harness.js"

const ROWS = Number(process.env["BENCH_ROWS"] ?? "1000000")
const JOB = "chat_messages.created_at_ms"
const SEEDS_BATCH = 10_000
const TARGET_MS = 50

type Dialect = "sqlite" | "pg"

const quiet = <A, E>(url: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>): Promise<A> =>
  Effect.runPromise(
    effect.pipe(Effect.provide(Database.layer({ url })), Logger.withMinimumLogLevel(LogLevel.None), Effect.orDie)
  )

/**
 * The data: `inOrder` (created_at rises with the key, as rows appended one after another) or
 * `outOfOrder` (created_at not correlated with the key, as in imports, merged sources or edited
 * rows: the same permutation as the impact benchmark, 7919 being prime and coprime to 10, so
 * `(i * 7919) % ROWS` permutes the rows for ROWS = 10^k). On out-of-order data an index on the target
 * built before the writes takes an insert at a random page per row.
 */
type DataOrder = "inOrder" | "outOfOrder"

const createData = (dialect: Dialect, order: DataOrder) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    for (const statement of Plans.agentosLegacyStatements(dialect)) yield* sql.unsafe(statement)
    if (dialect === "sqlite") {
      const position = order === "inOrder" ? "i" : `((i * 7919) % ${ROWS})`
      yield* sql.unsafe(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
         INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
         SELECT printf('m%08d', i), 's' || (i % 1000), 'user', 'hello', strftime('%Y-%m-%d %H:%M:%S', 1600000000 + ${position} * 37, 'unixepoch') FROM n`
      )
    } else {
      const position = order === "inOrder" ? "i" : `((i::bigint * 7919) % ${ROWS})`
      yield* sql.unsafe(
        `INSERT INTO chat_messages (message_id, session_id, role, content, created_at)
         SELECT 'm' || lpad(i::text, 8, '0'), 's' || (i % 1000), 'user', 'hello',
                to_char(to_timestamp(1600000000 + ${position} * 37) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
         FROM generate_series(1, ${ROWS}) AS i`
      )
    }
    yield* Effect.flatMap(Migrator.make(Plans.agentos), (m) => m.run())
  })

const expression = (dialect: Dialect) => FastPath.epochMillisExpression("created_at" as Identifier.Identifier, dialect)

interface Timing {
  readonly totalMs: number
  /** CPU time of this process (Node, its threads; on SQLite the engine too) and of a local PostgreSQL server, over the case. */
  readonly cpu?: Cpu | undefined
  readonly longestBatchMs?: number | undefined
  readonly batches?: number | undefined
  /** The target's index, built after the rows are written. */
  readonly indexMs?: number | undefined
}

// The index the agentos plan declares on the target (epochShadow's `index: true`), built as the
// runner builds it once the job is done: DESC, on an existing table (plain on SQLite; on PostgreSQL
// the baseline uses a plain build too, the physical limit, where the runner builds CONCURRENTLY).
const targetIndex = `CREATE INDEX idx_chat_messages_created_at_ms ON chat_messages (created_at_ms DESC)`

const now = () => performance.now()

const singleStatement = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const start = now()
    yield* sql.unsafe(`UPDATE chat_messages SET created_at_ms = ${expression(dialect)} WHERE created_at_ms IS NULL`)
    const updatedMs = now() - start
    yield* sql.unsafe(targetIndex.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
    const totalMs = now() - start
    return { totalMs, longestBatchMs: updatedMs, batches: 1, indexMs: totalMs - updatedMs } satisfies Timing
  })

const FLOOR_BATCH = Number(process.env["BENCH_FLOOR_BATCH"] ?? "2000")
// Checked here: a batch of 0 rows (or NaN) would never reach the table's end.
if (!Number.isSafeInteger(FLOOR_BATCH) || FLOOR_BATCH < 1) {
  throw new Error(`BENCH_FLOOR_BATCH must be a positive integer (rows per batch), got ${JSON.stringify(process.env["BENCH_FLOOR_BATCH"])}`)
}
const benchKey = (i: number) => `m${String(i).padStart(8, "0")}`

/**
 * The floor of batching: the baseline's UPDATE cut into key ranges of `BENCH_FLOOR_BATCH` rows
 * known in advance (the data's keys are m00000001…), each in its own transaction (on PostgreSQL with
 * `synchronous_commit = off`, as the runner's), then the index. No claim, no counts, no checks: what
 * batching costs by itself through @effect/sql, below which no batch runner on this client can go.
 */
const keyRangeBatches = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const update = `UPDATE chat_messages SET created_at_ms = ${expression(dialect)} ` +
      `WHERE message_id > ${dialect === "pg" ? "$1" : "?"} AND message_id <= ${dialect === "pg" ? "$2" : "?"} AND created_at_ms IS NULL`
    const start = now()
    let longestBatchMs = 0
    let batches = 0
    for (let low = 0; low < ROWS; low += FLOOR_BATCH) {
      const batchStart = now()
      yield* sql.withTransaction(Effect.gen(function*() {
        if (dialect === "pg") yield* sql.unsafe("SET LOCAL synchronous_commit = off")
        yield* sql.unsafe(update, [benchKey(low), benchKey(Math.min(ROWS, low + FLOOR_BATCH))])
      }))
      longestBatchMs = Math.max(longestBatchMs, now() - batchStart)
      batches++
    }
    const indexStart = now()
    yield* sql.unsafe(targetIndex.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
    const timing = { totalMs: now() - start, longestBatchMs, batches, indexMs: now() - indexStart } satisfies Timing
    // Outside the timing: a floor that missed rows would flatter every ratio against it.
    const [left] = yield* sql.unsafe<{ readonly n: number | string }>(`SELECT count(*) AS n FROM chat_messages WHERE created_at_ms IS NULL`)
    if (Number(left?.n) !== 0) throw new Error(`key-range batches left ${left?.n} rows unset`)
    return timing
  })

const runner = (fastPath: boolean) =>
  Effect.gen(function*() {
    const start = now()
    const [summary] = yield* BackfillRunner.run({ jobs: [JOB], fastPath, maxBatchTime: Duration.millis(TARGET_MS) })
    const totalMs = now() - start
    if (summary === undefined || summary.updated !== ROWS) throw new Error(`runner updated ${summary?.updated} of ${ROWS} rows`)
    const built = (summary.indexes ?? []).find((i) => i.name === "idx_chat_messages_created_at_ms")
    if (built !== undefined) return { totalMs, longestBatchMs: summary.longestBatchMs, batches: summary.batches, indexMs: built.durationMs ?? 0 } satisfies Timing
    // The runner left the deferred index to the next `strata migrate`: build it here, timed, so every
    // case ends in the same state (rows written, index built).
    const indexStart = now()
    yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(targetIndex.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS")))
    const indexMs = now() - indexStart
    return { totalMs: totalMs + indexMs, longestBatchMs: summary.longestBatchMs, batches: summary.batches, indexMs } satisfies Timing
  }).pipe(Effect.provide(BackfillRunner.layer(Plans.agentos)))

const seedsApproach = (dialect: Dialect) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const seedExpression = dialect === "sqlite"
      ? `CAST((julianday(created_at) - 2440587.5) * 86400000 AS INTEGER)`
      : `(extract(epoch FROM created_at::timestamp) * 1000)::bigint`
    const statement = `UPDATE chat_messages SET created_at_ms = ${seedExpression} WHERE message_id IN ` +
      `(SELECT message_id FROM chat_messages WHERE created_at_ms IS NULL LIMIT ${SEEDS_BATCH})`
    const start = now()
    let longestBatchMs = 0
    let batches = 0
    while (true) {
      const batchStart = now()
      const result = yield* sql.unsafe(statement).raw
      longestBatchMs = Math.max(longestBatchMs, now() - batchStart)
      batches++
      const changed = (result as { changes?: number; rowCount?: number }).changes ?? (result as { rowCount?: number }).rowCount ?? 0
      if (changed === 0) break
    }
    // Every case ends in the same state: the rows written and the target's index built.
    const indexStart = now()
    yield* sql.unsafe(targetIndex.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
    return { totalMs: now() - start, longestBatchMs, batches, indexMs: now() - indexStart } satisfies Timing
  })

interface Engine {
  readonly dialect: Dialect
  readonly order: DataOrder
  /** Builds the data once. */
  readonly setUp: () => Promise<void>
  /** A fresh copy of the data for one case: its URL, and how to dispose of it. */
  readonly fresh: () => Promise<{ readonly url: string; readonly dispose: () => Promise<void> }>
  readonly tearDown: () => Promise<void>
}

const sqliteEngine = (order: DataOrder): Engine => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-backfill-"))
  const template = Path.join(directory, "template.db")
  let copies = 0
  return {
    dialect: "sqlite",
    order,
    setUp: () => quiet(template, createData("sqlite", order)),
    fresh: async () => {
      // The template was closed (WAL checkpointed into the file), so copying the file copies the database.
      const url = Path.join(directory, `copy-${copies++}.db`)
      Fs.copyFileSync(template, url)
      return {
        url,
        dispose: async () => {
          for (const suffix of ["", "-wal", "-shm"]) Fs.rmSync(`${url}${suffix}`, { force: true })
        }
      }
    },
    tearDown: async () => Fs.rmSync(directory, { recursive: true, force: true })
  }
}

const withSearchPath = (url: string, schema: string): string => {
  const parsed = new URL(url)
  parsed.searchParams.set("options", `-c search_path=${schema}`)
  return parsed.toString()
}

const pgEngine = (baseUrl: string, order: DataOrder): Engine => {
  const schema = `strata_bench_${process.pid}`
  const url = withSearchPath(baseUrl, schema)
  const admin = (statement: string) => quiet(baseUrl, Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)))
  return {
    dialect: "pg",
    order,
    setUp: async () => {
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
      await admin(`CREATE SCHEMA ${schema}`)
      await quiet(url, Effect.gen(function*() {
        yield* createData("pg", order)
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE chat_messages_template AS SELECT * FROM chat_messages`)
        // The index phase's record as the migration left it (the target's index deferred to the backfill).
        yield* sql.unsafe(`CREATE TABLE strata_indexes_template AS SELECT * FROM strata_indexes`)
      }))
    },
    fresh: async () => {
      // Same rows, no dead tuples, visibility map set, and as the migration left it: no index on the
      // target (a case builds it), strata_indexes as recorded by the migration, no job state. Every
      // case starts from the same physical state, as a copy of the SQLite template does.
      await quiet(url, Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`DROP TABLE IF EXISTS strata_jobs`)
        yield* sql.unsafe(`DROP TABLE IF EXISTS strata_rejects`)
        yield* sql.unsafe(`DROP INDEX IF EXISTS idx_chat_messages_created_at_ms`)
        yield* sql.unsafe(`DELETE FROM strata_indexes`)
        yield* sql.unsafe(`INSERT INTO strata_indexes SELECT * FROM strata_indexes_template`)
        yield* sql.unsafe(`TRUNCATE chat_messages`)
        yield* sql.unsafe(`INSERT INTO chat_messages SELECT * FROM chat_messages_template`)
        yield* sql.unsafe(`VACUUM ANALYZE chat_messages`)
        yield* sql.unsafe(`CHECKPOINT`)
      }))
      return { url, dispose: async () => undefined }
    },
    tearDown: () => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).then(() => undefined)
  }
}

type Case = readonly [name: string, run: (dialect: Dialect) => Effect.Effect<Timing, unknown, SqlClient.SqlClient>]

const listed = (variable: string): ReadonlyArray<string> | undefined => {
  const text = process.env[variable]
  return text === undefined || text.trim() === "" ? undefined : text.split(",").map((part) => part.trim())
}

const selectedCases = listed("BENCH_CASES")
const selectedEngines = listed("BENCH_ENGINES")

const allCases: ReadonlyArray<readonly [key: string, Case]> = [
  ["baseline", ["one UPDATE, then CREATE INDEX (baseline)", singleStatement]],
  ["fast", ["BackfillRunner, fast path", () => runner(true)]],
  ["js", ["BackfillRunner, pure JS (fastPath: false)", () => runner(false)]],
  ["floor", [`the same UPDATE over key ranges of ${FLOOR_BATCH.toLocaleString("en-US")} rows (the floor of batching)`, keyRangeBatches]],
  ["seeds", ["seeds' approach (LIMIT 10,000 re-select, no cursor)", seedsApproach]]
]

// The pure-JS path and the seeds' approach only when asked for (BENCH_CASES=fast,js,seeds): the default
// run (both engines, both data orders) took 9.4 minutes at 1M rows with only the fast path on a machine
// at load 5-7, so adding them would take a quiet run past 8 minutes.
const defaultCases = ["fast"]
// On out-of-order data, the runner's fast path (what `strata backfill` runs) against its own baseline,
// and the floor of batching when asked for.
const outOfOrderCases = ["fast", "floor"]

// The baseline comes first: every ratio is against the baseline on the same data.
const casesFor = (order: DataOrder): ReadonlyArray<Case> =>
  allCases
    .filter(([key]) =>
      key === "baseline" ||
      ((selectedCases ?? defaultCases).includes(key) && (order === "inOrder" || outOfOrderCases.includes(key)))
    )
    .map(([, c]) => c)

interface Cpu {
  readonly clientMs: number
  readonly serverMs: number | undefined
}

// Clock ticks per second of /proc's utime and stime on Linux (USER_HZ).
const procTicksMs = 10

/**
 * CPU time of every process of a PostgreSQL server on this machine, in ms: the processes alive
 * (fields 14-15 of /proc/<pid>/stat) and, from the postmaster's children counters (16-17), those that
 * exited and were reaped, such as the connections of a case's closed pool. Undefined where the server
 * is not visible here (another machine, not Linux): wall time is then the only figure. CPU time tells a
 * case's work apart from its waits, which wall time on a shared 2-core machine cannot.
 */
const postgresCpuMs = (): number | undefined => {
  if (process.platform !== "linux") return undefined
  const processes: Array<{ readonly pid: number; readonly parent: number; readonly own: number; readonly reaped: number }> = []
  for (const pid of Fs.readdirSync("/proc").filter((name) => /^[0-9]+$/.test(name))) {
    try {
      const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
      if (stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) !== "postgres") continue
      // After the command: state (field 3), ppid (4), … utime (14), stime (15), cutime (16), cstime (17).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
      processes.push({ pid: Number(pid), parent: fields[1]!, own: fields[11]! + fields[12]!, reaped: fields[13]! + fields[14]! })
    } catch {
      // the process ended meanwhile
    }
  }
  if (processes.length === 0) return undefined
  const pids = new Set(processes.map((p) => p.pid))
  // The postmaster is the one whose parent is not a postgres process; its children counters hold the exited connections.
  const ticks = processes.reduce((sum, p) => sum + p.own + (pids.has(p.parent) ? 0 : p.reaped), 0)
  return ticks * procTicksMs
}

/** Runs `work`, and tells its CPU time: this process's, and the server's when `dialect` is a local PostgreSQL. */
const withCpu = async <A>(dialect: Dialect, work: () => Promise<A>): Promise<readonly [A, Cpu]> => {
  const server = dialect === "pg" ? postgresCpuMs() : undefined
  const client = process.cpuUsage()
  const result = await work()
  const used = process.cpuUsage(client)
  // A closed connection's process is reaped by the postmaster a moment later.
  if (server !== undefined) await new Promise((resolve) => setTimeout(resolve, 100))
  const serverAfter = server === undefined ? undefined : postgresCpuMs()
  return [result, {
    clientMs: (used.user + used.system) / 1000,
    serverMs: server === undefined || serverAfter === undefined ? undefined : serverAfter - server
  }]
}

const measure = async (engine: Engine): Promise<ReadonlyArray<BenchmarkRow>> => {
  const cases = casesFor(engine.order)
  await engine.setUp()
  const timings: Array<Array<Timing>> = cases.map(() => [])
  try {
    for (let repetition = 0; repetition < repetitions(); repetition++) {
      for (const [index, [, run]] of cases.entries()) {
        const copy = await engine.fresh()
        collectGarbage()
        const [timing, cpu] = await withCpu(
          engine.dialect,
          () => quiet(copy.url, run(engine.dialect) as Effect.Effect<Timing, never, SqlClient.SqlClient>)
        )
        timings[index]!.push({ ...timing, cpu })
        await copy.dispose()
      }
    }
  } finally {
    await engine.tearDown()
  }
  const label = `${engine.dialect === "sqlite" ? "SQLite" : "PostgreSQL"}${engine.order === "outOfOrder" ? ", out-of-order data" : ""}`
  const baseline = median(timings[0]!.map((t) => t.totalMs))
  const cpuOf = (runs: ReadonlyArray<Timing>, side: keyof Cpu) =>
    runs.every((t) => t.cpu?.[side] !== undefined) ? median(runs.map((t) => t.cpu![side]!)) : undefined
  const baselineClient = cpuOf(timings[0]!, "clientMs")
  const baselineServer = cpuOf(timings[0]!, "serverMs")
  return cases.flatMap(([name], index) => {
    const runs = timings[index]!
    const total = median(runs.map((t) => t.totalMs))
    return [
      { case: `${label}: ${name}, total`, median: total, unit: "ms", ratio: total / baseline },
      { case: `${label}: ${name}, rate`, median: ROWS / (total / 1000), unit: "rows/s" },
      { case: `${label}: ${name}, longest batch (median of runs)`, median: median(runs.map((t) => t.longestBatchMs ?? 0)), unit: "ms" },
      { case: `${label}: ${name}, longest batch (worst run)`, median: Math.max(...runs.map((t) => t.longestBatchMs ?? 0)), unit: "ms" },
      { case: `${label}: ${name}, batches`, median: median(runs.map((t) => t.batches ?? 0)), unit: "batches" },
      ...cpuRows(`${label}: ${name}`, cpuOf(runs, "clientMs"), baselineClient, `CPU of this process (Node${engine.dialect === "sqlite" ? " and SQLite in it" : ""})`),
      ...cpuRows(`${label}: ${name}`, cpuOf(runs, "serverMs"), baselineServer, "CPU of the PostgreSQL server"),
      ...(runs.every((t) => t.indexMs !== undefined)
        ? [{ case: `${label}: ${name}, index build (part of the total)`, median: median(runs.map((t) => t.indexMs!)), unit: "ms" }]
        : [])
    ]
  })
}

const cpuRows = (label: string, ms: number | undefined, baselineMs: number | undefined, what: string): ReadonlyArray<BenchmarkRow> =>
  ms === undefined ? [] : [{ case: `${label}, ${what}`, median: ms, unit: "ms", ...(baselineMs ? { ratio: ms / baselineMs } : {}) }]

const selectedOrders = listed("BENCH_DATA")
const orders: ReadonlyArray<DataOrder> = (["inOrder", "outOfOrder"] as const).filter((o) => selectedOrders === undefined || selectedOrders.includes(o))

export const benchmark: BenchmarkModule = {
  name: "backfill",
  description:
    `${ROWS.toLocaleString("en-US")}-row chat_messages.created_at → created_at_ms backfill: the runner (target ${TARGET_MS} ms per batch) ` +
    `vs one UPDATE statement then CREATE INDEX on the target (baseline, same run, same data), on data in key order and out of order; each case on a fresh copy of the data.`,
  run: async () => {
    const wanted = (dialect: Dialect) => selectedEngines === undefined || selectedEngines.includes(dialect)
    const rows: Array<BenchmarkRow> = []
    const pgUrl = process.env["STRATA_BENCH_PG_URL"] ?? process.env["STRATA_TEST_PG_URL"]
    for (const order of orders) {
      if (wanted("sqlite")) rows.push(...(await measure(sqliteEngine(order))))
      if (pgUrl !== undefined && pgUrl !== "" && wanted("pg")) rows.push(...(await measure(pgEngine(pgUrl, order))))
    }
    return rows
  }
}
