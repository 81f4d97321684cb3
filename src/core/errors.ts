/**
 * Failures made by the mesh. Each is a {@link MeshError} with a stable `code` to branch on;
 * `cause` holds the last upstream error when there was one. An upstream HTTP response is never
 * turned into an error (fetch semantics): these are for what the mesh itself decided.
 */

/** The stable codes of {@link MeshError}. */
export type MeshErrorCode =
  | 'TIMEOUT'
  | 'CIRCUIT_OPEN'
  | 'RETRY_BUDGET_EXHAUSTED'
  | 'NO_HEALTHY_ENDPOINT'
  | 'BULKHEAD_FULL'
  | 'RATE_LIMITED'
  | 'ACCESS_DENIED'
  | 'CONFIG_INVALID'
  | 'UNKNOWN_SERVICE'
  | 'MESH_CLOSED'
  | 'CREDENTIALS_UNAVAILABLE'
  | 'TLS_REQUIRED'
  | 'TOKEN_UNAVAILABLE'
  | 'TOKEN_INVALID'
  | 'TLS_IDENTITY_MISMATCH'
  | 'TLS_CERT_EXPIRED'
  | 'TLS_CERT_NOT_YET_VALID'
  | 'TLS_UNKNOWN_CA'
  | 'TLS_HANDSHAKE_FAILED'
  | 'TLS_MATERIAL_INVALID'

/** Options common to every mesh error. */
export interface MeshErrorOptions {
  /** The upstream error or the reason behind this one. */
  readonly cause?: unknown
  /** The service the call was for, when known. */
  readonly service?: string | undefined
}

/** A failure made by the mesh, with a stable {@link MeshErrorCode}. */
export class MeshError extends Error {
  /** What went wrong, stable across versions. */
  readonly code: MeshErrorCode
  /** The service the call was for, when known. */
  readonly service: string | undefined

  constructor(code: MeshErrorCode, message: string, options: MeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MeshError'
    this.code = code
    this.service = options.service
  }
}

/** Whether `error` is a {@link MeshError}, optionally with the given code. */
export function isMeshError(error: unknown, code?: MeshErrorCode): error is MeshError {
  return error instanceof MeshError && (code === undefined || error.code === code)
}

/**
 * A deadline passed. `scope` says which: `'call'` for the whole-call deadline (never retried),
 * `'attempt'` for one try's limit (retried when the policy allows).
 */
export class TimeoutError extends MeshError {
  /** Whether the whole call's deadline or one attempt's limit passed. */
  readonly scope: 'call' | 'attempt'
  /** The limit that passed in ms: the per-try limit, or what was left of the deadline. */
  readonly timeout: number

  constructor(scope: 'call' | 'attempt', timeout: number, options: MeshErrorOptions = {}) {
    const what =
      scope === 'attempt'
        ? `attempt timeout of ${Math.round(timeout)}ms exceeded`
        : timeout > 0
          ? `call deadline exceeded (${Math.round(timeout)}ms left when the attempt started)`
          : 'call deadline exceeded before the attempt could start'
    super('TIMEOUT', what + (options.service ? ` (service ${options.service})` : ''), options)
    this.name = 'TimeoutError'
    this.scope = scope
    this.timeout = timeout
  }
}

/** No endpoint of the destination could take the call. */
export class NoHealthyEndpointError extends MeshError {
  constructor(service: string, detail = 'no endpoint is available') {
    super('NO_HEALTHY_ENDPOINT', `${service}: ${detail}`, { service })
    this.name = 'NoHealthyEndpointError'
  }
}

/**
 * A retry (or hedge) was needed but the destination's retry budget refused it, and the last
 * attempt had failed with an error, which is the `cause`. (When the last attempt produced a
 * response, that response is returned instead: fetch semantics.)
 */
export class RetryBudgetExhaustedError extends MeshError {
  constructor(service: string | undefined, cause: unknown) {
    super('RETRY_BUDGET_EXHAUSTED', `retry budget of ${service ?? 'the service'} exhausted; no retry made`, {
      cause,
      service,
    })
    this.name = 'RetryBudgetExhaustedError'
  }
}

/** The destination's circuit breaker is open: the call failed fast, without touching the network. */
export class CircuitOpenError extends MeshError {
  /** When the breaker will let a probe through (clock ms). */
  readonly retryAt: number
  constructor(service: string | undefined, retryAt: number) {
    super('CIRCUIT_OPEN', `circuit breaker of ${service ?? 'the service'} is open`, { service })
    this.name = 'CircuitOpenError'
    this.retryAt = retryAt
  }
}

/** A bulkhead refused the call: its concurrency limit and its queue were full, or the wait timed out. */
export class BulkheadFullError extends MeshError {
  constructor(service: string | undefined, detail: string) {
    super('BULKHEAD_FULL', `bulkhead of ${service ?? 'the service'} is full: ${detail}`, { service })
    this.name = 'BulkheadFullError'
  }
}

/** The host names no configured service and the mesh is `strict`. */
export class UnknownServiceError extends MeshError {
  constructor(host: string) {
    super('UNKNOWN_SERVICE', `no service named "${host}" is configured and the mesh is strict`)
    this.name = 'UnknownServiceError'
  }
}

/** One problem found in a configuration. */
export interface ConfigIssue {
  /** Where, as a dotted path (`services.users.retry.attempts`); empty for the root. */
  readonly path: string
  /** What was expected and what was found. */
  readonly message: string
}

/** A configuration was refused; {@link issues} lists every problem found, not only the first. */
export class ConfigInvalidError extends MeshError {
  /** Every problem, in document order. */
  readonly issues: readonly ConfigIssue[]

  constructor(issues: readonly ConfigIssue[]) {
    super(
      'CONFIG_INVALID',
      `invalid mesh config (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n` +
        issues.map((i) => `  ${i.path || '(root)'}: ${i.message}`).join('\n'),
    )
    this.name = 'ConfigInvalidError'
    this.issues = issues
  }
}

/** The mesh was closed; no new call is accepted. */
export class MeshClosedError extends MeshError {
  constructor() {
    super('MESH_CLOSED', 'the mesh is closed')
    this.name = 'MeshClosedError'
  }
}

/**
 * The caller asked for `https:` and the endpoint chosen for the attempt is plaintext (`http://`):
 * the request is not sent, so that a call never goes out less secure than asked. An `http:` call
 * to an `https://` endpoint is allowed (the endpoint's choice of TLS). Not retried, and not held
 * against the endpoint's health.
 */
export class TlsRequiredError extends MeshError {
  /** The plaintext endpoint that was refused. */
  readonly endpoint: string
  constructor(service: string | undefined, endpoint: string) {
    super(
      'TLS_REQUIRED',
      `an https call to ${service ?? 'the service'} was not sent to the plaintext endpoint ${endpoint}`,
      { service },
    )
    this.name = 'TlsRequiredError'
    this.endpoint = endpoint
  }
}

/**
 * No bearer token could be had for a call to a service with `auth` (the file is missing,
 * unreadable, empty or not a header value, the provider failed or timed out, or the last token
 * expired and no new one came): the request is not sent. The message names the service, the
 * token's source (file path or provider) and the reason, never the token. Not retried, not held
 * against an endpoint's health; gRPC status `UNAUTHENTICATED`.
 */
export class TokenUnavailableError extends MeshError {
  /** Where the token comes from: `file /var/run/secrets/token` or `provider tokens.users`. */
  readonly source: string
  constructor(service: string, source: string, reason: string, cause?: unknown) {
    super('TOKEN_UNAVAILABLE', `no bearer token for service ${service} (${source}): ${reason}`, {
      service,
      cause,
    })
    this.name = 'TokenUnavailableError'
    this.source = source
  }
}

/** Why a token was refused by {@link TokenInvalidError}. */
export type TokenRejection =
  | 'malformed'
  | 'signature'
  | 'unknown-key'
  | 'algorithm'
  | 'expired'
  | 'not-yet-valid'
  | 'issuer'
  | 'audience'
  | 'claim'
  | 'jwks-unavailable'

/**
 * An inbound token failed verification (`jwtVerifier`). The message says why (`reason`, and the
 * claim when one failed), never the token or its claims. gRPC status `UNAUTHENTICATED`.
 */
export class TokenInvalidError extends MeshError {
  /** Why the token was refused. */
  readonly reason: TokenRejection
  /** The claim that failed (`exp`, `iss`, `aud`, ...), when one did. */
  readonly claim: string | undefined
  constructor(reason: TokenRejection, detail: string, claim?: string) {
    super('TOKEN_INVALID', `bearer token refused (${reason}): ${detail}`)
    this.name = 'TokenInvalidError'
    this.reason = reason
    this.claim = claim
  }
}

/** The codes of {@link TlsVerificationError}. */
export type TlsVerificationCode =
  | 'TLS_IDENTITY_MISMATCH'
  | 'TLS_CERT_EXPIRED'
  | 'TLS_CERT_NOT_YET_VALID'
  | 'TLS_UNKNOWN_CA'
  | 'TLS_HANDSHAKE_FAILED'

/**
 * A TLS connection to an endpoint of a service with `tls` was refused by the client: the
 * server's certificate is not the identity the config expects (`TLS_IDENTITY_MISMATCH`, gRFC A87
 * for SPIFFE IDs), has expired (`TLS_CERT_EXPIRED`) or is not valid yet
 * (`TLS_CERT_NOT_YET_VALID`), does not chain to the trust bundle (`TLS_UNKNOWN_CA`), or the
 * handshake failed otherwise (`TLS_HANDSHAKE_FAILED`). No request was sent on that connection.
 * Not retried on the same endpoint; gRPC calls see `UNAVAILABLE`. Never carries key material.
 */
export class TlsVerificationError extends MeshError {
  /** What the config expects: SPIFFE IDs or DNS names (empty: any name of the trust bundle). */
  readonly expected: readonly string[]
  /** What the server presented: its URI and DNS SANs, or `undefined` when unknown. */
  readonly presented: readonly string[] | undefined
  /** The endpoint the connection was to. */
  readonly endpoint: string
  constructor(
    code: TlsVerificationCode,
    detail: string,
    endpoint: string,
    expected: readonly string[],
    presented: readonly string[] | undefined,
    options: MeshErrorOptions = {},
  ) {
    const exp = expected.length === 0 ? "the endpoint's host name" : expected.join(' or ')
    const pres = presented === undefined ? 'unknown' : presented.length === 0 ? 'none' : presented.join(', ')
    super(
      code,
      `TLS connection to ${endpoint}${options.service ? ` (service ${options.service})` : ''} refused: ${detail}; expected ${exp}, presented ${pres}`,
      options,
    )
    this.name = 'TlsVerificationError'
    this.endpoint = endpoint
    this.expected = expected
    this.presented = presented
  }
}

/**
 * A service's TLS material (`tls.ca`, `cert`, `key`) could not be read or is not usable (a file
 * missing, not PEM, a key that does not match its certificate). The message names the config
 * path and the file, never the content of a key.
 */
export class TlsMaterialError extends MeshError {
  constructor(service: string | undefined, detail: string) {
    super('TLS_MATERIAL_INVALID', `TLS material of ${service ?? 'the service'} is not usable: ${detail}`, {
      service,
    })
    this.name = 'TlsMaterialError'
  }
}

/**
 * A rate limit refused the call: its bucket was empty (or paused by the server's Retry-After)
 * and it was not to wait, or could not get its token within its deadline or queue bound.
 */
export class RateLimitedError extends MeshError {
  /** When a token should be available, in ms from the refusal (0 when unknown). */
  readonly retryAfter: number
  constructor(service: string | undefined, detail: string, retryAfter = 0, cause?: unknown) {
    super('RATE_LIMITED', `rate limit of ${service ?? 'the service'}: ${detail}`, { service, cause })
    this.name = 'RateLimitedError'
    this.retryAfter = retryAfter
  }
}

/**
 * An access policy refused the call (`ACCESS_DENIED`; gRPC `PERMISSION_DENIED`, HTTP 403 with
 * `meshErrors: 'respond'`). `policy` and `rule` name the deciding rule (`rule` -1: no ALLOW rule
 * matched). Never retried: nothing was sent.
 */
export class AccessDeniedError extends MeshError {
  /** The deciding policy's name, or `''` when no ALLOW rule matched. */
  readonly policy: string
  /** The deciding rule's index, or -1. */
  readonly rule: number
  constructor(service: string, policy: string, rule: number) {
    super(
      'ACCESS_DENIED',
      rule < 0
        ? `${service}: access denied (no egress ALLOW rule matched)`
        : `${service}: access denied by egress policy ${policy} rule ${rule}`,
      { service },
    )
    this.name = 'AccessDeniedError'
    this.policy = policy
    this.rule = rule
  }
}
