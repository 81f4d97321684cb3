/**
 * Issue 24, acceptance 4: no secret (token, key) appears in an error message, an event, a log
 * line or a metric label. Tokens with a recognisable secret are driven through failing
 * refreshes, expiry, refused verification and failing calls (retries, breaker, ejections) over
 * fetch and gRPC; every error (message, cause chain, own properties, as `util.inspect` shows
 * it), every mesh event payload and everything written to the console is captured and grepped.
 *
 * The mesh has no metrics of its own yet: its instruments are built from the events (the
 * telemetry stage), so an event payload free of secrets is a metric label free of them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import * as grpc from '@grpc/grpc-js'
import { exportJWK, exportPKCS8, generateKeyPair, SignJWT } from 'jose'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { MeshEvents } from '../src/core/events.js'
import { createMesh, jwtVerifier, type Mesh, withMesh } from '../src/index.js'
import { EchoClient, startGrpcServer } from './helpers/grpc-servers.js'
import { startServer } from './helpers/servers.js'

/** What must never show: the recognisable part of every token and key of this file. */
const SECRET = 'S3CR3T-b7f1c2d9e8a4'
// Base64url characters only, so the secret stands in the token's text as it is.
const secretSig = `${SECRET}_${SECRET}_${SECRET}`

/** A JWT-shaped token carrying the secret in its payload and signature. */
function secretJwt(expSeconds: number): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  return `${b64({ alg: 'ES256', kid: SECRET })}.${b64({ sub: SECRET, exp: expSeconds })}.${secretSig}`
}

const now = () => Math.floor(Date.now() / 1000)
/** The strings that must not appear: the token, its signature, and the secret as text. */
const needles = (token?: string) => [SECRET, secretSig, ...(token ? [token, token.split('.')[2]!] : [])]

const captured: string[] = []
const cleanup: Array<() => Promise<void> | void> = []

beforeEach(() => {
  for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
    const spy = vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      captured.push(args.map((a) => (typeof a === 'string' ? a : inspect(a, { depth: 10 }))).join(' '))
    })
    cleanup.push(() => spy.mockRestore())
  }
  const onWarning = (w: Error) => captured.push(inspect(w, { depth: 10 }))
  process.on('warning', onWarning)
  cleanup.push(() => {
    process.off('warning', onWarning)
  })
})

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
  for (const line of captured.splice(0)) for (const n of needles()) expect(line).not.toContain(n)
})

/** Records an error as everything a log line could show of it. */
function seeError(error: unknown): string {
  expect(error).toBeDefined()
  const text = [
    inspect(error, { depth: 10, showHidden: false }),
    JSON.stringify(error, Object.getOwnPropertyNames(error ?? {})),
  ]
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 10; depth++) {
    text.push(e.message, String(e.stack), JSON.stringify({ ...e }))
    e = e.cause
  }
  const all = text.join('\n')
  captured.push(all)
  return all
}

/** Subscribes to every event type of `mesh`, recording each payload. */
function recordEvents(mesh: Mesh): string[] {
  const seen: string[] = []
  const types: (keyof MeshEvents)[] = [
    'retry',
    'retry-budget-exhausted',
    'hedge',
    'circuit-state',
    'ejection',
    'ejection-end',
    'bulkhead-full',
    'fallback',
    'timeout',
    'config-updated',
    'discovery-updated',
    'discovery-error',
  ]
  for (const type of types) {
    mesh.events.on(type, (payload) => {
      const text = `${type} ${JSON.stringify(payload, (_k, v) => (v instanceof Error ? inspect(v, { depth: 10 }) : v))}`
      seen.push(text)
      captured.push(text)
    })
  }
  return seen
}

function expectClean(text: string, token?: string): void {
  for (const n of needles(token)) expect(text).not.toContain(n)
}

function tempFile(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-secret-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'token')
  writeFileSync(file, content)
  return file
}

describe('no secret in errors, events or logs', () => {
  it('outbound: expired, malformed and failing tokens from files and providers', async () => {
    const s = await startServer((_req, res) => {
      res.end('ok')
    })
    cleanup.push(() => s.close())
    const expired = secretJwt(now() - 60)
    const cases: Array<{
      auth?: Record<string, unknown>
      fn?: () => string | Promise<string>
      token: string
    }> = [
      { auth: { tokenFile: tempFile(expired) }, token: expired },
      { auth: { tokenFile: tempFile(`${SECRET} with spaces`) }, token: `${SECRET} with spaces` },
      { auth: { tokenFile: tempFile(`${SECRET}\u0000\u00e9`) }, token: `${SECRET}\u0000` },
      { auth: { tokenFile: tempFile(SECRET.repeat(2000)) }, token: SECRET.repeat(2000) },
      { fn: () => expired, token: expired },
      { fn: async () => `${SECRET}\r\nx: y`, token: SECRET },
    ]
    for (const c of cases) {
      const mesh = createMesh(
        {
          services: {
            users: { endpoints: [s.url], ...(c.auth ? { auth: c.auth } : {}), retry: { attempts: 3 } },
          },
        },
        c.fn ? { tokens: { users: c.fn } } : {},
      )
      cleanup.push(() => mesh.close({ force: true }))
      const events = recordEvents(mesh)
      const error = await withMesh(fetch, mesh)('http://users/x').catch((e: unknown) => e)
      expect((error as { code?: string }).code).toBe('TOKEN_UNAVAILABLE')
      const text = seeError(error)
      expect(text).toContain('service users')
      expectClean(text, c.token)
      for (const e of events) expectClean(e, c.token)
    }
    expect(s.requests).toBe(0)
  })

  it('outbound: a valid secret token through retries, timeouts, an open breaker and ejections', async () => {
    const token = secretJwt(now() + 3600)
    let calls = 0
    const s = await startServer((req, res) => {
      calls++
      if (calls % 3 === 0) {
        req.socket.destroy() // a reset
        return
      }
      if (calls % 3 === 1) {
        setTimeout(() => res.end('late'), 200) // past the attempt timeout
        return
      }
      res.statusCode = 503
      res.end(`upstream echo: ${req.headers.authorization === `Bearer ${token}` ? 'token ok' : 'no token'}`)
    })
    cleanup.push(() => s.close())
    const mesh = createMesh(
      {
        services: {
          users: {
            endpoints: [s.url],
            auth: { tokenFile: tempFile(token) },
            retry: { attempts: 3, perTryTimeout: '50ms', backoff: { base: '1ms', max: '2ms' } },
            circuitBreaker: { consecutiveFailures: 3, halfOpenAfter: '10s' },
            outlierDetection: {
              consecutiveFailures: 2,
              interval: '1s',
              baseEjectionTime: '1s',
              maxEjectionPercent: 100,
            },
          },
        },
      },
      {},
    )
    cleanup.push(() => mesh.close({ force: true }))
    const events = recordEvents(mesh)
    const f = withMesh(fetch, mesh)
    for (let i = 0; i < 6; i++) {
      const outcome = await f('http://users/x').then(
        async (res) => `status ${res.status} ${await res.text()}`,
        (e: unknown) => seeError(e),
      )
      captured.push(outcome)
      expectClean(outcome, token)
    }
    expect(events.length).toBeGreaterThan(0)
    for (const e of events) expectClean(e, token)
    expect(events.some((e) => e.startsWith('retry '))).toBe(true)
    expect(events.some((e) => e.startsWith('circuit-state '))).toBe(true)
  })

  it('inbound: refused tokens and key files never show in verification errors', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true })
    const other = await generateKeyPair('ES256', { extractable: true })
    const pem = await exportPKCS8(privateKey)
    const privateText = pem.split('\n')[1]!
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] }
    const sign = (claims: Record<string, unknown>, key = privateKey, kid = 'k1') =>
      new SignJWT({ sub: SECRET, secret: SECRET, aud: 'users', exp: now() + 60, ...claims })
        .setProtectedHeader({ alg: 'ES256', kid })
        .sign(key)
    const verify = jwtVerifier({ jwks, issuer: 'spiffe://example.org', audience: 'users' })
    const tokens = [
      await sign({ exp: now() - 60, iss: 'spiffe://example.org' }),
      await sign({ nbf: now() + 600, iss: 'spiffe://example.org' }),
      await sign({ iss: `spiffe://${SECRET}` }),
      await sign({ iss: 'spiffe://example.org', aud: SECRET }),
      await sign({ iss: 'spiffe://example.org' }, other.privateKey),
      await sign({ iss: 'spiffe://example.org' }, privateKey, SECRET),
      `${SECRET}.${SECRET}.${SECRET}`,
      secretJwt(now() + 60),
    ]
    for (const token of tokens) {
      const error = await verify(token).catch((e: unknown) => e)
      expect((error as { code?: string }).code).toBe('TOKEN_INVALID')
      const text = seeError(error)
      expectClean(text, token)
      expect(text).not.toContain(privateText)
    }
    // A JWKS file that is not a key set: the error names the file, not its contents.
    const file = tempFile(`{"keys": "${SECRET}"`)
    const error = await jwtVerifier({ jwks: file })(tokens[0]!).catch((e: unknown) => e)
    expectClean(seeError(error))
  })

  it('gRPC: statuses and metadata of failed calls carry no token', async () => {
    const token = secretJwt(now() + 3600)
    const server = await startGrpcServer({
      Unary(_call, cb) {
        cb({ code: grpc.status.UNAVAILABLE, details: 'try later' })
      },
    })
    cleanup.push(() => server.close())
    const expired = secretJwt(now() - 5)
    for (const provider of [() => token, () => expired]) {
      const mesh = createMesh(
        { services: { echo: { protocol: 'grpc', endpoints: [server.address], retry: { attempts: 2 } } } },
        { tokens: { echo: provider } },
      )
      cleanup.push(() => mesh.close({ force: true }))
      const events = recordEvents(mesh)
      const c = withMesh(
        new EchoClient('echo', grpc.credentials.createInsecure()) as unknown as grpc.Client & {
          Unary: (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void
        },
        mesh,
      )
      cleanup.push(() => c.close())
      const error = await new Promise<grpc.ServiceError | null>((resolve) => c.Unary({ text: 'a' }, resolve))
      const text = `${seeError(error)}\n${JSON.stringify(error?.metadata?.getMap() ?? {})}`
      expectClean(text, provider())
      for (const e of events) expectClean(e, provider())
    }
  })
})
