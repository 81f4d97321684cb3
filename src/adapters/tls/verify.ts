/**
 * Server identity verification for a service with `tls`, on every new connection, for fetch and
 * gRPC alike: the chain's result as OpenSSL found it (typed: expired, not yet valid, unknown CA),
 * then the identity. SPIFFE IDs are checked as gRFC A87 says (exactly one URI SAN, a SPIFFE ID,
 * equal to an expected one); DNS names and IP addresses as RFC 6125 / Node's `checkHost` and
 * `checkIP` do. Node's own `tls.checkServerIdentity` ignores URI SANs, hence this module.
 */
import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { type TlsVerificationCode, TlsVerificationError } from '../../core/errors.js'

/** What a connection must prove. */
export interface IdentityPolicy {
  /** The service, for messages. */
  readonly service: string
  /** Expected SPIFFE IDs or DNS names; empty: the host (or `serverName`) connected to. */
  readonly identity: readonly string[]
  /** The SNI name, checked when `identity` is empty. */
  readonly serverName: string | undefined
}

/** OpenSSL verification results (Node's `authorizationError` codes) that mean "not from a trusted CA". */
const UNKNOWN_CA = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
])

/** The typed code of an OpenSSL verification result. */
export function codeOfChainError(code: string): TlsVerificationCode {
  if (code === 'CERT_HAS_EXPIRED') return 'TLS_CERT_EXPIRED'
  if (code === 'CERT_NOT_YET_VALID') return 'TLS_CERT_NOT_YET_VALID'
  if (UNKNOWN_CA.has(code)) return 'TLS_UNKNOWN_CA'
  return 'TLS_HANDSHAKE_FAILED'
}

/**
 * The subject alternative names of `cert` as `TYPE:value` (`URI:spiffe://...`, `DNS:users`,
 * `IP Address:127.0.0.1`), parsed from Node's rendering, where a value with special characters
 * is a JSON string (CVE-2021-44532).
 */
export function subjectAltNames(cert: X509Certificate | undefined): string[] {
  const text = cert?.subjectAltName
  if (text === undefined || text === '') return []
  const out: string[] = []
  let i = 0
  while (i < text.length) {
    const colon = text.indexOf(':', i)
    if (colon < 0) break
    const type = text.slice(i, colon)
    let j = colon + 1
    let value: string
    if (text[j] === '"') {
      let k = j + 1
      while (k < text.length && text[k] !== '"') k += text[k] === '\\' ? 2 : 1
      try {
        value = JSON.parse(text.slice(j, k + 1)) as string
      } catch {
        value = text.slice(j + 1, k)
      }
      j = k + 1
    } else {
      const end = text.indexOf(', ', j)
      value = end < 0 ? text.slice(j) : text.slice(j, end)
      j = end < 0 ? text.length : end
    }
    out.push(`${type}:${value}`)
    i = text.startsWith(', ', j) ? j + 2 : text.length
  }
  return out
}

/** The URI SANs of a parsed list. */
const urisOf = (sans: readonly string[]) => sans.filter((s) => s.startsWith('URI:')).map((s) => s.slice(4))

/**
 * Checks the identity of `cert` (whose chain verified) against `policy` for a connection to
 * `host` at `endpoint`; returns the refusal, or `undefined` when it matches.
 */
export function checkIdentity(
  cert: X509Certificate | undefined,
  host: string,
  policy: IdentityPolicy,
  endpoint: string,
): TlsVerificationError | undefined {
  const sans = subjectAltNames(cert)
  const expected = policy.identity
  const refuse = (detail: string, exp: readonly string[]) =>
    new TlsVerificationError('TLS_IDENTITY_MISMATCH', detail, endpoint, exp, sans, {
      service: policy.service,
    })
  if (cert === undefined) return refuse('the server presented no certificate', expected)
  if (expected.length > 0 && expected[0]!.startsWith('spiffe://')) {
    // gRFC A87: exactly one URI SAN, a SPIFFE ID, and it must be one of those expected.
    const uris = urisOf(sans)
    if (uris.length !== 1)
      return refuse(`a SPIFFE certificate has exactly one URI SAN, this one has ${uris.length}`, expected)
    if (!uris[0]!.startsWith('spiffe://')) return refuse('its URI SAN is not a SPIFFE ID', expected)
    return expected.includes(uris[0]!) ? undefined : refuse('its SPIFFE ID is not the one expected', expected)
  }
  const names = expected.length > 0 ? expected : [policy.serverName ?? host]
  for (const name of names) {
    const ip = isIP(name.startsWith('[') ? name.slice(1, -1) : name) !== 0
    if (ip ? cert.checkIP(name.replace(/^\[|\]$/g, '')) !== undefined : cert.checkHost(name) !== undefined)
      return undefined
  }
  return refuse('no name of its certificate matches', names)
}

/**
 * The verdict on a finished handshake: the chain first (`authorized` and `authorizationError`
 * as Node reports them with `rejectUnauthorized: false`), then the identity.
 */
export function verifyConnection(
  socket: {
    authorized: boolean
    authorizationError?: Error | string | null
    getPeerX509Certificate(): X509Certificate | undefined
  },
  host: string,
  policy: IdentityPolicy,
  endpoint: string,
): TlsVerificationError | undefined {
  const cert = socket.getPeerX509Certificate()
  if (!socket.authorized) {
    const raw = socket.authorizationError
    const code = typeof raw === 'string' ? raw : ((raw as { code?: string } | null)?.code ?? String(raw))
    const exp = policy.identity.length > 0 ? policy.identity : [policy.serverName ?? host]
    return new TlsVerificationError(
      codeOfChainError(code),
      `certificate verification failed (${code})`,
      endpoint,
      exp,
      subjectAltNames(cert),
      {
        service: policy.service,
      },
    )
  }
  return checkIdentity(cert, host, policy, endpoint)
}

/** A `checkServerIdentity` for Node's TLS options (gRPC), from a peer certificate's DER bytes. */
export function identityChecker(
  policy: IdentityPolicy,
  endpoint: (host: string) => string,
  onRefusal?: (error: TlsVerificationError) => void,
): (host: string, cert: { raw?: Buffer }) => Error | undefined {
  return (host, peer) => {
    let cert: X509Certificate | undefined
    try {
      cert = peer.raw === undefined ? undefined : new X509Certificate(peer.raw)
    } catch {
      cert = undefined
    }
    const error = checkIdentity(cert, host, policy, endpoint(host))
    if (error !== undefined) onRefusal?.(error)
    return error
  }
}
