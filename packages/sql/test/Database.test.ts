import { describe, expect, it, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import { ConfigProvider, Console, Effect, Either, LogLevel } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import {
  createPgTestSchema,
  describeEachEngine,
  describePg,
  itPg,
  pgTestLayer,
  pgTestUrl,
  pgTestUrlWithSchema,
  sqliteTestLayer,
  tempDirectory,
  tempSqliteFile
} from "../../../test/support/databases.js"
import { Database, Logging } from "../src/index.js"

const sqliteFile = (url: string) => Either.map(Database.parseUrl(url), (parsed) => parsed._tag === "Sqlite" ? parsed.filename : `not sqlite: ${parsed._tag}`)

const firstValue = (sql: SqlClient.SqlClient, statement: string) =>
  Effect.map(sql.unsafe(statement).values, (rows) => rows[0]?.[0])

describe("Database.parseUrl", () => {
  it("reads file paths and sqlite: URLs as SQLite files", () => {
    expect(sqliteFile("./data/app.db")).toEqual(Either.right("./data/app.db"))
    expect(sqliteFile("app.db")).toEqual(Either.right("app.db"))
    expect(sqliteFile("/srv/strata/app.db")).toEqual(Either.right("/srv/strata/app.db"))
    expect(sqliteFile(":memory:")).toEqual(Either.right(":memory:"))
    expect(sqliteFile("sqlite::memory:")).toEqual(Either.right(":memory:"))
    expect(sqliteFile("sqlite:./x.db")).toEqual(Either.right("./x.db"))
    expect(sqliteFile("sqlite:x.db")).toEqual(Either.right("x.db"))
    expect(sqliteFile("sqlite:/abs/x.db")).toEqual(Either.right("/abs/x.db"))
    expect(sqliteFile("sqlite:///abs/path.db")).toEqual(Either.right("/abs/path.db"))
    expect(sqliteFile("SQLITE:///abs/path.db")).toEqual(Either.right("/abs/path.db"))
    expect(sqliteFile("file:///tmp/a%20b.db")).toEqual(Either.right("/tmp/a b.db"))
    expect(sqliteFile("C:\\data\\x.db")).toEqual(Either.right("C:\\data\\x.db"))
    expect(sqliteFile("./odd:name.db")).toEqual(Either.right("./odd:name.db"))
  })

  it("reads postgres:// and postgresql:// URLs as PostgreSQL, unchanged", () => {
    for (const url of [
      "postgres://strata:secret@db.example:5432/app",
      "postgresql://strata@127.0.0.1/app?sslmode=require",
      "postgres://strata@/app?host=/run/postgresql"
    ]) {
      expect(Database.parseUrl(url)).toEqual(Either.right(Database.DatabaseUrl.Pg({ url })))
    }
  })

  it("rejects other schemes, empty input and ambiguous sqlite:// with a typed, redacted error", () => {
    const reject = (url: string) => Either.getLeft(Database.parseUrl(url)).pipe((left) => left._tag === "Some" ? left.value : undefined)
    const mysql = reject("mysql://root:hunter2@localhost/app")
    expect(mysql).toBeInstanceOf(Database.InvalidDatabaseUrl)
    expect(mysql?.url).toBe("mysql://root:***@localhost/app")
    expect(mysql?.message).toBe(
      `Invalid database URL "mysql://root:***@localhost/app": unsupported scheme "mysql:"; strata supports SQLite (a file path or sqlite:PATH) and PostgreSQL (postgres://…)`
    )
    expect(reject("")?.reason).toBe("it is empty; give a SQLite file path or a postgres:// URL")
    expect(reject("   ")?._tag).toBe("InvalidDatabaseUrl")
    expect(reject("sqlite://x.db")?.reason).toBe(
      "sqlite:// must be followed by an absolute path (sqlite:///abs/app.db); for a relative path write sqlite:app.db"
    )
    expect(reject("sqlite:")?.reason).toBe("no file path after sqlite:")
    expect(reject("postgres:app")?.reason).toBe("expected postgres://[user[:password]@]host[:port]/database")
    expect(reject("postgres://u:pw@[bad/app")?.url).toBe("postgres://u:***@[bad/app")
  })
})

describe("Database.redact", () => {
  it("replaces passwords and nothing else", () => {
    expect(Database.redact("postgres://u:secret@h:5432/db")).toBe("postgres://u:***@h:5432/db")
    expect(Database.redact("postgres://u:p@ss@h/db")).toBe("postgres://u:***@h/db")
    expect(Database.redact("postgres://u:@h/db")).toBe("postgres://u:***@h/db")
    expect(Database.redact("postgres://u@h/db")).toBe("postgres://u@h/db")
    expect(Database.redact("postgres://h/db?password=secret&sslmode=require")).toBe(
      "postgres://h/db?password=***&sslmode=require"
    )
    expect(Database.redact("./data/app.db")).toBe("./data/app.db")
  })
})

describe("Database.layer on SQLite", () => {
  layer(sqliteTestLayer())((it) => {
    it.effect("sets WAL, synchronous=NORMAL, busy_timeout=5000 and foreign_keys=ON, also inside transactions", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const pragmas = Effect.all({
          journalMode: firstValue(sql, "PRAGMA journal_mode"),
          synchronous: firstValue(sql, "PRAGMA synchronous"),
          busyTimeout: firstValue(sql, "PRAGMA busy_timeout"),
          foreignKeys: firstValue(sql, "PRAGMA foreign_keys")
        })
        const expected = { journalMode: "wal", synchronous: 1, busyTimeout: 5000, foreignKeys: 1 }
        expect(yield* pragmas).toEqual(expected)
        expect(yield* sql.withTransaction(pragmas)).toEqual(expected)
      }))

    it.effect("enforces foreign keys", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE fk_parent (id INTEGER PRIMARY KEY)`
        yield* sql`CREATE TABLE fk_child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES fk_parent (id))`
        const orphan = yield* Effect.flip(sql`INSERT INTO fk_child (id, parent_id) VALUES (1, 42)`)
        expect(String(orphan.cause)).toContain("FOREIGN KEY constraint failed")
        expect(yield* firstValue(sql, "SELECT count(*) FROM fk_child")).toBe(0)
      }))

    it.effect("reports the sqlite dialect", () =>
      Effect.gen(function*() {
        expect(yield* Database.dialect).toBe("sqlite")
      }))
  })

  it.scoped("takes busy_timeout from the options", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      expect(yield* firstValue(sql, "PRAGMA busy_timeout")).toBe(1234)
    }).pipe(Effect.provide(sqliteTestLayer({ busyTimeoutMs: 1234 }))))

  it.scoped("names the missing directory in a typed error", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      const file = Path.join(directory, "missing", "app.db")
      const error = yield* Effect.flip(Effect.provide(Database.dialect, Database.layer({ url: file })))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toBe(`Cannot open database ${file}: directory ${Path.join(directory, "missing")} does not exist`)
      expect(Fs.existsSync(Path.join(directory, "missing"))).toBe(false)
    }))

  it.scoped("reports a file that is not a database as a typed error naming it", () =>
    Effect.gen(function*() {
      const file = yield* tempSqliteFile("notes.db")
      Fs.writeFileSync(file, "these are notes, not a database\n".repeat(200))
      const error = yield* Effect.flip(Effect.provide(Database.dialect, Database.layer({ url: file })))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toBe(`Cannot open database ${file}: file is not a database (SQLITE_NOTADB)`)
    }))

  it.scoped("fails with InvalidDatabaseUrl for an unsupported URL", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.provide(Database.dialect, Database.layer({ url: "mysql://a:b@h/db" })))
      expect(error._tag).toBe("InvalidDatabaseUrl")
      expect(error.message).toContain("mysql://a:***@h/db")
    }))

  it.scoped("layerFromConfig opens STRATA_DATABASE_URL", () =>
    Effect.gen(function*() {
      const file = yield* tempSqliteFile("configured.db")
      const dialect = yield* Database.dialect.pipe(
        Effect.provide(Database.layerFromConfig()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["STRATA_DATABASE_URL", `sqlite:${file}`]])))
      )
      expect(dialect).toBe("sqlite")
      expect(Fs.existsSync(file)).toBe(true)
    }))
})

describe("Database.backup on SQLite", () => {
  it.scoped("copies the live database, including rows still in the WAL", () =>
    Effect.gen(function*() {
      const source = yield* tempSqliteFile("live.db")
      const destination = Path.join(Path.dirname(source), "copy.db")
      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`
        yield* sql`INSERT INTO notes ${sql.insert([{ id: 1, body: "first" }, { id: 2, body: "second" }, { id: 3, body: "" }])}`
        expect(Fs.statSync(`${source}-wal`).size).toBeGreaterThan(0)
        yield* Database.backup(destination)
        // The source stays usable after the copy.
        yield* sql`INSERT INTO notes (id, body) VALUES (4, 'after')`
      }).pipe(Effect.provide(Database.layer({ url: source })))

      const copied = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ id: number; body: string }>`SELECT id, body FROM notes ORDER BY id`
      }).pipe(Effect.provide(Database.layer({ url: destination })))
      expect(copied).toEqual([{ id: 1, body: "first" }, { id: 2, body: "second" }, { id: 3, body: "" }])
    }))

  layer(sqliteTestLayer())((it) => {
    it.scoped("refuses an existing destination and leaves it untouched", () =>
      Effect.gen(function*() {
        const directory = yield* tempDirectory
        const destination = Path.join(directory, "existing.db")
        Fs.writeFileSync(destination, "keep me")
        const error = yield* Effect.flip(Database.backup(destination))
        expect(error).toBeInstanceOf(Database.BackupDestinationExists)
        expect(error.message).toBe(
          `Backup destination ${destination} already exists; choose a new file name (it is never overwritten)`
        )
        expect(Fs.readFileSync(destination, "utf8")).toBe("keep me")
      }))

    it.scoped("names the destination when its directory is missing", () =>
      Effect.gen(function*() {
        const directory = yield* tempDirectory
        const destination = Path.join(directory, "nowhere", "copy.db")
        const error = yield* Effect.flip(Database.backup(destination))
        expect(error._tag).toBe("BackupFailed")
        expect(error.message).toMatch(new RegExp(`^Backup to ${destination} failed: ENOENT`))
      }))
  })
})

describe("Logging", () => {
  const captureConsole = Effect.gen(function*() {
    const real = yield* Effect.console
    const stderr: Array<string> = []
    const stdout: Array<string> = []
    const console: Console.Console = {
      ...real,
      unsafe: {
        ...real.unsafe,
        error: (...args: ReadonlyArray<unknown>) => void stderr.push(args.map(String).join(" ")),
        log: (...args: ReadonlyArray<unknown>) => void stdout.push(args.map(String).join(" ")),
        group: () => undefined,
        groupEnd: () => undefined
      }
    }
    return { console, stderr, stdout }
  })

  it.effect("json writes one parseable line per log to stderr, with annotations and spans, above the level", () =>
    Effect.gen(function*() {
      const { console, stderr, stdout } = yield* captureConsole
      yield* Effect.gen(function*() {
        yield* Effect.logDebug("hidden below info")
        yield* Effect.logInfo("batch done").pipe(
          Effect.annotateLogs({ job: "created_at_ms", batch: 0 }),
          Effect.withLogSpan("backfill")
        )
        yield* Effect.logWarning("slow batch")
      }).pipe(Effect.provide(Logging.layer({ format: "json", level: "info" })), Effect.withConsole(console))
      expect(stdout).toEqual([])
      expect(stderr).toHaveLength(2)
      const [first, second] = stderr.map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(first).toMatchObject({
        message: "batch done",
        logLevel: "INFO",
        annotations: { job: "created_at_ms", batch: 0 }
      })
      expect(Object.keys(first?.["spans"] as object)).toEqual(["backfill"])
      expect(second).toMatchObject({ message: "slow batch", logLevel: "WARN", annotations: {} })
      expect(stderr.every((line) => !line.includes("\n"))).toBe(true)
    }))

  it.effect("pretty writes to stderr, never stdout", () =>
    Effect.gen(function*() {
      const { console, stderr, stdout } = yield* captureConsole
      yield* Effect.logInfo("migrated").pipe(
        Effect.annotateLogs({ migration_id: 7 }),
        Effect.provide(Logging.layer({ format: "pretty", level: LogLevel.Info })),
        Effect.withConsole(console)
      )
      expect(stdout).toEqual([])
      expect(stderr[0]).toMatch(/INFO .*: migrated$/)
      expect(stderr.slice(1)).toEqual(["migration_id: 7"])
    }))

  it("parseLevel reads level names and names a bad one", () => {
    expect(Logging.parseLevel("info")).toEqual(Either.right(LogLevel.Info))
    expect(Logging.parseLevel(" DEBUG ")).toEqual(Either.right(LogLevel.Debug))
    expect(Logging.parseLevel("warn")).toEqual(Either.right(LogLevel.Warning))
    expect(Logging.parseLevel("none")).toEqual(Either.right(LogLevel.None))
    const bad = Logging.parseLevel("verbose")
    expect(Either.isLeft(bad) && bad.left.message).toBe(
      `Unknown log level "verbose"; expected one of all, trace, debug, info, warning, warn, error, fatal, none`
    )
  })
})

// A port nothing listens on: bind an ephemeral port, then release it.
const closedPort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address != null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

// A server that accepts TCP connections and never answers, like a firewalled or hung database.
const silentServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Net.Server; readonly port: number; readonly sockets: Set<Net.Socket> }>((resume) => {
    const sockets = new Set<Net.Socket>()
    const server = Net.createServer((socket) => {
      sockets.add(socket)
      socket.on("error", () => undefined)
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resume(Effect.succeed({ server, sockets, port: typeof address === "object" && address != null ? address.port : 0 }))
    })
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
)

describe("Database.layer on PostgreSQL, failures", () => {
  it.live("an unreachable server is a prompt DatabaseUnavailable with the password redacted", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const error = yield* Effect.flip(
        Effect.provide(Database.dialect, Database.layer({ url: `postgres://strata:s3cret@127.0.0.1:${port}/app` }))
      ).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("layer build hung") }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toBe(
        `Cannot open database postgres://strata:***@127.0.0.1:${port}/app: connect ECONNREFUSED 127.0.0.1:${port}`
      )
      expect(error.message).not.toContain("s3cret")
    }))

  it.scopedLive("a server that never answers fails at the connect timeout", () =>
    Effect.gen(function*() {
      const { port } = yield* silentServer
      const error = yield* Effect.flip(
        Effect.provide(
          Database.dialect,
          Database.layer({ url: `postgres://strata:s3cret@127.0.0.1:${port}/app`, connectTimeout: "1 second" })
        )
      ).pipe(Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("layer build hung") }))
      expect(error._tag).toBe("DatabaseUnavailable")
      expect(error.message).toBe(
        `Cannot open database postgres://strata:***@127.0.0.1:${port}/app: no answer within 1s (connect timeout)`
      )
    }))
})

describePg("Database.layer on PostgreSQL", () => {
  layer(pgTestLayer())((it) => {
    it.effect("sets the session TimeZone to UTC on every connection, in and out of transactions", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // Concurrent transactions each hold their own pooled connection.
        const zones = yield* Effect.all(
          Array.from({ length: 4 }, () =>
            sql.withTransaction(Effect.zipLeft(firstValue(sql, "SHOW TimeZone"), sql`SELECT pg_sleep(0.05)`))
          ),
          { concurrency: "unbounded" }
        )
        expect(zones).toEqual(["UTC", "UTC", "UTC", "UTC"])
        expect(yield* firstValue(sql, "SHOW TimeZone")).toBe("UTC")
        const epochSeconds = yield* firstValue(
          sql,
          "SELECT extract(epoch FROM '2024-01-15 12:00:00'::timestamptz)::int AS s"
        )
        expect(epochSeconds).toBe(1705320000)
      }))

    it.effect("returns BIGINT as a number when safe (counts, epoch ms) and as a bigint beyond 2^53", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ n: unknown; ms: unknown; big: unknown }>`
          SELECT count(*) AS n, 1705320000123::bigint AS ms, 9007199254740993::bigint AS big FROM (VALUES (1), (2)) v(x)`
        expect(rows[0]).toEqual({ n: 2, ms: 1705320000123, big: 9007199254740993n })
      }))

    it.effect("reports the pg dialect and refuses backup with a pointer to pg_dump", () =>
      Effect.gen(function*() {
        expect(yield* Database.dialect).toBe("pg")
        const error = yield* Effect.flip(Database.backup("/tmp/never-written.db"))
        expect(error).toBeInstanceOf(Database.BackupUnsupported)
        expect(error.message).toBe("Online backup is only available for SQLite databases; for PostgreSQL (pg) use pg_dump")
        expect(Fs.existsSync("/tmp/never-written.db")).toBe(false)
      }))
  })

  it.scoped("keeps UTC even when the URL's options ask for another zone, and keeps the other options", () =>
    Effect.gen(function*() {
      const { schema, url } = yield* pgTestUrlWithSchema()
      const withZone = new URL(url)
      withZone.searchParams.set("options", `-c TimeZone=Asia/Shanghai ${withZone.searchParams.get("options")}`)
      const settings = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return [yield* firstValue(sql, "SHOW TimeZone"), yield* firstValue(sql, "SHOW search_path")]
      }).pipe(Effect.provide(Database.layer({ url: withZone.toString() })))
      expect(settings).toEqual(["UTC", schema])
    }))

  it.scoped("pgTestLayer gives each layer its own schema, dropped at scope end", () =>
    Effect.gen(function*() {
      const url = pgTestUrl() as string
      const inSchema = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) => Effect.provide(effect, pgTestLayer())
      const schemaName = Effect.flatMap(SqlClient.SqlClient, (sql) => firstValue(sql, "SELECT current_schema()"))

      const [first, visibleInSecond] = yield* inSchema(
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          yield* sql`CREATE TABLE isolation_probe (id int PRIMARY KEY)`
          yield* sql`INSERT INTO isolation_probe VALUES (1)`
          const name = yield* schemaName
          const other = yield* inSchema(
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              return [yield* schemaName, yield* firstValue(sql, "SELECT to_regclass('isolation_probe')::text")]
            })
          )
          expect(other[0]).not.toBe(name)
          return [name, other[1]] as const
        })
      )
      expect(first).toMatch(/^strata_t_[0-9a-f]{16}$/)
      expect(visibleInSecond).toBe(null)

      const remaining = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* firstValue(sql, `SELECT count(*)::int FROM pg_namespace WHERE nspname = '${String(first)}'`)
      }).pipe(Effect.provide(Database.layer({ url })))
      expect(remaining).toBe(0)
    }))
})

describeEachEngine("Database.dialect", (engine) => {
  layer(engine.layer())((it) => {
    it.effect("names the engine the test layer opened", () =>
      Effect.gen(function*() {
        expect(yield* Database.dialect).toBe(engine.name)
      }))
  })
})

itPg("createPgTestSchema gives plain tests a URL on a fresh schema and drops it", async () => {
  const created = await createPgTestSchema()
  const query = (url: string, statement: string) =>
    Effect.runPromise(
      Effect.flatMap(SqlClient.SqlClient, (sql) => firstValue(sql, statement)).pipe(
        Effect.provide(Database.layer({ url }))
      )
    )
  expect(await query(created.url, "SELECT current_schema()")).toBe(created.schema)
  await created.drop()
  const admin = pgTestUrl() as string
  expect(await query(admin, `SELECT count(*)::int FROM pg_namespace WHERE nspname = '${created.schema}'`)).toBe(0)
})

describeEachEngine("Database.strataClient", (engine) => {
  layer(engine.appLayer({ camelCase: true }))((it) => {
    it.effect("runs statements without the app's name transforms, on the app's connection and transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql.unsafe(`CREATE TABLE strata_client_probe (message_id INTEGER PRIMARY KEY, created_at TEXT)`)
        yield* sql.unsafe(`INSERT INTO strata_client_probe VALUES (1, '2024-01-15 12:00:00')`)
        const app = yield* sql.unsafe<Record<string, unknown>>(`SELECT message_id, created_at FROM strata_client_probe`)
        expect(Object.keys(app[0]!)).toEqual(["messageId", "createdAt"])
        const own = yield* Database.withStrataClient(
          Effect.flatMap(SqlClient.SqlClient, (s) => s.unsafe<Record<string, unknown>>(`SELECT message_id, created_at FROM strata_client_probe`))
        )
        expect(Object.keys(own[0]!)).toEqual(["message_id", "created_at"])
        // A transaction opened by the app spans strata's statements: its rollback undoes them too.
        yield* sql.withTransaction(
          Effect.zipRight(
            Database.withStrataClient(Effect.flatMap(SqlClient.SqlClient, (s) => s.unsafe(`DELETE FROM strata_client_probe`))),
            Effect.fail("roll back")
          )
        ).pipe(Effect.ignore)
        const left = yield* sql.unsafe<{ n: number | string }>(`SELECT count(*) AS n FROM strata_client_probe`)
        expect(Number(left[0]!.n)).toBe(1)
      }))
  })
})

describe("Database.StrataSchema", () => {
  it.effect("qualifies strata's own tables only when a schema is set, and refuses a bad schema name", () =>
    Effect.gen(function*() {
      expect(yield* Database.strataTable("strata_jobs")).toBe("strata_jobs")
      expect(yield* Effect.provide(Database.strataTable("strata_jobs"), Database.layerStrataSchema("ops"))).toBe("ops.strata_jobs")
      const bad = yield* Effect.flip(Effect.provide(Database.strataTable("strata_jobs"), Database.layerStrataSchema("ops; drop")))
      expect(bad._tag).toBe("InvalidStrataSchema")
      expect(bad.message).toContain(`"ops; drop"`)
    }))
})
