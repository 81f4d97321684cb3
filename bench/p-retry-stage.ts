/**
 * A retry stage with p-retry as its engine, built only for the benchmark (docs/decisions.md, D6):
 * the same decisions as meshlet's `retry` stage (the one classifier, replayability, pushback,
 * backoff bounded by the deadline), with p-retry running the loop.
 *
 * p-retry sleeps on the global `setTimeout`, draws its jitter from `Math.random` and measures
 * `maxRetryTime` on `performance.now()`, none of which can be injected. The only way onto the
 * injected clock is to zero p-retry's own delay (`minTimeout: 0`, so it never arms a timer) and
 * to wait on `ctx.clock` inside its `shouldRetry` hook, which it awaits before the next try.
 * That is what this stage does; p-retry is then left with the attempt counter.
 */
import pRetry, { AbortError } from 'p-retry'
import type { Backoff, Classifier, Middleware, Outcome, Protocol } from '../src/index.js'

/** Options of {@link pRetryStage}. */
export interface PRetryStageOptions<Req, Res> {
  /** Total tries, the first one included. Default `3`. */
  readonly attempts?: number
  /** Delays between tries, drawn from `ctx.random` and slept on `ctx.clock`. */
  readonly backoff: Backoff
  /** Judges each attempt; only `retryable` outcomes are retried. */
  readonly classify: Classifier<Req, Res>
  /** Replayability, pushback and discarding of the protocol. */
  readonly protocol: Protocol<Req, Res>
}

/** Carries an attempt's outcome through p-retry, which only retries on a thrown `Error`. */
class AttemptOutcome<Res> extends Error {
  constructor(readonly outcome: Outcome<Res>) {
    super('meshlet attempt outcome')
  }
}

/** meshlet's retry decisions with p-retry running the loop; see the module comment. */
export function pRetryStage<Req, Res>(options: PRetryStageOptions<Req, Res>): Middleware<Req, Res> {
  const attempts = options.attempts ?? 3
  const { backoff: initial, classify, protocol } = options
  const unwrap = (error: unknown): Res => {
    if (!(error instanceof AttemptOutcome)) throw error
    const outcome = (error as AttemptOutcome<Res>).outcome
    if (outcome.ok) return outcome.value
    throw outcome.error
  }
  return (next) =>
    function pRetryStage(req, ctx) {
      let backoff = initial
      // Throw to retry, AbortError to stop; a value that is not retried is simply returned.
      const attempt = async (attemptNumber: number): Promise<Res> => {
        let outcome: Outcome<Res>
        try {
          outcome = { ok: true, value: await next(req, ctx.withAttempt(attemptNumber - 1)) }
        } catch (error) {
          outcome = { ok: false, error }
        }
        if (classify(req, outcome) === 'retryable' && protocol.canReplay(req) && !ctx.cancel.aborted)
          throw new AttemptOutcome(outcome)
        if (outcome.ok) return outcome.value
        throw new AbortError(new AttemptOutcome(outcome))
      }
      // p-retry awaits this before its own (zero) delay: the wait happens here, on ctx.clock.
      const shouldRetry = async ({ error }: { error: Error }): Promise<boolean> => {
        const outcome = (error as AttemptOutcome<Res>).outcome
        const pushback = protocol.pushback(outcome, ctx.clock)
        if (pushback !== undefined && pushback < 0) return false
        let delay = pushback
        if (delay === undefined) {
          backoff = backoff.next(ctx.random)
          delay = backoff.duration
        }
        if (ctx.clock.now() + delay >= ctx.deadline) return false
        if (outcome.ok) protocol.discard(outcome.value)
        if (delay > 0) await ctx.clock.sleep(delay, ctx.cancel)
        return true
      }
      return pRetry(attempt, { retries: attempts - 1, minTimeout: 0, shouldRetry }).catch(unwrap)
    }
}
