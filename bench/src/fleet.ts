/**
 * A fleet of SQLite tenants (default 1,000 files of 10,000 rows: `BENCH_TENANTS`, `BENCH_ROWS`),
 * migrated (an epoch-ms shadow column, then an index) and backfilled end to end. Cases, each on a
 * fresh copy of the same files, interleaved within each repetition:
 *
 * - baseline: the sequential loop an app would write with strata's services: for each file, open
 *   it, `Migrator.run`, `BackfillRunner.run`, close;
 * - `Fleet.migrate` + `Fleet.backfill` (ledger, per-target records, progress) at concurrency 1, 2, 4.
 *
 * Then the per-target fixed cost, on tenants of one row (so it is nearly all overhead), per target:
 * opening and closing the file; `Migrator.run` with nothing to apply (its lock and history read);
 * the ledger's records of one target (started, finished, its migrations); and a whole fleet
 * `migrate` pass over targets already migrated, at concurrency 1.
 *
 * better-sqlite3 is synchronous, so on one process concurrency overlaps only the async seams
 * (the ledger, the scheduler); the figures show how much that buys on the 2 cores.
 */
import { Plan } from "@strata/core"
import { Fleet, Ledger, Targets } from "@strata/fleet"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Logger, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions } from "./harness.js"

const TENANTS = Number(process.env["BENCH_TENANTS"] ?? "1000")
const ROWS = Number(process.env["BENCH_ROWS"] ?? "10000")
const FIXED_COST_TENANTS = Math.min(TENANTS, 200)

const plan = Plan.make("bench-fleet", [
  Plan.migration(1, "message times in epoch ms", [Plan.epochShadow("messages", "created_at")]),
  Plan.migration(2, "messages by author", [Plan.createIndex("messages_author_idx", "messages", ["author"])])
])

const quiet = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(effect.pipe(Logger.withMinimumLogLevel(LogLevel.None), Effect.orDie))

const onFile = <A, E>(file: string, effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  effect.pipe(Effect.provide(Database.layer({ url: file })))

/** One tenant file: `rows` messages with timestamp text out of key order. */
const template = (file: string, rows: number) =>
  quiet(onFile(file, Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe("CREATE TABLE messages (id INTEGER PRIMARY KEY, author TEXT NOT NULL, created_at TEXT)")
    yield* sql.unsafe(
      `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows})
       INSERT INTO messages (id, author, created_at)
       SELECT i, 'author-' || (i % 17), strftime('%Y-%m-%d %H:%M:%S', 1600000000 + ((i * 7919) % ${Math.max(rows, 1)}) * 37, 'unixepoch') FROM n`
    )
    yield* sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)")
  })))

/** `count` copies of the template in a fresh directory, with a targets file listing them. */
const tenants = (root: string, name: string, source: string, count: number) => {
  const directory = Path.join(root, name)
  Fs.mkdirSync(Path.join(directory, "tenants"), { recursive: true })
  for (let i = 0; i < count; i++) Fs.copyFileSync(source, Path.join(directory, "tenants", `t${String(i).padStart(5, "0")}.db`))
  const file = Path.join(directory, "targets.txt")
  Fs.writeFileSync(file, "tenants/*.db\n")
  return { directory, file }
}

const seconds = async (work: () => Promise<unknown>): Promise<number> => {
  collectGarbage()
  const start = process.hrtime.bigint()
  await work()
  return Number(process.hrtime.bigint() - start) / 1e9
}

const sequentialLoop = (directory: string) =>
  quiet(Effect.forEach(Fs.readdirSync(Path.join(directory, "tenants")).filter((f) => f.endsWith(".db")).sort(), (name) =>
    onFile(Path.join(directory, "tenants", name), Effect.gen(function*() {
      yield* Migrator.run()
      yield* BackfillRunner.run()
    }).pipe(Effect.provide(Layer.merge(Migrator.layer(plan), BackfillRunner.layer(plan))))), { discard: true }))

const fleetLayer = (file: string) => Fleet.layer(plan).pipe(Layer.provide(Ledger.layer(Ledger.defaultLocation(file))))

const fleetRun = (file: string, concurrency: number) =>
  quiet(Effect.gen(function*() {
    const targets = yield* Targets.load(file)
    const options = { targets, targetsFile: file, concurrency }
    const migrated = yield* Fleet.migrate(options)
    const backfilled = yield* Fleet.backfill(options)
    if (migrated.done !== targets.length || backfilled.done !== targets.length) {
      return yield* Effect.dieMessage(`fleet left targets undone: ${migrated.failed + backfilled.failed} failed`)
    }
  }).pipe(Effect.provide(fleetLayer(file))))

const fixedCosts = async (root: string, source: string): Promise<ReadonlyArray<BenchmarkRow>> => {
  const perTarget = (s: number) => (s * 1000) / FIXED_COST_TENANTS
  const samples = { open: [] as Array<number>, lock: [] as Array<number>, ledger: [] as Array<number>, pass: [] as Array<number> }
  for (let r = 0; r < repetitions(); r++) {
    const { file } = tenants(root, `fixed-${r}`, source, FIXED_COST_TENANTS)
    const targets = await quiet(Targets.load(file))
    const files = targets.map((t) => t.id)
    await fleetRun(file, 1)
    samples.open.push(perTarget(await seconds(() => quiet(Effect.forEach(files, (f) => onFile(f, Effect.void), { discard: true })))))
    samples.lock.push(perTarget(await seconds(() =>
      quiet(Effect.forEach(files, (f) => onFile(f, Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))), { discard: true })))))
    const history = [{ id: 1, name: "a", checksum: "x", appliedAtMs: 0 }, { id: 2, name: "b", checksum: "y", appliedAtMs: 0 }]
    samples.ledger.push(perTarget(await seconds(() =>
      quiet(Effect.gen(function*() {
        const ledger = yield* Ledger.Ledger
        const run = yield* ledger.openRun({ operation: "verify", plan: "bench", fingerprint: "bench", targetsFile: file, targets })
        yield* Effect.forEach(targets, (t) =>
          Effect.zipRight(
            ledger.targetStarted(run.runId, t),
            Effect.zipRight(ledger.recordMigrations(t, history), ledger.targetFinished(run.runId, t, "done", { migrationsApplied: 0, jobsDone: 0, rows: 0, rejects: 0 }, undefined))
          ), { discard: true })
      }).pipe(Effect.provide(Ledger.layer(Path.join(root, `fixed-${r}`, "bench-ledger.db"))))))))
    samples.pass.push(perTarget(await seconds(() =>
      quiet(Effect.flatMap(Targets.load(file), (t) => Fleet.migrate({ targets: t, targetsFile: file, concurrency: 1 })).pipe(Effect.provide(fleetLayer(file)))))))
    Fs.rmSync(Path.join(root, `fixed-${r}`), { recursive: true, force: true })
  }
  const pass = median(samples.pass)
  return [
    { case: `per target: open + close a SQLite file (${FIXED_COST_TENANTS} tenants of 1 row)`, median: median(samples.open), unit: "ms", ratio: median(samples.open) / pass },
    { case: "per target: Migrator.run with nothing to apply (lock, history)", median: median(samples.lock), unit: "ms", ratio: median(samples.lock) / pass },
    { case: "per target: ledger records (started, migrations, finished)", median: median(samples.ledger), unit: "ms", ratio: median(samples.ledger) / pass },
    { case: "per target: a whole fleet migrate pass, nothing to apply (= 1×)", median: pass, unit: "ms", ratio: 1 }
  ]
}

/** The fleet benchmark (see the module documentation). */
export const benchmark: BenchmarkModule = {
  name: "fleet",
  description:
    `${TENANTS.toLocaleString("en-US")} SQLite tenants of ${ROWS.toLocaleString("en-US")} rows: migrate + backfill, wall time; ratio vs the sequential service loop. Then per-target fixed costs (ratio vs a whole fleet pass).`,
  run: async () => {
    const root = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-fleet-"))
    try {
      const source = Path.join(root, "template.db")
      await template(source, ROWS)
      const tiny = Path.join(root, "tiny.db")
      await template(tiny, 1)
      const cases: ReadonlyArray<readonly [string, (directory: string, file: string) => Promise<unknown>]> = [
        ["sequential loop: Migrator.run + BackfillRunner.run per file (baseline)", (directory) => sequentialLoop(directory)],
        ["Fleet.migrate + Fleet.backfill, concurrency 1", (_, file) => fleetRun(file, 1)],
        ["Fleet.migrate + Fleet.backfill, concurrency 2", (_, file) => fleetRun(file, 2)],
        ["Fleet.migrate + Fleet.backfill, concurrency 4", (_, file) => fleetRun(file, 4)]
      ]
      const times: Array<Array<number>> = cases.map(() => [])
      for (let r = 0; r < repetitions(); r++) {
        for (const [index, [, work]] of cases.entries()) {
          const { directory, file } = tenants(root, `case-${index}`, source, TENANTS)
          times[index]!.push(await seconds(() => work(directory, file)))
          Fs.rmSync(directory, { recursive: true, force: true })
        }
      }
      const baseline = median(times[0]!)
      const rows: Array<BenchmarkRow> = cases.map(([name], index) => ({
        case: name,
        median: median(times[index]!),
        unit: "s",
        ratio: median(times[index]!) / baseline
      }))
      return [...rows, ...(await fixedCosts(root, tiny))]
    } finally {
      Fs.rmSync(root, { recursive: true, force: true })
    }
  }
}
