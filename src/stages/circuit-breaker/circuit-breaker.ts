/**
 * The circuit breaker stage: fails a call fast with `CIRCUIT_OPEN`, without touching the
 * network, while the destination's {@link CircuitBreaker} is open, and feeds it the verdict and
 * duration of every attempt it lets through. It sits inside retry (each attempt counts, and an
 * open circuit is not retried: `CIRCUIT_OPEN` is not a retryable outcome) and outside the
 * balancer (it judges the destination as a whole; outlier detection judges endpoints).
 */
import type { Context } from '../../core/context.js'
import { CircuitOpenError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import { type ExitHook, Exits, isJoiningExits, joinsExits, runScoped } from '../../core/exits.js'
import { type Handler, type Middleware, send } from '../../core/handler.js'
import type { Classifier, Verdict } from '../../core/outcome.js'
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
  // What every attempt let through does when it settles: the verdict and the duration, timed
  // from the attempt's start (`ctx.startedAt`, no clock read on the way in).
  const record = (permit: Permit, start: number, verdict: Verdict, ctx: Context) => {
    // One clock read fewer per successful attempt when the breaker has no use for the time.
    const now = breaker.needsTime(verdict) ? ctx.clock.now() : start
    breaker.record(permit, verdict, now - start, now)
  }
  const judged = (permit: Permit, start: number, req: Req, ok: boolean, result: unknown, ctx: Context) => {
    try {
      return classify(req, ok ? { ok: true, value: result as Res } : { ok: false, error: result })
    } catch (error) {
      // A classifier that throws (a bug) says nothing of the destination: the attempt counts as
      // ignored, so a half-open probe gives its slot back instead of holding the breaker half-open
      // for good, and the error goes on to the caller.
      record(permit, start, 'ignored', ctx)
      throw error
    }
  }
  // In a scope whose owner judges with this same classifier (the retry stage's), the verdict it
  // passes is this stage's own: the attempt is judged once (D34). Chosen when the hook is added.
  const sharedExit: ExitHook = (permit, start, ok, result, req, ctx, verdict) => {
    const p = permit as Permit
    const t = start as number
    record(p, t, verdict ?? judged(p, t, req as Req, ok, result, ctx), ctx)
  }
  // Anywhere else: a verdict passed by another stage's classifier is not this stage's.
  const exit: ExitHook = (permit, start, ok, result, req, ctx) =>
    sharedExit(permit, start, ok, result, req, ctx, undefined)
  return (next: Handler<Req, Res>) => {
    // Inside a retry the attempt's scope is open: the breaker joins it and adds no promise. With
    // none open, it opens one when the stage inside joins too (the balancer), so the two share
    // one reaction; around any other handler it passes no scope on (core/exits.ts).
    const inner = isJoiningExits(next as Handler<unknown, unknown>)
    return joinsExits(function circuitBreakerStage(req: Req, ctx: Context): Promise<Res> {
      const start = ctx.startedAt
      const permit = breaker.tryAcquire(start)
      if (permit === Permit.Denied)
        return Promise.reject(new CircuitOpenError(service, breaker.retryAt(start)))
      let exits = ctx.exits
      if (exits !== undefined) {
        exits.add(exits.judge === classify ? sharedExit : exit, permit, start)
        return send(next, req, inner ? ctx : ctx.withExits(undefined))
      }
      if (inner) {
        exits = new Exits()
        exits.add(exit, permit, start)
        return runScoped(next, req, ctx.withExits(exits), exits)
      }
      return send(next, req, ctx).then(
        (value) => {
          exit(permit, start, true, value, req, ctx)
          return value
        },
        (error: unknown) => {
          exit(permit, start, false, error, req, ctx)
          throw error
        },
      )
    })
  }
}
