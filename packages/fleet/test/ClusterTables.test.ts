/**
 * The @effect/cluster tables of a new cluster database (its message and runner storage), created by
 * workers that start together: each worker creates them before its runner starts, under an advisory
 * lock, since PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent one.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { pgTestUrlWithSchema, startedTogether } from "../../../test/support/databases.js"
import { createClusterTables } from "../src/internal/clusterTables.js"

const workers = 8
const rounds = 5

describe("the cluster's tables on PostgreSQL", () => {
  it.scoped(`${workers} workers creating them together, ${rounds} rounds in fresh schemas: every one succeeds`, () =>
    Effect.gen(function*() {
      for (let round = 0; round < rounds; round++) {
        const { url } = yield* pgTestUrlWithSchema()
        // The advisory lock holds one connection while the two storages create their tables on others.
        const outcomes = yield* startedTogether(url, workers, createClusterTables({}), 4)
        expect({ round, outcomes }).toEqual({ round, outcomes: Array.from({ length: workers }, () => "ok") })
      }
    }), 180_000)
})
