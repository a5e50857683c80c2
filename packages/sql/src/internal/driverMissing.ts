/**
 * Loading a driver, and the error when it is not installed. Kept apart from `drivers.ts` so that
 * the declarations an app's compiler reads through `Database` never name a driver's types.
 */
import { Effect, Schema } from "effect"

/**
 * The driver for a database of this kind is not installed; `packages` are what to install.
 *
 * @since 0.2.0
 * @category errors
 */
export class DriverMissing extends Schema.TaggedError<DriverMissing>()("DriverMissing", {
  engine: Schema.Literal("sqlite", "pg"),
  packages: Schema.Array(Schema.String),
  cause: Schema.Defect
}) {
  override get message(): string {
    const kind = this.engine === "sqlite" ? "SQLite" : "PostgreSQL"
    return `The ${kind} driver is not installed: npm install ${this.packages.join(" ")}`
  }
}

/** What each engine needs installed, in the order an app installs them. */
export const driverPackages = {
  sqlite: ["@effect/sql-sqlite-node"],
  pg: ["@effect/sql-pg", "pg"]
} as const satisfies Record<DriverMissing["engine"], ReadonlyArray<string>>

const isModuleNotFound = (cause: unknown): boolean => {
  const code = (cause as { readonly code?: unknown } | null)?.code
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
}

/**
 * Runs `importer`; a module that cannot be found is `DriverMissing` for `engine`. Any other failure
 * (a driver that is installed but broken) is handed to `otherwise`.
 */
export const loadDriver = <A, E>(
  engine: DriverMissing["engine"],
  importer: () => Promise<A>,
  otherwise: (cause: unknown) => E
): Effect.Effect<A, DriverMissing | E> =>
  Effect.tryPromise({
    try: importer,
    catch: (cause) =>
      isModuleNotFound(cause) ? new DriverMissing({ engine, packages: driverPackages[engine], cause }) : otherwise(cause)
  })
