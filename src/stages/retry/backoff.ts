/**
 * Backoff strategies as immutable values (Finagle's `Backoff`, cockatiel's `IBackoff`): a
 * {@link Backoff} knows the delay before the next retry and returns the backoff for the retry
 * after it, so one policy value is shared by every call and a call's progress lives only in the
 * value it holds. Nothing is allocated until a call actually retries.
 */
import type { Random } from '../../core/random.js'

/** A step of a backoff sequence. */
export interface Backoff {
  /** The delay in ms before this retry (0 for the initial value, before any retry). */
  readonly duration: number
  /** The step for the next retry, drawing jitter from `random`. */
  next(random: Random): Backoff
}

/** How much randomness spreads the retries of many callers (AWS "Exponential Backoff and Jitter"). */
export type Jitter = 'full' | 'equal' | 'none'

/** Options of {@link exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /** The first retry's ceiling in ms. Default `25`. */
  readonly base?: number
  /** The cap of every delay in ms. Default `1000`. */
  readonly max?: number
  /** Growth per retry. Default `2`. */
  readonly factor?: number
  /**
   * `'full'` draws from [0, ceiling), `'equal'` from [ceiling/2, ceiling), `'none'` is the
   * ceiling itself. Default `'full'`.
   */
  readonly jitter?: Jitter
}

class ExponentialStep implements Backoff {
  constructor(
    private readonly base: number,
    private readonly max: number,
    private readonly factor: number,
    private readonly jitter: Jitter,
    private readonly retries: number,
    readonly duration: number,
  ) {}

  next(random: Random): Backoff {
    const ceiling = Math.min(this.max, this.base * this.factor ** this.retries)
    let delay = ceiling
    if (this.jitter === 'full') delay = random.next() * ceiling
    else if (this.jitter === 'equal') delay = ceiling / 2 + (random.next() * ceiling) / 2
    return new ExponentialStep(this.base, this.max, this.factor, this.jitter, this.retries + 1, delay)
  }
}

/**
 * Exponential backoff: the n-th retry (from 0) waits up to `min(max, base * factor^n)`, spread
 * by `jitter`.
 *
 * @example
 * ```ts
 * import { exponentialBackoff, seededRandom } from 'meshlet'
 * const r = seededRandom(1)
 * const first = exponentialBackoff({ base: 100, jitter: 'none' }).next(r)
 * first.duration            // 100
 * first.next(r).duration    // 200
 * ```
 */
export function exponentialBackoff(options: ExponentialBackoffOptions = {}): Backoff {
  const base = options.base ?? 25
  const max = options.max ?? 1000
  return new ExponentialStep(base, max, options.factor ?? 2, options.jitter ?? 'full', 0, 0)
}

/**
 * The same delay before every retry.
 */
export function constantBackoff(delay: number): Backoff {
  const step: Backoff = { duration: delay, next: () => step }
  return { duration: 0, next: () => step }
}
