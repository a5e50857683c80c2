/**
 * The fleet ledger's tables on a PostgreSQL cluster database, created by workers that start together.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { pgTestUrlWithSchema, startedTogether } from "../../../test/support/databases.js"
import { Ledger } from "../src/index.js"

const workers = 8
const rounds = 5

describe("Ledger on PostgreSQL", () => {
  // Without the ledger's turn-taking (Database.createInTurn) this fails in the first round of most runs.
  it.scoped(`${workers} workers' Ledger.make started together, ${rounds} rounds in fresh schemas: every one succeeds`, () =>
    Effect.gen(function*() {
      for (let round = 0; round < rounds; round++) {
        const { url } = yield* pgTestUrlWithSchema()
        const outcomes = yield* startedTogether(url, workers, Ledger.make)
        expect({ round, outcomes }).toEqual({ round, outcomes: Array.from({ length: workers }, () => "ok") })
      }
    }), 120_000)
})
