/**
 * Peak EWMA: power of two choices on a cost that weighs observed latency by load, the balancer
 * of Finagle (`PeakEwma`), tower (`load/peak_ewma.rs`) and Linkerd. The cost of an endpoint is
 * its latency estimate x (pending + 1): the time a new request can expect to wait there.
 *
 * Why it beats least-request when one endpoint turns slow: in-flight counts alone only see a
 * slow endpoint once calls pile up on it, and forget it as soon as its queue drains (each
 * timeout frees a slot, which the next call takes). The latency estimate remembers: one slow
 * answer makes it the peak at once ("quick to react"), and it comes down only with time
 * ("recovering only cautiously").
 *
 * The estimate follows tower and Finagle exactly. An observation above the estimate replaces it
 * (the peak); one below is blended in with weight `1 - e^(-dt/decay)`, where `dt` is the time
 * since the estimate was last touched. Reading the cost also decays the estimate towards zero
 * with time constant `decay` (10 s, Finagle's `decayTime`), so an endpoint that was slow once and
 * then left idle is tried again after a while instead of being shunned forever. A cold endpoint
 * starts at `defaultRtt` (30 ms, Linkerd's `EWMA_DEFAULT_RTT`), which also decays: low enough
 * that a new endpoint gets traffic soon, high enough that it is not flooded before it answers.
 * Failed attempts count with their latency (a timeout is a slow answer), as in both.
 *
 * The estimate lives on the {@link Endpoint}, so it survives configuration updates with it and is
 * shared by the destinations (service, subsets) that send to the endpoint. The balancer measures
 * each attempt on the call's clock and calls {@link Strategy.observe}; nothing allocates.
 */
import type { Endpoint } from './endpoint.js'
import type { SlowStartOptions } from './slow-start.js'
import { powerOfTwoChoices, type Strategy } from './strategies.js'

/** Options of {@link peakEwma}. */
export interface PeakEwmaOptions {
  /** The time constant (ms) of the estimate's decay (its half-life is `decay x ln 2`). Default `10000` (Finagle). */
  readonly decay?: number | undefined
  /** The latency estimate (ms) of an endpoint never measured. Default `30` (Linkerd). */
  readonly defaultRtt?: number | undefined
  /** Ramp up the weight of new endpoints. Default none. */
  readonly slowStart?: SlowStartOptions | undefined
}

/** Finagle's and tower's decay time. */
const DEFAULT_DECAY = 10_000
/** Linkerd's default RTT for an endpoint with no measurement yet. */
const DEFAULT_RTT = 30

/**
 * Power of two choices on latency estimate x (pending + 1); see the module comment. With unequal
 * weights the two are drawn in proportion to weight and the cost is estimate x (pending / weight
 * + 1): an endpoint of weight w is taken as w servers sharing its queue. O(1) per pick with equal
 * weights, O(n) otherwise.
 *
 * @example
 * ```ts
 * import { Endpoint, peakEwma, seededRandom } from 'meshlet'
 * const eps = [new Endpoint({ address: 'a' }), new Endpoint({ address: 'b' })]
 * const strategy = peakEwma()
 * strategy.observe?.(eps[0]!, 900, 0) // a answered in 900 ms
 * strategy.pick(eps, seededRandom(1), { now: 0, key: undefined, all: eps }) // b
 * ```
 */
export function peakEwma(options: PeakEwmaOptions = {}): Strategy {
  const decay = options.decay ?? DEFAULT_DECAY
  const defaultRtt = options.defaultRtt ?? DEFAULT_RTT
  if (!(decay > 0)) throw new RangeError(`peakEwma: decay: expected a positive number of ms, got ${decay}`)
  // The estimate at `now`, decayed towards zero since it was last touched (and stamped now).
  const estimate = (e: Endpoint, now: number): number => {
    let rtt = e.rttEstimate
    if (Number.isNaN(rtt)) {
      e.rttEstimate = defaultRtt
      e.rttStamp = now
      return defaultRtt
    }
    const dt = now - e.rttStamp
    if (dt > 0) {
      rtt *= Math.exp(-dt / decay)
      e.rttEstimate = rtt
      e.rttStamp = now
    }
    return rtt
  }

  return {
    timed: true,
    // The Finagle / tower cost: latency estimate x (pending per unit of weight + 1).
    pick: powerOfTwoChoices(options, (e, weight, now) => estimate(e, now) * (e.pending / weight + 1)),
    observe(e, latency, now) {
      let rtt = e.rttEstimate
      let stamp = e.rttStamp
      if (Number.isNaN(rtt)) {
        // Never read (it was the only candidate): cold since the attempt was sent.
        rtt = defaultRtt
        stamp = now - latency
      }
      if (latency > rtt) {
        rtt = latency
      } else {
        const w = Math.exp(-Math.max(0, now - stamp) / decay)
        rtt = rtt * w + latency * (1 - w)
      }
      e.rttEstimate = rtt
      e.rttStamp = now
    },
  }
}
