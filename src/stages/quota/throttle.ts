/**
 * Adaptive client-side throttling, as the Google SRE book describes it ("Handling Overload",
 * chapter 21): each client counts, over a sliding window, the `requests` it tried and the
 * `accepts` the backend took, and rejects a new request locally with probability
 * `max(0, (requests - K x accepts) / (requests + 1))`.
 *
 * Why: when a backend rejects most requests (it is out of quota, or overloaded), sending them
 * anyway costs it the work of rejecting them. With K = 2 a client lets through about twice what
 * the backend accepts, so it still learns quickly when the backend recovers, and sheds the rest
 * itself. Rejected requests count as requests, so the probability rises while the backend keeps
 * refusing.
 *
 * The window is ten slots rolled lazily on access (no timer): counts older than the window drop
 * out one slot (a tenth of the window) at a time.
 */
import type { Random } from '../../core/random.js'

const SLOTS = 10

/** Options of {@link AdaptiveThrottle}. */
export interface AdaptiveThrottleOptions {
  /** The multiplier K of accepts. Default `2`. */
  readonly k?: number
  /** The sliding window in ms. Default `120000` (2 minutes, the SRE book's). */
  readonly windowMs?: number
}

/** One service's counts and its rejection probability; see the module comment. */
export class AdaptiveThrottle {
  readonly k: number
  readonly #slotMs: number
  readonly #requests = new Float64Array(SLOTS)
  readonly #accepts = new Float64Array(SLOTS)
  #requestsSum = 0
  #acceptsSum = 0
  /** The index of the current slot since the clock's origin. */
  #slot = Number.NEGATIVE_INFINITY

  constructor(options: AdaptiveThrottleOptions = {}) {
    this.k = options.k ?? 2
    this.#slotMs = (options.windowMs ?? 120_000) / SLOTS
  }

  #roll(now: number): number {
    const slot = Math.floor(now / this.#slotMs)
    if (slot > this.#slot) {
      const gap = slot - this.#slot
      if (gap >= SLOTS) {
        this.#requests.fill(0)
        this.#accepts.fill(0)
        this.#requestsSum = 0
        this.#acceptsSum = 0
      } else {
        for (let s = this.#slot + 1; s <= slot; s++) {
          const i = s % SLOTS
          this.#requestsSum -= this.#requests[i]!
          this.#acceptsSum -= this.#accepts[i]!
          this.#requests[i] = 0
          this.#accepts[i] = 0
        }
      }
      this.#slot = slot
    }
    return slot % SLOTS
  }

  /** The probability that a request now is rejected locally. */
  probability(now: number): number {
    this.#roll(now)
    const requests = this.#requestsSum
    return Math.max(0, (requests - this.k * this.#acceptsSum) / (requests + 1))
  }

  /**
   * Counts a request at `now` and decides it: `true` when it is to be rejected locally (drawn
   * from `random`, which tests seed).
   */
  reject(now: number, random: Random): boolean {
    const p = this.probability(now)
    const i = this.#roll(now)
    this.#requests[i]! += 1
    this.#requestsSum += 1
    return p > 0 && random.next() < p
  }

  /**
   * Takes back a request counted at {@link reject} that never reached the backend (a rate limit
   * refused it): only the backend's answers move the probability.
   */
  forget(now: number): void {
    const i = this.#roll(now)
    if (this.#requests[i]! > 0) {
      this.#requests[i]! -= 1
      this.#requestsSum -= 1
    }
  }

  /** Counts an accept at `now`: the backend took a request. */
  accept(now: number): void {
    const i = this.#roll(now)
    this.#accepts[i]! += 1
    this.#acceptsSum += 1
  }

  /** The window's counts, for stats and tests. */
  counts(now: number): { requests: number; accepts: number } {
    this.#roll(now)
    return { requests: this.#requestsSum, accepts: this.#acceptsSum }
  }
}
