/**
 * SQL identifiers (table, column, index names) as a Schema, so a plan cannot carry injection.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"

/**
 * A table, column or index name: a letter or underscore, then letters, digits or underscores,
 * at most 63 characters (PostgreSQL's limit). Quotes, spaces, dots and semicolons are rejected,
 * so an identifier can always be double-quoted safely on both engines.
 *
 * @since 0.1.0
 */
export const Identifier = Schema.String.pipe(
  Schema.filter((s) =>
    /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) && s.length <= 63
      ? true
      : `expected a SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters), got ${JSON.stringify(s)}`
  ),
  Schema.brand("Identifier"),
  Schema.annotations({ identifier: "Identifier" })
)

/**
 * A validated SQL table, column or index name.
 *
 * @since 0.1.0
 */
export type Identifier = typeof Identifier.Type

/**
 * Decodes an identifier, failing with a `ParseError` that quotes the bad input.
 *
 * @since 0.1.0
 */
export const decode: (input: unknown) => Either.Either<Identifier, ParseResult.ParseError> = Schema.decodeUnknownEither(
  Identifier
)

/**
 * Builds an identifier from a literal, throwing on bad input (for plans written in code).
 *
 * @since 0.1.0
 */
export const unsafeMake: (input: string) => Identifier = Schema.decodeUnknownSync(Identifier)

/**
 * Double-quotes an identifier for SQL text. Safe because `Identifier` excludes quotes.
 *
 * @since 0.1.0
 */
export const quote = (identifier: Identifier | string): string => `"${identifier}"`
