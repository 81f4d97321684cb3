/**
 * A clock that only moves when told to. Timers run in time order (ties in the order they were
 * set), and between two timers every pending promise reaction runs, so code awaiting a timer
 * observes it exactly as on the real clock, only without waiting.
 */

import type { Cancellation } from '../core/cancel.js'
import { type Clock, sleepOn, type TimerHandle } from '../core/clock.js'

interface Timer {
  readonly at: number
  readonly seq: number
  readonly fn: () => void
  cancelled: boolean
}

/** Options of {@link ManualClock}. */
export interface ManualClockOptions {
  /** The initial reading of {@link ManualClock.now}. Default `0`. */
  readonly start?: number
  /** The wall time (epoch ms) at `start`. Default `Date.UTC(2026, 0, 1)`. */
  readonly wallStart?: number
}

/** A manual {@link Clock} for tests; see the module comment. */
export class ManualClock implements Clock {
  #now: number
  readonly #wallOffset: number
  #seq = 0
  // A binary min-heap on (at, seq).
  readonly #heap: Timer[] = []
  #live = 0

  constructor(options: ManualClockOptions = {}) {
    this.#now = options.start ?? 0
    this.#wallOffset = (options.wallStart ?? Date.UTC(2026, 0, 1)) - this.#now
  }

  now(): number {
    return this.#now
  }

  wall(): number {
    return this.#now + this.#wallOffset
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false }
    this.#push(timer)
    this.#live++
    return timer
  }

  setTimerAt(fn: () => void, at: number): TimerHandle {
    return this.setTimer(fn, at - this.#now)
  }

  clearTimer(handle: TimerHandle): void {
    const timer = handle as Timer
    if (!timer.cancelled) {
      timer.cancelled = true
      this.#live--
    }
  }

  sleep(ms: number, cancel?: Cancellation): Promise<void> {
    return sleepOn(this, ms, cancel)
  }

  /** Timers set and neither run nor cleared. */
  get pendingTimers(): number {
    return this.#live
  }

  /** When the next live timer is due, or `undefined` when none is. */
  nextTimerAt(): number | undefined {
    this.#dropCancelled()
    return this.#heap[0]?.at
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due on the way, each at its own
   * time, and letting promise reactions settle after each one.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: expected a non-negative number, got ${ms}`)
    await this.advanceTo(this.#now + ms)
  }

  /** Moves time forward to `time` (absolute); see {@link advance}. */
  async advanceTo(time: number): Promise<void> {
    await settle()
    for (;;) {
      this.#dropCancelled()
      const next = this.#heap[0]
      if (next === undefined || next.at > time) break
      this.#pop()
      this.#live--
      next.cancelled = true
      this.#now = Math.max(this.#now, next.at)
      next.fn()
      await settle()
    }
    this.#now = Math.max(this.#now, time)
    await settle()
  }

  /** Runs timers until none is left or `limit` ms have passed (a guard against endless loops). */
  async runAll(limit = 3_600_000): Promise<void> {
    const end = this.#now + limit
    for (;;) {
      const at = this.nextTimerAt()
      if (at === undefined || at > end) return
      await this.advanceTo(at)
    }
  }

  /**
   * Lets pending promise reactions run without moving time: call it after starting a call and
   * before asserting on what the call did synchronously or after a few awaits.
   */
  flush(): Promise<void> {
    return settle()
  }

  #dropCancelled(): void {
    while (this.#heap.length > 0 && this.#heap[0]!.cancelled) {
      this.#pop()
    }
  }

  #push(t: Timer): void {
    const h = this.#heap
    h.push(t)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }

  #pop(): Timer | undefined {
    const h = this.#heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
}

/** Resolves after every promise reaction queued so far (and those they queue) has run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
