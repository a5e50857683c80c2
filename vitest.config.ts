import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

// Tests run against the TypeScript sources; the CLI end-to-end tests run the built binary (`tsc -b` runs first).
const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url))
const alias = { "@strata/core": src("core"), "@strata/sql": src("sql"), "@strata/chat": src("chat"), "@strata/fleet": src("fleet") }

export default defineConfig({
  resolve: { alias },
  test: {
    // Starts a throwaway PostgreSQL when STRATA_TEST_PG_URL is not set (see the file).
    globalSetup: ["./test/support/globalPostgres.ts"],
    // Two test files at a time, also on two cores (vitest's default there is one): most files wait
    // on child processes, PostgreSQL and timers rather than the CPU, so the suite takes about 0.8x
    // the time of one file at a time. Every file works in its own SQLite files and PostgreSQL schemas.
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      // Inline projects do not inherit the root's test options: each states its own timeouts. The core's
      // 100k-run property tests take 2-4 s alone and several times that on two busy cores.
      { resolve: { alias }, test: { name: "core", include: ["packages/core/test/**/*.test.ts"], testTimeout: 60_000 } },
      { resolve: { alias }, test: { name: "sql", include: ["packages/sql/test/**/*.test.ts"], testTimeout: 120_000, hookTimeout: 60_000 } },
      { resolve: { alias }, test: { name: "fleet", include: ["packages/fleet/test/**/*.test.ts"], testTimeout: 300_000, hookTimeout: 60_000 } },
      { resolve: { alias }, test: { name: "chat", include: ["packages/chat/test/**/*.test.ts"], testTimeout: 120_000, hookTimeout: 60_000 } },
      { resolve: { alias }, test: { name: "cli", include: ["packages/cli/test/**/*.test.ts"], testTimeout: 180_000, hookTimeout: 60_000 } },
      { resolve: { alias }, test: { name: "integration", include: ["test/**/*.test.ts"], testTimeout: 300_000, hookTimeout: 60_000 } }
    ]
  }
})
