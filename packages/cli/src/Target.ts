/**
 * `--db`: which database a command works on. The URL is checked before anything opens it, and
 * commands that only read (status, verify, backfill) refuse a SQLite file that does not exist
 * instead of silently creating an empty one.
 *
 * @since 0.1.0
 */
import { Database } from "@strata/sql"
import { Effect, Schema } from "effect"
import * as Fs from "node:fs"

/**
 * The SQLite file named by `--db` does not exist (and this command would not create it).
 *
 * @since 0.1.0
 */
export class DatabaseMissing extends Schema.TaggedError<DatabaseMissing>()("DatabaseMissing", {
  filename: Schema.String
}) {
  override get message(): string {
    return `database ${this.filename} does not exist; create it with 'strata migrate' (or try 'strata demo')`
  }
}

/**
 * A checked `--db` value.
 *
 * @since 0.1.0
 */
export interface Target {
  /** As given, for opening. */
  readonly url: string
  /** For messages: passwords redacted. */
  readonly display: string
  readonly dialect: "sqlite" | "pg"
  /** The SQLite file, when it is one (`:memory:` included). */
  readonly sqliteFile: string | undefined
  /** Whether the SQLite file exists already (always true for Postgres). */
  readonly exists: boolean
}

const fileExists = (filename: string): boolean => filename === ":memory:" || Fs.existsSync(filename)

/**
 * Checks `--db`; with `mustExist`, a missing SQLite file is a `DatabaseMissing` error.
 *
 * @since 0.1.0
 */
export const resolve = (
  url: string,
  options: { readonly mustExist: boolean }
): Effect.Effect<Target, Database.InvalidDatabaseUrl | DatabaseMissing> =>
  Effect.gen(function*() {
    const parsed = yield* Database.parseUrl(url)
    const target: Target = Database.DatabaseUrl.$match(parsed, {
      Sqlite: ({ filename }) => ({
        url,
        display: filename,
        dialect: "sqlite" as const,
        sqliteFile: filename,
        exists: fileExists(filename)
      }),
      Pg: () => ({ url, display: Database.redact(url), dialect: "pg" as const, sqliteFile: undefined, exists: true })
    })
    if (options.mustExist && !target.exists) return yield* new DatabaseMissing({ filename: target.display })
    return target
  })
