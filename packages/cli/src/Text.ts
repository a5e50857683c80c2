/**
 * Text from a plan, a database or an error message, made safe to print on a terminal: a plan's
 * name may carry an escape sequence that would recolour, move the cursor or hide the rest of the line.
 *
 * @since 0.2.0
 */

// C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and isolates
// (which reorder what follows them on screen).
const unprintable = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

const escape = (char: string): string => {
  if (char === "\r") return "\\r"
  const code = char.charCodeAt(0)
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`
}

/**
 * `text` with every control character other than tab and newline written as an escape (`\x1b`, `\r`,
 * `\x07`, `\u202e`), so what reaches the terminal is exactly what is on the line.
 *
 * @since 0.2.0
 * @category formatting
 */
export const printable = (text: string): string => text.replace(unprintable, escape)
