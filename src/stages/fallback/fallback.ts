/**
 * The fallback stage: answers with a substitute instead of chosen failures (a static response
 * from config, or a function of the application's), as Hystrix's `getFallback` and Polly's
 * fallback strategy. It is the outermost stage of a service, so it sees what the caller would
 * have seen: the deadline, an open circuit, a full bulkhead, an exhausted budget. A caller's own
 * cancellation never gets a fallback.
 */
import { isMeshError, TimeoutError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import type { Handler, Middleware } from '../../core/handler.js'

/** Which failures a fallback answers: a mesh error code, or `'ERROR'` for any other error. */
export type FallbackOn =
  | 'TIMEOUT'
  | 'CIRCUIT_OPEN'
  | 'RETRY_BUDGET_EXHAUSTED'
  | 'NO_HEALTHY_ENDPOINT'
  | 'BULKHEAD_FULL'
  | 'RATE_LIMITED'
  | 'ERROR'

/** Options of {@link fallback}. */
export interface FallbackOptions<Req, Res> {
  /** The failures that get the fallback. */
  readonly on: readonly FallbackOn[]
  /** Makes the substitute; it may throw to fail the call after all. */
  readonly respond: (req: Req, error: unknown) => Res | Promise<Res>
  /** Named in events. */
  readonly service?: string
  /** Where `fallback` events go. */
  readonly events?: Events
}

/** The fallback code of an error, or `undefined` for a cancellation (never answered). */
export function fallbackCode(error: unknown): FallbackOn | undefined {
  if (isMeshError(error)) {
    return error.code === 'MESH_CLOSED' || error.code === 'CONFIG_INVALID' || error.code === 'UNKNOWN_SERVICE'
      ? undefined
      : (error.code as FallbackOn)
  }
  if (error instanceof Error && error.name === 'AbortError') return undefined
  return 'ERROR'
}

/** Answers chosen failures with a substitute; see the module comment. */
export function fallback<Req, Res>(options: FallbackOptions<Req, Res>): Middleware<Req, Res> {
  const on = new Set<string>(options.on)
  const { respond, events } = options
  const service = options.service ?? ''
  return (next: Handler<Req, Res>) =>
    function fallbackStage(req, ctx) {
      return next(req, ctx).catch((error: unknown) => {
        const code = fallbackCode(error)
        // The call's token is aborted by the caller (no fallback for a caller who left) and by
        // the call's own deadline (a TIMEOUT, which a fallback may answer).
        const callerLeft = ctx.cancel.aborted && !(ctx.cancel.reason instanceof TimeoutError)
        if (code === undefined || !on.has(code) || callerLeft) throw error
        if (events?.has('fallback')) events.emit('fallback', { service, code })
        return respond(req, error)
      })
    }
}
