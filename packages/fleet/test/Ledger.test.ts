/**
 * The fleet ledger's tables on a PostgreSQL cluster database, created by workers that start together.
 */
import { describe, expect, it } from "@effect/vitest"
import { Database } from "@strata/sql"
import { Effect } from "effect"
import { pgTestUrlWithSchema } from "../../../test/support/databases.js"
import { Ledger } from "../src/index.js"

describe("Ledger on PostgreSQL", () => {
  it.scoped("eight processes' worth of Ledger.make at once, each on its own connection: every one succeeds", () =>
    Effect.gen(function*() {
      const { url } = yield* pgTestUrlWithSchema()
      // Each as a worker process has it: its own pool, so the CREATE TABLEs really run side by side.
      const made = yield* Effect.all(
        Array.from({ length: 8 }, () => Effect.either(Effect.provide(Ledger.make, Database.layer({ url, maxConnections: 1 })))),
        { concurrency: "unbounded" }
      )
      expect(made.map((m) => m._tag === "Left" ? m.left.message : "ok")).toEqual(Array.from({ length: 8 }, () => "ok"))
    }), 60_000)
})
