/**
 * `strata import-legacy [--from DB] [--batch-size N] [--restart]`: moves sessions from the old
 * two-table store (`sessions` with a JSON array of messages, `agent_contexts` with a JSON history)
 * into the chat store, in checkpointed batches with progress.
 *
 * Where the legacy tables are:
 * - `--from DB`: in another database, as `sessions` / `agent_contexts`;
 * - otherwise in `--db` itself: as `legacy_sessions` / `legacy_agent_contexts`, or still under their
 *   old names, which the chat store needs: then they are renamed to `legacy_*` first (one transaction).
 *
 * Before importing, the chat-store plan's pending migrations are applied to `--db`. Sessions
 * already in the store are skipped, so running again never duplicates; rows that cannot be
 * converted are rejected whole (listed in `strata_rejects`, left in the legacy table); Ctrl-C
 * stops after the current batch and a re-run resumes.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { LegacyImport } from "@strata/chat"
import { type Plan, Progress as CoreProgress } from "@strata/core"
import { Database, Migrator } from "@strata/sql"
import { Clock, Effect, Option } from "effect"
import { SqlClient } from "@effect/sql/SqlClient"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as ProgressView from "../ProgressView.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import { count } from "../Table.js"
import * as Target from "../Target.js"

type Phase = LegacyImport.ImportProgress["phase"]

const phases: ReadonlyArray<Phase> = ["sessions", "agentContexts"]

/**
 * What the command needs to know about the run.
 *
 * @since 0.1.0
 */
export interface ImportOptions {
  /** The source database (`--from`), or undefined for `--db` itself. */
  readonly from: string | undefined
  readonly batchSize: number | undefined
  readonly restart: boolean
}

/**
 * A reject, for printing.
 *
 * @since 0.1.0
 */
export interface RejectLine {
  readonly table: string
  readonly key: string
  readonly reason: string
}

/**
 * What the import did, with the steps before it.
 *
 * @since 0.1.0
 */
export interface ImportSummary {
  readonly source: string
  readonly tables: LegacyImport.LegacyTables
  readonly renamed: ReadonlyArray<string>
  readonly migrated: ReadonlyArray<number>
  readonly result: LegacyImport.ImportResult
  readonly rejects: ReadonlyArray<RejectLine>
}

/** Rows of a legacy table, or `LegacyTableMissing` when it is not there. */
const countRows = (table: string) =>
  Effect.flatMap(SqlClient, (sql) => sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql(table)}`).pipe(
    Effect.map((rows) => Number(rows[0]?.n ?? 0)),
    Effect.catchAll(() => Effect.fail(new LegacyImport.LegacyTableMissing({ table, reason: "does not exist" })))
  )

/** The agent-contexts table is optional: a store that never switched agents has none. */
const countOptionalRows = (table: string) => Effect.orElseSucceed(countRows(table), () => 0)

const rejectLimit = 5

/**
 * Renames legacy tables in place if needed, applies the store plan, imports with progress in `mode`.
 *
 * @since 0.1.0
 */
export const importWithProgress = (
  plan: Plan.Plan,
  database: string,
  options: ImportOptions,
  mode: ProgressView.Mode,
  say: (lines: ReadonlyArray<string>) => Effect.Effect<void>,
  indent = ""
) =>
  Effect.gen(function*() {
    const sourceLayer = options.from === undefined ? undefined : Database.layer({ url: options.from })
    const tables = LegacyImport.legacyTables({ source: sourceLayer })
    const renamed = options.from === undefined ? yield* LegacyImport.renameLegacyTables : []
    if (renamed.length > 0) {
      yield* say([`Renamed the legacy tables ${renamed.join(", ")} to ${renamed.map((t) => `legacy_${t}`).join(", ")} (the chat store uses those names).`])
    }
    const counting = Effect.all([countRows(tables.sessions), countOptionalRows(tables.agentContexts)])
    const [sessionRows, contextRows] = sourceLayer === undefined
      ? yield* counting
      : yield* Effect.provide(counting, sourceLayer)
    const source = options.from === undefined ? database : Database.redact(options.from)

    const migration = yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
    if (migration.applied.length > 0) {
      yield* say([`Applied plan ${plan.name}: ${migration.applied.map((m) => `${m.id} "${m.name}"`).join(", ")}.`])
    }
    yield* say([
      `Importing ${count(sessionRows)} legacy sessions and ${count(contextRows)} agent contexts from ${source} (${tables.sessions}, ${tables.agentContexts}):`
    ])

    const names: Record<Phase, string> = { sessions: "sessions", agentContexts: "agent contexts" }
    const totalsOf: Record<Phase, number> = { sessions: sessionRows, agentContexts: contextRows }
    const view = yield* ProgressView.make(mode, Math.max(...phases.map((p) => names[p].length)), { updatedWord: "imported", indent })
    // Per phase: where its rate is measured from (its first batch in this run), and whether its last line was shown.
    const baselines = new Map<Phase, { readonly atMs: number; readonly scanned: number }>()
    const finished = new Set<Phase>()
    let current: Phase | undefined
    let latest: LegacyImport.ImportResult | undefined
    const countsOf = (result: LegacyImport.ImportResult, phase: Phase) => (phase === "sessions" ? result.sessions : result.agentContexts)
    const update = (phase: Phase, result: LegacyImport.ImportResult, done: boolean, nowMs: number): ProgressView.Update => {
      const counts = countsOf(result, phase)
      const total = Math.max(totalsOf[phase], counts.scanned)
      const baseline = baselines.get(phase)
      // Without a baseline yet (no batch seen in this run) nothing has elapsed: rate and ETA stay unknown.
      const summary = CoreProgress.summarize({
        done: counts.scanned,
        total,
        doneThisRun: baseline === undefined ? 0 : counts.scanned - baseline.scanned,
        elapsedMs: baseline === undefined ? 0 : nowMs - baseline.atMs
      })
      return {
        job: names[phase],
        phase: done ? "completed" : "batch",
        dryRun: false,
        processed: counts.scanned,
        updated: counts.imported,
        rejected: counts.rejected,
        total,
        percent: summary.percent,
        rowsPerSecond: summary.rowsPerSecond,
        etaMs: summary.etaMs,
        done
      }
    }
    const finish = (phase: Phase, result: LegacyImport.ImportResult) =>
      Effect.suspend(() => {
        if (finished.has(phase)) return Effect.void
        finished.add(phase)
        return Effect.flatMap(Clock.currentTimeMillis, (now) => view.show(update(phase, result, true, now)))
      })
    const onProgress = (progress: LegacyImport.ImportProgress) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (current !== undefined && current !== progress.phase && latest !== undefined) yield* finish(current, latest)
        if (!baselines.has(progress.phase)) {
          baselines.set(progress.phase, { atMs: now, scanned: countsOf(progress.totals, progress.phase).scanned })
        }
        current = progress.phase
        latest = progress.totals
        yield* view.show(update(progress.phase, progress.totals, false, now))
      })
    const result = yield* LegacyImport.run({
      source: sourceLayer,
      batchSize: options.batchSize,
      restart: options.restart,
      onProgress
    }).pipe(Effect.ensuring(view.close))
    for (const phase of phases) yield* finish(phase, result)

    const recorded = yield* LegacyImport.rejects({ source: sourceLayer, limit: rejectLimit })
    const tableOfJob = new Map([[result.jobs.sessions, tables.sessions], [result.jobs.agentContexts, tables.agentContexts]])
    const summary: ImportSummary = {
      source,
      tables,
      renamed,
      migrated: migration.applied.map((m) => m.id),
      result,
      rejects: recorded.map((r) => ({ table: tableOfJob.get(r.job) ?? r.job, key: r.rowKey, reason: r.reason }))
    }
    return summary
  })

/**
 * The import's summary for people.
 *
 * @since 0.1.0
 */
export const summaryLines = (summary: ImportSummary): ReadonlyArray<string> => {
  const { result } = summary
  const line = (name: string, counts: LegacyImport.TableCounts, children: string) =>
    `  ${name.padEnd(14)}  ${count(counts.scanned)} read: ${count(counts.imported)} imported (${children}), ` +
    `${count(counts.skipped)} already in the store, ${count(counts.rejected)} rejected`
  const rejected = result.sessions.rejected + result.agentContexts.rejected
  return [
    "Legacy import finished:",
    line("sessions", result.sessions, `${count(result.messages)} messages`),
    line("agent contexts", result.agentContexts, `${count(result.agentSwitches)} agent switches`),
    ...(rejected > 0
      ? [
        `Rejected rows stay in the legacy tables and are listed in strata_rejects (jobs ${result.jobs.sessions}, ${result.jobs.agentContexts}); the first:`,
        ...summary.rejects.map((r) => `  ${r.table} ${r.key}: ${r.reason}`)
      ]
      : [])
  ]
}

/**
 * The import's summary for machines.
 *
 * @since 0.1.0
 */
export const summaryJson = (summary: ImportSummary, database: string) => ({
  database,
  source: summary.source,
  legacyTables: summary.tables,
  renamed: summary.renamed,
  migrated: summary.migrated,
  sessions: summary.result.sessions,
  messages: summary.result.messages,
  agentContexts: summary.result.agentContexts,
  agentSwitches: summary.result.agentSwitches,
  jobs: summary.result.jobs,
  rejects: summary.rejects
})

/**
 * The `import-legacy` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make(
  "import-legacy",
  {
    ...SharedOptions.shared,
    plan: SharedOptions.planWithDefault("chat-store"),
    from: Options.text("from").pipe(
      Options.withPseudoName("path|url"),
      Options.withDescription(
        "The database holding the legacy sessions and agent_contexts tables. Default: --db itself " +
          "(legacy_sessions/legacy_agent_contexts; tables still named sessions/agent_contexts are renamed to those first)."
      ),
      Options.optional
    ),
    batchSize: Options.integer("batch-size").pipe(
      Options.withDescription("Legacy sessions per batch, each one transaction with its checkpoint. Default 100."),
      Options.optional
    ),
    restart: Options.boolean("restart").pipe(
      Options.withDescription("Forget an earlier import's checkpoints and rejects and read everything again (imported sessions are still skipped).")
    )
  },
  (args) =>
    Session.run(
      args,
      Effect.gen(function*() {
        const batchSize = Option.getOrUndefined(args.batchSize)
        if (batchSize !== undefined && batchSize < 1) {
          return yield* new Outcome.BadArgument({ message: `--batch-size must be at least 1, got ${batchSize}` })
        }
        const from = Option.getOrUndefined(args.from)
        if (from !== undefined) {
          const source = yield* Target.resolve(from, { mustExist: false })
          if (!source.exists) return yield* new Outcome.BadArgument({ message: `--from ${source.display}: no such database file` })
        }
        return yield* Session.withDatabase(args, { mustExist: from === undefined }, ({ plan, target }) =>
          Effect.gen(function*() {
            const say = (lines: ReadonlyArray<string>) => (args.json ? Effect.void : Output.lines(lines))
            const summary = yield* importWithProgress(
              plan,
              target.display,
              { from, batchSize, restart: args.restart },
              ProgressView.modeFor(args.json),
              say
            )
            yield* Output.either(args.json, "import-legacy", () => summaryJson(summary, target.display), () => ["", ...summaryLines(summary)])
          }))
      }),
      Session.resumableInterrupted(args.restart)
    )
).pipe(Command.withDescription("Import sessions from the old two-table store into the chat store, in resumable batches."))
