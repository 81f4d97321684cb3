/**
 * The schema of a service's `tls`: the trust bundle, the client's own certificate and key
 * (mTLS), the expected server identity (SPIFFE IDs, gRFC A87, or DNS names), the SNI name and the
 * lowest protocol version. Values of `ca`, `cert` and `key` are PEM text (starting with
 * `-----BEGIN`) or a file path (anything else); files are read when the mesh is created and
 * re-read when they change (src/adapters/tls/). No message here ever quotes such a value: a
 * key given inline is a secret.
 */
import { isPem } from '../../adapters/tls/material.js'
import { array, literalUnion, object, optional, string, transform, union } from './schema.js'

/** The longest PEM text accepted inline (a bundle of many CA certificates fits): 1 MiB. */
const MAX_PEM = 1_048_576
/** The longest file path accepted: 4096 characters (Linux's PATH_MAX). */
const MAX_PATH = 4096

/**
 * Whether `pem` has a `-----BEGIN <...>label-----` line (`EC PRIVATE KEY` counts as a `PRIVATE KEY`
 * block). One scan per `-----BEGIN ` line, with no pattern built from a value at parse time.
 */
function hasPemBlock(pem: string, label: string): boolean {
  const begin = '-----BEGIN '
  for (let at = pem.indexOf(begin); at >= 0; at = pem.indexOf(begin, at + begin.length)) {
    const end = pem.indexOf('-----', at + begin.length)
    if (end < 0) return false
    const name = pem.slice(at + begin.length, end)
    if (name.endsWith(label) && /^[A-Z0-9 ]*$/.test(name)) return true
  }
  return false
}

/**
 * PEM text holding at least one `label` block, or a file path (non-empty, no NUL character, at
 * most 4096 characters). Problems are reported without the value.
 */
function pemOrPath(label: string, what: string) {
  return transform(
    string({ maxLength: MAX_PEM, expected: `${what} (PEM text or a file path)` }),
    (v, issue) => {
      if (isPem(v)) {
        if (!hasPemBlock(v, label) || !v.includes('-----END'))
          issue(`expected PEM text with a "${label}" block (the value is not shown)`)
      } else if (v.length === 0 || v.length > MAX_PATH || v.includes('\0')) {
        issue(
          `expected ${what}: PEM text starting with "-----BEGIN", or a file path of 1 to ${MAX_PATH} characters without NUL`,
        )
      }
      return v
    },
  )
}

/**
 * A SPIFFE ID (`spiffe://trust-domain/path`, the SPIFFE ID specification: a lower-case trust
 * domain of letters, digits, `.`, `-`, `_`; a non-empty path of segments of letters, digits, `.`,
 * `-`, `_`, none `.` or `..`), or a DNS name (letters, digits, `-`, `.`; `*.` first for a
 * wildcard as RFC 6125 allows it), or an IP address.
 */
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/
const DNS_NAME = /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/
const IDENTITY_EXPECTED =
  'a SPIFFE ID ("spiffe://example.org/ns/prod/sa/users") or a DNS name ("users.internal")'

// One pattern for both forms, so the JSON Schema (and the config fuzzer) knows it.
const IDENTITY = new RegExp(`^(${SPIFFE_ID.source.slice(1, -1)}|${DNS_NAME.source.slice(1, -1)})$`)

const identityName = transform(
  string({ pattern: IDENTITY, maxLength: 2048, expected: IDENTITY_EXPECTED }),
  (v, issue) => {
    if (v.startsWith('spiffe://')) {
      if (v.split('/').some((seg, i) => i > 2 && (seg === '.' || seg === '..')))
        issue(`expected a SPIFFE ID without "." or ".." segments, got "${v}"`)
    } else if (v.length > 253) {
      issue(`expected a DNS name of at most 253 characters, got ${v.length}`)
    }
    return v
  },
)

/** The TLS settings of a service (see the module comment). */
export const tlsSettings = transform(
  object({
    /**
     * The trust bundle: the CA certificates a server's chain must end at (PEM, one or more, or a
     * file holding them). Default: Node's bundled public roots (`tls.rootCertificates`).
     */
    ca: optional(pemOrPath('CERTIFICATE', 'a CA bundle')).describe(
      "Trust bundle: PEM CA certificates or a file path. Default: Node's public roots.",
    ),
    /**
     * The client's own certificate chain, presented to servers that ask (mTLS): PEM or a file.
     * Given with `key`. Default none (no client certificate).
     */
    cert: optional(pemOrPath('CERTIFICATE', 'a certificate chain')).describe(
      "The client's certificate chain for mTLS (PEM or file path); with key. Default none.",
    ),
    /**
     * The private key of `cert`: PEM or a file. Never shown in an error, event or log. Given with
     * `cert`. Default none.
     */
    key: optional(pemOrPath('PRIVATE KEY', 'a private key')).describe(
      'The private key of cert (PEM or file path). Never shown in errors. Default none.',
    ),
    /**
     * The name sent as SNI (and, when `identity` is unset, the DNS name checked in the server's
     * certificate). Default: the endpoint's host (none for an IP address).
     */
    serverName: optional(
      string({ pattern: DNS_NAME, maxLength: 253, expected: 'a DNS name ("users.internal")' }),
    ).describe("The SNI name, and the name checked when identity is unset. Default: the endpoint's host."),
    /** The lowest TLS version accepted: `'TLSv1.2'` or `'TLSv1.3'`. Default `'TLSv1.2'`. */
    minVersion: optional(literalUnion(['TLSv1.2', 'TLSv1.3']), 'TLSv1.2').describe(
      'The lowest TLS version accepted. Default TLSv1.2.',
    ),
    /**
     * The identity the server must prove: SPIFFE IDs (the certificate must carry exactly one URI
     * SAN, equal to one of them, gRFC A87) or DNS names (RFC 6125 matching of its DNS SANs), one
     * or a list (any one matches; SPIFFE IDs and DNS names not mixed). Default: the endpoint's host
     * (or `serverName`), checked as Node checks it.
     */
    identity: optional(union(identityName, array(identityName))).describe(
      'The server identity: SPIFFE ID(s) or DNS name(s); any one matches. Default: the endpoint host.',
    ),
  }),
  (t, issue) => {
    if ((t.cert === undefined) !== (t.key === undefined))
      issue('expected cert and key together (mTLS) or neither', t.cert === undefined ? 'cert' : 'key')
    const identity =
      t.identity === undefined ? [] : typeof t.identity === 'string' ? [t.identity] : t.identity
    if (t.identity !== undefined && identity.length === 0) issue('expected at least one identity', 'identity')
    if (t.identity !== undefined && identity.length > 64)
      issue(`expected at most 64 identities, got ${identity.length}`, 'identity')
    const spiffe = identity.filter((i) => i.startsWith('spiffe://')).length
    if (spiffe > 0 && spiffe < identity.length)
      issue('expected SPIFFE IDs or DNS names, not both', 'identity')
    return { ...t, identity: identity as readonly string[] }
  },
)
