/**
 * Effective weights: an endpoint's configured weight, ramped up over a slow-start window after
 * the endpoint first appears (Envoy's `slow_start_config`), so that a cold instance (empty
 * caches, a JIT still warming) is not handed its full share at once.
 *
 * The ramp is Envoy's: `weight x max(minWeightPercent, (age / window) ^ (1 / aggression))`, where
 * age counts from {@link Endpoint.addedAt}. The endpoint is created without a clock, so the first
 * pick that sees it records that time; endpoints present at the first call all start together,
 * and since their factors are equal their shares do not change (Envoy: slow start matters when a
 * few endpoints join a running set). No timer: the factor is computed at each pick.
 *
 * {@link EffectiveWeights} also tells strategies when every weight is equal, so that the common
 * case (no weights, no ramp in progress) keeps O(1) picks. It caches per endpoint list: the
 * mesh builds a new list for each configuration (and discovery change), never changes one.
 */
import type { Endpoint } from './endpoint.js'

/** Slow start of new endpoints. */
export interface SlowStartOptions {
  /** How long the ramp lasts (ms) from when the endpoint first appears. Required. */
  readonly window: number
  /**
   * The ramp's shape: `1` is linear, above 1 sends more traffic early, below 1 less. Default `1`
   * (Envoy's default).
   */
  readonly aggression?: number | undefined
  /** The smallest share of its weight an endpoint gets during the ramp, 0..100. Default `10` (Envoy's). */
  readonly minWeightPercent?: number | undefined
}

/** The effective weights of a destination's endpoints; see the module comment. One per strategy instance. */
export class EffectiveWeights {
  readonly #window: number
  readonly #exponent: number
  readonly #floor: number
  #list: readonly Endpoint[] | undefined = undefined
  #uniform = true
  #rampUntil = Number.NEGATIVE_INFINITY

  constructor(slowStart?: SlowStartOptions) {
    this.#window = slowStart === undefined ? 0 : Math.max(0, slowStart.window)
    this.#exponent = 1 / (slowStart?.aggression ?? 1)
    this.#floor = (slowStart?.minWeightPercent ?? 10) / 100
  }

  /**
   * Takes the destination's whole endpoint list at a pick: on a new list, notes whether all
   * configured weights are equal and, with slow start, records when each endpoint not seen
   * before appeared (the balancer stage already does, on the call's clock). O(1) when the list is
   * the one of the previous pick.
   */
  sync(all: readonly Endpoint[], now: number): void {
    if (all === this.#list) return
    this.#list = all
    const ramps = this.#window > 0
    let uniform = true
    let lastAdded = Number.NEGATIVE_INFINITY
    const w0 = all[0]?.weight
    for (let i = 0; i < all.length; i++) {
      const e = all[i]!
      if (ramps && Number.isNaN(e.addedAt)) e.addedAt = now
      if (e.addedAt > lastAdded) lastAdded = e.addedAt
      if (e.weight !== w0) uniform = false
    }
    this.#uniform = uniform
    this.#rampUntil = this.#window > 0 ? lastAdded + this.#window : Number.NEGATIVE_INFINITY
  }

  /** Whether every endpoint of the list has the same effective weight at `now`. */
  uniform(now: number): boolean {
    return this.#uniform && now >= this.#rampUntil
  }

  /** The weight of `e` at `now`: its configured weight, scaled down while it ramps up. */
  of(e: Endpoint, now: number): number {
    const window = this.#window
    if (window === 0) return e.weight
    let added = e.addedAt
    if (Number.isNaN(added)) {
      added = now
      e.addedAt = now
    }
    const age = now - added
    if (age >= window) return e.weight
    const factor = age <= 0 ? 0 : (age / window) ** this.#exponent
    return e.weight * Math.max(factor, this.#floor)
  }
}
