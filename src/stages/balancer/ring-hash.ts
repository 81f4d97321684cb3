/**
 * Ring hash: consistent hashing (Karger et al. 1997, as Envoy's `RING_HASH`), so that calls with
 * the same key (a user id header, a cookie, the path) go to the same endpoint, and a change in
 * the endpoint set moves as few keys as possible: adding an eleventh endpoint to ten moves only
 * the keys that now land on it, about 1/11 of them.
 *
 * Each endpoint is placed on a 32-bit ring at `pointsPerWeight x weight` points (virtual nodes,
 * as ketama); a key goes to the first point at or after its hash. Unlike Envoy, which sizes the
 * whole ring (1024 points at least) and so gives every endpoint fewer points when one joins,
 * the points of an endpoint depend on its own weight only: a new endpoint adds its points and
 * moves nothing else (with Envoy's sizing, adding an eleventh endpoint to ten moved 16 % of the
 * keys here instead of 9 %). 1024 points per unit of weight keep each share within about 0.5 %
 * of its weight for small sets, at 8 bytes a point (80 KB for ten endpoints of weight 1); past
 * `maxRingSize` points (256 such endpoints) each gets fewer. The lookup is a binary
 * search, with no allocation; the ring is built when the destination's endpoint list changes (a
 * new configuration or discovery answer), never per call.
 *
 * Why a ring and not Maglev (Envoy's other consistent hash): Maglev's table gives O(1) lookups
 * and a more even spread, but a change of the set moves some keys between endpoints that stay;
 * with a ring a key only ever moves to a new endpoint or off a removed one, which is what
 * caches behind the endpoints want. At the sizes a client-side balancer sees, a binary search
 * over a few thousand points costs well under a microsecond.
 *
 * An endpoint out of rotation (ejected, failing health checks, or outside the zone that locality
 * chose) is passed over: the key goes to the next point of an endpoint among the candidates, so
 * keys of healthy endpoints never move when another one is ejected. A request without a key is
 * balanced at random, in proportion to weight. Slow start does not apply: ramping a weight would
 * move keys back and forth.
 */
import type { Endpoint } from './endpoint.js'
import type { Strategy } from './strategies.js'

/** Options of {@link ringHash}. */
export interface RingHashOptions {
  /** Points on the ring per unit of endpoint weight. Default `1024`. */
  readonly pointsPerWeight?: number | undefined
  /** The most points on the ring, whatever the weights (fewer per weight beyond it). Default `262144`. */
  readonly maxRingSize?: number | undefined
}

/** murmur3's 32-bit finaliser: every input bit flips each output bit with probability about 1/2. */
function fmix32(x: number): number {
  let h = x ^ (x >>> 16)
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** 32-bit FNV-1a over the string's UTF-16 code units, then {@link fmix32} for avalanche. */
export function hash32(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return fmix32(h)
}

interface Ring {
  /** Point hashes, ascending. */
  readonly hashes: Uint32Array
  /** For each point, the index of its endpoint in the list the ring was built from. */
  readonly owners: Uint32Array
}

const INDEX_BITS = 2 ** 21

/**
 * Places each endpoint at `pointsPerWeight x weight` points (fewer per weight when the ring would
 * pass `maxRingSize`). The count depends on the endpoint's own weight only, not on the others,
 * so that adding an endpoint leaves every other endpoint's points where they were.
 */
function buildRing(all: readonly Endpoint[], pointsPerWeight: number, maxRingSize: number): Ring {
  const n = all.length
  let total = 0
  for (const e of all) total += e.weight
  const perWeight = Math.min(pointsPerWeight, maxRingSize / total)
  const counts: number[] = []
  let placed = 0
  for (const e of all) {
    const count = Math.max(1, Math.round(perWeight * e.weight))
    counts.push(count)
    placed += count
  }
  // Pack hash and owner into one float (exact below 2^53) so that one numeric sort orders both.
  const packed = new Float64Array(placed)
  let k = 0
  for (let i = 0; i < n; i++) {
    // Point v of an endpoint: its address's hash mixed with v (no string per point).
    const base = hash32(all[i]!.address)
    for (let v = 0; v < counts[i]!; v++) {
      packed[k++] = fmix32((base + Math.imul(v + 1, 0x9e3779b9)) | 0) * INDEX_BITS + i
    }
  }
  packed.sort()
  const hashes = new Uint32Array(placed)
  const owners = new Uint32Array(placed)
  for (let p = 0; p < placed; p++) {
    const x = packed[p]!
    const h = Math.floor(x / INDEX_BITS)
    hashes[p] = h
    owners[p] = x - h * INDEX_BITS
  }
  return { hashes, owners }
}

/**
 * Consistent hashing on `input.key`; see the module comment. Without a key, a weighted random
 * pick.
 *
 * @example
 * ```ts
 * import { Endpoint, ringHash, seededRandom } from 'meshlet'
 * const eps = ['a', 'b', 'c'].map((address) => new Endpoint({ address }))
 * const strategy = ringHash()
 * const input = { now: 0, key: 'user-42', all: eps }
 * strategy.pick(eps, seededRandom(1), input) === strategy.pick(eps, seededRandom(2), input) // true
 * ```
 */
export function ringHash(options: RingHashOptions = {}): Strategy {
  const pointsPerWeight = Math.max(1, options.pointsPerWeight ?? 1024)
  const maxRingSize = Math.max(1, options.maxRingSize ?? 262_144)
  let built: readonly Endpoint[] | undefined
  let ring: Ring = { hashes: new Uint32Array(0), owners: new Uint32Array(0) }

  const fallback = (endpoints: readonly Endpoint[], u: number): Endpoint | undefined => {
    let total = 0
    for (let i = 0; i < endpoints.length; i++) total += endpoints[i]!.weight
    let x = u * total
    for (let i = 0; i < endpoints.length; i++) {
      x -= endpoints[i]!.weight
      if (x < 0) return endpoints[i]
    }
    return endpoints[endpoints.length - 1]
  }

  return {
    pick(endpoints, random, input) {
      const n = endpoints.length
      if (n <= 1) return endpoints[0]
      const key = input?.key
      if (key === undefined) return fallback(endpoints, random.next())
      const all = input?.all ?? endpoints
      if (all !== built) {
        ring = buildRing(all, pointsPerWeight, maxRingSize)
        built = all
      }
      const { hashes, owners } = ring
      const size = hashes.length
      const h = hash32(key)
      let lo = 0
      let hi = size
      while (lo < hi) {
        const mid = (lo + hi) >>> 1
        if (hashes[mid]! < h) lo = mid + 1
        else hi = mid
      }
      // The candidates are a part of `all`; when they are as many, they are all of it.
      const everyone = endpoints === all || n === all.length
      for (let step = 0; step < size; step++) {
        const e = all[owners[(lo + step) % size]!]!
        if (everyone || endpoints.includes(e)) return e
      }
      return fallback(endpoints, random.next())
    },
  }
}
