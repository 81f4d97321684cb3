/**
 * Time, injected: every stage reads time and arms timers only through a {@link Clock}, so that
 * tests and `simulate()` can run the real pipeline on virtual time (see `ManualClock` in
 * `meshlet/testing`). This file and `random.ts` are the only places that touch the real clock.
 */
import type { Cancellation } from './cancel.js'

/** An opaque handle returned by {@link Clock.setTimer}. */
export type TimerHandle = { readonly __timer: unique symbol } | object

/** The source of time for the pipeline. */
export interface Clock {
  /** Milliseconds on a monotonic timeline; only differences are meaningful. */
  now(): number
  /** Milliseconds since the Unix epoch, for wall-clock formats such as HTTP dates. */
  wall(): number
  /** Calls `fn` once after `ms` milliseconds. */
  setTimer(fn: () => void, ms: number): TimerHandle
  /**
   * Calls `fn` once when {@link now} reaches `at` (at once, on the next timer turn, when it has
   * passed). Optional: a stage that knows the absolute time (a deadline) saves a clock read with
   * it; without it, `setTimer(fn, at - now())` does the same.
   */
  setTimerAt?(fn: () => void, at: number): TimerHandle
  /** Cancels a timer; a no-op when it already ran or was cleared. */
  clearTimer(handle: TimerHandle): void
  /**
   * Resolves after `ms` milliseconds, or rejects with the cancellation's reason as soon as
   * `cancel` aborts (the timer is then cleared).
   */
  sleep(ms: number, cancel?: Cancellation): Promise<void>
}

/** Shared by clocks: a sleep built on `setTimer` that honours cancellation and leaks nothing. */
export function sleepOn(clock: Clock, ms: number, cancel?: Cancellation): Promise<void> {
  if (cancel?.aborted) return Promise.reject(cancel.reason)
  return new Promise<void>((resolve, reject) => {
    let unsubscribe: (() => void) | undefined
    const timer = clock.setTimer(() => {
      unsubscribe?.()
      resolve()
    }, ms)
    if (cancel) {
      unsubscribe = cancel.onAbort((reason) => {
        clock.clearTimer(timer)
        reject(reason)
      })
    }
  })
}

/** One timer of the {@link systemClock}'s queue (the opaque {@link TimerHandle} it returns). */
interface QueuedTimer {
  /** When it is due, in queue time (see `queueNow`). */
  readonly due: number
  readonly fn: () => void
  /** Its index in the heap; `-1` once it ran or was cleared. */
  index: number
}

type NativeTimer = ReturnType<typeof setTimeout>

/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY = 2 ** 31 - 1

/**
 * The timers of the {@link systemClock}: a binary min-heap on due time under a single native
 * timer, armed at the earliest entry. Every attempt of every call arms one timer (its deadline or
 * per-try limit) and clears it a few milliseconds later; with `setTimeout` each pair costs a
 * `Timeout` object, an async resource and, when no other timer has the same fractional duration
 * (the common case, since limits are computed from a deadline), a timer list created and torn
 * down in Node's priority queue: about 0.8 us a call here (docs/decisions.md, D18). Here a pair
 * costs one small object and a heap insert and removal, O(1) in the usual case where deadlines
 * arrive in order.
 *
 * Removing the earliest entry does not re-arm the native timer: it fires, finds nothing due and
 * re-arms at the new earliest entry. It is unreferenced while the heap is empty, so an idle
 * process exits as it would with no timer at all, and referenced while any entry waits, as the
 * entries' own `setTimeout`s would be.
 */
class TimerQueue {
  readonly #heap: QueuedTimer[] = []
  #native: NativeTimer | undefined
  /** Queue time the native timer is armed for; `Infinity` when none is armed. */
  #armedAt = Number.POSITIVE_INFINITY
  /** Queue time the native timer fires at (`#armedAt`, or earlier for a very long delay). */
  #firesAt = Number.NEGATIVE_INFINITY
  #refed = false
  /**
   * How far queue time runs ahead of `performance.now()`: `0`, except where a fake-timer library
   * moves `setTimeout`'s time without moving `performance.now()`. A native timer that fires means
   * its time has come, so a firing more than 2 ms before `performance.now()` reaches it (Node
   * itself fires up to 1 ms early on its millisecond loop clock) moves queue time forward.
   */
  #skew = 0
  readonly #onFire = () => this.#fire()

  /** Timers waiting (for tests of the queue). */
  get size(): number {
    return this.#heap.length
  }

  #now(): number {
    return performance.now() + this.#skew
  }

  add(fn: () => void, ms: number): QueuedTimer {
    // As setTimeout: a delay below 1 ms (or not a number) is 1 ms.
    // biome-ignore lint/complexity/useMathMinMax: Math.max(NaN, 1) is NaN; this is 1
    return this.addAt(fn, performance.now() + (ms >= 1 ? ms : 1))
  }

  /** A timer due when `performance.now()` reaches `at`. */
  addAt(fn: () => void, at: number): QueuedTimer {
    const due = at + this.#skew
    const timer: QueuedTimer = { due, fn, index: this.#heap.length }
    this.#heap.push(timer)
    this.#up(timer.index)
    // The clock is read only to arm the native timer, which the usual in-order timer does not need.
    if (due < this.#armedAt) this.#arm(due, this.#now())
    else if (!this.#refed) {
      this.#native?.ref()
      this.#refed = true
    }
    return timer
  }

  remove(timer: QueuedTimer): void {
    const i = timer.index
    if (i < 0) return
    timer.index = -1
    const heap = this.#heap
    const last = heap.pop() as QueuedTimer
    if (last !== timer) {
      heap[i] = last
      last.index = i
      this.#down(i)
      this.#up(last.index)
    }
    if (heap.length === 0 && this.#refed) {
      this.#native?.unref()
      this.#refed = false
    }
  }

  #arm(due: number, now: number): void {
    if (this.#native !== undefined) clearTimeout(this.#native)
    this.#armedAt = due
    // setTimeout turns a delay past 2^31 - 1 ms into 1 ms; the queue re-arms when that fires.
    const delay = Math.min(MAX_DELAY, Math.max(1, due - now))
    this.#firesAt = now + delay
    this.#native = setTimeout(this.#onFire, delay)
    this.#refed = true
  }

  #fire(): void {
    this.#native = undefined
    const lag = this.#firesAt - this.#now()
    if (lag > 2) this.#skew += lag
    this.#armedAt = Number.POSITIVE_INFINITY
    // Node fires a timer once its whole milliseconds have passed on the loop's clock, which
    // can be up to 1 ms before the fractional due time: entries within that are due now.
    const horizon = this.#now() + 1
    const heap = this.#heap
    let failure: { error: unknown } | undefined
    while (heap.length > 0 && heap[0]!.due <= horizon) {
      const timer = heap[0]!
      this.remove(timer)
      try {
        timer.fn()
      } catch (error) {
        // As with setTimeout, an exception escapes (uncaught), but only after the other due
        // timers ran and the queue is re-armed.
        failure ??= { error }
      }
    }
    // A callback may have armed the timer already (for a timer it set); re-arm only if earlier.
    if (heap.length > 0 && heap[0]!.due < this.#armedAt) this.#arm(heap[0]!.due, this.#now())
    else if (heap.length === 0) this.#refed = false
    if (failure !== undefined) throw failure.error
  }

  #up(i: number): void {
    const heap = this.#heap
    const timer = heap[i]!
    while (i > 0) {
      const p = (i - 1) >> 1
      const parent = heap[p]!
      if (parent.due <= timer.due) break
      heap[i] = parent
      parent.index = i
      i = p
    }
    heap[i] = timer
    timer.index = i
  }

  #down(i: number): void {
    const heap = this.#heap
    const n = heap.length
    const timer = heap[i]!
    for (;;) {
      let c = 2 * i + 1
      if (c >= n) break
      if (c + 1 < n && heap[c + 1]!.due < heap[c]!.due) c++
      const child = heap[c]!
      if (child.due >= timer.due) break
      heap[i] = child
      child.index = i
      i = c
    }
    heap[i] = timer
    timer.index = i
  }
}

const queue = new TimerQueue()

/**
 * Timers of the {@link systemClock}, across the process, that are set and neither ran nor were
 * cleared: for leak tests (after `mesh.close()` and the calls settle, a mesh holds none).
 */
export function pendingSystemTimers(): number {
  return queue.size
}

/**
 * The real clock: `performance.now()` for time, and timers on one queue per process under a
 * single native `setTimeout` (see `TimerQueue` above): while any timer is pending the process
 * stays alive, as with `setTimeout`; when none is, nothing holds it.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimer: (fn, ms) => queue.add(fn, ms),
  setTimerAt: (fn, at) => queue.addAt(fn, at),
  clearTimer: (handle) => queue.remove(handle as QueuedTimer),
  sleep(ms, cancel) {
    return sleepOn(systemClock, ms, cancel)
  },
}
