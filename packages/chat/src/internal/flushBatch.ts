/**
 * One `WriteBehind` flush attempt: a batch of buffered messages written in one transaction, a row
 * the database refuses isolated by bisection under savepoints, and the sessions' last activity
 * moved forward. Runs on the `SqlClient` in context (the service provides `Database.strataClient`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Database, SqlErrors } from "@strata/sql"
import { Array as Arr, Effect } from "effect"
import type * as ChatModel from "../ChatModel.js"
import { insertMessages, toNumber } from "./chatRows.js"

/** A message the database refused, as the flush found it. */
export interface Refused {
  readonly message: ChatModel.Message
  readonly reason: string
}

/** What a flush attempt wrote and what the database refused. */
export interface FlushOutcome {
  readonly written: number
  readonly refused: ReadonlyArray<Refused>
}

/** Inserts `messages` under a savepoint; a refused row is found by bisection and reported. */
const insertIsolating = (
  messages: ReadonlyArray<ChatModel.Message>,
  refused: Array<Refused>
): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(insertMessages(messages)).pipe(
      Effect.as(messages.length),
      Effect.catchAll((error) => {
        if (!SqlErrors.isRowRejected(error)) return Effect.fail(error)
        if (messages.length === 1) return classifyRefused(messages[0]!, error, refused)
        const middle = Math.floor(messages.length / 2)
        return Effect.zipWith(
          insertIsolating(messages.slice(0, middle), refused),
          insertIsolating(messages.slice(middle), refused),
          (a, b) => a + b
        )
      })
    ))

const classifyRefused = (
  message: ChatModel.Message,
  error: SqlError,
  refused: Array<Refused>
): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const stored = yield* sql<{ session_id: string; seq: number | string }>`SELECT session_id, seq FROM messages WHERE id = ${message.id}`
    const row = stored[0]
    if (row !== undefined && row.session_id === message.sessionId && toNumber(row.seq) === message.seq) {
      // Written by an earlier attempt whose commit was not acknowledged: not a duplicate, not poison.
      return 1
    }
    refused.push({ message, reason: SqlErrors.failureText(error) })
    return 0
  })

/** Moves each session's last activity forward to its newest message in `messages` (never back). */
const touchSessions = (messages: ReadonlyArray<ChatModel.Message>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const pg = (yield* Database.dialect) === "pg"
    const newest = new Map<string, number>()
    for (const message of messages) {
      const current = newest.get(message.sessionId)
      if (current === undefined || message.createdAtMs > current) newest.set(message.sessionId, message.createdAtMs)
    }
    yield* Effect.forEach(
      Arr.chunksOf([...newest], 500),
      (chunk) => {
        const params: Array<unknown> = []
        const rows = chunk.map(([sessionId, atMs]) => {
          params.push(sessionId, atMs)
          return pg ? `($${params.length - 1}::text, $${params.length}::bigint)` : "(?, ?)"
        })
        return sql.unsafe(
          `WITH v(id, at_ms) AS (VALUES ${rows.join(", ")})
           UPDATE sessions SET last_activity_ms = v.at_ms FROM v
           WHERE sessions.id = v.id AND sessions.last_activity_ms < v.at_ms`,
          params
        )
      },
      { discard: true }
    )
  })

/** One flush attempt of `batch` in one transaction: the messages the database takes are written, the rest reported. */
export const writeBatch = (batch: ReadonlyArray<ChatModel.Message>): Effect.Effect<FlushOutcome, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const refused: Array<Refused> = []
      const written = yield* insertIsolating(batch, refused)
      const refusedIds = new Set(refused.map((r) => r.message.id))
      yield* touchSessions(refusedIds.size === 0 ? batch : batch.filter((m) => !refusedIds.has(m.id)))
      return { written, refused }
    })).pipe(
      // A COMMIT that fails surfaces as a defect in @effect/sql: it is a failed attempt like any other.
      Effect.catchAllDefect((defect) => Effect.fail(new SqlError({ cause: defect, message: "flush failed" })))
    ))
