/**
 * The local rate limit: GCRA (the generic cell rate algorithm of ATM, ITU-T I.371), which is a
 * token bucket with burst stated as one number per key, the theoretical arrival time (TAT).
 *
 * Why GCRA and not a bucket of tokens with a refill: it needs no refill step and no timer (the
 * state is where the schedule stands, compared with `now` on each decision), it is exact (no
 * rounding of partial tokens), and it is the same algorithm the Redis store runs, so a limit
 * behaves the same whether it is local or global.
 *
 * Exactness: time is kept scaled by the rate (`ms x rate`), so with integer milliseconds (the
 * manual clock) every quantity is an integer and each decision is exact: over any interval of
 * `L` ms a bucket admits at most `burst + L x rate / period` tokens, and a call that conforms is
 * never refused.
 *
 * Cost: a decision is a subtraction, a comparison and a store of one number; no allocation, no
 * promise (decision D57).
 */
import type { QuotaLimit } from './store.js'

/** One key's state. */
export class Bucket {
  /** The theoretical arrival time, scaled by the rate (ms x rate); `-Infinity` when full. */
  tat = Number.NEGATIVE_INFINITY
  /** Until when (clock ms) the server asked this key to pause; `0`: not paused. */
  pausedUntil = 0
  /** Calls waiting for their token (the stage's FIFO queue), oldest first. */
  waiting: Waiter | undefined = undefined
  newest: Waiter | undefined = undefined
  queued = 0
  /** The timer that wakes the oldest waiter, when one is armed. */
  timer: unknown = undefined
}

/** A queued call, a node of the bucket's intrusive FIFO list. */
export interface Waiter {
  older: Waiter | undefined
  newer: Waiter | undefined
  readonly cost: number
  /** Admits the call (its token is taken). */
  readonly admit: () => void
  /** The clock ms after which it must not wait; `Infinity` when none. */
  readonly deadline: number
}

/**
 * A GCRA limit over any number of keys: `rate` tokens per `periodMs`, up to `burst` at once.
 * The methods are synchronous; the quota stage builds its queue on {@link Gcra.take}.
 */
export class Gcra {
  readonly limit: QuotaLimit
  /** The burst tolerance, scaled: `burst x periodMs`. */
  readonly #tolerance: number
  readonly #rate: number
  readonly #period: number

  constructor(limit: QuotaLimit) {
    this.limit = limit
    this.#rate = limit.rate
    this.#period = limit.periodMs
    this.#tolerance = limit.burst * limit.periodMs
  }

  /**
   * Takes `cost` tokens at `now` (clock ms): `0` when taken, else the ms until they would be
   * available (nothing is taken then). A paused bucket answers the time left of its pause.
   */
  take(bucket: Bucket, cost: number, now: number): number {
    if (bucket.pausedUntil > now) return bucket.pausedUntil - now
    const scaledNow = now * this.#rate
    const tat = bucket.tat > scaledNow ? bucket.tat : scaledNow
    const next = tat + cost * this.#period
    const over = next - this.#tolerance - scaledNow
    if (over <= 0) {
      bucket.tat = next
      return 0
    }
    return over / this.#rate
  }

  /**
   * The ms from `now` until `ahead` more tokens than the bucket has already promised would be
   * available (its pause included): how long a call queued behind `ahead - cost` others waits.
   */
  waitFor(bucket: Bucket, ahead: number, now: number): number {
    const scaledNow = now * this.#rate
    const tat = bucket.tat > scaledNow ? bucket.tat : scaledNow
    const over = (tat + ahead * this.#period - this.#tolerance - scaledNow) / this.#rate
    const paused = bucket.pausedUntil - now
    return Math.max(0, over, paused)
  }

  /** Whether the bucket is full and idle at `now`: dropping it changes nothing. */
  idle(bucket: Bucket, now: number): boolean {
    return bucket.tat <= now * this.#rate && bucket.waiting === undefined && bucket.pausedUntil <= now
  }
}
