/**
 * The fault suite (issue 23): every way a connection can fail, on real loopback sockets, through
 * `withMesh(fetch)` and, for refused, reset and killed servers, through a wrapped grpc-js client.
 * For each fault it asserts that:
 * - the outcome is typed: a `Response`, a `MeshError` with a documented code, fetch's own
 *   `TypeError` (`fetch failed` before the headers, `terminated` on a body cut short), or a
 *   grpc-js `ServiceError` with a status code;
 * - retries follow the policy, counted where the request lands: an idempotent GET is retried
 *   per `retryOn`, a POST without an `Idempotency-Key` is never sent twice once it may have
 *   reached the server (a refused connection carried nothing, so that one is retried);
 * - nothing leaks: after `mesh.close()` and the servers' close, the process's active resources
 *   (timers, sockets, child processes) are back to what they were before the test.
 *
 * A timeout is observed through a per-try limit of 100 ms (250 ms against a slow body), never a
 * sleep; elsewhere the limit is 2 s, out of reach, so a loaded machine cannot turn a reset into a
 * timeout. Durations are asserted only as loose upper bounds.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { connect } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createMesh,
  errorKind,
  isMeshError,
  type Mesh,
  type MeshConfig,
  MeshError,
  withMesh,
} from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import { activeResources, expectBackToBaseline, startChildServer, startRawServer } from './helpers/faults.js'
import { EchoClient, type EchoReply, startGrpcServer } from './helpers/grpc-servers.js'
import { readBody, startServer, type TestServer, unusedPort, within } from './helpers/servers.js'

const cleanup: Array<() => Promise<void> | void> = []
let baseline: Map<string, number>
beforeEach(() => {
  baseline = activeResources()
})
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** Closes what the test opened, last opened first, then checks that nothing is left. */
async function closeAllAndExpectNoLeak(): Promise<void> {
  for (const fn of cleanup.splice(0).reverse()) await fn()
  await expectBackToBaseline(baseline)
}

async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler)
  cleanup.push(() => s.close())
  return s
}

/**
 * Three tries, quick backoff, a 10 s deadline that no test reaches. The per-try timeout is 2 s,
 * far from any answer, so that a loaded machine cannot turn a reset into a timeout; the tests
 * of slow and silent servers use {@link shortTries}.
 */
const policy = {
  timeout: '10s',
  retry: { attempts: 3, perTryTimeout: 2000, backoff: { base: '1ms', max: '5ms' } },
} as const
/** The policy with 100 ms per try: for servers that never answer in time. */
const shortTries = { retry: { ...policy.retry, perTryTimeout: 100 } } as const

function meshFor(
  endpoints: string[],
  extra: Record<string, unknown> = {},
): {
  f: typeof fetch
  mesh: Mesh
  retries: string[]
} {
  const config: MeshConfig = {
    services: { svc: { endpoints, loadBalancer: 'round-robin', ...policy, ...extra } },
  }
  const mesh = createMesh(config)
  // The mesh is closed gracefully: a call left in flight would make close() hang and fail the test.
  cleanup.push(() => within(mesh.close(), 5000, 'mesh.close()'))
  const retries: string[] = []
  mesh.events.on('retry', (e) => retries.push(errorKind(e.reason)))
  return { f: withMesh(fetch, mesh), mesh, retries }
}

/** The rejection of `p`, or a failure if it resolved. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (value) => {
      throw new Error(`expected a rejection, got ${String(value)}`)
    },
    (error: unknown) => error,
  )
}

/** fetch's error for a network failure before the headers: `TypeError('fetch failed')` with a cause. */
function expectFetchFailed(error: unknown, codes: string[]): void {
  expect(error).toBeInstanceOf(TypeError)
  expect((error as Error).message).toBe('fetch failed')
  expect(codes).toContain(((error as Error).cause as { code?: string } | undefined)?.code)
}

const POST = { method: 'POST', body: 'order-1' } as const

describe('fault suite: withMesh(fetch) on loopback sockets', () => {
  describe('connection refused', () => {
    it('retries a GET and a POST alike (nothing was sent), then rejects with fetch failed / ECONNREFUSED', async () => {
      const dead = await unusedPort()
      const { f, retries } = meshFor([`http://127.0.0.1:${dead}`])
      expectFetchFailed(await rejection(f('http://svc/x')), ['ECONNREFUSED'])
      expect(retries).toEqual(['connect-failure', 'connect-failure'])
      expectFetchFailed(await rejection(f('http://svc/x', POST)), ['ECONNREFUSED'])
      expect(retries).toHaveLength(4)
      await closeAllAndExpectNoLeak()
    })

    it('moves a POST from a refusing endpoint to a live one, which receives it exactly once', async () => {
      const dead = await unusedPort()
      const bodies: string[] = []
      const live = await server(async (req, res) => {
        bodies.push((await readBody(req)).toString())
        res.end('ok')
      })
      const { f, retries } = meshFor([`http://127.0.0.1:${dead}`, live.url])
      for (let i = 0; i < 4; i++) {
        const res = await f('http://svc/x', { method: 'POST', body: `order-${i}` })
        expect(await res.text()).toBe('ok')
      }
      expect(bodies).toEqual(['order-0', 'order-1', 'order-2', 'order-3'])
      // Round-robin sent some of them to the dead endpoint first.
      expect(retries.length).toBeGreaterThan(0)
      expect(retries.every((r) => r === 'connect-failure')).toBe(true)
      await closeAllAndExpectNoLeak()
    })
  })

  describe('reset before the headers', () => {
    const resetting = () =>
      server((req) => {
        req.socket.resetAndDestroy()
      })

    it('retries a GET per policy: the server sees all 3 attempts, the caller gets fetch failed / ECONNRESET', async () => {
      const s = await resetting()
      const { f, retries } = meshFor([s.url])
      expectFetchFailed(await rejection(f('http://svc/x')), ['ECONNRESET', 'UND_ERR_SOCKET'])
      expect(s.requests).toBe(3)
      expect(retries).toEqual(['reset', 'reset'])
      await closeAllAndExpectNoLeak()
    })

    it('recovers a GET whose first attempt was reset', async () => {
      const s = await server((req, res, index) => {
        if (index === 0) req.socket.resetAndDestroy()
        else res.end('ok')
      })
      const { f } = meshFor([s.url])
      expect(await (await f('http://svc/x')).text()).toBe('ok')
      expect(s.requests).toBe(2)
      await closeAllAndExpectNoLeak()
    })

    it('never sends a POST twice: the server sees it once, the caller gets fetch failed', async () => {
      const s = await resetting()
      const { f, retries } = meshFor([s.url])
      expectFetchFailed(await rejection(f('http://svc/x', POST)), ['ECONNRESET', 'UND_ERR_SOCKET'])
      expect(s.requests).toBe(1)
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })

    it("follows the route's retryOn: with only 'connect-failure', a reset GET is sent once", async () => {
      const s = await resetting()
      const { f, retries } = meshFor([s.url], {
        retry: { ...policy.retry, retryOn: ['connect-failure'] },
      })
      expectFetchFailed(await rejection(f('http://svc/x')), ['ECONNRESET', 'UND_ERR_SOCKET'])
      expect(s.requests).toBe(1)
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })

    it('retries a POST that carries an Idempotency-Key, as it would a GET', async () => {
      const s = await resetting()
      const { f } = meshFor([s.url])
      const init = { ...POST, headers: { 'idempotency-key': 'k-1' } }
      expectFetchFailed(await rejection(f('http://svc/x', init)), ['ECONNRESET', 'UND_ERR_SOCKET'])
      expect(s.requests).toBe(3)
      await closeAllAndExpectNoLeak()
    })
  })

  describe('reset in the middle of the body', () => {
    for (const method of ['GET', 'POST'] as const) {
      it(`${method}: the caller gets the Response, its body fails with a TypeError, nothing is retried`, async () => {
        let cut!: () => void
        const s = await server((req, res) => {
          res.writeHead(200, { 'content-length': '1000' })
          res.write('x'.repeat(400))
          cut = () => req.socket.resetAndDestroy()
        })
        const { f, retries } = meshFor([s.url])
        const res = await f('http://svc/x', method === 'GET' ? {} : POST)
        expect(res.status).toBe(200)
        cut()
        const error = await rejection(res.text())
        expect(error).toBeInstanceOf(TypeError)
        expect(isMeshError(error)).toBe(false)
        expect(s.requests).toBe(1)
        expect(retries).toEqual([])
        await closeAllAndExpectNoLeak()
      })
    }
  })

  describe('connection closed after the headers', () => {
    for (const method of ['GET', 'POST'] as const) {
      it(`${method}: the caller gets the Response, its body fails with TypeError('terminated'), sent once`, async () => {
        const s = await server((req, res) => {
          res.writeHead(200, { 'content-length': '1000' })
          res.flushHeaders()
          setImmediate(() => req.socket.end())
        })
        const { f, retries } = meshFor([s.url])
        const res = await f('http://svc/x', method === 'GET' ? {} : POST)
        expect(res.status).toBe(200)
        const error = await rejection(res.text())
        expect(error).toBeInstanceOf(TypeError)
        expect((error as Error).message).toBe('terminated')
        expect(s.requests).toBe(1)
        expect(retries).toEqual([])
        await closeAllAndExpectNoLeak()
      })
    }
  })

  describe('slow headers (beyond the per-try timeout)', () => {
    /** Holds every request, counting those whose connection is still open. */
    const holding = async () => {
      let open = 0
      const s = await server((req) => {
        open++
        req.socket.once('close', () => open--)
      })
      return Object.assign(s, {
        get heldOpen() {
          return open
        },
      })
    }

    it('retries a GET 3 times, 100 ms each, then rejects with TIMEOUT; every held request is closed', async () => {
      const s = await holding()
      const { f, retries } = meshFor([s.url], shortTries)
      const started = performance.now()
      const error = await rejection(f('http://svc/slow'))
      expect(error).toBeInstanceOf(MeshError)
      expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' })
      expect(performance.now() - started).toBeLessThan(3000)
      expect(s.requests).toBe(3)
      expect(retries).toEqual(['timeout', 'timeout'])
      await within(
        (async () => {
          while (s.heldOpen > 0) await new Promise((r) => setTimeout(r, 5))
        })(),
        2000,
        'the server seeing every timed-out request closed',
      )
      await closeAllAndExpectNoLeak()
    })

    it('never retries a POST that timed out: the server sees it once', async () => {
      const s = await holding()
      const { f, retries } = meshFor([s.url], shortTries)
      expect(await rejection(f('http://svc/slow', POST))).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' })
      expect(s.requests).toBe(1)
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })

    it('answers a GET whose first attempt was slow from a later one', async () => {
      const s = await server((_req, res, index) => {
        if (index > 0) res.end('ok')
      })
      const { f, retries } = meshFor([s.url], shortTries)
      expect(await (await f('http://svc/slow')).text()).toBe('ok')
      // Two attempts, unless a loaded machine made the second miss its 100 ms too.
      expect(retries.length).toBeGreaterThanOrEqual(1)
      expect(retries.every((r) => r === 'timeout')).toBe(true)
      expect(s.requests).toBe(1 + retries.length)
      await closeAllAndExpectNoLeak()
    })
  })

  describe('slow body (headers in time, the body later than the per-try timeout)', () => {
    const bodyTries = { retry: { ...policy.retry, perTryTimeout: 250 } } as const
    /** Headers at once, then ten chunks 60 ms apart: 600 ms of body against a 250 ms per-try limit. */
    const trickling = () =>
      server((_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.flushHeaders()
        let n = 0
        const timer = setInterval(() => {
          if (res.destroyed) return clearInterval(timer)
          res.write(`chunk-${n};`)
          if (++n === 10) {
            clearInterval(timer)
            res.end()
          }
        }, 60)
        res.once('close', () => clearInterval(timer))
      })

    it('delivers the whole body: the per-try timeout covers the exchange up to the headers', async () => {
      const s = await trickling()
      const { f, retries } = meshFor([s.url], bodyTries)
      const res = await f('http://svc/body')
      const text = await res.text()
      expect(text).toBe(Array.from({ length: 10 }, (_, i) => `chunk-${i};`).join(''))
      expect(s.requests).toBe(1)
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })

    it("lets the caller's own AbortSignal cut the body, with an AbortError, and closes the connection", async () => {
      const s = await trickling()
      const { f } = meshFor([s.url], bodyTries)
      const controller = new AbortController()
      const res = await f('http://svc/body', { signal: controller.signal })
      const reader = res.body!.getReader()
      await reader.read()
      controller.abort()
      const error = await rejection(reader.read())
      expect((error as Error).name).toBe('AbortError')
      expect(s.requests).toBe(1)
      await closeAllAndExpectNoLeak()
    })
  })

  describe('half-open: the server accepts and never answers', () => {
    it('times out a GET on each of 3 attempts, each on a connection the client then closes', async () => {
      const raw = await startRawServer()
      cleanup.push(() => raw.close())
      const { f, retries } = meshFor([raw.url], shortTries)
      expect(await rejection(f('http://svc/x'))).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' })
      expect(raw.requests).toBe(3)
      expect(retries).toEqual(['timeout', 'timeout'])
      await within(
        (async () => {
          while (raw.openWithRequests > 0) await new Promise((r) => setTimeout(r, 5))
        })(),
        2000,
        'the client closing every half-open connection',
      )
      await closeAllAndExpectNoLeak()
    })

    it('sends a POST once, and times it out', async () => {
      const raw = await startRawServer()
      cleanup.push(() => raw.close())
      const { f, retries } = meshFor([raw.url], shortTries)
      expect(await rejection(f('http://svc/x', POST))).toMatchObject({ code: 'TIMEOUT' })
      expect(raw.methods).toEqual(['POST'])
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })

    it('times out a 4 MB POST to a server that never reads, on one connection, without a retry', async () => {
      const raw = await startRawServer(undefined, { paused: true })
      cleanup.push(() => raw.close())
      const { f, retries } = meshFor([raw.url], shortTries)
      const body = new Uint8Array(4 * 1024 * 1024)
      expect(await rejection(f('http://svc/upload', { method: 'POST', body }))).toMatchObject({
        code: 'TIMEOUT',
      })
      expect(raw.connections).toBe(1)
      expect(retries).toEqual([])
      await closeAllAndExpectNoLeak()
    })
  })

  describe('server killed (SIGKILL) and restarted on the same port', () => {
    it('fails the POST in flight once, refuses while down, and serves again after the restart', async () => {
      const child = await startChildServer('http')
      cleanup.push(() => child.kill())
      const { f, retries } = meshFor([child.url])
      expect(await (await f('http://svc/before')).text()).toBe('ok')

      const inFlight = rejection(f('http://svc/hold', { method: 'POST', body: 'in-flight' }))
      await within(child.waitForReceived(2), 5000, 'the POST reaching the child')
      await child.kill()
      expectFetchFailed(await inFlight, ['ECONNRESET', 'UND_ERR_SOCKET'])

      // Down: every attempt is refused, and the refusals are retried per policy.
      const before = retries.length
      expectFetchFailed(await rejection(f('http://svc/down')), ['ECONNREFUSED'])
      expect(retries.slice(before)).toEqual(['connect-failure', 'connect-failure'])

      await child.restart()
      expect(await (await f('http://svc/after')).text()).toBe('ok')
      // The POST reached the server exactly once, over both lives.
      expect(child.received.filter((r) => r.startsWith('POST'))).toEqual(['POST /hold'])
      expect(child.received).toEqual(['GET /before', 'POST /hold', 'GET /after'])
      await closeAllAndExpectNoLeak()
    })
  })

  describe('stale keep-alive: the server closes a kept-alive socket as the client reuses it', () => {
    /**
     * Answers the first request of each connection; closes the connection, unanswered, when a
     * second request arrives on it: the race of a server's idle timeout with the client's reuse,
     * made certain. Records, per path, how often it arrived and whether on a reused socket.
     */
    const staleServer = async () => {
      const onSocket = new WeakMap<object, number>()
      const seen = new Map<string, { times: number; stale: boolean }>()
      const s = await server((req, res) => {
        const n = onSocket.get(req.socket) ?? 0
        onSocket.set(req.socket, n + 1)
        const key = `${req.method} ${req.url}`
        const entry = seen.get(key) ?? { times: 0, stale: false }
        seen.set(key, { times: entry.times + 1, stale: entry.stale || n > 0 })
        if (n === 0) res.end('ok')
        else req.socket.destroy()
      })
      return Object.assign(s, { seen })
    }

    it('retries each GET that met a stale socket on a new connection; a POST that met one is never resent', async () => {
      const s = await staleServer()
      const { f, retries } = meshFor([s.url])
      // Sequential calls, so that each reuses an idle kept-alive socket whenever the pool has one.
      const outcomes = new Map<string, unknown>()
      for (const [name, init] of [
        ['g1', {}],
        ['g2', {}],
        ['g3', {}],
        ['p1', POST],
        ['p2', POST],
        ['g4', {}],
        ['p3', POST],
      ] as const) {
        outcomes.set(
          name,
          await f(`http://svc/${name}`, init).then(
            (res) => res.text(),
            (error: unknown) => error,
          ),
        )
      }
      let staleGets = 0
      let stalePosts = 0
      for (const [name, outcome] of outcomes) {
        const method = name.startsWith('g') ? 'GET' : 'POST'
        const seen = s.seen.get(`${method} /${name}`)!
        if (method === 'GET') {
          // A GET always succeeds: once, or twice when the first landed on a stale socket.
          expect(outcome).toBe('ok')
          expect(seen.times).toBe(seen.stale ? 2 : 1)
          if (seen.stale) staleGets++
        } else {
          // A POST reached the server once, whatever happened; the caller sees what fetch says.
          expect(seen.times).toBe(1)
          if (seen.stale) {
            stalePosts++
            expectFetchFailed(outcome, ['ECONNRESET', 'UND_ERR_SOCKET'])
          } else expect(outcome).toBe('ok')
        }
      }
      // The sequence meets the race for both methods (undici reuses idle sockets first).
      expect(staleGets).toBeGreaterThan(0)
      expect(stalePosts).toBeGreaterThan(0)
      expect(retries).toEqual(Array.from({ length: staleGets }, () => 'reset'))
      await closeAllAndExpectNoLeak()
    })
  })
})

// --- gRPC ------------------------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

function grpcClient(endpoints: string[]): { c: AnyClient; mesh: Mesh } {
  const mesh = createMesh({
    services: {
      echo: {
        protocol: 'grpc',
        endpoints,
        loadBalancer: 'round-robin',
        timeout: '10s',
        retry: { attempts: 3, perTryTimeout: 5000, backoff: { base: '1ms', max: '5ms' } },
      },
    },
  })
  cleanup.push(() => within(mesh.close(), 5000, 'mesh.close()'))
  const c = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, mesh)
  cleanup.push(() => c.close())
  return { c, mesh }
}

type Result = { error: grpc.ServiceError; reply?: undefined } | { error?: undefined; reply: EchoReply }
const unary = (c: AnyClient, text = 'hi'): Promise<Result> =>
  new Promise((resolve) => {
    c.Unary({ text }, (error: grpc.ServiceError | null, reply?: EchoReply) =>
      resolve(error ? { error } : { reply: reply! }),
    )
  })

describe('fault suite: a wrapped grpc-js client on loopback sockets', () => {
  it('connection refused: UNAVAILABLE from a dead endpoint alone; with a live one, every call succeeds', async () => {
    const dead = `127.0.0.1:${await unusedPort()}`
    const alone = grpcClient([dead])
    const r = await unary(alone.c)
    expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)

    const live = await startGrpcServer()
    cleanup.push(() => live.close())
    const both = grpcClient([dead, live.address])
    for (let i = 0; i < 4; i++) expect((await unary(both.c, `n${i}`)).reply?.text).toBe(`n${i}`)
    expect(live.calls).toBe(4)
    await closeAllAndExpectNoLeak()
  })

  it('connection reset by the server: UNAVAILABLE, typed, and nothing left behind', async () => {
    const raw = await startRawServer((socket) => socket.resetAndDestroy())
    cleanup.push(() => raw.close())
    const { c } = grpcClient([`127.0.0.1:${raw.port}`])
    const r = await unary(c)
    expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)
    expect(raw.connections).toBeGreaterThan(0)
    await closeAllAndExpectNoLeak()
  })

  it('server killed: the call in flight fails UNAVAILABLE having reached it once; after the restart calls succeed', async () => {
    const child = await startChildServer('grpc')
    cleanup.push(() => child.kill())
    const { c } = grpcClient([child.address])
    expect((await unary(c, 'before')).reply?.text).toBe('before')

    const inFlight = unary(c, 'hold')
    await within(child.waitForReceived(2), 5000, 'the call reaching the child')
    await child.kill()
    expect((await inFlight).error?.code).toBe(grpc.status.UNAVAILABLE)
    expect((await unary(c, 'down')).error?.code).toBe(grpc.status.UNAVAILABLE)

    await child.restart()
    // grpc-js reconnects with a backoff (1 s at first): the first calls may still fail fast.
    let after: Result | undefined
    const end = performance.now() + 10_000
    while (performance.now() < end) {
      after = await unary(c, 'after')
      if (after.reply) break
      expect(after.error?.code).toBe(grpc.status.UNAVAILABLE)
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(after?.reply?.text).toBe('after')
    expect(child.received.filter((t) => t === 'hold')).toEqual(['hold'])
    await closeAllAndExpectNoLeak()
  })
})

describe('the leak check of this suite', () => {
  it('notices a timer and a socket left open, and passes once they are gone', async () => {
    const s = await startRawServer()
    const before = activeResources()
    const timer = setInterval(() => {}, 1000)
    const socket = connect(s.port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    await expect(expectBackToBaseline(before, 50)).rejects.toThrow(
      /Timeout: \d+.*TCPSocketWrap: \d+|TCPSocketWrap: \d+.*Timeout: \d+/,
    )
    clearInterval(timer)
    socket.destroy()
    await s.close()
    await expectBackToBaseline(baseline)
  })
})
