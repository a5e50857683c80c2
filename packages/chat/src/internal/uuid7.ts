/**
 * Message ids: UUIDv7 (RFC 9562): 48 bits of Unix ms, a 12-bit counter, 62 random bits. Ids come
 * out in increasing order within the process (RFC 9562 method 1: the counter orders ids of the same
 * millisecond, and the time part never goes back, even if the clock does), so the primary-key index
 * grows at its right end instead of splitting pages at random places.
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

let lastMs = -1
let counter = 0

/** A UUIDv7 for the instant `ms` (the caller's `Clock` time), greater than every id made before it here. */
export const uuid7 = (ms: number): string => {
  const at = randomBytes()
  const b = pool
  let time = Math.max(0, Math.trunc(ms))
  if (time > lastMs) {
    // A fresh millisecond: the counter starts at a random value in its lower half, leaving room to count.
    counter = ((b[at]! & 0x07) << 8) | b[at + 1]!
  } else {
    time = lastMs
    counter++
    if (counter > 0xfff) {
      time = lastMs + 1
      counter = 0
    }
  }
  lastMs = time
  const high = Math.floor(time / 0x10000)
  const low = time % 0x10000
  return (
    hex[(high >>> 24) & 0xff]! + hex[(high >>> 16) & 0xff]! + hex[(high >>> 8) & 0xff]! + hex[high & 0xff]! + "-" +
    hex[(low >>> 8) & 0xff]! + hex[low & 0xff]! + "-" +
    hex[0x70 | (counter >>> 8)]! + hex[counter & 0xff]! + "-" +
    hex[0x80 | (b[at + 2]! & 0x3f)]! + hex[b[at + 3]!]! + "-" +
    hex[b[at + 4]!]! + hex[b[at + 5]!]! + hex[b[at + 6]!]! + hex[b[at + 7]!]! + hex[b[at + 8]!]! + hex[b[at + 9]!]!
  )
}
