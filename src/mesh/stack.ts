/**
 * The only place that knows the order of the stages. Like Finagle's `StackClient`, each stage
 * is listed with the reason it sits where it does; the first listed is the outermost and sees
 * the call first. Stages are built once per service when a configuration is applied, so the
 * per-call path does lookups, never setup.
 *
 * Planned stages (their issues) keep their place in this order: telemetry, access policy and
 * router (issue 7) before the deadline; quota and fault injection between router and deadline;
 * hedging beside retry (issue 4); circuit breaker between retry and balancer, outlier detection
 * inside the balancer (issue 5); bulkhead between balancer and attempt timeout.
 */
import type { Events } from '../core/events.js'
import { chain, type Handler, type Middleware } from '../core/handler.js'
import type { Classifier, Protocol } from '../core/outcome.js'
import { balancer } from '../stages/balancer/balancer.js'
import type { Endpoint } from '../stages/balancer/endpoint.js'
import type { Strategy } from '../stages/balancer/strategies.js'
import { deadline } from '../stages/deadline/deadline.js'
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
  readonly classify: Classifier<Req, Res>
  readonly protocol: Protocol<Req, Res>
  /** Whether a request may be sent twice (hedging). */
  readonly idempotent: (req: Req) => boolean
  readonly budget: RetryBudget
  readonly latency: LatencyHistogram
  readonly events: Events
}

function backoffFor(config: ResolvedServiceConfig['retry']['backoff']): Backoff {
  switch (config.kind) {
    case 'constant':
      return constantBackoff(config.base)
    case 'exponential':
      return exponentialBackoff({ base: config.base, max: config.max, jitter: config.jitter })
    case 'decorrelated':
      return decorrelatedJitterBackoff({ base: config.base, max: config.max })
  }
}

/** The service's middlewares, outermost first. */
export function serviceStages<Req, Res>(parts: StackParts<Req, Res>): Middleware<Req, Res>[] {
  const { name, config, classify, protocol, events, budget } = parts
  const stages: Middleware<Req, Res>[] = [
    // deadline: the whole-call budget, set before retries so every try shares it. A number on
    // the context, not a timer: the attempt timeout below arms the only timer.
    deadline({ timeout: config.timeout }),
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
  ]
  if (config.hedge) {
    // hedge: inside retry (a retry re-runs the whole race) and outside the balancer, so each
    // hedge picks its own endpoint, avoiding those the call already uses.
    stages.push(
      hedge({
        delay: config.hedge.delay,
        percentile: config.hedge.percentile,
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
  stages.push(
    // balancer: picks the endpoint per attempt and counts its in-flight load.
    balancer({ service: name, endpoints: parts.endpoints, strategy: parts.strategy }),
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
