/**
 * The whole-call deadline: sets `ctx.deadline` so that every later stage and every retry shares
 * one budget of time. The deadline is carried as a number, not a timer or a signal: the attempt
 * timeout arms the one timer a try needs at `min(deadline, perTryTimeout)`, retries never sleep
 * past it, and waiting stages bound their waits by it. This is Finagle's and gRPC's model, and
 * it costs no allocation beyond the derived context.
 *
 * A call made while serving a request that carried a deadline (`runWithDeadline`, or
 * `withInboundDeadline` on a server) inherits it, as Finagle's `Deadline` context does, so that
 * a server never spends longer on its upstreams than its own caller is still waiting.
 */
import { isJoiningExits, isRunningExits, joinsExits, runsExits } from '../../core/exits.js'
import type { Handler, Middleware } from '../../core/handler.js'
import { inheritedDeadline } from './propagation.js'

/** Options of {@link deadline}. */
export interface DeadlineOptions {
  /** Milliseconds for the whole call, every retry included. `0` or `Infinity`: no limit. */
  readonly timeout: number
  /**
   * Whether this stage's own timeout, when it is the call's only deadline (no caller, inherited
   * or outer one), is marked local on the context (`ctx.localDeadline`): it still ends the call,
   * but a transport that honours the mark does not tell the upstream (decision D27). Default
   * `false`.
   */
  readonly local?: boolean
}

/**
 * Limits the whole call to `timeout` ms from when it started (`ctx.startedAt`: no clock read). The earliest of three
 * wins: this timeout, an outer deadline already on the context, and the deadline inherited from
 * the enclosing `runWithDeadline` scope (translated onto `ctx.clock`). Rejections come from the
 * attempt timeout (`TimeoutError` with scope `call`), which also refuses to start an attempt
 * once the deadline has passed. The per-call cost of inheriting is one
 * `AsyncLocalStorage.getStore()`.
 */
export function deadline<Req, Res>(options: DeadlineOptions): Middleware<Req, Res> {
  const timeout = options.timeout > 0 ? options.timeout : Number.POSITIVE_INFINITY
  const local = options.local === true
  return (next) => {
    const stage: Handler<Req, Res> = function deadlineStage(req, ctx) {
      const inherited = inheritedDeadline(ctx.clock)
      let d = inherited
      if (timeout !== Number.POSITIVE_INFINITY) {
        const own = ctx.startedAt + timeout
        if (own < d) d = own
      }
      if (d >= ctx.deadline) return next(req, ctx)
      // Local only when nothing but this timeout set a deadline at all.
      const alone =
        local && inherited === Number.POSITIVE_INFINITY && ctx.deadline === Number.POSITIVE_INFINITY
      return next(req, ctx.withDeadline(d, alone))
    }
    // It neither adds an exit nor changes the outcome: a call's scope may pass through it to a
    // stage that joins (the bulkhead), and only then (core/exits.ts). It always calls `next`, so
    // it runs the scope exactly when `next` does (a runner, such as retry: D32).
    if (isRunningExits(next as Handler<unknown, unknown>)) return runsExits(stage)
    return isJoiningExits(next as Handler<unknown, unknown>) ? joinsExits(stage) : stage
  }
}
