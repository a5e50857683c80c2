/**
 * `strata verify [--job NAME ...]`: runs the plan's checks (every backfilled value recomputed from
 * its source) and prints the report as a table; exit 1 when a check fails.
 *
 * @since 0.1.0
 */
import { Command } from "@effect/cli"
import { Timestamp } from "@strata/core"
import { Verifier } from "@strata/sql"
import { Effect } from "effect"
import * as Output from "../Output.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import * as Table from "../Table.js"

type Check = Verifier.CheckResult

interface ColumnRow {
  readonly counts: Verifier.ColumnCounts
  readonly checks: ReadonlyMap<string, Check>
  /** The job-wide checks (rejects), on the job's first column only. */
  readonly jobChecks: ReadonlyMap<string, Check> | undefined
}

const countCell = (check: Check | undefined): string => (check === undefined ? "-" : Table.count(check.count))

const jobWide: ReadonlySet<string> = new Set(["unconvertible", "rejects"])

/** One row per target column, with its checks; the job-wide counts on the job's first row. */
const columnRows = (report: Verifier.VerificationReport): ReadonlyArray<ColumnRow> => {
  const seenJobs = new Set<string>()
  return report.columns.map((counts) => {
    const first = !seenJobs.has(counts.job)
    seenJobs.add(counts.job)
    const ofJob = report.checks.filter((c) => c.job === counts.job)
    return {
      counts,
      checks: new Map(ofJob.filter((c) => !jobWide.has(c.kind) && c.column === counts.column).map((c) => [c.kind, c])),
      jobChecks: first ? new Map(ofJob.filter((c) => jobWide.has(c.kind)).map((c) => [c.kind, c])) : undefined
    }
  })
}

const resultOf = (row: ColumnRow): string => ([...row.checks.values()].some((c) => c.status === "fail") ? "FAIL" : "ok")

/**
 * The report for people: a table of columns and counts, then every failing check with sample keys.
 *
 * @since 0.1.0
 */
export const reportLines = (report: Verifier.VerificationReport, database: string): ReadonlyArray<string> => {
  const rows = columnRows(report)
  const table = Table.render<ColumnRow>([
    { header: "COLUMN", cell: (r) => `${r.counts.table}.${r.counts.column}` },
    { header: "RESULT", cell: resultOf },
    { header: "MIGRATED", align: "right", cell: (r) => Table.count(r.counts.migrated) },
    { header: "MISSING", align: "right", cell: (r) => Table.count(r.counts.missing) },
    { header: "UNCONVERTIBLE", align: "right", cell: (r) => Table.count(r.counts.unconvertible) },
    { header: "NO VALUE", align: "right", cell: (r) => Table.count(r.counts.withoutValue) },
    { header: "MISMATCH", align: "right", cell: (r) => countCell(r.checks.get("mismatch")) },
    { header: "ORPHAN", align: "right", cell: (r) => countCell(r.checks.get("orphan")) },
    { header: "OUT OF RANGE", align: "right", cell: (r) => countCell(r.checks.get("range")) },
    { header: "REJECTED", align: "right", cell: (r) => (r.jobChecks === undefined ? "" : countCell(r.jobChecks.get("rejects"))) }
  ], rows)
  const failing = report.checks.filter((c) => c.status === "fail")
  const scanned = Object.values(report.rowsScanned).reduce((sum, n) => sum + n, 0)
  const day = (ms: number) => Timestamp.format(ms as Timestamp.EpochMillis, { pattern: "YYYY-MM-DD" })
  const range = `${day(report.range.min)} to ${day(report.range.max)}`
  return [
    `Verification of plan ${report.plan} on ${database} (timestamps accepted from ${range})`,
    "",
    ...table,
    "",
    ...failing.map((c) =>
      `FAILED ${c.name}: ${Table.count(c.count)} row${c.count === 1 ? "" : "s"}${
        c.sampleKeys.length > 0 ? ` (e.g. ${c.sampleKeys.join(", ")})` : ""
      } — ${c.description}`
    ),
    report.passed
      ? `All checks passed: ${rows.length} column${rows.length === 1 ? "" : "s"}, ${Table.count(scanned)} rows read. Unconvertible rows are left as they were and listed, not failures.`
      : `${failing.length} check${failing.length === 1 ? "" : "s"} failed.`
  ]
}

/**
 * The report for machines (`--json`); the accepted range's bounds are epoch ms, named so.
 *
 * @since 0.1.0
 */
export const reportJson = (report: Verifier.VerificationReport, database: string) => ({
  database,
  ...report,
  range: { minMs: report.range.min, maxMs: report.range.max }
})

/**
 * The `verify` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make(
  "verify",
  {
    ...SharedOptions.shared,
    job: SharedOptions.jobs("Check only this job's columns (repeat for several); default: all.")
  },
  (args) =>
    Session.run(
      args,
      Session.withDatabase(args, { mustExist: true }, ({ plan, target }) =>
        Effect.gen(function*() {
          const report = yield* Verifier.report(args.job.length > 0 ? { jobs: args.job } : {})
          yield* Output.either(args.json, "verify", () => reportJson(report, target.display), () => reportLines(report, target.display))
          if (!report.passed) return yield* new Verifier.VerificationFailed({ report })
        }).pipe(Effect.provide(Verifier.layer(plan))))
    )
).pipe(Command.withDescription("Check every backfilled value against its source; exit 1 when a check fails."))
