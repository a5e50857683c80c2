import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { DriverMissing, loadDriver } from "../src/internal/driverMissing.js"
import { importPg, importSqlite } from "../src/internal/drivers.js"

// A real failed import (the module does not exist), not a stand-in error.
const importAbsent = (): Promise<unknown> => {
  const specifier = "strata-test-no-such-driver"
  return import(specifier)
}

describe("driver loading", () => {
  it.effect("a driver that is not installed is DriverMissing naming the packages to install", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(loadDriver("pg", importAbsent, () => "other"))
      expect(error).toBeInstanceOf(DriverMissing)
      expect(error).toMatchObject({ _tag: "DriverMissing", engine: "pg", packages: ["@effect/sql-pg", "pg"] })
      expect((error as DriverMissing).message).toBe("The PostgreSQL driver is not installed: npm install @effect/sql-pg pg")

      const sqlite = yield* Effect.flip(loadDriver("sqlite", importAbsent, () => "other"))
      expect(sqlite).toMatchObject({ _tag: "DriverMissing", engine: "sqlite", packages: ["@effect/sql-sqlite-node"] })
      expect((sqlite as DriverMissing).message).toBe("The SQLite driver is not installed: npm install @effect/sql-sqlite-node")
    }))

  it.effect("an installed driver that fails to load is not called missing", () =>
    Effect.gen(function*() {
      const broken = () => Promise.reject(new Error("native binding failed"))
      const error = yield* Effect.flip(loadDriver("sqlite", broken, (cause) => ({ other: String(cause) })))
      expect(error).toEqual({ other: "Error: native binding failed" })
    }))

  it.effect("the installed drivers load", () =>
    Effect.gen(function*() {
      const sqlite = yield* loadDriver("sqlite", importSqlite, (cause) => cause)
      expect(typeof sqlite.SqliteClient.make).toBe("function")
      const pg = yield* loadDriver("pg", importPg, (cause) => cause)
      expect(typeof pg.PgClient.make).toBe("function")
      expect(pg.Pg.types.builtins.INT8).toBe(20)
    }))
})
