/**
 * The whole-call deadline: sets `ctx.deadline` so that every later stage and every retry shares
 * one budget of time. The deadline is carried as a number, not a timer or a signal: the attempt
 * timeout arms the one timer a try needs at `min(deadline, perTryTimeout)`, retries never sleep
 * past it, and waiting stages bound their waits by it. This is Finagle's and gRPC's model, and
 * it costs no allocation beyond the derived context.
 */
import type { Middleware } from '../../core/handler.js'

/** Options of {@link deadline}. */
export interface DeadlineOptions {
  /** Milliseconds for the whole call, every retry included. `0` or `Infinity`: no limit. */
  readonly timeout: number
}

/**
 * Limits the whole call to `timeout` ms from when it enters this stage. An outer deadline that
 * is earlier wins. Rejections come from the attempt timeout (`TimeoutError` with scope `call`).
 */
export function deadline<Req, Res>(options: DeadlineOptions): Middleware<Req, Res> {
  const timeout = options.timeout > 0 ? options.timeout : Number.POSITIVE_INFINITY
  return (next) =>
    function deadlineStage(req, ctx) {
      if (timeout === Number.POSITIVE_INFINITY) return next(req, ctx)
      const d = ctx.clock.now() + timeout
      return next(req, d < ctx.deadline ? ctx.withDeadline(d) : ctx)
    }
}
