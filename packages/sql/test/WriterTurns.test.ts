/**
 * SQLite: the runner's turns for other writers between batches (internal/writerTurns.ts), on a
 * real file with two connections: strata's and an app's. The clock is the TestClock, so each
 * turn's length is exact: a turn polls `PRAGMA data_version` once per millisecond.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Context, Effect, Fiber, Layer, TestClock } from "effect"
import { tempSqliteFile } from "../../../test/support/databases.js"
import { BackfillRunner, Database } from "../src/index.js"
import * as WriterTurns from "../src/internal/writerTurns.js"

/**
 * strata's connection and the app's on one new file with a table to write to: a job's turns
 * (`afterBatch` on strata's connection) and one commit of the app's (`appWrites`).
 */
const twoConnections = (settings: WriterTurns.TurnSettings = WriterTurns.defaultTurns) =>
  Effect.gen(function*() {
    const file = yield* tempSqliteFile()
    const strata = yield* Layer.build(Database.layer({ url: file }))
    const app = Context.get(yield* Layer.build(Database.layer({ url: file })), SqlClient.SqlClient)
    yield* app.unsafe(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`)
    const turns = yield* WriterTurns.make(settings)
    return {
      turns,
      afterBatch: Effect.provide(turns.afterBatch, strata),
      appWrites: app.unsafe(`INSERT INTO notes (body) VALUES ('from the app')`)
    }
  })

/** Runs a turn in a fiber while the clock moves `steps` ms, and returns its length. */
const turnOver = (afterBatch: Effect.Effect<number>, steps = 20, onStep?: (step: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function*() {
    const turn = yield* Effect.fork(afterBatch)
    yield* millisecondSteps(steps, onStep)
    return yield* Fiber.join(turn)
  })

/** Moves the TestClock one millisecond at a time, `steps` times, letting the turn's fiber poll after each. */
const millisecondSteps = (steps: number, onStep: (step: number) => Effect.Effect<unknown, unknown> = () => Effect.void) =>
  Effect.gen(function*() {
    for (let step = 1; step <= steps; step++) {
      yield* onStep(step)
      yield* TestClock.adjust("1 millis")
      for (let turn = 0; turn < 20; turn++) yield* Effect.yieldNow()
    }
  })

it.scoped("after another connection committed, a turn lasts until that writer has caught up (its commits, then a millisecond without one)", () =>
  Effect.gen(function*() {
    const { afterBatch, appWrites, turns } = yield* twoConnections()
    // The first batch only learns the version; nobody else wrote yet and no probe is due.
    expect(yield* afterBatch).toBe(0)
    yield* appWrites
    // The app writes again inside the turn, at its 3rd and 4th millisecond, then stops: its last
    // commit is seen at 4 ms, and the turn ends at the next poll without one.
    expect(yield* turnOver(afterBatch, 12, (step) => (step === 3 || step === 4 ? appWrites : Effect.void))).toBe(5)
    expect(turns.given()).toEqual({ turns: 1, used: 1 })
  }))

it.scoped("a turn nobody uses ends at maxGap; while the app wrote in the last activeFor every batch gets one", () =>
  Effect.gen(function*() {
    const { afterBatch, appWrites, turns } = yield* twoConnections()
    expect(yield* afterBatch).toBe(0)
    yield* appWrites
    for (let batch = 0; batch < 3; batch++) expect(yield* turnOver(afterBatch)).toBe(WriterTurns.defaultTurns.maxGapMs)
    expect(turns.given()).toEqual({ turns: 3, used: 0 })
    // activeFor after the app's last commit, batches go straight on again.
    yield* TestClock.adjust(`${WriterTurns.defaultTurns.activeForMs} millis`)
    expect(yield* turnOver(afterBatch)).toBe(WriterTurns.defaultTurns.maxGapMs)
    // That one was the probe (none in the last probeEvery); the next batch gets no turn.
    expect(yield* afterBatch).toBe(0)
    expect(turns.given()).toEqual({ turns: 4, used: 0 })
  }))

it.scoped("a writer already waiting when the job starts gets the probe that comes firstProbe into the job", () =>
  Effect.gen(function*() {
    const { afterBatch, appWrites, turns } = yield* twoConnections()
    // A batch that ends before firstProbe: nobody has committed, so nothing tells of a writer.
    expect(yield* afterBatch).toBe(0)
    yield* TestClock.adjust(`${WriterTurns.defaultTurns.firstProbeMs} millis`)
    // The writer that waited through that batch commits in the probe, at its 3rd millisecond.
    expect(yield* turnOver(afterBatch, 12, (step) => (step === 3 ? appWrites : Effect.void))).toBe(4)
    expect(turns.given()).toEqual({ turns: 1, used: 1 })
    // From then on the app is known to write: every batch gets a turn.
    expect(yield* turnOver(afterBatch)).toBe(WriterTurns.defaultTurns.maxGapMs)
    expect(turns.given()).toEqual({ turns: 2, used: 1 })
  }))

it.scoped("alone, batches get no turn except the first probe and then one per probeEvery; maxGap 0 gives none at all", () =>
  Effect.gen(function*() {
    const { afterBatch, turns } = yield* twoConnections()
    yield* TestClock.adjust(`${WriterTurns.defaultTurns.firstProbeMs} millis`)
    expect(yield* turnOver(afterBatch)).toBe(WriterTurns.defaultTurns.maxGapMs)
    for (let batch = 0; batch < 4; batch++) {
      expect(yield* afterBatch).toBe(0)
      yield* TestClock.adjust("110 millis")
    }
    // 440 ms after the first probe ended: none due yet; 60 ms later one is.
    expect(yield* afterBatch).toBe(0)
    yield* TestClock.adjust("60 millis")
    expect(yield* turnOver(afterBatch)).toBe(WriterTurns.defaultTurns.maxGapMs)
    expect(turns.given()).toEqual({ turns: 2, used: 0 })

    const none = yield* twoConnections({ ...WriterTurns.defaultTurns, maxGapMs: 0 })
    for (let batch = 0; batch < 2; batch++) {
      yield* none.appWrites
      expect(yield* none.afterBatch).toBe(0)
    }
    expect(none.turns.given()).toEqual({ turns: 0, used: 0 })
  }))

it.effect("a negative writerTurn is refused, naming the option", () =>
  Effect.gen(function*() {
    const plan = Plan.make("notes", [Plan.migration(1, "times", [Plan.epochShadow("notes", "written_at")])])
    const refused = yield* BackfillRunner.make(plan).pipe(
      Effect.flatMap((runner) => runner.run({ writerTurn: -1 })),
      Effect.flip,
      Effect.provide(Database.layer({ url: ":memory:" }))
    )
    expect(refused).toMatchObject({ _tag: "InvalidBackfillOptions", option: "writerTurn" })
  }))
