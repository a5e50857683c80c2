/**
 * Benchmark runner: `pnpm bench` runs every module below, `pnpm bench <name> [<name>…]` only those.
 *
 * Adding a benchmark:
 * 1. Create `bench/src/<name>.ts` exporting `benchmark: BenchmarkModule` (see `harness.ts`):
 *    `{ name, description, run: async () => rows }`, each row `{ case, median, unit, ratio }`.
 * 2. Measure the baseline in the same run as the cases it is compared with, repeat every case
 *    `repetitions()` times (at least 5, `BENCH_RUNS` to change) and report medians;
 *    `interleavedMedians` does both for synchronous work.
 * 3. Add the module to `benchmarks` below, and its figures to BENCHMARKS.md.
 *
 * Output is Markdown (machine, date, then one table per module) so it can be pasted into BENCHMARKS.md.
 */
import * as Os from "node:os"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { repetitions } from "./harness.js"
import { benchmark as backfill } from "./backfill.js"
import { benchmark as chatstore } from "./chatstore.js"
import { benchmark as derive } from "./derive.js"
import { benchmark as fleet } from "./fleet.js"
import { benchmark as impact } from "./impact.js"
import { benchmark as lazy } from "./lazy.js"
import { benchmark as timestamp } from "./timestamp.js"
import { benchmark as trigger } from "./trigger.js"

const benchmarks: ReadonlyArray<BenchmarkModule> = [timestamp, lazy, backfill, derive, trigger, chatstore, impact, fleet]

const formatNumber = (value: number): string =>
  value >= 100 ? Math.round(value).toLocaleString("en-US") : value >= 10 ? value.toFixed(1) : value.toFixed(2)

const table = (rows: ReadonlyArray<BenchmarkRow>): string =>
  [
    "| case | median | unit | ratio vs baseline |",
    "|---|---:|---|---:|",
    ...rows.map((row) =>
      `| ${row.case} | ${formatNumber(row.median)} | ${row.unit} | ${row.ratio === undefined ? "" : `${row.ratio.toFixed(2)}×`} |`
    )
  ].join("\n")

const main = async (): Promise<void> => {
  const requested = process.argv.slice(2)
  const unknown = requested.filter((name) => !benchmarks.some((b) => b.name === name))
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(", ")}; available: ${benchmarks.map((b) => b.name).join(", ")}`)
    process.exitCode = 2
    return
  }
  const selected = requested.length === 0 ? benchmarks : benchmarks.filter((b) => requested.includes(b.name))
  const cpus = Os.cpus()
  console.log(`Machine: ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${cpus.length} cores, ${Os.platform()} ${Os.arch()}, Node ${process.version}`)
  console.log(`Date: ${new Date().toISOString()}; medians of ${repetitions()} runs`)
  for (const benchmark of selected) {
    console.log(`\n## ${benchmark.name}\n\n${benchmark.description}\n`)
    console.log(table(await benchmark.run()))
  }
}

await main()
