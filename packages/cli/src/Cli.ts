/**
 * The `strata` command: its subcommands, and how a run ends (exit code).
 *
 * Before @effect/cli parses the arguments, strata reads what it handles itself, wherever it is
 * written: `--log-level`, `--help`, and the options every command takes when they come before the
 * command (`strata --db x status` is `strata status --db x`).
 *
 * @since 0.1.0
 */
import { type CliApp, Command, HelpDoc, ValidationError } from "@effect/cli"
import { Logging } from "@strata/sql"
import { Cause, Console, Effect, Either, Logger, type LogLevel } from "effect"
import * as Fs from "node:fs"
import { stripVTControlCharacters } from "node:util"
import * as Help from "./Help.js"
import * as Outcome from "./Outcome.js"
import * as Terminal from "./Terminal.js"
import * as Usage from "./Usage.js"
import * as Backfill from "./commands/backfill.js"
import * as Demo from "./commands/demo.js"
import * as Fleet from "./commands/fleet.js"
import * as ImportLegacy from "./commands/importLegacy.js"
import * as Migrate from "./commands/migrate.js"
import * as Rejects from "./commands/rejects.js"
import * as Status from "./commands/status.js"
import * as Validate from "./commands/validate.js"
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
export const subcommands = [
  Migrate.command,
  Status.command,
  Validate.command,
  Backfill.command,
  Verify.command,
  Rejects.command,
  Fleet.command,
  ImportLegacy.command,
  Demo.command
] as const

/**
 * Commands with subcommands of their own.
 *
 * @since 0.2.0
 */
export const groups: ReadonlyArray<Usage.Group> = [{ command: Fleet.command, children: Fleet.subcommands }]

/**
 * Every command that does work (a group's children instead of the group), for checks over all of them.
 *
 * @since 0.2.0
 */
export const leafCommands = subcommands.flatMap((command) => groups.find((g) => g.command === command)?.children ?? [command])

const root = Command.make("strata").pipe(
  Command.withDescription(
    "Evolve a live SQLite or PostgreSQL database without downtime: migrations, resumable backfills, verification."
  ),
  Command.withSubcommands(subcommands)
)

const subcommandNames: ReadonlySet<string> = new Set(subcommands.map(Usage.commandName))

/**
 * The options every command takes and which of them take a value: the ones that may also be
 * written before the command.
 *
 * @since 0.2.0
 */
export const globalOptions: Readonly<Record<string, { readonly takesValue: boolean }>> = {
  "--db": { takesValue: true },
  "--plan": { takesValue: true },
  "--json": { takesValue: false }
}

const globalOptionHelp: ReadonlyArray<Help.OptionHelp> = Help.optionsOf(Status.command).filter((option) =>
  Object.keys(globalOptions).some((name) => option.usage === name || option.usage.startsWith(`${name} `))
)

/**
 * Moves the options every command takes from before the command to right after it
 * (`--db x status --json` becomes `status --db x --json`), as @effect/cli only reads a
 * subcommand's options after its name. Anything else before the command is left where it is.
 *
 * @since 0.2.0
 */
export const hoistGlobalOptions = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const leading: Array<string> = []
  let i = 0
  while (i < args.length) {
    const arg = args[i]!
    const name = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg
    const option = Object.prototype.hasOwnProperty.call(globalOptions, name) ? globalOptions[name] : undefined
    if (option === undefined) break
    const width = option.takesValue && !arg.includes("=") ? 2 : 1
    leading.push(...args.slice(i, i + width))
    i += width
  }
  const command = args[i]
  if (leading.length === 0 || command === undefined || !subcommandNames.has(command)) return args
  // A group's options belong to its child: `--plan p fleet migrate` is `fleet migrate --plan p`.
  const group = groups.find((g) => Usage.commandName(g.command) === command)
  const child = args[i + 1]
  if (group !== undefined && child !== undefined && group.children.some((c) => Usage.commandName(c) === child)) {
    return [command, child, ...leading, ...args.slice(i + 2)]
  }
  return [command, ...leading, ...args.slice(i + 1)]
}

/** The arguments before `--` (after it, everything is a value). */
const flags = (args: ReadonlyArray<string>): ReadonlyArray<string> => {
  const end = args.indexOf("--")
  return end < 0 ? args : args.slice(0, end)
}

/**
 * Runs the command line (`process.argv` shape) and returns the process exit code; failures have
 * been reported on stderr by then.
 *
 * @since 0.1.0
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> => {
  const json = flags(argv).includes("--json")
  return Either.match(extractLogLevel(argv.slice(2)), {
    onLeft: (problem) => usageError(json, "InvalidLogLevel", problem, argv.slice(2)),
    onRight: ({ level, rest }) => {
      const args = hoistGlobalOptions(rest)
      const parsed = args.length === 0
        ? Effect.as(Console.error(Help.forRoot(subcommands, packageVersion(), globalOptionHelp).join("\n")), Outcome.usage)
        : helpRequested(args)
        ? printHelp(args)
        : runParsed([...argv.slice(0, 2), ...args], json)
      return level === undefined ? parsed : parsed.pipe(Logger.withMinimumLogLevel(level))
    }
  })
}

const usageError = (json: boolean, error: string, message: string, args: ReadonlyArray<string>): Effect.Effect<number> => {
  const usage = Usage.linesFor(subcommands, args, groups)
  const text = message.replace(/\s*\n\s*/g, " ").trim()
  return Terminal.asOwnOutput(
    Effect.as(
      json
        ? Outcome.write({ error, message: text, fields: { usage: usage[0]?.replace(/^usage: /, "") } }, { json: true, verbose: false })
        : Console.error([...(text === "" ? [] : [`strata: ${text}`]), ...usage].join("\n")),
      Outcome.usage
    )
  )
}

const helpRequested = (args: ReadonlyArray<string>): boolean => flags(args).some((arg) => arg === "--help" || arg === "-h")

const printHelp = (args: ReadonlyArray<string>): Effect.Effect<number> => {
  const named = Usage.resolveIn(subcommands, groups, flags(args))
  const text = named === undefined
    ? Help.forRoot(subcommands, packageVersion(), globalOptionHelp)
    : named.group !== undefined
    ? Help.forGroup(named.group)
    : Help.forCommand(named.command, named.parent)
  return Effect.as(Console.log(text.join("\n")), Outcome.ok)
}

/**
 * Takes `--log-level LEVEL` (or `--log-level=LEVEL`) out of the arguments wherever it is.
 * @effect/cli's built-in option is only recognised right after the subcommand name, but people
 * append it anywhere (`strata migrate --dry-run --log-level debug`).
 */
const extractLogLevel = (
  args: ReadonlyArray<string>
): Either.Either<{ readonly level: LogLevel.LogLevel | undefined; readonly rest: ReadonlyArray<string> }, string> => {
  const rest: Array<string> = []
  let level: LogLevel.LogLevel | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === "--") {
      rest.push(...args.slice(i))
      break
    }
    const inline = arg.startsWith("--log-level=") ? arg.slice("--log-level=".length) : undefined
    if (arg !== "--log-level" && inline === undefined) {
      rest.push(arg)
      continue
    }
    const text = inline ?? args[++i]
    if (text === undefined) return Either.left("--log-level needs a value (all, trace, debug, info, warning, error, fatal, none)")
    const parsed = Logging.parseLevel(text)
    if (Either.isLeft(parsed)) return Either.left(parsed.left.message)
    level = parsed.right
  }
  return Either.right({ level, rest })
}

const helpText = (doc: HelpDoc.HelpDoc): string => stripVTControlCharacters(HelpDoc.toAnsiText(doc))

const runParsed = (argv: ReadonlyArray<string>, json: boolean) => {
  const parse = Command.run(root, {
    name: "strata",
    version: packageVersion(),
    summary: HelpDoc.getSpan(HelpDoc.p("schema migrations, backfills and verification for SQLite and PostgreSQL"))
  })(argv).pipe(
    Effect.as(Outcome.ok),
    Effect.catchAll((error) => {
      if (error instanceof Outcome.ExitWith) return Effect.succeed(error.code)
      if (ValidationError.isValidationError(error)) {
        // Without --json @effect/cli has printed what was wrong; add how the command is used.
        return usageError(json, "UsageError", json ? helpText(error.error) : "", argv.slice(2))
      }
      return Terminal.asOwnOutput(Outcome.report(Cause.fail(error), { json, verbose: false }))
    })
  )
  // With --json, stderr carries only JSON: @effect/cli's own text for a parse error is replaced by usageError's object.
  return json ? Effect.flatMap(Effect.console, (console) => Effect.withConsole(parse, Terminal.withoutParserText(console))) : parse
}
