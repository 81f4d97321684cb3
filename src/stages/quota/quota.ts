/**
 * The quota stage: each attempt takes a token of its rate limit (local GCRA buckets, or a shared
 * store for a global limit) or waits for one in a bounded FIFO queue within its deadline, and may
 * be shed first by adaptive client-side throttling. The server's answers feed both: a 429 or
 * 503 with `Retry-After`, `RateLimit-*` headers at zero, or a gRPC RESOURCE_EXHAUSTED with
 * `grpc-retry-pushback-ms` pause the call's key for the time asked, for every call of the
 * process (and of the fleet, when the limit is global).
 *
 * Where: inside retry and hedge, so a retry or a hedge takes a token like any call (a partner's
 * quota counts every request it receives), and outside the circuit breaker, so a local refusal
 * never counts as the destination's failure (decision D58).
 *
 * Cost: an admitted local call costs one clock read, one GCRA decision and one exit hook in the
 * attempt's scope (no promise of its own; core/exits.ts); see decision D57.
 */
import type { Context } from '../../core/context.js'
import { RateLimitedError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import { type ExitHook, Exits, isJoiningExits, joinsExits, runScoped, settleScope } from '../../core/exits.js'
import { type Handler, type Middleware, send } from '../../core/handler.js'
import type { Bucket } from './gcra.js'
import type { GlobalLimiter, LocalLimiter, Refusal } from './limiter.js'
import type { AdaptiveThrottle } from './throttle.js'

/** How a protocol tells that the server throttled an attempt, and for how long. */
export interface ServerSignals {
  /** Whether the server refused the attempt for load (HTTP 429 / 503, gRPC RESOURCE_EXHAUSTED / UNAVAILABLE). */
  rejected(ok: boolean, result: unknown): boolean
  /**
   * The pause (ms) the server asked for (`Retry-After`, `RateLimit-Reset` with nothing
   * remaining, `grpc-retry-pushback-ms`), or `undefined` when it asked for none.
   */
  pause(ok: boolean, result: unknown, clock: { wall(): number }): number | undefined
}

/** Options of {@link quota}. */
export interface QuotaOptions<Req> {
  /** The rate limit, when there is one. Default none. */
  readonly limiter?: LocalLimiter | GlobalLimiter | undefined
  /** The key of a call's bucket (a header's value, a path parameter). Default none: one bucket. */
  readonly keyOf?: ((req: Req) => string | undefined) | undefined
  /** The key prefix of a global limit in its store (names the service or route). Default `''`. */
  readonly storeKey?: string
  /** Adaptive client-side throttling, when the service has it. Default none. */
  readonly throttle?: AdaptiveThrottle | undefined
  /** Reads the server's signals. Default none (no pause, every answer an accept). */
  readonly signals?: ServerSignals | undefined
  /** Named in errors and events. */
  readonly service?: string | undefined
  /** Where `rate-limited` and `quota-paused` go. */
  readonly events?: Events | undefined
}

/** Turns a refusal into its error (the limiters call it for waits that end in a refusal). */
export function refusalError(service: string | undefined, r: Refusal): RateLimitedError {
  return new RateLimitedError(service, r.detail, r.retryAfter)
}

/**
 * The quota stage; see the module comment. A refused attempt rejects with
 * {@link RateLimitedError} (code `RATE_LIMITED`, never retried); a cancelled wait rejects with
 * the cancellation's reason. With neither a limiter nor a throttle it adds nothing.
 */
export function quota<Req, Res>(options: QuotaOptions<Req>): Middleware<Req, Res> {
  const { limiter, keyOf, throttle, signals, service, events } = options
  if (limiter === undefined && throttle === undefined) return (next) => next
  const name = service ?? ''
  const storePrefix = options.storeKey ?? ''
  const local = limiter !== undefined && 'gcra' in limiter ? limiter : undefined
  const global = limiter !== undefined && !('gcra' in limiter) ? limiter : undefined

  const emit = (key: string, reason: 'limit' | 'paused' | 'queue' | 'throttled'): void => {
    if (events?.has('rate-limited')) events.emit('rate-limited', { service: name, key, reason })
  }
  const refuse = (key: string, r: Refusal, now: number): Promise<never> => {
    throttle?.forget(now)
    emit(key, r.reason)
    return Promise.reject(refusalError(service, r))
  }

  // What every settled attempt tells the limit and the throttle: `a` is the bucket (local) or
  // `undefined` (global), `b` the key.
  const observe: ExitHook = (a, b, ok, result, _req, ctx) => {
    if (!ok && result instanceof RateLimitedError) {
      // Refused by the limit (after a wait, or by a global store): it never reached the backend.
      throttle?.forget(ctx.clock.now())
      return
    }
    if (throttle !== undefined && ok && (signals === undefined || !signals.rejected(ok, result))) {
      throttle.accept(ctx.clock.now())
    }
    if (signals === undefined) return
    if (limiter === undefined) return
    const ms = signals.pause(ok, result, ctx.clock)
    if (ms === undefined || !(ms > 0)) return
    const key = b as string
    const paused =
      local !== undefined
        ? local.pause(a as Bucket, ms, ctx.clock.now())
        : global!.pause(storePrefix + key, ms)
    if (paused > 0 && events?.has('quota-paused'))
      events.emit('quota-paused', { service: name, key, ms: paused })
  }

  return (next: Handler<Req, Res>) => {
    const nextJoins = isJoiningExits(next as Handler<unknown, unknown>)

    /** Sends the attempt with its exit hook in the attempt's scope (one of its own if none). */
    function pass(req: Req, ctx: Context, bucket: Bucket | undefined, key: string): Promise<Res> {
      const exits = ctx.exits
      if (exits !== undefined) {
        exits.add(observe, bucket, key)
        return send(next, req, nextJoins ? ctx : ctx.withExits(undefined))
      }
      const own = new Exits()
      own.add(observe, bucket, key)
      return nextJoins
        ? runScoped(next, req, ctx.withExits(own), own)
        : settleScope(send(next, req, ctx), own, req, ctx)
    }

    return joinsExits(function quotaStage(req: Req, ctx: Context): Promise<Res> {
      if (throttle?.reject(ctx.clock.now(), ctx.random)) {
        emit('', 'throttled')
        return Promise.reject(
          new RateLimitedError(service, 'shed by adaptive throttling (the server rejects most calls)'),
        )
      }
      if (limiter === undefined) return pass(req, ctx, undefined, '')
      const key = keyOf === undefined ? '' : (keyOf(req) ?? '')
      if (local !== undefined) {
        const now = ctx.clock.now()
        const bucket = local.bucket(key, now)
        const taken = local.tryTake(bucket, now)
        if (taken === undefined) return pass(req, ctx, bucket, key)
        if (taken !== false) return refuse(key, taken, now)
        const queued = local.enqueue(bucket, ctx, now)
        if (!(queued instanceof Promise)) return refuse(key, queued, now)
        const exits = ctx.exits
        const onRefused = (error: unknown): never => {
          if (error instanceof RateLimitedError) {
            emit(key, 'queue')
            // With a scope, the exit hook takes the request back.
            if (exits === undefined) throttle?.forget(ctx.clock.now())
          }
          throw error
        }
        // It waited: the stages inside time the attempt from its admission.
        if (exits === undefined) return queued.then(() => pass(req, ctx.restarted(), bucket, key), onRefused)
        exits.add(observe, bucket, key)
        return queued.then(
          // restarted() opens no scope: the stages inside open their own.
          () => send(next, req, ctx.restarted()),
          onRefused,
        )
      }
      const storeKey = storePrefix + key
      const exits = ctx.exits
      if (exits !== undefined) exits.add(observe, undefined, key)
      return global!.take(storeKey, ctx).then(
        () =>
          exits !== undefined
            ? send(next, req, nextJoins ? ctx : ctx.withExits(undefined))
            : pass(req, ctx, undefined, key),
        (error: unknown) => {
          if (error instanceof RateLimitedError) emit(key, 'limit')
          if (exits === undefined && !ctx.cancel.aborted) throttle?.forget(ctx.clock.now())
          if (error instanceof RateLimitedError || ctx.cancel.aborted) throw error
          throw new RateLimitedError(service, 'the quota store failed', 0, error)
        },
      )
    })
  }
}
