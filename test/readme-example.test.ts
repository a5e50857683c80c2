/**
 * The README's "strata in an Effect app" example, run for real: if this file stops compiling or
 * passing, the README is wrong. Keep the two in step (the README quotes `appLayer` and `program`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Plans } from "@strata/core"
import { BackfillRunner, Database, LazyMigration, Migrator } from "@strata/sql"
import { Effect, Layer } from "effect"
import { tempSqliteFile } from "./support/databases.js"

// --- README example starts ---
const plan = Plans.agentos

// A repository read: rows come back with created_at_ms filled from created_at at once,
// whether or not the backfill has reached them; the write-back happens in the background.
const messagesOf = (sessionId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ message_id: string; created_at: string | null; created_at_ms: number | null }>`
      SELECT message_id, created_at, created_at_ms FROM chat_messages
      WHERE session_id = ${sessionId} ORDER BY message_id`
  ).pipe(LazyMigration.withFixUp("chat_messages"))

const program = Effect.gen(function*() {
  yield* Migrator.run() // each pending migration in its own transaction, once, under a lock
  yield* BackfillRunner.run({ jobs: ["chat_sessions.created_at_ms"], maxBatchTime: "50 millis" }) // resumable, batch by batch
  return yield* messagesOf("s-1") // served now, migrated lazily
})

const appLayer = (url: string) =>
  Layer.mergeAll(Migrator.layer(plan), BackfillRunner.layer(plan), LazyMigration.layer(plan)).pipe(
    Layer.provideMerge(Database.layer({ url }))
  )
// --- README example ends ---

describe("README example", () => {
  it.scoped("migrates, backfills one job and serves a lazily migrated read", () =>
    Effect.gen(function*() {
      const url = yield* tempSqliteFile()
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        for (const statement of Plans.agentosLegacyStatements("sqlite")) yield* sql.unsafe(statement)
        yield* sql`INSERT INTO chat_messages (message_id, session_id, role, content, created_at) VALUES
          ('m1', 's-1', 'user', 'hi', '2024-01-15 12:00:00'),
          ('m2', 's-1', 'assistant', 'hello', '2024-01-15T20:00:01+08:00')`
      }).pipe(Effect.provide(Database.layer({ url })))

      const read = yield* program.pipe(Effect.provide(appLayer(url)))
      expect(read.map((r) => r.created_at_ms)).toEqual([1705320000000, 1705320001000])

      // The layer's scope closed: the write-back drained before the database closed.
      const stored = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ created_at_ms: number | null }>`SELECT created_at_ms FROM chat_messages ORDER BY message_id`
      ).pipe(Effect.provide(Database.layer({ url })))
      expect(stored.map((r) => r.created_at_ms)).toEqual([1705320000000, 1705320001000])
    }))
})
