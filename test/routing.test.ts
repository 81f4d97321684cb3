/**
 * Routing, canary splits, fault injection and live configuration, on the manual clock with a
 * seeded random (statistics are exact for a seed) and against real loopback servers where the
 * network matters (mirroring, updates under load).
 */
import { describe, expect, it } from 'vitest'
import {
  type Context,
  createMesh,
  ENDPOINT,
  type HttpRequest,
  type MeshConfig,
  withMesh,
} from '../src/index.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'
import { startServer, within } from './helpers/servers.js'

const reviews = {
  endpoints: [
    { url: 'http://10.1.0.1:9080', labels: { version: 'v1' } },
    { url: 'http://10.1.0.2:9080', labels: { version: 'v2' } },
    { url: 'http://10.1.0.3:9080', labels: { version: 'v3' } },
  ],
  subsets: { v1: { version: 'v1' }, v2: { version: 'v2' }, v3: { version: 'v3' } },
}

/** A mesh on virtual time whose transport records the version label of each attempt's endpoint. */
function virtual(
  config: MeshConfig,
  respond: (req: HttpRequest, ctx: Context) => Response | Promise<Response> = () => new Response('ok'),
) {
  const clock = new ManualClock()
  const versions: string[] = []
  const paths: string[] = []
  const headers: Headers[] = []
  const transport = async (req: HttpRequest, ctx: Context) => {
    versions.push(ctx.get(ENDPOINT)!.labels.version ?? '?')
    paths.push(req.path)
    headers.push(new Headers(req.init.headers))
    return respond(req, ctx)
  }
  const mesh = createMesh(config, { clock, random: seededRandom(42), httpTransport: transport })
  return { clock, mesh, f: withMesh(fetch, mesh), versions, paths, headers }
}

const share = (xs: string[], v: string) => xs.filter((x) => x === v).length / xs.length

describe('routing and canary splits', () => {
  it('a 90/10 split over 10,000 seeded calls lands within +-1.5%', async () => {
    const { f, versions, mesh } = virtual({
      services: { reviews },
      routes: [
        {
          route: [
            { service: 'reviews', subset: 'v1', weight: 90 },
            { service: 'reviews', subset: 'v2', weight: 10 },
          ],
        },
      ],
    })
    for (let i = 0; i < 10_000; i++) await f('http://reviews/reviews/1')
    expect(Math.abs(share(versions, 'v1') - 0.9)).toBeLessThan(0.015)
    expect(Math.abs(share(versions, 'v2') - 0.1)).toBeLessThan(0.015)
    expect(share(versions, 'v3')).toBe(0)
    await mesh.close()
  })

  it('a header rule routes every matching call, the next rule the rest (first match wins)', async () => {
    const { f, versions, mesh } = virtual({
      services: { reviews },
      routes: [
        {
          match: [{ headers: { 'end-user': { exact: 'jason' } } }],
          route: [{ service: 'reviews', subset: 'v2' }],
        },
        { route: [{ service: 'reviews', subset: 'v3' }] },
      ],
    })
    for (let i = 0; i < 200; i++) await f('http://reviews/r', { headers: { 'end-user': 'jason' } })
    expect(share(versions, 'v2')).toBe(1)
    versions.length = 0
    for (let i = 0; i < 200; i++) await f('http://reviews/r', { headers: { 'end-user': 'json' } })
    expect(share(versions, 'v3')).toBe(1)
    await mesh.close()
  })

  it('sticky splits keep every key on one side', async () => {
    const { f, versions, mesh } = virtual({
      services: { reviews },
      routes: [
        {
          sticky: { header: 'x-user' },
          route: [
            { service: 'reviews', subset: 'v1', weight: 50 },
            { service: 'reviews', subset: 'v2', weight: 50 },
          ],
        },
      ],
    })
    const sides = new Map<string, Set<string>>()
    for (let round = 0; round < 5; round++) {
      for (let u = 0; u < 200; u++) {
        versions.length = 0
        await f('http://reviews/r', { headers: { 'x-user': `user-${u}` } })
        const set = sides.get(`user-${u}`) ?? new Set()
        set.add(versions[0]!)
        sides.set(`user-${u}`, set)
      }
    }
    for (const set of sides.values()) expect(set.size).toBe(1)
    const onV1 = [...sides.values()].filter((s) => s.has('v1')).length
    expect(onV1).toBeGreaterThan(70)
    expect(onV1).toBeLessThan(130)
    await mesh.close()
  })

  it('matches paths (prefix, template), methods and query; rewrites the prefix and headers', async () => {
    const { f, versions, paths, headers, mesh } = virtual({
      services: { reviews },
      routes: [
        {
          match: [{ path: { template: '/users/{id}/orders' }, methods: ['POST'] }],
          route: [{ service: 'reviews', subset: 'v3' }],
        },
        {
          match: [{ path: { prefix: '/api/v1/' } }],
          rewrite: { prefix: '/v1/' },
          requestHeaders: { set: { 'x-routed': 'yes' }, add: {}, remove: ['x-drop'] },
          responseHeaders: { set: { 'x-route': 'api' }, add: {}, remove: [] },
          route: [{ service: 'reviews', subset: 'v1' }],
        },
        { match: [{ query: { beta: { present: true } } }], route: [{ service: 'reviews', subset: 'v2' }] },
      ],
    })
    await f('http://reviews/users/42/orders', { method: 'POST', body: 'x' })
    const res = await f('http://reviews/api/v1/items?x=1', { headers: { 'x-drop': '1', 'x-keep': '2' } })
    await f('http://reviews/other?beta=1')
    expect(versions).toEqual(['v3', 'v1', 'v2'])
    expect(paths[1]).toBe('/v1/items?x=1')
    expect(headers[1]!.get('x-routed')).toBe('yes')
    expect(headers[1]!.get('x-drop')).toBeNull()
    expect(headers[1]!.get('x-keep')).toBe('2')
    expect(res.headers.get('x-route')).toBe('api')
    // A call no rule matches goes to its host's own service (all its endpoints).
    versions.length = 0
    await f('http://reviews/users/42/orders')
    expect(versions).toHaveLength(1)
    await mesh.close()
  })
})

describe('fault injection', () => {
  it('aborts 5% of 10,000 seeded calls with 503 (+-1%), never retried at call scope', async () => {
    const { f, versions, mesh } = virtual({
      services: { reviews },
      routes: [{ route: [{ service: 'reviews' }], fault: { abort: { percent: 5, status: 503 } } }],
    })
    let aborted = 0
    for (let i = 0; i < 10_000; i++) {
      const res = await f('http://reviews/r')
      if (res.status === 503) {
        aborted++
        expect(res.headers.get('x-meshlet-fault')).toBe('abort')
      }
    }
    expect(Math.abs(aborted / 10_000 - 0.05)).toBeLessThan(0.01)
    // Aborted calls never reached an endpoint, and were not retried.
    expect(versions).toHaveLength(10_000 - aborted)
    await mesh.close()
  })

  it('an injected 100 ms delay is observed on the manual clock', async () => {
    const { clock, f, versions, mesh } = virtual({
      services: { reviews },
      routes: [{ route: [{ service: 'reviews' }], fault: { delay: { percent: 100, duration: '100ms' } } }],
    })
    const call = f('http://reviews/r')
    await clock.advance(99)
    expect(versions).toHaveLength(0)
    await clock.advance(1)
    expect((await call).status).toBe(200)
    expect(versions).toHaveLength(1)
    await mesh.close()
  })

  it("an injected delay does not eat the call's timeout: the call starts when the delay ends", async () => {
    const seen: Array<{ startedAt: number; deadline: number }> = []
    const { clock, f, mesh } = virtual(
      {
        services: { reviews: { ...reviews, timeout: '200ms' } },
        routes: [{ route: [{ service: 'reviews' }], fault: { delay: { percent: 100, duration: '150ms' } } }],
      },
      (_req, ctx) => {
        seen.push({ startedAt: ctx.startedAt, deadline: ctx.deadline })
        return new Response('ok')
      },
    )
    await clock.advance(1000)
    const call = f('http://reviews/r')
    await clock.advance(150)
    expect((await call).status).toBe(200)
    expect(seen).toEqual([{ startedAt: 1150, deadline: 1350 }])
    await mesh.close()
  })

  it('attempt-scoped aborts are retried (and reach the endpoint after); call-scoped ones are not', async () => {
    const run = async (scope: 'call' | 'attempt') => {
      const { clock, f, versions, mesh } = virtual({
        services: { reviews: { ...reviews, retry: { attempts: 3, budget: { kind: 'none' } } } },
        routes: [{ route: [{ service: 'reviews' }], fault: { abort: { percent: 50, status: 503 }, scope } }],
      })
      let ok = 0
      for (let i = 0; i < 400; i++) {
        const call = f('http://reviews/r')
        await clock.advance(5000)
        if ((await call).status === 200) ok++
      }
      await mesh.close()
      return { ok, attempts: versions.length }
    }
    const call = await run('call')
    const attempt = await run('attempt')
    expect(call.ok / 400).toBeLessThan(0.6) // ~50% aborted, none retried
    expect(attempt.ok / 400).toBeGreaterThan(0.85) // 1 - 0.5^3 = 87.5%
  })

  it('header-triggered faults only when the route allows them', async () => {
    const on = virtual({
      services: { reviews },
      routes: [{ route: [{ service: 'reviews' }], fault: { headers: true } }],
    })
    const off = virtual({ services: { reviews }, routes: [{ route: [{ service: 'reviews' }] }] })
    const h = { 'x-envoy-fault-abort-request': '418' }
    expect((await on.f('http://reviews/r', { headers: h })).status).toBe(418)
    expect((await off.f('http://reviews/r', { headers: h })).status).toBe(200)
    await on.mesh.close()
    await off.mesh.close()
  })
})

describe('per-route policy', () => {
  it('a route overrides the destination timeout and retry attempts', async () => {
    let attempts = 0
    const { clock, f, mesh } = virtual(
      {
        services: { reviews: { ...reviews, timeout: '10s', retry: { attempts: 1 } } },
        routes: [
          { match: [{ path: { prefix: '/fast' } }], timeout: '100ms', route: [{ service: 'reviews' }] },
          {
            match: [{ path: { prefix: '/retry' } }],
            retry: { attempts: 3 },
            route: [{ service: 'reviews' }],
          },
        ],
      },
      (req, ctx) => {
        if (req.path.startsWith('/fast')) return new Promise((_, reject) => ctx.cancel.onAbort(reject))
        attempts++
        return new Response(null, { status: 503 })
      },
    )
    const stalled = f('http://reviews/fast').catch((e: unknown) => e)
    await clock.advance(100)
    expect(await stalled).toMatchObject({ code: 'TIMEOUT', scope: 'call' })
    const retried = f('http://reviews/retry')
    await clock.advance(5000)
    expect((await retried).status).toBe(503)
    expect(attempts).toBe(3)
    attempts = 0
    const plain = f('http://reviews/other')
    await clock.advance(5000)
    expect((await plain).status).toBe(503)
    expect(attempts).toBe(1)
    await mesh.close()
  })
})

describe('mirroring against real servers', () => {
  it('a mirror that never answers leaves the main call latency unchanged', async () => {
    const main = await startServer((_req, res) => {
      res.end('main')
    })
    let mirrored = 0
    const shadow = await startServer(() => {
      mirrored++ // never answers
    })
    const config = (mirror: boolean): MeshConfig => ({
      services: { api: { endpoints: [main.url] }, shadow: { endpoints: [shadow.url], timeout: '30s' } },
      routes: [
        { route: [{ service: 'api' }], ...(mirror ? { mirror: { service: 'shadow', percent: 100 } } : {}) },
      ],
    })
    const time = async (f: typeof fetch) => {
      const t = performance.now()
      for (let i = 0; i < 50; i++) expect(await (await f('http://api/x')).text()).toBe('main')
      return (performance.now() - t) / 50
    }
    const plain = createMesh(config(false))
    const withMirror = createMesh(config(true))
    await time(withMesh(fetch, plain)) // warm up
    const without = await time(withMesh(fetch, plain))
    const mirroredTime = await time(withMesh(fetch, withMirror))
    // The copies are fire-and-forget: the last ones may still be on their way.
    for (let i = 0; i < 200 && mirrored < 50; i++) await new Promise((r) => setTimeout(r, 10))
    expect(mirrored).toBe(50)
    // The main call does not wait for the mirror: same order of latency (generous for CI noise).
    expect(mirroredTime).toBeLessThan(without * 3 + 5)
    await plain.close()
    await withMirror.close({ force: true })
    await main.close()
    await shadow.close()
  })
})

describe('live configuration under load', () => {
  it('100 updates while 1,000 loopback calls are in flight: none fails, each uses one configuration', async () => {
    const held: Array<() => void> = []
    const servers = await Promise.all(
      ['a', 'b'].map((name) =>
        startServer((req, res) => {
          held.push(() => res.end(`${name}:${req.headers['x-config'] ?? '-'}`))
        }),
      ),
    )
    const configFor = (n: number): MeshConfig => ({
      services: { api: { endpoints: [servers[n % 2]!.url], timeout: '30s' } },
      routes: [
        {
          route: [{ service: 'api' }],
          requestHeaders: { set: { 'x-config': String(n) }, add: {}, remove: [] },
        },
      ],
    })
    const mesh = createMesh(configFor(0))
    const f = withMesh(fetch, mesh)
    const calls: Array<Promise<{ n: number; body: string }>> = []
    for (let i = 0; i < 1000; i++) {
      const n = Math.floor(i / 10)
      if (i % 10 === 0 && n > 0) mesh.update(configFor(n))
      calls.push(f('http://api/x').then(async (r) => ({ n, body: await r.text() })))
    }
    while (held.length < 1000) await new Promise((r) => setTimeout(r, 5))
    for (const release of held.splice(0)) release()
    const results = await within(Promise.all(calls), 20_000, 'the 1,000 calls')
    for (const { n, body } of results) {
      // The server and the header both come from the configuration the call started with.
      expect(body).toBe(`${n % 2 === 0 ? 'a' : 'b'}:${n}`)
    }
    await mesh.close()
    for (const s of servers) await s.close()
  })
})
