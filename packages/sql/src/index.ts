/**
 * @strata/sql — strata's Effect services over @effect/sql (SQLite and PostgreSQL).
 * @since 0.1.0
 */
export * as Database from "./Database.js"
export * as Logging from "./Logging.js"
export * as LazyMigration from "./LazyMigration.js"
export * as ChatStore from "./ChatStore.js"
export * as Migrator from "./Migrator.js"
export * as BackfillRunner from "./BackfillRunner.js"
export * as WriteBehind from "./WriteBehind.js"
export * as Verifier from "./Verifier.js"
export * as Progress from "./Progress.js"
export * as LegacyImport from "./LegacyImport.js"
