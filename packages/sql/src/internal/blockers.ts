/**
 * Who a PostgreSQL statement waits for. A statement that gives up at `lock_timeout` no longer waits,
 * so the blockers must be seen while it still does: a watcher on another pooled connection asks
 * `pg_blocking_pids` for the waiting backend (from half the lock timeout on) and keeps the last
 * answer, with each blocker's query from `pg_stat_activity`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Fiber, Ref, Schedule, Schema } from "effect"

/**
 * A session holding (or queued ahead for) a lock a migration statement waited for, as
 * `pg_stat_activity` shows it: its last query, its state (`idle in transaction` for a transaction
 * left open), and when its transaction started.
 *
 * @since 0.2.0
 * @category models
 */
export const Blocker = Schema.Struct({
  pid: Schema.Number,
  query: Schema.String,
  state: Schema.NullOr(Schema.String),
  applicationName: Schema.String,
  transactionStartMs: Schema.NullOr(Schema.Number)
})

/**
 * A session a migration statement waited for.
 *
 * @since 0.2.0
 * @category models
 */
export type Blocker = typeof Blocker.Type

/**
 * The sessions a statement of strata's phases (index builds, constraint validations) waited for, as
 * their errors say it: each pid, its state and its query (on one line, at most 200 characters).
 */
export const describeBlockers = (blockers: ReadonlyArray<Blocker>): string =>
  blockers.length === 0
    ? "sessions that were not seen"
    : blockers.map((b) => `pid ${b.pid} (${b.state ?? "unknown state"}): ${b.query.replace(/\s+/g, " ").slice(0, 200)}`).join("; ")

/** The backend pid of the connection the current transaction runs on. */
export const backendPid: Effect.Effect<number, SqlError, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql.unsafe<{ pid: unknown }>("SELECT pg_backend_pid() AS pid"), (rows) => Number(rows[0]?.pid))
)

const blockersOf = (pid: number): Effect.Effect<ReadonlyArray<Blocker>, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql.unsafe<Record<string, unknown>>(
        `SELECT a.pid, a.query, a.state, a.application_name,
                (extract(epoch FROM a.xact_start) * 1000)::bigint AS xact_start_ms
         FROM unnest(pg_blocking_pids($1)) AS b(pid) JOIN pg_stat_activity a ON a.pid = b.pid
         ORDER BY a.xact_start NULLS LAST, a.pid`,
        [pid]
      ),
      (rows) =>
        rows.map((row) => ({
          pid: Number(row["pid"]),
          query: String(row["query"] ?? ""),
          state: row["state"] == null ? null : String(row["state"]),
          applicationName: String(row["application_name"] ?? ""),
          transactionStartMs: row["xact_start_ms"] == null ? null : Number(row["xact_start_ms"])
        }))
    ))

/**
 * Runs `effect` (a statement of the transaction on backend `pid`) while a watcher outside the
 * transaction records who blocks it into `seen`. The watcher's own failures are ignored: it only
 * explains a lock timeout, it never causes one.
 */
export const watched = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  pid: number,
  lockTimeout: Duration.Duration,
  seen: Ref.Ref<ReadonlyArray<Blocker>>
): Effect.Effect<A, E, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const timeoutMs = Duration.toMillis(lockTimeout)
    const look = blockersOf(pid).pipe(
      Effect.flatMap((blockers) => (blockers.length > 0 ? Ref.set(seen, blockers) : Effect.void)),
      Effect.ignore
    )
    const watcher = yield* Effect.sleep(Duration.millis(Math.max(10, timeoutMs / 2))).pipe(
      Effect.zipRight(Effect.repeat(look, Schedule.spaced(Duration.millis(Math.max(20, timeoutMs / 4))))),
      // On a pooled connection of its own: not the transaction's.
      Effect.mapInputContext((context: Context.Context<SqlClient.SqlClient>) =>
        Context.omit(SqlClient.TransactionConnection)(context) as Context.Context<SqlClient.SqlClient>
      ),
      Effect.forkDaemon
    )
    return yield* effect.pipe(Effect.ensuring(Fiber.interrupt(watcher)))
  })
