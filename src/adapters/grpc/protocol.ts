/**
 * What the protocol-neutral stages need from gRPC: which calls can be sent again, the server's
 * pushback (`grpc-retry-pushback-ms`, gRFC A6) and how to drop an attempt's answer.
 *
 * Replay: a unary or server-streaming request is one message, kept as bytes, so it can be sent
 * again until the call commits. A client-streaming or bidi request is the caller's stream,
 * which meshlet does not buffer (A6 buffers it up to a limit; see docs/grpc.md), so it is never
 * retried or hedged.
 */
import { TimeoutError } from '../../core/errors.js'
import type { Outcome, Protocol } from '../../core/outcome.js'
import type { GrpcMetadata } from './grpc-types.js'
import type { GrpcRequest, GrpcResponse } from './request.js'

/** The trailer a server sets to ask for a delay before the next attempt, or for none (gRFC A6). */
export const PUSHBACK_KEY = 'grpc-retry-pushback-ms'

/** The metadata key that tells the server (and the caller) how many attempts preceded this one (gRFC A6). */
export const PREVIOUS_ATTEMPTS_KEY = 'grpc-previous-rpc-attempts'

const INT32 = /^-?(0|[1-9][0-9]{0,9})$/

/**
 * Reads `grpc-retry-pushback-ms`: `undefined` when absent, the delay in ms when it is a
 * non-negative 32-bit integer, and `-1` ("do not retry") when it is negative or malformed (A6:
 * "If the value for pushback is negative or unparseable, then it will be seen as the server
 * asking the client not to retry at all"; grpc-js 1.14 would read `'abc'` as a 0 ms delay).
 */
export function parsePushback(metadata: GrpcMetadata): number | undefined {
  const values = metadata.get(PUSHBACK_KEY)
  if (values.length === 0) return undefined
  const raw = values[0]
  const text = typeof raw === 'string' ? raw.trim() : ''
  if (!INT32.test(text)) return -1
  const n = Number(text)
  if (n > 2147483647 || n < -2147483648) return -1
  return n < 0 ? -1 : n
}

/** The gRPC {@link Protocol}. */
export const grpcProtocol: Protocol<GrpcRequest, GrpcResponse> = {
  canReplay: (req) => req.kind === 'unary' || req.kind === 'server-stream',
  pushback(outcome: Outcome<GrpcResponse>) {
    if (!outcome.ok) return undefined
    const status = outcome.value.status
    if (status === undefined || status.code === 0) return undefined
    return parsePushback(status.metadata)
  },
  // A unary answer is bytes in memory, and a committed stream is never discarded (it is the
  // call's answer): nothing to release.
  discard() {},
  // Envoy counts gRPC statuses by their HTTP mapping: UNAVAILABLE is 503, DEADLINE_EXCEEDED 504;
  // an attempt that timed out locally is a 504 too.
  gatewayFailure(outcome) {
    if (outcome.ok) {
      const code = outcome.value.status?.code
      return code === 14 || code === 4
    }
    return outcome.error instanceof TimeoutError && outcome.error.scope === 'attempt'
  },
}
