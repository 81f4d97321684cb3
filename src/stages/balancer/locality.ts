/**
 * Locality: keep calls in the caller's own zone, and spill to other zones, in a priority order,
 * only as the local zone runs short of healthy endpoints. Cross-zone traffic is slower and, in
 * most clouds, billed; a zone that lost most of its endpoints must not take the whole load.
 *
 * The zones form tiers: the local zone, then each zone of `failover` in order, then every other
 * zone (and endpoints with no zone) together. How much a tier takes follows Envoy's priority
 * levels: a tier's health is its share of endpoints in rotation x an overprovisioning factor of
 * `100 / minHealthyPercent` (70 % gives 1.43, Envoy's factor is 1.4), capped at 100 %; the local
 * tier takes its health in percent of the calls, the next tier takes what is left up to its own
 * health, and so on (when all together fall short of 100 %, the shares are scaled up). So while
 * at least 70 % of the local zone is in rotation every call stays local; below that, traffic
 * moves out gradually rather than all at once, and a zone with no endpoint takes nothing.
 *
 * Within the chosen tier, the strategy of the service picks, with one instance per tier (a
 * round robin's cycle in one zone is not disturbed by calls sent to another). The tiers are
 * recomputed only when the candidates change; a pick that stays local draws nothing extra, so
 * the inner strategy's draws are those it would make alone. Checking that the candidates are
 * the same as at the last pick is a pointer comparison per endpoint, with no allocation.
 */
import type { Random } from '../../core/random.js'
import type { Endpoint } from './endpoint.js'
import type { PickInput, Strategy } from './strategies.js'

/** Options of {@link locality}. */
export interface LocalityOptions {
  /** The caller's zone. Required. */
  readonly zone: string
  /** The zones to spill to, in priority order, after the local zone; other zones come last. Default `[]`. */
  readonly failover?: readonly string[] | undefined
  /**
   * Below this percent of its endpoints in rotation, a zone starts to hand calls to the next
   * tier, 0..100. Default `70`.
   */
  readonly minHealthyPercent?: number | undefined
}

/**
 * Wraps a strategy with zone preference; see the module comment. `make` builds the strategy
 * picking within a tier (one per tier).
 */
export function locality(make: () => Strategy, options: LocalityOptions): Strategy {
  const failover = options.failover ?? []
  const minHealthy = options.minHealthyPercent ?? 70
  const tierCount = failover.length + 2
  const rank = new Map<string, number>()
  for (let i = failover.length - 1; i >= 0; i--) rank.set(failover[i]!, i + 1)
  rank.set(options.zone, 0)
  const rankOf = (e: Endpoint) => (e.zone === undefined ? tierCount - 1 : (rank.get(e.zone) ?? tierCount - 1))

  const inner = Array.from({ length: tierCount }, make)
  const members: Endpoint[][] = Array.from({ length: tierCount }, () => [])
  const totals = new Float64Array(tierCount)
  const health = new Float64Array(tierCount)
  // Cumulative share of calls per tier; `local` when tier 0 takes all of them.
  const cumulative = new Float64Array(tierCount)
  let local = true
  let totalsOf: readonly Endpoint[] | undefined
  let seenSource: readonly Endpoint[] | undefined
  const seen: Endpoint[] = []

  const unchanged = (endpoints: readonly Endpoint[], all: readonly Endpoint[]) => {
    // A list the mesh built never changes; another (a health view's rotation) may change in place.
    if (endpoints === seenSource && endpoints === all) return true
    if (endpoints.length !== seen.length) return false
    for (let i = 0; i < endpoints.length; i++) if (endpoints[i] !== seen[i]) return false
    return true
  }

  const rebuild = (endpoints: readonly Endpoint[]) => {
    seenSource = endpoints
    seen.length = 0
    for (const list of members) list.length = 0
    for (const e of endpoints) {
      seen.push(e)
      members[rankOf(e)]!.push(e)
    }
    let sum = 0
    for (let t = 0; t < tierCount; t++) {
      const available = members[t]!.length
      const total = Math.max(totals[t]!, available)
      let h = 0
      if (available > 0) h = minHealthy <= 0 ? 1 : Math.min(1, (available * 100) / (total * minHealthy))
      health[t] = h
      sum += h
    }
    // Envoy's priority load: each tier takes up to its health of what the tiers before left.
    let left = 1
    let acc = 0
    for (let t = 0; t < tierCount; t++) {
      const share = sum >= 1 ? Math.min(left, health[t]!) : sum > 0 ? health[t]! / sum : 0
      left -= share
      acc += share
      cumulative[t] = acc
    }
    local = cumulative[0]! >= 1
  }

  const choose = (random: Random): number => {
    if (local) return 0
    const u = random.next() * cumulative[tierCount - 1]!
    for (let t = 0; t < tierCount; t++) if (u < cumulative[t]!) return t
    return tierCount - 1
  }

  const first = inner[0]!
  return {
    timed: first.timed === true,
    ...(first.observe ? { observe: first.observe } : {}),
    pick(endpoints: readonly Endpoint[], random: Random, input?: PickInput) {
      if (endpoints.length === 0) return undefined
      const all = input?.all ?? endpoints
      if (all !== totalsOf) {
        totals.fill(0)
        for (const e of all) totals[rankOf(e)]!++
        totalsOf = all
        seenSource = undefined
        seen.length = 0
      }
      if (!unchanged(endpoints, all)) rebuild(endpoints)
      const t = choose(random)
      return inner[t]!.pick(members[t]!, random, input)
    },
  }
}
