/**
 * docs/plans.md, run: each `<!-- example: NAME -->` is a TS block (type-checked against the core's
 * source, and evaluated with `Plan` and `Either` in scope) and the same plan, migration or step as JSON (decoded, and checked against the
 * shipped JSON Schema); the two must be the same plan with the same checksum. Each
 * `<!-- refused: NAME schema|decoder -->` is a JSON plan and the decoder's exact message; `schema`
 * says the shipped JSON Schema refuses it too, `decoder` that only the decoder does. Every step kind
 * and every option of a step (from the JSON Schema) must be on the page.
 */
import { describe, expect, it } from "@effect/vitest"
import { Ajv } from "ajv"
import { Either } from "effect"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { Compile, Plan, PlanJsonSchema } from "../src/index.js"

const page = Fs.readFileSync(new URL("../../../docs/plans.md", import.meta.url), "utf8")
const schema = PlanJsonSchema.make() as unknown as JsonObject
const validate = new Ajv({ allErrors: true }).compile(schema)

type JsonObject = { readonly [key: string]: unknown }

interface Marked {
  readonly kind: "example" | "refused"
  readonly name: string
  readonly flag: string | undefined
  readonly blocks: ReadonlyArray<{ readonly lang: string; readonly text: string }>
}

/** The fenced blocks after each marker, up to the next line that is neither blank nor in a block. */
const marked = (text: string): ReadonlyArray<Marked> => {
  const lines = text.split("\n")
  const found: Array<Marked> = []
  for (let i = 0; i < lines.length; i++) {
    const marker = /^<!-- (example|refused): ([\w-]+)(?: (\w+))? -->$/.exec(lines[i]!)
    if (marker === null) continue
    const blocks: Array<{ lang: string; text: string }> = []
    let j = i + 1
    for (;;) {
      while (j < lines.length && lines[j]!.trim() === "") j++
      const fence = /^```(\w+)$/.exec(lines[j] ?? "")
      if (fence === null) break
      const body: Array<string> = []
      for (j++; j < lines.length && lines[j] !== "```"; j++) body.push(lines[j]!)
      blocks.push({ lang: fence[1]!, text: body.join("\n") })
      j++
    }
    found.push({ kind: marker[1] as Marked["kind"], name: marker[2]!, flag: marker[3], blocks })
  }
  return found
}

const all = marked(page)
const examples = all.filter((m) => m.kind === "example")
const refusals = all.filter((m) => m.kind === "refused")
const block = (m: Marked, lang: string): string => {
  const found = m.blocks.find((b) => b.lang === lang)
  if (found === undefined) throw new Error(`${m.kind} ${m.name} has no ${lang} block`)
  return found.text
}

// The doc's TS is also plain JS (no type annotations), so it can be run as written.
const evaluate = (code: string): unknown => new Function("Plan", "Either", `return (${code})`)(Plan, Either)

/** A step or a migration as a whole plan, so every example goes through the plan decoder. */
const asPlanJson = (value: JsonObject): JsonObject =>
  "migrations" in value ? value : { name: "doc", migrations: [{ id: 1, name: "example", steps: [value] }] }
const asPlan = (value: unknown): Plan.Plan =>
  typeof value === "object" && value !== null && "migrations" in value
    ? (value as Plan.Plan)
    : Plan.make("doc", [Plan.migration(1, "example", [value as Plan.Step])])
const withoutSchemaKey = ({ $schema: _schema, ...rest }: JsonObject): JsonObject => rest

describe("docs/plans.md", () => {
  it("has examples and refusals to run", () => {
    expect(examples.length).toBeGreaterThanOrEqual(9)
    expect(refusals.length).toBeGreaterThanOrEqual(8)
  })

  it.each(examples.filter((m) => m.flag === undefined).map((m) => [m.name, m] as const))(
    "example %s: the TS and the JSON are one plan, which the JSON Schema accepts",
    (_name, example) => {
      const fromTs = asPlan(evaluate(block(example, "ts")))
      const json = asPlanJson(JSON.parse(block(example, "json")) as JsonObject)
      expect(Plan.toJson(fromTs)).toEqual(withoutSchemaKey(json))
      const fromJson = Either.getOrThrow(Plan.decode(json, "plans.md"))
      expect(fromJson).toEqual(fromTs)
      expect(fromJson.migrations.map(Compile.checksum)).toEqual(fromTs.migrations.map(Compile.checksum))
      expect(validate(json), JSON.stringify(validate.errors)).toBe(true)
    }
  )

  it.each(examples.filter((m) => m.flag === "ts").map((m) => [m.name, m] as const))(
    "example %s (TS only): builds, and cannot be written as JSON",
    (_name, example) => {
      const plan = asPlan(evaluate(block(example, "ts")))
      expect(() => Plan.toJson(plan)).toThrow(Plan.PlanNotSerializable)
    }
  )

  it.each(refusals.map((m) => [m.name, m] as const))("refused %s: the decoder's message, word for word", (_name, refused) => {
    const decoded = Plan.fromJson(block(refused, "json"), "plan.json")
    expect(Either.isLeft(decoded) && decoded.left.message).toBe(block(refused, "text"))
    expect(["schema", "decoder"]).toContain(refused.flag)
    expect(validate(JSON.parse(block(refused, "json"))), `the JSON Schema on ${refused.name}`).toBe(refused.flag === "decoder")
  })

  // Each step in the JSON Schema: its _tag and its properties (with those of its list items: columns, targets).
  const steps = (): ReadonlyArray<{ readonly tag: string; readonly options: ReadonlyArray<string> }> => {
    const found: Array<{ tag: string; options: Array<string> }> = []
    const defs = schema["$defs"] as Record<string, JsonObject>
    const resolve = (node: JsonObject): JsonObject =>
      typeof node["$ref"] === "string" ? defs[(node["$ref"] as string).replace("#/$defs/", "")]! : node
    const optionsOf = (node: JsonObject): Array<string> => {
      const properties = (node["properties"] ?? {}) as Record<string, JsonObject>
      return Object.entries(properties).flatMap(([name, property]) => {
        const items = property["type"] === "array" ? resolve(property["items"] as JsonObject) : undefined
        return [name, ...(items !== undefined && items["type"] === "object" ? optionsOf(items) : [])]
      })
    }
    const walk = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(walk)
      if (node === null || typeof node !== "object") return
      const tag = ((node as JsonObject)["properties"] as Record<string, JsonObject> | undefined)?.["_tag"]?.["enum"] as ReadonlyArray<string> | undefined
      if (tag?.length === 1) found.push({ tag: tag[0]!, options: optionsOf(node as JsonObject).filter((o) => o !== "_tag") })
      Object.values(node).forEach(walk)
    }
    walk(defs)
    walk(schema["properties"])
    return found
  }

  const section = (heading: string): string => {
    const start = page.indexOf(`\n### \`${heading}\``)
    if (start < 0) return ""
    const end = page.slice(start + 1).search(/\n##+ /)
    return end < 0 ? page.slice(start) : page.slice(start, start + 1 + end)
  }

  it("documents every step kind and every option of each, in the step's section", () => {
    const kinds = steps()
    // Every kind of Plan.Step: a new kind needs its section (### `camelCaseName`) and an example.
    expect(kinds.map((k) => k.tag).sort()).toEqual(Plan.Step.members.map((member) => member.identifier).sort())
    expect(kinds.length).toBeGreaterThanOrEqual(7)
    const undocumented = kinds.flatMap(({ tag, options }) => {
      const text = section(tag[0]!.toLowerCase() + tag.slice(1))
      if (text === "") return [`${tag}: no section`]
      return options.filter((option) => !text.includes(`\`${option}\``)).map((option) => `${tag}.${option}`)
    })
    expect(undocumented).toEqual([])
    // And each kind has an example.
    const exampled = new Set(examples.map((m) => m.name.split("-")[0]))
    expect(kinds.map((k) => k.tag[0]!.toLowerCase() + k.tag.slice(1)).filter((name) => !exampled.has(name))).toEqual([])
  })

  it("has TS examples that type-check against @strata/core as written", () => {
    const src = fileURLToPath(new URL("../src/index.ts", import.meta.url))
    const file = fileURLToPath(new URL("./plans-md-examples.ts", import.meta.url))
    const text = [
      `import { Plan } from ${JSON.stringify(src.replace(/\.ts$/, ".js"))}`,
      `import { Either } from "effect"`,
      ...examples.map((m, i) => `export const example${i} = ${block(m, "ts")}`)
    ].join("\n")
    const options: ts.CompilerOptions = {
      strict: true, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, noEmit: true, skipLibCheck: true,
      module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, types: []
    }
    const host = ts.createCompilerHost(options)
    const readFile = host.readFile.bind(host)
    const fileExists = host.fileExists.bind(host)
    host.readFile = (name) => (name === file ? text : readFile(name))
    host.fileExists = (name) => name === file || fileExists(name)
    const program = ts.createProgram([file], options, host)
    const problems = ts.getPreEmitDiagnostics(program, program.getSourceFile(file))
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    expect(problems).toEqual([])
  }, 120_000)

  it("documents every opt-in timestamp form", () => {
    const accept = Object.keys(((schema["$defs"] as Record<string, JsonObject>)["TimestampAccept"]!["properties"]) as JsonObject)
    const text = section("accept")
    expect(accept.filter((form) => !text.includes(`\`${form}\``))).toEqual([])
  })
})
