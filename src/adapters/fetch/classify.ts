/**
 * The HTTP classifier: one judgement of each attempt for retry, breaker, outlier detection and
 * metrics. It speaks Envoy's `retry_on` vocabulary, and follows undici's rule that only
 * idempotent requests are retried once they may have reached the server; a connection that was
 * refused never carried the request, so it is retried whatever the method.
 */
import { isMeshError, TimeoutError } from '../../core/errors.js'
import type { Classifier } from '../../core/outcome.js'
import type { HttpRequest } from './request.js'

/** A retry condition, in Envoy's words, or an HTTP status to retry. */
export type HttpRetryOn =
  | '5xx'
  | 'gateway-error'
  | 'reset'
  | 'connect-failure'
  | 'refused-stream'
  | 'retriable-4xx'
  | '429'
  | number

/** What went wrong below HTTP, as far as it can be told from a fetch error. */
export type ErrorKind =
  | 'connect-failure'
  | 'reset'
  | 'refused-stream'
  | 'timeout'
  | 'cancelled'
  | 'mesh'
  | 'other'

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
])
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED'])

/** Reads the kind of failure from an error thrown by fetch or by the mesh. */
export function errorKind(error: unknown): ErrorKind {
  if (error instanceof TimeoutError) return error.scope === 'attempt' ? 'timeout' : 'mesh'
  // The mesh closing, an https call refused a plaintext endpoint, or no bearer token to send,
  // says nothing of the endpoint's health.
  if (
    isMeshError(error, 'MESH_CLOSED') ||
    isMeshError(error, 'TLS_REQUIRED') ||
    isMeshError(error, 'TOKEN_UNAVAILABLE')
  )
    return 'cancelled'
  if (isMeshError(error)) return 'mesh'
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError'))
    return 'cancelled'
  const code = codeOf(error)
  if (code === undefined) return 'other'
  if (CONNECT_CODES.has(code)) return 'connect-failure'
  if (RESET_CODES.has(code)) return 'reset'
  // Only a stream the server refused (HTTP/2 REFUSED_STREAM) is known not to have been processed;
  // any other stream error may have carried the request.
  if (code === 'REFUSED_STREAM' || code === 'NGHTTP2_REFUSED_STREAM') return 'refused-stream'
  return 'other'
}

function codeOf(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    const inner = (e as { errors?: unknown }).errors
    if (Array.isArray(inner) && inner.length > 0) {
      const c = codeOf(inner[0])
      if (c !== undefined) return c
    }
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** The methods of RFC 9110 that are idempotent. */
export const IDEMPOTENT_METHODS: readonly string[] = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']

/**
 * Whether a request may be sent twice: its method is in `methods` (default the idempotent ones;
 * `'*'` is any method, as Envoy retries), or it carries an `Idempotency-Key` header.
 */
export function idempotence(methods: readonly string[] = IDEMPOTENT_METHODS): (req: HttpRequest) => boolean {
  if (methods.includes('*')) return anyMethod
  const allowed = new Set(methods.map((m) => m.toUpperCase()))
  return (req) => {
    if (allowed.has(req.method)) return true
    const headers = req.init.headers
    return headers !== undefined && new Headers(headers).has('idempotency-key')
  }
}

const anyMethod = (): boolean => true

/**
 * Whether sending the request twice is safe with the default methods: an idempotent method of
 * RFC 9110, or an `Idempotency-Key` header.
 */
export const isIdempotent: (req: HttpRequest) => boolean = idempotence()

/** The default retry conditions: any 5xx, 429, and network failures. */
export const DEFAULT_HTTP_RETRY_ON: readonly HttpRetryOn[] = ['5xx', '429']

/**
 * Builds the classifier for a set of retry conditions. Responses of 5xx (500-599, RFC 9110; a
 * status of 600 or more is a success like any other non-5xx) are failures; one that
 * matches `retryOn` is `retryable` when the request is idempotent (its method is in `methods`,
 * or it has an `Idempotency-Key`). Errors of the mesh itself
 * (circuit open, call deadline) are failures, never retried; a cancelled call is `ignored`.
 */
export function httpClassifier(
  retryOn: readonly HttpRetryOn[] = DEFAULT_HTTP_RETRY_ON,
  methods: readonly string[] = IDEMPOTENT_METHODS,
): Classifier<HttpRequest, Response> {
  const isIdempotent = idempotence(methods)
  const has = (c: HttpRetryOn) => retryOn.includes(c)
  const any5xx = has('5xx')
  const gateway = has('gateway-error')
  const statuses = new Set<number>()
  for (const c of retryOn) if (typeof c === 'number') statuses.add(c)
  if (has('429')) statuses.add(429)
  if (has('retriable-4xx')) statuses.add(409)
  const onConnect = any5xx || gateway || has('connect-failure') || has('reset')
  const onReset = any5xx || has('reset')
  const onRefused = any5xx || has('refused-stream') || has('reset')
  const onTimeout = any5xx || gateway || has('reset')

  return function classifyHttp(req, outcome) {
    if (outcome.ok) {
      const status = outcome.value.status
      // RFC 9110 (section 15): 5xx is 500-599; a status of 600 or more is of no class.
      const server = status >= 500 && status <= 599
      const retryableStatus =
        statuses.has(status) || (server && (any5xx || (gateway && status >= 502 && status <= 504)))
      if (retryableStatus) return isIdempotent(req) ? 'retryable' : 'failure'
      return server ? 'failure' : 'success'
    }
    switch (errorKind(outcome.error)) {
      case 'connect-failure':
        return onConnect ? 'retryable' : 'failure'
      case 'refused-stream':
        return onRefused ? 'retryable' : 'failure'
      case 'reset':
        return onReset && isIdempotent(req) ? 'retryable' : 'failure'
      case 'timeout':
        return onTimeout && isIdempotent(req) ? 'retryable' : 'failure'
      case 'cancelled':
        return 'ignored'
      default:
        return 'failure'
    }
  }
}
