/**
 * Picking strategies. Each is a small value with one method; per-destination state (the round
 * robin cursor, smooth weighted round robin's counters) lives in the strategy instance, which the
 * mesh builds once per destination. Every draw comes from the injected `Random`, so a seeded run
 * makes the same picks; no strategy arms a timer, and none allocates per pick.
 *
 * Weights are honoured by every strategy but plain `round-robin`: weighted round robin as nginx
 * (smooth: no bursts), random in proportion, and the power-of-two-choices strategies by drawing
 * their two candidates in proportion to weight and comparing load per unit of weight (Finagle's
 * weighted p2c), so that at rest shares follow the weights and under load a heavier endpoint is
 * expected to hold proportionally more. Slow start (`slow-start.ts`) scales those weights for new
 * endpoints. Peak EWMA is in `peak-ewma.ts`, ring hash in `ring-hash.ts`, locality in `locality.ts`.
 */
import type { Random } from '../../core/random.js'
import type { Endpoint } from './endpoint.js'
import { EffectiveWeights, type SlowStartOptions } from './slow-start.js'

/**
 * What a strategy may know of the attempt besides the candidates. The balancer reuses one object
 * for every call (picks are synchronous): read it during `pick`, never keep it.
 */
export interface PickInput {
  /** Now on the call's clock (ms); set only for strategies that say they are {@link Strategy.timed}. */
  readonly now: number
  /** The request's hash key (`ring-hash`), when the request has one. */
  readonly key: string | undefined
  /**
   * Every endpoint of the destination, those out of rotation included (the candidates are a part
   * of it): locality measures a zone's health against it, ring hash builds its ring from it. The
   * mesh never changes such a list, so strategies may cache what they derive from it.
   */
  readonly all: readonly Endpoint[]
}

/** Chooses an endpoint for one attempt. */
export interface Strategy {
  /**
   * The endpoint for this attempt, or `undefined` when `endpoints` is empty. `input` defaults to
   * time 0, no key, and `endpoints` as the whole list.
   */
  pick(endpoints: readonly Endpoint[], random: Random, input?: PickInput): Endpoint | undefined
  /** Whether `pick` reads `input.now` (slow start, latency decay); the balancer reads the clock only then. */
  readonly timed?: boolean
  /**
   * Takes the latency (ms) of a finished attempt on `endpoint`, failed or not, at `now`. The
   * balancer measures and reports it only when the strategy has this method (`peak-ewma`).
   */
  observe?(endpoint: Endpoint, latency: number, now: number): void
}

/** Options of the weighted strategies. */
export interface WeightedStrategyOptions {
  /** Ramp up the weight of new endpoints. Default none: full weight at once. */
  readonly slowStart?: SlowStartOptions | undefined
}

/**
 * The effective weights of one pick, for draws in proportion to weight: a reused array, grown
 * (rarely) to the largest list seen.
 * @internal
 */
export class WeightTable {
  weights = new Float64Array(8)
  total = 0

  /** Computes the weight of each of `endpoints` at `now`. */
  fill(endpoints: readonly Endpoint[], effective: EffectiveWeights, now: number): void {
    const n = endpoints.length
    if (this.weights.length < n) this.weights = new Float64Array(Math.max(n, this.weights.length * 2))
    const w = this.weights
    let total = 0
    for (let i = 0; i < n; i++) {
      const x = effective.of(endpoints[i]!, now)
      w[i] = x
      total += x
    }
    this.total = total
  }

  /** The index drawn by `u` (uniform in [0, 1)) in proportion to weight, leaving out `skip` (-1: none). */
  draw(n: number, u: number, skip: number): number {
    const w = this.weights
    let x = u * (skip < 0 ? this.total : this.total - w[skip]!)
    let last = -1
    for (let i = 0; i < n; i++) {
      if (i === skip) continue
      last = i
      x -= w[i]!
      if (x < 0) return i
    }
    return last
  }
}

/** Takes endpoints in turn. Weights are ignored: see {@link weightedRoundRobin}. */
export function roundRobin(): Strategy {
  let cursor = -1
  return {
    pick(endpoints) {
      const n = endpoints.length
      if (n === 0) return undefined
      cursor = (cursor + 1) % n
      return endpoints[cursor]
    },
  }
}

/**
 * Smooth weighted round robin (nginx, 2012): at each pick every endpoint's counter grows by its
 * weight, the largest counter wins and gives back the sum of the weights. Over a cycle each
 * endpoint gets exactly its share, interleaved (weights 5, 1, 1 give `a a b a c a a`), never a
 * burst of one endpoint's whole share; equal weights make it plain round robin. O(n) per pick.
 *
 * The counters belong to this strategy, not to the endpoints; when the candidates change (an
 * ejection, a new configuration) those of the endpoints that stay are kept.
 */
export function weightedRoundRobin(options: WeightedStrategyOptions = {}): Strategy {
  const effective = new EffectiveWeights(options.slowStart)
  let list: readonly Endpoint[] = []
  let counters = new Float64Array(0)
  const sameList = (endpoints: readonly Endpoint[]) => {
    if (endpoints.length !== list.length) return false
    for (let i = 0; i < endpoints.length; i++) if (endpoints[i] !== list[i]) return false
    return true
  }
  return {
    timed: options.slowStart !== undefined,
    pick(endpoints, _random, input) {
      const n = endpoints.length
      if (n <= 1) return endpoints[0]
      const now = input?.now ?? 0
      effective.sync(input?.all ?? endpoints, now)
      if (!sameList(endpoints)) {
        // Off the hot path: only when the candidates change.
        const next = new Float64Array(n)
        for (let i = 0; i < n; i++) {
          const k = list.indexOf(endpoints[i]!)
          next[i] = k < 0 ? 0 : counters[k]!
        }
        list = endpoints.slice()
        counters = next
      }
      let total = 0
      let best = 0
      let bestCounter = Number.NEGATIVE_INFINITY
      for (let i = 0; i < n; i++) {
        const w = effective.of(endpoints[i]!, now)
        const c = counters[i]! + w
        counters[i] = c
        total += w
        if (c > bestCounter) {
          best = i
          bestCounter = c
        }
      }
      counters[best]! -= total
      return endpoints[best]
    },
  }
}

/** Draws an endpoint at random, in proportion to its (effective) weight. O(1) when weights are equal, else O(n). */
export function randomPick(options: WeightedStrategyOptions = {}): Strategy {
  const effective = new EffectiveWeights(options.slowStart)
  const table = new WeightTable()
  return {
    timed: options.slowStart !== undefined,
    pick(endpoints, random, input) {
      const n = endpoints.length
      if (n <= 1) return endpoints[0]
      const now = input?.now ?? 0
      effective.sync(input?.all ?? endpoints, now)
      if (effective.uniform(now)) return endpoints[Math.floor(random.next() * n)]
      table.fill(endpoints, effective, now)
      return endpoints[table.draw(n, random.next(), -1)]
    },
  }
}

/**
 * Power of two choices on in-flight requests (Mitzenmacher 2001; the default of Envoy's
 * `LEAST_REQUEST`, Finagle and Linkerd): draw two distinct endpoints, keep the one with fewer
 * pending attempts. It reacts to a slow endpoint within a few calls and, unlike a global "least
 * loaded" scan, does not herd every caller onto the same endpoint.
 *
 * With unequal weights (or a slow start in progress) the two are drawn in proportion to weight
 * and compared on pending attempts per unit of weight, as Finagle's weighted p2c: at rest the
 * shares are the weights; Envoy reaches the same end with an EDF schedule on
 * `weight / (pending + 1)`. O(1) per pick with equal weights, O(n) otherwise.
 */
export function leastRequest(options: WeightedStrategyOptions = {}): Strategy {
  return {
    timed: options.slowStart !== undefined,
    pick: powerOfTwoChoices(options, (e, weight) => e.pending / weight),
  }
}

/**
 * The pick of power-of-two-choices strategies, shared by least-request and peak-EWMA: draws two
 * distinct endpoints (uniformly, or in proportion to their effective weights when those differ)
 * and keeps the one of lower `cost`, given its weight (1 when weights are equal).
 */
export function powerOfTwoChoices(
  options: WeightedStrategyOptions,
  cost: (e: Endpoint, weight: number, now: number) => number,
): Strategy['pick'] {
  const effective = new EffectiveWeights(options.slowStart)
  const table = new WeightTable()
  return (endpoints, random, input) => {
    const n = endpoints.length
    if (n <= 1) return endpoints[0]
    const now = input?.now ?? 0
    effective.sync(input?.all ?? endpoints, now)
    let i: number
    let j: number
    let wa = 1
    let wb = 1
    if (effective.uniform(now)) {
      i = Math.floor(random.next() * n)
      j = Math.floor(random.next() * (n - 1))
      if (j >= i) j++
    } else {
      table.fill(endpoints, effective, now)
      i = table.draw(n, random.next(), -1)
      j = table.draw(n, random.next(), i)
      wa = table.weights[i]!
      wb = table.weights[j]!
    }
    const a = endpoints[i]!
    const b = endpoints[j]!
    return cost(b, wb, now) < cost(a, wa, now) ? b : a
  }
}
