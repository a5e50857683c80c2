/**
 * The small pattern language of `Timestamp.format`: `YYYY MM DD HH mm ss SSS Z z`,
 * `[...]` for literal text, every other character copied as is.
 * @internal
 */
import { type CivilDateTime, isoYear, pad } from "./civil.js"

/** What a pattern can print besides literal text. */
export interface ZonedFields extends CivilDateTime {
  /** Offset from UTC in seconds. */
  readonly offsetSeconds: number
  /** The zone's short name, e.g. `UTC`, `EST`, `GMT+8`. */
  readonly zoneName: string
}

const TOKENS = ["YYYY", "SSS", "MM", "DD", "HH", "mm", "ss", "Z", "z"] as const
type Token = (typeof TOKENS)[number]

type Piece = { readonly token: Token } | { readonly literal: string }

/** `+08:00`, `-05:00`, `+00:00`, or `-04:56:02` when the offset has seconds. */
export const formatOffset = (offsetSeconds: number): string => {
  const sign = offsetSeconds < 0 ? "-" : "+"
  const magnitude = Math.abs(offsetSeconds)
  const seconds = magnitude % 60
  const text = `${sign}${pad(Math.floor(magnitude / 3600), 2)}:${pad(Math.floor(magnitude / 60) % 60, 2)}`
  return seconds === 0 ? text : `${text}:${pad(seconds, 2)}`
}

const compile = (pattern: string): ReadonlyArray<Piece> => {
  const pieces: Array<Piece> = []
  let literal = ""
  let position = 0
  while (position < pattern.length) {
    if (pattern[position] === "[") {
      const close = pattern.indexOf("]", position + 1)
      const end = close < 0 ? pattern.length : close
      literal += pattern.slice(position + 1, end)
      position = end + 1
      continue
    }
    const token = TOKENS.find((candidate) => pattern.startsWith(candidate, position))
    if (token === undefined) {
      literal += pattern[position]
      position++
      continue
    }
    if (literal !== "") pieces.push({ literal })
    literal = ""
    pieces.push({ token })
    position += token.length
  }
  if (literal !== "") pieces.push({ literal })
  return pieces
}

const render = (token: Token, fields: ZonedFields): string => {
  switch (token) {
    case "YYYY":
      return isoYear(fields.year)
    case "MM":
      return pad(fields.month, 2)
    case "DD":
      return pad(fields.day, 2)
    case "HH":
      return pad(fields.hour, 2)
    case "mm":
      return pad(fields.minute, 2)
    case "ss":
      return pad(fields.second, 2)
    case "SSS":
      return pad(fields.millisecond, 3)
    case "Z":
      return formatOffset(fields.offsetSeconds)
    case "z":
      return fields.zoneName
  }
}

/** Renders `fields` through `pattern`. */
export const formatWithPattern = (pattern: string, fields: ZonedFields): string => {
  let out = ""
  for (const piece of compile(pattern)) out += "token" in piece ? render(piece.token, fields) : piece.literal
  return out
}
