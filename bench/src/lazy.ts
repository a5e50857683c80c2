/**
 * What a lazily migrated read costs, on SQLite: 100,000 primary-key point reads per case and run
 * (`BENCH_READS`, over a table of `BENCH_ROWS` rows, default 100,000 each), in one process, cases
 * interleaved within each repetition:
 * (a) raw better-sqlite3 prepared `get` (the floor), (b) the same read through @effect/sql (the
 * baseline), (c) (b) wrapped in `LazyMigration.withFixUp` on rows already migrated, (d) the same on
 * unmigrated rows, with the write-back running (ids in random order, and again in key order), and (d')
 * (d) with the write-back off (the in-memory fix-up alone). Reads are timed one by one (p50, p99) and as a
 * whole run (mean, which includes whatever else the readers' thread did meanwhile). The write-back runs on
 * its own thread and connection (`LazyMigration.writeBackPath` is reported; the run fails if it is not
 * `Worker`), so (d) − (d') is what handing rows to it costs readers. b − a is Effect's share of a read;
 * c − b and d − b are ours.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Compile, Plan } from "@strata/core"
import { Database, LazyMigration } from "@strata/sql"
import Sqlite from "better-sqlite3"
import { Context, Effect, Exit, Layer, Metric, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions, seededRandom } from "./harness.js"

const ROWS = Number(process.env["BENCH_ROWS"] ?? "100000")
const READS = Number(process.env["BENCH_READS"] ?? "100000")
const WARM_UP_READS = Math.min(10_000, READS)

const plan = Plan.make("bench_lazy", [
  Plan.migration(1, "events", [
    Plan.createTable("events", [
      { name: "event_id", type: "integer", primaryKey: true },
      { name: "kind", type: "text" },
      { name: "happened_at", type: "timestamp_text" }
    ])
  ]),
  Plan.migration(2, "shadow", [Plan.epochShadow("events", "happened_at")])
])

const FIRST_MS = Date.UTC(2020, 0, 1)
const millisOf = (id: number) => FIRST_MS + id * 7_919_000
const sqlText = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ")

const shuffledIds = (): ReadonlyArray<number> => {
  const ids = Array.from({ length: READS }, (_, i) => (i % ROWS) + 1)
  const random = seededRandom(424242)
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[ids[i], ids[j]] = [ids[j]!, ids[i]!]
  }
  return ids
}

/** Module state the optimiser cannot prove unused. */
export let sink = 0

interface Row {
  readonly event_id: number
  readonly kind: string
  readonly happened_at: string
  readonly happened_at_ms: number | null
}

/** One run of one case: the mean and the percentiles of the per-read latency, in µs. */
interface RunResult {
  readonly mean: number
  readonly p50: number
  readonly p99: number
}

/** Per-read latencies and the run's wall time in ms (from `performance.now()`) as µs per read. */
const summarise = (latenciesMs: Float64Array, totalMs: number): RunResult => {
  const sorted = Float64Array.from(latenciesMs).sort()
  return {
    mean: (totalMs * 1000) / latenciesMs.length,
    p50: sorted[Math.floor(sorted.length * 0.5)]! * 1000,
    p99: sorted[Math.floor(sorted.length * 0.99)]! * 1000
  }
}

const createDatabase = (file: string): void => {
  const db = new Sqlite(file)
  db.pragma("journal_mode = WAL")
  for (const migration of plan.migrations) {
    for (const statement of Compile.statements(migration, "sqlite")) db.exec(statement.sql)
  }
  const insert = db.prepare("INSERT INTO events (event_id, kind, happened_at, happened_at_ms) VALUES (?, ?, ?, ?)")
  db.transaction(() => {
    for (let id = 1; id <= ROWS; id++) insert.run(id, id % 3 === 0 ? "message" : "tool", sqlText(millisOf(id)), millisOf(id))
  })()
  db.close()
}

export const benchmark: BenchmarkModule = {
  name: "lazy",
  description: `LazyMigration on SQLite: ${READS.toLocaleString("en-US")} primary-key point reads per case and run (µs per read)`,
  run: async () => {
    const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-lazy-"))
    const file = Path.join(directory, "bench.db")
    createDatabase(file)
    const raw = new Sqlite(file)
    const rawGet = raw.prepare("SELECT * FROM events WHERE event_id = ?")
    const ids = shuffledIds()
    const inKeyOrder = Array.from({ length: READS }, (_, i) => (i % ROWS) + 1)

    const scope = Effect.runSync(Scope.make())
    try {
      const context = await Effect.runPromise(
        Layer.buildWithScope(Database.layer({ url: file }), scope)
      )
      const sql = Context.get(context, SqlClient.SqlClient)
      const build = (options: LazyMigration.Options) =>
        Effect.runPromise(
          Layer.buildWithScope(LazyMigration.layer(plan, { enabled: true, ...options }), scope).pipe(Effect.provide(context))
        )
      const withWriteBack = await build({ writeBack: true })
      const inMemoryOnly = await build({ writeBack: false })
      const path = await Effect.runPromise(Effect.provide(LazyMigration.writeBackPath, withWriteBack))
      if (path._tag !== "Worker") throw new Error(`the write-back is not on a thread of its own: ${JSON.stringify(path)}`)

      const rawCase = async (count: number): Promise<RunResult> => {
        const latencies = new Float64Array(count)
        let sum = 0
        const start = performance.now()
        for (let i = 0; i < count; i++) {
          const before = performance.now()
          const row = rawGet.get(ids[i]!) as Row
          sum += row.event_id
          latencies[i] = performance.now() - before
        }
        const total = performance.now() - start
        sink += sum
        return summarise(latencies, total)
      }

      const effectCase = (
        lazy: Context.Context<LazyMigration.LazyMigration> | undefined,
        expectFixed: boolean,
        order: ReadonlyArray<number> = ids,
        bound = false
      ) =>
      async (count: number): Promise<RunResult> => {
        const latencies = new Float64Array(count)
        const read = (id: number) => sql<Row>`SELECT * FROM events WHERE event_id = ${id}`
        // The service's own combinator, bound once: no context read per call.
        const fixBound = lazy === undefined ? undefined : Context.get(lazy, LazyMigration.LazyMigration).withFixUp("events")
        const loop = Effect.gen(function*() {
          let sum = 0
          let missing = 0
          const start = performance.now()
          for (let i = 0; i < count; i++) {
            const before = performance.now()
            const rows = lazy === undefined
              ? yield* read(order[i]!)
              : bound
              ? yield* fixBound!(read(order[i]!))
              : yield* read(order[i]!).pipe(LazyMigration.withFixUp("events"))
            latencies[i] = performance.now() - before
            const row = rows[0]!
            sum += row.event_id
            if (row.happened_at_ms !== millisOf(row.event_id)) missing++
          }
          const total = performance.now() - start
          sink += sum
          if (lazy !== undefined && missing > 0) throw new Error(`${missing} reads returned a wrong or missing happened_at_ms`)
          return total
        })
        // The plain loop never reaches for the service; the empty context only satisfies the type.
        const total = await Effect.runPromise(Effect.provide(loop, lazy ?? (Context.empty() as Context.Context<LazyMigration.LazyMigration>)))
        if (expectFixed && lazy !== undefined) {
          // The queued rest is written after the timed loop: not caller-visible, but it must land.
          await Effect.runPromise(Effect.provide(LazyMigration.flush, lazy))
        }
        return summarise(latencies, total)
      }

      const unmigrate = () => raw.exec("UPDATE events SET happened_at_ms = NULL")
      const remigrate = () => raw.exec(`UPDATE events SET happened_at_ms = ${FIRST_MS} + event_id * 7919000 WHERE happened_at_ms IS NULL`)
      const pending = () => (raw.prepare("SELECT count(*) AS n FROM events WHERE happened_at_ms IS NULL").get() as { n: number }).n
      // Rows a (d) run read but the write-back dropped (queue full: it fell behind); reported, then migrated for the next case.
      let unwritten = 0
      const leftUnwritten = () => {
        unwritten += pending()
        remigrate()
      }

      const cases: ReadonlyArray<{ readonly name: string; readonly prepare?: () => void; readonly after?: () => void; readonly run: (count: number) => Promise<RunResult> }> = [
        { name: "a", run: rawCase },
        { name: "b", run: effectCase(undefined, false) },
        { name: "c", run: effectCase(withWriteBack, false) },
        { name: "c-bound", run: effectCase(withWriteBack, false, ids, true) },
        {
          name: "d",
          prepare: unmigrate,
          // Every row the run read is written back by the fiber (or the final flush) unless the queue overflowed.
          after: leftUnwritten,
          run: effectCase(withWriteBack, true)
        },
        {
          name: "d-seq",
          prepare: unmigrate,
          after: leftUnwritten,
          run: effectCase(withWriteBack, true, inKeyOrder)
        },
        { name: "d'", prepare: unmigrate, after: remigrate, run: effectCase(inMemoryOnly, false) }
      ]

      // Warm-up: JIT, statement caches, page cache.
      for (const c of cases) {
        c.prepare?.()
        await c.run(WARM_UP_READS)
        remigrate()
      }

      const results = new Map<string, Array<RunResult>>(cases.map((c) => [c.name, []]))
      for (let repetition = 0; repetition < repetitions(); repetition++) {
        // Rotated each repetition so no case always follows the same neighbour (GC debt, page cache).
        const rotated = cases.map((_, i) => cases[(i + repetition) % cases.length]!)
        for (const c of rotated) {
          c.prepare?.()
          collectGarbage()
          results.get(c.name)!.push(await c.run(READS))
          c.after?.()
        }
      }
      const statsAfter = await Effect.runPromise(Effect.provide(LazyMigration.stats, withWriteBack))
      // How long each write-back statement held SQLite's write lock (an app's writer would wait that long).
      const statementTimes = await Effect.runPromise(Metric.value(Metric.tagged(LazyMigration.metrics.statementMs, "table", "events")))

      const medianOf = (name: string, field: keyof RunResult) => median(results.get(name)!.map((r) => r[field]))
      const [a, b, c, cBound, d, dSeq, dPrime] = ["a", "b", "c", "c-bound", "d", "d-seq", "d'"].map((name) => ({
        mean: medianOf(name, "mean"),
        p50: medianOf(name, "p50"),
        p99: medianOf(name, "p99")
      })) as [RunResult, RunResult, RunResult, RunResult, RunResult, RunResult, RunResult]
      const runs = repetitions()
      return [
        { case: "(a) raw better-sqlite3 prepared get, mean", median: a.mean, unit: "µs/read", ratio: a.mean / b.mean },
        { case: "(b) @effect/sql point read, mean (baseline)", median: b.mean, unit: "µs/read", ratio: 1 },
        { case: "(c) (b) + LazyMigration.withFixUp, rows already migrated, mean", median: c.mean, unit: "µs/read", ratio: c.mean / b.mean },
        { case: "(c) with the service's withFixUp bound once, mean", median: cBound.mean, unit: "µs/read", ratio: cBound.mean / b.mean },
        { case: "(d) (b) + withFixUp, unmigrated rows, write-back running, mean", median: d.mean, unit: "µs/read", ratio: d.mean / b.mean },
        { case: "(d) same, reads in key order, mean", median: dSeq.mean, unit: "µs/read", ratio: dSeq.mean / b.mean },
        { case: "(d') (b) + withFixUp, unmigrated rows, write-back off, mean", median: dPrime.mean, unit: "µs/read", ratio: dPrime.mean / b.mean },
        { case: "(a) p50", median: a.p50, unit: "µs/read", ratio: a.p50 / b.p50 },
        { case: "(b) p50 (baseline)", median: b.p50, unit: "µs/read", ratio: 1 },
        { case: "(c) p50", median: c.p50, unit: "µs/read", ratio: c.p50 / b.p50 },
        { case: "(c) bound once, p50", median: cBound.p50, unit: "µs/read", ratio: cBound.p50 / b.p50 },
        { case: "(d) p50", median: d.p50, unit: "µs/read", ratio: d.p50 / b.p50 },
        { case: "(d) in key order, p50", median: dSeq.p50, unit: "µs/read", ratio: dSeq.p50 / b.p50 },
        { case: "(d') p50", median: dPrime.p50, unit: "µs/read", ratio: dPrime.p50 / b.p50 },
        { case: "(b) p99 (baseline)", median: b.p99, unit: "µs/read", ratio: 1 },
        { case: "(c) p99", median: c.p99, unit: "µs/read", ratio: c.p99 / b.p99 },
        { case: "(c) bound once, p99", median: cBound.p99, unit: "µs/read", ratio: cBound.p99 / b.p99 },
        { case: "(d) p99", median: d.p99, unit: "µs/read", ratio: d.p99 / b.p99 },
        { case: "(d) in key order, p99", median: dSeq.p99, unit: "µs/read", ratio: dSeq.p99 / b.p99 },
        { case: "(d') p99", median: dPrime.p99, unit: "µs/read", ratio: dPrime.p99 / b.p99 },
        {
          case: `(d) rows written back, all runs (expected ${(2 * (WARM_UP_READS + runs * READS)).toLocaleString("en-US")})`,
          median: statsAfter.writtenBack,
          unit: "rows",
          ratio: undefined
        },
        { case: "(d) rows dropped (queue full) / failed", median: statsAfter.dropped + statsAfter.failed, unit: "rows", ratio: undefined },
        { case: "(d) write-back statements, all runs", median: statsAfter.statements, unit: "statements", ratio: undefined },
        {
          case: "(d) write-back statement time, mean over all runs",
          median: statementTimes.count === 0 ? 0 : statementTimes.sum / statementTimes.count,
          unit: "ms",
          ratio: undefined
        },
        { case: "(d) write-back statement time, longest (target 50 ms)", median: statementTimes.max, unit: "ms", ratio: undefined },
        { case: "(d) rows read but left unwritten at the end of the timed runs", median: unwritten, unit: "rows", ratio: undefined }
      ] satisfies ReadonlyArray<BenchmarkRow>
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      raw.close()
      Fs.rmSync(directory, { recursive: true, force: true })
    }
  }
}
