/**
 * The options every subcommand takes, written after it (`strata migrate --db ./x.db`).
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

/**
 * `--plan` with another default (the command that imports into the chat store defaults to `chat-store`).
 *
 * @since 0.1.0
 */
export const planWithDefault = (name: string) =>
  Options.text("plan").pipe(
    Options.withPseudoName("name|file"),
    Options.withDescription(
      `The plan: agentos or chat-store (built in), a .json file, or a .js/.mjs module exporting a plan (default export or \`plan\`). Default ${name}.`
    ),
    Options.withDefault(name)
  )

/**
 * `--plan`: a built-in plan name, a `.json` file, or a `.js`/`.mjs` module exporting a plan.
 *
 * @since 0.1.0
 */
export const plan = planWithDefault("agentos")

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
  readonly plan: string
  readonly json: boolean
}
