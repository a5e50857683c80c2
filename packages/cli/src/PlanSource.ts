/**
 * `--plan`: a built-in plan by name (`agentos`), a `.json` file, or a `.js`/`.mjs` module that
 * exports a plan (default export or an export named `plan`). Every failure names the source.
 *
 * @since 0.1.0
 */
import { ChatPlan } from "@strata/chat"
import { Plan, Plans } from "@strata/core"
import { Effect, Option, Schema } from "effect"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"

/**
 * The plans the CLI knows by name.
 *
 * @since 0.1.0
 */
export const builtIn: Readonly<Record<string, Plan.Plan>> = { agentos: Plans.agentos, "chat-store": ChatPlan.plan }

/**
 * The plan file or module could not be read or loaded.
 *
 * @since 0.1.0
 */
export class PlanUnreadable extends Schema.TaggedError<PlanUnreadable>()("PlanUnreadable", {
  source: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot read plan ${this.source}: ${this.reason}`
  }
}

/**
 * `--plan` is neither a built-in name nor a path strata can load.
 *
 * @since 0.1.0
 */
export class UnknownPlan extends Schema.TaggedError<UnknownPlan>()("UnknownPlan", { source: Schema.String }) {
  override get message(): string {
    return `unknown plan ${JSON.stringify(this.source)}: give a built-in plan (${Object.keys(builtIn).join(", ")}), a .json file or a .js/.mjs module`
  }
}

/**
 * The command needs a plan and none was given (`--plan` or `STRATA_PLAN`). strata never picks one
 * silently: applying a built-in plan to an app's database by mistake would change it.
 *
 * @since 0.2.0
 * @category errors
 */
export class PlanRequired extends Schema.TaggedError<PlanRequired>()("PlanRequired", {}) {
  override get message(): string {
    return `no plan given: pass --plan NAME|FILE or set STRATA_PLAN (built in: ${Object.keys(builtIn).join(", ")}; or a .json file, a .js/.mjs module)`
  }
}

/**
 * Everything `load` can fail with.
 *
 * @since 0.1.0
 */
export type PlanError = PlanUnreadable | UnknownPlan | Plan.InvalidPlan | PlanRequired

const describeFsError = (error: unknown): string => {
  const code = (error as { readonly code?: unknown }).code
  switch (code) {
    case "ENOENT":
      return "ENOENT: no such file"
    case "EACCES":
    case "EPERM":
      return `${code}: permission denied`
    case "EISDIR":
      return "EISDIR: it is a directory"
    default:
      return typeof code === "string" ? `${code}: ${(error as Error).message}` : String(error)
  }
}

const readJsonPlan = (source: string) =>
  Effect.tryPromise({
    try: () => Fs.readFile(source, "utf8"),
    catch: (error) => new PlanUnreadable({ source, reason: describeFsError(error) })
  }).pipe(Effect.flatMap((text) => Plan.fromJson(text, source)))

const firstLine = (text: string): string => text.split("\n")[0] ?? text

const importPlanModule = (source: string) =>
  Effect.gen(function*() {
    const file = Path.resolve(source)
    // import() of a missing file fails with a module-resolution message; stat first for a plain ENOENT.
    yield* Effect.tryPromise({
      try: () => Fs.access(file),
      catch: (error) => new PlanUnreadable({ source, reason: describeFsError(error) })
    })
    const module = yield* Effect.tryPromise({
      try: () => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>,
      // A plan constructor (Plan.epochShadow, Plan.derive, ...) that refused its input: its own message, as for a JSON plan.
      catch: (error) =>
        error instanceof Plan.InvalidPlan
          ? error
          : new PlanUnreadable({
            source,
            reason: error instanceof Error ? `${error.name}: ${firstLine(error.message)}` : String(error)
          })
    })
    const exported = module["default"] ?? module["plan"]
    if (exported === undefined) {
      return yield* new PlanUnreadable({ source, reason: "the module exports no plan (expected a default export or an export named \"plan\")" })
    }
    return yield* Plan.decode(exported, source)
  })

/**
 * Loads the plan `--plan` (or `STRATA_PLAN`) names; `PlanRequired` when neither is given.
 *
 * @since 0.1.0
 */
export const load = (given: Option.Option<string>): Effect.Effect<Plan.Plan, PlanError> =>
  Option.match(given, { onNone: () => Effect.fail(new PlanRequired()), onSome: loadSource })

const loadSource = (source: string): Effect.Effect<Plan.Plan, PlanError> => {
  const named = Object.prototype.hasOwnProperty.call(builtIn, source) ? builtIn[source] : undefined
  if (named !== undefined) return Effect.succeed(named)
  const extension = Path.extname(source).toLowerCase()
  if (extension === ".json") return readJsonPlan(source)
  if (extension === ".js" || extension === ".mjs" || extension === ".cjs") return importPlanModule(source)
  return Effect.fail(new UnknownPlan({ source }))
}
