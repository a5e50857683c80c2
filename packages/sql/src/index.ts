/**
 * @strata/sql — strata's Effect services over @effect/sql (SQLite and PostgreSQL).
 * @since 0.1.0
 */
export * as Database from "./Database.js"
export * as Logging from "./Logging.js"
export * as Catalog from "./Catalog.js"
export * as JobState from "./JobState.js"
export * as SqlErrors from "./SqlErrors.js"
export * as Migrator from "./Migrator.js"
export * as BackfillRunner from "./BackfillRunner.js"
export * as LazyMigration from "./LazyMigration.js"
export * as Verifier from "./Verifier.js"

/**
 * The verifications strata records (`strata_verifications`) and the gate of contract migrations.
 *
 * @since 0.2.0
 */
export * as Verifications from "./Verifications.js"
export * as Progress from "./Progress.js"
