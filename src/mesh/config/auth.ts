/**
 * The `auth` option of a service: the bearer token each call carries (docs/security.md, "Bearer
 * identity"; docs/configuration.md). The token comes from `tokenFile` or from the function given
 * to `createMesh` as `tokens[service]`; this file only describes where and how it is sent.
 */

import { duration, object, optional, string, transform } from './schema.js'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Header names a token may not be written to: those the transport or fetch rule on (HTTP/1.1
 * framing and routing), and gRPC's reserved `grpc-` prefix and pseudo-headers.
 */
const RESERVED = new Set([
  'host',
  'connection',
  'content-length',
  'content-type',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'keep-alive',
  'proxy-connection',
  'expect',
  'user-agent',
  'x-meshlet-timeout-ms',
])

/** A path of the token file: not empty, at most 4,096 characters, no NUL or line break. */
const tokenFile = string({
  pattern: /^[^\0\r\n]+$/,
  maxLength: 4096,
  expected: 'a file path (no NUL or line break)',
})

/** The header that carries the token: an RFC 9110 token, lower-cased; not one the transport owns. */
const tokenHeader = transform(
  string({ pattern: TOKEN, maxLength: 256, expected: 'a header name (an RFC 9110 token)' }),
  (name, issue) => {
    const lower = name.toLowerCase()
    if (RESERVED.has(lower) || lower.startsWith('grpc-') || lower.endsWith('-bin'))
      issue(
        `expected a header the transport does not own (not host, content-*, grpc-*, *-bin), got "${name}"`,
      )
    return lower
  },
)

/** The scheme before the token: an RFC 9110 token (`Bearer`, `DPoP`), or `''` for none. */
const tokenScheme = string({
  pattern: /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)?$/,
  maxLength: 64,
  expected: 'an auth scheme (an RFC 9110 token) or ""',
})

/** The `auth` object of a service. */
export const serviceAuth = object({
  /**
   * A file holding the token (a Kubernetes projected service-account token, a SPIRE JWT-SVID):
   * read on the first call and re-read before the token expires (80% of its `exp` lifetime) and
   * at least every `refresh`. Required unless `createMesh` is given `tokens[service]`, and
   * refused together with it.
   */
  tokenFile: optional(tokenFile).describe(
    'A file holding the token, re-read before it expires. Required unless createMesh is given tokens[service].',
  ),
  /** The header (gRPC metadata key) that carries the token, lower-cased. Default `'authorization'`. */
  header: optional(tokenHeader, 'authorization').describe(
    'The header (gRPC metadata key) that carries the token. Default "authorization".',
  ),
  /** Written before the token and a space; `''` sends the token alone. Default `'Bearer'`. */
  scheme: optional(tokenScheme, 'Bearer').describe(
    'Written before the token and a space; "" sends the token alone. Default "Bearer".',
  ),
  /**
   * The longest a token is used before it is asked for again, 1s..24h: for tokens without an
   * `exp` claim, and for files rewritten before 80% of their token's lifetime. Default `'1m'`.
   */
  refresh: optional(
    transform(duration(), (ms, issue) => {
      if (ms < 1000 || ms > 86_400_000) issue(`expected a duration from 1s to 24h, got ${ms}ms`)
      return ms
    }),
    '1m',
  ).describe('The longest a token is used before it is asked for again (1s..24h). Default "1m".'),
  /** The longest one read of the token may take, 100ms..60s. Default `'10s'`. */
  timeout: optional(
    transform(duration(), (ms, issue) => {
      if (ms < 100 || ms > 60_000) issue(`expected a duration from 100ms to 60s, got ${ms}ms`)
      return ms
    }),
    '10s',
  ).describe('The longest one read of the token may take (100ms..60s). Default "10s".'),
}).describe('The bearer token each call carries. Default none.')
