/**
 * A configuration made live: per service, its endpoints, its balancing strategy and the
 * handlers built for it. A {@link Snapshot} is immutable once built; `mesh.update` builds a new
 * one and swaps it in, so a call uses one configuration from start to end.
 */
import type { Handler } from '../core/handler.js'
import { Endpoint } from '../stages/balancer/endpoint.js'
import { leastRequest, randomPick, roundRobin, type Strategy } from '../stages/balancer/strategies.js'
import { type RetryBudget, ratioBudget, throttlingBudget, unlimitedBudget } from '../stages/retry/budget.js'
import { LatencyHistogram } from '../stages/retry/latency-histogram.js'
import type { LoadBalancerName, ResolvedMeshConfig, ResolvedServiceConfig } from './config/config.js'

/** One service made live. */
export class ServiceRuntime {
  readonly #handlers = new Map<object, unknown>()

  constructor(
    readonly name: string,
    readonly config: ResolvedServiceConfig,
    readonly endpoints: readonly Endpoint[],
    readonly strategy: Strategy,
    /** The retry budget shared by every call to the service. */
    readonly budget: RetryBudget,
    /** Recent latency of the service (for percentile hedging). */
    readonly latency: LatencyHistogram,
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

function budgetFor(config: ResolvedServiceConfig['retry']['budget']): RetryBudget {
  switch (config.kind) {
    case 'ratio':
      return ratioBudget({ ratio: config.ratio, minPerSecond: config.minPerSecond, ttl: config.ttl })
    case 'throttling':
      return throttlingBudget({ maxTokens: config.maxTokens, tokenRatio: config.tokenRatio })
    case 'none':
      return unlimitedBudget
  }
}

/** State that outlives a configuration: kept per service (and endpoint) across updates. */
export interface StatePool {
  readonly endpoints: Map<string, Endpoint>
  readonly budgets: Map<string, { readonly key: string; readonly budget: RetryBudget }>
  readonly latency: Map<string, LatencyHistogram>
}

/** An empty {@link StatePool}. */
export const statePool = (): StatePool => ({ endpoints: new Map(), budgets: new Map(), latency: new Map() })

/**
 * Builds a snapshot. Live state is taken from `pool` when it fits: endpoints when the same
 * service keeps the same address (their counters carry over), a budget when the same service
 * keeps the same budget settings, a service's latency history always; the pool is then trimmed
 * to what is in use.
 */
export function buildSnapshot(config: ResolvedMeshConfig, state: StatePool): Snapshot {
  const pool = state.endpoints
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
    const budgetKey = JSON.stringify(service.retry.budget)
    let budget = state.budgets.get(name)
    if (budget === undefined || budget.key !== budgetKey) {
      budget = { key: budgetKey, budget: budgetFor(service.retry.budget) }
      state.budgets.set(name, budget)
    }
    let latency = state.latency.get(name)
    if (latency === undefined) {
      latency = new LatencyHistogram()
      state.latency.set(name, latency)
    }
    services.set(
      name.toLowerCase(),
      new ServiceRuntime(name, service, endpoints, strategyFor(service.loadBalancer), budget.budget, latency),
    )
  }
  for (const key of pool.keys()) if (!used.has(key)) pool.delete(key)
  for (const map of [state.budgets, state.latency]) {
    for (const name of map.keys()) if (!(name in config.services)) map.delete(name)
  }
  return { config, strict: config.strict, services }
}
