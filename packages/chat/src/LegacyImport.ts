/**
 * Moves sessions from seed 003's first, two-table layout into the chat-store tables
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
 * - Idempotent: a session (or agent context) already in the store is skipped whole and counted as
 *   skipped, so re-running never duplicates messages.
 * - A legacy row that cannot be converted (invalid JSON, a message without a role or with an unknown
 *   one, a time `Timestamp.parse` rejects, text where a number belongs, an agent context whose session
 *   is not in the store) is rejected whole: recorded once in `strata_rejects` with the reason naming
 *   the field (`messages[3].role: missing`), counted, and left untouched in the legacy table.
 * - The agent contexts are imported after all sessions; a missing legacy `agent_contexts` table
 *   means there are none.
 *
 * @since 0.1.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Identifier, Timestamp } from "@strata/core"
import { Array as Arr, Context, Effect, Either, Layer, Option, Schema } from "effect"
import { Catalog, JobState, SqlErrors } from "@strata/sql"
import { insertMessages, jsonToColumn } from "./internal/chatRows.js"
import type { ImportedAgentContext, ImportedSession, LegacyAgentContextRow, LegacySessionRow } from "./internal/legacyRows.js"
import { importAgentContext, importSession, rowKey } from "./internal/legacyRows.js"
import { Options as NumericOption } from "@strata/core"

/**
 * The names of the legacy tables.
 *
 * @since 0.1.0
 */
export interface LegacyTables {
  readonly sessions: string
  readonly agentContexts: string
}

/**
 * What one table of the import did. `scanned = imported + skipped + rejected`.
 *
 * @since 0.1.0
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
 */
export const jobNames = (tables: LegacyTables) => ({
  sessions: `legacy-import:${tables.sessions}`,
  agentContexts: `legacy-import:${tables.agentContexts}`
})

const tableColumns = (sql: SqlClient.SqlClient, table: string): Effect.Effect<ReadonlySet<string>, SqlError> =>
  Effect.map(
    Effect.provideService(Catalog.tableColumns(table), SqlClient.SqlClient, sql),
    (rows) => new Set(rows.map((r) => r.name))
  )

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

/** The public counts of `totals` (without the child rows, which `ImportResult` reports on their own). */
const tableCounts = ({ imported, rejected, scanned, skipped }: Totals): TableCounts => ({ scanned, imported, skipped, rejected })

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
      state
    }),
    { ...totals, skipped: totals.scanned - totals.imported - totals.rejected }
  )

const countsOf = (checkpoint: Option.Option<JobState.Checkpoint>): Totals =>
  Option.match(checkpoint, {
    onNone: () => ({ scanned: 0, imported: 0, skipped: 0, rejected: 0, children: 0 }),
    onSome: (c) => ({
      scanned: c.processed,
      imported: c.updated,
      skipped: c.processed - c.updated - c.rejected,
      rejected: c.rejected,
      children: readCursor(c.cursor).children
    })
  })

interface PhaseSpec<Row, Converted> {
  readonly phase: ImportProgress["phase"]
  readonly job: string
  readonly table: string
  readonly columns: ReadonlyArray<string>
  readonly convert: (row: Row) => Either.Either<Converted, string>
  readonly keyOf: (row: Row) => unknown
  /** Writes the converted rows in the caller's transaction: which were imported, which skipped, which rejected. */
  readonly write: (
    rows: ReadonlyArray<Converted>
  ) => Effect.Effect<{ readonly imported: number; readonly children: number; readonly rejects: ReadonlyArray<JobState.Reject> }, SqlError>
}

/**
 * Imports the legacy tables into the chat-store tables of the ambient `SqlClient`'s database
 * (see the module documentation). Returns the exact totals.
 *
 * @since 0.1.0
 */
export const run = <E = never>(
  options: RunOptions<E> = {}
): Effect.Effect<ImportResult, LegacyImportError | E, SqlClient.SqlClient> =>
  Effect.scoped(Effect.gen(function*() {
    // Before the source layer is built: bad options open nothing.
    const batchSize = yield* NumericOption.resolve(
      "batchSize",
      options.batchSize,
      100,
      NumericOption.positiveCount,
      (option, reason) => new InvalidLegacyImportOptions({ option, reason })
    )
    const target = yield* SqlClient.SqlClient
    const source = options.source === undefined
      ? target
      : Context.get(yield* Layer.build(options.source), SqlClient.SqlClient)
    const tables = legacyTables(options)
    for (const [option, name] of [["tables.sessions", tables.sessions], ["tables.agentContexts", tables.agentContexts]] as const) {
      if (Either.isLeft(Identifier.decode(name))) return yield* new InvalidTableName({ option, name })
    }
    const jobs = jobNames(tables)

    for (const [table, column] of [["sessions", "created_at_ms"], ["messages", "seq"], ["agent_contexts", "updated_at_ms"], ["agent_switches", "switched_at_ms"]] as const) {
      const columns = yield* tableColumns(target, table).pipe(Effect.mapError(failedWhile("reading the target schema")))
      if (!columns.has(column)) return yield* new TargetNotMigrated({ table })
    }
    const sessionColumns = yield* tableColumns(source, tables.sessions).pipe(Effect.mapError(failedWhile("reading the legacy schema")))
    for (const column of ["session_id", "messages", "last_activity"]) {
      if (!sessionColumns.has(column)) {
        return yield* new LegacyTableMissing({
          table: tables.sessions,
          reason: sessionColumns.size === 0 ? "does not exist" : `has no column ${column} (not the legacy layout)`
        })
      }
    }
    const contextColumns = yield* tableColumns(source, tables.agentContexts).pipe(Effect.mapError(failedWhile("reading the legacy schema")))
    const contextColumnNames = ["session_id", "current_agent", "agent_history", "metadata", "created_at", "updated_at"]
    const missingContextColumn = contextColumnNames.find((c) => !contextColumns.has(c))
    if (contextColumns.size > 0 && missingContextColumn !== undefined) {
      return yield* new LegacyTableMissing({ table: tables.agentContexts, reason: `has no column ${missingContextColumn} (not the legacy layout)` })
    }

    yield* Effect.gen(function*() {
      yield* JobState.ensureTables
      if (options.restart === true) {
        yield* JobState.resetJob(jobs.sessions)
        yield* JobState.resetJob(jobs.agentContexts)
      }
    }).pipe(Effect.mapError(failedWhile("preparing strata_jobs")))

    const totals = {
      sessions: countsOf(yield* JobState.loadCheckpoint(jobs.sessions).pipe(Effect.mapError(failedWhile("loading the checkpoint")))),
      agentContexts: countsOf(yield* JobState.loadCheckpoint(jobs.agentContexts).pipe(Effect.mapError(failedWhile("loading the checkpoint"))))
    }
    const snapshot = (): ImportResult => ({
      sessions: tableCounts(totals.sessions),
      messages: totals.sessions.children,
      agentContexts: tableCounts(totals.agentContexts),
      agentSwitches: totals.agentContexts.children,
      jobs
    })

    const runPhase = <Row extends { readonly session_id: unknown }, Converted>(
      spec: PhaseSpec<Row, Converted>,
      key: "sessions" | "agentContexts"
    ) =>
      Effect.gen(function*() {
        const checkpoint = yield* JobState.loadCheckpoint(spec.job).pipe(Effect.mapError(failedWhile("loading the checkpoint")))
        if (Option.isSome(checkpoint) && checkpoint.value.state === "done") return
        let after = Option.match(checkpoint, { onNone: () => undefined, onSome: (c) => readCursor(c.cursor).after })
        const selectList = source.literal(spec.columns.join(", "))
        const table = source(spec.table)
        while (true) {
          const rows = yield* (after === undefined
            ? source<Row>`SELECT ${selectList} FROM ${table} WHERE session_id IS NOT NULL ORDER BY session_id LIMIT ${batchSize}`
            : source<Row>`SELECT ${selectList} FROM ${table} WHERE session_id > ${after} ORDER BY session_id LIMIT ${batchSize}`).pipe(
              Effect.mapError(failedWhile(`reading ${spec.table}`))
            )
          const last = rows[rows.length - 1]
          if (last === undefined) break
          const converted: Array<Converted> = []
          const rejects: Array<JobState.Reject> = []
          for (const row of rows) {
            const result = spec.convert(row)
            if (Either.isRight(result)) converted.push(result.right)
            else rejects.push({ rowKey: rowKey(spec.keyOf(row)), reason: result.left })
          }
          const lastKey = rowKey(last.session_id)
          const now = yield* Timestamp.now
          const written = yield* target.withTransaction(Effect.gen(function*() {
            const outcome = yield* spec.write(converted)
            const allRejects = [...rejects, ...outcome.rejects]
            const newRejects = yield* JobState.recordRejects(spec.job, allRejects, now)
            const counts = totals[key]
            const next = {
              scanned: counts.scanned + rows.length,
              imported: counts.imported + outcome.imported,
              rejected: counts.rejected + newRejects,
              children: counts.children + outcome.children
            }
            return yield* saveTotals(spec.job, lastKey, next, "running")
          })).pipe(Effect.mapError(failedWhile(`writing a batch of ${spec.table}`)))
          totals[key] = written
          after = lastKey
          if (options.onProgress !== undefined) yield* options.onProgress({ phase: spec.phase, totals: snapshot(), lastKey })
          if (rows.length < batchSize) break
        }
        // Keyset batches never see rows without a key (SQLite lets a TEXT PRIMARY KEY be NULL):
        // they cannot be imported, so they are reported as one reject, and the job is done.
        const unkeyed = yield* source<{ n: number | string }>`SELECT count(*) AS n FROM ${table} WHERE session_id IS NULL`.pipe(
          Effect.map((r) => Number(r[0]?.n ?? 0)),
          Effect.mapError(failedWhile(`reading ${spec.table}`))
        )
        const now = yield* Timestamp.now
        totals[key] = yield* target.withTransaction(Effect.gen(function*() {
          const counts = totals[key]
          const recorded = unkeyed === 0
            ? 0
            : yield* JobState.recordRejects(spec.job, [{ rowKey: "NULL", reason: `session_id: NULL in ${unkeyed} row(s)` }], now)
          const next = {
            scanned: counts.scanned + (recorded > 0 ? unkeyed : 0),
            imported: counts.imported,
            rejected: counts.rejected + (recorded > 0 ? unkeyed : 0),
            children: counts.children
          }
          return yield* saveTotals(spec.job, after, next, "done")
        })).pipe(Effect.mapError(failedWhile("finishing the job")))
      }).pipe(
        // pauseJob only pauses a running job: an interrupt after the phase finished must not undo "done".
        Effect.onInterrupt(() => Effect.ignore(JobState.pauseJob(spec.job))),
        Effect.withSpan("LegacyImport.phase", { attributes: { job: spec.job } })
      )

    const writeSessions = (sessions: ReadonlyArray<ImportedSession>) =>
      Effect.gen(function*() {
        const inserted = new Set<string>()
        for (const part of Arr.chunksOf(sessions, 500)) {
          const rows = yield* target<{ id: string }>`INSERT INTO sessions ${
            target.insert(part.map((s) => ({
              id: s.id,
              title: null,
              description: null,
              created_at_ms: s.createdAtMs,
              last_activity_ms: s.lastActivityMs,
              deleted_at_ms: null
            })))
          } ON CONFLICT (id) DO NOTHING RETURNING id`
          for (const row of rows) inserted.add(row.id)
        }
        const messages = sessions.filter((s) => inserted.has(s.id)).flatMap((s) => s.messages)
        yield* insertMessages(target, messages)
        return { imported: inserted.size, children: messages.length, rejects: [] }
      })

    const writeAgentContexts = (contexts: ReadonlyArray<ImportedAgentContext>) =>
      Effect.gen(function*() {
        if (contexts.length === 0) return { imported: 0, children: 0, rejects: [] }
        const present = new Set(
          (yield* target<{ id: string }>`SELECT id FROM sessions WHERE ${target.in("id", contexts.map((c) => c.sessionId))}`).map((r) => r.id)
        )
        const rejects = contexts
          .filter((c) => !present.has(c.sessionId))
          .map((c) => ({ rowKey: c.sessionId, reason: "session_id: no such session in the store (its legacy session is missing or was rejected)" }))
        const importable = contexts.filter((c) => present.has(c.sessionId))
        const inserted = new Set<string>()
        for (const part of Arr.chunksOf(importable, 500)) {
          const rows = yield* target<{ session_id: string }>`INSERT INTO agent_contexts ${
            target.insert(part.map((c) => ({
              session_id: c.sessionId,
              current_agent: c.currentAgent,
              created_at_ms: c.createdAtMs,
              updated_at_ms: c.updatedAtMs,
              switch_count: c.switches.length,
              metadata: jsonToColumn(c.metadata)
            })))
          } ON CONFLICT (session_id) DO NOTHING RETURNING session_id`
          for (const row of rows) inserted.add(row.session_id)
        }
        const switches = importable.filter((c) => inserted.has(c.sessionId)).flatMap((c) =>
          c.switches.map((s) => ({
            session_id: c.sessionId,
            from_agent: s.fromAgent,
            to_agent: s.toAgent,
            reason: s.reason,
            metadata: jsonToColumn(s.metadata),
            switched_at_ms: s.switchedAtMs
          }))
        )
        for (const part of Arr.chunksOf(switches, 500)) yield* target`INSERT INTO agent_switches ${target.insert(part)}`
        return { imported: inserted.size, children: switches.length, rejects }
      })

    yield* runPhase<LegacySessionRow, ImportedSession>({
      phase: "sessions",
      job: jobs.sessions,
      table: tables.sessions,
      columns: ["session_id", "messages", "last_activity"],
      convert: importSession,
      keyOf: (row) => row.session_id,
      write: writeSessions
    }, "sessions")
    if (contextColumns.size > 0) {
      yield* runPhase<LegacyAgentContextRow, ImportedAgentContext>({
        phase: "agentContexts",
        job: jobs.agentContexts,
        table: tables.agentContexts,
        columns: contextColumnNames,
        convert: importAgentContext,
        keyOf: (row) => row.session_id,
        write: writeAgentContexts
      }, "agentContexts")
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
  }))

/**
 * The rows an import rejected (up to `limit` per legacy table), with their reasons.
 *
 * @since 0.1.0
 */
export const rejects = (
  options: Pick<RunOptions<unknown>, "source" | "tables"> & { readonly limit?: number } = {}
): Effect.Effect<ReadonlyArray<JobState.RecordedReject>, LegacyImportFailed, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const jobs = jobNames(legacyTables(options))
    yield* JobState.ensureTables
    const limit = options.limit ?? 1000
    return [...yield* JobState.loadRejects(jobs.sessions, limit), ...yield* JobState.loadRejects(jobs.agentContexts, limit)]
  }).pipe(Effect.mapError(failedWhile("reading strata_rejects")))

/**
 * Renames a legacy `sessions` / `agent_contexts` pair (recognised by the legacy `messages` and
 * `agent_history` columns) to `legacy_sessions` / `legacy_agent_contexts`, in one transaction, so the
 * chat-store plan can create its own tables; then `run()` imports from them. Returns the tables
 * renamed (none when there is no legacy layout, e.g. on a second call).
 *
 * @since 0.1.0
 */
export const renameLegacyTables: Effect.Effect<
  ReadonlyArray<string>,
  LegacyTableExists | LegacyImportFailed,
  SqlClient.SqlClient
> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(Effect.gen(function*() {
    const renamed: Array<string> = []
    for (const [table, marker] of [["sessions", "messages"], ["agent_contexts", "agent_history"]] as const) {
      const columns = yield* tableColumns(sql, table)
      if (!columns.has(marker)) continue
      const destination = `legacy_${table}`
      if ((yield* tableColumns(sql, destination)).size > 0) return yield* new LegacyTableExists({ table: destination })
      yield* sql`ALTER TABLE ${sql(table)} RENAME TO ${sql(destination)}`
      renamed.push(table)
    }
    return renamed
  })).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(failedWhile("renaming the legacy tables")(e))))
})
