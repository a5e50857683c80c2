/**
 * `strata verify [--job NAME ...] [--plausible-from TIME] [--plausible-to TIME] [--implausible warn|fail]`:
 * runs the plan's checks (every backfilled value recomputed from its source) and prints the report
 * as a table; exit 1 when a check fails. Implausible timestamps (outside a column's window) are
 * warnings unless the plan or `--implausible fail` says they fail.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { Timestamp } from "@strata/core"
import { Verifier } from "@strata/sql"
import { Effect, Either, Option } from "effect"
import * as Outcome from "../Outcome.js"
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

const resultOf = (row: ColumnRow): string => {
  const statuses = [...row.checks.values()].map((c) => c.status)
  return statuses.includes("fail") ? "FAIL" : statuses.includes("warn") ? "warn" : "ok"
}

const day = (ms: number) => Timestamp.format(ms as Timestamp.EpochMillis, { pattern: "YYYY-MM-DD" })

const rowsFound = (c: Check): string =>
  `${Table.count(c.count)} row${c.count === 1 ? "" : "s"}${c.sampleKeys.length > 0 ? ` (e.g. ${c.sampleKeys.join(", ")})` : ""}`

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
    { header: "IMPLAUSIBLE", align: "right", cell: (r) => countCell(r.checks.get("range")) },
    { header: "REJECTED", align: "right", cell: (r) => (r.jobChecks === undefined ? "" : countCell(r.jobChecks.get("rejects"))) }
  ], rows)
  const failing = report.checks.filter((c) => c.status === "fail")
  const warnings = report.checks.filter((c) => c.status === "warn")
  const scanned = Object.values(report.rowsScanned).reduce((sum, n) => sum + n, 0)
  const range = `${day(report.range.min)} to ${day(report.range.max)}`
  const window = (c: Check) => (c.range === undefined ? "" : ` outside ${day(c.range.min)} to ${day(c.range.max)}`)
  return [
    `Verification of plan ${report.plan} on ${database} (timestamps plausible from ${range} unless the plan says otherwise)`,
    "",
    ...table,
    "",
    ...failing.map((c) => `FAILED ${c.name}: ${rowsFound(c)}${window(c)} — ${c.description}`),
    ...warnings.map((c) =>
      `WARNING ${c.name}: ${rowsFound(c)}${window(c)}; the conversion gives these values, so this is not a failure ` +
      `(a plan step's plausible sets the column's window; --implausible fail makes it fail)`
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
  range: { minMs: report.range.min, maxMs: report.range.max },
  checks: report.checks.map(({ range, ...check }) => (range === undefined ? check : { ...check, range: { minMs: range.min, maxMs: range.max } }))
})

/**
 * What `--repair` did, for people: per column the rows rewritten and the rows skipped, then the
 * verification run after it (when anything was written or skipped).
 *
 * @since 0.2.0
 */
export const repairLines = (
  repair: Verifier.RepairReport,
  after: Verifier.VerificationReport | undefined
): ReadonlyArray<string> => {
  const keys = (sample: ReadonlyArray<string>) => (sample.length > 0 ? ` (e.g. ${sample.join(", ")})` : "")
  const lines = repair.columns.flatMap((c) => [
    ...(c.repaired > 0 ? [`REPAIRED ${c.table}.${c.column}: ${Table.count(c.repaired)} row${c.repaired === 1 ? "" : "s"}${keys(c.repairedKeys)} rewritten from the current source`] : []),
    ...(c.skipped > 0
      ? [`SKIPPED ${c.table}.${c.column}: ${Table.count(c.skipped)} row${c.skipped === 1 ? "" : "s"}${keys(c.skippedKeys)} changed after the check; the other write wins`]
      : [])
  ])
  if (after === undefined) return ["Nothing to repair: no mismatched values."]
  const failing = after.checks.filter((c) => c.status === "fail")
  return [
    ...lines,
    `Repair: ${Table.count(repair.repaired)} rewritten, ${Table.count(repair.skipped)} skipped. Verified again: ` +
    (after.passed ? "all checks passed." : `${failing.length} check${failing.length === 1 ? "" : "s"} failed:`),
    ...failing.map((c) => `FAILED ${c.name}: ${rowsFound(c)} — ${c.description}`)
  ]
}

/** `--plausible-from` / `--plausible-to`: timestamp text (`Timestamp.parse`) or epoch ms. */
const instant = (flag: string, text: string): Effect.Effect<number, Outcome.BadArgument> =>
  /^-?\d+$/.test(text.trim())
    ? Effect.succeed(Number(text.trim()))
    : Either.match(Timestamp.parse(text), {
      onLeft: (error) => Effect.fail(new Outcome.BadArgument({ message: `${flag}: ${error.message}` })),
      onRight: (ms) => Effect.succeed(ms)
    })

const optionalInstant = (flag: string, text: Option.Option<string>) =>
  Option.match(text, { onNone: () => Effect.succeed(undefined), onSome: (t) => instant(flag, t) })

/**
 * The Verifier's options from the command line.
 *
 * @since 0.2.0
 */
export const verifyOptions = (args: {
  readonly job: ReadonlyArray<string>
  readonly plausibleFrom: Option.Option<string>
  readonly plausibleTo: Option.Option<string>
  readonly implausible: Option.Option<"warn" | "fail">
}): Effect.Effect<Verifier.Options, Outcome.BadArgument> =>
  Effect.gen(function*() {
    const min = yield* optionalInstant("--plausible-from", args.plausibleFrom)
    const max = yield* optionalInstant("--plausible-to", args.plausibleTo)
    return {
      ...(args.job.length > 0 ? { jobs: args.job } : {}),
      ...(min === undefined && max === undefined ? {} : { range: { min, max } }),
      ...(Option.isSome(args.implausible) ? { implausible: args.implausible.value } : {})
    }
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
    job: SharedOptions.jobs("Check only this job's columns (repeat for several); default: all."),
    plausibleFrom: Options.text("plausible-from").pipe(
      Options.withPseudoName("TIME"),
      Options.withDescription("Timestamps before this (text such as 1900-01-01, or epoch ms) are implausible, in every column."),
      Options.optional
    ),
    plausibleTo: Options.text("plausible-to").pipe(
      Options.withPseudoName("TIME"),
      Options.withDescription("Timestamps after this (text or epoch ms) are implausible, in every column."),
      Options.optional
    ),
    implausible: Options.choice("implausible", ["warn", "fail"]).pipe(
      Options.withDescription("What implausible timestamps do: warn (the default, unless the plan says fail) or fail (exit 1)."),
      Options.optional
    ),
    repair: Options.boolean("repair").pipe(
      Options.withDescription(
        "Rewrite mismatched values from their current source where the row is still as it was checked (a concurrent write wins), then verify again."
      )
    )
  },
  (args) =>
    Session.run(
      args,
      Session.withDatabase(args, { mustExist: true }, ({ plan, target }) =>
        Effect.gen(function*() {
          const options = yield* verifyOptions(args)
          if (!args.repair) {
            const report = yield* Verifier.report(options)
            yield* Output.either(args.json, "verify", () => reportJson(report, target.display), () => reportLines(report, target.display))
            if (!report.passed) return yield* new Verifier.VerificationFailed({ report })
            return
          }
          const repair = yield* Verifier.repair(options)
          // Verify again only when something was written or skipped: the first report is then out of date.
          const after = repair.repaired + repair.skipped > 0 ? yield* Verifier.report(options) : undefined
          const final = after ?? repair.verification
          yield* Output.either(
            args.json,
            "verify",
            () => ({
              ...reportJson(final, target.display),
              repair: { repaired: repair.repaired, skipped: repair.skipped, columns: repair.columns, found: reportJson(repair.verification, target.display) }
            }),
            () => [...reportLines(repair.verification, target.display), "", ...repairLines(repair, after)]
          )
          if (!final.passed) return yield* new Verifier.VerificationFailed({ report: final })
        }).pipe(Effect.provide(Verifier.layer(plan))))
    )
).pipe(Command.withDescription("Check every backfilled value against its source (--repair rewrites stale ones); exit 1 when a check fails."))
