/**
 * One key rule for the job tables: the runner (which walks a table by its key) and the lazy
 * write-back (which addresses rows by it) find the same key on every kind of table, on both engines.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Backfill, type Identifier, Plan } from "@strata/core"
import { Effect, Either } from "effect"
import { describeEachEngine } from "../../../test/support/databases.js"
import { Database } from "../src/index.js"
import { inspectJob } from "../src/internal/jobTable.js"
import { discoverKey } from "../src/internal/lazyWriteBack.js"

describeEachEngine("the job tables' key", (engine) => {
  const sqlite = engine.name === "sqlite"
  const cases: ReadonlyArray<{ readonly ddl: string; readonly suffix?: string; readonly key?: string; readonly expected: string }> = [
    { ddl: "id INTEGER PRIMARY KEY, at TEXT", expected: "id integer primaryKey" },
    { ddl: "id BIGINT PRIMARY KEY, at TEXT", expected: "id integer primaryKey" },
    { ddl: "code TEXT PRIMARY KEY, at TEXT", expected: "code text primaryKey" },
    { ddl: "code VARCHAR(20) PRIMARY KEY, at TEXT", expected: "code text primaryKey" },
    { ddl: "name TEXT NOT NULL UNIQUE, at TEXT", key: "name", expected: "name text declared" },
    {
      ddl: "a TEXT, b TEXT, at TEXT, PRIMARY KEY (a, b)",
      expected: sqlite ? "rowid integer rowid" : "none: its primary key (a, b) has 2 columns"
    },
    { ddl: "name TEXT, at TEXT", expected: sqlite ? "rowid integer rowid" : "none: it has no primary key" },
    {
      ddl: "id NUMERIC PRIMARY KEY, at TEXT",
      expected: sqlite ? "rowid integer rowid" : "none: its primary key id has type numeric, neither integer nor text"
    },
    ...(sqlite
      ? [
        // The lazy write-back used to take rowid here, which a WITHOUT ROWID table does not have.
        { ddl: "a TEXT, b TEXT, at TEXT, PRIMARY KEY (a, b)", suffix: " WITHOUT ROWID", expected: "none: its primary key (a, b) has 2 columns and it is a WITHOUT ROWID table" },
        { ddl: "code TEXT PRIMARY KEY, at TEXT", suffix: " WITHOUT ROWID", expected: "code text primaryKey" }
      ]
      : [
        { ddl: "id uuid PRIMARY KEY, at TEXT", expected: "id text primaryKey" },
        { ddl: "at TEXT, stamp timestamptz NOT NULL UNIQUE", key: "stamp", expected: "none: its declared key stamp has type timestamp with time zone, neither integer nor text" }
      ])
  ]

  it.effect("the runner and the lazy write-back find the same key on every kind of table", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const dialect = yield* Database.dialect
      for (const [i, c] of cases.entries()) {
        const table = `keys_${i}`
        yield* sql.unsafe(`CREATE TABLE ${table} (${c.ddl})${c.suffix ?? ""}`)
        yield* sql.unsafe(`ALTER TABLE ${table} ADD COLUMN at_ms BIGINT`)
        const plan = Plan.make("keys", [Plan.migration(1, "shadow", [Plan.epochShadow(table, "at", c.key === undefined ? {} : { key: c.key })])])
        const job = Backfill.jobs(plan)[0]!
        const walked = yield* Effect.either(inspectJob(job))
        const runnerKey = Either.match(walked, {
          onLeft: (e) => (e._tag === "NoBatchKey" ? `none: ${e.reason}` : e._tag),
          onRight: (t) => `${t.key.name} ${t.key.kind} ${t.key.origin}`
        })
        const lazy = yield* discoverKey(dialect, job.table, c.key as Identifier.Identifier | undefined)
        const lazyKey = lazy._tag === "None" ? `none: ${lazy.reason}` : `${lazy.key.name} ${lazy.key.kind} ${lazy.key.origin}`
        expect({ ddl: `${c.ddl}${c.suffix ?? ""}`, runner: runnerKey, lazy: lazyKey }).toEqual({ ddl: `${c.ddl}${c.suffix ?? ""}`, runner: c.expected, lazy: c.expected })
      }
    }).pipe(Effect.provide(engine.layer())))
})
