/**
 * The built-in transforms of derived columns: the one implementation behind JSON plans (which
 * name them, `"apply": ["trim", "lower"]`) and TS plans (which name them the same way, or call the
 * readers from their own `convert`). Each reads one stored value and gives the converted value or
 * a reason; NULL passes through every transform unchanged (a NULL source is no value, not an error),
 * except that a value map may say what NULL becomes.
 *
 * ```
 * "timestamp"            text → epoch milliseconds through Timestamp.parse (the shadows' reading)
 * { "timestamp": {...} } the same with Timestamp.Accept's opt-in forms (epoch units, infinity, ...)
 * { "json": "a.b" }      a JSON object (text, or PostgreSQL's parsed JSONB) → the value at a dotted
 *                        path; NULL when absent; empty text reads as NULL; other JSON is a reason
 * "lower" / "trim"       text → lower-cased / without surrounding whitespace (String.prototype)
 * { "map": {...},        text (or a number, by its decimal text) → the mapped value; a value not in
 *   "otherwise": v }     the map is a reason unless `otherwise` (a value or null) is given
 * ```
 *
 * @since 0.2.0
 */
import { Either, Schema } from "effect"
import * as Timestamp from "./Timestamp.js"

/**
 * How a value shows in a reason: strings quoted (long ones cut), others by type.
 *
 * @since 0.2.0
 * @category formatting
 */
export const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  if (Array.isArray(value)) return "an array"
  if (value === null) return "null"
  return `${typeof value} ${String(value)}`
}

/**
 * One transform of a stored value: the converted value (null for none) or why it cannot be converted.
 *
 * @since 0.2.0
 * @category models
 */
export type Reader = (value: unknown) => Either.Either<unknown, string>

/** A present value (never NULL) as a timestamp: text through `Timestamp.parse` (or `parseWith` under `accept`), numbers only with a declared epoch unit. */
const timestampValue = (value: unknown, accept: Timestamp.Accept | undefined): Either.Either<Timestamp.EpochMillis, string> => {
  if (typeof value === "string") {
    const parsed = accept === undefined ? Timestamp.parse(value) : Timestamp.parseWith(value, accept)
    return Either.mapLeft(parsed, (error) => `${describe(value)}: ${error.reason}`)
  }
  if ((typeof value === "number" || typeof value === "bigint") && accept?.epoch !== undefined) {
    return Either.mapLeft(Timestamp.fromEpoch(value, accept.epoch), (error) => error.reason)
  }
  return Either.left(`expected timestamp text, found ${describe(value)}`)
}

/**
 * The one reading of a stored timestamp value: NULL stays NULL, text goes through `Timestamp.parse`
 * (or `Timestamp.parseWith` under the opt-in forms of `accept`), a number or bigint is an instant
 * only under `accept.epoch`; anything else (a number SQLite's affinity made of "0", a blob) is a reason.
 *
 * @since 0.2.0
 * @category transforms
 */
export const timestamp = (value: unknown, accept?: Timestamp.Accept): Either.Either<Timestamp.EpochMillis | null, string> =>
  value === null || value === undefined ? Either.right(null) : timestampValue(value, accept)

/**
 * Reads a JSON object column: `undefined` for NULL or empty text, the object, or a reason (invalid
 * JSON, or JSON that is not an object). PostgreSQL's JSONB arrives parsed.
 *
 * @since 0.2.0
 * @category transforms
 */
export const jsonObject = (value: unknown): Either.Either<Readonly<Record<string, unknown>> | undefined, string> => {
  if (value === null || value === undefined) return Either.right(undefined)
  let parsed: unknown = value
  if (typeof value === "string") {
    if (value.trim() === "") return Either.right(undefined)
    try {
      parsed = JSON.parse(value)
    } catch (error) {
      return Either.left(`invalid JSON: ${(error as Error).message}`)
    }
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return Either.left(`payload is not a JSON object: ${describe(parsed)}`)
  }
  return Either.right(parsed as Record<string, unknown>)
}

/**
 * The value at a dotted path of an object (own properties only); `undefined` when any step is absent.
 *
 * @since 0.2.0
 * @category transforms
 */
export const lookup = (object: Readonly<Record<string, unknown>>, path: string): unknown => {
  let current: unknown = object
  for (const segment of path.split(".")) {
    if (current === null || typeof current !== "object" || Array.isArray(current)) return undefined
    if (!Object.prototype.hasOwnProperty.call(current, segment)) return undefined
    current = (current as Record<string, unknown>)[segment]
  }
  return current
}

/**
 * The value at a dotted path of a JSON object column (see `jsonObject`); NULL when absent.
 *
 * @since 0.2.0
 * @category transforms
 */
export const jsonPath = (path: string): Reader => (value) =>
  Either.map(jsonObject(value), (object) => (object === undefined ? null : lookup(object, path) ?? null))

const textOnly = (name: string, f: (text: string) => string): Reader => (value) => {
  if (value === null || value === undefined) return Either.right(null)
  return typeof value === "string" ? Either.right(f(value)) : Either.left(`${name}: expected text, found ${describe(value)}`)
}

/**
 * Text lower-cased (`String.prototype.toLowerCase`: Unicode, locale-independent).
 *
 * @since 0.2.0
 * @category transforms
 */
export const lower: Reader = textOnly("lower", (text) => text.toLowerCase())

/**
 * Text without surrounding whitespace (`String.prototype.trim`).
 *
 * @since 0.2.0
 * @category transforms
 */
export const trim: Reader = textOnly("trim", (text) => text.trim())

/**
 * A value a map (or its `otherwise`) may give.
 *
 * @since 0.2.0
 * @category models
 */
export const MapValue = Schema.Union(Schema.String, Schema.Number, Schema.Boolean, Schema.Null)

/**
 * A value a map (or its `otherwise`) may give.
 *
 * @since 0.2.0
 * @category models
 */
export type MapValue = typeof MapValue.Type

/**
 * Looks a value up in `entries` by its text (numbers by their decimal text, so SQLite's affinity
 * turning `"1"` into `1` does not matter). A value not in the map is a reason unless `otherwise`
 * says what it becomes; NULL becomes `otherwise` when given, else stays NULL.
 *
 * @since 0.2.0
 * @category transforms
 */
export const valueMap = (
  entries: Readonly<Record<string, MapValue>>,
  options: { readonly otherwise?: MapValue | undefined } = {}
): Reader => {
  const has = (key: string) => Object.prototype.hasOwnProperty.call(entries, key)
  return (value) => {
    if (value === null || value === undefined) return Either.right(options.otherwise ?? null)
    const key = typeof value === "string" ? value : typeof value === "number" || typeof value === "bigint" ? String(value) : undefined
    if (key !== undefined && has(key)) return Either.right(entries[key]!)
    if (options.otherwise !== undefined) return Either.right(options.otherwise)
    return Either.left(`map: ${describe(value)} is not in the map`)
  }
}

/**
 * A built-in transform named in a plan: `"timestamp"` (or `{ "timestamp": accept }`), `"lower"`,
 * `"trim"`, `{ "json": path }`, or `{ "map": {...}, "otherwise"?: value }`.
 *
 * @since 0.2.0
 * @category models
 */
export const Builtin = Schema.Union(
  Schema.Literal("timestamp", "lower", "trim"),
  Schema.Struct({ timestamp: Timestamp.Accept }),
  Schema.Struct({ json: Schema.NonEmptyString }),
  Schema.Struct({ map: Schema.Record({ key: Schema.String, value: MapValue }), otherwise: Schema.optional(MapValue) })
).annotations({ identifier: "Transform", description: "a built-in transform" })

/**
 * A built-in transform named in a plan.
 *
 * @since 0.2.0
 * @category models
 */
export type Builtin = typeof Builtin.Type

/**
 * The reader of a built-in transform.
 *
 * @since 0.2.0
 * @category transforms
 */
export const reader = (builtin: Builtin): Reader => {
  if (builtin === "timestamp") return timestamp
  if (builtin === "lower") return lower
  if (builtin === "trim") return trim
  if ("timestamp" in builtin) return (value) => timestamp(value, builtin.timestamp)
  if ("json" in builtin) return jsonPath(builtin.json)
  return valueMap(builtin.map, { otherwise: builtin.otherwise })
}

/**
 * The built-ins applied in order (none: the value as stored); the first reason stops the pipeline.
 *
 * @since 0.2.0
 * @category transforms
 */
export const pipeline = (builtins: ReadonlyArray<Builtin>): Reader => {
  const readers = builtins.map(reader)
  return (value) => {
    let current: Either.Either<unknown, string> = Either.right(value ?? null)
    for (const read of readers) {
      if (Either.isLeft(current)) return current
      current = read(current.right)
    }
    return current
  }
}

/**
 * Whether a pipeline's result is epoch milliseconds (it ends in `timestamp`).
 *
 * @since 0.2.0
 * @category transforms
 */
export const yieldsEpochMillis = (builtins: ReadonlyArray<Builtin> | undefined): boolean => {
  const last = builtins?.[builtins.length - 1]
  return last === "timestamp" || (typeof last === "object" && "timestamp" in last)
}
