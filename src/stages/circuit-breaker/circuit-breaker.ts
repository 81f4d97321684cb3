/**
 * The circuit breaker stage: fails a call fast with `CIRCUIT_OPEN`, without touching the
 * network, while the destination's {@link CircuitBreaker} is open, and feeds it the verdict and
 * duration of every attempt it lets through. It sits inside retry (each attempt counts, and an
 * open circuit is not retried: `CIRCUIT_OPEN` is not a retryable outcome) and outside the
 * balancer (it judges the destination as a whole; outlier detection judges endpoints).
 */
import { CircuitOpenError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import type { Handler, Middleware } from '../../core/handler.js'
import type { Classifier } from '../../core/outcome.js'
import { type CircuitBreaker, Permit } from './breaker.js'

/** Options of {@link circuitBreaker}. */
export interface CircuitBreakerStageOptions<Req, Res> {
  /** The destination's breaker (shared by all its calls; kept across config updates). */
  readonly breaker: CircuitBreaker
  /** Judges each attempt. */
  readonly classify: Classifier<Req, Res>
  /** Named in errors and events. */
  readonly service?: string
  /** Where `circuit-state` events go. */
  readonly events?: Events
}

/** Guards a destination with `breaker`; see the module comment. */
export function circuitBreaker<Req, Res>(
  options: CircuitBreakerStageOptions<Req, Res>,
): Middleware<Req, Res> {
  const { breaker, classify, events } = options
  const service = options.service ?? ''
  if (events) {
    breaker.onTransition = (from, to) => {
      if (events.has('circuit-state')) events.emit('circuit-state', { service, from, to })
    }
  }
  return (next: Handler<Req, Res>) =>
    function circuitBreakerStage(req, ctx) {
      const clock = ctx.clock
      const start = ctx.startedAt
      const permit = breaker.tryAcquire(start)
      if (permit === Permit.Denied)
        return Promise.reject(new CircuitOpenError(service, breaker.retryAt(start)))
      return next(req, ctx).then(
        (value) => {
          const now = clock.now()
          breaker.record(permit, classify(req, { ok: true, value }), now - start, now)
          return value
        },
        (error: unknown) => {
          const now = clock.now()
          breaker.record(permit, classify(req, { ok: false, error }), now - start, now)
          throw error
        },
      )
    }
}
