/**
 * The common message shape (`role`, and text or token-count fields) checked by hand, because
 * `WriteBehind.append` is a hot path and Schema decoding is most of its cost. It only ever accepts:
 * anything it does not recognise (another field, a wrong value) returns `undefined`, and the caller
 * decodes with the `NewMessage` Schema, which also names the error. A property test holds it to
 * "accepted here ⇒ decoded to the same value by the Schema".
 */
import * as ChatPlan from "../ChatPlan.js"

const roles: ReadonlyArray<unknown> = ChatPlan.roles
const simpleKeys: ReadonlySet<string> = new Set(["role", "content", "name", "toolCallId", "tokenCount"])

const isText = (value: unknown): boolean =>
  value === undefined || value === null || (typeof value === "string" && !value.includes("\u0000"))

export interface SimpleMessage {
  readonly role: "user" | "assistant" | "system" | "tool"
  readonly content?: string | null | undefined
  readonly name?: string | null | undefined
  readonly toolCallId?: string | null | undefined
  readonly tokenCount?: number | null | undefined
}

/** The message as the Schema would decode it, when it has the common shape; otherwise `undefined`. */
export const fastMessage = (input: unknown): SimpleMessage | undefined => {
  if (typeof input !== "object" || input === null || Object.getPrototypeOf(input) !== Object.prototype) return undefined
  const message = input as Record<string, unknown>
  if (!roles.includes(message["role"])) return undefined
  for (const key of Object.keys(message)) if (!simpleKeys.has(key)) return undefined
  if (!isText(message["content"]) || !isText(message["name"]) || !isText(message["toolCallId"])) return undefined
  const tokens = message["tokenCount"]
  if (tokens !== undefined && tokens !== null && !(Number.isSafeInteger(tokens) && (tokens as number) >= 0)) return undefined
  return { ...message } as unknown as SimpleMessage
}
