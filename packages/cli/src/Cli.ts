/**
 * The `strata` command: its subcommands, and how a run ends (exit code).
 *
 * @since 0.1.0
 */
import { type CliApp, Command, HelpDoc, ValidationError } from "@effect/cli"
import { Logging } from "@strata/sql"
import { Cause, Console, Effect, Either, Logger, type LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Outcome from "./Outcome.js"
import * as Usage from "./Usage.js"
import * as Backfill from "./commands/backfill.js"
import * as Demo from "./commands/demo.js"
import * as ImportLegacy from "./commands/importLegacy.js"
import * as Migrate from "./commands/migrate.js"
import * as Status from "./commands/status.js"
import * as Verify from "./commands/verify.js"

const packageVersion = (): string => {
  const text = Fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")
  return (JSON.parse(text) as { readonly version: string }).version
}

/**
 * Every subcommand, in the order `--help` lists them.
 *
 * @since 0.1.0
 */
export const subcommands = [Migrate.command, Status.command, Backfill.command, Verify.command, ImportLegacy.command, Demo.command] as const

const root = Command.make("strata").pipe(
  Command.withDescription(
    "Evolve a live SQLite or PostgreSQL database without downtime: migrations, resumable backfills, verification."
  ),
  Command.withSubcommands(subcommands)
)

/**
 * Runs the command line (`process.argv` shape) and returns the process exit code; failures have
 * been reported on stderr by then.
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Either.match(extractLogLevel(argv), {
    onLeft: (problem) =>
      Effect.as(Console.error([`strata: ${problem}`, ...Usage.linesFor(subcommands, argv.slice(2))].join("\n")), Outcome.usage),
    onRight: ({ level, rest }) =>
      level === undefined ? runParsed(rest) : runParsed(rest).pipe(Logger.withMinimumLogLevel(level))
  })

/**
 * Takes `--log-level LEVEL` (or `--log-level=LEVEL`) out of the arguments wherever it is.
 * @effect/cli's built-in option is only recognised right after the subcommand name, but people
 * append it anywhere (`strata migrate --dry-run --log-level debug`).
 */
const extractLogLevel = (
  argv: ReadonlyArray<string>
): Either.Either<{ readonly level: LogLevel.LogLevel | undefined; readonly rest: ReadonlyArray<string> }, string> => {
  const rest: Array<string> = []
  let level: LogLevel.LogLevel | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      rest.push(...argv.slice(i))
      break
    }
    const inline = arg.startsWith("--log-level=") ? arg.slice("--log-level=".length) : undefined
    if (arg !== "--log-level" && inline === undefined) {
      rest.push(arg)
      continue
    }
    const text = inline ?? argv[++i]
    if (text === undefined) return Either.left("--log-level needs a value (all, trace, debug, info, warning, error, fatal, none)")
    const parsed = Logging.parseLevel(text)
    if (Either.isLeft(parsed)) return Either.left(parsed.left.message)
    level = parsed.right
  }
  return Either.right({ level, rest })
}

const runParsed = (argv: ReadonlyArray<string>) =>
  Command.run(root, {
    name: "strata",
    version: packageVersion(),
    summary: HelpDoc.getSpan(HelpDoc.p("schema migrations, backfills and verification for SQLite and PostgreSQL"))
  })(argv).pipe(
    Effect.as(Outcome.ok),
    Effect.catchAll((error) => {
      if (error instanceof Outcome.ExitWith) return Effect.succeed(error.code)
      if (ValidationError.isValidationError(error)) {
        // @effect/cli has printed what was wrong; add how the command is used.
        return Effect.as(Console.error(Usage.linesFor(subcommands, argv.slice(2)).join("\n")), Outcome.usage)
      }
      return Outcome.report(Cause.fail(error), false)
    })
  )
