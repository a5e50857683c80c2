/**
 * @strata/fleet — one plan across many databases: SQLite tenants, PostgreSQL schemas and servers,
 * on one machine (`Fleet`) or as durable workflows on @effect/cluster (`FleetCluster`).
 * @since 0.1.0
 */
export * as Targets from "./Targets.js"
export * as Ledger from "./Ledger.js"
export * as Fleet from "./Fleet.js"
export * as FleetCluster from "./FleetCluster.js"
