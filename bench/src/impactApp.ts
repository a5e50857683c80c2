/**
 * The application of the impact benchmark, in a process of its own with its own connection (as an
 * app beside strata has): every `periodMs` it inserts one message as an old app version would
 * (`created_at` text only) and reads one existing message by key, and records when each operation
 * was due, when it started and how long it took. Usage:
 *
 *   node impactApp.js <sqlite|pg> <file|url> <periodMs> <samples file>
 *
 * It prints `ready` once connected, runs until its stdin closes, then writes the samples as JSON
 * (`[[dueMs, startMs, latencyMs], ...]`, epoch ms) to the samples file and prints `done`.
 * SQLite: better-sqlite3 with `busy_timeout` 30 s and WAL, the settings an app would have; the
 * app's own `wal_autocheckpoint` is left at SQLite's default (strata cannot change an app's pragmas).
 */
import Sqlite from "better-sqlite3"
import * as Fs from "node:fs"
import Pg from "pg"
import { messageKey } from "./harness.js"

const [engine, target, periodText, samplesFile] = process.argv.slice(2)
const periodMs = Number(periodText)
if ((engine !== "sqlite" && engine !== "pg") || target === undefined || !(periodMs > 0) || samplesFile === undefined) {
  console.error("usage: impactApp.js <sqlite|pg> <file|url> <periodMs> <samples file>")
  process.exit(2)
}

interface AppConnection {
  /** One INSERT of a new message and one point read of an existing one. */
  readonly operate: (sequence: number, readKey: string) => Promise<void>
  readonly rows: number
  readonly close: () => Promise<void>
}

const nowText = (): string => new Date().toISOString().slice(0, 19).replace("T", " ")

const openSqlite = (file: string): AppConnection => {
  const db = new Sqlite(file)
  db.pragma("journal_mode = WAL")
  db.pragma("busy_timeout = 30000")
  const insert = db.prepare(
    "INSERT INTO chat_messages (message_id, session_id, role, content, created_at) VALUES (?, 's-app', 'user', 'from the app', ?)"
  )
  const read = db.prepare("SELECT message_id, created_at FROM chat_messages WHERE message_id = ?")
  const rows = Number((db.prepare("SELECT count(*) AS n FROM chat_messages").get() as { n: number }).n)
  return {
    rows,
    operate: (sequence, readKey) => {
      insert.run(`app${String(sequence).padStart(9, "0")}`, nowText())
      read.get(readKey)
      return Promise.resolve()
    },
    close: () => Promise.resolve(void db.close())
  }
}

const openPg = async (url: string): Promise<AppConnection> => {
  const client = new Pg.Client({ connectionString: url })
  await client.connect()
  const rows = Number((await client.query("SELECT count(*) AS n FROM chat_messages")).rows[0].n)
  return {
    rows,
    operate: async (sequence, readKey) => {
      await client.query({
        name: "app-insert",
        text: "INSERT INTO chat_messages (message_id, session_id, role, content, created_at) VALUES ($1, 's-app', 'user', 'from the app', $2)",
        values: [`app${String(sequence).padStart(9, "0")}`, nowText()]
      })
      await client.query({ name: "app-read", text: "SELECT message_id, created_at FROM chat_messages WHERE message_id = $1", values: [readKey] })
    },
    close: () => client.end()
  }
}

// An operation already due runs after one turn of the event loop (as a request queued in a server
// would), not after a timer: Node's timers wait at least 1 ms, which would cap the rate at which
// the app catches up after a stall at the rate it runs at.
const sleepUntil = (epochMs: number): Promise<void> =>
  new Promise((resolve) => {
    const wait = epochMs - Date.now()
    if (wait > 0) setTimeout(resolve, wait)
    else setImmediate(resolve)
  })

const main = async (): Promise<void> => {
  const app = engine === "sqlite" ? openSqlite(target) : await openPg(target)
  let stopping = false
  process.stdin.on("end", () => (stopping = true))
  process.stdin.on("close", () => (stopping = true))
  process.stdin.resume()
  const samples: Array<readonly [number, number, number]> = []
  // A fixed schedule: operation i is due at start + i * period. A stalled operation makes the next
  // ones start late; both the due time and the start are recorded, so the report can tell a slow
  // operation from a late one (coordinated omission).
  const start = Date.now() + 50
  let random = 12345
  process.stdout.write("ready\n")
  for (let i = 0; !stopping; i++) {
    const due = start + i * periodMs
    await sleepUntil(due)
    random = (random * 1103515245 + 12345) % 2147483648
    const began = performance.now()
    const beganEpoch = Date.now()
    await app.operate(i, messageKey(1 + (random % Math.max(1, app.rows))))
    samples.push([due, beganEpoch, performance.now() - began])
  }
  await app.close()
  Fs.writeFileSync(samplesFile, JSON.stringify(samples))
  process.stdout.write("done\n")
}

await main()
