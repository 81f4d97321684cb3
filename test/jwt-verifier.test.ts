/**
 * Issue 24, bearer identity on the way in: `jwtVerifier` checks tokens against a JWKS served
 * from a loopback URL, read from a file or given as an object, with keys made at test time;
 * every refusal is a TokenInvalidError that says why.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportJWK, generateKeyPair, type JWK, SignJWT, UnsecuredJWT } from 'jose'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { jwtVerifier, type TokenInvalidError } from '../src/index.js'
import { startServer } from './helpers/servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

type Key = CryptoKey
let es: { privateKey: Key; jwk: JWK }
let rs: { privateKey: Key; jwk: JWK }
let stranger: { privateKey: Key; jwk: JWK }

async function keyPair(alg: 'ES256' | 'RS256', kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } }
}

beforeAll(async () => {
  es = await keyPair('ES256', 'es-1')
  rs = await keyPair('RS256', 'rs-1')
  // Another key that claims the ES key's kid: a forgery.
  stranger = await keyPair('ES256', 'es-1')
})

const ISS = 'spiffe://example.org'
const AUD = 'users'
const now = () => Math.floor(Date.now() / 1000)

function sign(
  key: { privateKey: Key; jwk: JWK },
  claims: Record<string, unknown> = {},
  header: { alg?: string; kid?: string } = {},
): Promise<string> {
  return new SignJWT({
    sub: 'spiffe://example.org/ns/prod/sa/orders',
    iss: ISS,
    aud: AUD,
    iat: now(),
    exp: now() + 300,
    ...claims,
  })
    .setProtectedHeader({ alg: header.alg ?? key.jwk.alg!, kid: header.kid ?? key.jwk.kid! })
    .sign(key.privateKey)
}

function jwks() {
  return { keys: [es.jwk, rs.jwk] as Record<string, unknown>[] }
}

async function reason(p: Promise<unknown>): Promise<string> {
  const error = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as TokenInvalidError | undefined
  expect(error?.code).toBe('TOKEN_INVALID')
  return error!.reason
}

describe('jwtVerifier', () => {
  it('accepts ES256 and RS256 tokens from a loopback JWKS URL, fetching the set once', async () => {
    let fetched = 0
    const s = await startServer((_req, res) => {
      fetched++
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(jwks()))
    })
    cleanup.push(() => s.close())
    const verify = jwtVerifier({ jwks: `${s.url}/.well-known/jwks.json`, issuer: ISS, audience: AUD })
    const claims = await verify(await sign(es))
    expect(claims.sub).toBe('spiffe://example.org/ns/prod/sa/orders')
    expect(Object.isFrozen(claims)).toBe(true)
    expect((await verify(await sign(rs))).iss).toBe(ISS)
    expect(fetched).toBe(1)
  })

  it('reads the JWKS from a file, and from an object', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-jwks-'))
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'jwks.json')
    writeFileSync(file, JSON.stringify(jwks()))
    const token = await sign(es)
    expect((await jwtVerifier({ jwks: file, audience: AUD })(token)).aud).toBe(AUD)
    expect((await jwtVerifier({ jwks: jwks(), issuer: [ISS, 'other'] })(token)).iss).toBe(ISS)
    const missing = jwtVerifier({ jwks: join(dir, 'nope.json') })
    const error = (await missing(token).catch((e: unknown) => e)) as TokenInvalidError
    expect(error.reason).toBe('jwks-unavailable')
    expect(error.message).toContain('nope.json')
  })

  it('refuses expired, not-yet-valid, wrong-issuer, wrong-audience, unknown-key and forged tokens', async () => {
    const verify = jwtVerifier({ jwks: jwks(), issuer: ISS, audience: AUD })
    expect(await reason(verify(await sign(es, { exp: now() - 10 })))).toBe('expired')
    expect(await reason(verify(await sign(es, { nbf: now() + 600 })))).toBe('not-yet-valid')
    expect(await reason(verify(await sign(es, { iss: 'spiffe://evil.org' })))).toBe('issuer')
    expect(await reason(verify(await sign(es, { aud: 'payments' })))).toBe('audience')
    expect(await reason(verify(await sign(es, {}, { kid: 'es-9' })))).toBe('unknown-key')
    expect(await reason(verify(await sign(stranger)))).toBe('signature')
    expect(await reason(verify('not.a.jwt'))).toBe('malformed')
    expect(await reason(verify(''))).toBe('malformed')
  })

  it('takes clockTolerance for exp and nbf', async () => {
    const token = await sign(es, { exp: now() - 5 })
    expect(await reason(jwtVerifier({ jwks: jwks() })(token))).toBe('expired')
    expect((await jwtVerifier({ jwks: jwks(), clockTolerance: 30 })(token)).aud).toBe(AUD)
  })

  it('refuses alg none and HMAC, and a token without exp', async () => {
    const verify = jwtVerifier({ jwks: jwks() })
    const unsecured = new UnsecuredJWT({ sub: 'x' }).setExpirationTime(now() + 60).encode()
    expect(await reason(verify(unsecured))).toBe('algorithm')
    // HS256 keyed with the public JWK's text: the classic confusion attack.
    const secret = new TextEncoder().encode(JSON.stringify(es.jwk))
    const hs = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: 'es-1' })
      .setExpirationTime(now() + 60)
      .sign(secret)
    expect(await reason(verify(hs))).toBe('algorithm')
    const noExp = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'ES256', kid: 'es-1' })
      .sign(es.privateKey)
    expect(await reason(verify(noExp))).toBe('claim')
    expect(() => jwtVerifier({ jwks: jwks(), algorithms: ['HS256'] })).toThrow(/asymmetric ones only/)
    expect(() => jwtVerifier({ jwks: jwks(), algorithms: ['none'] })).toThrow(/asymmetric ones only/)
    expect(() => jwtVerifier({ jwks: 'ftp://keys.example/jwks' })).toThrow(/http\(s\) URL/)
    expect(() => jwtVerifier({ jwks: { keys: 'x' } as never })).toThrow(/keys/)
    expect(() => jwtVerifier({ jwks: jwks(), timeout: -1 })).toThrow(/timeout/)
  })

  it('answers jwks-unavailable, in bounded time, when the JWKS URL does not answer', async () => {
    const s = await startServer(() => {}) // never answers
    cleanup.push(() => s.close())
    const verify = jwtVerifier({ jwks: `${s.url}/jwks`, timeout: 100 })
    const started = Date.now()
    expect(await reason(verify(await sign(es)))).toBe('jwks-unavailable')
    expect(Date.now() - started).toBeLessThan(2000)
  })
})
