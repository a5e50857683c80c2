/**
 * Appending chat messages, on SQLite (a temp file) and PostgreSQL (`STRATA_BENCH_PG_URL`, else
 * `STRATA_TEST_PG_URL`; skipped without either), in one process, cases interleaved within each
 * repetition, each on the chat-store plan's tables with all their indexes:
 * (a) raw batched inserts: multi-row INSERTs of prepared messages, 1,000 per transaction (the limit,
 *     and the baseline); (b) `ChatStore.appendMessages` with one message per call, i.e. one
 *     transaction per message; (c) `WriteBehind.append` as fast as one fiber can call it, timed until
 *     `flush` has written everything (sustained rate), with each append's latency; (d) `WriteBehind.append`
 *     paced at 10,000 appends/s for 2 s (due appends issued every millisecond), each append's latency.
 * Appends go round-robin to 10 sessions. Latency is the time one `append` call takes (µs), measured
 * in the calling fiber; on SQLite the flushes run on the same thread.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { ChatModel, ChatPlan, ChatStore, WriteBehind } from "@strata/chat"
import { Database, Migrator } from "@strata/sql"
import { Context, Duration, Effect, Exit, Layer, Logger, LogLevel, Scope } from "effect"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { BenchmarkModule, BenchmarkRow } from "./harness.js"
import { collectGarbage, median, repetitions } from "./harness.js"

const SESSIONS = 10
const RAW_BATCH = 1000
const PACED_RATE = 10_000
const PACED_SECONDS = 2

interface Sizes {
  /** Messages per run of the raw and WriteBehind cases. */
  readonly bulk: number
  /** Messages per run of the one-transaction-per-message case (slow on PostgreSQL). */
  readonly direct: number
}

const sizesFor = (engine: "sqlite" | "pg"): Sizes => ({
  bulk: Number(process.env["BENCH_CHAT_MESSAGES"] ?? 50_000),
  direct: engine === "sqlite" ? 20_000 : 3_000
})

const percentile = (sorted: Float64Array, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

type Services = ChatStore.ChatStore | SqlClient.SqlClient

const sessionIds = Array.from({ length: SESSIONS }, (_, i) => `bench-session-${i}`)

const content = (i: number) => `message ${i}: the quick brown fox jumps over the lazy dog`

/** (a) The limit: prepared rows, multi-row INSERTs, one transaction per 1,000. Returns rows/s. */
const rawBatched = (count: number, nextSeq: Map<string, number>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const now = Date.now()
    const rows = Array.from({ length: count }, (_, i) => {
      const session = sessionIds[i % SESSIONS]!
      const seq = nextSeq.get(session)!
      nextSeq.set(session, seq + 1)
      return {
        id: ChatModel.makeMessageId(now),
        session_id: session,
        seq,
        role: "user",
        content: content(i),
        name: null,
        tool_call_id: null,
        tool_calls: null,
        token_count: 12,
        metadata: null,
        created_at_ms: now
      }
    })
    collectGarbage()
    const start = performance.now()
    for (let i = 0; i < rows.length; i += RAW_BATCH) {
      const batch = rows.slice(i, i + RAW_BATCH)
      yield* sql.withTransaction(Effect.gen(function*() {
        for (let j = 0; j < batch.length; j += 500) yield* sql`INSERT INTO messages ${sql.insert(batch.slice(j, j + 500))}`
      }))
    }
    return count / ((performance.now() - start) / 1000)
  })

/** (b) One `appendMessages` call (one transaction) per message. Returns appends/s and latencies. */
const directAppends = (count: number) =>
  Effect.gen(function*() {
    const store = yield* ChatStore.ChatStore
    const latencies = new Float64Array(count)
    collectGarbage()
    const start = performance.now()
    for (let i = 0; i < count; i++) {
      const before = performance.now()
      yield* store.appendMessages(sessionIds[i % SESSIONS]!, [{ role: "user", content: content(i), tokenCount: 12 }])
      latencies[i] = performance.now() - before
    }
    return { rate: count / ((performance.now() - start) / 1000), latencies: latencies.sort() }
  })

const withWriteBehind = <A, E>(
  context: Context.Context<Services>,
  use: (wb: WriteBehind.WriteBehind) => Effect.Effect<A, E, Services>
) =>
  Effect.scoped(Effect.gen(function*() {
    const scope = yield* Effect.scope
    const built = yield* Layer.buildWithScope(WriteBehind.layer({ interval: 100, maxBatch: 1000, capacity: 20_000 }), scope)
    return yield* use(Context.get(built, WriteBehind.WriteBehind))
  })).pipe(Effect.provide(context))

/** (c) Appends as fast as one fiber can, until all are written. */
const sustained = (context: Context.Context<Services>, count: number) =>
  withWriteBehind(context, (wb) =>
    Effect.gen(function*() {
      // Warm up: each session's next seq is read once from the database.
      for (const session of sessionIds) yield* wb.append(session, { role: "system", content: "warm-up" })
      yield* wb.flush
      const latencies = new Float64Array(count)
      collectGarbage()
      const start = performance.now()
      for (let i = 0; i < count; i++) {
        const before = performance.now()
        yield* wb.append(sessionIds[i % SESSIONS]!, { role: "user", content: content(i), tokenCount: 12 })
        latencies[i] = performance.now() - before
      }
      yield* wb.flush
      const rate = count / ((performance.now() - start) / 1000)
      return { rate, latencies: latencies.sort() }
    }))

/** (d) Appends paced at PACED_RATE per second: every millisecond, the appends due by then. */
const paced = (context: Context.Context<Services>) =>
  withWriteBehind(context, (wb) =>
    Effect.gen(function*() {
      for (const session of sessionIds) yield* wb.append(session, { role: "system", content: "warm-up" })
      yield* wb.flush
      const total = PACED_RATE * PACED_SECONDS
      const latencies = new Float64Array(total)
      collectGarbage()
      const start = performance.now()
      let issued = 0
      while (issued < total) {
        const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * PACED_RATE))
        for (; issued < due; issued++) {
          const before = performance.now()
          yield* wb.append(sessionIds[issued % SESSIONS]!, { role: "user", content: content(issued), tokenCount: 12 })
          latencies[issued] = performance.now() - before
        }
        yield* Effect.sleep(Duration.millis(1))
      }
      const achieved = total / ((performance.now() - start) / 1000)
      yield* wb.flush
      return { achieved, latencies: latencies.sort() }
    }))

const openDatabase = async (url: string, scope: Scope.CloseableScope) => {
  const context = await Effect.runPromise(
    Layer.buildWithScope(ChatStore.layer.pipe(Layer.provideMerge(Database.layer({ url, maxConnections: 4 }))), scope)
  )
  await Effect.runPromise(
    Effect.gen(function*() {
      yield* Effect.flatMap(Migrator.make(ChatPlan.plan), (migrator) => migrator.run())
      const store = yield* ChatStore.ChatStore
      for (const id of sessionIds) yield* store.createSession({ id })
      // The output is a Markdown table to paste: keep the Migrator's info lines out of it.
    }).pipe(Effect.provide(context), Logger.withMinimumLogLevel(LogLevel.Warning))
  )
  return context
}

/** The next free seq of each session (the raw case writes rows with explicit seqs). */
const nextSeqs = (context: Context.Context<Services>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ session_id: string; last: number | string }>`SELECT session_id, max(seq) AS last FROM messages GROUP BY session_id`
      const next = new Map(sessionIds.map((id) => [id, 1]))
      for (const row of rows) next.set(row.session_id, Number(row.last) + 1)
      return next
    }).pipe(Effect.provide(context))
  )

const runEngine = async (engine: "sqlite" | "pg", url: string): Promise<ReadonlyArray<BenchmarkRow>> => {
  const scope = Effect.runSync(Scope.make())
  const sizes = sizesFor(engine)
  try {
    const context = await openDatabase(url, scope)
    const raw: Array<number> = []
    const direct: Array<number> = []
    const directP50: Array<number> = []
    const directP99: Array<number> = []
    const behind: Array<number> = []
    const behindP50: Array<number> = []
    const behindP99: Array<number> = []
    const pacedRate: Array<number> = []
    const pacedP50: Array<number> = []
    const pacedP99: Array<number> = []
    const pacedMax: Array<number> = []
    for (let repetition = 0; repetition < repetitions(); repetition++) {
      raw.push(await Effect.runPromise(rawBatched(sizes.bulk, await nextSeqs(context)).pipe(Effect.provide(context))))
      const d = await Effect.runPromise(directAppends(sizes.direct).pipe(Effect.provide(context)))
      direct.push(d.rate)
      directP50.push(percentile(d.latencies, 0.5) * 1000)
      directP99.push(percentile(d.latencies, 0.99) * 1000)
      const s = await Effect.runPromise(sustained(context, sizes.bulk))
      behind.push(s.rate)
      behindP50.push(percentile(s.latencies, 0.5) * 1000)
      behindP99.push(percentile(s.latencies, 0.99) * 1000)
      const p = await Effect.runPromise(paced(context))
      pacedRate.push(p.achieved)
      pacedP50.push(percentile(p.latencies, 0.5) * 1000)
      pacedP99.push(percentile(p.latencies, 0.99) * 1000)
      pacedMax.push(p.latencies[p.latencies.length - 1]! * 1000)
    }
    const baseline = median(raw)
    const label = engine === "sqlite" ? "SQLite" : "PostgreSQL"
    return [
      { case: `${label}: raw batched INSERTs, ${RAW_BATCH}/transaction (baseline)`, median: baseline, unit: "rows/s", ratio: 1 },
      { case: `${label}: ChatStore.appendMessages, 1 message/transaction`, median: median(direct), unit: "appends/s", ratio: median(direct) / baseline },
      { case: `${label}: … its append latency p50`, median: median(directP50), unit: "µs" },
      { case: `${label}: … its append latency p99`, median: median(directP99), unit: "µs" },
      { case: `${label}: WriteBehind.append, sustained until flushed`, median: median(behind), unit: "appends/s", ratio: median(behind) / baseline },
      { case: `${label}: … its append latency p50`, median: median(behindP50), unit: "µs" },
      { case: `${label}: … its append latency p99`, median: median(behindP99), unit: "µs" },
      { case: `${label}: WriteBehind.append paced at ${PACED_RATE.toLocaleString("en-US")}/s, achieved`, median: median(pacedRate), unit: "appends/s" },
      { case: `${label}: … its append latency p50`, median: median(pacedP50), unit: "µs" },
      { case: `${label}: … its append latency p99`, median: median(pacedP99), unit: "µs" },
      { case: `${label}: … its append latency max`, median: median(pacedMax), unit: "µs" }
    ]
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const pgUrl = (): string | undefined => {
  const url = process.env["STRATA_BENCH_PG_URL"] ?? process.env["STRATA_TEST_PG_URL"]
  return url != null && url.trim() !== "" ? url : undefined
}

/** A fresh schema for the run, dropped afterwards. */
const withPgSchema = async <A>(url: string, use: (schemaUrl: string) => Promise<A>): Promise<A> => {
  const schema = `strata_bench_${randomUUID().replace(/-/g, "").slice(0, 12)}`
  const admin = (statement: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
        Effect.provide(Database.layer({ url, maxConnections: 1 }))
      )
    )
  await admin(`CREATE SCHEMA "${schema}"`)
  try {
    const parsed = new URL(url)
    const existing = parsed.searchParams.get("options")
    parsed.searchParams.set("options", `${existing != null && existing !== "" ? `${existing} ` : ""}-c search_path=${schema}`)
    return await use(parsed.toString())
  } finally {
    await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  }
}

export const benchmark: BenchmarkModule = {
  name: "chatstore",
  description:
    "Appending chat messages: raw batched INSERTs (the limit) vs ChatStore one transaction per message vs WriteBehind (sustained, and paced at 10,000/s), SQLite and PostgreSQL",
  run: async () => {
    const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-bench-chat-"))
    try {
      const rows = [...await runEngine("sqlite", Path.join(directory, "chat.db"))]
      const url = pgUrl()
      if (url === undefined) {
        rows.push({ case: "PostgreSQL: skipped (set STRATA_BENCH_PG_URL or STRATA_TEST_PG_URL)", median: 0, unit: "" })
      } else {
        rows.push(...await withPgSchema(url, (schemaUrl) => runEngine("pg", schemaUrl)))
      }
      return rows
    } finally {
      Fs.rmSync(directory, { recursive: true, force: true })
    }
  }
}
