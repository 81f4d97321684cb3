/**
 * The fetch adapter against real loopback servers: calls spread over the endpoints; status,
 * headers and body reach the caller unchanged; bodies arrive intact; unknown hosts pass through;
 * retries follow HTTP's rules (idempotency, replayable bodies, refused connections).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, isMeshError, type MeshConfig, MeshError, withMesh } from '../src/index.js'
import { seededRandom } from '../src/testing/index.js'
import { readBody, startServer, type TestServer, unusedPort, within } from './helpers/servers.js'

interface Echo {
  server: string
  method: string
  url: string
  contentType: string | null
  idempotencyKey: string | null
  custom: string | null
  body: string // base64, so that bytes compare exactly
}

/** Answers with its id, a teapot at /teapot, and an echo of the request at /echo. */
function idHandler(id: string) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/teapot') {
      res.writeHead(418, "I'm a teapot", { 'content-type': 'application/json', 'x-test': 'a' })
      res.end(JSON.stringify({ from: id, short: true, stout: true }))
      return
    }
    if (req.url?.startsWith('/echo')) {
      const body = await readBody(req)
      const echo: Echo = {
        server: id,
        method: req.method ?? '',
        url: req.url,
        contentType: req.headers['content-type'] ?? null,
        idempotencyKey: (req.headers['idempotency-key'] as string | undefined) ?? null,
        custom: (req.headers['x-custom'] as string | undefined) ?? null,
        body: body.toString('base64'),
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(echo))
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end(id)
  }
}

/** A server answering 503 to its first request and 200 to the others, keeping each body. */
async function flakyServer(): Promise<TestServer & { bodies: string[] }> {
  const bodies: string[] = []
  const server = await startServer(async (req, res, index) => {
    bodies.push((await readBody(req)).toString('utf8'))
    if (index === 0) {
      res.writeHead(503, { 'content-type': 'text/plain' })
      res.end('unavailable')
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('ok')
    }
  })
  return Object.assign(server, { bodies })
}

const fastRetry = { backoff: { base: '1ms', max: '5ms' } } as const

describe('withMesh(fetch) against real loopback servers', () => {
  let a: TestServer
  let b: TestServer
  let outside: TestServer

  beforeAll(async () => {
    a = await startServer(idHandler('a'))
    b = await startServer(idHandler('b'))
    outside = await startServer(idHandler('outside'))
  })
  afterAll(async () => {
    await Promise.all([a.close(), b.close(), outside.close()])
  })

  const both = (extra: Partial<MeshConfig['services'][string]> = {}): MeshConfig => ({
    services: { svc: { endpoints: [a.url, b.url], ...extra } },
  })

  describe('balancing', () => {
    it('spreads 20 calls 10/10 over two endpoints with round-robin', async () => {
      const mesh = createMesh(both({ loadBalancer: 'round-robin' }))
      const f = withMesh(fetch, mesh)
      const seen: Record<string, number> = {}
      for (let i = 0; i < 20; i++) {
        const res = await f('http://svc/')
        const id = await res.text()
        seen[id] = (seen[id] ?? 0) + 1
      }
      expect(seen).toEqual({ a: 10, b: 10 })
      await mesh.close()
    })

    it('sends calls to both endpoints with the default least-request', async () => {
      const mesh = createMesh(both(), { random: seededRandom(7) })
      expect(mesh.config.services.svc?.loadBalancer).toBe('least-request')
      const f = withMesh(fetch, mesh)
      const seen: Record<string, number> = { a: 0, b: 0 }
      for (let i = 0; i < 20; i++) {
        const id = await (await f('http://svc/')).text()
        seen[id] = (seen[id] ?? 0) + 1
      }
      expect(seen.a).toBeGreaterThan(0)
      expect(seen.b).toBeGreaterThan(0)
      expect(seen.a! + seen.b!).toBe(20)
      await mesh.close()
    })
  })

  describe('responses and bodies pass unchanged', () => {
    it('returns status, statusText, headers and body of a 418 as the server sent them', async () => {
      const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
      const f = withMesh(fetch, mesh)
      const direct = await fetch(`${a.url}/teapot`)
      const viaMesh = await f('http://svc/teapot')
      expect(viaMesh.status).toBe(418)
      expect(viaMesh.statusText).toBe("I'm a teapot")
      expect(viaMesh.ok).toBe(false)
      expect(viaMesh.headers.get('x-test')).toBe('a')
      expect(viaMesh.headers.get('content-type')).toBe('application/json')
      const text = await viaMesh.text()
      expect(text).toBe(JSON.stringify({ from: 'a', short: true, stout: true }))
      expect(text).toBe(await direct.text())
      expect(a.requests).toBeGreaterThanOrEqual(2)
      await mesh.close()
    })

    it('keeps the query string and passes request headers through', async () => {
      const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
      const f = withMesh(fetch, mesh)
      const echo = (await (
        await f('http://svc/echo?x=1&y=%20z', { headers: { 'x-custom': 'yes' } })
      ).json()) as Echo
      expect(echo.url).toBe('/echo?x=1&y=%20z')
      expect(echo.custom).toBe('yes')
      expect(echo.method).toBe('GET')
      await mesh.close()
    })

    const bodies: Array<[string, () => RequestInit]> = [
      ['a string', () => ({ body: 'héllo wörld ✓ \u0000 end' })],
      [
        'a Uint8Array',
        () => ({
          body: Uint8Array.from([0, 1, 2, 127, 128, 254, 255, 0x0d, 0x0a]),
          headers: { 'content-type': 'application/octet-stream' },
        }),
      ],
      ['a Uint8Array without content-type', () => ({ body: Uint8Array.from([9, 8, 7, 0, 255]) })],
      ['URLSearchParams', () => ({ body: new URLSearchParams({ q: 'a b&c', ü: '=' }) })],
    ]
    for (const [name, init] of bodies) {
      it(`delivers a POST with ${name} byte-exact, with the same content-type as bare fetch`, async () => {
        const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
        const f = withMesh(fetch, mesh)
        const direct = (await (await fetch(`${a.url}/echo`, { method: 'POST', ...init() })).json()) as Echo
        const viaMesh = (await (await f('http://svc/echo', { method: 'POST', ...init() })).json()) as Echo
        expect(viaMesh).toEqual(direct)
        expect(viaMesh.method).toBe('POST')
        expect(viaMesh.body.length).toBeGreaterThan(0)
        await mesh.close()
      })
    }

    it('takes a Request object as input, GET and POST', async () => {
      const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
      const f = withMesh(fetch, mesh)

      const get = (await (
        await f(new Request('http://svc/echo?r=1', { headers: { 'x-custom': 'req' } }))
      ).json()) as Echo
      expect(get).toMatchObject({ server: 'a', method: 'GET', url: '/echo?r=1', custom: 'req', body: '' })

      const post = (await (
        await f(
          new Request('http://svc/echo', {
            method: 'POST',
            body: 'from a Request',
            headers: { 'x-custom': 'p' },
          }),
        )
      ).json()) as Echo
      expect(post).toMatchObject({
        server: 'a',
        method: 'POST',
        custom: 'p',
        contentType: 'text/plain;charset=UTF-8',
      })
      expect(Buffer.from(post.body, 'base64').toString('utf8')).toBe('from a Request')
      await mesh.close()
    })
  })

  describe('hosts that name no service', () => {
    it('pass through to the wrapped fetch untouched', async () => {
      const mesh = createMesh(both())
      const calls: Array<[unknown, unknown]> = []
      const spy = ((input: string | URL | Request, init?: RequestInit) => {
        calls.push([input, init])
        return fetch(input, init)
      }) as typeof fetch
      const f = withMesh(spy, mesh)
      const before = { a: a.requests, b: b.requests, outside: outside.requests }
      const init: RequestInit = { method: 'POST', body: 'direct', headers: { 'x-custom': 'through' } }
      const url = `${outside.url}/echo?pass=1`
      const echo = (await (await f(url, init)).json()) as Echo
      expect(echo).toMatchObject({
        server: 'outside',
        method: 'POST',
        url: '/echo?pass=1',
        custom: 'through',
      })
      expect(Buffer.from(echo.body, 'base64').toString()).toBe('direct')
      expect(calls).toHaveLength(1)
      expect(calls[0]![0]).toBe(url)
      expect(calls[0]![1]).toBe(init)
      expect(outside.requests).toBe(before.outside + 1)
      expect({ a: a.requests, b: b.requests }).toEqual({ a: before.a, b: before.b })
      expect(mesh.inflight).toBe(0)
      await mesh.close()
    })

    it('are refused with UNKNOWN_SERVICE when the mesh is strict, and nothing is sent', async () => {
      const mesh = createMesh({ strict: true, services: { svc: { endpoints: [a.url] } } })
      let called = 0
      const spy = ((input: string | URL | Request, init?: RequestInit) => {
        called++
        return fetch(input, init)
      }) as typeof fetch
      const f = withMesh(spy, mesh)
      const before = outside.requests
      const error = await f(`${outside.url}/`).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(MeshError)
      expect((error as MeshError).code).toBe('UNKNOWN_SERVICE')
      expect(called).toBe(0)
      expect(outside.requests).toBe(before)
      await mesh.close()
    })
  })

  describe('retries', () => {
    it('retries a GET that got a 503: the server sees 2 requests, the caller gets the 200', async () => {
      const flaky = await flakyServer()
      const mesh = createMesh({ services: { svc: { endpoints: [flaky.url], retry: fastRetry } } })
      const f = withMesh(fetch, mesh)
      const res = await f('http://svc/x')
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('ok')
      expect(flaky.requests).toBe(2)
      await mesh.close()
      await flaky.close()
    })

    it('does not retry a POST without Idempotency-Key: the caller gets the 503, the server saw 1', async () => {
      const flaky = await flakyServer()
      const mesh = createMesh({ services: { svc: { endpoints: [flaky.url], retry: fastRetry } } })
      const f = withMesh(fetch, mesh)
      const res = await f('http://svc/x', { method: 'POST', body: 'once' })
      expect(res.status).toBe(503)
      expect(await res.text()).toBe('unavailable')
      expect(flaky.requests).toBe(1)
      expect(flaky.bodies).toEqual(['once'])
      await mesh.close()
      await flaky.close()
    })

    it('retries a POST that carries an Idempotency-Key, sending the same body again', async () => {
      const flaky = await flakyServer()
      const mesh = createMesh({ services: { svc: { endpoints: [flaky.url], retry: fastRetry } } })
      const f = withMesh(fetch, mesh)
      const res = await f('http://svc/x', {
        method: 'POST',
        body: 'twice',
        headers: { 'Idempotency-Key': 'k-1' },
      })
      expect(res.status).toBe(200)
      expect(flaky.requests).toBe(2)
      expect(flaky.bodies).toEqual(['twice', 'twice'])
      await mesh.close()
      await flaky.close()
    })

    it('never retries a POST whose body is a ReadableStream, and the body arrives intact', async () => {
      const flaky = await flakyServer()
      const mesh = createMesh({ services: { svc: { endpoints: [flaky.url], retry: fastRetry } } })
      const f = withMesh(fetch, mesh)
      const encoder = new TextEncoder()
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(encoder.encode('chunk-1;'))
          controller.enqueue(encoder.encode('chunk-2;'))
          controller.enqueue(encoder.encode('end'))
          controller.close()
        },
      })
      // An Idempotency-Key makes it retryable by method: only the stream stops the retry.
      const init = { method: 'POST', body, duplex: 'half', headers: { 'Idempotency-Key': 'k-2' } }
      const res = await f('http://svc/x', init as RequestInit)
      expect(res.status).toBe(503)
      await res.text()
      expect(flaky.requests).toBe(1)
      expect(flaky.bodies).toEqual(['chunk-1;chunk-2;end'])
      await mesh.close()
      await flaky.close()
    })

    it('retries a refused connection on the other endpoint, even for a POST (nothing was sent)', async () => {
      const dead = await unusedPort()
      const mesh = createMesh({
        services: {
          svc: {
            endpoints: [`http://127.0.0.1:${dead}`, a.url],
            loadBalancer: 'round-robin',
            retry: fastRetry,
          },
        },
      })
      const retries: unknown[] = []
      mesh.events.on('retry', (e) => retries.push(e.reason))
      const f = withMesh(fetch, mesh)
      const before = a.requests
      const res = await f('http://svc/echo', { method: 'POST', body: 'refused first' })
      expect(res.status).toBe(200)
      const echo = (await res.json()) as Echo
      expect(echo.server).toBe('a')
      expect(Buffer.from(echo.body, 'base64').toString()).toBe('refused first')
      expect(a.requests).toBe(before + 1)
      expect(retries).toHaveLength(1)
      await mesh.close()
    })
  })

  describe('cancellation by the caller', () => {
    it('rejects at once with an AbortError and closes the upstream socket', async () => {
      let arrived!: () => void
      const requestArrived = new Promise<void>((resolve) => {
        arrived = resolve
      })
      let socketClosed!: () => void
      const closedServerSide = new Promise<void>((resolve) => {
        socketClosed = resolve
      })
      const held = await startServer((req) => {
        req.socket.once('close', socketClosed)
        arrived() // and never answer
      })
      const mesh = createMesh({ services: { svc: { endpoints: [held.url] } } })
      const f = withMesh(fetch, mesh)
      const controller = new AbortController()
      const call = f('http://svc/hold', { signal: controller.signal })
      const outcome = call.then(
        () => 'resolved',
        (e: unknown) => e,
      )
      await within(requestArrived, 5000, 'request reaching the server')
      const t0 = performance.now()
      controller.abort()
      const error = await within(outcome, 1000, 'rejection after abort')
      expect(performance.now() - t0).toBeLessThan(200)
      expect(error).toBeInstanceOf(Error)
      expect((error as Error).name).toBe('AbortError')
      expect(isMeshError(error)).toBe(false)
      await within(closedServerSide, 2000, 'server seeing the socket close')
      expect(held.requests).toBe(1)
      await mesh.close()
      expect(mesh.inflight).toBe(0)
      await held.close()
    })
  })
})
