import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { ChatModel } from "../src/index.js"
import { fastMessage } from "../src/internal/fastMessage.js"

const value = fc.oneof(
  fc.constantFrom("user", "assistant", "system", "tool", "bot", "", "a\u0000b", "User"),
  fc.string(),
  fc.integer({ min: -3, max: 1_000_000 }),
  fc.constantFrom(0, -0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, null, undefined, true),
  fc.constant({ nested: 1 }),
  fc.constant([1, 2])
)

const message = fc.dictionary(
  fc.constantFrom("role", "content", "name", "toolCallId", "tokenCount", "toolCalls", "metadata", "id", "createdAtMs", "extra"),
  value,
  { maxKeys: 6 }
)

// Mostly the common shape, with a wrong value now and then, so the accepting branch is well covered.
const commonShape = fc.record({
  role: fc.constantFrom("user", "assistant", "system", "tool"),
  content: fc.oneof(fc.string(), fc.constant(null), value),
  name: fc.oneof(fc.string(), fc.constant(null)),
  toolCallId: fc.oneof(fc.string(), value),
  tokenCount: fc.oneof(fc.nat(), fc.constant(null), value)
}, { requiredKeys: ["role"] })

const decode = Schema.decodeUnknownEither(ChatModel.NewMessage)

describe("fastMessage", () => {
  it.prop("accepts only what the NewMessage Schema accepts, decoded to the same value", [fc.oneof(message, commonShape)], ([input]) => {
    const fast = fastMessage(input)
    if (fast !== undefined) expect(decode(input)).toEqual(Either.right(fast))
    else if (Either.isRight(decode(input))) {
      // Declined although valid: only shapes it does not handle (another field, a plain-object check).
      expect(Object.keys(input).some((k) => !["role", "content", "name", "toolCallId", "tokenCount"].includes(k))).toBe(true)
    }
  }, { fastCheck: { numRuns: 20_000 } })

  it("takes the common shapes", () => {
    for (
      const input of [
        { role: "user" },
        { role: "assistant", content: null, tokenCount: 0 },
        { role: "tool", content: "x", name: "ls", toolCallId: "c1", tokenCount: 12 },
        { role: "system", content: undefined }
      ]
    ) expect(fastMessage(input)).toEqual(input)
    for (const input of [{ role: "bot" }, { role: "user", tokenCount: -1 }, { role: "user", metadata: {} }, { role: "user", content: "\u0000" }]) {
      expect(fastMessage(input)).toBeUndefined()
    }
  })
})
