/**
 * Logger layers: "pretty" for people, "json" (one object per line) for machines. Both write to
 * STDERR so a command's `--json` output on stdout stays machine-readable.
 *
 * @since 0.1.0
 */
import { Either, Layer, Logger, LogLevel, Schema } from "effect"

/**
 * How log lines look: "pretty" (human, coloured when stderr is a terminal) or "json".
 *
 * @since 0.1.0
 */
export type Format = "pretty" | "json"

/**
 * A level by name, as accepted by `parseLevel` (case-insensitive).
 *
 * @since 0.1.0
 */
export type LevelName = "all" | "trace" | "debug" | "info" | "warning" | "warn" | "error" | "fatal" | "none"

/**
 * The level text is not one `parseLevel` knows.
 *
 * @since 0.1.0
 */
export class InvalidLogLevel extends Schema.TaggedError<InvalidLogLevel>()("InvalidLogLevel", {
  level: Schema.String
}) {
  override get message(): string {
    return `Unknown log level ${JSON.stringify(this.level)}; expected one of ${levelNames.join(", ")}`
  }
}

const levelsByName: Record<LevelName, LogLevel.LogLevel> = {
  all: LogLevel.All,
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None
}

const levelNames = Object.keys(levelsByName) as ReadonlyArray<LevelName>

const isLevelName = (text: string): text is LevelName => Object.prototype.hasOwnProperty.call(levelsByName, text)

/**
 * Reads a level name ("info", "DEBUG", "warn", …) into a `LogLevel`.
 *
 * @since 0.1.0
 */
export const parseLevel = (text: string): Either.Either<LogLevel.LogLevel, InvalidLogLevel> => {
  const name = text.trim().toLowerCase()
  return isLevelName(name) ? Either.right(levelsByName[name]) : Either.left(new InvalidLogLevel({ level: text }))
}

/**
 * The logger for a format, writing through `Console.error` (stderr by default; tests may swap the `Console`).
 * "json" lines carry message, logLevel, timestamp, cause, annotations, spans and fiberId.
 *
 * @since 0.1.0
 */
export const logger = (format: Format): Logger.Logger<unknown, void> =>
  format === "json"
    ? Logger.withConsoleError(Logger.jsonLogger)
    : Logger.prettyLogger({ stderr: true, colors: process.stderr.isTTY === true })

/**
 * Replaces Effect's default logger (which writes to stdout) with `logger(format)` and sets the minimum level.
 *
 * @since 0.1.0
 */
export const layer = (options: {
  readonly format: Format
  readonly level: LogLevel.LogLevel | LevelName
}): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, logger(options.format)),
    Logger.minimumLogLevel(typeof options.level === "string" ? levelsByName[options.level] : options.level)
  )
