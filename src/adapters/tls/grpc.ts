/**
 * Typed TLS failures for gRPC. grpc-js connects by itself and reports a refused handshake only as
 * an `UNAVAILABLE` status whose details end with the connection error's message ("No connection
 * established. Last error: ..."). An uncommitted `UNAVAILABLE` answer of a service with `tls`
 * whose details carry a verification failure becomes that failure as a
 * {@link TlsVerificationError}: the caller's `ServiceError` keeps `UNAVAILABLE` and gains
 * `meshCode` (`TLS_IDENTITY_MISMATCH`, ...), and the classifier counts it a failure, not retried
 * (docs/security.md). Identity refusals are ours (verify.ts) and carry their own text; chain
 * failures are known by Node's messages for OpenSSL's verification results.
 */
import { type TlsVerificationCode, TlsVerificationError } from '../../core/errors.js'
import type { Handler } from '../../core/handler.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
import type { GrpcRequest, GrpcResponse } from '../grpc/request.js'
import type { IdentityPolicy } from './verify.js'

/** Node's messages of the OpenSSL verification results that {@link codeOfChainError} types. */
const CHAIN_MESSAGES: ReadonlyArray<readonly [string, TlsVerificationCode]> = [
  ['certificate has expired', 'TLS_CERT_EXPIRED'],
  ['certificate is not yet valid', 'TLS_CERT_NOT_YET_VALID'],
  ['unable to verify the first certificate', 'TLS_UNKNOWN_CA'],
  ['unable to get local issuer certificate', 'TLS_UNKNOWN_CA'],
  ['unable to get issuer certificate', 'TLS_UNKNOWN_CA'],
  ['self-signed certificate', 'TLS_UNKNOWN_CA'],
  ['self signed certificate', 'TLS_UNKNOWN_CA'],
  ['certificate signature failure', 'TLS_UNKNOWN_CA'],
]

const UNAVAILABLE = 14
const MARK = 'TlsVerificationError: '

/** The TLS failure an `UNAVAILABLE` status's details report, if any. */
export function tlsFailureOf(
  details: string,
  endpoint: string,
  policy: IdentityPolicy,
): TlsVerificationError | undefined {
  const at = details.indexOf(MARK)
  const exp = policy.identity
  if (at >= 0) {
    // One of ours (verify.ts): its message says it all; keep it whole.
    const message = details.slice(at + MARK.length).replace(/\. Resolution note:.*$/s, '')
    const err = new TlsVerificationError('TLS_IDENTITY_MISMATCH', 'identity', endpoint, exp, undefined, {
      service: policy.service,
    })
    Object.defineProperty(err, 'message', { value: message, configurable: true, writable: true })
    return err
  }
  for (const [text, code] of CHAIN_MESSAGES) {
    if (details.includes(text))
      return new TlsVerificationError(
        code,
        `certificate verification failed (${text})`,
        endpoint,
        exp,
        undefined,
        {
          service: policy.service,
        },
      )
  }
  return undefined
}

/** `next` with TLS failures typed (see the module comment). */
export function typedTlsFailures(
  next: Handler<GrpcRequest, GrpcResponse>,
  policy: IdentityPolicy,
): Handler<GrpcRequest, GrpcResponse> {
  return (req, ctx) =>
    next(req, ctx).then((res) => {
      const status = res.status
      if (status === undefined || status.code !== UNAVAILABLE || res.committed) return res
      const failure = tlsFailureOf(status.details, ctx.get(ENDPOINT)?.address ?? res.peer, policy)
      if (failure === undefined) return res
      throw failure
    })
}
