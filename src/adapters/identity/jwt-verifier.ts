/**
 * Inbound bearer tokens: verifies a JWT against a JWKS (a file, an object, or an http(s) URL
 * fetched and cached by jose's `createRemoteJWKSet`) and returns its claims. `jose` is an
 * optional peer dependency, loaded on the first verification (decision D56): only processes that
 * verify tokens need it.
 *
 * Every refusal is a {@link TokenInvalidError} whose `reason` says why (expired, wrong issuer,
 * unknown key, forged...), never carrying the token or its claims: jose's own errors hold the
 * claims (`payload`), so they are not kept as the cause.
 */

import { readFile } from 'node:fs/promises'
import { TokenInvalidError, type TokenRejection } from '../../core/errors.js'

/** A JSON Web Key Set: `{ keys: [...] }` of public keys. */
export interface JsonWebKeySet {
  readonly keys: readonly Record<string, unknown>[]
}

/** Options of {@link jwtVerifier}. */
export interface JwtVerifierOptions {
  /**
   * The keys: a JWKS object, a path to a JWKS file (read on the first verification), or an
   * `http:`/`https:` URL (fetched on demand, cached, refetched when a token names an unknown
   * `kid`, by jose's `createRemoteJWKSet`). Required.
   */
  readonly jwks: JsonWebKeySet | string | URL
  /** The expected `iss` (one or any of several). Default: not checked. */
  readonly issuer?: string | readonly string[]
  /** The expected `aud` (one or any of several). Default: not checked. */
  readonly audience?: string | readonly string[]
  /**
   * The accepted `alg` values. Default the asymmetric ones: RS256/384/512, PS256/384/512,
   * ES256/384/512 and EdDSA. `none` and HMAC (`HS*`) are refused whatever is given: a verifier
   * holding a public JWKS must never accept a token signed with it as a shared secret.
   */
  readonly algorithms?: readonly string[]
  /** Leeway for `exp` and `nbf`, in seconds. Default `0`. */
  readonly clockTolerance?: number
  /** Claims that must be present (`exp` is always required). Default `['exp']`. */
  readonly requiredClaims?: readonly string[]
  /** The longest a JWKS URL fetch may take, in ms. Default `5000`. */
  readonly timeout?: number
}

/** Verifies a token and returns its claims (frozen), or rejects with {@link TokenInvalidError}. */
export type TokenVerifier = (token: string) => Promise<Readonly<Record<string, unknown>>>

const ASYMMETRIC = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const

type Jose = typeof import('jose')
type KeyGetter = Parameters<Jose['jwtVerify']>[1]

let josePromise: Promise<Jose> | undefined

/** jose, loaded once; a clear error when it is not installed. */
function loadJose(): Promise<Jose> {
  josePromise ??= import('jose').catch((error: unknown) => {
    josePromise = undefined
    throw new Error('jwtVerifier needs the optional peer dependency "jose": npm install jose', {
      cause: error,
    })
  })
  return josePromise
}

/**
 * A verifier for inbound bearer tokens (the inbound guard's `verifyToken`): checks the signature
 * against `options.jwks`, the algorithm, `exp` / `nbf` (with `clockTolerance`), and `iss` /
 * `aud` when given. Options are checked at once (a synchronous `TypeError` for a missing `jwks`
 * or an algorithm outside the asymmetric set); keys are loaded on the first verification.
 *
 * @example
 * ```ts
 * import { jwtVerifier } from 'meshlet'
 * const verify = jwtVerifier({ jwks: 'https://issuer.example/.well-known/jwks.json',
 *   issuer: 'https://issuer.example', audience: 'users' })
 * // const claims = await verify(token)   // TokenInvalidError (code TOKEN_INVALID) when refused
 * ```
 */
export function jwtVerifier(options: JwtVerifierOptions): TokenVerifier {
  const { jwks, issuer, audience, clockTolerance = 0, timeout = 5000 } = options
  if (jwks === undefined || jwks === null) throw new TypeError('jwtVerifier: options.jwks is required')
  const algorithms = [...(options.algorithms ?? ASYMMETRIC)]
  for (const alg of algorithms) {
    if (!(ASYMMETRIC as readonly string[]).includes(alg))
      throw new TypeError(
        `jwtVerifier: algorithm ${JSON.stringify(alg)} is not accepted (asymmetric ones only)`,
      )
  }
  if (typeof clockTolerance !== 'number' || !(clockTolerance >= 0 && clockTolerance <= 3600))
    throw new TypeError('jwtVerifier: clockTolerance must be 0..3600 seconds')
  if (typeof timeout !== 'number' || !(timeout >= 1 && timeout <= 60_000))
    throw new TypeError('jwtVerifier: timeout must be 1..60000 ms')
  const source = keySource(jwks)
  const requiredClaims = [...new Set(['exp', ...(options.requiredClaims ?? [])])]
  let keys: Promise<KeyGetter> | undefined
  const keysOf = (jose: Jose): Promise<KeyGetter> => {
    keys ??= makeKeys(jose, source, timeout).catch((error: unknown) => {
      keys = undefined // a file that appears later is read again
      throw error
    })
    return keys
  }
  return async function verifyToken(token) {
    if (typeof token !== 'string' || token.length === 0 || token.length > 16_384)
      throw new TokenInvalidError('malformed', 'not a compact JWT')
    const jose = await loadJose()
    const getKey = await keysOf(jose)
    try {
      const { payload } = await jose.jwtVerify(token, getKey, {
        algorithms,
        clockTolerance,
        requiredClaims,
        ...(issuer === undefined ? {} : { issuer: issuer as string | string[] }),
        ...(audience === undefined ? {} : { audience: audience as string | string[] }),
      })
      return Object.freeze({ ...payload })
    } catch (error) {
      throw refusal(error)
    }
  }
}

/** Where the keys come from, checked at once: a URL (http or https only), a file path, or a set. */
function keySource(jwks: JsonWebKeySet | string | URL): URL | string | JsonWebKeySet {
  if (jwks instanceof URL || (typeof jwks === 'string' && /^[a-z][a-z0-9+.-]*:\/\//i.test(jwks))) {
    let url: URL
    try {
      url = new URL(jwks)
    } catch {
      throw new TypeError('jwtVerifier: options.jwks is not a valid URL')
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new TypeError(`jwtVerifier: options.jwks must be an http(s) URL, got ${url.protocol}`)
    return url
  }
  if (typeof jwks === 'string') {
    if (jwks === '' || jwks.includes('\0'))
      throw new TypeError('jwtVerifier: options.jwks is not a file path')
    return jwks
  }
  if (typeof jwks !== 'object' || !Array.isArray((jwks as { keys?: unknown }).keys))
    throw new TypeError('jwtVerifier: options.jwks must be a URL, a file path or a { keys: [...] } set')
  return jwks
}

async function makeKeys(jose: Jose, jwks: URL | string | JsonWebKeySet, timeout: number): Promise<KeyGetter> {
  if (jwks instanceof URL) return jose.createRemoteJWKSet(jwks, { timeoutDuration: timeout }) as KeyGetter
  let set: unknown = jwks
  if (typeof jwks === 'string') {
    let text: string
    try {
      text = await readFile(jwks, 'utf8')
    } catch (error) {
      const code = (error as { code?: unknown }).code
      throw new TokenInvalidError(
        'jwks-unavailable',
        `cannot read the JWKS file ${jwks}${typeof code === 'string' ? ` (${code})` : ''}`,
      )
    }
    try {
      set = JSON.parse(text)
    } catch {
      throw new TokenInvalidError('jwks-unavailable', `the JWKS file ${jwks} is not JSON`)
    }
  }
  try {
    return jose.createLocalJWKSet(set as Parameters<Jose['createLocalJWKSet']>[0]) as KeyGetter
  } catch {
    throw new TokenInvalidError('jwks-unavailable', 'the JWKS is not a valid key set')
  }
}

/** A {@link TokenInvalidError} for jose's error, with its code and claim but none of its data. */
function refusal(error: unknown): TokenInvalidError {
  if (error instanceof TokenInvalidError) return error
  const code = (error as { code?: unknown }).code
  const claim = (error as { claim?: unknown }).claim
  const reason: TokenRejection =
    code === 'ERR_JWT_EXPIRED'
      ? 'expired'
      : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
        ? 'signature'
        : code === 'ERR_JWKS_NO_MATCHING_KEY' || code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS'
          ? 'unknown-key'
          : code === 'ERR_JOSE_ALG_NOT_ALLOWED' || code === 'ERR_JOSE_NOT_SUPPORTED'
            ? 'algorithm'
            : code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID'
              ? 'jwks-unavailable'
              : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
                ? claim === 'nbf'
                  ? 'not-yet-valid'
                  : claim === 'iss'
                    ? 'issuer'
                    : claim === 'aud'
                      ? 'audience'
                      : 'claim'
                : typeof code === 'string'
                  ? 'malformed'
                  : 'jwks-unavailable' // not jose's: the JWKS URL could not be fetched
  const c = typeof claim === 'string' ? claim : undefined
  const detail = typeof code === 'string' ? `${code}${c ? ` (claim ${c})` : ''}` : 'not a valid JWT'
  return new TokenInvalidError(reason, detail, c)
}
