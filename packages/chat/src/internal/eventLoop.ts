/**
 * Turns of Node's event loop for fibers that only run SQLite statements.
 *
 * better-sqlite3 answers synchronously, and @effect/sql's SQLite client hands out its one
 * connection through a lock that, when free, resumes the caller at once. Each such resumption
 * restarts the fiber's run loop, and with it the count of operations after which Effect lets
 * other fibers run (2,048). So a fiber that loops over SQLite statements, e.g. an app reading
 * the newest messages after every append, never yields: no other fiber, timer, I/O callback or
 * signal handler runs until it stops (measured: a `SELECT 1` loop let another fiber run 0 times
 * in a second, and a `WriteBehind` flusher waiting for its interval was never woken).
 * PostgreSQL statements are real I/O and yield on their own.
 */
import { Effect, type Scope } from "effect"

/** A real macrotask boundary (`setImmediate`): timers, I/O and signal handlers run before it returns. */
export const nextTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** The longest a service's SQLite calls may keep the event loop from turning. */
export const turnSliceMs = 10

/** Gives the event loop a turn when it has gone `turnSliceMs` without one. */
export interface TurnGate {
  /** Whether the event loop has gone a slice without turning. */
  readonly due: () => boolean
  /** A turn of the event loop; the gate counts from it. */
  readonly turn: Effect.Effect<void>
  /** `turn` when one is due, else nothing. */
  readonly check: Effect.Effect<void>
}

/** For engines whose statements yield by themselves (PostgreSQL). */
export const noTurns: TurnGate = { due: () => false, turn: Effect.void, check: Effect.void }

/**
 * A gate whose heartbeat (a timer, every slice) notes each turn the event loop takes on its own,
 * so a caller in an app that turns the loop anyway never waits for one; only a caller that has
 * kept the thread for a whole slice takes a turn. The heartbeat stops with the scope.
 *
 * It measures the thread's real time (`performance.now`), not the `Clock`: what it bounds is how
 * long the thread is held, which a test clock standing still must not hide.
 */
export const makeTurnGate: Effect.Effect<TurnGate, never, Scope.Scope> = Effect.gen(function*() {
  let last = performance.now()
  yield* Effect.acquireRelease(
    Effect.sync(() => setInterval(() => (last = performance.now()), turnSliceMs).unref()),
    (heartbeat) => Effect.sync(() => clearInterval(heartbeat))
  )
  const due = () => performance.now() - last >= turnSliceMs
  const turn = Effect.zipRight(nextTurn, Effect.sync(() => (last = performance.now())))
  return { due, turn, check: Effect.suspend(() => (due() ? turn : Effect.void)) }
})
