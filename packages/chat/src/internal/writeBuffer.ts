/**
 * The in-memory side of `WriteBehind`: acknowledged messages not yet known to be stored, in append
 * order (one FIFO for flushing, one list per session for reads), and each session's next `seq`.
 * Synchronous and single-threaded by construction: every mutation runs inside one `Effect.sync`.
 *
 * A flush always takes a prefix of the FIFO, and a session's messages enter the FIFO in `seq`
 * order, so completing a flush removes a prefix of the FIFO and a prefix of each session's list.
 */
import type { Message } from "../ChatModel.js"

interface SessionEntry {
  nextSeq: number
  readonly buffered: Array<Message>
}

export class WriteBuffer {
  private queue: Array<Message> = []
  /** When each queued message was appended (`Clock` ms), parallel to `queue`: what a flush is due by. */
  private arrivals: Array<number> = []
  private head = 0
  private readonly sessions = new Map<string, SessionEntry>()
  private readonly suppliedIds = new Set<string>()
  /** Messages ever completed (written, or isolated as poison): the FIFO position of `head`. */
  completed = 0

  get pending(): number {
    return this.queue.length - this.head
  }

  get trackedSessions(): number {
    return this.sessions.size
  }

  isTracked(sessionId: string): boolean {
    return this.sessions.has(sessionId)
  }

  /** Starts tracking a session whose stored messages end at `lastSeq` (no-op if already tracked). */
  track(sessionId: string, lastSeq: number): void {
    if (!this.sessions.has(sessionId)) this.sessions.set(sessionId, { nextSeq: lastSeq + 1, buffered: [] })
  }

  hasSuppliedId(id: string): boolean {
    return this.suppliedIds.has(id)
  }

  /**
   * Assigns the session's next `seq`s to `count` messages built by `make`, buffers them, and returns
   * them with the FIFO position after the last one (what a `flush` waits for).
   */
  push(
    sessionId: string,
    count: number,
    make: (index: number, seq: number) => Message,
    supplied: (index: number) => boolean,
    nowMs: number
  ): { readonly messages: ReadonlyArray<Message>; readonly position: number } {
    const entry = this.sessions.get(sessionId)
    if (entry === undefined) throw new Error(`WriteBuffer: session ${sessionId} is not tracked`)
    const messages: Array<Message> = []
    for (let i = 0; i < count; i++) {
      const message = make(i, entry.nextSeq++)
      if (supplied(i)) this.suppliedIds.add(message.id)
      entry.buffered.push(message)
      this.queue.push(message)
      this.arrivals.push(nowMs)
      messages.push(message)
    }
    return { messages, position: this.completed + this.pending }
  }

  /** `push` of one message without a supplied id, for the hot path; `undefined` when the session is not tracked. */
  pushOne(sessionId: string, make: (seq: number) => Message, nowMs: number): Message | undefined {
    const entry = this.sessions.get(sessionId)
    if (entry === undefined) return undefined
    const message = make(entry.nextSeq++)
    entry.buffered.push(message)
    this.queue.push(message)
    this.arrivals.push(nowMs)
    return message
  }

  /** When the oldest message after the first `skip` pending ones was appended; `undefined` when there is none. */
  arrivalAfter(skip: number): number | undefined {
    return this.arrivals[this.head + skip]
  }

  /** The oldest `max` buffered messages (the next flush). */
  nextBatch(max: number): ReadonlyArray<Message> {
    return this.queue.slice(this.head, this.head + max)
  }

  /** Removes a flushed batch (a FIFO prefix) from the FIFO and from each session's list. */
  complete(batch: ReadonlyArray<Message>): void {
    const perSession = new Map<string, number>()
    for (const message of batch) {
      perSession.set(message.sessionId, (perSession.get(message.sessionId) ?? 0) + 1)
      this.suppliedIds.delete(message.id)
    }
    for (const [sessionId, count] of perSession) this.sessions.get(sessionId)?.buffered.splice(0, count)
    this.head += batch.length
    this.completed += batch.length
    // Reclaim the consumed front once it dominates the array.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.arrivals = this.arrivals.slice(this.head)
      this.head = 0
    }
  }

  /** A session's buffered messages in `seq` order (a copy). */
  snapshot(sessionId: string): ReadonlyArray<Message> {
    return this.sessions.get(sessionId)?.buffered.slice() ?? []
  }

  /** The first `limit` of a session's buffered messages with `seq > afterSeq`, in `seq` order (a copy). */
  snapshotAfter(sessionId: string, afterSeq: number, limit: number): ReadonlyArray<Message> {
    const buffered = this.sessions.get(sessionId)?.buffered ?? []
    const start = firstAbove(buffered, afterSeq)
    return buffered.slice(start, start + limit)
  }

  /** The newest `limit` of a session's buffered messages, in `seq` order (a copy). */
  snapshotNewest(sessionId: string, limit: number): ReadonlyArray<Message> {
    const buffered = this.sessions.get(sessionId)?.buffered ?? []
    return buffered.slice(Math.max(0, buffered.length - limit))
  }

  /** Forgets a session's next `seq` when nothing of it is buffered (it is re-read from the database on next use). */
  forget(sessionId: string): void {
    const entry = this.sessions.get(sessionId)
    if (entry !== undefined && entry.buffered.length === 0) this.sessions.delete(sessionId)
  }

  /** Forgets idle sessions beyond `max` tracked ones. */
  evictIdle(max: number): void {
    if (this.sessions.size <= max) return
    for (const [sessionId, entry] of this.sessions) {
      if (this.sessions.size <= max) return
      if (entry.buffered.length === 0) this.sessions.delete(sessionId)
    }
  }
}

/** The index of the first message with `seq > afterSeq` in `messages` (in `seq` order). */
const firstAbove = (messages: ReadonlyArray<Message>, afterSeq: number): number => {
  let low = 0
  let high = messages.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (messages[middle]!.seq > afterSeq) high = middle
    else low = middle + 1
  }
  return low
}
