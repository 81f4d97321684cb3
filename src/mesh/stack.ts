/**
 * The only place that knows the order of the stages. Like Finagle's `StackClient`, each stage
 * is listed with the reason it sits where it does; the first listed is the outermost and sees
 * the call first. Stages are built once per service when a configuration is applied, so the
 * per-call path does lookups, never setup.
 *
 * The router runs before this stack (in `withMesh`): it picks the route and the destination,
 * and the stack is built per (destination, route), so the route's policy is fixed at build time.
 * The order, outermost first: fallback, fault (call scope), deadline, bulkhead, retry, hedge,
 * quota, circuit breaker, fault (attempt scope), balancer (outlier detection and per-endpoint
 * limits inside it), attempt timeout, transport. Telemetry, which comes later, goes before the
 * fallback. The egress access policy runs in `withMesh` (fetch and gRPC) before any stage of
 * this stack: refuse early, before quota, retry budget or a connection is spent, on the service
 * the caller named (stages/policy/egress.ts). Quota sits inside retry and hedge, not before them as
 * ARCHITECTURE.md first sketched, so that a retry or a hedge takes a token like any call
 * (decision D58).
 */
import type { Events } from '../core/events.js'
import { chain, type Handler, type Middleware } from '../core/handler.js'
import type { Classifier, Protocol } from '../core/outcome.js'
import { balancer } from '../stages/balancer/balancer.js'
import type { Endpoint } from '../stages/balancer/endpoint.js'
import type { EndpointHealth } from '../stages/balancer/health.js'
import type { Probe } from '../stages/balancer/health-check.js'
import type { Strategy } from '../stages/balancer/strategies.js'
import type { CircuitBreaker } from '../stages/circuit-breaker/breaker.js'
import { circuitBreaker } from '../stages/circuit-breaker/circuit-breaker.js'
import { deadline } from '../stages/deadline/deadline.js'
import { fallback } from '../stages/fallback/fallback.js'
import {
  type Backoff,
  constantBackoff,
  decorrelatedJitterBackoff,
  exponentialBackoff,
} from '../stages/retry/backoff.js'
import type { RetryBudget } from '../stages/retry/budget.js'
import { hedge } from '../stages/retry/hedge.js'
import type { LatencyHistogram } from '../stages/retry/latency-histogram.js'
import { retry } from '../stages/retry/retry.js'
import { timeout } from '../stages/timeout/timeout.js'
import type { ResolvedServiceConfig } from './config/config.js'

/** What a service's stack is built from. */
export interface StackParts<Req, Res> {
  readonly name: string
  readonly config: ResolvedServiceConfig
  readonly endpoints: readonly Endpoint[]
  readonly strategy: Strategy
  /** The request's hash key for `ring-hash` (from the service's `hashKey`), when it uses one. */
  readonly keyOf?: ((req: Req) => string | undefined) | undefined
  readonly classify: Classifier<Req, Res>
  readonly protocol: Protocol<Req, Res>
  /** Whether a request may be sent twice (hedging). */
  readonly idempotent: (req: Req) => boolean
  readonly budget: RetryBudget
  readonly latency: LatencyHistogram
  /** The service's health view (outlier detection, health checks), when configured. */
  readonly health?: EndpointHealth | undefined
  /** Probes an endpoint for active health checks, when the service has them. */
  readonly probe?: Probe | undefined
  readonly breaker: CircuitBreaker | undefined
  /** The service's bulkhead (kept across updates by the runtime), when it has one. */
  readonly bulkhead?: Middleware<Req, Res> | undefined
  /** The quota stage (rate limit, adaptive throttling) of the service or route, when it has one. */
  readonly quota?: Middleware<Req, Res> | undefined
  /** Call-scoped fault injection of the route (before the deadline and retries), when it has one. */
  readonly faultCall?: Middleware<Req, Res> | undefined
  /** Attempt-scoped fault injection of the route (inside retry and breaker), when it has one. */
  readonly faultAttempt?: Middleware<Req, Res> | undefined
  /** Makes the fallback answer, when the service has one. */
  readonly fallback: ((req: Req, error: unknown) => Res | Promise<Res>) | undefined
  readonly events: Events
  /**
   * Whether the service's own `timeout`, when it is a call's only deadline, stays local (not
   * told upstream; the gRPC stack sets it unless `propagateDeadline` is `true`, decision D27).
   * Default `false`.
   */
  readonly localTimeout?: boolean
}

/** A hedge delay from config: ms, or `'p95'` for a percentile of recent latency. */
function hedgeDelay(delay: number | string): { delay: number } | { percentile: number } {
  return typeof delay === 'number' ? { delay } : { percentile: Number(delay.slice(1)) }
}

function backoffFor(config: ResolvedServiceConfig['retry']['backoff']): Backoff {
  switch (config.kind) {
    case 'constant':
      return constantBackoff(config.base)
    case 'exponential':
      return exponentialBackoff({
        base: config.base,
        max: config.max,
        jitter: config.jitter,
        factor: config.factor,
      })
    case 'decorrelated':
      return decorrelatedJitterBackoff({ base: config.base, max: config.max })
  }
}

/** The service's middlewares, outermost first. */
export function serviceStages<Req, Res>(parts: StackParts<Req, Res>): Middleware<Req, Res>[] {
  const { name, config, classify, protocol, events, budget } = parts
  const stages: Middleware<Req, Res>[] = []
  if (config.fallback && parts.fallback) {
    // fallback: outermost, so it sees what the caller would see (the deadline, an open circuit,
    // a full bulkhead, an exhausted budget) and answers instead.
    stages.push(fallback({ on: config.fallback.on, respond: parts.fallback, service: name, events }))
  }
  if (parts.faultCall) {
    // fault (call scope, as Istio): once per call, before the deadline and retries, so an injected
    // abort is not retried and an injected delay does not eat the call's timeout (as Envoy's
    // fault filter runs before the router's timeout starts).
    stages.push(parts.faultCall)
  }
  stages.push(
    // deadline: the whole-call budget, set before retries so every try shares it. A number on
    // the context, not a timer: the attempt timeout below arms the only timer.
    deadline({ timeout: config.timeout, local: parts.localTimeout === true }),
  )
  if (parts.bulkhead) {
    // bulkhead: inside the deadline (which bounds the queue wait), outside retry: one permit per
    // call, attempts included, so a retrying call cannot take more of the service than one slot.
    stages.push(parts.bulkhead)
  }
  stages.push(
    // retry: outside the balancer so a retry may land on another endpoint; outside the attempt
    // timeout so each try gets its own limit; never past the deadline; each call deposits in the
    // service's budget and each retry withdraws from it.
    retry({
      attempts: config.retry.attempts,
      backoff: backoffFor(config.retry.backoff),
      budget,
      classify,
      protocol,
      service: name,
      events,
    }),
  )
  if (config.hedge) {
    // hedge: inside retry (a retry re-runs the whole race) and outside the balancer, so each
    // hedge picks its own endpoint, avoiding those the call already uses.
    stages.push(
      hedge({
        ...hedgeDelay(config.hedge.delay),
        latency: parts.latency,
        maxAttempts: config.hedge.maxAttempts,
        idempotent: parts.idempotent,
        classify,
        protocol,
        budget,
        service: name,
        events,
      }),
    )
  }
  if (parts.quota) {
    // quota: inside retry and hedge, so each retry and hedge takes a token like any call (a
    // server's quota counts every request it receives) and waits for it within the deadline;
    // outside the breaker, so a local refusal (RATE_LIMITED) is never the destination's failure,
    // and a server's 429 pauses the key before the retry's own wait ends (decision D58).
    stages.push(parts.quota)
  }
  if (parts.breaker) {
    // circuit breaker: inside retry, so it sees each attempt and an open circuit fails fast
    // instead of being retried; outside the balancer, as it judges the destination as a whole.
    stages.push(circuitBreaker({ breaker: parts.breaker, classify, service: name, events }))
  }
  if (parts.faultAttempt) {
    // fault (attempt scope): inside retry and breaker, so that injected failures are retried and
    // counted by the breaker, which is what a chaos test of those stages needs.
    stages.push(parts.faultAttempt)
  }
  stages.push(
    // balancer: picks the endpoint per attempt among those in rotation (outlier detection and
    // health checks feed it; a panic threshold falls back to all), counts its in-flight load and
    // passes over endpoints at `concurrency.perEndpoint`.
    balancer({
      service: name,
      endpoints: parts.endpoints,
      strategy: parts.strategy,
      health: parts.health,
      classify,
      probe: parts.probe,
      perEndpoint: config.concurrency?.perEndpoint,
      events,
      keyOf: parts.keyOf,
      gatewayFailure: protocol.gatewayFailure?.bind(protocol),
    }),
    // attempt timeout: innermost before the transport, so the one timer of an attempt covers
    // exactly the network exchange, at min(deadline, perTryTimeout).
    timeout({ perTryTimeout: config.retry.perTryTimeout, service: name, events }),
  )
  return stages
}

/** Builds a service's handler around a transport. */
export function buildStack<Req, Res>(
  parts: StackParts<Req, Res>,
  transport: Handler<Req, Res>,
): Handler<Req, Res> {
  return chain(serviceStages(parts), transport)
}
