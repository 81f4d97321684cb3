/**
 * Fault injection (chaos testing), as Envoy's fault filter and Istio's `fault`: delays and
 * aborts a chosen share of calls, by configuration or, when allowed, by request headers
 * (`x-envoy-fault-*`, the semantics gRFC A33 adopts). Call-scoped faults run once per call
 * before the deadline and retries (as Istio: an injected abort is not retried); attempt-scoped
 * faults run inside retry and the breaker, so that they exercise both. Every draw comes from the
 * injected Random, so a seeded run injects the same faults.
 */
import { TimeoutError } from '../../core/errors.js'
import type { Middleware } from '../../core/handler.js'

/** A fault for one call, read from request headers by the adapter. */
export interface HeaderFault {
  /** Abort with this status (HTTP status, or gRPC code for gRPC). */
  readonly abort?: number | undefined
  /** Share of calls aborted, 0..100. Default 100. */
  readonly abortPercent?: number | undefined
  /** Delay by this many ms. */
  readonly delay?: number | undefined
  /** Share of calls delayed, 0..100. Default 100. */
  readonly delayPercent?: number | undefined
}

/** Options of {@link fault}. */
export interface FaultOptions<Req, Res> {
  /** Abort `percent` of calls with `status`. */
  readonly abort?: { readonly percent: number; readonly status: number } | undefined
  /** Delay `percent` of calls by `duration` ms. */
  readonly delay?: { readonly percent: number; readonly duration: number } | undefined
  /** Reads header-triggered faults of a request; absent when header faults are not allowed. */
  readonly fromHeaders?: ((req: Req) => HeaderFault | undefined) | undefined
  /** What an aborted call answers (an HTTP response, or a gRPC status error thrown). */
  readonly abortWith: (req: Req, status: number) => Promise<Res>
}

/** Injects faults; see the module comment. */
export function fault<Req, Res>(options: FaultOptions<Req, Res>): Middleware<Req, Res> {
  const { abort, delay, fromHeaders, abortWith } = options
  return (next) =>
    async function faultStage(req, ctx) {
      const fromHeader = fromHeaders?.(req)
      const delayMs = fromHeader?.delay ?? delay?.duration
      const delayPercent =
        fromHeader?.delay !== undefined ? (fromHeader.delayPercent ?? 100) : (delay?.percent ?? 0)
      if (delayMs !== undefined && delayMs > 0 && ctx.random.next() * 100 < delayPercent) {
        // The delay is waiting like any other: it ends at the deadline, with the deadline's error.
        const left = ctx.remaining()
        if (delayMs >= left) {
          if (left > 0) await ctx.clock.sleep(left, ctx.cancel)
          throw new TimeoutError('call', Math.max(0, left))
        }
        await ctx.clock.sleep(delayMs, ctx.cancel)
        // It waited: the stages inside time the call (or the attempt) from now.
        ctx = ctx.restarted()
      }
      const abortStatus = fromHeader?.abort ?? abort?.status
      const abortPercent =
        fromHeader?.abort !== undefined ? (fromHeader.abortPercent ?? 100) : (abort?.percent ?? 0)
      if (abortStatus !== undefined && ctx.random.next() * 100 < abortPercent)
        return abortWith(req, abortStatus)
      return next(req, ctx)
    }
}
