/**
 * Message ids: UUIDv7 (RFC 9562), 48 bits of Unix ms then random bits. Time-ordered ids keep the
 * primary-key index appending at its right edge instead of splitting pages at random places.
 */
import { getRandomValues } from "node:crypto"

const hex = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"))

// Random bytes are drawn in blocks: one getRandomValues call per 512 ids.
const pool = new Uint8Array(10 * 512)
let poolOffset = pool.length

const randomBytes = (): number => {
  if (poolOffset + 10 > pool.length) {
    getRandomValues(pool)
    poolOffset = 0
  }
  const at = poolOffset
  poolOffset += 10
  return at
}

/** A UUIDv7 for the instant `ms` (the caller's `Clock` time). */
export const uuid7 = (ms: number): string => {
  const at = randomBytes()
  const time = Math.max(0, Math.trunc(ms))
  const high = Math.floor(time / 0x10000)
  const low = time % 0x10000
  const b = pool
  return (
    hex[(high >>> 24) & 0xff]! + hex[(high >>> 16) & 0xff]! + hex[(high >>> 8) & 0xff]! + hex[high & 0xff]! + "-" +
    hex[(low >>> 8) & 0xff]! + hex[low & 0xff]! + "-" +
    hex[0x70 | (b[at]! & 0x0f)]! + hex[b[at + 1]!]! + "-" +
    hex[0x80 | (b[at + 2]! & 0x3f)]! + hex[b[at + 3]!]! + "-" +
    hex[b[at + 4]!]! + hex[b[at + 5]!]! + hex[b[at + 6]!]! + hex[b[at + 7]!]! + hex[b[at + 8]!]! + hex[b[at + 9]!]!
  )
}
