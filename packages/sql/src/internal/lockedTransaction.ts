/**
 * A transaction that first takes an exclusive, cross-process lock, so concurrent runners serialise:
 * SQLite `BEGIN IMMEDIATE` (the database's single write lock, ended with the transaction),
 * PostgreSQL a session-level advisory lock on the transaction's connection, taken before `BEGIN`
 * and released after it ends (a crashed runner's session, and with it the lock, ends with its
 * connection).
 *
 * @effect/sql's `withTransaction` issues a plain `BEGIN` (on SQLite a read lock that is upgraded
 * at the first write, where two runners can deadlock into SQLITE_BUSY) and turns a failed COMMIT
 * into a defect, so this module drives BEGIN/COMMIT/ROLLBACK itself on a reserved connection and
 * provides it as `SqlClient.TransactionConnection`: every `sql` query of the body runs on it, and a
 * nested `sql.withTransaction` becomes a savepoint. The client is the `SqlClient` in context (the
 * caller provides strata's transform-free one).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Clock, Data, Duration, Effect, ExecutionStrategy, Exit, Schedule, Scope } from "effect"
import { errorCode, failureText } from "../SqlErrors.js"
import { executeOn as execute } from "./unprepared.js"

/** The lock was not obtained within the timeout (another runner held it all along). */
export class LockTimedOut extends Data.TaggedError("LockTimedOut")<{ readonly waitedMs: number }> {}

/** BEGIN or COMMIT itself failed (not the body). */
export class TransactionControlFailed extends Data.TaggedError("TransactionControlFailed")<{
  readonly operation: "begin" | "commit"
  readonly cause: SqlError
}> {}

export interface LockedTransactionOptions {
  readonly dialect: "sqlite" | "pg"
  /** PostgreSQL advisory lock key, a signed 64-bit integer as decimal text. */
  readonly lockKey: string
  /** How long to wait for the lock before `LockTimedOut`. */
  readonly lockTimeout: Duration.Duration
  /** PostgreSQL: the `lock_timeout` of the body's statements (for the transaction only). Default: the session's. */
  readonly statementLockTimeout?: Duration.Duration | undefined
}

/**
 * SQLite waits for a lock inside `busy_timeout`, synchronously, blocking Node's event loop. While
 * taking the lock we lower it to this, and wait between attempts with an Effect schedule instead.
 */
const lockAttemptBusyTimeoutMs = 20

const lockRetrySchedule = (timeout: Duration.Duration) =>
  Schedule.exponential("5 millis", 2).pipe(
    // union keeps the shorter delay: exponential growth capped at 200 ms
    Schedule.union(Schedule.spaced("200 millis")),
    Schedule.jittered,
    Schedule.upTo(timeout)
  )

const isSqliteBusy = (error: unknown): boolean =>
  error instanceof TransactionControlFailed && (errorCode(error.cause)?.startsWith("SQLITE_BUSY") ?? false)

/** PostgreSQL `lock_not_available`, raised when `lock_timeout` expires. */
export const isPgLockTimeout = (error: SqlError): boolean => errorCode(error) === "55P03"

const beginSqlite = (connection: Connection): Effect.Effect<void, SqlError> =>
  Effect.gen(function*() {
    const rows = yield* execute(connection, "PRAGMA busy_timeout")
    const original = Number((rows[0] as { readonly timeout?: unknown } | undefined)?.timeout ?? 0)
    yield* execute(connection, `PRAGMA busy_timeout = ${lockAttemptBusyTimeoutMs}`)
    yield* execute(connection, "BEGIN IMMEDIATE").pipe(
      Effect.ensuring(Effect.ignore(execute(connection, `PRAGMA busy_timeout = ${Math.max(0, Math.trunc(original))}`)))
    )
  })

/** A duration as a `lock_timeout` value (`0`, no limit, for an infinite one). */
export const lockTimeoutSetting = (timeout: Duration.Duration): string =>
  Duration.isFinite(timeout) ? `${Math.max(1, Math.ceil(Duration.toMillis(timeout)))}ms` : "0"

/**
 * Takes the plan's session-level advisory lock with `pg_try_advisory_lock`, polled on the jittered
 * schedule until `lockTimeout`, and registers its release in `scope`. Waiting client-side keeps
 * every statement of a waiting runner short: a runner blocked inside the server would hold a
 * snapshot, and the lock holder's `CREATE INDEX CONCURRENTLY` waits for every older snapshot.
 * Each attempt and the registration of its release are one uninterruptible step, so an interrupt
 * never leaves the lock behind.
 */
const lockPg = (
  connection: Connection,
  scope: Scope.Scope,
  options: LockedTransactionOptions
): Effect.Effect<void, SqlError | LockTimedOut> =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    const attempt = Effect.uninterruptible(
      Effect.flatMap(
        execute(connection, "SELECT pg_try_advisory_lock($1::bigint) AS locked", [options.lockKey]),
        (rows) =>
          (rows[0] as { readonly locked?: unknown } | undefined)?.locked === true
            ? Effect.as(
              Scope.addFinalizer(
                scope,
                execute(connection, "SELECT pg_advisory_unlock($1::bigint)", [options.lockKey]).pipe(
                  // A lost connection releases the lock with the session.
                  Effect.catchAllCause((cause) =>
                    Effect.logDebug("advisory unlock failed").pipe(
                      Effect.annotateLogs({ reason: failureText(Cause.squash(cause)) })
                    )
                  )
                )
              ),
              true
            )
            : Effect.succeed(false)
      )
    )
    const notYet = "not locked yet" as const
    yield* Effect.filterOrFail(attempt, (locked) => locked, () => notYet).pipe(
      Effect.retry({ schedule: lockRetrySchedule(options.lockTimeout), while: (error) => error === notYet }),
      Effect.catchIf(
        (error): error is typeof notYet => error === notYet,
        () => Effect.flatMap(Clock.currentTimeMillis, (now) => new LockTimedOut({ waitedMs: now - started }))
      )
    )
  })

/** BEGIN, and the body's `lock_timeout` for the transaction when one is given. */
const beginPg = (options: LockedTransactionOptions) => (connection: Connection): Effect.Effect<void, SqlError> =>
  Effect.gen(function*() {
    yield* execute(connection, "BEGIN")
    if (options.statementLockTimeout !== undefined) {
      yield* execute(connection, "SELECT set_config('lock_timeout', $1, true)", [
        lockTimeoutSetting(options.statementLockTimeout)
      ])
    }
  })

interface OpenTransaction {
  readonly connection: Connection
  readonly commit: Effect.Effect<void, TransactionControlFailed>
}

/**
 * Reserves a connection in a child of `outer` and begins a transaction on it. The child scope's
 * finalizer rolls back unless the transaction committed, then releases the connection, so an
 * interruption or failure at any point leaves neither a transaction nor a held connection behind.
 */
const open = (
  outer: Scope.Scope,
  begin: (connection: Connection) => Effect.Effect<void, SqlError>,
  lock?: (connection: Connection, scope: Scope.Scope) => Effect.Effect<void, SqlError | LockTimedOut>
): Effect.Effect<OpenTransaction, TransactionControlFailed | LockTimedOut, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const attempt = Effect.gen(function*() {
      const connection = yield* Scope.extend(sql.reserve, scope).pipe(
        Effect.mapError((cause) => new TransactionControlFailed({ operation: "begin", cause }))
      )
      // Taken before the ROLLBACK finalizer is registered, so it is released after the rollback.
      if (lock !== undefined) {
        yield* lock(connection, scope).pipe(
          Effect.catchIf(
            (error): error is SqlError => error instanceof SqlError,
            (cause) => new TransactionControlFailed({ operation: "begin", cause })
          )
        )
      }
      let state: "none" | "open" | "committed" = "none"
      yield* Scope.addFinalizer(
        scope,
        Effect.suspend(() =>
          state === "open"
            ? execute(connection, "ROLLBACK").pipe(
              // After a lost connection the ROLLBACK fails too; the transaction's own failure is what gets reported.
              Effect.catchAllCause((cause) =>
                Effect.logDebug("ROLLBACK failed").pipe(Effect.annotateLogs({ reason: failureText(Cause.squash(cause)) }))
              )
            )
            : Effect.void
        )
      )
      yield* Effect.uninterruptible(
        begin(connection).pipe(
          Effect.tap(() => {
            state = "open"
          }),
          Effect.mapError((cause) => new TransactionControlFailed({ operation: "begin", cause }))
        )
      )
      const commit = Effect.uninterruptible(
        execute(connection, "COMMIT").pipe(
          Effect.tap(() => {
            state = "committed"
          }),
          Effect.asVoid,
          Effect.mapError((cause) => new TransactionControlFailed({ operation: "commit", cause }))
        )
      )
      return { connection, commit }
    })
    return yield* attempt.pipe(Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause))))
  })

/**
 * Runs `body` in a transaction holding the lock. The body's failure (or interruption) rolls the
 * transaction back; a failed COMMIT is a `TransactionControlFailed` with operation "commit".
 */
export const withLockedTransaction = <A, E, R>(
  options: LockedTransactionOptions,
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | LockTimedOut | TransactionControlFailed, R | SqlClient.SqlClient> =>
  Effect.scoped(
    Effect.gen(function*() {
      const outer = yield* Effect.scope
      const transaction = options.dialect === "sqlite"
        ? yield* waitForSqliteLock(outer, options.lockTimeout)
        : yield* open(outer, beginPg(options), (connection, scope) => lockPg(connection, scope, options))
      const result = yield* body.pipe(
        Effect.provideService(SqlClient.TransactionConnection, [transaction.connection, 0] as const)
      )
      yield* transaction.commit
      return result
    })
  )

const waitForSqliteLock = (outer: Scope.Scope, timeout: Duration.Duration) =>
  Effect.gen(function*() {
    const started = yield* Clock.currentTimeMillis
    return yield* open(outer, beginSqlite).pipe(
      Effect.retry({ schedule: lockRetrySchedule(timeout), while: isSqliteBusy }),
      Effect.catchIf(isSqliteBusy, () =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => new LockTimedOut({ waitedMs: now - started })))
    )
  })

const FNV_OFFSET = 0xcbf29ce484222325n
const FNV_PRIME = 0x100000001b3n
const MASK_64 = 0xffffffffffffffffn

/**
 * A PostgreSQL advisory lock key for a name: FNV-1a 64 of its UTF-8 bytes as a signed 64-bit
 * integer (decimal text), identical in every process and on every machine.
 */
export const advisoryLockKey = (name: string): string => {
  let hash = FNV_OFFSET
  for (const byte of new TextEncoder().encode(name)) {
    hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & MASK_64
  }
  return BigInt.asIntN(64, hash).toString()
}

/**
 * PostgreSQL: runs `body` on a reserved connection holding the plan's session-level advisory lock
 * (the runner lock of `withLockedTransaction`), outside any transaction: for statements that
 * cannot run in one, such as `CREATE INDEX CONCURRENTLY`. The body's statements run under
 * `statementLockTimeout` when given (set for the session, reset before the connection returns to
 * the pool). The lock is released when the body ends, fails or is interrupted.
 */
export const withLockedSession = <A, E, R>(
  options: LockedTransactionOptions,
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | LockTimedOut | TransactionControlFailed, R | SqlClient.SqlClient> =>
  Effect.scoped(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const scope = yield* Effect.scope
      const asControl = (cause: SqlError) => new TransactionControlFailed({ operation: "begin", cause })
      const connection = yield* Effect.mapError(sql.reserve, asControl)
      yield* lockPg(connection, scope, options).pipe(
        Effect.catchIf((error): error is SqlError => error instanceof SqlError, (cause) => Effect.fail(asControl(cause)))
      )
      if (options.statementLockTimeout !== undefined) {
        yield* Effect.uninterruptible(
          execute(connection, "SELECT set_config('lock_timeout', $1, false)", [lockTimeoutSetting(options.statementLockTimeout)])
            .pipe(
              Effect.zipRight(Scope.addFinalizer(scope, Effect.ignore(execute(connection, "RESET lock_timeout")))),
              Effect.mapError(asControl)
            )
        )
      }
      return yield* body.pipe(Effect.provideService(SqlClient.TransactionConnection, [connection, 0] as const))
    })
  )
