/**
 * Hedging (backup requests, Dean & Barroso, "The Tail at Scale"): when an attempt has not
 * answered after `delay`, send another one to another endpoint, up to `maxAttempts`; the first
 * good answer wins and the others are cancelled (their requests closed). The delay is fixed or
 * a percentile of the destination's recent latency (Finagle's `BackupRequestFilter`), so only
 * the slowest few percent of calls pay for a second request.
 *
 * Rules, after gRFC A6: only idempotent, replayable requests are hedged; every hedge spends the
 * retry budget; an attempt that fails with a `retryable` verdict (A6's non-fatal codes) starts
 * the next hedge at once instead of waiting for the delay; any other outcome settles the call.
 * Hedges avoid endpoints the call already uses (the balancer reads the shared attempt list).
 */
import type { ChildCancellation } from '../../core/cancel.js'
import type { Events } from '../../core/events.js'
import type { Handler, Middleware } from '../../core/handler.js'
import type { Classifier, Outcome, Protocol } from '../../core/outcome.js'
import { type RetryBudget, unlimitedBudget } from './budget.js'
import type { LatencyHistogram } from './latency-histogram.js'

/** Options of {@link hedge}. */
export interface HedgeOptions<Req, Res> {
  /** A fixed delay in ms before each hedge. Give this or `percentile`. */
  readonly delay?: number | undefined
  /** Hedge at this percentile (0-100) of `latency`; no hedging until it has enough samples. */
  readonly percentile?: number | undefined
  /** Recent latency of the destination, required with `percentile`; the stage records into it. */
  readonly latency?: LatencyHistogram
  /** Attempts at most, the first included. Default `2`. */
  readonly maxAttempts?: number
  /** Whether a request may be sent twice (idempotent). */
  readonly idempotent: (req: Req) => boolean
  /** Judges each attempt. */
  readonly classify: Classifier<Req, Res>
  /** Replayability and discarding of the protocol. */
  readonly protocol: Protocol<Req, Res>
  /** Each hedge withdraws from it. Default unlimited. */
  readonly budget?: RetryBudget
  /** Named in events. */
  readonly service?: string
  /** Where `hedge` and `retry-budget-exhausted` events go. */
  readonly events?: Events
}

/**
 * The reason given to the attempts that lost the race. Its name is `AbortError`, as for any
 * cancellation, so classifiers call it `ignored`: losing a race says nothing of an endpoint.
 */
export class HedgeLostError extends Error {
  constructor() {
    super('another attempt answered first (hedge lost)')
    this.name = 'AbortError'
  }
}

/** Sends backup requests; see the module comment. */
export function hedge<Req, Res>(options: HedgeOptions<Req, Res>): Middleware<Req, Res> {
  const { idempotent, classify, protocol, events, latency, percentile } = options
  const budget = options.budget ?? unlimitedBudget
  const maxAttempts = options.maxAttempts ?? 2
  const service = options.service ?? ''
  if (options.delay === undefined && (percentile === undefined || latency === undefined)) {
    throw new TypeError('hedge: give a delay, or a percentile with a latency histogram')
  }
  return (next: Handler<Req, Res>) =>
    function hedgeStage(req, ctx) {
      const clock = ctx.clock
      const began = clock.now()
      const delay = options.delay ?? latency?.percentile(percentile ?? 0, began)
      if (delay === undefined || !idempotent(req) || !protocol.canReplay(req)) {
        if (latency === undefined) return next(req, ctx)
        return next(req, ctx).then((res) => {
          if (classify(req, { ok: true, value: res }) === 'success')
            latency.record(clock.now() - began, clock.now())
          return res
        })
      }
      return new Promise<Res>((resolve, reject) => {
        const running: ChildCancellation[] = []
        let started = 0
        let settled = false
        let timer: ReturnType<typeof clock.setTimer> | undefined

        const finish = (outcome: Outcome<Res>) => {
          settled = true
          if (timer !== undefined) clock.clearTimer(timer)
          if (running.length > 0) {
            // Only a race with attempts still running has losers to tell.
            const lost = new HedgeLostError()
            for (const c of running) c.abort(lost)
            running.length = 0
          }
          if (outcome.ok) resolve(outcome.value)
          else reject(outcome.error)
        }

        const launch = () => {
          timer = undefined
          const cancel = ctx.cancel.child()
          running.push(cancel)
          const attemptStart = clock.now()
          const n = started++
          next(req, n === 0 ? ctx.withCancel(cancel) : ctx.withAttempt(ctx.attempt + n, cancel)).then(
            (value) => land(cancel, attemptStart, { ok: true, value }),
            (error: unknown) => land(cancel, attemptStart, { ok: false, error }),
          )
          if (started < maxAttempts) timer = clock.setTimer(tryHedge, delay)
        }

        /** Starts the next hedge if the deadline and the budget allow; false when it did not. */
        const tryHedge = (): boolean => {
          timer = undefined
          if (settled || started >= maxAttempts || ctx.cancel.aborted || clock.now() >= ctx.deadline)
            return false
          if (!budget.tryWithdraw(clock.now())) {
            if (events?.has('retry-budget-exhausted'))
              events.emit('retry-budget-exhausted', { service, kind: 'hedge' })
            return false
          }
          if (events?.has('hedge'))
            events.emit('hedge', { service, attempt: started, delay: clock.now() - began })
          launch()
          return true
        }

        const land = (cancel: ChildCancellation, attemptStart: number, outcome: Outcome<Res>) => {
          cancel.release()
          const i = running.indexOf(cancel)
          if (i >= 0) running.splice(i, 1)
          if (settled) {
            if (outcome.ok) protocol.discard(outcome.value)
            return
          }
          const verdict = classify(req, outcome)
          if (verdict === 'success' && latency !== undefined) {
            latency.record(clock.now() - attemptStart, clock.now())
          }
          if (verdict === 'retryable') {
            // Non-fatal (A6): hedge again at once if allowed; otherwise wait for the others.
            if (timer !== undefined) {
              clock.clearTimer(timer)
              timer = undefined
            }
            if (tryHedge() || running.length > 0) {
              if (outcome.ok) protocol.discard(outcome.value)
              return
            }
          }
          finish(outcome)
        }

        launch()
      })
    }
}
