/**
 * @strata/core — the pure part of strata: time, plans and everything derived from them.
 * @since 0.1.0
 */
export * as Timestamp from "./Timestamp.js"
