/**
 * The fetch transport's cheap path against real loopback servers: once the wrapped fetch is
 * seen to send through `init.dispatcher` (Node's own fetch does), an attempt of a call without a
 * signal carries no `AbortSignal`, and the mesh closes its request through the dispatcher. Every
 * test here warms its transport with one call first, so that what follows takes that path; the
 * deadline is driven by a ManualClock, never by waiting.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, type MeshConfig, TimeoutError, withMesh } from '../src/index.js'
import { DEADLINE_HEADER } from '../src/stages/deadline/propagation.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'
import { readBody, startServer, type TestServer, within } from './helpers/servers.js'

type Init = RequestInit & { dispatcher?: unknown }

/** `fetch`, keeping the `init` of every call. */
function recording() {
  const inits: Init[] = []
  const f = ((input: string | URL | Request, init?: Init) => {
    inits.push(init ?? {})
    return fetch(input, init)
  }) as typeof fetch
  return { f, inits }
}

/** What the server saw of each request. */
interface Seen {
  readonly url: string
  readonly deadline: string | string[] | undefined
  readonly body: string
}

describe('withMesh(fetch): requests closed through the dispatcher', () => {
  let server: TestServer
  const seen: Seen[] = []
  /** Requests that are held (never answered) until the test ends, and their sockets' closing. */
  const held: Array<{ res: ServerResponse; closed: Promise<void> }> = []
  const arrivals: Array<() => void> = []
  const nextArrival = () => new Promise<void>((resolve) => arrivals.push(resolve))

  beforeAll(async () => {
    server = await startServer(async (req: IncomingMessage, res: ServerResponse) => {
      const body = (await readBody(req)).toString('utf8')
      seen.push({ url: req.url ?? '', deadline: req.headers[DEADLINE_HEADER], body })
      for (const a of arrivals.splice(0)) a()
      if (req.url === '/hold') {
        held.push({ res, closed: new Promise((resolve) => req.socket.once('close', () => resolve())) })
        return
      }
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/ok' })
        res.end()
        return
      }
      if (req.url === '/trickle') {
        // The head and a first chunk, then nothing: a body that only an abort ends.
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.write('first')
        held.push({ res, closed: new Promise((resolve) => req.socket.once('close', () => resolve())) })
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(body === '' ? 'ok' : `echo:${body}`)
    })
  })
  afterAll(async () => {
    await server.close()
  })

  const config = (extra: Partial<MeshConfig['services'][string]> = {}): MeshConfig => ({
    services: { svc: { endpoints: [server.url], timeout: 1000, ...extra } },
  })

  it('sends only the first attempt with a signal, then none, the deadline header on each', async () => {
    const mesh = createMesh(config())
    const { f, inits } = recording()
    const g = withMesh(f, mesh)
    seen.length = 0
    for (let i = 0; i < 3; i++) expect(await (await g('http://svc/ok')).text()).toBe('ok')
    expect(inits[0]!.signal).toBeInstanceOf(AbortSignal)
    for (const init of inits.slice(1)) {
      expect(init.signal).toBeUndefined()
      expect(init.dispatcher).toBeDefined()
    }
    expect(seen).toHaveLength(3)
    for (const s of seen) {
      expect(Number(s.deadline)).toBeGreaterThan(900)
      expect(Number(s.deadline)).toBeLessThanOrEqual(1000)
    }
    await mesh.close()
  })

  it("replaces the caller's deadline header, keeps its other headers and sends its body", async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    await (await g('http://svc/ok')).text()
    seen.length = 0
    const headers = new Headers({ 'x-custom': 'kept', [DEADLINE_HEADER]: '99999' })
    const res = await g('http://svc/echo', { method: 'POST', body: 'hello', headers })
    expect(await res.text()).toBe('echo:hello')
    await (await g('http://svc/ok', { headers: { 'X-Meshlet-Timeout-Ms': '99999' } })).text()
    expect(seen.map((s) => typeof s.deadline)).toEqual(['string', 'string'])
    for (const s of seen) expect(Number(s.deadline)).toBeLessThanOrEqual(1000)
    expect(seen[0]!.body).toBe('hello')
    expect(headers.get(DEADLINE_HEADER)).toBe('99999')
    await mesh.close()
  })

  it('follows a redirect, each request carrying the header', async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    await (await g('http://svc/ok')).text()
    seen.length = 0
    const res = await g('http://svc/moved')
    expect(res.redirected).toBe(true)
    expect(await res.text()).toBe('ok')
    expect(seen.map((s) => s.url)).toEqual(['/moved', '/ok'])
    for (const s of seen) expect(Number(s.deadline)).toBeLessThanOrEqual(1000)
    await mesh.close()
  })

  it("sends through the caller's own dispatcher", async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    const global = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')] as {
      dispatch(o: unknown, h: unknown): boolean
    }
    let dispatched = 0
    const dispatcher = {
      dispatch(options: unknown, handler: unknown) {
        dispatched++
        return global.dispatch(options, handler)
      },
    }
    for (let i = 0; i < 2; i++)
      expect(await (await g('http://svc/ok', { dispatcher } as Init)).text()).toBe('ok')
    expect(dispatched).toBe(2)
    await mesh.close()
  })

  it('closes the request when the deadline passes, rejecting at once with TIMEOUT', async () => {
    const clock = new ManualClock()
    const mesh = createMesh(config({ retry: { attempts: 1 } }), { clock, random: seededRandom(1) })
    const { f, inits } = recording()
    const g = withMesh(f, mesh)
    await (await g('http://svc/ok')).text()
    const arrived = nextArrival()
    const before = held.length
    const call = g('http://svc/hold').catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')
    expect(inits[1]!.signal).toBeUndefined()
    await clock.advance(1000)
    const error = await within(call, 1000, 'the timed-out call')
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).scope).toBe('call')
    await within(held[before]!.closed, 2000, 'the server seeing the socket close')
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })

  it('times out at the deadline even when a wrapper of fetch holds back its rejection', async () => {
    const clock = new ManualClock()
    const mesh = createMesh(config({ retry: { attempts: 1 } }), { clock, random: seededRandom(1) })
    // A wrapper that sends through fetch (and so through the dispatcher), but on an error waits
    // for something that never comes, as a wrapper retrying on its own timer would for a while.
    const wrapper = (async (input: string | URL | Request, init?: Init) => {
      try {
        return await fetch(input, init)
      } catch {
        return new Promise<Response>(() => {})
      }
    }) as typeof fetch
    const g = withMesh(wrapper, mesh)
    await (await g('http://svc/ok')).text()
    const arrived = nextArrival()
    const before = held.length
    const call = g('http://svc/hold').catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')
    await clock.advance(1000)
    expect(await within(call, 1000, 'the timed-out call')).toBeInstanceOf(TimeoutError)
    await within(held[before]!.closed, 2000, 'the server seeing the socket close')
    await mesh.close()
  })

  it('closes the losing hedge', async () => {
    const clock = new ManualClock()
    const mesh = createMesh(config({ hedge: { delay: 50, maxAttempts: 2 } }), {
      clock,
      random: seededRandom(1),
    })
    const g = withMesh(fetch, mesh)
    await (await g('http://svc/ok')).text()
    // The first request holds; the hedge, sent 50 ms later, is answered.
    const arrived = nextArrival()
    const before = held.length
    const call = g('http://svc/hold')
    await within(arrived, 5000, 'the first request reaching the server')
    // The hedge asks for /hold too: answer it by hand once it arrives.
    const hedgeArrived = nextArrival()
    await clock.advance(50)
    await within(hedgeArrived, 5000, 'the hedge reaching the server')
    const [first, second] = held.slice(before)
    second!.res.writeHead(200, { 'content-type': 'text/plain' })
    second!.res.end('hedge')
    const res = await within(call, 2000, 'the hedged call')
    expect(await res.text()).toBe('hedge')
    await within(first!.closed, 2000, 'the server seeing the losing request closed')
    await mesh.close()
  })

  it('with force, close cancels a call in flight at once and closes its request', async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    await (await g('http://svc/ok')).text()
    const arrived = nextArrival()
    const before = held.length
    const call = g('http://svc/hold').catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')
    await within(mesh.close({ force: true }), 1000, 'close({ force: true })')
    expect(await within(call, 1000, 'the cancelled call')).toMatchObject({ code: 'MESH_CLOSED' })
    await within(held[before]!.closed, 2000, 'the server seeing the socket close')
  })

  it('rejects at once a call whose request still waits for a connection, and never sends it', async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    const global = (globalThis as Record<symbol, unknown>)[Symbol.for('undici.globalDispatcher.1')] as {
      dispatch(o: unknown, h: unknown): boolean
    }
    // A dispatcher that holds its requests until told, as a pool with no free connection does.
    let release: (() => void) | undefined
    const holding = {
      dispatch(options: unknown, handler: unknown) {
        release = () => global.dispatch(options, handler)
        return true
      },
    }
    await (await g('http://svc/ok')).text()
    const before = server.requests
    const call = g('http://svc/ok', { dispatcher: holding } as Init).catch((e: unknown) => e)
    await within(mesh.close({ force: true }), 1000, 'close({ force: true })')
    expect(await within(call, 1000, 'the cancelled call')).toMatchObject({ code: 'MESH_CLOSED' })
    release!()
    // Its turn came: it is dropped before a byte is written.
    await (await fetch(`${server.url}/ok`)).text()
    expect(server.requests).toBe(before + 1)
  })

  it("closes the request through the undici package's Agent given as the caller's dispatcher", async () => {
    const agent = new Agent()
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    const init = { dispatcher: agent } as Init
    expect(await (await g('http://svc/ok', init)).text()).toBe('ok')
    const arrived = nextArrival()
    const before = held.length
    const call = g('http://svc/hold', init).catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')
    await within(mesh.close({ force: true }), 1000, 'close({ force: true })')
    expect(await within(call, 1000, 'the cancelled call')).toMatchObject({ code: 'MESH_CLOSED' })
    await within(held[before]!.closed, 2000, 'the server seeing the socket close')
    await agent.close()
  })

  it("lets the caller's signal abort the body after the headers, as bare fetch does", async () => {
    const mesh = createMesh(config())
    const g = withMesh(fetch, mesh)
    await (await g('http://svc/ok')).text()
    const outcome = async (f: typeof fetch, url: string) => {
      const controller = new AbortController()
      const before = held.length
      const res = await f(url, { signal: controller.signal })
      const reader = res.body!.getReader()
      expect(new TextDecoder().decode((await reader.read()).value)).toBe('first')
      const next = reader.read().catch((e: unknown) => e)
      controller.abort()
      const error = await within(next, 1000, 'the body read after the abort')
      await within(held[before]!.closed, 2000, 'the server seeing the socket close')
      return error
    }
    const bare = await outcome(fetch, `${server.url}/trickle`)
    const meshed = await outcome(g, 'http://svc/trickle')
    expect(bare).toMatchObject({ name: 'AbortError' })
    expect(meshed).toMatchObject({ name: 'AbortError' })
    await mesh.close()
  })
})
