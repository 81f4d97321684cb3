/**
 * What one attempt produced, and the single judgement of it. One classifier defines failure for
 * every stage (Finagle's `ResponseClassifier`): retry, breaker, outlier detection and metrics
 * all read the same {@link Verdict}, so they can never disagree about what failed.
 */

/** A settled attempt: a value or an error. */
export type Outcome<Res> =
  | { readonly ok: true; readonly value: Res }
  | { readonly ok: false; readonly error: unknown }

/**
 * - `success`: the destination did its job (a 404 is a success for the breaker).
 * - `retryable`: a failure that is safe and useful to try again.
 * - `failure`: a failure not to retry (not idempotent, or not transient).
 * - `ignored`: says nothing of the destination's health (the caller cancelled).
 */
export type Verdict = 'success' | 'retryable' | 'failure' | 'ignored'

/** Judges an attempt's outcome. */
export type Classifier<Req, Res> = (req: Req, outcome: Outcome<Res>) => Verdict

/**
 * What the protocol-neutral stages need to know of a protocol. Each adapter supplies one.
 */
export interface Protocol<Req, Res> {
  /** Whether `req` can be sent again (its body can be replayed). */
  canReplay(req: Req): boolean
  /**
   * The delay the server asked for before another try, in ms: `undefined` when it said nothing,
   * a negative number when it asked not to retry at all (gRPC pushback).
   */
  pushback(outcome: Outcome<Res>, clock: { wall(): number }): number | undefined
  /** Releases a response that will not reach the caller (drains or cancels its body). */
  discard(res: Res): void
  /**
   * Whether an attempt's outcome is a gateway failure, for outlier detection's
   * `consecutiveGatewayFailures` (Envoy's `consecutive_gateway_failure`): HTTP 502, 503 and 504,
   * and the failures Envoy maps to them (a connection failure or reset, an attempt timeout).
   * Default none: no outcome is a gateway failure.
   */
  gatewayFailure?(outcome: Outcome<Res>): boolean
}
