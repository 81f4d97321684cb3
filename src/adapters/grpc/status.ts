/**
 * gRPC status codes, and how a failure made by the mesh becomes a gRPC status.
 *
 * The codes are written out here rather than read from `@grpc/grpc-js`, so that nothing reachable
 * from `import 'meshlet'` loads grpc-js (an optional peer dependency): the numbers are fixed by
 * the gRPC protocol itself (`doc/statuscodes.md`), not by a library version.
 *
 * Mesh failures keep grpc-js's contract, a `ServiceError` with a numeric `code`: grpc-js builds
 * that error from the status object with `Object.assign`, so the extra fields set here
 * (`meshCode`, `cause`) land on the error the application receives.
 */
import { isMeshError, type MeshErrorCode } from '../../core/errors.js'

/** The gRPC status codes by name (`doc/statuscodes.md`). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const

/** Every status name but OK: what retry, hedging and fault policies may name. */
export const GRPC_FAILURE_STATUSES = [
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const satisfies readonly Exclude<keyof typeof GrpcStatus, 'OK'>[]

/** A gRPC status code name, such as `'UNAVAILABLE'`. */
export type GrpcStatusName = keyof typeof GrpcStatus

const NAMES: readonly GrpcStatusName[] = Object.keys(GrpcStatus) as GrpcStatusName[]

/** The name of a status code (`14` is `'UNAVAILABLE'`), or `undefined` for a number outside 0..16. */
export function statusName(code: number): GrpcStatusName | undefined {
  return Number.isInteger(code) ? NAMES[code] : undefined
}

/**
 * A status code from a name in any letter case (`'unavailable'`) or a number, as gRPC service
 * configs write them; `undefined` when it names no code.
 */
export function statusCode(value: string | number): number | undefined {
  if (typeof value === 'number') return statusName(value) === undefined ? undefined : value
  const code = (GrpcStatus as Record<string, number>)[value.toUpperCase()]
  return code
}

/** The status a failure made by the mesh (or any other error) is reported with. */
export interface MeshStatus {
  /** The gRPC status code. */
  readonly code: number
  /** A human-readable message. */
  readonly details: string
  /** The meshlet error code (`'CIRCUIT_OPEN'`, ...) when the mesh made the failure. */
  readonly meshCode?: MeshErrorCode
  /** The error behind the status: the `MeshError`, whose own `cause` is the last upstream error. */
  readonly cause: unknown
}

/** The gRPC code of each mesh failure (ARCHITECTURE.md section 1). */
function codeOfMeshError(code: MeshErrorCode): number {
  switch (code) {
    case 'TIMEOUT':
      return GrpcStatus.DEADLINE_EXCEEDED
    case 'CIRCUIT_OPEN':
    case 'NO_HEALTHY_ENDPOINT':
    case 'MESH_CLOSED':
    case 'UNKNOWN_SERVICE':
    case 'TLS_IDENTITY_MISMATCH':
    case 'TLS_CERT_EXPIRED':
    case 'TLS_CERT_NOT_YET_VALID':
    case 'TLS_UNKNOWN_CA':
    case 'TLS_HANDSHAKE_FAILED':
    case 'TLS_MATERIAL_INVALID':
    case 'TLS_REQUIRED':
      return GrpcStatus.UNAVAILABLE
    case 'BULKHEAD_FULL':
    case 'RATE_LIMITED':
    case 'RETRY_BUDGET_EXHAUSTED':
      return GrpcStatus.RESOURCE_EXHAUSTED
    case 'ACCESS_DENIED':
      return GrpcStatus.PERMISSION_DENIED
    case 'TOKEN_UNAVAILABLE':
    case 'TOKEN_INVALID':
      return GrpcStatus.UNAUTHENTICATED
    default:
      return GrpcStatus.INTERNAL
  }
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && error.name === 'AbortError'
}

/**
 * The status an error becomes:
 * - `TIMEOUT` -> `DEADLINE_EXCEEDED`; `CIRCUIT_OPEN`, `NO_HEALTHY_ENDPOINT`, `MESH_CLOSED`,
 *   `UNKNOWN_SERVICE`, every `TLS_*` code -> `UNAVAILABLE` (as grpc-js reports a failed
 *   handshake); `BULKHEAD_FULL`, `RATE_LIMITED` -> `RESOURCE_EXHAUSTED`;
 *   `ACCESS_DENIED` -> `PERMISSION_DENIED`; `TOKEN_UNAVAILABLE`, `TOKEN_INVALID` ->
 *   `UNAUTHENTICATED`.
 * - `RETRY_BUDGET_EXHAUSTED` takes the status of its cause, the last attempt's error, as grpc-js
 *   reports the last status when retry throttling refuses a retry (`RESOURCE_EXHAUSTED` when the
 *   cause has none). A budget refusal after a status answer never gets here: that status is the
 *   call's answer.
 * - A cancellation (`AbortError`) -> `CANCELLED`; any other error -> `INTERNAL`.
 */
export function statusOfError(error: unknown): MeshStatus {
  if (isMeshError(error)) {
    let code = codeOfMeshError(error.code)
    if (error.code === 'RETRY_BUDGET_EXHAUSTED' && error.cause !== undefined) {
      const inner = statusOfError(error.cause)
      if (inner.code !== GrpcStatus.INTERNAL) code = inner.code
    }
    return { code, details: error.message, meshCode: error.code, cause: error }
  }
  if (isAbort(error)) return { code: GrpcStatus.CANCELLED, details: (error as Error).message, cause: error }
  const message = error instanceof Error ? error.message : String(error)
  return { code: GrpcStatus.INTERNAL, details: message, cause: error }
}
