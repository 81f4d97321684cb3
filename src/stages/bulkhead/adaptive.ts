/**
 * Adaptive concurrency limits: {@link gradient2Limit} and {@link vegasLimit} move a bulkhead's
 * limit with the latency they measure, after Netflix's concurrency-limits (`Gradient2Limit`,
 * `VegasLimit`) and the blog post "Performance Under Load" (Netflix, 2018).
 *
 * Why: a fixed `max` is a guess about a dependency's capacity, and capacity moves (deploys,
 * noisy neighbours, autoscaling). Queueing theory gives a better signal: while a service keeps
 * up, latency stays at its no-load value; once requests queue, latency rises. Both algorithms
 * read that rise, as TCP Vegas reads round-trip times, and trade a little throughput for a
 * bounded queue at the dependency. They are ported line by line, in milliseconds instead of
 * nanoseconds (only ratios of RTTs matter), with the published defaults; the differences are
 * stated where they are. They read no clock: each sample carries its RTT and its time.
 */
import { type Random, systemRandom } from '../../core/random.js'

/**
 * A concurrency limit that may move: the plug between a bulkhead and an algorithm (Netflix's
 * `Limit`). The bulkhead reads {@link limit} when it admits a call and reports each admitted
 * call's outcome to {@link onSample}.
 */
export interface Limiter {
  /** Calls allowed in flight now: an integer, at least 1. */
  readonly limit: number
  /**
   * One call ended.
   * @param rtt - its latency in ms, from admission to settlement
   * @param inflight - calls in flight when it was admitted, itself included
   * @param dropped - whether it timed out (a loss signal; failures that measured nothing are
   *   not reported at all)
   * @param now - when it ended, on the bulkhead's clock (ms)
   */
  onSample(rtt: number, inflight: number, dropped: boolean, now: number): void
}

/** The starting point of an adaptive limit when neither `initialLimit` nor `max` is given. */
export const DEFAULT_INITIAL_LIMIT = 20
/** The ceiling of an adaptive limit when none is given (config `concurrency.maxLimit`). */
export const DEFAULT_MAX_LIMIT = 200

/** Options of {@link gradient2Limit}; the defaults are Netflix's. */
export interface Gradient2LimitOptions {
  /** The limit before any sample. Default `20`. */
  readonly initialLimit?: number
  /**
   * The floor of the limit. Default `20` (Netflix's), lowered to `initialLimit` when that is
   * smaller, so that a configured `max` below 20 is never raised by the floor.
   */
  readonly minLimit?: number
  /** The ceiling of the limit (Netflix's `maxConcurrency`). Default `200`. */
  readonly maxLimit?: number
  /** How much of each new estimate is taken, 0..1. Default `0.2`. */
  readonly smoothing?: number
  /** How much the limit may grow past the estimate while latency is low: a number or a function of the limit. Default `4`. */
  readonly queueSize?: number | ((limit: number) => number)
  /** The latency increase tolerated before cutting, at least 1 (`2`: twice the long-term RTT). Default `1.5`. */
  readonly rttTolerance?: number
  /** Samples in the long-term RTT average (an exponential average after 10 warm-up samples). Default `600`. */
  readonly longWindow?: number
}

/**
 * Gradient2 (Netflix): compares each call's RTT with a long-term exponential average of RTTs.
 * `gradient = clamp(rttTolerance * longRtt / rtt, 0.5, 1)`, then
 * `limit = limit * (1 - smoothing) + (limit * gradient + queueSize) * smoothing`, bounded by
 * `[minLimit, maxLimit]`. While latency is steady the gradient is 1 and the limit grows by
 * `queueSize * smoothing` per sample; when it rises past the tolerance the limit shrinks, by at
 * most half of the estimate at a time. The limit does not grow while fewer than half of it is
 * in use (app-limited), and the long-term average decays 5% per sample while it is more than
 * twice the current RTT, so that it recovers after a long overload. Averages rather than minimums:
 * RPC latencies are bursty and a minimum biases toward an impractically low baseline.
 * Defaults: initial 20, min 20 (see {@link Gradient2LimitOptions.minLimit}), max 200, smoothing
 * 0.2, queueSize 4, rttTolerance 1.5, longWindow 600. Drops are not treated specially.
 */
export function gradient2Limit(options: Gradient2LimitOptions = {}): Limiter {
  const maxLimit = Math.max(1, options.maxLimit ?? DEFAULT_MAX_LIMIT)
  const initial = clamp(options.initialLimit ?? DEFAULT_INITIAL_LIMIT, 1, maxLimit)
  const minLimit = clamp(options.minLimit ?? Math.min(DEFAULT_INITIAL_LIMIT, initial), 1, maxLimit)
  const smoothing = options.smoothing ?? 0.2
  const queueSizeOption = options.queueSize ?? 4
  const queueSize = typeof queueSizeOption === 'number' ? () => queueSizeOption : queueSizeOption
  const tolerance = Math.max(1, options.rttTolerance ?? 1.5)
  const longRtt = new ExpAvg(options.longWindow ?? 600, 10)
  let estimate = Math.max(minLimit, initial)
  let limit = Math.floor(estimate)

  return {
    get limit() {
      return limit
    },
    onSample(rtt, inflight) {
      if (!(rtt >= 0)) return
      const queue = queueSize(Math.floor(estimate))
      const long = longRtt.add(rtt)
      // After a long overload the average is far above today's RTT: decay it rather than wait
      // for the smoothing, so the limit can grow again.
      if (long / rtt > 2) longRtt.value *= 0.95
      // App-limited: low latency at low use says nothing about capacity.
      if (inflight < estimate / 2) return
      // An RTT of 0 (a coarse or manual clock) means no queueing; 0/0 must not poison the limit.
      const gradient = rtt > 0 ? clamp((tolerance * long) / rtt, 0.5, 1) : 1
      const next = estimate * gradient + queue
      estimate = clamp(estimate * (1 - smoothing) + next * smoothing, minLimit, maxLimit)
      limit = Math.floor(estimate)
    },
  }
}

/**
 * Options of {@link vegasLimit}; the defaults are Netflix's unless stated. `log10` below is
 * Netflix's `Log10RootFunction`: `max(1, floor(log10(n)))` below 1000, `floor(sqrt(n))` from 1000.
 */
export interface VegasLimitOptions {
  /** The limit before any sample. Default `20`. */
  readonly initialLimit?: number
  /** The ceiling of the limit. Default `200` (meshlet's `maxLimit`; Netflix's `maxConcurrency` is 1000). */
  readonly maxLimit?: number
  /** How much of each new estimate is taken, 0..1. Default `1` (all of it). */
  readonly smoothing?: number
  /** A new no-load RTT is probed every `probeMultiplier * limit` samples (jittered by 0.5..1). Default `30`. */
  readonly probeMultiplier?: number
  /** Queue below which the limit grows by `increase`. Default `3 * log10(floor(limit))`. */
  readonly alpha?: (limit: number) => number
  /** Queue above which the limit shrinks by `decrease`. Default `6 * log10(floor(limit))`. */
  readonly beta?: (limit: number) => number
  /** Queue at or below which the limit grows by `beta` at once. Default `log10(floor(limit))`. */
  readonly threshold?: (limit: number) => number
  /** The limit after a gentle increase. Default `limit + log10(floor(limit))`. */
  readonly increase?: (limit: number) => number
  /** The limit after a decrease (queueing or a drop). Default `limit - log10(floor(limit))`. */
  readonly decrease?: (limit: number) => number
  /** Jitters the probe interval. Default `systemRandom`. */
  readonly random?: Random
}

/**
 * Vegas (Netflix, after TCP Vegas): estimates the queue at the dependency as
 * `queue = ceil(limit * (1 - rttNoLoad / rtt))`, where `rttNoLoad` is the smallest RTT seen since
 * the last probe. At or below `threshold` the limit grows by `beta`; below `alpha`, by
 * `increase`; above `beta` it shrinks by `decrease`, as it does on every drop (a timed-out call);
 * in between it holds. It does not grow while fewer than half of it is in use. Every
 * `probeMultiplier * limit` samples (jittered) the current RTT becomes the new no-load RTT, so
 * that a baseline that rose for good is learnt. log10 here is Netflix's `Log10RootFunction`:
 * `max(1, floor(log10(n)))` below 1000, `floor(sqrt(n))` from 1000. Defaults: initial 20, max 200
 * (Netflix: 1000), smoothing 1, probeMultiplier 30, alpha `3 log10`, beta `6 log10`, threshold
 * `log10`, increase `+log10`, decrease `-log10`. Samples with an RTT of 0 are ignored (Netflix
 * refuses them): they cannot say anything about queueing.
 */
export function vegasLimit(options: VegasLimitOptions = {}): Limiter {
  const maxLimit = Math.max(1, options.maxLimit ?? DEFAULT_MAX_LIMIT)
  const smoothing = options.smoothing ?? 1
  const probeMultiplier = options.probeMultiplier ?? 30
  const alpha = options.alpha ?? ((l: number) => 3 * log10Root(l))
  const beta = options.beta ?? ((l: number) => 6 * log10Root(l))
  const threshold = options.threshold ?? log10Root
  const increase = options.increase ?? ((l: number) => l + log10Root(Math.floor(l)))
  const decrease = options.decrease ?? ((l: number) => l - log10Root(Math.floor(l)))
  const random = options.random ?? systemRandom
  let estimate = clamp(options.initialLimit ?? DEFAULT_INITIAL_LIMIT, 1, maxLimit)
  let limit = Math.floor(estimate)
  let rttNoLoad = 0
  let probeCount = 0
  let probeJitter = 0.5 + random.next() * 0.5

  return {
    get limit() {
      return limit
    },
    onSample(rtt, inflight, dropped) {
      if (!(rtt > 0)) return
      probeCount++
      if (probeJitter * probeMultiplier * estimate <= probeCount) {
        probeJitter = 0.5 + random.next() * 0.5
        probeCount = 0
        rttNoLoad = rtt
        return
      }
      if (rttNoLoad === 0 || rtt < rttNoLoad) {
        rttNoLoad = rtt
        return
      }
      const queue = Math.ceil(estimate * (1 - rttNoLoad / rtt))
      let next: number
      if (dropped) {
        next = decrease(estimate)
      } else if (inflight * 2 < estimate) {
        return
      } else {
        const l = Math.floor(estimate)
        if (queue <= threshold(l)) next = estimate + beta(l)
        else if (queue < alpha(l)) next = increase(estimate)
        else if (queue > beta(l)) next = decrease(estimate)
        else return
      }
      next = clamp(next, 1, maxLimit)
      estimate = (1 - smoothing) * estimate + smoothing * next
      limit = Math.max(1, Math.floor(estimate))
    },
  }
}

/** Netflix's `Log10RootFunction`: `max(1, floor(log10(n)))` below 1000, `floor(sqrt(n))` from 1000. */
function log10Root(n: number): number {
  return n < 1000 ? Math.max(1, Math.floor(Math.log10(n))) : Math.floor(Math.sqrt(n))
}

/** Netflix's `ExpAvgMeasurement`: a plain average over the warm-up, then an exponential one. */
class ExpAvg {
  value = 0
  #sum = 0
  #count = 0
  readonly #factor: number
  readonly #warmup: number

  constructor(window: number, warmup: number) {
    this.#factor = 2 / (window + 1)
    this.#warmup = warmup
  }

  add(sample: number): number {
    if (this.#count < this.#warmup) {
      this.#count++
      this.#sum += sample
      this.value = this.#sum / this.#count
    } else {
      this.value = this.value * (1 - this.#factor) + sample * this.#factor
    }
    return this.value
  }
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, x))
}
