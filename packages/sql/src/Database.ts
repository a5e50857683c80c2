/**
 * Opening a database from a URL or path: SQLite (WAL, `synchronous=NORMAL`, `busy_timeout`,
 * `foreign_keys=ON`) or PostgreSQL (session `TimeZone` = UTC), as one `SqlClient` for the rest
 * of strata, with typed errors that name the database (password redacted).
 *
 * @since 0.1.0
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Config, Context, Data, Duration, Effect, Either, Layer, Redacted, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import type Pg from "pg"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Identifier } from "@strata/core"
import { DriverMissing, loadDriver } from "./internal/driverMissing.js"
import { importPg, importSqlite } from "./internal/drivers.js"
import { withSafeTransactions } from "./internal/transaction.js"
import { failureText } from "./SqlErrors.js"

/**
 * A parsed database location: a SQLite file (or `:memory:`) or a PostgreSQL connection URL.
 *
 * @since 0.1.0
 */
export type DatabaseUrl = Data.TaggedEnum<{
  readonly Sqlite: { readonly filename: string }
  readonly Pg: { readonly url: string }
}>

/**
 * Constructors and matchers for `DatabaseUrl` (`DatabaseUrl.Sqlite({ filename })`, `DatabaseUrl.$match`).
 *
 * @since 0.1.0
 */
export const DatabaseUrl = Data.taggedEnum<DatabaseUrl>()

/**
 * The URL could not be understood; `url` is already redacted.
 *
 * @since 0.1.0
 */
export class InvalidDatabaseUrl extends Schema.TaggedError<InvalidDatabaseUrl>()("InvalidDatabaseUrl", {
  url: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `Invalid database URL ${JSON.stringify(this.url)}: ${this.reason}`
  }
}

/**
 * The database could not be opened or reached (missing directory, corrupt file, server down,
 * bad credentials); `url` is already redacted.
 *
 * @since 0.1.0
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  url: Schema.String,
  reason: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    return `Cannot open database ${this.url}: ${this.reason}`
  }
}

/**
 * The driver for the database's kind is not installed (`@effect/sql-sqlite-node` for SQLite,
 * `@effect/sql-pg` and `pg` for PostgreSQL: optional peer dependencies, loaded when a database of
 * that kind is opened); `packages` names what to install.
 *
 * @since 0.2.0
 * @category errors
 */
export { DriverMissing }

/**
 * Everything `layer` can fail with.
 *
 * @since 0.1.0
 */
export type DatabaseError = InvalidDatabaseUrl | DatabaseUnavailable | DriverMissing

/**
 * The online backup did not complete (e.g. the destination directory is missing); no partial copy is left behind.
 *
 * @since 0.1.0
 */
export class BackupFailed extends Schema.TaggedError<BackupFailed>()("BackupFailed", {
  destination: Schema.String,
  reason: Schema.String,
  cause: Schema.Defect
}) {
  override get message(): string {
    return `Backup to ${this.destination} failed: ${this.reason}`
  }
}

/**
 * The backup destination already exists; strata never overwrites it.
 *
 * @since 0.1.0
 */
export class BackupDestinationExists extends Schema.TaggedError<BackupDestinationExists>()(
  "BackupDestinationExists",
  { destination: Schema.String }
) {
  override get message(): string {
    return `Backup destination ${this.destination} already exists; choose a new file name (it is never overwritten)`
  }
}

/**
 * `backup` was asked of a PostgreSQL database, which has its own tools.
 *
 * @since 0.1.0
 */
export class BackupUnsupported extends Schema.TaggedError<BackupUnsupported>()("BackupUnsupported", {
  dialect: Schema.String
}) {
  override get message(): string {
    return `Online backup is only available for SQLite databases; for PostgreSQL (${this.dialect}) use pg_dump`
  }
}

/**
 * Everything `backup` can fail with.
 *
 * @since 0.1.0
 */
export type BackupError = BackupFailed | BackupDestinationExists | BackupUnsupported

/**
 * The URL with any password (in the user-info part or a `password=` query parameter) replaced by `***`.
 * Every message that names a database goes through this.
 *
 * @since 0.1.0
 */
export const redact = (url: string): string => {
  const withoutQueryPassword = url.replace(/([?&]password=)[^&#]*/gi, "$1***")
  const schemeEnd = withoutQueryPassword.indexOf("://")
  if (schemeEnd < 0) return withoutQueryPassword
  const authorityStart = schemeEnd + 3
  const rest = withoutQueryPassword.slice(authorityStart)
  // The user-info ends at the last "@" of the authority, as in WHATWG URL parsing (an unescaped "@" may be in the password).
  const authorityEnd = rest.search(/[/?#]/)
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd)
  const at = authority.lastIndexOf("@")
  if (at < 0) return withoutQueryPassword
  const userInfo = authority.slice(0, at)
  const colon = userInfo.indexOf(":")
  if (colon < 0) return withoutQueryPassword
  return (
    withoutQueryPassword.slice(0, authorityStart) +
    userInfo.slice(0, colon) +
    ":***" +
    rest.slice(at)
  )
}

const invalid = (url: string, reason: string) =>
  Either.left(new InvalidDatabaseUrl({ url: redact(url), reason }))

// Two or more characters, so a Windows drive letter ("C:\\data.db") is not mistaken for a scheme.
const schemePattern = /^([A-Za-z][A-Za-z0-9+.-]+):/

/**
 * Reads a database location. Rules:
 * - `postgres://…` or `postgresql://…` → `Pg` (the URL is kept as given, checked to be well formed).
 * - `:memory:` or `sqlite::memory:` → an in-memory SQLite database.
 * - `sqlite:PATH` → SQLite file `PATH`, relative or absolute (`sqlite:./data/app.db`, `sqlite:/srv/app.db`).
 * - `sqlite:///ABSOLUTE` → SQLite file `/ABSOLUTE` (the empty-host URL form); `sqlite://x.db` is rejected as
 *   ambiguous (say `sqlite:x.db` or `sqlite:///abs/x.db`).
 * - `file:` URLs → their path (percent-decoded as file URLs are).
 * - anything without a scheme → a SQLite file path, taken literally.
 * - any other scheme (`mysql://…`) or an empty string → `InvalidDatabaseUrl`.
 * SQLite paths are never percent-decoded and take no query parameters.
 *
 * @since 0.1.0
 */
export const parseUrl = (url: string): Either.Either<DatabaseUrl, InvalidDatabaseUrl> => {
  if (url.trim() === "") return invalid(url, "it is empty; give a SQLite file path or a postgres:// URL")
  if (url === ":memory:") return Either.right(DatabaseUrl.Sqlite({ filename: ":memory:" }))
  const scheme = schemePattern.exec(url)?.[1]?.toLowerCase()
  if (scheme === undefined) return Either.right(DatabaseUrl.Sqlite({ filename: url }))
  switch (scheme) {
    case "postgres":
    case "postgresql": {
      if (!url.slice(scheme.length + 1).startsWith("//")) {
        return invalid(url, `expected ${scheme}://[user[:password]@]host[:port]/database`)
      }
      return isWellFormedPgUrl(url)
        ? Either.right(DatabaseUrl.Pg({ url }))
        : invalid(url, "it is not a well-formed PostgreSQL URL")
    }
    case "sqlite": {
      const rest = url.slice("sqlite:".length)
      if (rest === ":memory:") return Either.right(DatabaseUrl.Sqlite({ filename: ":memory:" }))
      if (rest.startsWith("//")) {
        const path = rest.slice(2)
        return path.startsWith("/")
          ? Either.right(DatabaseUrl.Sqlite({ filename: path }))
          : invalid(url, "sqlite:// must be followed by an absolute path (sqlite:///abs/app.db); for a relative path write sqlite:app.db")
      }
      return rest === ""
        ? invalid(url, "no file path after sqlite:")
        : Either.right(DatabaseUrl.Sqlite({ filename: rest }))
    }
    case "file": {
      try {
        return Either.right(DatabaseUrl.Sqlite({ filename: fileURLToPath(url) }))
      } catch (cause) {
        return invalid(url, `it is not a valid file URL (${failureText(cause)})`)
      }
    }
    default:
      return invalid(url, `unsupported scheme "${scheme}:"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…)`)
  }
}

// Mirrors pg-connection-string, which retries with a dummy host for socket URLs like postgres://user@/db?host=/run/postgresql.
const isWellFormedPgUrl = (url: string): boolean => {
  for (const candidate of [url, url.replace("@/", "@dummy-host/")]) {
    try {
      new URL(candidate)
      return true
    } catch {
      continue
    }
  }
  return false
}

/**
 * Options for `layer`. Only `url` is required.
 *
 * @since 0.1.0
 */
export interface LayerOptions {
  /** A SQLite file path, `sqlite:` URL, `:memory:`, or a `postgres://` URL (see `parseUrl`). */
  readonly url: string
  /** SQLite: how long a statement waits for another connection's lock before SQLITE_BUSY. Default 5000 ms. */
  readonly busyTimeoutMs?: number | undefined
  /** PostgreSQL: bound on opening a connection, including the check when the layer is built. Default 5 seconds. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** PostgreSQL: pool size. Default 10 (node-postgres' default). */
  readonly maxConnections?: number | undefined
  /** PostgreSQL: `application_name` shown in `pg_stat_activity`. Default "strata". */
  readonly applicationName?: string | undefined
}

/**
 * The `SqlClient` for a SQLite file or PostgreSQL URL. Fails with `InvalidDatabaseUrl` or
 * `DatabaseUnavailable` (never a defect) when the database cannot be opened or reached, and with
 * `DriverMissing` when the driver for its kind is not installed. Its
 * transactions fail with the database's own error, never a defect (see `strataClient`).
 *
 * SQLite: WAL, `synchronous=NORMAL`, `busy_timeout`, `foreign_keys=ON`; the file's directory must
 * already exist. PostgreSQL: every pooled connection starts with `TimeZone=UTC` (sent as the
 * `options` startup parameter, appended after any `options` already in the URL), and the layer
 * connects once while being built so an unreachable server fails within `connectTimeout`.
 *
 * @since 0.1.0
 */
export const layer = (options: LayerOptions): Layer.Layer<SqlClient.SqlClient, DatabaseError> =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const parsed = yield* parseUrl(options.url)
      const client = yield* DatabaseUrl.$match(parsed, {
        Sqlite: ({ filename }) => openSqlite(filename, options),
        Pg: ({ url }) => openPg(url, options)
      })
      return Context.make(SqlClient.SqlClient, withSafeTransactions(client))
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * `layer` with the URL from `STRATA_DATABASE_URL` (default `./strata.db`).
 *
 * @since 0.1.0
 */
export const layerFromConfig = (
  options: Omit<LayerOptions, "url"> = {}
): Layer.Layer<SqlClient.SqlClient, DatabaseError | ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.string("STRATA_DATABASE_URL").pipe(Config.withDefault("./strata.db")),
      (url) => layer({ ...options, url })
    )
  )

const defaultBusyTimeoutMs = 5000

const openSqlite = (filename: string, options: LayerOptions) =>
  Effect.gen(function*() {
    const unavailable = (reason: string, cause: unknown) => new DatabaseUnavailable({ url: filename, reason, cause })
    if (filename !== ":memory:" && filename !== "") {
      const directory = Path.dirname(Path.resolve(filename))
      if (!isDirectory(directory)) {
        return yield* unavailable(`directory ${directory} does not exist`, undefined)
      }
    }
    const { SqliteClient } = yield* loadDriver("sqlite", importSqlite, (cause) =>
      unavailable(`cannot load the SQLite driver: ${failureText(cause)}`, cause))
    // better-sqlite3 throws synchronously (missing permissions, not a database): catch it as a typed error.
    const client = yield* SqliteClient.make({ filename }).pipe(
      Effect.catchAllDefect((cause) => unavailable(failureText(cause), cause))
    )
    const busyTimeoutMs = options.busyTimeoutMs ?? defaultBusyTimeoutMs
    // SqliteClient opens exactly one better-sqlite3 connection and serialises every query and
    // transaction onto it, so per-connection pragmas set once here hold for all of them.
    const journalMode = yield* Effect.gen(function*() {
      yield* client.unsafe("PRAGMA synchronous = NORMAL")
      yield* client.unsafe(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(busyTimeoutMs))}`)
      yield* client.unsafe("PRAGMA foreign_keys = ON")
      // Reading the schema proves the file is a readable database before anyone relies on it.
      yield* client.unsafe("SELECT count(*) FROM sqlite_master")
      const rows = yield* client.unsafe<{ journal_mode: string }>("PRAGMA journal_mode")
      return rows[0]?.journal_mode
    }).pipe(
      Effect.mapError((cause) => unavailable(failureText(cause), cause)),
      Effect.catchAllDefect((cause) => unavailable(failureText(cause), cause))
    )
    if (journalMode !== "wal" && filename !== ":memory:" && filename !== "") {
      yield* Effect.logWarning("SQLite did not switch to WAL; concurrent readers will block writers").pipe(
        Effect.annotateLogs({ database: filename, journal_mode: journalMode ?? "unknown" })
      )
    }
    yield* Effect.logDebug("database opened").pipe(Effect.annotateLogs({ database: filename, dialect: "sqlite" }))
    return client
  })

const isDirectory = (path: string): boolean => {
  try {
    return Fs.statSync(path).isDirectory()
  } catch {
    return false
  }
}

const defaultConnectTimeout = Duration.seconds(5)

const openPg = (url: string, options: LayerOptions) =>
  Effect.gen(function*() {
    const redacted = redact(url)
    const connectTimeout = Duration.decode(options.connectTimeout ?? defaultConnectTimeout)
    const unavailable = (cause: unknown) => {
      const text = failureText(cause)
      // PgClient's own check and node-postgres' connectionTimeoutMillis race; both mean the same to the caller.
      const reason = /timed out|timeout/i.test(text)
        ? `no answer within ${Duration.format(connectTimeout)} (connect timeout)`
        : text
      return new DatabaseUnavailable({ url: redacted, reason, cause })
    }
    const { Pg, PgClient } = yield* loadDriver("pg", importPg, (cause) =>
      new DatabaseUnavailable({ url: redacted, reason: `cannot load the PostgreSQL driver: ${failureText(cause)}`, cause }))
    const client = yield* PgClient.make({
      url: Redacted.make(withStartupOptions(url, "-c TimeZone=UTC")),
      connectTimeout,
      applicationName: options.applicationName ?? "strata",
      types: pgTypes(Pg),
      ...(options.maxConnections != null ? { maxConnections: options.maxConnections } : {})
    }).pipe(
      Effect.mapError(unavailable),
      Effect.catchAllDefect((cause) => Effect.fail(unavailable(cause)))
    )
    yield* Effect.logDebug("database opened").pipe(Effect.annotateLogs({ database: redacted, dialect: "pg" }))
    return client
  })

/**
 * node-postgres returns BIGINT (`count(*)`, epoch-ms columns) as strings; SQLite returns numbers.
 * Parse int8 to a number when it is a safe integer (every epoch ms and count is), else a bigint,
 * so services see the same values on both engines and nothing is silently rounded.
 */
const pgTypes = (pg: typeof Pg): Pg.CustomTypesConfig => ({
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 && format !== "binary"
      ? (text: string) => {
        const value = Number(text)
        return Number.isSafeInteger(value) ? value : BigInt(text)
      }
      : pg.types.getTypeParser(oid, format ?? "text")) as Pg.CustomTypesConfig["getTypeParser"]
})

/**
 * Appends `-c name=value` settings to the URL's `options` query parameter (the libpq/node-postgres
 * startup parameter), keeping any options already there. Later settings win, so ours go last.
 */
const withStartupOptions = (url: string, setting: string): string => {
  const hashAt = url.indexOf("#")
  const withoutHash = hashAt < 0 ? url : url.slice(0, hashAt)
  const queryAt = withoutHash.indexOf("?")
  const base = queryAt < 0 ? withoutHash : withoutHash.slice(0, queryAt)
  const params = new URLSearchParams(queryAt < 0 ? "" : withoutHash.slice(queryAt + 1))
  const existing = params.get("options")
  params.set("options", existing != null && existing.trim() !== "" ? `${existing} ${setting}` : setting)
  // URLSearchParams writes spaces as "+", which pg-connection-string decodes back to spaces.
  return `${base}?${params.toString()}`
}

/**
 * Which engine the current `SqlClient` talks to; the one way strata services branch on dialect.
 *
 * @since 0.1.0
 */
export const dialect: Effect.Effect<"sqlite" | "pg", never, SqlClient.SqlClient> = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql.onDialectOrElse({
      sqlite: () => Effect.succeed("sqlite" as const),
      pg: () => Effect.succeed("pg" as const),
      orElse: () => Effect.dieMessage("strata supports only SQLite and PostgreSQL clients")
    })
)

/**
 * Runs `create` (DDL of strata's own tables, `CREATE TABLE IF NOT EXISTS` and the like) so that
 * processes started together take turns: on PostgreSQL in one transaction under the
 * transaction-scoped advisory lock named `lock` (two concurrent `CREATE TABLE IF NOT EXISTS` of one
 * table race, and the loser fails on pg_type's unique index); on SQLite as it is (its write lock
 * serialises writers already).
 *
 * @since 0.2.0
 * @category tables
 */
export const createInTurn = <A, E, R>(
  lock: string,
  create: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  Effect.gen(function*() {
    if ((yield* dialect) !== "pg") return yield* create
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(
      Effect.zipRight(sql`SELECT pg_advisory_xact_lock(hashtext(${lock}))`, create)
    )
  })

/**
 * The client strata's own statements run on: the app's client without its name transforms.
 *
 * An app's client may rename columns in results (`transformResultNames: String.snakeToCamel`)
 * and identifiers in queries (`transformQueryNames`). strata reads and writes real column names
 * (`created_at`, `strata_jobs.updated_at_ms`), so every service takes this client once, when it is
 * built (or when a module-level effect starts), and runs all of its statements on it. It shares the
 * app's connections and transactions; only the renaming is off. Rows strata hands back to the app
 * keep the app's naming. Statements still name identifiers through `Identifier.quote`, never
 * through `sql(name)` or `sql.insert`, which a query-name transform alone would rewrite.
 *
 * Its `withTransaction` keeps a transaction's own failure when the ROLLBACK after it fails too (a
 * lost connection), and reports a failed COMMIT (a full disk) as a typed `SqlError`; @effect/sql's
 * turns both into defects that hide the cause.
 *
 * @since 0.2.0
 * @category clients
 */
export const strataClient: Effect.Effect<SqlClient.SqlClient, never, SqlClient.SqlClient> = Effect.map(
  SqlClient.SqlClient,
  (sql) => withSafeTransactions(sql.withoutTransforms())
)

/**
 * Runs `effect` with the app's `SqlClient` replaced by `strataClient` (no name transforms).
 *
 * @since 0.2.0
 * @category clients
 */
export const withStrataClient = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | SqlClient.SqlClient> =>
  Effect.flatMap(strataClient, (sql) => Effect.provideService(effect, SqlClient.SqlClient, sql))

/**
 * The schema strata's own tables (`strata_migrations`, `strata_jobs`, `strata_rejects`) live in.
 * `undefined` (the default) leaves them unqualified: the connection's current schema
 * (PostgreSQL's `search_path`; SQLite's main database). Set it with `layerStrataSchema`.
 *
 * @since 0.2.0
 * @category references
 */
export class StrataSchema extends Context.Reference<StrataSchema>()("@strata/sql/Database/StrataSchema", {
  defaultValue: (): Identifier.Identifier | undefined => undefined
}) {}

/**
 * The schema named for strata's own tables is not a valid identifier.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidStrataSchema extends Schema.TaggedError<InvalidStrataSchema>()("InvalidStrataSchema", {
  schema: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid schema for strata's tables ${JSON.stringify(this.schema)}: ${this.reason}`
  }
}

/**
 * Keeps strata's own tables in `schema` (it must exist; strata creates tables, not schemas).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerStrataSchema = (schema: string): Layer.Layer<StrataSchema, InvalidStrataSchema> =>
  Layer.unwrapEffect(
    Either.match(Identifier.decode(schema), {
      onLeft: () =>
        Effect.fail(new InvalidStrataSchema({ schema, reason: "expected a SQL identifier (letters, digits and _, not starting with a digit)" })),
      onRight: (name) => Effect.succeed(Layer.succeed(StrataSchema, name))
    })
  )

/**
 * The name of one of strata's own tables, qualified with `StrataSchema` when one is set.
 *
 * @since 0.2.0
 * @category references
 */
export const strataTable = (
  table: "strata_migrations" | "strata_jobs" | "strata_rejects" | "strata_verifications" | "strata_indexes"
): Effect.Effect<Identifier.TableName> =>
  Effect.map(StrataSchema, (schema) => Identifier.qualify(schema, table as Identifier.Identifier))

// SqliteClient.TypeId, spelled out so that checking a client never loads the SQLite driver.
const sqliteClientTypeId: SqliteClient.TypeId = Symbol.for("@effect/sql-sqlite-node/SqliteClient") as SqliteClient.TypeId

const asSqliteClient = (sql: SqlClient.SqlClient): SqliteClient.SqliteClient | undefined =>
  sqliteClientTypeId in sql ? (sql as SqliteClient.SqliteClient) : undefined

/**
 * An online, consistent copy of the live SQLite database to `destinationPath` (SQLite's backup API;
 * writers keep going meanwhile). Refuses an existing destination (`BackupDestinationExists`),
 * fails with `BackupUnsupported` on PostgreSQL (use pg_dump), and removes a partial copy on failure.
 *
 * @since 0.1.0
 */
export const backup = (destinationPath: string): Effect.Effect<void, BackupError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sqlite = asSqliteClient(sql)
    if (sqlite === undefined) {
      return yield* new BackupUnsupported({ dialect: yield* dialect })
    }
    const destination = Path.resolve(destinationPath)
    // Creating the file exclusively first closes the race where another process creates it between our check and the copy.
    yield* Effect.try({
      try: () => Fs.closeSync(Fs.openSync(destination, "wx")),
      catch: (cause) =>
        (cause as { readonly code?: unknown }).code === "EEXIST"
          ? new BackupDestinationExists({ destination })
          : new BackupFailed({ destination, reason: failureText(cause), cause })
    })
    const metadata = yield* sqlite.backup(destination).pipe(
      Effect.catchAllDefect((cause) => Effect.fail(cause)),
      Effect.mapError((cause) => new BackupFailed({ destination, reason: failureText(cause), cause })),
      // onError also runs on interruption, so an abandoned copy is removed too.
      Effect.onError(() => Effect.sync(() => removeQuietly(destination)))
    )
    yield* Effect.logInfo("database backed up").pipe(
      Effect.annotateLogs({ destination, pages: metadata.totalPages })
    )
  }).pipe(Effect.withSpan("Database.backup", { attributes: { destination: destinationPath } }))

const removeQuietly = (path: string): void => {
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    try {
      Fs.rmSync(file, { force: true })
    } catch {
      continue
    }
  }
}
