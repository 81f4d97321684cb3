/**
 * Issue 25 against real loopback servers: a 429 with `Retry-After: 1` pauses that key for 1 s
 * for every call of the process (on the manual clock), the RateLimit headers do the same, the
 * pause reaches the shared store of a global limit, a gRPC RESOURCE_EXHAUSTED with
 * `grpc-retry-pushback-ms` pauses the gRPC service, and a refusal is a 429 / RESOURCE_EXHAUSTED
 * answer where the mesh answers for its errors.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { isMeshError } from '../src/core/errors.js'
import { createMesh, type MeshConfig, type MeshOptions } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import { withMesh } from '../src/mesh/with-mesh.js'
import { MemoryQuotaStore } from '../src/stages/quota/limiter.js'
import { ManualClock } from '../src/testing/index.js'
import { EchoClient, type EchoReply, startGrpcServer, statusError } from './helpers/grpc-servers.js'
import { startServer, type TestServer } from './helpers/servers.js'

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function server(answer: (path: string) => { status: number; headers?: Record<string, string> }) {
  const s = await startServer((req, res) => {
    const a = answer(req.url ?? '/')
    res.writeHead(a.status, a.headers ?? {})
    res.end('x')
  })
  cleanup.push(() => s.close())
  return s
}

function mesh(
  s: TestServer,
  service: MeshConfig['services'][string],
  options: MeshOptions = {},
  extra: Partial<MeshConfig> = {},
) {
  const clock = (options.clock as ManualClock | undefined) ?? new ManualClock()
  const m = createMesh(
    { services: { api: { endpoints: [s.url], ...service } }, ...extra },
    { clock, ...options },
  )
  cleanup.push(() => m.close({ force: true }))
  return { m, clock, fetch2: withMesh(fetch, m) }
}

const settle = <T>(p: Promise<T>) =>
  p.then(
    (v) => v,
    (e: unknown) => e,
  )

describe('quota through withMesh(fetch)', () => {
  it('a 429 with Retry-After: 1 pauses that key for 1 s for every call of the process', async () => {
    let throttle = true
    const s = await server(() =>
      throttle ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 },
    )
    const { clock, fetch2 } = mesh(s, {
      rateLimit: { rate: 1000, key: { header: 'x-tenant' } },
      retry: { attempts: 1 },
    })
    const a = await fetch2('http://api/x', { headers: { 'x-tenant': 'a' } })
    expect(a.status).toBe(429)
    throttle = false
    // The same key, from any caller of the process: refused locally, the server not called.
    const refused = await settle(fetch2('http://api/y', { headers: { 'x-tenant': 'a' } }))
    expect(isMeshError(refused, 'RATE_LIMITED')).toBe(true)
    expect(s.requests).toBe(1)
    // Another key is not paused.
    expect((await fetch2('http://api/z', { headers: { 'x-tenant': 'b' } })).status).toBe(200)
    await clock.advance(999)
    expect(
      isMeshError(await settle(fetch2('http://api/y', { headers: { 'x-tenant': 'a' } })), 'RATE_LIMITED'),
    ).toBe(true)
    await clock.advance(1)
    expect((await fetch2('http://api/y', { headers: { 'x-tenant': 'a' } })).status).toBe(200)
    expect(s.requests).toBe(3)
  })

  it('a 429 with RateLimit-Remaining: 0 and RateLimit-Reset pauses the service', async () => {
    let first = true
    const s = await server(() => {
      if (!first) return { status: 200 }
      first = false
      return { status: 429, headers: { 'ratelimit-remaining': '0', 'ratelimit-reset': '2' } }
    })
    const { clock, fetch2 } = mesh(s, { rateLimit: { rate: 100 }, retry: { attempts: 1 } })
    expect((await fetch2('http://api/')).status).toBe(429)
    expect(isMeshError(await settle(fetch2('http://api/')), 'RATE_LIMITED')).toBe(true)
    await clock.advance(2000)
    expect((await fetch2('http://api/')).status).toBe(200)
  })

  it('a retry takes a token like any call', async () => {
    const s = await server(() => ({ status: 503 }))
    const { fetch2 } = mesh(s, {
      rateLimit: { rate: 2, period: '1m' },
      retry: { attempts: 3, backoff: { base: '0ms', max: '0ms' } },
    })
    const error = await settle(fetch2('http://api/'))
    expect(isMeshError(error, 'RATE_LIMITED')).toBe(true)
    expect(s.requests).toBe(2)
  })

  it('queues a call over the limit until its token comes, within the deadline', async () => {
    const s = await server(() => ({ status: 200 }))
    const { clock, fetch2 } = mesh(s, {
      rateLimit: { rate: 1, period: '1s', action: 'queue' },
      timeout: '5s',
    })
    await fetch2('http://api/')
    const second = fetch2('http://api/')
    await clock.advance(999)
    expect(s.requests).toBe(1)
    await clock.advance(1)
    expect((await second).status).toBe(200)
    expect(s.requests).toBe(2)
  })

  it("answers 429 local_rate_limited under meshErrors: 'respond'", async () => {
    const s = await server(() => ({ status: 200 }))
    const { fetch2 } = mesh(s, { rateLimit: { rate: 1, period: '1m' } }, {}, { meshErrors: 'respond' })
    await fetch2('http://api/')
    const res = await fetch2('http://api/')
    expect(res.status).toBe(429)
    expect(await res.text()).toBe('local_rate_limited')
  })

  it('a global limit shares its tokens and pauses through the store across meshes', async () => {
    const s = await server(() => ({ status: 429, headers: { 'retry-after': '1' } }))
    const clock = new ManualClock()
    const store = new MemoryQuotaStore(clock)
    const one = mesh(
      s,
      { rateLimit: { rate: 100, scope: 'global' }, retry: { attempts: 1 } },
      { clock, quotaStore: store },
    )
    const two = mesh(
      s,
      { rateLimit: { rate: 100, scope: 'global' }, retry: { attempts: 1 } },
      { clock, quotaStore: new ProxyStore(store) },
    )
    expect((await one.fetch2('http://api/')).status).toBe(429)
    await clock.advance(10)
    expect(isMeshError(await settle(two.fetch2('http://api/')), 'RATE_LIMITED')).toBe(true)
    expect(s.requests).toBe(1)
  })

  it('refuses a global limit without a quota store, naming the path', () => {
    expect(() =>
      createMesh({
        services: { api: { endpoints: ['http://127.0.0.1:1'], rateLimit: { rate: 1, scope: 'global' } } },
      }),
    ).toThrow(/services\.api\.rateLimit\.scope/)
  })
})

/** A second process's view of the same store (the mesh closes its store: each gets its own). */
class ProxyStore {
  constructor(readonly inner: MemoryQuotaStore) {}
  take(...a: Parameters<MemoryQuotaStore['take']>) {
    return this.inner.take(...a)
  }
  pause(...a: Parameters<MemoryQuotaStore['pause']>) {
    return this.inner.pause(...a)
  }
  close() {
    return Promise.resolve()
  }
}

describe('quota through a wrapped gRPC client', () => {
  it('RESOURCE_EXHAUSTED with grpc-retry-pushback-ms pauses the service; a refusal is RESOURCE_EXHAUSTED', async () => {
    let throttle = true
    const s = await startGrpcServer({
      Unary: (call, cb) =>
        throttle
          ? cb(statusError(grpc.status.RESOURCE_EXHAUSTED, 'slow down', { 'grpc-retry-pushback-ms': '500' }))
          : cb(null, { text: call.request.text, index: 0, server: 's' }),
    })
    cleanup.push(() => s.close())
    const clock = new ManualClock()
    const m = createMesh(
      {
        services: {
          echo: {
            protocol: 'grpc',
            endpoints: [s.address],
            rateLimit: { rate: 100 },
            retry: { attempts: 1 },
          },
        },
      },
      { clock },
    )
    cleanup.push(() => m.close({ force: true }))
    const c = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
    cleanup.push(() => c.close())
    const call = () =>
      new Promise<{ error?: grpc.ServiceError; reply?: EchoReply }>((resolve) =>
        c.Unary({ text: 'hi' }, (error: grpc.ServiceError | null, reply?: EchoReply) =>
          resolve(error ? { error } : { reply: reply! }),
        ),
      )
    expect((await call()).error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    throttle = false
    const local = await call()
    expect(local.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    expect(local.error?.details).toMatch(/paused by the server/)
    expect(s.calls).toBe(1)
    await clock.advance(500)
    expect((await call()).reply?.text).toBe('hi')
  })
})
