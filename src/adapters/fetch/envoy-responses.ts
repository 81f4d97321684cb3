/**
 * The answers an Envoy sidecar gives where the mesh would reject: for code written against a
 * sidecar (`meshErrors: 'respond'`), a failure the mesh made becomes the `Response` Envoy sends
 * for it, status, body text and marker headers as Envoy's router, circuit breakers, RBAC and
 * local rate-limit filters write them (Envoy's source/common/router/router.cc and the filters'
 * `sendLocalReply` calls). What Envoy would not answer (the caller's own abort, a bad input, a
 * closed mesh, a refused `https` call) still rejects.
 */
import { isMeshError, type MeshError } from '../../core/errors.js'
import { errorKind } from './classify.js'
import { reportedAs } from './direct/direct.js'

/** The status, body and extra headers of one of Envoy's local replies. */
export interface EnvoyReply {
  readonly status: number
  readonly body: string
  readonly headers?: Readonly<Record<string, string>>
}

const RESET_BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers. '
const OVERLOADED = { 'x-envoy-overloaded': 'true' } as const

/** Envoy's words for why a connection failed or was reset (router.cc, `resetReasonToString`). */
function resetReason(error: unknown): string | undefined {
  switch (errorKind(error)) {
    case 'connect-failure':
      return 'connection failure'
    case 'reset':
      return 'connection termination'
    case 'refused-stream':
      return 'remote refused stream reset'
    default:
      return undefined
  }
}

/**
 * Envoy's reply for `error`, or `undefined` when Envoy would not answer it (the error then
 * rejects as it is): `TIMEOUT` 504 `upstream request timeout`; `NO_HEALTHY_ENDPOINT` 503 `no
 * healthy upstream`; `CIRCUIT_OPEN` and `BULKHEAD_FULL` 503 with `x-envoy-overloaded: true` and
 * the reset reason `overflow`; `RATE_LIMITED` 429 `local_rate_limited`; `ACCESS_DENIED` 403
 * `RBAC: access denied`; a connection failure or reset (`fetch failed`), and
 * `RETRY_BUDGET_EXHAUSTED` caused by one, 503 `upstream connect error or disconnect/reset before
 * headers. reset reason: ...` (with `retried and the latest` after retries).
 */
export function envoyReply(error: unknown): EnvoyReply | undefined {
  if (!isMeshError(error)) {
    const reason = resetReason(error)
    return reason === undefined
      ? undefined
      : { status: 503, body: `${RESET_BEFORE_HEADERS}reset reason: ${reason}` }
  }
  switch ((error as MeshError).code) {
    case 'TIMEOUT':
      return { status: 504, body: 'upstream request timeout' }
    case 'NO_HEALTHY_ENDPOINT':
      return { status: 503, body: 'no healthy upstream' }
    case 'CIRCUIT_OPEN':
    case 'BULKHEAD_FULL':
      return { status: 503, body: `${RESET_BEFORE_HEADERS}reset reason: overflow`, headers: OVERLOADED }
    case 'RATE_LIMITED':
      return { status: 429, body: 'local_rate_limited' }
    case 'ACCESS_DENIED':
      return { status: 403, body: 'RBAC: access denied' }
    case 'RETRY_BUDGET_EXHAUSTED': {
      const reason = resetReason(error.cause)
      return reason === undefined
        ? undefined
        : { status: 503, body: `${RESET_BEFORE_HEADERS}retried and the latest reset reason: ${reason}` }
    }
    default:
      return undefined
  }
}

/**
 * The rejection handler of a call under `meshErrors: 'respond'`: Envoy's reply as a `Response`
 * (its `url` the URL the caller asked for, `content-type: text/plain` as Envoy's local replies),
 * or the error rethrown when Envoy would not answer it.
 */
export function answerAsEnvoy(url: string): (error: unknown) => Response {
  return (error) => {
    const reply = envoyReply(error)
    if (reply === undefined) throw error
    const headers: Record<string, string> = { 'content-type': 'text/plain', ...reply.headers }
    return reportedAs(new Response(reply.body, { status: reply.status, headers }), url)
  }
}
