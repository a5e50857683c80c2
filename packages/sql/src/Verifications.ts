/**
 * The verifications strata records, and the gate a contract migration passes through. Each
 * `Verifier.report` (and so `strata verify`) writes one row per job it verified into
 * `strata_verifications` (named through `Database.strataTable`, so `Database.StrataSchema` moves
 * it): whether the job passed, when, how many rows it read and how many mismatched, which checks
 * failed, and the checksum of the job's migration at the time. A contract step's migration applies
 * only when, for every job it names, the latest such row passed, is for the migration as the plan
 * has it now, and is no older than the job's last run (`strata_jobs.updated_at_ms`): a backfill
 * after the verification may have changed the data it proved.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Backfill, Compile, Identifier, Plan } from "@strata/core"
import { Effect, Schema } from "effect"
import { tableColumns } from "./Catalog.js"
import * as Database from "./Database.js"

/**
 * One job's recorded verification.
 *
 * @since 0.2.0
 * @category models
 */
export interface Verification {
  readonly plan: string
  readonly job: string
  readonly passed: boolean
  readonly checkedAtMs: number
  /** Rows the verification read. */
  readonly rows: number
  /** Rows whose stored target differs from the recomputed value (every target's mismatch check). */
  readonly mismatches: number
  /** The failing checks' names (`<table>.<column> <kind>`). */
  readonly failedChecks: ReadonlyArray<string>
  /** `Compile.checksum` of the job's migration when it was verified. */
  readonly checksum: string
}

/**
 * Why a job does not open a contract's gate: no verification recorded, the latest failed, it was
 * of another version of the job's migration, or the job ran after it.
 *
 * @since 0.2.0
 * @category models
 */
export const UnverifiedReason = Schema.Literal("never-verified", "failed", "migration-changed", "ran-since")

/**
 * A job that keeps a contract migration from applying.
 *
 * @since 0.2.0
 * @category models
 */
export const UnverifiedJob = Schema.Struct({
  job: Schema.String,
  reason: UnverifiedReason,
  /** The latest verification's time, if there is one. */
  checkedAtMs: Schema.NullOr(Schema.Number),
  /** The job's last run (its checkpoint's time), if it ran. */
  lastRunAtMs: Schema.NullOr(Schema.Number),
  failedChecks: Schema.Array(Schema.String)
})

/**
 * A job that keeps a contract migration from applying, as a type.
 *
 * @since 0.2.0
 * @category models
 */
export type UnverifiedJob = typeof UnverifiedJob.Type

/**
 * What is wrong with one job, in words.
 *
 * @since 0.2.0
 * @category models
 */
export const describe = (job: UnverifiedJob): string => {
  switch (job.reason) {
    case "never-verified":
      return `${job.job} was never verified`
    case "failed":
      return `${job.job} failed its latest verification${job.failedChecks.length > 0 ? ` (${job.failedChecks.join(", ")})` : ""}`
    case "migration-changed":
      return `${job.job} was verified under another version of its migration`
    case "ran-since":
      return `${job.job} ran after its latest verification`
  }
}

const verificationsTable = Database.strataTable("strata_verifications")

/**
 * Creates `strata_verifications` if it does not exist; re-runnable (PostgreSQL serialises concurrent
 * creation with a transaction-scoped advisory lock).
 *
 * @since 0.2.0
 * @category tables
 */
export const ensureTable: Effect.Effect<void, SqlError, SqlClient.SqlClient> = Database.withStrataClient(
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pg = (yield* Database.dialect) === "pg"
    const bigint = pg ? "BIGINT" : "INTEGER"
    const table = Identifier.quoteTable(yield* verificationsTable)
    const create = Effect.gen(function*() {
      if (pg) yield* sql.unsafe(`SELECT pg_advisory_xact_lock(hashtext('strata.verifications.ensureTable'))`)
      yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (
  plan TEXT NOT NULL,
  job TEXT NOT NULL,
  checked_at_ms ${bigint} NOT NULL,
  passed ${pg ? "BOOLEAN" : "INTEGER"} NOT NULL,
  rows_checked ${bigint} NOT NULL,
  mismatches ${bigint} NOT NULL,
  failed_checks TEXT NOT NULL,
  checksum TEXT NOT NULL,
  PRIMARY KEY (plan, job, checked_at_ms)
)`)
    })
    yield* pg ? sql.withTransaction(create) : create
  })
)

/** The checksum of the migration a job belongs to. */
const jobChecksum = (plan: Plan.Plan, job: string): string | undefined => {
  const migrationId = Backfill.jobs(plan).find((j) => j.name === job)?.migrationId
  const migration = plan.migrations.find((m) => m.id === migrationId)
  return migration === undefined ? undefined : Compile.checksum(migration)
}

/**
 * The verifications of a report's jobs, ready to record.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromReport = (
  plan: Plan.Plan,
  report: {
    readonly checkedAtMs: number
    readonly rowsScanned: Readonly<Record<string, number>>
    readonly checks: ReadonlyArray<{ readonly job: string; readonly name: string; readonly kind: string; readonly status: string; readonly count: number }>
  }
): ReadonlyArray<Verification> =>
  Object.entries(report.rowsScanned).map(([job, rows]) => {
    const checks = report.checks.filter((c) => c.job === job)
    const failedChecks = checks.filter((c) => c.status === "fail").map((c) => c.name)
    return {
      plan: plan.name,
      job,
      passed: failedChecks.length === 0,
      checkedAtMs: report.checkedAtMs,
      rows,
      mismatches: checks.filter((c) => c.kind === "mismatch").reduce((n, c) => n + c.count, 0),
      failedChecks,
      checksum: jobChecksum(plan, job) ?? ""
    }
  })

/**
 * Records verifications (creating the table first if needed); a second one of a job at the same
 * millisecond replaces the first.
 *
 * @since 0.2.0
 * @category writes
 */
export const record = (verifications: ReadonlyArray<Verification>): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    if (verifications.length === 0) return
    yield* ensureTable
    const sql = yield* SqlClient.SqlClient
    const pg = (yield* Database.dialect) === "pg"
    const table = sql.literal(Identifier.quoteTable(yield* verificationsTable))
    for (const v of verifications) {
      const passed = pg ? v.passed : v.passed ? 1 : 0
      yield* sql`INSERT INTO ${table} (plan, job, checked_at_ms, passed, rows_checked, mismatches, failed_checks, checksum)
        VALUES (${v.plan}, ${v.job}, ${v.checkedAtMs}, ${passed}, ${v.rows}, ${v.mismatches}, ${JSON.stringify(v.failedChecks)}, ${v.checksum})
        ON CONFLICT (plan, job, checked_at_ms) DO UPDATE SET passed = excluded.passed, rows_checked = excluded.rows_checked,
          mismatches = excluded.mismatches, failed_checks = excluded.failed_checks, checksum = excluded.checksum`
    }
  }))

interface VerificationRow {
  readonly plan: string
  readonly job: string
  readonly checked_at_ms: number | string
  readonly passed: boolean | number
  readonly rows_checked: number | string
  readonly mismatches: number | string
  readonly failed_checks: string
  readonly checksum: string
}

/**
 * The latest recorded verification of each of `jobs` (absent for a job never verified).
 *
 * @since 0.2.0
 * @category reads
 */
export const latest = (
  plan: string,
  jobs: ReadonlyArray<string>
): Effect.Effect<ReadonlyMap<string, Verification>, SqlError, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const name = yield* verificationsTable
    const found = new Map<string, Verification>()
    if ((yield* tableColumns(name)).length === 0) return found
    const sql = yield* SqlClient.SqlClient
    for (const job of jobs) {
      const rows = yield* sql<VerificationRow>`SELECT plan, job, checked_at_ms, passed, rows_checked, mismatches, failed_checks, checksum
        FROM ${sql.literal(Identifier.quoteTable(name))} WHERE plan = ${plan} AND job = ${job}
        ORDER BY checked_at_ms DESC LIMIT 1`
      const row = rows[0]
      if (row === undefined) continue
      found.set(job, {
        plan: row.plan,
        job: row.job,
        passed: row.passed === true || Number(row.passed) === 1,
        checkedAtMs: Number(row.checked_at_ms),
        rows: Number(row.rows_checked),
        mismatches: Number(row.mismatches),
        failedChecks: JSON.parse(row.failed_checks) as ReadonlyArray<string>,
        checksum: row.checksum
      })
    }
    return found
  }))

/**
 * The jobs of `jobs` that keep a contract from applying, judged from their latest verifications and
 * their last runs (by job; absent when the job never ran). Empty: the gate is open.
 *
 * @since 0.2.0
 * @category gate
 */
export const unverified = (
  plan: Plan.Plan,
  jobs: ReadonlyArray<string>,
  verifications: ReadonlyMap<string, Verification>,
  lastRuns: ReadonlyMap<string, number>
): ReadonlyArray<UnverifiedJob> =>
  jobs.flatMap((job): ReadonlyArray<UnverifiedJob> => {
    const v = verifications.get(job)
    const lastRunAtMs = lastRuns.get(job) ?? null
    const at = { job, checkedAtMs: v?.checkedAtMs ?? null, lastRunAtMs, failedChecks: v?.failedChecks ?? [] }
    if (v === undefined) return [{ ...at, reason: "never-verified" }]
    if (!v.passed) return [{ ...at, reason: "failed" }]
    if (v.checksum !== jobChecksum(plan, job)) return [{ ...at, reason: "migration-changed" }]
    if (lastRunAtMs !== null && lastRunAtMs > v.checkedAtMs) return [{ ...at, reason: "ran-since" }]
    return []
  })
