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

const lostConnectionMessages = [
  "Connection terminated",
  "Client has encountered a connection error and is not queryable",
  "Client was closed and is not queryable"
]

/**
 * Whether the failure is the connection's, not the statement's: PostgreSQL's connection exceptions
 * (class 08) and shutdowns (57P01 a terminated backend, 57P02 a crash, 57P03 not yet accepting
 * connections), node-postgres's own words for a connection it lost, and a socket's errors. Such a
 * failure says nothing of the statement that was running.
 */
export const isConnectionLost = (error: unknown): boolean => {
  const cause = error instanceof SqlError ? error.cause ?? error : error
  const code = codeOf(cause)
  if (code !== undefined && (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code))) return true
  if (code !== undefined && ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTCONN"].includes(code)) return true
  const message = cause instanceof Error ? cause.message : ""
  return lostConnectionMessages.some((text) => message.startsWith(text))
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
