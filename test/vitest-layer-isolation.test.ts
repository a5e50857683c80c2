/**
 * A test outside a `layer(...)` block never runs in that layer: a PostgreSQL layer that cannot be
 * built must fail only the tests that use it, never a pure test further down the file (issue 11:
 * "key cursors > round-trip with their type" failed with the PostgreSQL layer's error).
 * @effect/vitest 0.30's `layer` assigned its testers onto the shared `it`; the patch in
 * patches/@effect__vitest@0.30.0.patch gives each layer a view of `it` instead.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"

class Marker extends Context.Tag("test/vitest-layer-isolation/Marker")<Marker, string>() {}

layer(Layer.succeed(Marker, "inside"))((it) => {
  it.effect("a test inside the layer gets its services", () =>
    Effect.map(Marker, (value) => expect(value).toBe("inside")))
})

describe("after a layer block", () => {
  it.effect("a top-level it.effect runs without the layer's services", () =>
    Effect.map(Effect.serviceOption(Marker), (value) => expect(Option.isNone(value)).toBe(true)))

  it.scoped("so does a top-level it.scoped", () =>
    Effect.map(Effect.serviceOption(Marker), (value) => expect(Option.isNone(value)).toBe(true)))
})
