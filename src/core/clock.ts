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

/** The real clock: `performance.now()` for time, `setTimeout` for timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  sleep(ms, cancel) {
    return sleepOn(systemClock, ms, cancel)
  },
}
