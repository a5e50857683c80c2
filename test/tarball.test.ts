/**
 * The packages as an app gets them (issue 11 item 1): each package is packed with `pnpm pack`
 * (as releases are: it writes real versions in place of `workspace:*`, and `prepack` builds),
 * then installed with plain npm into temporary apps outside the workspace that bring their own
 * effect 3.x, @effect/sql and SQLite driver.
 *
 * The library app (core, sql, chat; SQLite driver only) type-checks a program against the
 * shipped declarations, has one copy of effect, runs a migrate + backfill on a SQLite file, and
 * gets `DriverMissing` naming `@effect/sql-pg pg` when it opens a PostgreSQL URL. The CLI app (all
 * five tarballs) has one copy of effect too, and its installed `strata` bin answers `--version`.
 *
 * Needs the npm registry (npm's cache makes reruns fast). better-sqlite3's native binding is the
 * one the workspace already built (a `file:` dependency and an npm override, install scripts off):
 * compiling SQLite again for each app takes minutes where the registry has no prebuilt binary.
 */
import { execFile, execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const packageNames = ["core", "sql", "chat", "fleet", "cli"] as const
type PackageName = (typeof packageNames)[number]
const libraryPackages: ReadonlyArray<PackageName> = ["core", "sql", "chat"]

const workspaceVersion = (name: PackageName): string =>
  (JSON.parse(Fs.readFileSync(Path.join(root, "packages", name, "package.json"), "utf8")) as { version: string }).version

// The pnpm running this suite (`pnpm test` sets npm_execpath), else the README's pinned one.
const pnpmCommand = (): readonly [string, ReadonlyArray<string>] => {
  const execPath = process.env["npm_execpath"]
  return execPath != null && /pnpm/.test(Path.basename(execPath))
    ? [process.execPath, [execPath]]
    : ["npx", ["-y", "pnpm@10.34.8"]]
}

// Asynchronous, so vitest's worker stays responsive through minutes of packing and installing.
const run = (command: string, args: ReadonlyArray<string>, cwd: string): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, encoding: "utf8", maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: "false" } },
      (error, stdout, stderr) =>
        error === null
          ? resolve(stdout)
          : reject(new Error(`${command} ${args.join(" ")} (in ${cwd}) failed: ${error.message}\n${stdout}\n${stderr}`))
    )
  })

const npmInstall = (cwd: string): Promise<string> =>
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd)

// The workspace's better-sqlite3 (its dependencies sit beside it in pnpm's store).
const builtBetterSqlite3 = (): string => {
  const fromSql = createRequire(Path.join(root, "packages", "sql", "package.json"))
  const fromDriver = createRequire(fromSql.resolve("@effect/sql-sqlite-node/package.json"))
  return Fs.realpathSync(Path.dirname(fromDriver.resolve("better-sqlite3/package.json")))
}

// The app's own effect line, @effect/sql and driver: the newest releases of the ranges strata's peers name.
const appEffectDependencies = {
  effect: "^3.22.4",
  "@effect/sql": "~0.52.1",
  "@effect/sql-sqlite-node": "~0.53.0"
}

const appManifest = (name: string, dependencies: Record<string, string>) =>
  JSON.stringify({
    name,
    private: true,
    type: "module",
    dependencies: { ...dependencies, "better-sqlite3": `file:${builtBetterSqlite3()}` },
    overrides: { "better-sqlite3": "$better-sqlite3" }
  }, null, 2)

/** Every installed package named `effect` (a second one means duplicated Context tags). */
const effectCopies = (app: string): ReadonlyArray<string> => {
  const found: Array<string> = []
  const walk = (directory: string): void => {
    for (const entry of Fs.readdirSync(directory, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue
      const path = Path.join(directory, entry.name)
      if (entry.name.startsWith("@")) {
        walk(path)
        continue
      }
      const manifest = Path.join(path, "package.json")
      if (entry.name === "effect" && Fs.existsSync(manifest)) {
        found.push(Path.relative(app, path))
      }
      const nested = Path.join(path, "node_modules")
      if (Fs.existsSync(nested)) walk(nested)
    }
  }
  walk(Path.join(app, "node_modules"))
  return found.sort()
}

const libraryProgram = `
import * as SqlClient from "@effect/sql/SqlClient"
import { Plan } from "@strata/core"
import { BackfillRunner, Database, Migrator } from "@strata/sql"
import { ChatPlan } from "@strata/chat"
import { Effect, Layer } from "effect"

const plan = Plan.make("tarball-app", [
  Plan.migration(1, "event times in epoch ms", [Plan.epochShadow("events", "created_at")])
])

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql\`CREATE TABLE events (id INTEGER PRIMARY KEY, created_at TEXT)\`
  yield* sql\`INSERT INTO events (id, created_at) VALUES
    (1, '2024-01-15 12:00:00'), (2, '2024-01-15T20:00:01+08:00'), (3, 'not a time'), (4, NULL)\`
})

const program = Effect.gen(function*() {
  yield* seed
  const migrated = yield* Migrator.run()
  const [job] = yield* BackfillRunner.run({ jobs: ["events.created_at_ms"] })
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ id: number; created_at_ms: number | null }>\`SELECT id, created_at_ms FROM events ORDER BY id\`
  return { applied: migrated.applied.map((m) => m.id), job, rows }
})

const appLayer = (url: string) =>
  Layer.mergeAll(Migrator.layer(plan), BackfillRunner.layer(plan)).pipe(Layer.provideMerge(Database.layer({ url })))

// This app installed the SQLite driver only: PostgreSQL is a typed error naming what to install.
const openPostgres = Effect.provide(Database.dialect, Database.layer({ url: "postgres://app@127.0.0.1:1/app" })).pipe(
  Effect.catchTag("DriverMissing", (error) =>
    Effect.succeed({ tag: error._tag, engine: error.engine, packages: error.packages, message: error.message }))
)

const main = Effect.gen(function*() {
  const result = yield* program.pipe(Effect.provide(appLayer(process.argv[2]!)))
  const postgres = yield* openPostgres
  return { ...result, postgres, chatPlan: ChatPlan.plan.name }
})

Effect.runPromise(main).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
`

const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    exactOptionalPropertyTypes: true,
    // The shipped declarations are checked too: they must not name a package the app lacks (the PostgreSQL driver).
    skipLibCheck: false,
    types: ["node"],
    outDir: "dist",
    rootDir: "src"
  },
  include: ["src"]
}

describe("the packed tarballs in an app of its own", () => {
  let work: string
  const tarballs = {} as Record<PackageName, string>
  let libraryApp: string
  let cliApp: string

  beforeAll(async () => {
    work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "strata-tarball-"))
    const packed = Path.join(work, "tarballs")
    Fs.mkdirSync(packed)
    const [pnpm, pnpmArgs] = pnpmCommand()
    for (const name of packageNames) {
      await run(pnpm, [...pnpmArgs, "pack", "--pack-destination", packed], Path.join(root, "packages", name))
      tarballs[name] = Path.join(packed, `strata-${name}-${workspaceVersion(name)}.tgz`)
      expect(Fs.existsSync(tarballs[name])).toBe(true)
    }

    libraryApp = Path.join(work, "app")
    Fs.mkdirSync(Path.join(libraryApp, "src"), { recursive: true })
    Fs.writeFileSync(
      Path.join(libraryApp, "package.json"),
      appManifest("strata-tarball-app", {
        ...Object.fromEntries(libraryPackages.map((name) => [`@strata/${name}`, `file:${tarballs[name]}`])),
        ...appEffectDependencies,
        typescript: "5.9.3",
        "@types/node": "^20.19.0"
      })
    )
    Fs.writeFileSync(Path.join(libraryApp, "tsconfig.json"), JSON.stringify(tsconfig, null, 2))
    Fs.writeFileSync(Path.join(libraryApp, "src", "main.ts"), libraryProgram)
    await npmInstall(libraryApp)

    cliApp = Path.join(work, "cli-app")
    Fs.mkdirSync(cliApp)
    Fs.writeFileSync(
      Path.join(cliApp, "package.json"),
      appManifest("strata-tarball-cli-app", {
        ...Object.fromEntries(packageNames.map((name) => [`@strata/${name}`, `file:${tarballs[name]}`])),
        effect: appEffectDependencies.effect
      })
    )
    await npmInstall(cliApp)
  }, 600_000)

  afterAll(() => {
    if (work !== undefined) Fs.rmSync(work, { recursive: true, force: true })
  })

  it("each tarball holds dist, README.md, LICENSE and package.json (core: plan.schema.json), with real versions for workspace:*", () => {
    for (const name of packageNames) {
      const files = execFileSync("tar", ["-tzf", tarballs[name]], { encoding: "utf8" }).trim().split("\n")
      const topLevel = [...new Set(files.map((file) => file.replace(/^package\//, "").split("/")[0]))].sort()
      // core also ships the plan file format's JSON Schema.
      const extra = name === "core" ? ["plan.schema.json"] : []
      expect(topLevel, name).toEqual(["LICENSE", "README.md", "dist", "package.json", ...extra].sort())
      expect(files.filter((file) => file.endsWith(".map") || file.endsWith(".tsbuildinfo")), name).toEqual([])
      const manifest = execFileSync("tar", ["-xzOf", tarballs[name], "package/package.json"], { encoding: "utf8" })
      expect(manifest, name).not.toContain("workspace:")
    }
  })

  it("the app type-checks against the shipped declarations", async () => {
    await run(Path.join(libraryApp, "node_modules", ".bin", "tsc"), ["-p", "."], libraryApp)
    expect(Fs.existsSync(Path.join(libraryApp, "dist", "main.js"))).toBe(true)
  })

  it("the app has one copy of effect, its own 3.x", () => {
    expect(effectCopies(libraryApp)).toEqual([Path.join("node_modules", "effect")])
    const version = (JSON.parse(Fs.readFileSync(Path.join(libraryApp, "node_modules", "effect", "package.json"), "utf8")) as {
      version: string
    }).version
    expect(version).toMatch(/^3\./)
    // Neither PostgreSQL package came along: the drivers are optional peers.
    expect(Fs.existsSync(Path.join(libraryApp, "node_modules", "@effect", "sql-pg"))).toBe(false)
    expect(Fs.existsSync(Path.join(libraryApp, "node_modules", "pg"))).toBe(false)
  })

  it("a migrate + backfill program runs on a SQLite file, and PostgreSQL without its driver is DriverMissing", async () => {
    const database = Path.join(work, "app.db")
    const output = await run(process.execPath, [Path.join("dist", "main.js"), database], libraryApp)
    const result = JSON.parse(output.trim().split("\n").at(-1)!) as {
      applied: ReadonlyArray<number>
      job: { job: string; processed: number; updated: number; rejected: number; outcome: string }
      rows: ReadonlyArray<{ id: number; created_at_ms: number | null }>
      postgres: { tag: string; engine: string; packages: ReadonlyArray<string>; message: string }
      chatPlan: string
    }
    expect(result.applied).toEqual([1])
    expect(result.rows).toEqual([
      { id: 1, created_at_ms: 1705320000000 },
      { id: 2, created_at_ms: 1705320001000 },
      { id: 3, created_at_ms: null },
      { id: 4, created_at_ms: null }
    ])
    expect(result.job).toMatchObject({ job: "events.created_at_ms", outcome: "completed", updated: 2, rejected: 1 })
    expect(result.postgres).toEqual({
      tag: "DriverMissing",
      engine: "pg",
      packages: ["@effect/sql-pg", "pg"],
      message: "The PostgreSQL driver is not installed: npm install @effect/sql-pg pg"
    })
    expect(result.chatPlan.length).toBeGreaterThan(0)
  })

  it("an app on effect 4 is refused by npm (a peer conflict) rather than given a second, nested effect 3", async () => {
    const effect4App = Path.join(work, "effect4-app")
    Fs.mkdirSync(effect4App)
    Fs.writeFileSync(
      Path.join(effect4App, "package.json"),
      JSON.stringify({
        name: "strata-tarball-effect4-app",
        private: true,
        type: "module",
        dependencies: { "@strata/core": `file:${tarballs.core}`, "@strata/sql": `file:${tarballs.sql}`, effect: "^4.1.0" }
      }, null, 2)
    )
    const failure = await run("npm", ["install", "--dry-run", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], effect4App)
      .then(() => "installed", (error: Error) => error.message)
    expect(failure).toContain("ERESOLVE")
    expect(failure).toMatch(/peer effect@"\^3\.22\.4" from @strata\/(core|sql)@/)
  })

  it("the CLI app has one copy of effect and its strata bin answers --version", async () => {
    expect(effectCopies(cliApp)).toEqual([Path.join("node_modules", "effect")])
    const version = (await run(Path.join(cliApp, "node_modules", ".bin", "strata"), ["--version"], cliApp)).trim()
    expect(version).toBe(workspaceVersion("cli"))
  })
})
