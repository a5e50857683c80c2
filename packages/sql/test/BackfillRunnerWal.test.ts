/**
 * SQLite: the runner checkpoints the WAL itself after its batches, so the WAL starts over instead
 * of growing batch after batch until some connection's commit crosses `wal_autocheckpoint` and
 * pays for the copy (during a backfill mostly the app's). Here no connection checkpoints on its own
 * (`wal_autocheckpoint = 0`, as an app may have it): after a backfill of many batches the WAL file
 * holds about what the runner lets it grow by between two checkpoints (half of SQLite's default
 * autocheckpoint, plus the batch that crossed it), not the whole backfill's pages; and that stays
 * so when another connection starts the WAL over between two of the runner's checkpoints.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import { tempSqliteFile } from "../../../test/support/databases.js"
import { BackfillRunner, Database, Migrator } from "../src/index.js"
import * as WalCheckpoints from "../src/internal/walCheckpoints.js"

const plan = Plan.make("events", [Plan.migration(1, "times", [Plan.epochShadow("events", "happened_at", { index: true })])])
const ROWS = 20_000
const BATCH = 500

it.scoped("SQLite: after a backfill of 40 batches the WAL holds about the runner's checkpoint interval of pages, not all of them", () =>
  Effect.gen(function*() {
    const file = yield* tempSqliteFile()
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`PRAGMA wal_autocheckpoint = 0`)
      yield* sql.unsafe(`CREATE TABLE events (id INTEGER PRIMARY KEY, happened_at TEXT)`)
      // Times not in key order, so the target's index takes writes all over.
      yield* sql.unsafe(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
         INSERT INTO events (id, happened_at) SELECT i, strftime('%Y-%m-%d %H:%M:%S', 1600000000 + ((i * 7919) % ${ROWS}) * 37, 'unixepoch') FROM n`
      )
      yield* Effect.flatMap(Migrator.make(plan), (migrator) => migrator.run())
      yield* sql.unsafe(`PRAGMA wal_checkpoint(TRUNCATE)`)
      const [summary] = yield* BackfillRunner.run({ batchSize: BATCH, fixedBatchSize: true })
      expect(summary).toMatchObject({ outcome: "completed", processed: ROWS, updated: ROWS, batches: ROWS / BATCH })
      const pageSize = Number((yield* sql.unsafe<{ page_size: number }>(`PRAGMA page_size`))[0]!.page_size)
      const pageCount = Number((yield* sql.unsafe<{ page_count: number }>(`PRAGMA page_count`))[0]!.page_count)
      const walPages = Fs.statSync(`${file}-wal`).size / pageSize
      // One batch writes about 50 pages (table, index, strata's own rows); the whole backfill
      // appends about 2,000 (8x the database) when no connection checkpoints.
      expect(pageCount).toBeGreaterThan(200)
      expect(walPages).toBeLessThan(WalCheckpoints.defaultTargetFrames * 1.5)
    }).pipe(Effect.provide(BackfillRunner.layer(plan).pipe(Layer.provideMerge(Database.layer({ url: file })))))
  }), 120_000)

it.scoped("SQLite: when another connection's checkpoint starts the WAL over between two of the runner's, the next ones are not spaced further apart", () =>
  Effect.gen(function*() {
    const file = yield* tempSqliteFile()
    // Another connection: the app's, whose own checkpoint (here a PASSIVE one, as its autocheckpoint runs) empties the WAL.
    const othersCheckpoint = Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`PRAGMA wal_checkpoint(PASSIVE)`)).pipe(
      Effect.provide(Database.layer({ url: file }))
    )
    yield* Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe(`PRAGMA wal_autocheckpoint = 0`)
      // Rows of about 1 KB, so a batch of 200 rewrites about 50 pages.
      yield* sql.unsafe(`CREATE TABLE pages (id INTEGER PRIMARY KEY, filler TEXT)`)
      yield* sql.unsafe(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) INSERT INTO pages SELECT i, hex(randomblob(500)) FROM n`
      )
      yield* sql.unsafe(`PRAGMA wal_checkpoint(TRUNCATE)`)
      const checkpoints = yield* WalCheckpoints.make()
      for (let batch = 0; batch < 60; batch++) {
        const low = (batch * 200) % 4000
        yield* sql.unsafe(`UPDATE pages SET filler = hex(randomblob(500)) WHERE id > ? AND id <= ?`, [low, low + 200])
        yield* checkpoints.afterBatch
        // Between the runner's checkpoints after batches 10 and 20 (one every 10 batches of about 50
        // frames): the runner's next one then counts only the 4 batches after the WAL started over.
        if (batch === 16) yield* othersCheckpoint
      }
      const pageSize = Number((yield* sql.unsafe<{ page_size: number }>(`PRAGMA page_size`))[0]!.page_size)
      const walPages = Fs.statSync(`${file}-wal`).size / pageSize
      // Taking those 4 batches as 10 made the next checkpoint wait 25 batches: a WAL of about 1,250 pages.
      expect(checkpoints.count()).toBeGreaterThan(4)
      expect(walPages).toBeLessThan(WalCheckpoints.defaultTargetFrames * 1.5)
    }).pipe(Effect.provide(Database.layer({ url: file })))
  }), 60_000)
