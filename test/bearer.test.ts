/**
 * Issue 24, bearer identity on the way out: a service's token (from a file or a function) is
 * sent with every attempt, as an HTTP header (the direct path and fetch alike) and as gRPC
 * metadata, refreshed before it expires, and a call without a token fails with
 * TOKEN_UNAVAILABLE in bounded time, never sent without it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, isMeshError, type Mesh, withMesh } from '../src/index.js'
import { EchoClient, startGrpcServer } from './helpers/grpc-servers.js'
import { startServer, type TestServer } from './helpers/servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** An unsigned JWT-shaped token whose `exp` is `expSeconds` (the sender never verifies it). */
function jwt(expSeconds: number | undefined, tag = 'x'): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
  return `${b64({ alg: 'ES256' })}.${b64({ sub: tag, ...(expSeconds === undefined ? {} : { exp: expSeconds }) })}.c2ln`
}

const inSeconds = (s: number) => Math.floor(Date.now() / 1000) + s

/** A server answering with the authorization (and x-token) headers it received. */
async function echoAuth(): Promise<TestServer> {
  const s = await startServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(
      JSON.stringify({
        authorization: req.headers.authorization ?? null,
        token: req.headers['x-token'] ?? null,
      }),
    )
  })
  cleanup.push(() => s.close())
  return s
}

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-bearer-'))
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function track(mesh: Mesh): Mesh {
  cleanup.push(() => mesh.close({ force: true }))
  return mesh
}

describe('outbound bearer tokens over fetch', () => {
  it('sends the token file as Authorization: Bearer on the direct path and through fetch', async () => {
    const s = await echoAuth()
    const file = join(tempDir(), 'token')
    const token = jwt(inSeconds(3600))
    writeFileSync(file, `${token}\n`)
    for (const directFetch of [true, false]) {
      const mesh = track(
        createMesh(
          { services: { users: { endpoints: [s.url], auth: { tokenFile: file } } } },
          { directFetch },
        ),
      )
      const f = withMesh(fetch, mesh)
      for (let i = 0; i < 3; i++) {
        const body = await (await f('http://users/x', { headers: { accept: 'application/json' } })).json()
        expect(body.authorization).toBe(`Bearer ${token}`)
      }
      // Headers objects and pairs get it too.
      const viaHeaders = await (await f('http://users/x', { headers: new Headers({ a: 'b' }) })).json()
      expect(viaHeaders.authorization).toBe(`Bearer ${token}`)
    }
  })

  it("keeps the caller's own Authorization header", async () => {
    const s = await echoAuth()
    const mesh = track(
      createMesh(
        { services: { users: { endpoints: [s.url] } } },
        { tokens: { users: () => jwt(inSeconds(60)) } },
      ),
    )
    const f = withMesh(fetch, mesh)
    for (const headers of [
      { Authorization: 'Basic abc' },
      [['authorization', 'Basic abc']] as [string, string][],
    ]) {
      const body = await (await f('http://users/x', { headers })).json()
      expect(body.authorization).toBe('Basic abc')
    }
  })

  it('writes the token into the configured header and scheme', async () => {
    const s = await echoAuth()
    const mesh = track(
      createMesh(
        { services: { users: { endpoints: [s.url], auth: { header: 'X-Token', scheme: '' } } } },
        { tokens: { users: async () => 'opaque-1' } },
      ),
    )
    const body = await (await withMesh(fetch, mesh)('http://users/x')).json()
    expect(body).toEqual({ authorization: null, token: 'opaque-1' })
  })

  it('asks the provider once for concurrent calls', async () => {
    const s = await echoAuth()
    let asked = 0
    const exp = inSeconds(3600)
    const mesh = track(
      createMesh(
        { services: { users: { endpoints: [s.url] } } },
        {
          tokens: {
            users: async () => {
              asked++
              await new Promise((r) => setImmediate(r))
              return jwt(exp, `t${asked}`)
            },
          },
        },
      ),
    )
    const f = withMesh(fetch, mesh)
    const bodies = await Promise.all(
      Array.from({ length: 20 }, () => f('http://users/x').then((r) => r.json())),
    )
    expect(asked).toBe(1)
    expect(new Set(bodies.map((b) => b.authorization))).toEqual(new Set([`Bearer ${jwt(exp, 't1')}`]))
  })

  it('fails with TOKEN_UNAVAILABLE, naming the file, without sending, when the file is missing', async () => {
    const s = await echoAuth()
    const file = join(tempDir(), 'missing')
    const mesh = track(
      createMesh({
        services: { users: { endpoints: [s.url], auth: { tokenFile: file }, retry: { attempts: 3 } } },
      }),
    )
    const error = await withMesh(fetch, mesh)('http://users/x').catch((e: unknown) => e)
    expect(isMeshError(error, 'TOKEN_UNAVAILABLE')).toBe(true)
    expect((error as Error).message).toContain(file)
    expect((error as Error).message).toContain('ENOENT')
    expect(s.requests).toBe(0)
  })

  it('fails a call at its deadline when the provider never answers', async () => {
    const s = await echoAuth()
    const mesh = track(
      createMesh(
        { services: { users: { endpoints: [s.url], timeout: '100ms' } } },
        { tokens: { users: () => new Promise<string>(() => {}) } },
      ),
    )
    const started = Date.now()
    const error = await withMesh(fetch, mesh)('http://users/x').catch((e: unknown) => e)
    expect(isMeshError(error, 'TIMEOUT')).toBe(true)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(s.requests).toBe(0)
  })

  it('keeps the cached token across an update that keeps its source, and starts anew when it changes', async () => {
    const s = await echoAuth()
    const dir = tempDir()
    const [a, b] = [join(dir, 'a'), join(dir, 'b')]
    writeFileSync(a, 'token-a')
    writeFileSync(b, 'token-b')
    const config = (file: string) => ({
      services: { users: { endpoints: [s.url], auth: { tokenFile: file } } },
    })
    const mesh = track(createMesh(config(a)))
    const f = withMesh(fetch, mesh)
    expect((await (await f('http://users/x')).json()).authorization).toBe('Bearer token-a')
    writeFileSync(a, 'token-a2') // not re-read before auth.refresh: the same source is kept
    mesh.update(config(a))
    expect((await (await f('http://users/x')).json()).authorization).toBe('Bearer token-a')
    mesh.update(config(b))
    expect((await (await f('http://users/x')).json()).authorization).toBe('Bearer token-b')
  })

  it('refuses auth without a token source, with both, and a tokens name that is no service', () => {
    expect(() =>
      createMesh({ services: { users: { endpoints: ['http://127.0.0.1:1'], auth: {} } } }),
    ).toThrow(/services\.users\.auth\.tokenFile: required unless/)
    expect(() =>
      createMesh(
        { services: { users: { endpoints: ['http://127.0.0.1:1'], auth: { tokenFile: '/t' } } } },
        { tokens: { users: () => 't' } },
      ),
    ).toThrow(/not both/)
    expect(() =>
      createMesh(
        { services: { users: { endpoints: ['http://127.0.0.1:1'] } } },
        { tokens: { user: () => 't' } },
      ),
    ).toThrow(/tokens\.user names no configured service/)
    expect(() =>
      createMesh({
        services: { users: { endpoints: ['http://127.0.0.1:1'], auth: { tokenFile: '/t', header: 'host' } } },
      }),
    ).toThrow(/services\.users\.auth\.header/)
  })
})

describe('outbound bearer tokens over gRPC', () => {
  it('sends the token as authorization metadata on every attempt, and keeps a caller-set one', async () => {
    const seen: string[] = []
    const server = await startGrpcServer({
      Unary(call, cb) {
        seen.push(String(call.metadata.get('authorization')[0] ?? ''))
        cb(null, { text: call.request.text, index: 0, server: 's' })
      },
      ServerStream(call) {
        seen.push(String(call.metadata.get('authorization')[0] ?? ''))
        call.write({ text: call.request.text, index: 0, server: 's' })
        call.end()
      },
    })
    cleanup.push(() => server.close())
    const token = jwt(inSeconds(600))
    const mesh = track(
      createMesh(
        { services: { echo: { protocol: 'grpc', endpoints: [server.address] } } },
        { tokens: { echo: async () => token } },
      ),
    )
    const c = withMesh(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, mesh)
    cleanup.push(() => c.close())
    const unary = (md: grpc.Metadata) =>
      new Promise<void>((resolve, reject) =>
        c.Unary({ text: 'a' }, md, (e: unknown) => (e ? reject(e) : resolve())),
      )
    await unary(new grpc.Metadata())
    const own = new grpc.Metadata()
    own.set('authorization', 'Bearer mine')
    await unary(own)
    // A streaming call carries it too.
    await new Promise<void>((resolve, reject) => {
      const stream = c.ServerStream({ text: 's', count: 1 })
      stream.on('data', () => {})
      stream.on('error', reject)
      stream.on('end', resolve)
    })
    expect(seen).toEqual([`Bearer ${token}`, 'Bearer mine', `Bearer ${token}`])
  })

  it('fails with UNAUTHENTICATED when no token can be had', async () => {
    const server = await startGrpcServer()
    cleanup.push(() => server.close())
    const mesh = track(
      createMesh(
        { services: { echo: { protocol: 'grpc', endpoints: [server.address] } } },
        { tokens: { echo: () => '' } },
      ),
    )
    const c = withMesh(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, mesh)
    cleanup.push(() => c.close())
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      c.Unary({ text: 'a' }, (e: grpc.ServiceError) => resolve(e)),
    )
    expect(error.code).toBe(grpc.status.UNAUTHENTICATED)
    expect(error.details).toMatch(/service echo \(provider tokens\.echo\): the token is empty/)
    expect(server.calls).toBe(0)
  })
})
