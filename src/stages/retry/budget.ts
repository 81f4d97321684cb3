/**
 * Retry budgets: a limit on retries shared by every call to one destination.
 *
 * Why budgets and not only max attempts: `attempts: 3` means a struggling service receives up to
 * three times its normal load exactly when it can least take it, and every layer that retries
 * multiplies that again (a retry storm). A budget bounds retries to a share of recent traffic,
 * so retries help with sparse failures and fade out when everything fails (Finagle's
 * `RetryBudget`, tower's `TpsBudget`, Linkerd's retry budgets; see docs/retries.md).
 *
 * Two kinds share one interface:
 * - {@link ratioBudget}: each call deposits, each retry withdraws `1 / ratio` deposits; deposits
 *   and withdrawals expire after `ttl`, on top of a constant reserve of `minPerSecond * ttl`
 *   retries. In any window of `ttl`, retries <= ratio x calls + minPerSecond x ttl, exactly:
 *   deposits are forgotten a little early, withdrawals a little late, never the other way.
 * - {@link throttlingBudget}: gRPC's `retryThrottling` (gRFC A6): failures take a token,
 *   successes give back `tokenRatio`; retries stop while tokens <= maxTokens / 2.
 *
 * Time windows roll lazily when the budget is touched: no timer per budget.
 */
import type { Verdict } from '../../core/outcome.js'

/** A limit on retries shared by the calls to one destination. */
export interface RetryBudget {
  /** A call started (one deposit per call, never per retry). */
  deposit(now: number): void
  /** An attempt ended with `verdict` (the throttling kind counts these). */
  record(verdict: Verdict): void
  /** Whether one more attempt may be made; when `true`, it has been paid for. */
  tryWithdraw(now: number): boolean
  /** Retries (or hedges) refused so far. */
  readonly refused: number
}

/** Options of {@link ratioBudget}. */
export interface RatioBudgetOptions {
  /** Retries allowed per call, 0..1000. Default `0.2` (20% of calls). */
  readonly ratio?: number
  /** Retries always allowed per second, for low-traffic callers. Default `10`. */
  readonly minPerSecond?: number
  /** How long a deposit counts, 1 s..60 s. Default `10_000` ms. */
  readonly ttl?: number
}

const SLOTS = 10

/**
 * A sum over a sliding window of `slots` slots of `width` ms, rolled lazily when touched. A value
 * added at time t counts until the slot it fell in is `slots` slots old: for between
 * (slots - 1) x width and slots x width.
 */
class SlidingSum {
  readonly #slots: Float64Array
  readonly #width: number
  #index = 0
  #slotStart = Number.NaN
  #sum = 0

  constructor(slots: number, width: number) {
    this.#slots = new Float64Array(slots)
    this.#width = width
  }

  #roll(now: number): void {
    if (Number.isNaN(this.#slotStart)) {
      this.#slotStart = now
      return
    }
    const passed = Math.floor((now - this.#slotStart) / this.#width)
    if (passed <= 0) return
    const n = this.#slots.length
    for (let i = 0; i < Math.min(passed, n); i++) {
      this.#index = (this.#index + 1) % n
      this.#sum -= this.#slots[this.#index]!
      this.#slots[this.#index] = 0
    }
    this.#slotStart += passed * this.#width
  }

  add(now: number, value: number): void {
    this.#roll(now)
    this.#slots[this.#index]! += value
    this.#sum += value
  }

  sum(now: number): number {
    this.#roll(now)
    return this.#sum
  }
}

class RatioBudget implements RetryBudget {
  refused = 0
  readonly #ratio: number
  readonly #reserve: number
  // Deposits count for at most ttl, withdrawals for at least ttl (one slot more): so in any
  // window of ttl, retries <= ratio x calls in that window + the reserve, exactly.
  readonly #deposits: SlidingSum
  readonly #withdrawals: SlidingSum

  constructor(ratio: number, minPerSecond: number, ttl: number) {
    this.#ratio = ratio
    this.#reserve = minPerSecond * (ttl / 1000)
    this.#deposits = new SlidingSum(SLOTS, ttl / SLOTS)
    this.#withdrawals = new SlidingSum(SLOTS + 1, ttl / SLOTS)
  }

  deposit(now: number): void {
    this.#deposits.add(now, 1)
  }

  record(): void {}

  tryWithdraw(now: number): boolean {
    // A small epsilon absorbs float error of fractional ratios (0.2 x 5 = 0.9999...).
    if (this.balance(now) + 1e-9 >= 1) {
      this.#withdrawals.add(now, 1)
      return true
    }
    this.refused++
    return false
  }

  /** Retries available now (for tests and debugging). */
  balance(now: number): number {
    return this.#reserve + this.#ratio * this.#deposits.sum(now) - this.#withdrawals.sum(now)
  }
}

/**
 * The ratio budget of Finagle and tower; see the module comment. Defaults: ratio 0.2,
 * minPerSecond 10, ttl 10 s.
 *
 * @example
 * ```ts
 * import { ratioBudget } from 'meshlet'
 * const budget = ratioBudget({ ratio: 0.2, minPerSecond: 0, ttl: 10_000 })
 * for (let i = 0; i < 10; i++) budget.deposit(0)
 * budget.tryWithdraw(0) // true: 10 calls x 0.2 = 2 retries
 * budget.tryWithdraw(0) // true
 * budget.tryWithdraw(0) // false
 * ```
 */
export function ratioBudget(
  options: RatioBudgetOptions = {},
): RetryBudget & { balance(now: number): number } {
  const ratio = options.ratio ?? 0.2
  const minPerSecond = options.minPerSecond ?? 10
  const ttl = options.ttl ?? 10_000
  if (!(ratio >= 0 && ratio <= 1000))
    throw new RangeError(`ratioBudget: ratio: expected 0..1000, got ${ratio}`)
  if (!(minPerSecond >= 0))
    throw new RangeError(`ratioBudget: minPerSecond: expected >= 0, got ${minPerSecond}`)
  if (!(ttl >= 1000 && ttl <= 60_000))
    throw new RangeError(`ratioBudget: ttl: expected 1000..60000 ms, got ${ttl}`)
  return new RatioBudget(ratio, minPerSecond, ttl)
}

/** Options of {@link throttlingBudget}, as in a gRPC service config's `retryThrottling`. */
export interface ThrottlingBudgetOptions {
  /** Tokens when full, (0, 1000]. Default `10`. */
  readonly maxTokens?: number
  /** Tokens a success gives back, (0, 1]. Default `0.1`. */
  readonly tokenRatio?: number
}

class ThrottlingBudget implements RetryBudget {
  refused = 0
  #tokens: number
  readonly #max: number
  readonly #ratio: number

  constructor(max: number, ratio: number) {
    this.#tokens = max
    this.#max = max
    this.#ratio = ratio
  }

  deposit(): void {}

  record(verdict: Verdict): void {
    if (verdict === 'success') this.#tokens = Math.min(this.#max, this.#tokens + this.#ratio)
    else if (verdict === 'retryable' || verdict === 'failure') this.#tokens = Math.max(0, this.#tokens - 1)
  }

  tryWithdraw(): boolean {
    if (this.#tokens > this.#max / 2) return true
    this.refused++
    return false
  }

  /** Tokens now (for tests and debugging). */
  get tokens(): number {
    return this.#tokens
  }
}

/** gRPC's `retryThrottling` (gRFC A6); see the module comment. */
export function throttlingBudget(
  options: ThrottlingBudgetOptions = {},
): RetryBudget & { readonly tokens: number } {
  const max = options.maxTokens ?? 10
  const ratio = options.tokenRatio ?? 0.1
  if (!(max > 0 && max <= 1000))
    throw new RangeError(`throttlingBudget: maxTokens: expected (0, 1000], got ${max}`)
  if (!(ratio > 0 && ratio <= 1))
    throw new RangeError(`throttlingBudget: tokenRatio: expected (0, 1], got ${ratio}`)
  return new ThrottlingBudget(max, ratio)
}

/** No limit: every retry the policy allows is made (Finagle's `RetryBudget.Infinite`). */
export const unlimitedBudget: RetryBudget = {
  refused: 0,
  deposit() {},
  record() {},
  tryWithdraw: () => true,
}
