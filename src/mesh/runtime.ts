/**
 * A configuration made live: per service, its endpoints, its balancing strategy and the
 * handlers built for it. A {@link Snapshot} is immutable once built; `mesh.update` builds a new
 * one and swaps it in, so a call uses one configuration from start to end.
 */

import type { Events } from '../core/events.js'
import type { Handler, Middleware } from '../core/handler.js'
import { Endpoint } from '../stages/balancer/endpoint.js'
import { EndpointHealth } from '../stages/balancer/health.js'
import { locality } from '../stages/balancer/locality.js'
import { peakEwma } from '../stages/balancer/peak-ewma.js'
import { ringHash } from '../stages/balancer/ring-hash.js'
import {
  leastRequest,
  randomPick,
  roundRobin,
  type Strategy,
  weightedRoundRobin,
} from '../stages/balancer/strategies.js'
import { bulkhead } from '../stages/bulkhead/bulkhead.js'
import { CircuitBreaker } from '../stages/circuit-breaker/breaker.js'
import { type AccessPolicy, type CompiledPolicies, compilePolicies } from '../stages/policy/policy.js'
import { type RetryBudget, ratioBudget, throttlingBudget, unlimitedBudget } from '../stages/retry/budget.js'
import { LatencyHistogram } from '../stages/retry/latency-histogram.js'
import { Router } from '../stages/router/router.js'
import type {
  LoadBalancerName,
  ResolvedMeshConfig,
  ResolvedRoute,
  ResolvedServiceConfig,
} from './config/config.js'

/** One service made live. */
export class ServiceRuntime {
  readonly #handlers = new Map<object, unknown>()
  #last: { transport: object; route: object; handler: unknown } | undefined = undefined

  constructor(
    readonly name: string,
    readonly config: ResolvedServiceConfig,
    readonly endpoints: readonly Endpoint[],
    readonly strategy: Strategy,
    /** The retry budget shared by every call to the service. */
    readonly budget: RetryBudget,
    /** Recent latency of the service (for percentile hedging). */
    readonly latency: LatencyHistogram,
    /** The service's circuit breaker, when it has one. */
    readonly breaker: CircuitBreaker | undefined,
    /**
     * The service's health view (outlier detection, active health checks), kept across
     * configurations that keep the service; `undefined` when neither is configured.
     */
    readonly health: EndpointHealth | undefined = undefined,
    /** The service's bulkhead (`concurrency.max` or adaptive), when it has one. */
    readonly bulkhead: Middleware<unknown, unknown> | undefined = undefined,
    /** The service this destination belongs to (`users` for `users/v2`). */
    readonly service: string = name,
  ) {
    this.host = name.toLowerCase()
  }

  /** The name in lower case: the host routes see for a call by any of the service's `hosts`. */
  readonly host: string

  /**
   * The handler built for a transport (`transport`) and a route (`route`; the destination's own
   * when no route matched), built on first use and kept for the life of the snapshot.
   */
  handler<Req, Res>(transport: object, route: object, build: () => Handler<Req, Res>): Handler<Req, Res> {
    const hit = this.cached<Req, Res>(transport, route)
    if (hit !== undefined) return hit
    let byRoute = this.#handlers.get(transport) as Map<object, Handler<Req, Res>> | undefined
    if (byRoute === undefined) {
      byRoute = new Map()
      this.#handlers.set(transport, byRoute)
    }
    const h = build()
    byRoute.set(route, h)
    this.#last = { transport, route, handler: h }
    return h
  }

  /**
   * The handler already built for `transport` and `route`, or `undefined`: what a call looks up
   * before it makes the arguments of {@link handler}. The last one used is checked first, by
   * identity, which is every call of a service reached one way.
   */
  cached<Req, Res>(transport: object, route: object): Handler<Req, Res> | undefined {
    const last = this.#last
    if (last !== undefined && last.transport === transport && last.route === route) {
      return last.handler as Handler<Req, Res>
    }
    const h = (this.#handlers.get(transport) as Map<object, Handler<Req, Res>> | undefined)?.get(route)
    if (h !== undefined) this.#last = { transport, route, handler: h }
    return h
  }
}

/** A whole configuration made live. */
export interface Snapshot {
  readonly config: ResolvedMeshConfig
  readonly strict: boolean
  /** Whether `meshErrors` is `'respond'`: read once here, not from the config per call (D61). */
  readonly respond: boolean
  /** The egress access policies, compiled; undefined when there are none (every call allowed). */
  readonly egress: CompiledPolicies | undefined
  /** Services by lower-case name. */
  readonly services: ReadonlyMap<string, ServiceRuntime>
  /**
   * Services by every lower-case host that names them: their name and their `hosts` aliases
   * (the same map as {@link services} when no service has aliases).
   */
  readonly hosts: ReadonlyMap<string, ServiceRuntime>
  /** Destinations by lower-case key: each service (`users`) and each subset (`users/v2`). */
  readonly destinations: ReadonlyMap<string, ServiceRuntime>
  /** The compiled route table. */
  readonly router: Router<ResolvedRoute>
  /** Breakers of routes that override `circuitBreaker`, by `<destination>#<route index>`. */
  readonly routeBreakers: ReadonlyMap<string, CircuitBreaker>
}

/**
 * The destination's balancing strategy: its `loadBalancer` with its `slowStart`, made
 * zone-aware by its `locality` when the mesh runs in a `zone` (one inner strategy per zone tier).
 */
function strategyFor(config: ResolvedServiceConfig, zone?: string): Strategy {
  const options = { slowStart: config.slowStart }
  const make = (name: LoadBalancerName = config.loadBalancer): Strategy => {
    switch (name) {
      case 'round-robin':
        return roundRobin()
      case 'weighted-round-robin':
        return weightedRoundRobin(options)
      case 'random':
        return randomPick(options)
      case 'least-request':
        return leastRequest(options)
      case 'peak-ewma':
        return peakEwma(options)
      case 'ring-hash':
        return ringHash()
    }
  }
  return zone === undefined ? make() : locality(() => make(), { zone, ...config.locality })
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
  readonly breakers: Map<string, { readonly key: string; readonly breaker: CircuitBreaker }>
  /** Per service with outlier detection or health checks: ejections and probe results. */
  readonly health: Map<string, EndpointHealth>
  /** Per service with a concurrency limit: the bulkhead, whose permits must outlive an update. */
  readonly bulkheads: Map<string, { readonly key: string; readonly stage: Middleware<unknown, unknown> }>
}

/** An empty {@link StatePool}. */
export const statePool = (): StatePool => ({
  endpoints: new Map(),
  budgets: new Map(),
  latency: new Map(),
  breakers: new Map(),
  health: new Map(),
  bulkheads: new Map(),
})

/**
 * The service's bulkhead: the pooled one while its settings stay the same (calls in flight keep
 * holding their permits across an update), else a new one.
 */
function bulkheadFor(
  name: string,
  config: ResolvedServiceConfig,
  state: StatePool,
  events: Events | undefined,
): Middleware<unknown, unknown> | undefined {
  const c = config.concurrency
  if (c === undefined || (c.max === 0 && c.adaptive === undefined)) {
    state.bulkheads.delete(name)
    return undefined
  }
  const key = JSON.stringify([c.max, c.queue, c.queueTimeout, c.adaptive, c.maxLimit])
  const pooled = state.bulkheads.get(name)
  if (pooled !== undefined && pooled.key === key) return pooled.stage
  const stage = bulkhead<unknown, unknown>({
    max: c.max,
    queue: c.queue,
    queueTimeout: c.queueTimeout,
    adaptive: c.adaptive,
    maxLimit: c.maxLimit,
    service: name,
    ...(events ? { events } : {}),
  })
  state.bulkheads.set(name, { key, stage })
  return stage
}

/** Stops what the pooled state runs on timers (active health checks): the mesh is closing. */
export function closeState(state: StatePool): void {
  for (const health of state.health.values()) health.close()
}

/**
 * The service's health view: the pooled one (reconfigured, so ejections and probe results
 * carry over), a new one, or none when the service has neither outlier detection nor health
 * checks (then the pooled one is closed, which stops its probes).
 */
function healthFor(
  name: string,
  config: ResolvedServiceConfig,
  endpoints: readonly Endpoint[],
  state: StatePool,
): EndpointHealth | undefined {
  const pooled = state.health.get(name)
  if (config.outlierDetection === undefined && config.healthCheck === undefined) {
    pooled?.close()
    state.health.delete(name)
    return undefined
  }
  const settings = { outlierDetection: config.outlierDetection, healthCheck: config.healthCheck }
  if (pooled !== undefined) {
    pooled.configure(endpoints, settings)
    return pooled
  }
  const health = new EndpointHealth(name, endpoints, settings)
  state.health.set(name, health)
  return health
}

/** The service's breaker: the pooled one while its settings stay the same, else a new one. */
function breakerFor(
  name: string,
  config: ResolvedServiceConfig,
  state: StatePool,
): CircuitBreaker | undefined {
  const cb = config.circuitBreaker
  if (cb === undefined) {
    state.breakers.delete(name)
    return undefined
  }
  const key = JSON.stringify(cb)
  const pooled = state.breakers.get(name)
  if (pooled !== undefined && pooled.key === key) return pooled.breaker
  const breaker = new CircuitBreaker({
    ...cb,
    windowSize: cb.windowSize ?? (cb.windowType === 'count' ? 100 : 60_000),
  })
  state.breakers.set(name, { key, breaker })
  return breaker
}

/**
 * Builds a snapshot. Live state is taken from `pool` when it fits: endpoints when the same
 * service keeps the same address (their counters carry over), a budget when the same service
 * keeps the same budget settings, a service's latency history always; the pool is then trimmed
 * to what is in use.
 */
/** Live state for one destination (a service, or one subset of it), pooled under `key`. */
function destinationRuntime(
  key: string,
  service: string,
  config: ResolvedServiceConfig,
  endpoints: readonly Endpoint[],
  state: StatePool,
  events: Events | undefined,
  zone: string | undefined,
  /** A subset shares its service's health view (one view, one probe timer) and concurrency limit. */
  shared?: ServiceRuntime,
): ServiceRuntime {
  const budgetKey = JSON.stringify(config.retry.budget)
  let budget = state.budgets.get(key)
  if (budget === undefined || budget.key !== budgetKey) {
    budget = { key: budgetKey, budget: budgetFor(config.retry.budget) }
    state.budgets.set(key, budget)
  }
  let latency = state.latency.get(key)
  if (latency === undefined) {
    latency = new LatencyHistogram()
    state.latency.set(key, latency)
  }
  return new ServiceRuntime(
    key,
    config,
    endpoints,
    strategyFor(config, zone),
    budget.budget,
    latency,
    breakerFor(key, config, state),
    shared?.health ?? healthFor(key, config, endpoints, state),
    shared?.bulkhead ?? bulkheadFor(key, config, state, events),
    service,
  )
}

/** The destination key of a service or a subset of it, as the snapshot indexes it. */
export const destinationKey = (service: string, subset: string | undefined): string =>
  (subset === undefined ? service : `${service}/${subset}`).toLowerCase()

/** Whether an endpoint carries every label of a subset's selector. */
const selects = (selector: Readonly<Record<string, string>>, e: Endpoint) =>
  Object.entries(selector).every(([k, v]) => e.labels[k] === v)

/**
 * Builds a snapshot. Live state is taken from `state` when it fits: endpoints when the same
 * service keeps the same address (their counters carry over), a budget, breaker or bulkhead
 * when the same destination keeps the same settings, a destination's latency history and health
 * always; the pool is then trimmed to what is in use. Each subset is a destination of its own
 * (`users/v2`), with its own breaker, budget and health, over the same endpoint objects.
 */
export function buildSnapshot(config: ResolvedMeshConfig, state: StatePool, events?: Events): Snapshot {
  const pool = state.endpoints
  const services = new Map<string, ServiceRuntime>()
  const destinations = new Map<string, ServiceRuntime>()
  const used = new Set<string>()
  const usedKeys = new Set<string>()
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
    const base = destinationRuntime(name, name, service, endpoints, state, events, config.zone)
    usedKeys.add(name)
    services.set(name.toLowerCase(), base)
    destinations.set(name.toLowerCase(), base)
    for (const [subset, selector] of Object.entries(service.subsets)) {
      const key = `${name}/${subset}`
      usedKeys.add(key)
      const members = endpoints.filter((e) => selects(selector, e))
      destinations.set(
        key.toLowerCase(),
        destinationRuntime(key, name, service, members, state, events, config.zone, base),
      )
    }
  }
  let hosts: Map<string, ServiceRuntime> = services
  for (const [name, service] of Object.entries(config.services)) {
    if (service.hosts.length === 0) continue
    if (hosts === services) hosts = new Map(services)
    const runtime = services.get(name.toLowerCase())!
    for (const host of service.hosts) hosts.set(host.toLowerCase(), runtime)
  }
  const routeBreakers = new Map<string, CircuitBreaker>()
  config.routes.forEach((route, i) => {
    if (route.circuitBreaker === undefined) return
    for (const d of route.route) {
      const dest = destinations.get(
        (d.subset === undefined ? d.service : `${d.service}/${d.subset}`).toLowerCase(),
      )
      if (dest === undefined) continue
      const key = `${dest.name}#${i}`
      usedKeys.add(key)
      const breaker = breakerFor(key, { ...dest.config, circuitBreaker: route.circuitBreaker }, state)
      if (breaker) routeBreakers.set(key, breaker)
    }
  })
  for (const key of pool.keys()) if (!used.has(key)) pool.delete(key)
  for (const [key, health] of state.health) {
    if (!usedKeys.has(key)) {
      health.close()
      state.health.delete(key)
    }
  }
  for (const map of [state.budgets, state.latency, state.breakers, state.bulkheads]) {
    for (const key of map.keys()) if (!usedKeys.has(key)) map.delete(key)
  }
  return {
    config,
    strict: config.strict,
    respond: config.meshErrors === 'respond',
    services,
    hosts,
    destinations,
    router: new Router(config.routes),
    routeBreakers,
    egress:
      config.egress === undefined || config.egress.length === 0
        ? undefined
        : compilePolicies(config.egress as unknown as readonly AccessPolicy[]),
  }
}
