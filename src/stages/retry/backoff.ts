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

/** Options of {@link decorrelatedJitterBackoff}. */
export interface DecorrelatedJitterBackoffOptions {
  /**
   * The scale in ms: the median time from the first failure to the n-th retry is about
   * `base * 2^n`, and the median first delay about `0.9 * base`. Default `25`.
   */
  readonly base?: number
  /** The cap of every delay in ms. Default `1000`. */
  readonly max?: number
}

// Polly's constants: PFACTOR smooths the first delays; 1 / 1.4 scales the medians from
// 1.4, 2.8, 5.6... to near 1, 2, 4... times base.
const PFACTOR = 4
const RP_SCALING = 1 / 1.4

class DecorrelatedJitterStep implements Backoff {
  constructor(
    private readonly base: number,
    private readonly max: number,
    private readonly attempt: number,
    private readonly prev: number,
    readonly duration: number,
  ) {}

  next(random: Random): Backoff {
    const t = this.attempt + random.next()
    const next = 2 ** t * Math.tanh(Math.sqrt(PFACTOR * t))
    // 2^t overflows to Infinity from about the 1024th retry: wait the cap from then on.
    const delay = Number.isFinite(next)
      ? Math.min(this.max, Math.max(0, next - this.prev) * RP_SCALING * this.base)
      : this.max
    return new DecorrelatedJitterStep(this.base, this.max, this.attempt + 1, next, delay)
  }
}

/**
 * Decorrelated jitter, Polly v8's "V2" formula (by George Polevoy; cockatiel uses it too): with
 * `t = n + U[0, 1)`, the n-th retry (from 0) is due `2^t * tanh(sqrt(4t)) / 1.4 * base` ms after
 * the first failure, and each delay is the step from the previous retry's time, capped at `max`.
 *
 * Why: callers that fail together (an upstream restarts) and wait exactly `base * 2^n` retry
 * together again, in synchronised waves. Random delays break the waves; drawing the retry
 * *times* rather than independent delays keeps each call's schedule smooth and monotone, with no
 * clusters of short waits: the n-th retry falls in its own doubling band (about
 * `[0.7, 1.4) x base * 2^n`), its median time near `base * 2^n`. The delays themselves are the
 * steps between those times, so their medians are about `0.9, 1.15, 2, 4, 8... x base`, half
 * of `base * 2^n` from the third delay on (see the tests). Draws only from the `Random` given to
 * `next`, so a seeded run is reproducible.
 *
 * @example
 * ```ts
 * import { decorrelatedJitterBackoff, seededRandom } from 'meshlet'
 * const r = seededRandom(1)
 * const first = decorrelatedJitterBackoff({ base: 100, max: 2000 }).next(r)
 * first.duration                      // in [0, 2000]; about 90 ms at the median
 * first.next(r).next(r).duration      // the third delay: about 200 ms at the median
 * ```
 */
export function decorrelatedJitterBackoff(options: DecorrelatedJitterBackoffOptions = {}): Backoff {
  return new DecorrelatedJitterStep(options.base ?? 25, options.max ?? 1000, 0, 0, 0)
}
