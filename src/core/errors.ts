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
