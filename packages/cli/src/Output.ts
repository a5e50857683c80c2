/**
 * A command's result on stdout: lines for people, or one JSON document with `--json`.
 *
 * @since 0.1.0
 */
import { Console, Effect } from "effect"

/**
 * Prints lines for people.
 *
 * @since 0.1.0
 */
export const lines = (text: ReadonlyArray<string>): Effect.Effect<void> =>
  text.length === 0 ? Effect.void : Console.log(text.join("\n"))

/**
 * Prints one line for people.
 *
 * @since 0.1.0
 */
export const line = (text: string): Effect.Effect<void> => Console.log(text)

/**
 * Prints a JSON document (the `--json` result of a command).
 *
 * @since 0.1.0
 */
export const json = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value, null, 2))

/**
 * Prints one JSON value on one line (JSON lines, e.g. progress events).
 *
 * @since 0.1.0
 */
export const jsonLine = (value: unknown): Effect.Effect<void> => Console.log(JSON.stringify(value))
