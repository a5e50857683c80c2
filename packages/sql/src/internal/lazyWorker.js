// @ts-check
/**
 * The lazy write-back's thread (SQLite): its own better-sqlite3 connection to the app's file, so the
 * write-back's UPDATEs and their lock waits never run on the readers' thread. Plain JavaScript, so the
 * same file runs from the built package and from the TypeScript sources under a test runner.
 *
 * It runs statements it is sent and answers how many rows each wrote; it builds none itself (the
 * statement is `keyedUpdate`'s, built on the reader's side). Protocol, over the worker's port:
 * - out, once: `{ type: "ready", threadId }` or `{ type: "unavailable", reason }` (then it exits);
 * - in: `{ type: "run", id, sql, params }`, answered by `{ id, written, ms }` (rows written, and how long the
 *   statement ran, lock waits included) or `{ id, error: { message, code } }`, and a success also in
 *   `setup.done` (shared memory: `[id + 1, written, microseconds]`), which the readers' thread can read
 *   between two reads without waiting for its event loop to turn;
 * - in: `{ type: "close" }`: closes the connection and exits.
 */
import { createRequire } from "node:module"
import { getPriority, setPriority } from "node:os"
import { performance } from "node:perf_hooks"
import { parentPort, threadId, workerData } from "node:worker_threads"

/**
 * @typedef {{ readonly name: string, readonly file: string }} Attached
 * @typedef {{ readonly driver: string, readonly filename: string, readonly attached: ReadonlyArray<Attached>, readonly busyTimeoutMs: number, readonly done: SharedArrayBuffer }} Setup
 * @typedef {{ prepare(sql: string): { all(...params: ReadonlyArray<unknown>): ReadonlyArray<unknown> }, pragma(sql: string, options?: { simple?: boolean }): unknown, exec(sql: string): unknown, close(): unknown }} Connection
 */

const port = parentPort
if (port === null) throw new Error("lazyWorker.js runs as a worker thread")
const setup = /** @type {Setup} */ (workerData)
const done = new Int32Array(setup.done)

/** @param {unknown} error */
const describe = (error) => ({
  message: error instanceof Error ? error.message : String(error),
  code: /** @type {{ code?: unknown }} */ (error)?.code
})

/** @param {string} name */
const quote = (name) => `"${name.replace(/"/g, "\"\"")}"`

/** @returns {Connection | string} the connection, or why it cannot be used */
const open = () => {
  /** @type {Connection | undefined} */
  let db
  try {
    const Sqlite = /** @type {new (file: string, options: { fileMustExist: boolean }) => Connection} */ (
      createRequire(import.meta.url)(setup.driver)
    )
    db = new Sqlite(setup.filename, { fileMustExist: true })
    for (const { file, name } of setup.attached) db.exec(`ATTACH DATABASE '${file.replace(/'/g, "''")}' AS ${quote(name)}`)
    // Only WAL lets this connection write while the readers' connection reads: the main file and each attached one.
    for (const name of ["main", ...setup.attached.map((database) => database.name)]) {
      const mode = db.pragma(`${quote(name)}.journal_mode`, { simple: true })
      if (mode !== "wal") {
        db.close()
        return name === "main"
          ? `the database is in journal_mode ${String(mode)}, not WAL`
          : `attached database ${name} is in journal_mode ${String(mode)}, not WAL`
      }
    }
    // How long a statement waits for another writer before it fails (counted; the rows stay pending).
    db.pragma(`busy_timeout = ${Math.trunc(setup.busyTimeoutMs)}`)
    // A write-back lost to a power cut is redone by a later read or the backfill: no fsync per batch.
    for (const name of ["main", ...setup.attached.map((database) => database.name)]) db.pragma(`${quote(name)}.synchronous = NORMAL`)
    return db
  } catch (error) {
    try {
      db?.close()
    } catch {
      // already failed; the first error is the one reported
    }
    return describe(error).message
  }
}

/**
 * Linux: this thread's nice value is 10 more than the app's (at most 19), and its own there (setpriority of the
 * calling thread), so a busy CPU goes to the app's threads first: its readers and the garbage collector's
 * helpers, whose scavenges the readers wait for. The write-back then writes what it can (best effort: rows it
 * falls behind on are dropped once the queue is full, counted, and stay pending). Elsewhere the call would
 * renice the whole process: left alone.
 */
if (process.platform === "linux") {
  try {
    setPriority(Math.min(19, getPriority() + 10))
  } catch {
    // not allowed here (a sandbox): the write-back runs at the app's priority
  }
}

const opened = open()
if (typeof opened === "string") {
  port.postMessage({ type: "unavailable", reason: opened })
  port.close()
} else {
  const db = opened
  // Statement texts are one per table and target set (the rows travel as one JSON parameter), so a small
  // cache holds them all. A statement that failed is dropped, so a fixed schema is prepared afresh.
  /** @type {Map<string, ReturnType<Connection["prepare"]>>} */
  const prepared = new Map()
  /** @param {string} sql */
  const statement = (sql) => {
    let found = prepared.get(sql)
    if (found === undefined) {
      found = db.prepare(sql)
      if (prepared.size >= 64) prepared.delete(/** @type {string} */ (prepared.keys().next().value))
      prepared.set(sql, found)
    }
    return found
  }
  port.on("message", (/** @type {{ type: "run", id: number, sql: string, params: ReadonlyArray<unknown> } | { type: "close" }} */ message) => {
    if (message.type === "close") {
      db.close()
      port.close()
      return
    }
    try {
      const prepare = statement(message.sql)
      const started = performance.now()
      const written = prepare.all(...message.params).length
      const ms = performance.now() - started
      // The results first: the id is what the other side waits to see.
      Atomics.store(done, 1, written)
      Atomics.store(done, 2, Math.min(2 ** 31 - 1, Math.round(ms * 1000)))
      Atomics.store(done, 0, message.id + 1)
      port.postMessage({ id: message.id, written, ms })
    } catch (error) {
      prepared.delete(message.sql)
      port.postMessage({ id: message.id, error: describe(error) })
    }
  })
  port.postMessage({ type: "ready", threadId })
}
