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
import { exponentialBackoff } from '../stages/retry/backoff.js'
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
  readonly events: Events
}

/** The service's middlewares, outermost first. */
export function serviceStages<Req, Res>(parts: StackParts<Req, Res>): Middleware<Req, Res>[] {
  const { name, config } = parts
  const { backoff } = config.retry
  return [
    // deadline: the whole-call budget, set before retries so every try shares it. A number on
    // the context, not a timer: the attempt timeout below arms the only timer.
    deadline({ timeout: config.timeout }),
    // retry: outside the balancer so a retry may land on another endpoint; outside the attempt
    // timeout so each try gets its own limit; never past the deadline.
    retry({
      attempts: config.retry.attempts,
      backoff: exponentialBackoff({ base: backoff.base, max: backoff.max, jitter: backoff.jitter }),
      classify: parts.classify,
      protocol: parts.protocol,
      service: name,
      events: parts.events,
    }),
    // balancer: picks the endpoint per attempt and counts its in-flight load.
    balancer({ service: name, endpoints: parts.endpoints, strategy: parts.strategy }),
    // attempt timeout: innermost before the transport, so the one timer of an attempt covers
    // exactly the network exchange, at min(deadline, perTryTimeout).
    timeout({ perTryTimeout: config.retry.perTryTimeout, service: name, events: parts.events }),
  ]
}

/** Builds a service's handler around a transport. */
export function buildStack<Req, Res>(
  parts: StackParts<Req, Res>,
  transport: Handler<Req, Res>,
): Handler<Req, Res> {
  return chain(serviceStages(parts), transport)
}
