/**
 * The JSON Schema of a plan file, generated from the Plan Schema itself (`Plan.PlanDocument`), so
 * an editor can check a `plan.json` that names it in `$schema`. `@strata/core` ships it as
 * `@strata/core/plan.schema.json`; `pnpm --filter @strata/core gen:schema` writes it again.
 *
 * It says what JSON Schema (draft-07) can say: the fields, their types, literals, identifiers'
 * patterns, the ranges of numbers, and the few rules across fields written as its annotations
 * (`plausible` only on timestamp targets; every JSON derive target names `from`). The decoder
 * refuses more: docs/plans.md lists what only the decoder checks.
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
export const make = (): JSONSchema.JsonSchema7Root => JSONSchema.make(Plan.PlanDocument)

/**
 * The shipped file's text: the JSON Schema, two-space indented, with a final newline.
 *
 * @since 0.3.0
 * @category constructors
 */
export const text = (): string => `${JSON.stringify(make(), null, 2)}\n`
