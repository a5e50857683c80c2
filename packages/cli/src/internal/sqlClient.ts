/**
 * The `SqlClient` service tag for the few statements the CLI runs itself (the demo's legacy data).
 * @strata/cli does not depend on @effect/sql directly, so the tag is rebuilt from its key (Effect
 * resolves services by key, so this is the very service `Database.layer` provides) and the type
 * is taken from `Database.layer`'s output.
 */
import type { Database } from "@strata/sql"
import { Context, type Layer } from "effect"

export type SqlClient = Layer.Layer.Success<ReturnType<typeof Database.layer>>

export const SqlClient = Context.GenericTag<SqlClient>("@effect/sql/SqlClient")
