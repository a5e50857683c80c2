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
export const usageLines = (command: Command.Command<any, any, any, any>, parent?: string): ReadonlyArray<string> =>
  Usage.enumerate(Command.getUsage(command), CliConfig.defaultConfig).map((span) =>
    `usage: strata ${parent === undefined ? "" : `${parent} `}${stripVTControlCharacters(HelpDoc.toAnsiText(HelpDoc.p(span))).trim()}`
  )

/**
 * The subcommand named in `args` (the arguments after the executable), if any.
 *
 * @since 0.2.0
 */
export const commandIn = <C extends Command.Command<any, any, any, any>>(
  subcommands: ReadonlyArray<C>,
  args: ReadonlyArray<string>
): C | undefined => {
  // The first one named: `fleet migrate` is fleet's migrate, not the top-level migrate.
  const at = (command: C) => {
    const index = args.indexOf(commandName(command))
    return index < 0 ? Number.POSITIVE_INFINITY : index
  }
  return subcommands.filter((command) => at(command) < Number.POSITIVE_INFINITY).sort((a, b) => at(a) - at(b))[0]
}

/**
 * A command with subcommands of its own (`strata fleet migrate`).
 *
 * @since 0.2.0
 */
export interface Group {
  readonly command: Command.Command<any, any, any, any>
  readonly children: ReadonlyArray<Command.Command<any, any, any, any>>
}

/**
 * The command `args` name, one level into a group: the command, its parent's name if nested,
 * and the group itself when no child of it is named.
 *
 * @since 0.2.0
 */
export const resolveIn = (
  subcommands: ReadonlyArray<Command.Command<any, any, any, any>>,
  groups: ReadonlyArray<Group>,
  args: ReadonlyArray<string>
):
  | { readonly command: Command.Command<any, any, any, any>; readonly parent: string | undefined; readonly group: Group | undefined }
  | undefined =>
{
  const named = commandIn(subcommands, args)
  if (named === undefined) return undefined
  const group = groups.find((g) => g.command === named)
  if (group === undefined) return { command: named, parent: undefined, group: undefined }
  const rest = args.slice(args.indexOf(commandName(named)) + 1)
  const child = commandIn(group.children, rest)
  return child === undefined
    ? { command: named, parent: undefined, group }
    : { command: child, parent: commandName(named), group: undefined }
}

/**
 * `usage: strata <subcommand> [options…]` for the subcommand named in `args`, or the list of
 * subcommands when none is named.
 *
 * @since 0.1.0
 */
export const linesFor = (
  subcommands: ReadonlyArray<Command.Command<any, any, any, any>>,
  args: ReadonlyArray<string>,
  groups: ReadonlyArray<Group> = []
): ReadonlyArray<string> => {
  const resolved = resolveIn(subcommands, groups, args)
  if (resolved === undefined) {
    return [
      `usage: strata <command> [options]   (commands: ${subcommands.map(commandName).join(", ")})`,
      "Run 'strata --help' for details."
    ]
  }
  const { command, group, parent } = resolved
  const name = parent === undefined ? commandName(command) : `${parent} ${commandName(command)}`
  if (group !== undefined) {
    return [`usage: strata ${name} <command> [options]   (commands: ${group.children.map(commandName).join(", ")})`, `Run 'strata ${name} --help' for details.`]
  }
  return [...usageLines(command, parent), `Run 'strata ${name} --help' for details.`]
}
