/**
 * The SQLite write-back's thread when it dies under the write-back: the statement in flight fails (its
 * rows stay pending, the caller counts it), the reason is told once, and every later statement runs on
 * the app's client, so the write-back goes on and its scope still closes.
 *
 * The thread is real (`lazyWorker.js` over `node:worker_threads`, its own connection to a real file); what
 * kills it is its driver: better-sqlite3 itself, wrapped so that a statement marked `/* exit *\/` ends the
 * thread (`process.exit` in a worker ends that thread only), as a crash in the native driver would.
 */
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer } from "effect"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { tempDirectory } from "../../../test/support/databases.js"
import { clientWriter } from "../src/internal/lazyWriteBack.js"
import { workerSetup, workerWriter } from "../src/internal/lazyWorkerWriter.js"

const realDriver = createRequire(createRequire(import.meta.url).resolve("@effect/sql-sqlite-node/package.json")).resolve(
  "better-sqlite3"
)

/** A driver module in `directory`: better-sqlite3, except that running a statement marked `/* exit *\/` ends the thread. */
const exitingDriver = (directory: string): string => {
  const file = Path.join(directory, "exiting-driver.cjs")
  Fs.writeFileSync(
    file,
    `const Real = require(${JSON.stringify(realDriver)})\n` +
      `module.exports = function ExitingDriver(file, options) {\n` +
      `  const db = new Real(file, options)\n` +
      `  const prepare = db.prepare.bind(db)\n` +
      `  db.prepare = (sql) => sql.includes("/* exit */") ? { all: () => process.exit(7) } : prepare(sql)\n` +
      `  return db\n` +
      `}\n`
  )
  return file
}

const update = (id: number, mark = "") => ({ sql: `UPDATE events SET fixed = ${id} WHERE id = ${id} ${mark}RETURNING id`, params: [] })

describe("lazy write-back thread", () => {
  it.scoped("dies under a statement: that statement fails, the reason is told once, the rest run on the app's client", () =>
    Effect.gen(function*() {
      const directory = yield* tempDirectory
      const sql = yield* Layer.build(SqliteClient.layer({ filename: Path.join(directory, "app.db") })).pipe(
        Effect.map(Context.get(SqlClient.SqlClient))
      )
      yield* sql`CREATE TABLE events (id INTEGER PRIMARY KEY, fixed INTEGER)`
      yield* sql`INSERT INTO events (id) VALUES (1), (2), (3), (4)`
      const setup = yield* workerSetup(sql, ["events" as never], 1000)
      if (Either.isLeft(setup)) return expect.fail(setup.left)
      const told: Array<string> = []
      const { path, writer } = yield* workerWriter(
        { ...setup.right, driver: exitingDriver(directory) },
        clientWriter(sql, "sqlite", 1000),
        (reason) => Effect.sync(() => told.push(reason))
      )
      expect((yield* path)._tag).toBe("Worker")
      expect((yield* writer.run(update(1))).written).toBe(1)
      expect(told).toEqual([])

      const inFlight = yield* Effect.either(writer.run(update(2, "/* exit */ ")))
      expect(Either.isLeft(inFlight) && String((inFlight.left as { cause?: unknown }).cause)).toContain(
        "the write-back thread exited (code 7)"
      )
      expect(yield* path).toEqual({ _tag: "Client", reason: "the write-back thread exited (code 7)" })

      expect((yield* writer.run(update(3))).written).toBe(1)
      expect((yield* writer.run(update(4))).written).toBe(1)
      expect(told).toEqual(["the write-back thread exited (code 7)"])
      // The statement the thread died under wrote nothing: its row is still pending for a later read or the backfill.
      const rows = yield* sql<{ readonly id: number; readonly fixed: number | null }>`SELECT id, fixed FROM events ORDER BY id`
      expect(rows.map((row) => [row.id, row.fixed])).toEqual([[1, 1], [2, null], [3, 3], [4, 4]])
    }), 20_000)
})
