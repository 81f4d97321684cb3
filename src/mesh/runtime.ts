/**
 * A configuration made live: per service, its endpoints, its balancing strategy and the
 * handlers built for it. A {@link Snapshot} is immutable once built; `mesh.update` builds a new
 * one and swaps it in, so a call uses one configuration from start to end.
 */
import type { Handler } from '../core/handler.js'
import { Endpoint } from '../stages/balancer/endpoint.js'
import { leastRequest, randomPick, roundRobin, type Strategy } from '../stages/balancer/strategies.js'
import type { LoadBalancerName, ResolvedMeshConfig, ResolvedServiceConfig } from './config/config.js'

/** One service made live. */
export class ServiceRuntime {
  readonly #handlers = new Map<object, unknown>()

  constructor(
    readonly name: string,
    readonly config: ResolvedServiceConfig,
    readonly endpoints: readonly Endpoint[],
    readonly strategy: Strategy,
  ) {}

  /** The handler built for `key` (one per transport), built on first use. */
  handler<Req, Res>(key: object, build: () => Handler<Req, Res>): Handler<Req, Res> {
    let h = this.#handlers.get(key) as Handler<Req, Res> | undefined
    if (h === undefined) {
      h = build()
      this.#handlers.set(key, h)
    }
    return h
  }
}

/** A whole configuration made live. */
export interface Snapshot {
  readonly config: ResolvedMeshConfig
  readonly strict: boolean
  readonly services: ReadonlyMap<string, ServiceRuntime>
}

function strategyFor(name: LoadBalancerName): Strategy {
  switch (name) {
    case 'round-robin':
      return roundRobin()
    case 'random':
      return randomPick()
    case 'least-request':
      return leastRequest()
  }
}

/**
 * Builds a snapshot. Endpoints are taken from `pool` when the same service already had the same
 * address, so their live counters carry over; the pool is then trimmed to what is in use.
 */
export function buildSnapshot(config: ResolvedMeshConfig, pool: Map<string, Endpoint>): Snapshot {
  const services = new Map<string, ServiceRuntime>()
  const used = new Set<string>()
  for (const [name, service] of Object.entries(config.services)) {
    const endpoints = service.endpoints.map((e) => {
      const key = `${name}\u0000${e.url}`
      used.add(key)
      const init = { address: e.url, weight: e.weight, labels: e.labels, zone: e.zone }
      const existing = pool.get(key)
      if (existing) {
        existing.reconfigure(init)
        return existing
      }
      const created = new Endpoint(init)
      pool.set(key, created)
      return created
    })
    services.set(
      name.toLowerCase(),
      new ServiceRuntime(name, service, endpoints, strategyFor(service.loadBalancer)),
    )
  }
  for (const key of pool.keys()) if (!used.has(key)) pool.delete(key)
  return { config, strict: config.strict, services }
}
