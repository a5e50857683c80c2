/**
 * The impact benchmark's lazily migrating reader, in a process of its own (as an app instance that
 * reads through `LazyMigration` is): `reads` point reads of `chat_messages` rows by key, in a fixed
 * random order over the first `rows` keys, each through `withFixUp`, so the write-back writes the
 * fixed rows while the impact app keeps writing. Usage:
 *
 *   node impactLazy.js <file|url> <plan file> <rows> <reads>
 *
 * It reads as fast as it can, flushes the write-back, and prints one JSON line: the reads, the rows
 * written back, dropped and failed, the write-back's statements and how long they ran (mean and
 * longest, from `LazyMigration.metrics.statementMs`). It exits 1 when a read came back without its
 * target or the write-back's counts do not add up.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { Database, LazyMigration } from "@strata/sql"
import { Effect, Either, Logger, LogLevel, Metric } from "effect"
import * as Fs from "node:fs"
import { messageKey, seededRandom } from "./harness.js"

const [url, planFile, rowsText, readsText] = process.argv.slice(2)
const rows = Number(rowsText)
const reads = Number(readsText)
if (url === undefined || planFile === undefined || !(rows > 0) || !(reads > 0)) {
  console.error("usage: impactLazy.js <file|url> <plan file> <rows> <reads>")
  process.exit(2)
}
const plan = Plan.fromJson(Fs.readFileSync(planFile, "utf8"), planFile)
if (Either.isLeft(plan)) {
  console.error(plan.left.message)
  process.exit(2)
}

/** The JSON line this process prints (`impact.ts` reads it). */
export interface LazyReport {
  readonly reads: number
  readonly missing: number
  /** Where the write-back ran (`LazyMigration.writeBackPath`'s tag). */
  readonly path: string
  readonly writtenBack: number
  readonly alreadySet: number
  readonly coalesced: number
  readonly dropped: number
  readonly failed: number
  readonly queued: number
  readonly pending: number
  readonly unkeyed: number
  readonly statements: number
  readonly statementMeanMs: number
  readonly statementMaxMs: number
}

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const random = seededRandom(7919)
  let missing = 0
  for (let i = 0; i < reads; i++) {
    const key = messageKey(1 + Math.floor(random() * rows))
    const found = yield* sql<{ readonly created_at_ms: unknown }>`SELECT * FROM chat_messages WHERE message_id = ${key}`.pipe(
      LazyMigration.withFixUp("chat_messages")
    )
    if (found[0]?.created_at_ms == null) missing++
  }
  yield* LazyMigration.flush
  const stats = yield* LazyMigration.stats
  const times = yield* Metric.value(Metric.tagged(LazyMigration.metrics.statementMs, "table", "chat_messages"))
  const path = yield* LazyMigration.writeBackPath
  const report: LazyReport = {
    reads,
    missing,
    path: path._tag,
    writtenBack: stats.writtenBack,
    alreadySet: stats.alreadySet,
    coalesced: stats.coalesced,
    dropped: stats.dropped,
    failed: stats.failed,
    queued: stats.queued,
    pending: stats.pending,
    unkeyed: stats.unkeyed,
    statements: stats.statements,
    statementMeanMs: times.count === 0 ? 0 : times.sum / times.count,
    statementMaxMs: times.count === 0 ? 0 : times.max
  }
  return report
})

const result = await Effect.runPromise(
  program.pipe(
    Effect.provide(LazyMigration.layer(plan.right)),
    Effect.provide(Database.layer({ url })),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    Effect.scoped
  )
)
console.log(JSON.stringify(result))
const reconciles = result.queued === result.pending + result.writtenBack + result.alreadySet + result.failed + result.unkeyed + result.coalesced
process.exit(result.missing === 0 && reconciles ? 0 : 1)
