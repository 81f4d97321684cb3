/**
 * Picking strategies. Each is a small value with one method; per-destination state (the round
 * robin cursor) lives in the strategy instance, which the mesh builds once per destination.
 * Every draw comes from the injected `Random`, so a seeded run makes the same picks.
 */
import type { Random } from '../../core/random.js'
import type { Endpoint } from './endpoint.js'

/** Chooses an endpoint for one attempt. */
export interface Strategy {
  /** The endpoint for this attempt, or `undefined` when `endpoints` is empty. */
  pick(endpoints: readonly Endpoint[], random: Random): Endpoint | undefined
}

/** Takes endpoints in turn. Weights are ignored (see `weighted-round-robin`, planned). */
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

/** Draws an endpoint at random, in proportion to its weight. */
export function randomPick(): Strategy {
  return {
    pick(endpoints, random) {
      const n = endpoints.length
      if (n <= 1) return endpoints[0]
      let total = 0
      for (let i = 0; i < n; i++) total += endpoints[i]!.weight
      let x = random.next() * total
      for (let i = 0; i < n; i++) {
        const e = endpoints[i]!
        x -= e.weight
        if (x < 0) return e
      }
      return endpoints[n - 1]
    },
  }
}

/**
 * Power of two choices on in-flight requests (Mitzenmacher 2001; the default of Envoy's
 * `LEAST_REQUEST`, Finagle and Linkerd): draw two distinct endpoints, keep the one with fewer
 * pending attempts, normalised by weight. It reacts to a slow endpoint within a few calls and,
 * unlike a global "least loaded" scan, does not herd every caller onto the same endpoint.
 */
export function leastRequest(): Strategy {
  return {
    pick(endpoints, random) {
      const n = endpoints.length
      if (n <= 1) return endpoints[0]
      const i = Math.floor(random.next() * n)
      let j = Math.floor(random.next() * (n - 1))
      if (j >= i) j++
      const a = endpoints[i]!
      const b = endpoints[j]!
      return (b.pending + 1) / b.weight < (a.pending + 1) / a.weight ? b : a
    },
  }
}
