/**
 * `strata demo [--rows N] [--seed N]`: the whole story on one embedded database, no server needed.
 * Creates the legacy AgentOS tables with generated data (mixed timestamp formats, NULLs, garbage,
 * supervisor audit payloads) and the old two-table session store, applies the agentos plan,
 * backfills with progress, shows a lazy read fixing a row an old app version wrote after the
 * backfill, verifies, imports the legacy sessions into the chat store, and prints the status.
 *
 * Re-running: the demo marks its database (table `strata_demo`). On a database it marked, it
 * drops the tables it owns and starts again from freshly generated data, so every run shows the
 * same story; it refuses any other non-empty database.
 *
 * @since 0.1.0
 */
import { Command, Options } from "@effect/cli"
import { ChatPlan } from "@strata/chat"
import { Backfill, Plans, Timestamp } from "@strata/core"
import { LazyMigration, Migrator, Verifier } from "@strata/sql"
import { Clock, Effect, Option } from "effect"
import * as LegacyData from "../demo/LegacyData.js"
import * as LegacySessions from "../demo/LegacySessions.js"
import * as Seed from "../demo/Seed.js"
import { SqlClient } from "@effect/sql/SqlClient"
import * as Outcome from "../Outcome.js"
import * as Output from "../Output.js"
import * as ProgressView from "../ProgressView.js"
import * as Session from "../Session.js"
import * as SharedOptions from "../SharedOptions.js"
import * as Table from "../Table.js"
import * as BackfillCommand from "./backfill.js"
import * as ImportLegacy from "./importLegacy.js"
import * as Status from "./status.js"
import * as Verify from "./verify.js"

// The quick start runs the demo as `pnpm strata demo`; suggest next commands the same way they can be typed.
const invocation = process.env["npm_lifecycle_event"] === "strata" ? "pnpm strata" : "strata"

/**
 * The largest `--rows` the demo accepts (its data is generated in memory).
 *
 * @since 0.1.0
 */
export const maxRows = 1_000_000

/**
 * Every table the demo creates, or strata creates while the demo runs: what a reset drops.
 *
 * @since 0.1.0
 */
export const ownedTables: ReadonlyArray<string> = [
  ...Plans.agentosLegacyTables.map((step) => step.table),
  // The chat store, children first (their foreign keys point at sessions), and its legacy tables.
  "messages",
  "agent_switches",
  "agent_contexts",
  "sessions",
  "legacy_sessions",
  "legacy_agent_contexts",
  "strata_migrations",
  "strata_jobs",
  "strata_rejects",
  Seed.markerTable
]

/**
 * The row an old app version writes after the backfill: its `created_at_ms` stays NULL until read.
 *
 * @since 0.1.0
 */
export const lateMessage = {
  message_id: "msg-late-000001",
  session_id: "ses-000001",
  role: "user",
  content: "written by an old app version after the backfill",
  metadata: null,
  // An offset the SQL fast path leaves to JavaScript: 09:30 at +02:00 is 07:30 UTC.
  created_at: "2025-07-01T09:30:00+02:00"
} as const

interface MessageTimes {
  readonly message_id: string
  readonly created_at: unknown
  readonly created_at_ms: unknown
}

const showMs = (value: unknown): string =>
  value === null || value === undefined
    ? "NULL"
    : `${String(value)} (${Timestamp.toIso(Number(value) as Timestamp.EpochMillis)})`

/** Inserts the late row, reads it raw, through the lazy migration, and raw again after the write-back. */
const lazyRead = Effect.gen(function*() {
  const sql = yield* SqlClient
  yield* sql`INSERT INTO chat_messages ${sql.insert(lateMessage)}`
  const readRaw = Effect.map(
    sql<MessageTimes>`SELECT message_id, created_at, created_at_ms FROM chat_messages WHERE message_id = ${lateMessage.message_id}`,
    (rows) => rows[0]
  )
  const before = yield* readRaw
  const read = yield* readRaw.pipe(LazyMigration.withFixUp("chat_messages"))
  yield* LazyMigration.flush
  const after = yield* readRaw
  return {
    messageId: lateMessage.message_id,
    createdAt: lateMessage.created_at,
    storedBeforeMs: before?.created_at_ms ?? null,
    readMs: read?.created_at_ms ?? null,
    storedAfterMs: after?.created_at_ms ?? null
  }
}).pipe(Effect.provide(LazyMigration.layer(Plans.agentos)))

const indent = (lines: ReadonlyArray<string>): ReadonlyArray<string> => lines.map((line) => (line === "" ? line : `   ${line}`))

const plural = (n: number, word: string) => `${Table.count(n)} ${word}${n === 1 ? "" : "s"}`

/**
 * The `demo` subcommand.
 *
 * @since 0.1.0
 */
export const command = Command.make(
  "demo",
  {
    ...SharedOptions.shared,
    // The demo always runs its own plan; STRATA_PLAN (the app's plan) is not read.
    plan: Options.text("plan").pipe(
      Options.withPseudoName("agentos"),
      Options.withDescription("The demo runs the built-in agentos plan only; no other plan is accepted."),
      Options.optional
    ),
    rows: Options.integer("rows").pipe(
      Options.withDescription(`Rows of chat_messages to generate (the other tables are sized from it), 1 to ${Table.count(maxRows)}.`),
      Options.withDefault(10_000)
    ),
    seed: Options.integer("seed").pipe(
      Options.withDescription("Seed of the data generator: the same seed and --rows give the same data."),
      Options.withDefault(LegacyData.defaultSeed)
    )
  },
  (args) =>
    Session.run(
      args,
      Effect.gen(function*() {
        if (args.rows < 1 || args.rows > maxRows) {
          return yield* new Outcome.BadArgument({ message: `--rows must be between 1 and ${Table.count(maxRows)}, got ${args.rows}` })
        }
        if (Option.isSome(args.plan) && args.plan.value !== "agentos") {
          return yield* new Outcome.BadArgument({ message: "strata demo runs the built-in agentos plan; leave out --plan" })
        }
        const say = (lines: ReadonlyArray<string>) => (args.json ? Effect.void : Output.lines(lines))
        return yield* Session.withDatabase({ ...args, plan: Option.some("agentos") }, { mustExist: false }, ({ plan, target }) =>
          Effect.gen(function*() {
            yield* say([`strata demo on ${target.display} (${target.dialect})`, ""])

            const marker = yield* Seed.ensureEmptyOrDemo(target.display)
            if (Option.isSome(marker)) {
              yield* say([
                `Found the demo database of an earlier run (seed ${marker.value.seed}, ${plural(marker.value.rows, "message")}); resetting its tables.`,
                ""
              ])
              yield* Seed.dropTables(ownedTables)
            }

            const options = { rows: args.rows, seed: args.seed }
            const tables = LegacyData.generate(options)
            const total = tables.reduce((sum, t) => sum + t.rows.length, 0)
            yield* say([
              `1. Legacy data: ${tables.length} AgentOS tables as they were before migration 21 (times as TIMESTAMP text),`,
              `   seed ${args.seed}: ${tables.map((t) => `${t.table} ${Table.count(t.rows.length)}`).join(", ")}`
            ])
            const legacySessions = LegacySessions.generate(options)
            yield* say([
              `   and the old two-table session store: sessions ${Table.count(legacySessions.sessions.length)} (messages as one JSON array each), ` +
              `agent_contexts ${Table.count(legacySessions.agentContexts.length)} (agent history as JSON)`
            ])
            const seedStarted = yield* Clock.currentTimeMillis
            yield* Seed.seedAgentos(tables, options)
            yield* Seed.seedLegacySessions(legacySessions)
            const seedMs = (yield* Clock.currentTimeMillis) - seedStarted
            const written = total + legacySessions.sessions.length + legacySessions.agentContexts.length
            yield* say([`   ${plural(written, "row")} written in ${seedMs} ms.`, ""])

            yield* say([`2. Migrate: plan ${plan.name}, ${plural(plan.migrations.length, "migration")}`])
            const migrated = yield* Migrator.run().pipe(Effect.provide(Migrator.layer(plan)))
            yield* say([
              ...migrated.applied.map((m) =>
                `   applied ${m.id} "${m.name}": ${plural(m.statements.filter((s) => !s.skipped).length, "statement")} in ${m.durationMs} ms`
              ),
              ""
            ])

            yield* say(["3. Backfill: every job in short batches, each batch one transaction with its checkpoint"])
            const backfill = yield* BackfillCommand.runWithProgress(plan, Backfill.jobs(plan), {}, ProgressView.modeFor(args.json), "   ")
            yield* say([...indent(BackfillCommand.summaryLines(backfill)), ""])

            const lazy = yield* lazyRead
            yield* say([
              "4. Lazy migration: an old app version writes a message after the backfill, without created_at_ms",
              `   stored before the read:   ${lazy.messageId}  created_at ${JSON.stringify(lazy.createdAt)}  created_at_ms ${showMs(lazy.storedBeforeMs)}`,
              `   the read returns:         created_at_ms ${showMs(lazy.readMs)}`,
              `   stored after write-back:  created_at_ms ${showMs(lazy.storedAfterMs)}`,
              ""
            ])

            const report = yield* Verifier.report()
            yield* say(["5. Verify: every backfilled value recomputed from its source", ...indent(Verify.reportLines(report, target.display)), ""])

            yield* say(["6. Import legacy sessions into the chat store (what 'strata import-legacy' does)"])
            const imported = yield* ImportLegacy.importWithProgress(
              ChatPlan.plan,
              target.display,
              { from: undefined, batchSize: undefined, restart: false },
              ProgressView.modeFor(args.json),
              (lines) => say(indent(lines)),
              "   "
            )
            yield* say([...indent(ImportLegacy.summaryLines(imported)), ""])

            const [migrations, progress] = yield* Status.readStatus(plan)
            yield* say(["7. Status: what 'strata status' shows", ...indent(Status.statusLines(migrations, progress, target.display)), ""])

            if (args.json) {
              yield* Output.result("demo", {
                database: target.display,
                dialect: target.dialect,
                reset: Option.isSome(marker),
                seed: args.seed,
                seeded: Object.fromEntries(tables.map((t) => [t.table, t.rows.length])),
                migrate: { applied: migrated.applied.map((m) => m.id), alreadyApplied: migrated.alreadyApplied },
                backfill: BackfillCommand.summaryJson(backfill),
                lazy,
                verify: Verify.reportJson(report, target.display),
                importLegacy: ImportLegacy.summaryJson(imported, target.display),
                status: Status.statusJson(migrations, progress, target.display)
              })
            } else {
              yield* say([
                "Done. Try next:",
                `  ${invocation} status --plan agentos --db ${args.db}`,
                `  ${invocation} verify --plan agentos --db ${args.db}`,
                `  ${invocation} rejects --plan agentos --db ${args.db}`,
                `  ${invocation} migrate --dry-run --plan agentos --db ${args.db}`
              ])
            }
            if (!report.passed) return yield* new Verifier.VerificationFailed({ report })
          }).pipe(Effect.provide(Verifier.layer(plan))))
      }),
      "interrupted; run 'strata demo' again to start over (it resets its own tables)."
    )
).pipe(Command.withDescription("Run the whole story on a generated legacy database: migrate, backfill, lazy read, verify, legacy import, status."))
