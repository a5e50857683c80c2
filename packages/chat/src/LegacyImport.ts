/**
 * Moves sessions from the old two-table session layout into the chat-store tables
 * (`ChatPlan.plan`): legacy `sessions(session_id, messages JSON, last_activity)` becomes a
 * `sessions` row plus one `messages` row per array element (`seq` = position + 1, in array order);
 * legacy `agent_contexts(session_id, current_agent, agent_history JSON, metadata, created_at,
 * updated_at)` becomes an `agent_contexts` row plus one `agent_switches` row per history entry. The
 * legacy DDL is `ChatPlan.legacyStatements(dialect, prefix)`; what each JSON element may
 * hold is documented in `internal/legacyRows.ts`.
 *
 * Where the legacy tables are (their names clash with the new `sessions` and `agent_contexts`):
 * - in another database: `run({ source: Database.layer({ url }) })` reads `sessions` and
 *   `agent_contexts` there and writes into the database of the ambient `SqlClient`;
 * - in the same database under other names: `run()` reads `legacy_sessions` and
 *   `legacy_agent_contexts`. `renameLegacyTables` renames a legacy `sessions`/`agent_contexts` pair
 *   to those names in place (do it before applying the chat-store plan, whose `CREATE TABLE IF NOT
 *   EXISTS sessions` would otherwise find the legacy table);
 * - `tables` overrides either name.
 *
 * Behaviour:
 * - Batches of `batchSize` legacy rows in key order, each written in one transaction together with
 *   its checkpoint in `strata_jobs` (jobs `legacy-import:<legacy sessions table>` and
 *   `legacy-import:<legacy agent_contexts table>`), so a killed import resumes where it stopped and
 *   an interrupted one is marked `paused`. The counters are cumulative across resumptions: a
 *   resumed import returns the same totals as an uninterrupted one. A finished job is not re-scanned
 *   unless `restart` is set.
 * - Each batch first claims its job's checkpoint (`JobState.claimCheckpoint`) and reads the legacy
 *   rows after the cursor it finds there: imports running at the same time (several processes, or
 *   fibers) take turns batch by batch, every row is read once, and each returns the job's exact
 *   totals.
 * - Between batches the event loop gets a turn, so Ctrl-C, SIGTERM and other fibers are served at
 *   the next batch boundary also on SQLite (better-sqlite3 never yields by itself).
 * - Idempotent: a session (or agent context) already in the store is skipped whole and counted as
 *   skipped, so re-running never duplicates messages.
 * - A legacy row that cannot be converted (invalid JSON, a message without a role or with an unknown
 *   one, a time `Timestamp.parse` rejects, text where a number belongs, an agent context whose session
 *   is not in the store, a legacy field whose place in `metadata` is taken by another value) is
 *   rejected whole: recorded once in `strata_rejects` with the reason naming the field
 *   (`messages[3].role: missing`), counted, and left untouched in the legacy table.
 * - Nothing in a legacy message or history entry is dropped: fields the store has no column for
 *   (`attachments`, `model`, …) are kept in its `metadata` under their own names.
 * - The agent contexts are imported after all sessions; a missing legacy `agent_contexts` table
 *   means there are none.
 * - Statements run without the app client's name transforms (`Database.strataClient`, and the
 *   same for `source`).
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Identifier, Options, Timestamp } from "@strata/core"
import { Catalog, Database, JobState, SqlErrors } from "@strata/sql"
import { Context, Effect, Either, Layer, Option, Schema } from "effect"
import { nextTurn } from "./internal/eventLoop.js"
import type { ImportedAgentContext, ImportedSession, LegacyAgentContextRow, LegacySessionRow } from "./internal/legacyRows.js"
import { importAgentContext, importSession, rowKey } from "./internal/legacyRows.js"
import { writeAgentContexts, writeSessions, type Written } from "./internal/legacyWrites.js"

/**
 * The names of the legacy tables.
 *
 * @since 0.1.0
 * @category models
 */
export interface LegacyTables {
  readonly sessions: string
  readonly agentContexts: string
}

/**
 * What one table of the import did. `scanned = imported + skipped + rejected`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TableCounts {
  readonly scanned: number
  readonly imported: number
  /** Already in the store (an earlier import, or created there): left as they are. */
  readonly skipped: number
  readonly rejected: number
}

/**
 * The totals of an import (cumulative over resumptions).
 *
 * @since 0.1.0
 * @category models
 */
export interface ImportResult {
  readonly sessions: TableCounts
  readonly messages: number
  readonly agentContexts: TableCounts
  readonly agentSwitches: number
  /** The `strata_jobs` / `strata_rejects` job names. */
  readonly jobs: { readonly sessions: string; readonly agentContexts: string }
}

/**
 * Reported after every batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface ImportProgress {
  readonly phase: "sessions" | "agentContexts"
  readonly totals: ImportResult
  /** The last legacy key of the batch. */
  readonly lastKey: string
}

/**
 * Options of `run`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions<E = never> {
  /** The database holding the legacy tables; default: the target database itself. */
  readonly source?: Layer.Layer<SqlClient.SqlClient, E> | undefined
  /**
   * Legacy table names; default `sessions` / `agent_contexts` with a `source`,
   * `legacy_sessions` / `legacy_agent_contexts` without.
   */
  readonly tables?: Partial<LegacyTables> | undefined
  /** Legacy rows per batch (one transaction each), a positive integer. Default 100. */
  readonly batchSize?: number | undefined
  /** Forget the checkpoints and rejects of an earlier import and scan everything again. */
  readonly restart?: boolean | undefined
  /** Called after every batch (e.g. to print progress). */
  readonly onProgress?: ((progress: ImportProgress) => Effect.Effect<void>) | undefined
}

/**
 * A legacy table the import needs is not in the source database (or lacks the legacy columns).
 *
 * @since 0.1.0
 * @category errors
 */
export class LegacyTableMissing extends Schema.TaggedError<LegacyTableMissing>()("LegacyTableMissing", {
  table: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `legacy table ${this.table}: ${this.reason}`
  }
}

/**
 * The target database lacks the chat-store tables: apply `ChatPlan.plan` first.
 *
 * @since 0.1.0
 * @category errors
 */
export class TargetNotMigrated extends Schema.TaggedError<TargetNotMigrated>()("TargetNotMigrated", {
  table: Schema.String
}) {
  override get message(): string {
    return `the target database has no chat-store table ${this.table}: apply the chat-store plan (migrate) first`
  }
}

/**
 * A table name that is not a valid SQL identifier.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidTableName extends Schema.TaggedError<InvalidTableName>()("InvalidTableName", {
  option: Schema.String,
  name: Schema.String
}) {
  override get message(): string {
    return `${this.option}: ${JSON.stringify(this.name)} is not a valid table name`
  }
}

/**
 * A numeric option of `run` is not allowed (e.g. `batchSize: NaN`); nothing was read or written.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidLegacyImportOptions extends Schema.TaggedError<InvalidLegacyImportOptions>()("InvalidLegacyImportOptions", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid legacy import option ${this.option}: ${this.reason}`
  }
}

/**
 * `renameLegacyTables` found the destination name already taken.
 *
 * @since 0.1.0
 * @category errors
 */
export class LegacyTableExists extends Schema.TaggedError<LegacyTableExists>()("LegacyTableExists", {
  table: Schema.String
}) {
  override get message(): string {
    return `cannot rename the legacy table: ${this.table} already exists`
  }
}

/**
 * A statement failed while importing (the batch in progress was rolled back; run again to resume).
 *
 * @since 0.1.0
 * @category errors
 */
export class LegacyImportFailed extends Schema.TaggedError<LegacyImportFailed>()("LegacyImportFailed", {
  step: Schema.String,
  reason: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    return `legacy import failed while ${this.step}: ${this.reason}`
  }
}

/**
 * Everything `run` can fail with (besides the source layer's own error).
 *
 * @since 0.1.0
 * @category models
 */
export type LegacyImportError =
  | LegacyTableMissing
  | TargetNotMigrated
  | InvalidTableName
  | InvalidLegacyImportOptions
  | LegacyImportFailed

const failedWhile = (step: string) => (cause: SqlError) => new LegacyImportFailed({ step, reason: SqlErrors.failureText(cause), cause })

/**
 * The legacy table names `run` uses for these options.
 *
 * @since 0.1.0
 * @category tables
 */
export const legacyTables = (options: Pick<RunOptions<unknown>, "source" | "tables"> = {}): LegacyTables => {
  const prefix = options.source === undefined ? "legacy_" : ""
  return {
    sessions: options.tables?.sessions ?? `${prefix}sessions`,
    agentContexts: options.tables?.agentContexts ?? `${prefix}agent_contexts`
  }
}

/**
 * The job names an import with these options checkpoints under.
 *
 * @since 0.1.0
 * @category tables
 */
export const jobNames = (tables: LegacyTables) => ({
  sessions: `legacy-import:${tables.sessions}`,
  agentContexts: `legacy-import:${tables.agentContexts}`
})

/** The client of the database holding the legacy tables; `separate` when it is not the target's own. */
class LegacySource extends Context.Tag("@strata/chat/LegacyImport/LegacySource")<
  LegacySource,
  { readonly sql: SqlClient.SqlClient; readonly separate: boolean }
>() {}

/**
 * Runs `effect` on the legacy database's client. @effect/sql runs every client's statements on the
 * connection of the transaction in progress, whichever client began it: a separate source's
 * statements leave the target's transaction, or they would read the target database.
 */
const onSource = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>): Effect.Effect<A, E, LegacySource> =>
  Effect.flatMap(LegacySource, ({ separate, sql }) => {
    const onClient = Effect.provideService(effect, SqlClient.SqlClient, sql)
    return separate ? Effect.mapInputContext(onClient, Context.omit(SqlClient.TransactionConnection)) : onClient
  })

const columnNames = (table: string): Effect.Effect<ReadonlySet<string>, SqlError, SqlClient.SqlClient> =>
  Effect.map(Catalog.tableColumns(table), (rows) => new Set(rows.map((r) => r.name)))

/** What the checkpoint's cursor holds: the last key and the child-row count so far. */
interface Cursor {
  readonly after: string | undefined
  readonly children: number
}

const readCursor = (text: string | null): Cursor => {
  if (text === null) return { after: undefined, children: 0 }
  const parsed = JSON.parse(text) as { after?: string; children?: number }
  const key = parsed.after === undefined ? undefined : JobState.decodeKeyCursor(parsed.after)
  return { after: typeof key === "string" ? key : undefined, children: parsed.children ?? 0 }
}

const writeCursor = (after: string, children: number): string =>
  JSON.stringify({ after: JobState.encodeKeyCursor(after), children })

/** A table's running totals: its counts and the child rows (messages, agent switches) written so far. */
type Totals = TableCounts & { readonly children: number }

const noTotals: Totals = { scanned: 0, imported: 0, skipped: 0, rejected: 0, children: 0 }

/** The public counts of `totals` (without the child rows, which `ImportResult` reports on their own). */
const tableCounts = ({ imported, rejected, scanned, skipped }: Totals): TableCounts => ({ scanned, imported, skipped, rejected })

const totalsOf = (checkpoint: JobState.Checkpoint): Totals => ({
  scanned: checkpoint.processed,
  imported: checkpoint.updated,
  skipped: checkpoint.processed - checkpoint.updated - checkpoint.rejected,
  rejected: checkpoint.rejected,
  children: readCursor(checkpoint.cursor).children
})

/** Checkpoints `totals` (after key `after`) in the caller's transaction and returns them with `skipped` derived. */
const saveTotals = (
  job: string,
  after: string | undefined,
  totals: Omit<Totals, "skipped">,
  state: "running" | "done"
): Effect.Effect<Totals, SqlError, SqlClient.SqlClient> =>
  Effect.as(
    JobState.saveCheckpoint(job, {
      cursor: after === undefined ? null : writeCursor(after, totals.children),
      processed: totals.scanned,
      updated: totals.imported,
      rejected: totals.rejected,
      // Rows already in the store; the import has no out-of-scope rows.
      alreadySet: totals.scanned - totals.imported - totals.rejected,
      outOfScope: 0,
      state
    }),
    { ...totals, skipped: totals.scanned - totals.imported - totals.rejected }
  )

/** One legacy table's import. */
interface Phase<Row, Converted> {
  readonly phase: ImportProgress["phase"]
  readonly job: string
  readonly table: string
  readonly columns: ReadonlyArray<string>
  readonly convert: (row: Row) => Either.Either<Converted, string>
  /** Writes the converted rows in the caller's transaction: which were imported, which skipped, which rejected. */
  readonly write: (rows: ReadonlyArray<Converted>) => Effect.Effect<Written, SqlError, SqlClient.SqlClient>
}

/** What one batch found and did. */
interface BatchOutcome {
  readonly totals: Totals
  readonly done: boolean
  /** The last legacy key of the batch; `undefined` when it read no rows. */
  readonly lastKey: string | undefined
}

/** The legacy rows after key `after`, in key order, at most `limit`. */
const legacyRows = <Row>(phase: Pick<Phase<Row, unknown>, "table" | "columns">, after: string | undefined, limit: number) =>
  onSource(Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const select = `SELECT ${phase.columns.map(Identifier.quote).join(", ")} FROM ${Identifier.quoteTable(phase.table as Identifier.TableName)}`
    return after === undefined
      ? sql<Row & object>`${sql.literal(select)} WHERE session_id IS NOT NULL ORDER BY session_id LIMIT ${limit}`
      : sql<Row & object>`${sql.literal(select)} WHERE session_id > ${after} ORDER BY session_id LIMIT ${limit}`
  }))

/** Legacy rows without a key (SQLite lets a TEXT PRIMARY KEY be NULL): keyset batches never see them. */
const unkeyedRows = (phase: Pick<Phase<unknown, unknown>, "table">) =>
  onSource(Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.literal(Identifier.quoteTable(phase.table as Identifier.TableName))} WHERE session_id IS NULL`,
      (rows) => Number(rows[0]?.n ?? 0)
    )))

/**
 * One batch in one target transaction: claims the job's checkpoint, reads the legacy rows after its
 * cursor, converts and writes them, records the rejects and saves the new cursor and counters
 * (the claimed ones plus this batch's). A batch that reads fewer than `batchSize` rows ends the
 * job: rows without a key are reported as one reject, and the job is `done`.
 */
const importBatch = <Row extends { readonly session_id: unknown }, Converted>(
  phase: Phase<Row, Converted>,
  batchSize: number
): Effect.Effect<BatchOutcome, SqlError, SqlClient.SqlClient | LegacySource> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const claimed = yield* JobState.claimCheckpoint(phase.job)
      const counts = totalsOf(claimed)
      if (claimed.state === "done") return { totals: counts, done: true, lastKey: undefined }
      const cursor = readCursor(claimed.cursor)
      const rows = yield* legacyRows<Row>(phase, cursor.after, batchSize)
      const converted: Array<Converted> = []
      const rejects: Array<JobState.Reject> = []
      for (const row of rows) {
        const result = phase.convert(row)
        if (Either.isRight(result)) converted.push(result.right)
        else rejects.push({ rowKey: rowKey(row.session_id), reason: result.left })
      }
      const outcome = yield* phase.write(converted)
      const now = yield* Timestamp.now
      let rejected = counts.rejected + (yield* JobState.recordRejects(phase.job, [...rejects, ...outcome.rejects], now))
      let scanned = counts.scanned + rows.length
      const done = rows.length < batchSize
      if (done) {
        const unkeyed = yield* unkeyedRows(phase)
        const recorded = unkeyed === 0
          ? 0
          : yield* JobState.recordRejects(phase.job, [{ rowKey: "NULL", reason: `session_id: NULL in ${unkeyed} row(s)` }], now)
        if (recorded > 0) {
          scanned += unkeyed
          rejected += unkeyed
        }
      }
      const lastKey = rows.length === 0 ? undefined : rowKey(rows[rows.length - 1]!.session_id)
      const totals = yield* saveTotals(
        phase.job,
        lastKey ?? cursor.after,
        { scanned, imported: counts.imported + outcome.imported, rejected, children: counts.children + outcome.children },
        done ? "done" : "running"
      )
      return { totals, done, lastKey }
    })))

/** Checks the target has the chat-store tables and the source the legacy ones; whether there are agent contexts. */
const preflight = (tables: LegacyTables) =>
  Effect.gen(function*() {
    for (const [table, column] of [["sessions", "created_at_ms"], ["messages", "seq"], ["agent_contexts", "updated_at_ms"], ["agent_switches", "switched_at_ms"]] as const) {
      const columns = yield* columnNames(table).pipe(Effect.mapError(failedWhile("reading the target schema")))
      if (!columns.has(column)) return yield* new TargetNotMigrated({ table })
    }
    const sessionColumns = yield* onSource(columnNames(tables.sessions)).pipe(Effect.mapError(failedWhile("reading the legacy schema")))
    for (const column of sessionPhaseColumns) {
      if (!sessionColumns.has(column)) {
        return yield* new LegacyTableMissing({
          table: tables.sessions,
          reason: sessionColumns.size === 0 ? "does not exist" : `has no column ${column} (not the legacy layout)`
        })
      }
    }
    const contextColumns = yield* onSource(columnNames(tables.agentContexts)).pipe(Effect.mapError(failedWhile("reading the legacy schema")))
    const missing = contextPhaseColumns.find((c) => !contextColumns.has(c))
    if (contextColumns.size > 0 && missing !== undefined) {
      return yield* new LegacyTableMissing({ table: tables.agentContexts, reason: `has no column ${missing} (not the legacy layout)` })
    }
    return { hasAgentContexts: contextColumns.size > 0 }
  })

const sessionPhaseColumns = ["session_id", "messages", "last_activity"]
const contextPhaseColumns = ["session_id", "current_agent", "agent_history", "metadata", "created_at", "updated_at"]

/**
 * Imports the legacy tables into the chat-store tables of the ambient `SqlClient`'s database
 * (see the module documentation). Returns the exact totals.
 *
 * @since 0.1.0
 * @category import
 */
export const run = <E = never>(
  options: RunOptions<E> = {}
): Effect.Effect<ImportResult, LegacyImportError | E, SqlClient.SqlClient> =>
  Effect.scoped(Effect.gen(function*() {
    // Before the source layer is built: bad options open nothing.
    const batchSize = yield* Options.resolve(
      "batchSize",
      options.batchSize,
      100,
      Options.positiveCount,
      (option, reason) => new InvalidLegacyImportOptions({ option, reason })
    )
    const tables = legacyTables(options)
    for (const [option, name] of [["tables.sessions", tables.sessions], ["tables.agentContexts", tables.agentContexts]] as const) {
      if (Either.isLeft(Identifier.decode(name))) return yield* new InvalidTableName({ option, name })
    }
    const target = yield* Database.strataClient
    const source = options.source === undefined
      ? { sql: target, separate: false }
      : { sql: Context.get(yield* Layer.build(options.source), SqlClient.SqlClient).withoutTransforms(), separate: true }
    const jobs = jobNames(tables)
    return yield* importAll(tables, jobs, batchSize, options).pipe(
      Effect.provideService(LegacySource, source),
      Effect.provideService(SqlClient.SqlClient, target)
    )
  }))

const importAll = (
  tables: LegacyTables,
  jobs: ImportResult["jobs"],
  batchSize: number,
  options: RunOptions<unknown>
): Effect.Effect<ImportResult, LegacyImportError, SqlClient.SqlClient | LegacySource> =>
  Effect.gen(function*() {
    const { hasAgentContexts } = yield* preflight(tables)
    yield* Effect.gen(function*() {
      yield* JobState.ensureTables
      if (options.restart === true) {
        yield* JobState.resetJob(jobs.sessions)
        yield* JobState.resetJob(jobs.agentContexts)
      }
    }).pipe(Effect.mapError(failedWhile("preparing strata_jobs")))

    const loaded = (job: string) =>
      JobState.loadCheckpoint(job).pipe(
        Effect.map(Option.match({ onNone: () => noTotals, onSome: totalsOf })),
        Effect.mapError(failedWhile("loading the checkpoint"))
      )
    const totals = { sessions: yield* loaded(jobs.sessions), agentContexts: yield* loaded(jobs.agentContexts) }
    const snapshot = (): ImportResult => ({
      sessions: tableCounts(totals.sessions),
      messages: totals.sessions.children,
      agentContexts: tableCounts(totals.agentContexts),
      agentSwitches: totals.agentContexts.children,
      jobs
    })

    const runPhase = <Row extends { readonly session_id: unknown }, Converted>(phase: Phase<Row, Converted>) =>
      Effect.gen(function*() {
        while (true) {
          const batch = yield* importBatch(phase, batchSize).pipe(Effect.mapError(failedWhile(`importing a batch of ${phase.table}`)))
          totals[phase.phase] = batch.totals
          if (batch.lastKey !== undefined && options.onProgress !== undefined) {
            yield* options.onProgress({ phase: phase.phase, totals: snapshot(), lastKey: batch.lastKey })
          }
          if (batch.done) return
          // A real turn of the event loop: on SQLite nothing else would run (signals, timers, other fibers) until the end.
          yield* nextTurn
        }
      }).pipe(
        // pauseJob only pauses a running job: an interrupt after the phase finished must not undo "done".
        Effect.onInterrupt(() => Effect.ignore(JobState.pauseJob(phase.job))),
        Effect.withSpan("LegacyImport.phase", { attributes: { job: phase.job } })
      )

    yield* runPhase<LegacySessionRow, ImportedSession>({
      phase: "sessions",
      job: jobs.sessions,
      table: tables.sessions,
      columns: sessionPhaseColumns,
      convert: importSession,
      write: writeSessions
    })
    if (hasAgentContexts) {
      yield* runPhase<LegacyAgentContextRow, ImportedAgentContext>({
        phase: "agentContexts",
        job: jobs.agentContexts,
        table: tables.agentContexts,
        columns: contextPhaseColumns,
        convert: importAgentContext,
        write: writeAgentContexts
      })
    }
    const result = snapshot()
    yield* Effect.logInfo("legacy import finished").pipe(
      Effect.annotateLogs({
        sessions_imported: result.sessions.imported,
        sessions_skipped: result.sessions.skipped,
        sessions_rejected: result.sessions.rejected,
        messages: result.messages,
        agent_contexts_imported: result.agentContexts.imported,
        agent_contexts_rejected: result.agentContexts.rejected,
        agent_switches: result.agentSwitches
      })
    )
    return result
  })

/**
 * The rows an import rejected (up to `limit` per legacy table), with their reasons.
 *
 * @since 0.1.0
 * @category rejects
 */
export const rejects = (
  options: Pick<RunOptions<unknown>, "source" | "tables"> & { readonly limit?: number } = {}
): Effect.Effect<ReadonlyArray<JobState.RecordedReject>, LegacyImportFailed, SqlClient.SqlClient> =>
  Database.withStrataClient(Effect.gen(function*() {
    const jobs = jobNames(legacyTables(options))
    yield* JobState.ensureTables
    const limit = options.limit ?? 1000
    return [...yield* JobState.loadRejects(jobs.sessions, limit), ...yield* JobState.loadRejects(jobs.agentContexts, limit)]
  })).pipe(Effect.mapError(failedWhile("reading strata_rejects")))

/**
 * Renames a legacy `sessions` / `agent_contexts` pair (recognised by the legacy `messages` and
 * `agent_history` columns) to `legacy_sessions` / `legacy_agent_contexts`, in one transaction, so the
 * chat-store plan can create its own tables; then `run()` imports from them. Returns the tables
 * renamed (none when there is no legacy layout, e.g. on a second call).
 *
 * @since 0.1.0
 * @category tables
 */
export const renameLegacyTables: Effect.Effect<
  ReadonlyArray<string>,
  LegacyTableExists | LegacyImportFailed,
  SqlClient.SqlClient
> = Database.withStrataClient(Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(Effect.gen(function*() {
    const renamed: Array<string> = []
    for (const [table, marker] of [["sessions", "messages"], ["agent_contexts", "agent_history"]] as const) {
      const columns = yield* columnNames(table)
      if (!columns.has(marker)) continue
      const destination = `legacy_${table}`
      if ((yield* columnNames(destination)).size > 0) return yield* new LegacyTableExists({ table: destination })
      yield* sql.unsafe(`ALTER TABLE ${Identifier.quote(table)} RENAME TO ${Identifier.quote(destination)}`)
      renamed.push(table)
    }
    return renamed
  }))
})).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failedWhile("renaming the legacy tables")(e))))
