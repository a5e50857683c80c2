/**
 * The `strata` command: its subcommands, and how a run ends (exit code).
 *
 * @since 0.1.0
 */
import { Command, HelpDoc, ValidationError } from "@effect/cli"
import { Cause, Console, Effect } from "effect"
import * as Fs from "node:fs"
import * as Outcome from "./Outcome.js"
import * as Usage from "./Usage.js"
import * as Migrate from "./commands/migrate.js"

const packageVersion = (): string => {
  const text = Fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")
  return (JSON.parse(text) as { readonly version: string }).version
}

/**
 * Every subcommand, in the order `--help` lists them.
 *
 * @since 0.1.0
 */
export const subcommands = [Migrate.command] as const

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
export const run = (argv: ReadonlyArray<string>) =>
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
