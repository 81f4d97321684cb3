/**
 * The retry loop: sends the request again while the classifier calls the outcome `retryable`,
 * attempts remain, the body can be replayed, the wait fits before the deadline and the
 * destination's retry budget allows it. The stage runs the loop; what to retry is decided by the
 * classifier (one for every stage), how long to wait by the {@link Backoff} or the server's
 * pushback (`Retry-After`), how many retries the fleet may make by the {@link RetryBudget}, as
 * tower separates `Retry` from `Policy` and `Budget`.
 *
 * It sits outside the balancer, so a retry can land on another endpoint, and outside the attempt
 * timeout, so each try gets its own limit. A retry that could only start after the deadline is
 * not made: the last outcome goes back at once (Envoy and Finagle do the same).
 */
import { ATTEMPTED, Attempted } from '../../core/attempts.js'
import type { Context } from '../../core/context.js'
import { RetryBudgetExhaustedError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import { Exits, isJoiningExits, runsExits, settleScope } from '../../core/exits.js'
import { type Handler, type Middleware, send } from '../../core/handler.js'
import type { Classifier, Outcome, Protocol, Verdict } from '../../core/outcome.js'
import { type Backoff, exponentialBackoff } from './backoff.js'
import { type RetryBudget, unlimitedBudget } from './budget.js'

/** Options of {@link retry}. */
export interface RetryOptions<Req, Res> {
  /** Total tries, the first one included. Default `3`. */
  readonly attempts?: number
  /** Delays between tries. Default exponential, base 25 ms, max 1 s, full jitter. */
  readonly backoff?: Backoff
  /** The destination's budget: each call deposits, each retry withdraws. Default unlimited. */
  readonly budget?: RetryBudget
  /** Judges each attempt; only `retryable` outcomes are retried. */
  readonly classify: Classifier<Req, Res>
  /** Replayability, pushback and discarding of the protocol. */
  readonly protocol: Protocol<Req, Res>
  /** Named in events and errors. */
  readonly service?: string
  /** Where `retry` and `retry-budget-exhausted` events go. */
  readonly events?: Events
}

/** Retries retryable outcomes; see the module comment. */
export function retry<Req, Res>(options: RetryOptions<Req, Res>): Middleware<Req, Res> {
  const attempts = options.attempts ?? 3
  const initial = options.backoff ?? exponentialBackoff()
  const budget = options.budget ?? unlimitedBudget
  const { classify, protocol, events } = options
  const service = options.service ?? ''
  if (attempts <= 1 && budget === unlimitedBudget) return (next) => next
  return (next: Handler<Req, Res>) => {
    // Around a stage that joins an attempt's exits (the breaker, the balancer), each attempt gets
    // a scope of its own, run at the start of this stage's reaction: those stages then add no
    // promise of their own (core/exits.ts).
    const scoped = isJoiningExits(next as Handler<unknown, unknown>)
    /**
     * The retries after a retryable first outcome: the loop described in the module comment.
     * The first attempt is sent by `retryStage` itself, without an async frame, since most calls
     * end there.
     */
    async function retryLoop(
      req: Req,
      ctx: Context,
      first: Outcome<Res>,
      verdict: Verdict,
      attemptCtx: Context,
    ) {
      let backoff = initial
      let attempt = 1
      let outcome = first
      for (;;) {
        if (
          attempt >= attempts ||
          ctx.cancel.aborted ||
          verdict !== 'retryable' ||
          !protocol.canReplay(req)
        ) {
          return settle(outcome)
        }
        const pushback = protocol.pushback(outcome, ctx.clock)
        if (pushback !== undefined && pushback < 0) return settle(outcome)
        let delay: number
        if (pushback === undefined) {
          backoff = backoff.next(ctx.random)
          delay = backoff.duration
        } else {
          delay = pushback
        }
        const now = ctx.clock.now()
        if (now + delay >= ctx.deadline) return settle(outcome)
        if (!budget.tryWithdraw(now)) {
          if (events?.has('retry-budget-exhausted'))
            events.emit('retry-budget-exhausted', { service, kind: 'retry' })
          if (outcome.ok) return outcome.value
          throw new RetryBudgetExhaustedError(service, outcome.error)
        }
        if (outcome.ok) protocol.discard(outcome.value)
        if (events?.has('retry')) {
          events.emit('retry', {
            service,
            attempt,
            delay,
            reason: outcome.ok ? outcome.value : outcome.error,
          })
        }
        if (delay > 0) await ctx.clock.sleep(delay, ctx.cancel)
        const exits = scoped ? new Exits(classify) : undefined
        attemptCtx = attemptCtx.withAttempt(attempt, attemptCtx.cancel, exits)
        try {
          outcome = { ok: true, value: await next(req, attemptCtx) }
        } catch (error) {
          outcome = { ok: false, error }
        }
        attempt++
        verdict = judge(req, outcome, exits, attemptCtx)
        budget.record(verdict)
      }
    }

    /**
     * The attempt's verdict, judged once, and its scope run with it (D34): the breaker and
     * passive health, built with the same classifier, take this verdict instead of judging again.
     * A classifier that throws (a bug) still lets the scope run, its hooks judging for themselves;
     * a hook that throws has its error thrown after the other hooks ran (`Exits.run`).
     */
    function judge(req: Req, outcome: Outcome<Res>, exits: Exits | undefined, attemptCtx: Context): Verdict {
      if (exits === undefined) return classify(req, outcome)
      const result = outcome.ok ? outcome.value : outcome.error
      let verdict: Verdict
      try {
        verdict = classify(req, outcome)
      } catch (failure) {
        runUnjudged(exits, outcome.ok, result, req, attemptCtx)
        throw failure
      }
      exits.run(outcome.ok, result, req, attemptCtx, verdict)
      return verdict
    }

    // A runner (core/exits.ts): the scope it is given (the call's, from Mesh.invoke) is run in
    // this stage's own reaction once the call's outcome is known, so the caller needs none (D32).
    return runsExits(function retryStage(req: Req, ctx: Context): Promise<Res> {
      const outer = ctx.exits
      try {
        budget.deposit(ctx.startedAt)
      } catch (error) {
        // A budget of the application's that throws: the call fails, and its scope still runs.
        outer?.run(false, error, req, ctx)
        return Promise.reject(error)
      }
      const exits = scoped ? new Exits(classify) : undefined
      // The attempt never sees the caller's scope: it gets its own, or none.
      const attemptCtx =
        attempts > 1
          ? ctx.withEntry(ATTEMPTED, new Attempted(), exits)
          : exits !== undefined || outer !== undefined
            ? ctx.withExits(exits)
            : ctx
      // A handler that throws instead of rejecting is judged as a rejection.
      return send(next, req, attemptCtx).then(
        (value) => {
          const first: Outcome<Res> = { ok: true, value }
          let verdict: Verdict
          try {
            verdict = judge(req, first, exits, attemptCtx)
            budget.record(verdict)
          } catch (failure) {
            // A bug in a classifier, a hook or a budget: the call fails with it, and its scope
            // still runs (the attempt's has run in `judge`).
            outer?.run(false, failure, req, ctx)
            throw failure
          }
          if (verdict !== 'retryable' || attempts <= 1) {
            outer?.run(true, value, req, ctx)
            return value
          }
          const loop = retryLoop(req, ctx, first, verdict, attemptCtx)
          return outer === undefined ? loop : settleScope(loop, outer, req, ctx)
        },
        (error: unknown) => {
          const first: Outcome<Res> = { ok: false, error }
          let verdict: Verdict
          try {
            verdict = judge(req, first, exits, attemptCtx)
            budget.record(verdict)
          } catch (failure) {
            // A bug in a classifier, a hook or a budget: the call fails with it, and its scope
            // still runs (the attempt's has run in `judge`).
            outer?.run(false, failure, req, ctx)
            throw failure
          }
          if (verdict !== 'retryable' || attempts <= 1) {
            outer?.run(false, error, req, ctx)
            throw error
          }
          const loop = retryLoop(req, ctx, first, verdict, attemptCtx)
          return outer === undefined ? loop : settleScope(loop, outer, req, ctx)
        },
      )
    })
  }
}

/**
 * Runs an attempt's scope after its judging failed (a classifier or a hook that threw), without a
 * verdict: each hook judges for itself. A scope that already ran does nothing. An error of a hook
 * here is dropped: the call already fails with the first one.
 */
function runUnjudged(exits: Exits, ok: boolean, result: unknown, req: unknown, ctx: Context): void {
  try {
    exits.run(ok, result, req, ctx)
  } catch {
    // The call fails with the first error (see above).
  }
}

function settle<Res>(outcome: Outcome<Res>): Res {
  if (outcome.ok) return outcome.value
  throw outcome.error
}
