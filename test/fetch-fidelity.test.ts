/**
 * A wrapped fetch does what its caller asked, or refuses with a typed error (#22, #23): the
 * scheme is honoured (an `https` call never goes out in plaintext), one listener per shared
 * signal, nothing thrown synchronously, cookies read as octets, the authority on the wire, and
 * mesh-made failures answered as Envoy's responses when the config asks for it. Against real
 * loopback servers.
 */
import { getEventListeners } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  createMesh,
  isMeshError,
  type Mesh,
  type MeshConfig,
  TlsRequiredError,
  withMesh,
} from '../src/index.js'
import { startServer, type TestServer, unusedPort } from './helpers/servers.js'

let server: TestServer
let seen: { url: string; headers: IncomingHttpHeaders }[] = []
const meshes: Mesh[] = []

beforeAll(async () => {
  server = await startServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers })
    if (req.url === '/moved') {
      res.writeHead(302, { location: '/landed' })
      res.end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(`host ${req.headers.host}`)
  })
})
afterAll(() => server.close())
afterEach(async () => {
  seen = []
  await Promise.all(meshes.splice(0).map((m) => m.close()))
})

function meshed(config: MeshConfig, options?: { directFetch?: boolean }) {
  const mesh = createMesh(config, options)
  meshes.push(mesh)
  return withMesh(fetch, mesh)
}

describe('the scheme the caller asked for', () => {
  it('refuses an https call to plaintext endpoints with TLS_REQUIRED, sending nothing', async () => {
    const f = meshed({ services: { users: { endpoints: [server.url] } } })
    const error = await f('https://users/x').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TlsRequiredError)
    expect(isMeshError(error, 'TLS_REQUIRED')).toBe(true)
    expect((error as TlsRequiredError).endpoint).toBe(server.url)
    expect(seen).toHaveLength(0)
    // Not held against the endpoint: a plaintext call still goes through.
    expect((await f('http://users/x')).status).toBe(200)
  })

  it('sends an http call to an https endpoint (the endpoint chose TLS)', async () => {
    const origins: string[] = []
    const dispatcher = {
      dispatch(options: { origin: unknown }, handler: { onError(e: unknown): void }) {
        origins.push(String(options.origin))
        handler.onError(new Error('no TLS server here'))
        return true
      },
    }
    const f = meshed({
      services: { users: { endpoints: ['https://127.0.0.1:9443'], retry: { attempts: 1 } } },
    })
    await f('http://users/x', { dispatcher } as RequestInit).catch(() => {})
    expect(origins).toEqual(['https://127.0.0.1:9443'])
  })
})

describe('one abort listener per shared signal', () => {
  for (const directFetch of [true, false]) {
    it(`100 concurrent calls on one signal print no MaxListenersExceededWarning (directFetch: ${directFetch})`, async () => {
      const warnings: Error[] = []
      const onWarning = (w: Error) => warnings.push(w)
      process.on('warning', onWarning)
      try {
        const f = meshed({ services: { users: { endpoints: [server.url] } } }, { directFetch })
        const controller = new AbortController()
        // Warm up the shapes, so that both the first (verified) and the direct calls run.
        await (await f('http://users/warm', { signal: controller.signal })).text()
        const calls = Array.from({ length: 100 }, () =>
          f('http://users/x', { signal: controller.signal }).then((r) => r.text()),
        )
        expect(getEventListeners(controller.signal, 'abort').length).toBeLessThanOrEqual(2)
        await Promise.all(calls)
        await new Promise((resolve) => setImmediate(resolve))
        expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([])
        // The one listener of the mesh (answers whose bodies are still linked, until collected).
        expect(getEventListeners(controller.signal, 'abort').length).toBeLessThanOrEqual(1)
      } finally {
        process.off('warning', onWarning)
      }
    })
  }

  it('aborting the shared signal aborts every call in flight', async () => {
    const hold = await startServer(() => {}) // never answers
    try {
      const f = meshed({ services: { users: { endpoints: [hold.url], retry: { attempts: 1 } } } })
      const controller = new AbortController()
      const calls = Array.from({ length: 20 }, () =>
        f('http://users/x', { signal: controller.signal }).catch((e: unknown) => e),
      )
      // Every call in flight: the server holds all of them.
      while (hold.requests < 20) await new Promise((resolve) => setImmediate(resolve))
      const reason = new Error('stop')
      controller.abort(reason)
      expect(await Promise.all(calls)).toEqual(Array(20).fill(reason))
    } finally {
      await hold.close()
    }
  })
})

describe('nothing in the call path throws synchronously', () => {
  it('a caller header with CR LF meeting a route with header operations rejects', async () => {
    const f = meshed({
      services: { users: { endpoints: [server.url] } },
      routes: [
        {
          match: [{ path: { prefix: '/' } }],
          route: [{ service: 'users' }],
          requestHeaders: { set: { 'x-a': '1' } },
        },
      ],
    })
    let call: Promise<Response> | undefined
    expect(() => {
      call = f('http://users/x', { headers: [['x-b', 'a\r\nb']] })
    }).not.toThrow()
    await expect(call).rejects.toThrow(TypeError)
    expect(seen).toHaveLength(0)
  })

  it('a toString that throws rejects with its error', async () => {
    const f = meshed({ services: { users: { endpoints: [server.url] } } })
    const boom = new Error('boom')
    const call = f({
      toString() {
        throw boom
      },
    } as unknown as string)
    await expect(call).rejects.toBe(boom)
  })

  it('evil.example\\@users is routed by the host the parser reads, never to users', async () => {
    const calls: string[] = []
    const stub = ((input: string) => {
      calls.push(String(input))
      return Promise.resolve(new Response('stub'))
    }) as typeof fetch
    const mesh = createMesh({ services: { users: { endpoints: [server.url] } } })
    meshes.push(mesh)
    await withMesh(stub, mesh)('http://evil.example\\@users/x')
    expect(calls).toEqual(['http://evil.example\\@users/x']) // passed through, untouched
    expect(seen).toHaveLength(0)
  })
})

describe('Request inputs', () => {
  it('an idempotent Request with a body answered 503 is sent once, never retried (D10)', async () => {
    const bodies: string[] = []
    const failing = await startServer(async (req, res) => {
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      bodies.push(Buffer.concat(chunks).toString())
      res.writeHead(503)
      res.end()
    })
    try {
      const f = meshed({
        services: {
          users: { endpoints: [failing.url], retry: { attempts: 3, backoff: { base: '1ms', max: '1ms' } } },
        },
      })
      const res = await f(new Request('http://users/x', { method: 'PUT', body: 'once' }))
      expect(res.status).toBe(503)
      expect(res.url).toBe('http://users/x')
      expect(bodies).toEqual(['once'])
      // The same call with the body in init is replayable, and retried.
      await (await f('http://users/x', { method: 'PUT', body: 'again' })).arrayBuffer()
      expect(bodies).toEqual(['once', 'again', 'again', 'again'])
    } finally {
      await failing.close()
    }
  })
})

describe('URLs with credentials', () => {
  it("are refused with fetch's TypeError for a service, routed or not, and never sent", async () => {
    for (const routes of [[], [{ match: [{ path: { prefix: '/' } }], route: [{ service: 'users' }] }]]) {
      const f = meshed({ services: { users: { endpoints: [server.url] } }, routes })
      await expect(f('http://user:pw@users/x')).rejects.toThrow(
        new TypeError(
          'Request cannot be constructed from a URL that includes credentials: http://user:pw@users/x',
        ),
      )
    }
    expect(seen).toHaveLength(0)
  })

  it('pass through to the wrapped fetch for a host the mesh does not claim', async () => {
    const calls: string[] = []
    const stub = ((input: string) => {
      calls.push(input)
      return Promise.resolve(new Response('stub'))
    }) as typeof fetch
    for (const routes of [[], [{ match: [{ path: { prefix: '/only' } }], route: [{ service: 'users' }] }]]) {
      const mesh = createMesh({ services: { users: { endpoints: [server.url] } }, routes })
      meshes.push(mesh)
      expect(await (await withMesh(stub, mesh)('http://user:pw@elsewhere/x')).text()).toBe('stub')
    }
    expect(calls).toEqual(['http://user:pw@elsewhere/x', 'http://user:pw@elsewhere/x'])
  })
})

describe('cookies', () => {
  it.each<[string, MeshConfig['routes']]>([
    [
      'sticky cookie',
      [
        {
          match: [{ path: { prefix: '/' } }],
          route: [
            { service: 'users', weight: 50 },
            { service: 'users', weight: 50 },
          ],
          sticky: { cookie: 'session' },
        },
      ],
    ],
    ['ring-hash cookie', []],
  ])('a %s with a %% in another cookie value routes the call (no URIError)', async (_name, routes) => {
    const f = meshed({
      services: {
        users: {
          endpoints: [server.url],
          ...(routes!.length === 0
            ? { loadBalancer: 'ring-hash' as const, hashKey: { cookie: 'session' } }
            : {}),
        },
      },
      routes,
    })
    const res = await f('http://users/x', { headers: { cookie: 'session=abc; promo=50%off' } })
    expect(res.status).toBe(200)
  })
})

describe('the authority on the wire', () => {
  it('sends the endpoint address as Host by default, as fetch does', async () => {
    const f = meshed({ services: { users: { endpoints: [server.url] } } })
    expect(await (await f('http://users/x')).text()).toBe(`host 127.0.0.1:${server.port}`)
  })

  for (const directFetch of [true, false]) {
    it(`sends the service's authority as Host on every path (directFetch: ${directFetch})`, async () => {
      const f = meshed(
        { services: { reviews: { endpoints: [server.url], authority: 'reviews:9080' } } },
        { directFetch },
      )
      for (let i = 0; i < 3; i++) expect(await (await f('http://reviews/x')).text()).toBe('host reviews:9080')
      expect(await (await f('http://reviews/x', { method: 'POST', body: 'b' })).text()).toBe(
        'host reviews:9080',
      )
      expect(await (await f(new Request('http://reviews/x', { method: 'POST', body: 'b' }))).text()).toBe(
        'host reviews:9080',
      )
      // A redirect's next hop to the endpoint carries it too.
      expect(await (await f('http://reviews/moved')).text()).toBe('host reviews:9080')
    })
  }

  it("sends a route's rewrite.host as Host, over the service's authority", async () => {
    const f = meshed({
      services: { reviews: { endpoints: [server.url], authority: 'reviews:9080' } },
      routes: [
        {
          match: [{ path: { prefix: '/v2' } }],
          route: [{ service: 'reviews' }],
          rewrite: { host: 'reviews-v2.internal' },
        },
      ],
    })
    expect(await (await f('http://reviews/v2/x')).text()).toBe('host reviews-v2.internal')
    expect(await (await f('http://reviews/v1/x')).text()).toBe('host reviews:9080')
  })

  it('refuses an authority that is not host[:port]', () => {
    expect(() => createMesh({ services: { a: { endpoints: [server.url], authority: 'a b\r\n' } } })).toThrow(
      /services\.a\.authority/,
    )
  })
})

describe("meshErrors: 'respond' answers mesh-made failures as an Envoy sidecar does", () => {
  it('a connection failure: 503 upstream connect error, with the caller URL', async () => {
    const port = await unusedPort()
    const f = meshed({
      meshErrors: 'respond',
      services: { users: { endpoints: [`http://127.0.0.1:${port}`], retry: { attempts: 1 } } },
    })
    const res = await f('http://users/x')
    expect(res.status).toBe(503)
    expect(res.headers.get('content-type')).toBe('text/plain')
    expect(await res.text()).toBe(
      'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
    )
    expect(res.url).toBe('http://users/x')
  })

  it('an open breaker: 503 with x-envoy-overloaded', async () => {
    const port = await unusedPort()
    const f = meshed({
      meshErrors: 'respond',
      services: {
        users: {
          endpoints: [`http://127.0.0.1:${port}`],
          retry: { attempts: 1 },
          circuitBreaker: { consecutiveFailures: 1, halfOpenAfter: '1m' },
        },
      },
    })
    await (await f('http://users/x')).text()
    const res = await f('http://users/x')
    expect(res.status).toBe(503)
    expect(res.headers.get('x-envoy-overloaded')).toBe('true')
    expect(await res.text()).toBe(
      'upstream connect error or disconnect/reset before headers. reset reason: overflow',
    )
  })

  it("still rejects what Envoy would not answer: the caller's abort, a bad input", async () => {
    const f = meshed({ meshErrors: 'respond', services: { users: { endpoints: [server.url] } } })
    const reason = new Error('mine')
    await expect(f('http://users/x', { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    await expect(f('http://users/x', { method: 'GET', body: 'x' })).rejects.toThrow(TypeError)
    await expect(f('https://users/x')).rejects.toThrow(TlsRequiredError)
  })

  it("rejects by default ('reject')", async () => {
    const port = await unusedPort()
    const f = meshed({
      services: { users: { endpoints: [`http://127.0.0.1:${port}`], retry: { attempts: 1 } } },
    })
    await expect(f('http://users/x')).rejects.toThrow('fetch failed')
  })
})
