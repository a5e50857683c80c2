/**
 * The usage lines printed after a command-line parse error (exit 2) and at the top of help, for
 * the subcommand the arguments name, or for `strata` itself.
 *
 * @since 0.1.0
 */
import { CliConfig, Command, HelpDoc, Usage } from "@effect/cli"
import { stripVTControlCharacters } from "node:util"

/**
 * A subcommand's name (`migrate`).
 *
 * @since 0.2.0
 */
export const commandName = (command: Command.Command<any, any, any, any>): string => [...Command.getNames(command)][0] ?? ""

/**
 * `usage: strata migrate [--db path|url] …` for one subcommand.
 *
 * @since 0.2.0
 */
export const usageLines = (command: Command.Command<any, any, any, any>): ReadonlyArray<string> =>
  Usage.enumerate(Command.getUsage(command), CliConfig.defaultConfig).map((span) =>
    `usage: strata ${stripVTControlCharacters(HelpDoc.toAnsiText(HelpDoc.p(span))).trim()}`
  )

/**
 * The subcommand named in `args` (the arguments after the executable), if any.
 *
 * @since 0.2.0
 */
export const commandIn = <C extends Command.Command<any, any, any, any>>(
  subcommands: ReadonlyArray<C>,
  args: ReadonlyArray<string>
): C | undefined => subcommands.find((command) => args.includes(commandName(command)))

/**
 * `usage: strata <subcommand> [options…]` for the subcommand named in `args`, or the list of
 * subcommands when none is named.
 *
 * @since 0.1.0
 */
export const linesFor = (
  subcommands: ReadonlyArray<Command.Command<any, any, any, any>>,
  args: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const named = commandIn(subcommands, args)
  if (named === undefined) {
    return [
      `usage: strata <command> [options]   (commands: ${subcommands.map(commandName).join(", ")})`,
      "Run 'strata --help' for details."
    ]
  }
  return [...usageLines(named), `Run 'strata ${commandName(named)} --help' for details.`]
}
