/**
 * Real databases for tests: a fresh SQLite file in a fresh temp dir, and the test PostgreSQL at
 * `STRATA_TEST_PG_URL` in a fresh schema (`strata_t_<random>`, every connection's `search_path`
 * pointing at it, dropped CASCADE at scope end) so test files running in parallel never see each
 * other's tables.
 *
 * House rule: a PostgreSQL test never skips. vitest's globalSetup (`globalPostgres.ts`) starts a
 * throwaway server when `STRATA_TEST_PG_URL` is not set, so the suite runs on any machine.
 *
 * Usage (from packages/<pkg>/test/*.test.ts; from test/*.test.ts use "./support/databases.js"):
 *
 *   import { describe, expect, layer } from "@effect/vitest"
 *   import { describeEachEngine, describePg, pgTestLayer, sqliteTestLayer } from "../../../test/support/databases.js"
 *
 *   // one engine
 *   layer(sqliteTestLayer())("Migrator on SQLite", (it) => {
 *     it.effect("applies each migration once", () => Effect.gen(function* () { ... }))
 *   })
 *   describePg("Migrator on Postgres", () => {
 *     layer(pgTestLayer())((it) => { it.effect(...) })
 *   })
 *
 *   // the same body on both engines (suites are named "Migrator [sqlite]" and "Migrator [pg]")
 *   describeEachEngine("Migrator", (engine) => {
 *     layer(engine.layer())((it) => {
 *       it.effect("applies each migration once", () => Effect.gen(function* () { ... }))
 *     })
 *   })
 *
 *   // a file or URL for a child process (the CLI), cleaned up when the test's scope closes
 *   it.scoped("cli", () => Effect.gen(function* () {
 *     const file = yield* tempSqliteFile()
 *     const { url } = yield* pgTestUrlWithSchema()
 *   }))
 *
 * A `layer(...)` shares one database across the tests inside it (built in beforeAll, closed in
 * afterAll); build a layer per test (`Effect.provide(sqliteTestLayer())`) when tests must not
 * share tables.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Database } from "@strata/sql"
import { type Context, Deferred, Effect, Exit, Fiber, Layer, Redacted, Scope, String as Str } from "effect"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, it } from "vitest"

/**
 * The test PostgreSQL URL. `test/support/globalPostgres.ts` (vitest's globalSetup) sets it,
 * starting a throwaway server when the environment does not name one, so it is always there in a
 * test run; outside one (a test file run by hand without vitest's config) this throws, and the
 * PostgreSQL tests fail rather than skip.
 */
export const pgTestUrl = (): string => {
  const url = process.env["STRATA_TEST_PG_URL"]
  if (url != null && url.trim() !== "") return url
  throw new Error(
    "STRATA_TEST_PG_URL is not set: run the tests through vitest with the repository's vitest.config.ts (its globalSetup starts a PostgreSQL), or set it (e.g. postgres://postgres@127.0.0.1:55432/postgres)"
  )
}

/** `describe` for PostgreSQL-only suites (never skipped: see `pgTestUrl`). */
export const describePg = (name: string, body: () => void): void => {
  describe(name, body)
}

/** Plain vitest `it` for one PostgreSQL-only test (never skipped: see `pgTestUrl`). */
export const itPg = (name: string, body: () => unknown, timeoutMs?: number): void => {
  it(name, async () => {
    await body()
  }, timeoutMs)
}

/** A fresh temp directory, removed with everything in it when the scope closes. */
export const tempDirectory: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-test-"))),
  (directory) => Effect.sync(() => Fs.rmSync(directory, { recursive: true, force: true }))
)

/** A path for a SQLite file (not yet created) in a fresh temp directory removed at scope end. */
export const tempSqliteFile = (fileName = "strata.db"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.map(tempDirectory, (directory) => Path.join(directory, fileName))

/** `tempSqliteFile` for plain (non-Effect) tests: call `remove()` when done (e.g. in `onTestFinished`). */
export const tempSqliteFileSync = (fileName = "strata.db"): { readonly path: string; readonly remove: () => void } => {
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-test-"))
  return {
    path: Path.join(directory, fileName),
    remove: () => Fs.rmSync(directory, { recursive: true, force: true })
  }
}

/** A `SqlClient` over a fresh SQLite file (via `Database.layer`) in a temp dir removed at scope end. */
export const sqliteTestLayer = (
  options: Omit<Database.LayerOptions, "url"> = {}
): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapScoped(Effect.map(tempSqliteFile(), (url) => Database.layer({ ...options, url }))).pipe(Layer.orDie)

/** A fresh Postgres schema and a URL whose connections use it as `search_path`. */
export interface PgTestSchema {
  readonly schema: string
  readonly url: string
}

const withSearchPath = (url: string, schema: string): string => {
  const parsed = new URL(url)
  const existing = parsed.searchParams.get("options")
  const setting = `-c search_path=${schema}`
  parsed.searchParams.set("options", existing != null && existing !== "" ? `${existing} ${setting}` : setting)
  return parsed.toString()
}

const runAsAdmin = (url: string, statement: string): Effect.Effect<void> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
    Effect.provide(Database.layer({ url, maxConnections: 1 })),
    Effect.orDie
  )

/**
 * Creates schema `strata_t_<random>` in the test Postgres and returns it with a URL whose every
 * connection has `search_path` set to it (node-postgres sends the URL's `options` parameter at
 * connect); the schema is dropped CASCADE when the scope closes. Dies when Postgres is not configured.
 */
export const pgTestUrlWithSchema = (): Effect.Effect<PgTestSchema, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = yield* Effect.sync(pgTestUrl)
    const schema = `strata_t_${randomUUID().replace(/-/g, "").slice(0, 16)}`
    yield* Effect.acquireRelease(
      runAsAdmin(url, `CREATE SCHEMA "${schema}"`),
      () => runAsAdmin(url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    )
    return { schema, url: withSearchPath(url, schema) }
  })

/**
 * A fresh PostgreSQL database of its own (`strata_d_<random>`) on the test server, dropped (with
 * its connections) at scope end: for tests that act on every connection to a database, such as
 * terminating its backends, without touching anyone else's.
 */
export const pgTestDatabase = (): Effect.Effect<{ readonly database: string; readonly url: string }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = yield* Effect.sync(pgTestUrl)
    const database = `strata_d_${randomUUID().replace(/-/g, "").slice(0, 16)}`
    yield* Effect.acquireRelease(
      runAsAdmin(url, `CREATE DATABASE "${database}"`),
      () => runAsAdmin(url, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`)
    )
    const parsed = new URL(url)
    parsed.pathname = `/${database}`
    return { database, url: parsed.toString() }
  })

/**
 * `effect` as `processes` processes started together would run it: each on a client of its own (a pool of
 * one connection, opened beforehand, since connecting alone spreads starts by more than a CREATE TABLE
 * takes), all let go at one signal. Each outcome is "ok" or its error's message, in order: for tests of
 * strata's own tables created by workers that start at once (two CREATE TABLE IF NOT EXISTS of one table
 * race on pg_type's unique index). `maxConnections` per client: more than one for an effect that holds a
 * connection while it runs statements on others.
 */
export const startedTogether = <A, E extends { readonly message: string }>(
  url: string,
  processes: number,
  effect: Effect.Effect<A, E, SqlClient.SqlClient>,
  maxConnections = 1
): Effect.Effect<ReadonlyArray<string>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const clients = yield* Effect.forEach(
      Array.from({ length: processes }),
      () =>
        Effect.tap(
          Effect.orDie(Layer.build(Database.layer({ url, maxConnections }))),
          (context) => Effect.provide(Effect.orDie(Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)), context)
        ),
      { concurrency: "unbounded" }
    )
    const start = yield* Deferred.make<void>()
    const outcomes = yield* Effect.fork(Effect.all(
      clients.map((context) =>
        Effect.zipRight(
          Deferred.await(start),
          Effect.match(Effect.provide(effect, context), { onFailure: (error) => error.message, onSuccess: () => "ok" })
        )
      ),
      { concurrency: "unbounded" }
    ))
    yield* Deferred.succeed(start, undefined)
    return yield* Fiber.join(outcomes)
  })

/** `pgTestUrlWithSchema` for plain (non-Effect) tests: `await drop()` when done. */
export const createPgTestSchema = async (): Promise<PgTestSchema & { readonly drop: () => Promise<void> }> => {
  const scope = Effect.runSync(Scope.make())
  const created = await Effect.runPromise(Scope.extend(pgTestUrlWithSchema(), scope))
  return { ...created, drop: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** A `SqlClient` over the test Postgres (via `Database.layer`) in a fresh schema dropped at scope end. */
export const pgTestLayer = (
  options: Omit<Database.LayerOptions, "url"> = {}
): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapScoped(
    Effect.map(pgTestUrlWithSchema(), ({ url }) => Database.layer({ ...options, url }))
  ).pipe(Layer.orDie)

/**
 * How an application opens its own client, as opposed to `Database.layer`: the driver's layer
 * with the app's options only (no strata pragmas, no UTC session, PostgreSQL BIGINT as text).
 * `camelCase` adds the name transforms many Effect apps use (`snakeToCamel` on results,
 * `camelToSnake` on query identifiers).
 */
export interface AppClientOptions {
  readonly camelCase?: boolean
}

const appTransforms = (options: AppClientOptions) =>
  options.camelCase === true ? { transformResultNames: Str.snakeToCamel, transformQueryNames: Str.camelToSnake } : {}

/** The app's own SQLite client over a fresh file in a temp dir removed at scope end. */
export const sqliteAppLayer = (options: AppClientOptions = {}): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapScoped(
    Effect.map(tempSqliteFile("app.db"), (filename) => SqliteClient.layer({ filename, ...appTransforms(options) }))
  ).pipe(Layer.orDie)

/** The app's own PostgreSQL client in a fresh schema (its `search_path`), dropped at scope end. */
export const pgAppLayer = (options: AppClientOptions = {}): Layer.Layer<SqlClient.SqlClient> =>
  Layer.unwrapScoped(
    Effect.map(pgTestUrlWithSchema(), ({ url }) => PgClient.layer({ url: Redacted.make(url), ...appTransforms(options) }))
  ).pipe(Layer.orDie)

/**
 * Two fresh PostgreSQL schemas: `url`'s connections use `home` as their `search_path` (where
 * unqualified names, strata's own tables by default, land), and `schema` is NOT on it, so a plan
 * must name its tables `schema.table`. Both dropped CASCADE at scope end.
 */
export const pgForeignSchema = (): Effect.Effect<PgTestSchema & { readonly home: string }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const home = yield* pgTestUrlWithSchema()
    const url = yield* Effect.sync(pgTestUrl)
    const schema = `strata_app_${randomUUID().replace(/-/g, "").slice(0, 16)}`
    yield* Effect.acquireRelease(
      runAsAdmin(url, `CREATE SCHEMA "${schema}"`),
      () => runAsAdmin(url, `DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    )
    return { schema, url: home.url, home: home.schema }
  })

/** One engine a test body can run on. */
export interface Engine {
  readonly name: "sqlite" | "pg"
  readonly layer: (options?: Omit<Database.LayerOptions, "url">) => Layer.Layer<SqlClient.SqlClient>
  /** The app's own client on this engine (see `AppClientOptions`). */
  readonly appLayer: (options?: AppClientOptions) => Layer.Layer<SqlClient.SqlClient>
}

/** Both engines, SQLite first. */
export const engines: ReadonlyArray<Engine> = [
  { name: "sqlite", layer: sqliteTestLayer, appLayer: sqliteAppLayer },
  { name: "pg", layer: pgTestLayer, appLayer: pgAppLayer }
]

/** Registers `body` once per engine as suites "`name` [sqlite]" and "`name` [pg]". */
export const describeEachEngine = (name: string, body: (engine: Engine) => void): void => {
  for (const engine of engines) {
    describe(`${name} [${engine.name}]`, () => body(engine))
  }
}

/**
 * An app transaction on `session` that ran `statement` (say an INSERT, so it holds a lock on the
 * table) and stays open until `release`, which commits it. Closing the scope releases it too, so a
 * failing assertion never leaves it, and whatever waits for it, open.
 */
export const openTransaction = (
  session: Context.Context<SqlClient.SqlClient>,
  statement: string
): Effect.Effect<{ readonly release: Effect.Effect<void> }, never, Scope.Scope> =>
  Effect.gen(function*() {
    const holding = yield* Deferred.make<void>()
    const done = yield* Deferred.make<void>()
    const fiber = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(statement)
        yield* Deferred.succeed(holding, undefined)
        yield* Deferred.await(done)
      }))).pipe(Effect.provide(session), Effect.orDie, Effect.fork)
    yield* Deferred.await(holding)
    yield* Effect.addFinalizer(() => Deferred.succeed(done, undefined))
    return { release: Effect.zipRight(Deferred.succeed(done, undefined), Fiber.join(fiber)) }
  })
