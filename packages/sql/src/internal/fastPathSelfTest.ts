/**
 * The SQL fast path's self-test: before a backfill converts timestamp text inside an `UPDATE`,
 * the connection's engine runs `FastPath.selfTestCases` through the very expression it would use
 * and must give `Timestamp.parse`'s answer on every one. An engine that gets one wrong (SQLite
 * 3.40's `strftime` read `2023-02-29` as given; a future version may differ elsewhere) leaves the
 * fast path off for that job, with a warning naming the inputs, and every row converts in JavaScript.
 * @internal
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { type Compile, FastPath, type Identifier } from "@strata/core"
import { Effect } from "effect"
import { failureText, isConnectionLost } from "../SqlErrors.js"

/** How the fast path's SQL is built: a column and a dialect to an expression (the real one, or a test's). */
export type Expression = (source: Identifier.Identifier, dialect: Compile.Dialect) => string

const source = "strata_self_test" as Identifier.Identifier

/** The self-test's values through `expression` on this connection, in `selfTestCases` order. */
const selfTestValues = (dialect: Compile.Dialect, expression: Expression) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const texts = FastPath.selfTestCases.map((c) => c.text)
    const rows = dialect === "pg"
      ? yield* sql.unsafe<{ readonly ms: unknown }>(
        `SELECT ${expression(source, dialect)} AS ms FROM unnest($1::text[]) WITH ORDINALITY AS t(${source}, n) ORDER BY n`,
        [texts]
      )
      : yield* sql.unsafe<{ readonly ms: unknown }>(
        `SELECT ${expression(source, dialect)} AS ms FROM (SELECT value AS ${source}, key AS n FROM json_each(?)) ORDER BY n`,
        [JSON.stringify(texts)]
      )
    return rows.map((row) => row.ms)
  })

/**
 * Why the engine on this connection fails the self-test of `expression`, or undefined when it
 * passes. A statement that fails is a failed self-test too (the fast path must never sink a run),
 * but a lost connection is the database's failure, not the engine's answer: it fails the effect.
 */
export const selfTestFailureWith = (dialect: Compile.Dialect, expression: Expression) =>
  selfTestValues(dialect, expression).pipe(
    Effect.map(FastPath.selfTestFailure),
    Effect.catchAll((error) =>
      isConnectionLost(error) ? Effect.fail(error) : Effect.succeed(`the self-test statement failed: ${failureText(error)}`))
  )

/**
 * `fast` when the engine passes the self-test of `expression` (nothing is run when `fast` is
 * undefined); otherwise undefined, after a warning with the reason.
 */
export const confirmFastPathWith = (expression: Expression) =>
<A>(dialect: Compile.Dialect, fast: A | undefined): Effect.Effect<A | undefined, SqlError, SqlClient.SqlClient> =>
  fast === undefined ? Effect.succeed(undefined) : Effect.flatMap(selfTestFailureWith(dialect, expression), (reason) =>
    reason === undefined
      ? Effect.succeed(fast)
      : Effect.as(
        Effect.logWarning("SQL fast path off: the engine failed its self-test; every row converts in JavaScript").pipe(
          Effect.annotateLogs({ reason })
        ),
        undefined
      ))

/** `confirmFastPathWith` for the expression the runner really uses. */
export const confirmFastPath = confirmFastPathWith(FastPath.epochMillisExpression)
