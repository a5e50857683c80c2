/**
 * SQL identifiers (table, column, index names) as a Schema, so a plan cannot carry injection.
 *
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"

// One part of a name, its length limit included: the same text checks input here and in the JSON Schema.
const identifierPart = "[A-Za-z_][A-Za-z0-9_]{0,62}"
const identifierPattern = new RegExp(`^${identifierPart}$`)
const tableNamePattern = new RegExp(`^${identifierPart}(?:\\.${identifierPart})?$`)

/**
 * A table, column or index name: a letter or underscore, then letters, digits or underscores,
 * at most 63 characters (PostgreSQL's limit). Quotes, spaces, dots and semicolons are rejected,
 * so an identifier can always be double-quoted safely on both engines.
 *
 * @since 0.1.0
 */
export const Identifier = Schema.String.pipe(
  Schema.filter((s) =>
    identifierPattern.test(s)
      ? true
      : `expected a SQL identifier (letters, digits and _, not starting with a digit, at most 63 characters), got ${JSON.stringify(s)}`
  ),
  Schema.brand("Identifier"),
  Schema.annotations({ identifier: "Identifier", jsonSchema: { pattern: identifierPattern.source } })
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
 * @category sql
 */
export const quote = (identifier: Identifier | string): string => `"${identifier}"`


/**
 * A table name, optionally qualified by its schema: `messages` or `app.messages` (PostgreSQL
 * schema, or an attached SQLite database). Each part is an `Identifier`; nothing else (no quotes,
 * no third part) is accepted, so a table name can always be quoted safely with `quoteTable`.
 *
 * @since 0.2.0
 * @category models
 */
export const TableName = Schema.String.pipe(
  Schema.filter((s) => {
    return tableNamePattern.test(s)
      ? true
      : `expected a table name (an identifier, or schema.table with each part an identifier: letters, digits and _, not starting with a digit, at most 63 characters), got ${JSON.stringify(s)}`
  }),
  Schema.brand("TableName"),
  Schema.annotations({ identifier: "TableName", jsonSchema: { pattern: tableNamePattern.source } })
)

/**
 * A validated table name, `table` or `schema.table`.
 *
 * @since 0.2.0
 * @category models
 */
export type TableName = typeof TableName.Type

/**
 * The parts of a table name: its schema (`undefined` when unqualified: the connection's current
 * schema) and the table itself.
 *
 * @since 0.2.0
 * @category models
 */
export interface TableParts {
  readonly schema: Identifier | undefined
  readonly table: Identifier
}

/**
 * Splits a table name into its schema and table.
 *
 * @since 0.2.0
 * @category sql
 */
export const tableParts = (name: TableName | Identifier): TableParts => {
  const dot = name.indexOf(".")
  return dot < 0
    ? { schema: undefined, table: name as string as Identifier }
    : { schema: name.slice(0, dot) as Identifier, table: name.slice(dot + 1) as Identifier }
}

/**
 * Quotes a table name for SQL text, each part on its own: `"app"."messages"`.
 *
 * @since 0.2.0
 * @category sql
 */
export const quoteTable = (name: TableName | Identifier): string => {
  const parts = tableParts(name)
  return parts.schema === undefined ? quote(parts.table) : `${quote(parts.schema)}.${quote(parts.table)}`
}

/**
 * Qualifies a table of strata's own (or any unqualified name) with a schema; unchanged when the
 * schema is `undefined`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const qualify = (schema: Identifier | undefined, table: Identifier): TableName =>
  (schema === undefined ? table : `${schema}.${table}`) as string as TableName

/**
 * Decodes a table name, failing with a `ParseError` that quotes the bad input.
 *
 * @since 0.2.0
 * @category constructors
 */
export const decodeTableName: (input: unknown) => Either.Either<TableName, ParseResult.ParseError> = Schema
  .decodeUnknownEither(TableName)
