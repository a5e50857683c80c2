/**
 * The usage lines printed after a command-line parse error (exit 2), for the subcommand the
 * arguments name, or for `strata` itself.
 *
 * @since 0.1.0
 */
import { CliConfig, Command, HelpDoc, Usage } from "@effect/cli"
import { stripVTControlCharacters } from "node:util"

/**
 * `usage: strata <subcommand> [options…]` for the subcommand named in `args` (the arguments after
 * the executable), or the list of subcommands when none is named.
 *
 * @since 0.1.0
 */
export const linesFor = (
  subcommands: ReadonlyArray<Command.Command<any, any, any, any>>,
  args: ReadonlyArray<string>
): ReadonlyArray<string> => {
  const named = subcommands.find((command) => args.includes(commandName(command)))
  if (named === undefined) {
    return [
      `usage: strata <command> [options]   (commands: ${subcommands.map(commandName).join(", ")})`,
      "Run 'strata --help' for details."
    ]
  }
  const spans = Usage.enumerate(Command.getUsage(named), CliConfig.defaultConfig)
  return [
    ...spans.map((span) => `usage: strata ${stripVTControlCharacters(HelpDoc.toAnsiText(HelpDoc.p(span))).trim()}`),
    `Run 'strata ${commandName(named)} --help' for details.`
  ]
}

const commandName = (command: Command.Command<any, any, any, any>): string => [...Command.getNames(command)][0] ?? ""
