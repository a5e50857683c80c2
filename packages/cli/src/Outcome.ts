/**
 * How a command ends: exit codes, and one clear line on stderr for each failure
 * (`strata: <what went wrong>`; with `--json` one JSON object `{"error": tag, "message": …}`),
 * with the full cause only at `--log-level debug` or lower.
 *
 * Exit codes: 0 ok; 1 the work failed (a migration, a check, an unreachable database);
 * 2 the command line cannot be acted on (parse errors — usage printed — and bad values such as an
 * invalid --db URL, an unreadable or malformed plan, an unknown job); 130 interrupted (Ctrl-C).
 *
 * @since 0.1.0
 */
import { Cause, Console, Data, Effect, FiberRef, LogLevel, Option } from "effect"
import { SqlError } from "@effect/sql/SqlError"
import { SqlErrors } from "@strata/sql"
import * as Output from "./Output.js"
import * as Text from "./Text.js"

/**
 * Exit code: the command did what was asked.
 *
 * @since 0.1.0
 */
export const ok = 0

/**
 * Exit code: the work failed (a migration, a check, an unreachable database).
 *
 * @since 0.1.0
 */
export const failed = 1

/**
 * Exit code: the command line cannot be acted on (usage printed for parse errors).
 *
 * @since 0.1.0
 */
export const usage = 2

/**
 * 128 + SIGINT, as shells report a process stopped by Ctrl-C.
 *
 * @since 0.1.0
 */
export const interrupted = 130

/**
 * The command has already said what went wrong; exit with `code`.
 *
 * @since 0.1.0
 */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}

/**
 * A value the command line gave that the command cannot use (checked by the command, not the parser).
 *
 * @since 0.1.0
 */
export class BadArgument extends Data.TaggedError("BadArgument")<{ readonly message: string }> {}

// Failures caused by what the user typed: fix the command line and run again.
const badInputTags: ReadonlySet<string> = new Set([
  "BadArgument",
  "InvalidBackfillOptions",
  "InvalidDatabaseUrl",
  "InvalidFleetOptions",
  "InvalidLegacyImportOptions",
  "InvalidLogLevel",
  "InvalidPlan",
  "InvalidTableName",
  "InvalidTarget",
  "InvalidVerifyOptions",
  "JobNotRecorded",
  "MigrationNotInPlan",
  "NoTargets",
  "PlanRequired",
  "PlanUnreadable",
  "TargetsUnreadable",
  "UnknownPlan",
  "UnknownJob"
])

const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && typeof (error as { _tag?: unknown })._tag === "string"
    ? (error as { _tag: string })._tag
    : undefined

/**
 * The exit code for a typed failure: 2 for bad input, 1 otherwise.
 *
 * @since 0.1.0
 */
export const codeFor = (error: unknown): number => (badInputTags.has(tagOf(error) ?? "") ? usage : failed)

// A SqlError's own message is the wrapper's ("Failed to execute statement"); the driver's words
// (ECONNRESET, "database or disk is full") are in its cause.
const messageOf = (error: unknown): string => {
  if (error instanceof SqlError) return SqlErrors.failureText(error)
  if (error instanceof Error && error.message !== "") return error.message
  if (typeof error === "object" && error !== null) {
    const message = (error as { message?: unknown }).message
    if (typeof message === "string" && message !== "") return message
    const tag = tagOf(error)
    if (tag !== undefined) return tag
  }
  return String(error)
}

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, " ").trim()

/**
 * Whether the current minimum log level shows debug lines (`--log-level debug`): then failures
 * print their full cause with stack traces.
 *
 * @since 0.1.0
 */
export const isVerbose: Effect.Effect<boolean> = Effect.map(
  FiberRef.get(FiberRef.currentMinimumLogLevel),
  (level) => LogLevel.lessThanEqual(level, LogLevel.Debug)
)

/**
 * How failures are written: one line for people (`strata: …`), or with `--json` one JSON object
 * (`{"error": tag, "message": …, …the error's fields}`); `verbose` adds the full cause.
 *
 * @since 0.2.0
 * @category models
 */
export interface Mode {
  readonly json: boolean
  readonly verbose: boolean
}

/**
 * A failure as written: the tag scripts branch on, the one line people read, the error's own fields.
 *
 * @since 0.2.0
 * @category models
 */
export interface Failure {
  readonly error: string
  readonly message: string
  readonly fields: Readonly<Record<string, unknown>>
}

// An error's data fields, for the JSON object: what a script may need (the job, the option, the file).
// `cause` is a driver object (its text is in the message already), and functions are not data.
const fieldsOf = (error: unknown): Record<string, unknown> => {
  if (typeof error !== "object" || error === null) return {}
  const fields: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(error)) {
    if (name === "_tag" || name === "cause" || name === "message" || name === "stack" || name === "name") continue
    if (typeof value === "function" || value instanceof Error) continue
    fields[name] = value
  }
  return fields
}

/**
 * What to say about a failure (a typed error, a defect, or an interruption).
 *
 * @since 0.2.0
 */
export const describeFailure = (cause: Cause.Cause<unknown>): Failure =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => ({ error: tagOf(error) ?? "Error", message: oneLine(messageOf(error)), fields: fieldsOf(error) }),
    onNone: () =>
      Cause.isInterruptedOnly(cause)
        ? { error: "Interrupted", message: "interrupted", fields: {} }
        : {
          error: "UnexpectedError",
          message: `unexpected error: ${oneLine(messageOf(Option.getOrUndefined(Cause.dieOption(cause))))}`,
          fields: {}
        }
  })

/**
 * Writes a failure to stderr in `mode`: `strata: <message>` (control characters escaped), or one JSON object.
 *
 * @since 0.2.0
 */
export const write = (failure: Failure, mode: Mode, cause?: Cause.Cause<unknown>): Effect.Effect<void> => {
  const detail = mode.verbose && cause !== undefined ? Cause.pretty(cause, { renderErrorCause: true }) : undefined
  if (mode.json) {
    return Console.error(
      Output.stringify({ error: failure.error, message: failure.message, ...failure.fields, ...(detail === undefined ? {} : { detail }) })
    )
  }
  return Effect.zipRight(
    Console.error(`strata: ${Text.printable(failure.message)}`),
    detail === undefined ? Effect.void : Console.error(detail)
  )
}

/**
 * Prints the failure (one line or one JSON object, plus the full cause when verbose) and returns the exit code.
 *
 * @since 0.1.0
 */
export const report = (cause: Cause.Cause<unknown>, mode: Mode): Effect.Effect<number> =>
  Effect.gen(function*() {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure) && failure.value instanceof ExitWith) return failure.value.code
    const code = Option.match(failure, {
      onNone: () => (Cause.isInterruptedOnly(cause) ? interrupted : failed),
      onSome: codeFor
    })
    yield* write(describeFailure(cause), mode, cause)
    return code
  })

/**
 * Runs a command body: failures are reported here (where `--log-level` is known) and become
 * `ExitWith`, so the entry point only maps them to the process exit code.
 *
 * @since 0.1.0
 */
export const guard = <A, E, R>(body: Effect.Effect<A, E, R>, json: boolean): Effect.Effect<A, ExitWith, R> =>
  Effect.catchAllCause(body, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.failCause(cause as Cause.Cause<never>)
      : Effect.flatMap(isVerbose, (verbose) =>
        Effect.flatMap(report(cause, { json, verbose }), (code) => new ExitWith({ code }))))

/**
 * What an interrupted command prints (`strata: interrupted; …`, or `{"error": "Interrupted", …}`).
 *
 * @since 0.2.0
 */
export const writeInterrupted = (message: string, json: boolean): Effect.Effect<void> =>
  write({ error: "Interrupted", message, fields: {} }, { json, verbose: false })
