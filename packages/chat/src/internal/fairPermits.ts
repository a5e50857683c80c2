/**
 * Permits handed out first come, first served. Effect's `Semaphore` lets a running fiber take
 * freed permits before the fibers already waiting for them resume, so one busy appender can
 * starve the others indefinitely; here a newcomer queues behind whoever is waiting.
 */
import { Effect } from "effect"

interface Waiter {
  readonly count: number
  granted: boolean
  readonly grant: () => void
}

export class FairPermits {
  private available: number
  private readonly waiting: Array<Waiter> = []

  constructor(permits: number) {
    this.available = permits
  }

  /** Waits until `count` permits are free and no earlier caller is still waiting; interruptible. */
  take(count: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.waiting.length === 0 && this.available >= count) {
        this.available -= count
        return Effect.void
      }
      return Effect.async<void>((resume) => {
        const waiter: Waiter = {
          count,
          granted: false,
          grant: () => {
            waiter.granted = true
            resume(Effect.void)
          }
        }
        this.waiting.push(waiter)
        return Effect.sync(() => {
          if (waiter.granted) {
            this.release(count)
          } else {
            const at = this.waiting.indexOf(waiter)
            if (at >= 0) this.waiting.splice(at, 1)
            // A large request leaving the head of the queue may unblock smaller ones behind it.
            this.grantWaiting()
          }
        })
      })
    })
  }

  /** Takes `count` permits now if they are free and nobody is waiting; otherwise takes nothing. */
  tryTake(count: number): boolean {
    if (this.waiting.length > 0 || this.available < count) return false
    this.available -= count
    return true
  }

  /** Returns permits and wakes waiters in arrival order (synchronous). */
  release(count: number): void {
    this.available += count
    this.grantWaiting()
  }

  private grantWaiting(): void {
    while (this.waiting.length > 0 && this.available >= this.waiting[0]!.count) {
      const waiter = this.waiting.shift()!
      this.available -= waiter.count
      waiter.grant()
    }
  }
}
