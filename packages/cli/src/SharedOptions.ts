/**
 * The options every subcommand takes, written after it (`strata migrate --db ./x.db`) or before it
 * (`strata --db ./x.db migrate`, see `Cli.hoistGlobalOptions`).
 *
 * @since 0.1.0
 */
import { Options } from "@effect/cli"
import { Config, Option } from "effect"

/**
 * `--db`: a SQLite file path, a `sqlite:` URL or a `postgres://` URL; `STRATA_DATABASE_URL`, then `./strata.db`.
 *
 * @since 0.1.0
 */
export const db = Options.text("db").pipe(
  Options.withPseudoName("path|url"),
  Options.withDescription(
    "The database: a SQLite file path, a sqlite: URL, or a postgres:// URL. Falls back to STRATA_DATABASE_URL, then ./strata.db."
  ),
  Options.withFallbackConfig(Config.string("STRATA_DATABASE_URL")),
  Options.withDefault("./strata.db")
)

const planDescription =
  "agentos or chat-store (built in), a .json file, or a .js/.mjs module exporting a plan (default export or `plan`)."

/**
 * `--plan`, falling back to `STRATA_PLAN`: a built-in plan name, a `.json` file, or a `.js`/`.mjs`
 * module exporting a plan. Never defaulted: a command that needs a plan and gets none says so
 * (`PlanSource.PlanRequired`) instead of silently working on a built-in one.
 *
 * @since 0.1.0
 */
export const plan = Options.text("plan").pipe(
  Options.withPseudoName("name|file"),
  Options.withDescription(`The plan (required; falls back to STRATA_PLAN): ${planDescription}`),
  Options.withFallbackConfig(Config.string("STRATA_PLAN")),
  Options.optional
)

/**
 * `--plan` where a plan only narrows what is shown (`rejects`): optional, falling back to `STRATA_PLAN`.
 *
 * @since 0.2.0
 */
export const planFilter = Options.text("plan").pipe(
  Options.withPseudoName("name|file"),
  Options.withDescription(`Only this plan's jobs (falls back to STRATA_PLAN; default: every job): ${planDescription}`),
  Options.withFallbackConfig(Config.string("STRATA_PLAN")),
  Options.optional
)

/**
 * `--plan` for a command that works on one plan of its own (`import-legacy`: the chat store's):
 * `name` unless given; `STRATA_PLAN`, which names the app's plan, is not read.
 *
 * @since 0.2.0
 */
export const planWithDefault = (name: string) =>
  Options.text("plan").pipe(
    Options.withPseudoName("name|file"),
    Options.withDescription(`The plan: ${planDescription} Default ${name}.`),
    Options.withDefault(name),
    Options.map(Option.some)
  )

/**
 * `--json`: machine-readable output on stdout; logs stay on stderr.
 *
 * @since 0.1.0
 */
export const json = Options.boolean("json").pipe(
  Options.withDescription("Machine-readable JSON on stdout (logs go to stderr as JSON lines).")
)

/**
 * `--job NAME`, repeatable (`backfill`, `verify`): the names given, or none.
 *
 * @since 0.1.0
 */
export const jobs = (description: string) =>
  Options.text("job").pipe(
    Options.withPseudoName("NAME"),
    Options.withDescription(description),
    Options.repeated,
    // Optional so usage shows [--job NAME]... (a bare repeated option reads as required).
    Options.optional,
    Options.map(Option.getOrElse((): ReadonlyArray<string> => []))
  )

/**
 * The shared options, to spread into each subcommand's config.
 *
 * @since 0.1.0
 */
export const shared = { db, plan, json } as const

/**
 * The parsed shared options.
 *
 * @since 0.1.0
 */
export interface Shared {
  readonly db: string
  readonly plan: Option.Option<string>
  readonly json: boolean
}
