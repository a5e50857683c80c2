/**
 * The JSON Schema of a plan file, generated from the Plan Schema itself (`Plan.PlanDocument`), so
 * an editor can check a `plan.json` that names it in `$schema`. `@strata/core` ships it as
 * `@strata/core/plan.schema.json`; `pnpm --filter @strata/core gen:schema` writes it again.
 *
 * It says what JSON Schema (draft-07) can say: the fields, their types, literals, identifiers'
 * patterns, the ranges of numbers, and the few rules across fields written as its annotations
 * (`plausible` only on timestamp targets; every JSON derive target names `from`). The decoder
 * refuses more: docs/plans.md lists what only the decoder checks. One rewrite of effect's output:
 * a step is checked against the schema its `_tag` names, not against every kind at once.
 *
 * @since 0.3.0
 */
import { JSONSchema } from "effect"
import * as Plan from "./Plan.js"

/**
 * The JSON Schema of a plan file.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = (): JSONSchema.JsonSchema7Root => dispatchOnTag(JSONSchema.make(Plan.PlanDocument))

type Node = { readonly [key: string]: unknown }

/**
 * A union of tagged objects (the steps) is an `anyOf` to effect, and a validator then reports every
 * alternative's complaints about one bad step. Chosen by `_tag` instead (`if` the tag is X `then` X's
 * schema), a bad step gets only its own kind's; an unknown `_tag` is one complaint naming the known ones.
 */
const dispatchOnTag = (root: JSONSchema.JsonSchema7Root): JSONSchema.JsonSchema7Root => {
  const defs = (root.$defs ?? {}) as unknown as Readonly<Record<string, Node>>
  const tagOf = (member: Node): string | undefined => {
    const resolved = typeof member["$ref"] === "string" ? defs[member["$ref"].replace("#/$defs/", "")] : member
    const tag = (resolved?.["properties"] as Readonly<Record<string, Node>> | undefined)?.["_tag"]?.["enum"]
    return Array.isArray(tag) && tag.length === 1 && typeof tag[0] === "string" ? tag[0] : undefined
  }
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite)
    if (node === null || typeof node !== "object") return node
    const out = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, rewrite(value)])) as Record<string, unknown>
    const members = out["anyOf"]
    if (!Array.isArray(members) || members.length < 2) return out
    const tags = members.map((member) => tagOf(member as Node))
    if (tags.some((tag) => tag === undefined)) return out
    const { anyOf: _anyOf, ...rest } = out
    return {
      ...rest,
      type: "object",
      required: ["_tag"],
      properties: { _tag: { type: "string", enum: tags } },
      allOf: members.map((member, i) => ({ if: { type: "object", properties: { _tag: { const: tags[i] } } }, then: member }))
    }
  }
  return rewrite(root) as JSONSchema.JsonSchema7Root
}

/**
 * The shipped file's text: the JSON Schema, two-space indented, with a final newline.
 *
 * @since 0.3.0
 * @category constructors
 */
export const text = (): string => `${JSON.stringify(make(), null, 2)}\n`
