/**
 * The databases a fleet works on, read from a targets file.
 *
 * The file is plain text, one target per line; blank lines and lines starting with `#` are
 * skipped, and ` # …` after a target (a `#` preceded by white space) is a comment. A target is
 * - a SQLite file path, or a glob over file names (`tenants/*.db`: `*`, `?` and `[…]` within one
 *   path segment), relative to the targets file's directory; `sqlite:` and `file:` URLs too;
 * - a PostgreSQL URL (`postgres://user@host:5432/app`): the tables its connection resolves;
 * - a schema of one PostgreSQL server (`postgres://user@host:5432/app#tenant_7`): the plan's
 *   unqualified tables AND strata's own tables (`strata_migrations`, `strata_jobs`,
 *   `strata_rejects`) live in that schema. Its connection's `search_path` is that schema alone
 *   (nothing falls through to `public`), and `Database.StrataSchema` is set to it.
 * A file whose first character (after white space) is `[` is a JSON list of such strings instead.
 *
 * Every problem is a typed error naming the file and the line (or list entry): a target that is
 * not a database URL, a schema that is not an identifier, a SQLite file or glob that names no
 * file, the same database listed twice, a file with no target at all.
 *
 * @since 0.1.0
 */
import { Identifier } from "@strata/core"
import { Database } from "@strata/sql"
import { Effect, Either, Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"

/**
 * One database of the fleet.
 *
 * @since 0.1.0
 * @category models
 */
export type Target = SqliteTarget | PgTarget

/**
 * A SQLite file: its own file and connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqliteTarget {
  readonly _tag: "Sqlite"
  /** Stable identity across runs: the absolute path. */
  readonly id: string
  readonly file: string
  /** For messages. */
  readonly display: string
}

/**
 * A PostgreSQL database, or one schema of it. Targets of one server share a bounded pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgTarget {
  readonly _tag: "Pg"
  /** Stable identity across runs: the URL with its password redacted, `#schema` included. */
  readonly id: string
  /** The server's URL as given, without the `#schema` fragment (the pool's key). */
  readonly url: string
  readonly schema: Identifier.Identifier | undefined
  /** For messages: password redacted. */
  readonly display: string
}

/**
 * A line (or list entry) of the targets file is not a target.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidTarget extends Schema.TaggedError<InvalidTarget>()("InvalidTarget", {
  file: Schema.String,
  /** 1-based line number, or list entry for a JSON list. */
  line: Schema.Number,
  text: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.file}:${this.line}: ${this.reason}: ${this.text}`
  }
}

/**
 * The targets file cannot be read, or its JSON list is malformed.
 *
 * @since 0.1.0
 * @category errors
 */
export class TargetsUnreadable extends Schema.TaggedError<TargetsUnreadable>()("TargetsUnreadable", {
  file: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `cannot read targets file ${this.file}: ${this.reason}`
  }
}

/**
 * The targets file names no database.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoTargets extends Schema.TaggedError<NoTargets>()("NoTargets", { file: Schema.String }) {
  override get message(): string {
    return `targets file ${this.file} lists no database`
  }
}

/**
 * Everything `load` and `parse` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type TargetsError = InvalidTarget | TargetsUnreadable | NoTargets

interface Entry {
  readonly line: number
  readonly text: string
}

const entriesOfText = (text: string): ReadonlyArray<Entry> =>
  text.split(/\r?\n/).flatMap((raw, index) => {
    const withoutComment = raw.replace(/\s#.*$/, "").trim()
    return withoutComment === "" || withoutComment.startsWith("#") ? [] : [{ line: index + 1, text: withoutComment }]
  })

const entriesOfJson = (file: string, text: string): Either.Either<ReadonlyArray<Entry>, TargetsUnreadable | InvalidTarget> => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    return Either.left(new TargetsUnreadable({ file, reason: `not valid JSON (${cause instanceof Error ? cause.message : String(cause)})` }))
  }
  if (!Array.isArray(value)) return Either.left(new TargetsUnreadable({ file, reason: "expected a JSON list of target strings" }))
  const entries: Array<Entry> = []
  for (const [index, item] of value.entries()) {
    if (typeof item !== "string" || item.trim() === "") {
      return Either.left(new InvalidTarget({ file, line: index + 1, text: JSON.stringify(item), reason: "expected a non-empty string" }))
    }
    entries.push({ line: index + 1, text: item.trim() })
  }
  return Either.right(entries)
}

const isPgUrl = (text: string) => /^postgres(ql)?:\/\//i.test(text)
const hasGlob = (text: string) => /[*?[]/.test(text)

const segmentPattern = (segment: string): RegExp => {
  let source = ""
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!
    if (c === "*") source += "[^/]*"
    else if (c === "?") source += "[^/]"
    else if (c === "[") {
      const end = segment.indexOf("]", i + 1)
      if (end < 0) source += "\\["
      else {
        const body = segment.slice(i + 1, end).replace(/^!/, "^").replace(/\\/g, "\\\\")
        source += `[${body}]`
        i = end
      }
    } else source += c.replace(/[.+^${}()|\\\]]/g, "\\$&")
  }
  return new RegExp(`^${source}$`)
}

/** Files matching a glob, sorted; directories along the way are walked one segment at a time. */
const expandGlob = (absolutePattern: string): ReadonlyArray<string> => {
  const root = Path.parse(absolutePattern).root
  const segments = absolutePattern.slice(root.length).split(Path.sep).filter((s) => s !== "")
  let current: Array<string> = [root]
  for (const [index, segment] of segments.entries()) {
    const last = index === segments.length - 1
    const next: Array<string> = []
    for (const dir of current) {
      if (!hasGlob(segment)) {
        const candidate = Path.join(dir, segment)
        if (Fs.existsSync(candidate)) next.push(candidate)
        continue
      }
      const pattern = segmentPattern(segment)
      let names: Array<Fs.Dirent>
      try {
        names = Fs.readdirSync(dir, { withFileTypes: true })
      } catch {
        continue
      }
      for (const entry of names) {
        if (!pattern.test(entry.name)) continue
        if (last ? entry.isFile() : entry.isDirectory()) next.push(Path.join(dir, entry.name))
      }
    }
    current = next
  }
  return current.filter((file) => Fs.statSync(file).isFile()).sort()
}

const pgTarget = (file: string, entry: Entry): Either.Either<PgTarget, InvalidTarget> => {
  const hashAt = entry.text.indexOf("#")
  const url = hashAt < 0 ? entry.text : entry.text.slice(0, hashAt)
  const fragment = hashAt < 0 ? undefined : decodeURIComponent(entry.text.slice(hashAt + 1))
  const parsed = Database.parseUrl(url)
  if (Either.isLeft(parsed)) return Either.left(new InvalidTarget({ file, line: entry.line, text: Database.redact(entry.text), reason: parsed.left.reason }))
  let schema: Identifier.Identifier | undefined
  if (fragment !== undefined) {
    const decoded = Identifier.decode(fragment)
    if (Either.isLeft(decoded)) {
      return Either.left(
        new InvalidTarget({
          file,
          line: entry.line,
          text: Database.redact(entry.text),
          reason: `schema ${JSON.stringify(fragment)} after # is not a SQL identifier (letters, digits and _, not starting with a digit)`
        })
      )
    }
    schema = decoded.right
  }
  const display = schema === undefined ? Database.redact(url) : `${Database.redact(url)}#${schema}`
  return Either.right({ _tag: "Pg", id: display, url, schema, display })
}

const sqliteTargets = (file: string, baseDir: string, entry: Entry): Either.Either<ReadonlyArray<SqliteTarget>, InvalidTarget> => {
  const parsed = Database.parseUrl(entry.text)
  if (Either.isLeft(parsed)) return Either.left(new InvalidTarget({ file, line: entry.line, text: entry.text, reason: parsed.left.reason }))
  const invalid = (reason: string) => Either.left(new InvalidTarget({ file, line: entry.line, text: entry.text, reason }))
  if (parsed.right._tag !== "Sqlite") return invalid("expected a SQLite path or a postgres:// URL")
  const filename = parsed.right.filename
  if (filename === ":memory:") return invalid("an in-memory database cannot be a fleet target (it is gone when its connection closes)")
  const absolute = Path.resolve(baseDir, filename)
  const files = hasGlob(filename) ? expandGlob(absolute) : Fs.existsSync(absolute) ? [absolute] : []
  if (files.length === 0) {
    return invalid(hasGlob(filename) ? "the glob matches no file" : "no such SQLite file (a fleet never creates its tenants' databases)")
  }
  return Either.right(files.map((f) => ({ _tag: "Sqlite" as const, id: f, file: f, display: Path.relative(process.cwd(), f) || f })))
}

/**
 * The targets of a file's text, in file order (a glob's files sorted by name). `file` names the
 * file in errors; relative SQLite paths are resolved against `baseDir`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parse = (
  text: string,
  options: { readonly file: string; readonly baseDir: string }
): Either.Either<ReadonlyArray<Target>, TargetsError> =>
  Either.gen(function*() {
    const { baseDir, file } = options
    const entries = text.trimStart().startsWith("[") ? yield* entriesOfJson(file, text) : entriesOfText(text)
    const targets: Array<Target> = []
    const firstLine = new Map<string, number>()
    for (const entry of entries) {
      const found = isPgUrl(entry.text) ? [yield* pgTarget(file, entry)] : yield* sqliteTargets(file, baseDir, entry)
      for (const target of found) {
        const earlier = firstLine.get(target.id)
        if (earlier !== undefined) {
          return yield* Either.left(
            new InvalidTarget({ file, line: entry.line, text: entry.text, reason: `${target.display} is already listed on line ${earlier}` })
          )
        }
        firstLine.set(target.id, entry.line)
        targets.push(target)
      }
    }
    if (targets.length === 0) return yield* Either.left(new NoTargets({ file }))
    return targets
  })

/**
 * Reads and parses a targets file (see the module documentation).
 *
 * @since 0.1.0
 * @category constructors
 */
export const load = (file: string): Effect.Effect<ReadonlyArray<Target>, TargetsError> =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => Fs.readFileSync(file, "utf8"),
      catch: (cause) => new TargetsUnreadable({ file, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    return yield* parse(text, { file, baseDir: Path.dirname(Path.resolve(file)) })
  })

/**
 * The key of the pool a target's connection comes from: the server URL for PostgreSQL, the file
 * for SQLite (each SQLite target has its own connection).
 *
 * @since 0.1.0
 * @category models
 */
export const poolKey = (target: Target): string => (target._tag === "Pg" ? target.url : target.file)
