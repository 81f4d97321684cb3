/**
 * The gRPC classifier: one judgement of each attempt, by status code, for retry, hedging,
 * breaker, outlier detection and metrics (gRFC A6).
 *
 * - OK, and a streaming call that committed, are `success`.
 * - A code in `retryableStatusCodes` is `retryable` (for hedging: A6's `nonFatalStatusCodes`;
 *   A6 lets a method have a retry policy or a hedging policy, never both, so one list serves),
 *   unless the call is committed (the server sent headers: A6 never retries then) or the server
 *   pushed back "do not retry" (`grpc-retry-pushback-ms` negative or malformed), which A6 counts
 *   as a failure and which stops further hedges.
 * - Other codes that say the server failed (Envoy's gRPC to HTTP 5xx mapping: `UNKNOWN`,
 *   `DEADLINE_EXCEEDED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`) are `failure`; the rest
 *   (`INVALID_ARGUMENT`, `NOT_FOUND`, ...) say the server did its job and are `success` for the
 *   breaker and outlier detection, as a 4xx is for HTTP.
 * - An attempt timeout is `retryable` when `DEADLINE_EXCEEDED` is; the call's deadline and other
 *   mesh errors are `failure`; a cancellation is `ignored`.
 */
import { isMeshError, TimeoutError } from '../../core/errors.js'
import type { Classifier } from '../../core/outcome.js'
import { parsePushback } from './protocol.js'
import type { GrpcRequest, GrpcResponse } from './request.js'
import { GrpcStatus, statusCode } from './status.js'

/** What a gRPC service retries by default: `UNAVAILABLE` only (the request never ran, or may be re-run safely). */
export const DEFAULT_GRPC_RETRYABLE_STATUS_CODES: readonly string[] = ['UNAVAILABLE']

const SERVER_FAULTS: ReadonlySet<number> = new Set([
  GrpcStatus.UNKNOWN,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
])

/**
 * Builds the classifier for a set of retryable status codes, by name (any case) or number.
 * Default `['UNAVAILABLE']`. Throws a `RangeError` for a name or number that is no status code.
 */
export function grpcClassifier(
  retryableStatusCodes: readonly (string | number)[] = DEFAULT_GRPC_RETRYABLE_STATUS_CODES,
): Classifier<GrpcRequest, GrpcResponse> {
  const retryable = new Set<number>()
  for (const value of retryableStatusCodes) {
    const code = statusCode(value)
    if (code === undefined) throw new RangeError(`grpcClassifier: not a gRPC status code: ${String(value)}`)
    retryable.add(code)
  }
  const onAttemptTimeout = retryable.has(GrpcStatus.DEADLINE_EXCEEDED) ? 'retryable' : 'failure'

  return function classifyGrpc(_req, outcome) {
    if (outcome.ok) {
      const { status, committed } = outcome.value
      if (status === undefined || status.code === GrpcStatus.OK) return 'success'
      if (retryable.has(status.code)) {
        if (committed) return 'failure'
        const pushback = parsePushback(status.metadata)
        return pushback !== undefined && pushback < 0 ? 'failure' : 'retryable'
      }
      return SERVER_FAULTS.has(status.code) ? 'failure' : 'success'
    }
    const error = outcome.error
    if (error instanceof TimeoutError) return error.scope === 'attempt' ? onAttemptTimeout : 'failure'
    // No bearer token to send says nothing of the endpoint's health.
    if (isMeshError(error, 'TOKEN_UNAVAILABLE')) return 'ignored'
    if (isMeshError(error)) return 'failure'
    if (error instanceof Error && error.name === 'AbortError') return 'ignored'
    return 'failure'
  }
}
