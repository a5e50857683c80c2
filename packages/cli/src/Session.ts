/**
 * What every subcommand does around its work: logging set up for `--json` and `--log-level`,
 * failures reported as one line with the right exit code, the plan loaded, the database opened.
 *
 * @since 0.1.0
 */
import type { Plan } from "@strata/core"
import { Database, Logging } from "@strata/sql"
import { Effect, FiberRef, Layer } from "effect"
import * as Outcome from "./Outcome.js"
import * as PlanSource from "./PlanSource.js"
import type { Shared } from "./SharedOptions.js"
import * as Target from "./Target.js"
import * as Terminal from "./Terminal.js"
import type { SqlClient } from "@effect/sql/SqlClient"

/**
 * Logs go to stderr, as JSON lines with `--json`, at the level `--log-level` chose.
 *
 * @since 0.1.0
 */
export const logging = (json: boolean): Layer.Layer<never> =>
  Layer.unwrapEffect(
    Effect.map(FiberRef.get(FiberRef.currentMinimumLogLevel), (level) =>
      Logging.layer({ format: json ? "json" : "pretty", level }))
  )

/**
 * What Ctrl-C prints for work that checkpoints every batch (backfill, import-legacy). After
 * `--restart` the same command would start over again, so the hint says to leave it out.
 *
 * @since 0.1.0
 */
export const resumableInterrupted = (restart: boolean): string =>
  restart
    ? "interrupted; every finished batch is saved. Run the command again without --restart to resume where it stopped (with --restart it starts over)."
    : "interrupted; every finished batch is saved. Run the same command again to resume where it stopped."

/**
 * Runs a subcommand body with logging and failure reporting (see `Outcome.guard`). On Ctrl-C the
 * body is interrupted (each service stops at a safe point) and `interrupted` (read once the body
 * has stopped) is printed; the process exits 130.
 *
 * @since 0.1.0
 */
export const run = <A, E, R>(
  shared: Pick<Shared, "json">,
  body: Effect.Effect<A, E, R>,
  interrupted: string | Effect.Effect<string> = "interrupted"
): Effect.Effect<A, Outcome.ExitWith, R> =>
  Outcome.guard(body, shared.json).pipe(
    Effect.onInterrupt(() =>
      Effect.flatMap(typeof interrupted === "string" ? Effect.succeed(interrupted) : interrupted, (message) =>
        Outcome.writeInterrupted(message, shared.json))
    ),
    Effect.provide(logging(shared.json)),
    Terminal.asOwnOutput
  )

/**
 * The plan and database a command works on.
 *
 * @since 0.1.0
 */
export interface Context {
  readonly plan: Plan.Plan
  readonly target: Target.Target
}

/**
 * Loads `--plan`, checks `--db` and runs `body` with a `SqlClient` for it (closed afterwards).
 * With `mustExist`, a missing SQLite file is an error rather than a new empty database.
 *
 * @since 0.1.0
 */
export const withDatabase = <A, E, R>(
  shared: Shared,
  options: { readonly mustExist: boolean },
  body: (context: Context) => Effect.Effect<A, E, R>
): Effect.Effect<
  A,
  E | PlanSource.PlanError | Target.DatabaseMissing | Database.DatabaseError,
  Exclude<R, SqlClient>
> =>
  Effect.gen(function*() {
    const plan = yield* PlanSource.load(shared.plan)
    return yield* withTarget(shared.db, options, (target) => body({ plan, target }))
  })

/**
 * Checks `--db` and runs `body` with a `SqlClient` for it (closed afterwards), for commands that need no plan.
 *
 * @since 0.2.0
 */
export const withTarget = <A, E, R>(
  db: string,
  options: { readonly mustExist: boolean },
  body: (target: Target.Target) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Target.DatabaseMissing | Database.DatabaseError, Exclude<R, SqlClient>> =>
  Effect.gen(function*() {
    const target = yield* Target.resolve(db, options)
    return yield* body(target).pipe(Effect.provide(Database.layer({ url: target.url })))
  })
