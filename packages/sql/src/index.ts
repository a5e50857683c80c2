/**
 * @strata/sql — strata's Effect services over @effect/sql (SQLite and PostgreSQL).
 * @since 0.1.0
 */
export {}
