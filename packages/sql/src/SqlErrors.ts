/**
 * Telling a row the database will never accept (retrying cannot help) from a failure of the
 * connection or the server (retrying later can).
 */
import { SqlError } from "@effect/sql/SqlError"

const codeOf = (cause: unknown): string | undefined => {
  const code = (cause as { readonly code?: unknown } | null | undefined)?.code
  return typeof code === "string" ? code : undefined
}

/** The driver's error code (`SQLITE_BUSY`, PostgreSQL's SQLSTATE `55P03`) of a failure or of the driver error a `SqlError` wraps. */
export const errorCode = (error: unknown): string | undefined => codeOf(error instanceof SqlError ? error.cause : error)

/**
 * Whether the failure is about the rows written: a constraint violation (SQLite `SQLITE_CONSTRAINT*`,
 * PostgreSQL class 23), bad data (`SQLITE_MISMATCH`, `SQLITE_TOOBIG`, class 22) or a row beyond a
 * limit (class 54, e.g. an index entry too large).
 */
export const isRowRejected = (error: unknown): boolean => {
  const code = errorCode(error)
  if (code === undefined) return false
  if (code.startsWith("SQLITE_")) {
    return code.startsWith("SQLITE_CONSTRAINT") || code === "SQLITE_MISMATCH" || code === "SQLITE_TOOBIG"
  }
  return /^(22|23|54)[0-9A-Z]{3}$/.test(code)
}

/**
 * The database's own words for a failure (the driver's message, not the wrapper's), with the
 * driver's error code when the message does not already say it; each error of an
 * `AggregateError` (node-postgres trying several addresses) in turn. The one way strata turns a
 * failure into an error's `reason`.
 */
export const failureText = (error: unknown): string => {
  if (error instanceof SqlError) return error.cause !== undefined ? failureText(error.cause) : error.message
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(failureText).join("; ")
  if (error instanceof Error) {
    const code = codeOf(error)
    const text = error.message !== "" ? error.message : error.name
    return code !== undefined && !text.includes(code) ? `${text} (${code})` : text
  }
  return String(error)
}
