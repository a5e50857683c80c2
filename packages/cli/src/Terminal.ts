/**
 * Where the CLI writes: stdout for results, stderr for messages. Help and parse errors from
 * @effect/cli are always ANSI-coloured; when the stream is not a terminal (a pipe, a file, a test)
 * or NO_COLOR is set, the escapes are stripped so the text stays plain.
 *
 * @since 0.1.0
 */
import { Console, Effect, FiberRef } from "effect"
import { stripVTControlCharacters } from "node:util"

/**
 * Whether stdout is a terminal a person watches (redrawn progress bars, colours).
 *
 * @since 0.1.0
 */
export const stdoutIsTty = (): boolean => process.stdout.isTTY === true

const colours = (stream: NodeJS.WriteStream): boolean => stream.isTTY === true && (process.env["NO_COLOR"] ?? "") === ""

const plain = (keep: boolean) => (args: ReadonlyArray<unknown>): ReadonlyArray<unknown> =>
  keep ? args : args.map((arg) => (typeof arg === "string" ? stripVTControlCharacters(arg) : arg))

/**
 * The default console with ANSI escapes removed from whatever goes to a non-terminal stream.
 *
 * @since 0.1.0
 */
export const plainWhenPiped = (base: Console.Console): Console.Console => {
  const out = plain(colours(process.stdout))
  const err = plain(colours(process.stderr))
  return {
    ...base,
    log: (...args) => base.log(...out(args)),
    info: (...args) => base.info(...out(args)),
    error: (...args) => base.error(...err(args)),
    warn: (...args) => base.warn(...err(args))
  }
}

/**
 * Writes raw text to stdout (no newline added); used for redrawing progress lines in place.
 *
 * @since 0.1.0
 */
export const writeStdout = (text: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(text))

/**
 * Whether the text written now is strata's own (a command's output or failure) rather than
 * @effect/cli's parse error, which `--json` replaces with one JSON object.
 *
 * @since 0.2.0
 */
export const ownOutput: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)

/**
 * Runs `effect` as strata's own output (see `ownOutput`).
 *
 * @since 0.2.0
 */
export const asOwnOutput = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, ownOutput, true)

/**
 * `base` with @effect/cli's own stderr text dropped: with `--json`, stderr carries only JSON.
 *
 * @since 0.2.0
 */
export const withoutParserText = (base: Console.Console): Console.Console => ({
  ...base,
  error: (...args) => Effect.flatMap(FiberRef.get(ownOutput), (own) => (own ? base.error(...args) : Effect.void))
})
