/**
 * Runs each attempt through an app-owned opossum breaker, for teams that already have opossum
 * breakers and want them inside a meshlet pipeline. meshlet's own breaker (`circuitBreaker`) is
 * the one the mesh builds: opossum cannot run on the injected clock and holds timers per breaker
 * (docs/decisions.md, D14). meshlet does not depend on opossum: {@link OpossumLike} is the part
 * of opossum 9's `CircuitBreaker` this stage uses, matched structurally.
 *
 * The breaker must be created with an action that runs its argument,
 * `new CircuitBreaker((run: () => Promise<unknown>) => run(), options)`, so that one breaker can
 * guard any attempt: the stage calls `breaker.fire(() => next(req, ctx))`. What comes back is
 * translated so that classifiers and fallbacks see what meshlet's own breaker would give them:
 *
 * - opossum's open-circuit rejection (`code: 'EOPENBREAKER'`) becomes a {@link CircuitOpenError}
 *   (`CIRCUIT_OPEN`), which the classifiers call a `failure`, never retried;
 * - its `capacity` rejection (`'ESEMLOCKED'`) becomes a {@link BulkheadFullError};
 * - its own timeout (`'ETIMEDOUT'`) becomes an attempt-scoped {@link TimeoutError}. Turn it off
 *   (`timeout: false`): the deadline and attempt timeout own time in meshlet, and opossum's
 *   timeout neither cancels the attempt (it runs on, unobserved) nor runs on the injected clock.
 *   It is on by default (10 s) and costs a `setTimeout` per call (D14);
 * - errors of the attempt itself pass through untouched (the same object), even when their code
 *   is one of the above.
 *
 * opossum counts only rejections as failures, while an HTTP 5xx arrives as a `Response` (fetch
 * semantics); its `errorFilter` can only excuse errors, never accuse a value. `isFailure` closes
 * that gap: a response it accuses is thrown into opossum wrapped in a {@link FailingResponseError},
 * counted there as a failure, and unwrapped on the way out, so the caller still gets the
 * `Response`. An opossum `fallback`, `cache` or `coalesce` would answer with something other
 * than this attempt's outcome, so the stage refuses such answers with a `TypeError`: use
 * meshlet's fallback instead.
 */
import { BulkheadFullError, CircuitOpenError, TimeoutError } from '../../core/errors.js'
import type { Handler, Middleware } from '../../core/handler.js'

/**
 * The part of an opossum (9.x) `CircuitBreaker` that {@link opossumStage} uses; a real
 * `CircuitBreaker` created with `(run) => run()` as its action matches it.
 */
export interface OpossumLike {
  /** Runs the breaker's action with `run`, which the action must call and return. */
  fire(run: () => Promise<unknown>): Promise<unknown>
  /** True while half-open (probing); read to estimate `retryAt`. */
  readonly halfOpen: boolean
  /** opossum's options, read for `resetTimeout` (the `retryAt` estimate) and `timeout`. */
  readonly options?: {
    readonly resetTimeout?: number | undefined
    readonly timeout?: number | false | undefined
  }
}

/** Options of {@link opossumStage}. */
export interface OpossumStageOptions<Req, Res> {
  /** Named in errors. Default `''`. */
  readonly service?: string
  /**
   * Whether a response counts as a failure for opossum (an HTTP 5xx, say); the caller still gets
   * the response. Default: none does (opossum's own rule, rejections only).
   */
  readonly isFailure?: (res: Res, req: Req) => boolean
}

/**
 * A failing response on its way through opossum: thrown into the breaker so that it counts as a
 * failure, and unwrapped by {@link opossumStage} before the caller sees it. opossum's `failure`
 * listeners and `errorFilter` receive it.
 */
export class FailingResponseError<Res = unknown> extends Error {
  /** The response judged failing by `isFailure`. */
  readonly response: Res

  constructor(response: Res) {
    super('meshlet: the response was judged failing (isFailure) and counted by the opossum breaker')
    this.name = 'FailingResponseError'
    this.response = response
  }
}

/**
 * Runs each attempt through `breaker`, an app-owned opossum circuit breaker; see the module
 * comment. Place it where meshlet's own breaker goes: inside retry, outside the balancer.
 *
 * @example
 * ```ts
 * import CircuitBreaker from 'opossum'
 * import { compose, opossumStage } from 'meshlet'
 *
 * // One breaker per destination; its action runs whatever attempt the stage hands it.
 * const breaker = new CircuitBreaker((run: () => Promise<unknown>) => run(), {
 *   timeout: false, // meshlet's deadline and attempt timeout own time
 *   resetTimeout: 5_000,
 *   errorThresholdPercentage: 50,
 *   volumeThreshold: 10,
 * })
 * const guarded = compose(
 *   opossumStage<string, Response>(breaker, { service: 'users', isFailure: (res) => res.status >= 500 }),
 * )(async (url) => fetch(url))
 * // A 503 is counted by opossum and still returned; an open breaker rejects with CIRCUIT_OPEN.
 * ```
 */
export function opossumStage<Req, Res>(
  breaker: OpossumLike,
  options: OpossumStageOptions<Req, Res> = {},
): Middleware<Req, Res> {
  const service = options.service ?? ''
  const isFailure = options.isFailure
  return (next: Handler<Req, Res>) =>
    async function opossumBreaker(req, ctx) {
      // What the attempt did, so that its outcome can be told apart from opossum's own answers.
      let ran = 'no' as 'no' | 'resolved' | 'rejected'
      let outcome: unknown
      const run = async (): Promise<unknown> => {
        try {
          outcome = await next(req, ctx)
        } catch (error) {
          ran = 'rejected'
          outcome = error
          throw error
        }
        ran = 'resolved'
        if (isFailure?.(outcome as Res, req)) throw new FailingResponseError(outcome)
        return outcome
      }
      let answer: unknown
      try {
        answer = await breaker.fire(run)
      } catch (error) {
        if (ran === 'rejected' && error === outcome) throw error
        if (ran === 'resolved' && error instanceof FailingResponseError && error.response === outcome)
          return outcome as Res
        throw translate(error, breaker, service, ctx.clock.now())
      }
      if (ran === 'resolved' && answer === outcome) return answer as Res
      throw new TypeError(
        "opossumStage: the breaker answered without this attempt's outcome: create it with the action " +
          "`(run) => run()` and without fallback, cache or coalesce (use meshlet's fallback instead)",
      )
    }
}

/** Turns opossum's own rejections into meshlet's errors; anything else is returned as is. */
function translate(error: unknown, breaker: OpossumLike, service: string, now: number): unknown {
  switch ((error as { code?: unknown } | null)?.code) {
    case 'EOPENBREAKER':
      // opossum does not expose when its reset timer fires: a full resetTimeout from now is the
      // latest it can be; while half-open, the probe in flight may close it at any moment.
      return new CircuitOpenError(
        service || undefined,
        breaker.halfOpen ? now : now + (breaker.options?.resetTimeout ?? 0),
      )
    case 'ESEMLOCKED':
      return new BulkheadFullError(service || undefined, 'the opossum breaker is at its capacity')
    case 'ETIMEDOUT':
      return new TimeoutError('attempt', Number(breaker.options?.timeout) || 0, {
        cause: error,
        service: service || undefined,
      })
    default:
      return error
  }
}
