/**
 * @strata/core — the pure part of strata: time, plans and everything derived from them.
 * @since 0.1.0
 */
export * as Timestamp from "./Timestamp.js"
export * as Identifier from "./Identifier.js"
export * as Plan from "./Plan.js"
export * as Compile from "./Compile.js"
export * as Backfill from "./Backfill.js"
export * as Lazy from "./Lazy.js"
export * as Plans from "./Plans.js"
export * as Progress from "./Progress.js"
export * as FastPath from "./FastPath.js"
export * as Checks from "./Checks.js"
export * as Options from "./Options.js"
export * as Transform from "./Transform.js"
export * as PlanJsonSchema from "./PlanJsonSchema.js"
