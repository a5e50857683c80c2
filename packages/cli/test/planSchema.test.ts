/**
 * `@strata/core/plan.schema.json`, found as an app finds it (through the package's `exports`),
 * accepts every plan the CLI knows by name, and names what it refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import { Plan } from "@strata/core"
import { Ajv } from "ajv"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import { builtIn } from "../src/PlanSource.js"

const file = createRequire(import.meta.url).resolve("@strata/core/plan.schema.json")
const validate = new Ajv({ allErrors: true }).compile(JSON.parse(Fs.readFileSync(file, "utf8")))

describe("@strata/core/plan.schema.json", () => {
  it.each(Object.keys(builtIn))("accepts the built-in plan %s", (name) => {
    expect(validate(Plan.toJson(builtIn[name]!)), JSON.stringify(validate.errors)).toBe(true)
  })

  it("refuses a step naming a column no SQL identifier can be, at its path", () => {
    const plan = { name: "p", migrations: [{ id: 1, name: "m", steps: [{ _tag: "EpochShadow", table: "t", column: "a;b" }] }] }
    expect(validate(plan)).toBe(false)
    expect(validate.errors?.some((e) => e.instancePath === "/migrations/0/steps/0/column" && e.keyword === "pattern")).toBe(true)
  })
})
