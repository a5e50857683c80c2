/**
 * A command's output on stdout: lines for people, or with `--json` newline-delimited JSON (one
 * object per line): progress events (`"type": "progress"`) while the work runs, then exactly one
 * result (`"type": "result"`, `"command"` naming the subcommand). Failures never reach stdout
 * (see `Outcome`).
 *
 * Naming in JSON: instants and durations are numbers of milliseconds in fields ending in `Ms`
 * (`appliedAtMs`, `elapsedMs`); ISO text is only ever shown to people.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"
import * as Text from "./Text.js"

/**
 * Prints lines for people (control characters in them, e.g. from a plan's names, escaped).
 *
 * @since 0.1.0
 * @category output
 */
export const lines = (text: ReadonlyArray<string>): Effect.Effect<void> =>
  text.length === 0 ? Effect.void : Console.log(text.map(Text.printable).join("\n"))

/**
 * Prints one line for people (control characters escaped).
 *
 * @since 0.1.0
 * @category output
 */
export const line = (text: string): Effect.Effect<void> => Console.log(Text.printable(text))

/**
 * JSON text of `value` on one line; bigints (row keys beyond 2^53) are written as decimal strings.
 *
 * @since 0.2.0
 * @category output
 */
export const stringify = (value: unknown): string =>
  JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? v.toString() : v))

/**
 * Prints one JSON value on one line.
 *
 * @since 0.1.0
 * @category output
 */
export const jsonLine = (value: unknown): Effect.Effect<void> => Console.log(stringify(value))

/**
 * Prints one progress event (`--json`): `{"type": "progress", ...event}`.
 *
 * @since 0.2.0
 * @category output
 */
export const progress = (event: object): Effect.Effect<void> => jsonLine({ type: "progress", ...event })

/**
 * Prints the command's result (`--json`): `{"type": "result", "command": command, ...value}`, the last line on stdout.
 *
 * @since 0.2.0
 * @category output
 */
export const result = (command: string, value: object): Effect.Effect<void> => jsonLine({ type: "result", command, ...value })

/**
 * The result for the mode the command runs in: `result(command, value())` with `--json`, else `human()` as lines.
 *
 * @since 0.2.0
 * @category output
 */
export const either = (
  json: boolean,
  command: string,
  value: () => object,
  human: () => ReadonlyArray<string>
): Effect.Effect<void> => (json ? Effect.suspend(() => result(command, value())) : Effect.suspend(() => lines(human())))
