/**
 * `strata --help` and `strata <command> --help`: the usage line, what the command does, and one
 * line per option with the description the option was defined with (read from @effect/cli's
 * help document, without its generic lines such as "A user-defined piece of text.").
 *
 * @since 0.2.0
 */
import { CliConfig, Command, type HelpDoc } from "@effect/cli"
import type { Span } from "@effect/cli/HelpDoc/Span"
import * as Usage from "./Usage.js"

/**
 * One option as listed in help: its usage (`--db path|url`) and what it is for.
 *
 * @since 0.2.0
 * @category models
 */
export interface OptionHelp {
  readonly usage: string
  readonly description: string
}

/**
 * `--log-level`, which every command takes (strata reads it itself, wherever it is written).
 *
 * @since 0.2.0
 */
export const logLevelOption: OptionHelp = {
  usage: "--log-level LEVEL",
  description: "all|trace|debug|info|warning|error|fatal|none (default warning; debug adds stack traces to failures)."
}

const helpOption: OptionHelp = { usage: "-h, --help", description: "Show this help." }

const spanText = (span: Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return spanText(span.left) + spanText(span.right)
    case "Highlight":
    case "Strong":
    case "Weak":
      return spanText(span.value)
  }
}

const paragraphs = (doc: HelpDoc.HelpDoc): ReadonlyArray<string> => {
  switch (doc._tag) {
    case "Paragraph":
      return [spanText(doc.value)]
    case "Sequence":
      return [...paragraphs(doc.left), ...paragraphs(doc.right)]
    default:
      return []
  }
}

const definitions = (doc: HelpDoc.HelpDoc): ReadonlyArray<readonly [Span, HelpDoc.HelpDoc]> => {
  switch (doc._tag) {
    case "DescriptionList":
      return doc.definitions
    case "Sequence":
      return [...definitions(doc.left), ...definitions(doc.right)]
    default:
      return []
  }
}

const firstParagraphAfterHeader = (doc: HelpDoc.HelpDoc, header: string): string | undefined => {
  const flat: Array<HelpDoc.HelpDoc> = []
  const walk = (d: HelpDoc.HelpDoc): void => {
    if (d._tag === "Sequence") {
      walk(d.left)
      walk(d.right)
    } else flat.push(d)
  }
  walk(doc)
  const at = flat.findIndex((d) => d._tag === "Header" && spanText(d.value) === header)
  const next = at < 0 ? undefined : flat[at + 1]
  return next?._tag === "Paragraph" ? spanText(next.value) : undefined
}

/**
 * What `command` does (its `withDescription` text).
 *
 * @since 0.2.0
 */
export const descriptionOf = (command: Command.Command<any, any, any, any>): string =>
  firstParagraphAfterHeader(Command.getHelp(command, CliConfig.defaultConfig), "DESCRIPTION") ?? ""

/**
 * The options of `command` with their own descriptions. @effect/cli puts the value type's generic
 * line first ("An integer."), then the option's description, then notes such as "This setting is optional.".
 *
 * @since 0.2.0
 */
export const optionsOf = (command: Command.Command<any, any, any, any>): ReadonlyArray<OptionHelp> =>
  definitions(Command.getHelp(command, CliConfig.defaultConfig)).flatMap(([span, block]) => {
    const usage = spanText(span)
    return isBuiltIn(usage) ? [] : [{ usage, description: paragraphs(block)[1] ?? "" }]
  })

// @effect/cli's own options: strata documents --help, --version and --log-level itself, and does
// not advertise the shell-completion and wizard modes.
const builtInNames = ["--completions", "--log-level", "(-h, --help)", "--wizard", "--version"]

const isBuiltIn = (usage: string): boolean => builtInNames.some((name) => usage === name || usage.startsWith(`${name} `))

const wrap = (text: string, width: number): ReadonlyArray<string> => {
  const lines: Array<string> = []
  let current = ""
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (current !== "" && current.length + 1 + word.length > width) {
      lines.push(current)
      current = word
    } else current = current === "" ? word : `${current} ${word}`
  }
  if (current !== "") lines.push(current)
  return lines
}

// Descriptions start in one column and wrap at 100 characters, indented under themselves.
const optionLines = (options: ReadonlyArray<OptionHelp>): ReadonlyArray<string> => {
  const column = Math.min(28, Math.max(...options.map((o) => o.usage.length)) + 4)
  return options.flatMap((option) => {
    const text = wrap(option.description, 100 - column)
    const first = `  ${option.usage}`
    const head = first.length + 2 <= column ? [`${first.padEnd(column)}${text[0] ?? ""}`] : [first, `${" ".repeat(column)}${text[0] ?? ""}`]
    return [...head, ...text.slice(1).map((line) => `${" ".repeat(column)}${line}`)]
  })
}

/**
 * The help of one subcommand.
 *
 * @since 0.2.0
 */
export const forCommand = (command: Command.Command<any, any, any, any>, parent?: string): ReadonlyArray<string> => [
  ...Usage.usageLines(command, parent),
  "",
  descriptionOf(command),
  "",
  "Options:",
  ...optionLines([...optionsOf(command), logLevelOption, helpOption])
]

/**
 * The help of a command with subcommands of its own (`strata fleet`): its commands.
 *
 * @since 0.2.0
 */
export const forGroup = (group: Usage.Group): ReadonlyArray<string> => {
  const name = Usage.commandName(group.command)
  const names = group.children.map(Usage.commandName)
  const width = Math.max(...names.map((n) => n.length)) + 2
  return [
    `usage: strata ${name} <command> [options]`,
    "",
    descriptionOf(group.command),
    "",
    "Commands:",
    ...group.children.map((command, i) => `  ${names[i]!.padEnd(width)}${descriptionOf(command)}`),
    "",
    `Run 'strata ${name} <command> --help' for a command's own options.`
  ]
}

/**
 * The help of `strata` itself: the commands, the options every command takes, where to read more.
 *
 * @since 0.2.0
 */
export const forRoot = (
  subcommands: ReadonlyArray<Command.Command<any, any, any, any>>,
  version: string,
  globalOptions: ReadonlyArray<OptionHelp>
): ReadonlyArray<string> => {
  const names = subcommands.map(Usage.commandName)
  const width = Math.max(...names.map((n) => n.length)) + 2
  return [
    `strata ${version}: evolve a live SQLite or PostgreSQL database without downtime`,
    "",
    "usage: strata [--db path|url] [--plan name|file] [--json] [--log-level LEVEL] <command> [options]",
    "",
    "Commands:",
    ...subcommands.map((command, i) => `  ${names[i]!.padEnd(width)}${descriptionOf(command)}`),
    "",
    "Options every command takes (before or after the command):",
    ...optionLines([...globalOptions, logLevelOption, { usage: "--version", description: "Print strata's version." }, helpOption]),
    "",
    "Run 'strata <command> --help' for a command's own options."
  ]
}
