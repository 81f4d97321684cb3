/**
 * The fetch transport's direct path, compared with bare `fetch` against a real loopback server:
 * each request is made once with Node's `fetch` and once through `withMesh(fetch)` after its
 * shape went direct, and both what the server received and everything the caller can read off
 * the answer (status, headers, body, `url`, `type`, clones, errors, aborts) must be the same.
 *
 * Why: on the direct path the mesh sends plain calls straight to undici's dispatcher and builds
 * the `Response` itself instead of running fetch, and its whole promise is that a caller cannot
 * tell the difference. Each comparison passes a spy as `init.dispatcher`, which notes the class
 * of the handler undici is given: `DirectCall` on the direct path, `ConnectHandler` (meshlet's
 * wrapper of fetch's handler) through fetch, so every test also asserts that the mesh call it
 * compares really took the direct path. Tests declared with `difference` (`it.fails`) are
 * differences from fetch found here, left failing on purpose; each comment says what fetch does
 * and what the mesh does.
 */

import { createHash } from 'node:crypto'
import { getEventListeners } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { inspect } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { brotliCompressSync, createGzip, deflateSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, type MeshConfig, MeshError, TimeoutError, withMesh } from '../src/index.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'
import { readBody, startServer, type TestServer, within } from './helpers/servers.js'

// --- Helpers --------------------------------------------------------------------------------

/**
 * A known difference from fetch: `it.fails`, so that the run passes while it lasts (and fails
 * once it is fixed, to be turned into `it`). `MESHLET_SHOW_DIFFERENCES=1` runs these as plain
 * tests, to see how each one fails.
 */
const difference = process.env.MESHLET_SHOW_DIFFERENCES === '1' ? it : it.fails

/** `init` plus `dispatcher`, which the DOM's `RequestInit` type leaves out. */
type Init = RequestInit & { dispatcher?: unknown }

/** The part of undici's dispatcher used here. */
interface UndiciDispatcher {
  dispatch(options: unknown, handler: object): boolean
}

const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1')
const globals = globalThis as unknown as Record<symbol, UndiciDispatcher | undefined>

/** undici's global dispatcher (there once one bare fetch call was made in this process). */
function globalDispatcher(): UndiciDispatcher {
  const d = globals[GLOBAL_DISPATCHER]
  if (d === undefined) throw new Error('no global undici dispatcher yet')
  return d
}

/** A dispatcher that passes every request on to undici's global one, noting its handler's class. */
function spyDispatcher(): { dispatcher: UndiciDispatcher; seen: string[] } {
  const seen: string[] = []
  const dispatcher: UndiciDispatcher = {
    dispatch(options, handler) {
      seen.push(handler.constructor.name)
      return globalDispatcher().dispatch(options, handler)
    },
  }
  return { dispatcher, seen }
}

const DEADLINE = 'x-meshlet-timeout-ms'

/** One request as the server received it. */
interface Received {
  readonly method: string
  readonly url: string
  /** `rawHeaders` as [name, value] pairs, in order and letter case. */
  readonly headers: Array<[string, string]>
  /** The body, base64. */
  readonly body: string
}

const pairs = (raw: string[]): Array<[string, string]> => {
  const out: Array<[string, string]> = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

/** `r` without the mesh's deadline header, which bare fetch does not send. */
const withoutDeadline = (r: Received): Received => ({
  ...r,
  headers: r.headers.filter(([name]) => name.toLowerCase() !== DEADLINE),
})

/** A body, summed up so that 2 MiB compare quickly and print shortly. */
interface BodySummary {
  readonly length: number
  readonly sha256: string
  /** The bytes as Latin-1 text, for short bodies. */
  readonly text: string | undefined
}

function summary(bytes: Uint8Array): BodySummary {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return {
    length: buf.byteLength,
    sha256: createHash('sha256').update(buf).digest('hex'),
    text: buf.byteLength <= 4096 ? buf.toString('latin1') : undefined,
  }
}

const bytesOf = async (res: Response): Promise<BodySummary | null> =>
  res.body === null ? null : summary(new Uint8Array(await res.arrayBuffer()))

/** Reads a body through a BYOB reader, 16 KiB at a time. */
async function byobBytes(res: Response): Promise<BodySummary> {
  const reader = res.body!.getReader({ mode: 'byob' })
  const parts: Uint8Array[] = []
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(16 * 1024))
    if (done) break
    parts.push(value)
  }
  return summary(Buffer.concat(parts))
}

/**
 * A response's `url` as the caller of `http://svc/...` sees it: the mesh reports the URL the
 * caller asked for (docs/fetch-transport.md), where bare fetch to the endpoint reports the
 * endpoint's, so a bare answer's loopback origin reads as `http://svc`.
 */
const asCalled = (url: string) => url.replace(/^http:\/\/127\.0\.0\.1:\d+/, 'http://svc')

/** Everything a caller can read off a response; the body is read by `read`, a clone's in full. */
async function observe<T = BodySummary | null>(res: Response, read?: (res: Response) => Promise<T>) {
  const clone = res.clone()
  const readBody = read ?? (bytesOf as (res: Response) => Promise<T>)
  const [body, cloneBody] = await Promise.all([readBody(res), bytesOf(clone)])
  return {
    status: res.status,
    statusText: res.statusText,
    ok: res.ok,
    url: asCalled(res.url),
    redirected: res.redirected,
    type: res.type,
    headers: [...(res.headers as unknown as Iterable<[string, string]>)],
    setCookie: res.headers.getSetCookie(),
    isResponse: res instanceof Response,
    constructorName: res.constructor.name,
    bodyIsNull: res.body === null,
    body,
    clone: {
      url: asCalled(clone.url),
      type: clone.type,
      status: clone.status,
      redirected: clone.redirected,
      isResponse: clone instanceof Response,
      bodyIsNull: clone.body === null,
      body: cloneBody,
    },
  }
}

/** What an error (a rejection or a failed body read) shows a caller. */
function errorView(error: unknown) {
  const e = error as Error & { cause?: Error & { code?: unknown } }
  return {
    isTypeError: error instanceof TypeError,
    isMeshError: error instanceof MeshError,
    name: e.name,
    message: e.message,
    cause:
      e.cause === undefined
        ? undefined
        : { name: e.cause.name, message: e.cause.message, code: e.cause.code },
  }
}

/** A mesh with one service `svc` on `server`, one attempt per call, and its fetch. */
function meshOn(
  server: TestServer,
  extra: Partial<MeshConfig['services'][string]> = {},
  options?: Parameters<typeof createMesh>[1],
): { mesh: Mesh; f: typeof fetch } {
  const mesh = createMesh(
    { services: { svc: { endpoints: [server.url], retry: { attempts: 1 }, ...extra } } },
    options,
  )
  return { mesh, f: withMesh(fetch, mesh) }
}

/**
 * Teaches a new mesh's transport about Node's fetch: its first call learns that fetch sends
 * through `init.dispatcher`, its second verifies the plain GET shape; the third goes direct.
 */
async function learn(f: typeof fetch, dispatcher: UndiciDispatcher): Promise<void> {
  for (let i = 0; i < 2; i++) await (await f('http://svc/text', { dispatcher } as Init)).arrayBuffer()
}

// --- The loopback server ----------------------------------------------------------------------

/** A response held open by the server (never answered, or a body left unfinished). */
interface Held {
  readonly res: ServerResponse
  /** Resolves when the request's socket closes. */
  readonly closed: Promise<void>
}

const LARGE = Buffer.alloc(2 * 1024 * 1024, 0)
for (let i = 0; i < LARGE.length; i++) LARGE[i] = (i * 31 + (i >> 13)) % 251
const COMPRESSIBLE = 'a compressible body, '.repeat(100)

/** Starts the server all groups use; `received` gets each request, `held` each held response. */
async function routedServer(received: Received[], held: Held[], arrivals: Array<() => void>) {
  return startServer(async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req)
    received.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: pairs(req.rawHeaders),
      body: body.toString('base64'),
    })
    res.sendDate = false // a Date header could differ between the two calls compared
    const hold = () =>
      held.push({ res, closed: new Promise((resolve) => req.socket.once('close', () => resolve())) })
    const url = new URL(req.url ?? '/', 'http://x')
    const path = url.pathname
    const redirect = /^\/redirect\/(\d{3})$/.exec(path)
    const chain = /^\/chain\/(\d)$/.exec(path)
    if (redirect !== null) {
      res.writeHead(Number(redirect[1]), { location: '/landed', 'content-type': 'text/plain' })
      res.end('moving')
    } else if (chain !== null) {
      const n = Number(chain[1])
      res.writeHead(302, { location: n > 1 ? `/chain/${n - 1}` : '/landed' })
      res.end()
    } else {
      switch (path) {
        case '/text':
        case '/landed':
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
          res.end(req.method === 'HEAD' ? undefined : `hello from ${path}`)
          break
        case '/search':
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.end(`query ${url.search}`)
          break
        case '/json':
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ name: 'caf\u00e9', list: [1, 2, 3], nested: { ok: true } }))
          break
        case '/echo':
          res.writeHead(200, { 'content-type': 'application/octet-stream' })
          res.end(body)
          break
        case '/large':
          // 2 MiB in 64 KiB writes, with a length.
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': LARGE.length })
          for (let i = 0; i < LARGE.length; i += 64 * 1024) res.write(LARGE.subarray(i, i + 64 * 1024))
          res.end()
          break
        case '/empty':
          res.writeHead(200, { 'content-length': 0 })
          res.end()
          break
        case '/no-content':
          res.writeHead(204)
          res.end()
          break
        case '/missing':
          res.writeHead(404, { 'content-type': 'text/plain' })
          res.end('not here')
          break
        case '/unavailable':
          res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' })
          res.end('try later')
          break
        case '/teapot':
          res.writeHead(418, 'Teapot Time', { 'content-type': 'text/plain' })
          res.end('short and stout')
          break
        case '/status-599':
          res.writeHead(599, { 'content-type': 'text/plain' })
          res.end('five nine nine')
          break
        case '/status-600':
          res.writeHead(600, { 'content-type': 'text/plain' })
          res.end('six hundred')
          break
        case '/early-hints':
          res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' })
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.end('after hints')
          break
        case '/found-no-location':
          res.writeHead(302, { 'content-type': 'text/plain' })
          res.end('stay here')
          break
        case '/cookies':
          res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly'])
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.end('cookies')
          break
        case '/repeated':
          res.setHeader('X-Multi', ['one', 'two', 'three'])
          res.setHeader('Cache-Control', ['no-cache', 'no-store'])
          res.end('repeated')
          break
        case '/mixed-case':
          res.writeHead(200, 'Fine', {
            'X-Mixed-Case': 'Value',
            'x-LOWER-upper': 'v2',
            'X-Latin': 'caf\u00e9', // sent as one Latin-1 byte
            'X-Empty': '',
          })
          res.end('mixed')
          break
        case '/trailing-space':
          res.setHeader('X-Trail', 'a  ')
          res.setHeader('X-Tab', 'b\t')
          res.end('trailing')
          break
        case '/latin1-status':
          // A reason phrase with a Latin-1 byte: undici decodes it as UTF-8 (U+FFFD).
          res.writeHead(200, 'Caf\u00e9', { 'content-type': 'text/plain' })
          res.end('status text')
          break
        case '/gzip':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' })
          res.end(gzipSync(COMPRESSIBLE))
          break
        case '/deflate':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'deflate' })
          res.end(deflateSync(COMPRESSIBLE))
          break
        case '/br':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'br' })
          res.end(brotliCompressSync(COMPRESSIBLE))
          break
        case '/destroy':
          req.socket.destroy() // no answer at all
          break
        case '/destroy-mid-body':
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.write('partial', () => req.socket.destroy())
          break
        case '/trickle':
          // The head and a first chunk; the test ends or drops the rest.
          res.writeHead(200, { 'content-type': 'text/plain' })
          res.write('first')
          hold()
          break
        case '/gzip-trickle': {
          // A gzip body whose first part is flushed, the rest held.
          res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' })
          const gzip = createGzip()
          gzip.pipe(res)
          gzip.write('first')
          gzip.flush()
          hold()
          break
        }
        case '/redirect-to-hold':
          res.writeHead(302, { location: '/hold' })
          res.end()
          break
        case '/hold':
          hold() // never answered
          break
        default:
          res.writeHead(500)
          res.end(`no route ${path}`)
      }
    }
    for (const a of arrivals.splice(0)) a()
  })
}

// --- The tests ----------------------------------------------------------------------------------

describe('withMesh(fetch) on the direct path gives what bare fetch gives', () => {
  let server: TestServer
  let mesh: Mesh
  let f: typeof fetch
  const received: Received[] = []
  const held: Held[] = []
  const arrivals: Array<() => void> = []
  const spy = spyDispatcher()
  const nextArrival = () => new Promise<void>((resolve) => arrivals.push(resolve))

  beforeAll(async () => {
    server = await routedServer(received, held, arrivals)
    // One bare call, so that undici's global dispatcher exists.
    await (await fetch(`${server.url}/text`)).arrayBuffer()
    ;({ mesh, f } = meshOn(server))
    await learn(f, spy.dispatcher)
  })
  afterAll(async () => {
    for (const h of held) h.res.destroy()
    await mesh.close()
    await server.close()
  })

  /** One call: what the server received, what the caller saw, and the handlers dispatched. */
  async function exchange<T>(call: () => Promise<Response>, read?: (res: Response) => Promise<T>) {
    const r0 = received.length
    const h0 = spy.seen.length
    const response = await observe(await call(), read)
    return { received: received.slice(r0), response, handlers: spy.seen.slice(h0) }
  }

  /** Warms the shape of `init` with one mesh call (which goes through fetch, for verification). */
  async function warm(path: string, init: Init): Promise<void> {
    try {
      const res = await f(`http://svc${path}`, init)
      await res.arrayBuffer()
    } catch {
      // an error route: the shape is learnt all the same
    }
  }

  /**
   * Sends `init` to `path` with bare fetch and through the mesh, after warming its shape, and
   * checks that both gave the same, and that the mesh's call was sent directly.
   */
  async function compare<T = BodySummary | null>(
    path: string,
    init: RequestInit = {},
    read?: (res: Response) => Promise<T>,
  ) {
    const withSpy: Init = { ...init, dispatcher: spy.dispatcher }
    await warm(path, withSpy)
    const bare = await exchange(() => fetch(server.url + path, withSpy), read)
    const meshed = await exchange(() => f(`http://svc${path}`, withSpy), read)
    expect(meshed.handlers[0]).toBe('DirectCall')
    expect(meshed.response).toEqual(bare.response)
    expect(meshed.received.length).toBeGreaterThan(0)
    expect(meshed.received.map(withoutDeadline)).toEqual(bare.received)
    // The only header of the mesh's own: the deadline, once in each request.
    for (const r of meshed.received) expect(r.headers.filter(([n]) => n === DEADLINE)).toHaveLength(1)
    for (const r of bare.received) expect(r.headers.filter(([n]) => n === DEADLINE)).toHaveLength(0)
    return { bare, meshed }
  }

  describe('plain answers', () => {
    it('returns the same GET 200 text answer, its url the one the caller asked for', async () => {
      const { bare, meshed } = await compare('/text')
      expect(meshed.handlers).toEqual(['DirectCall'])
      expect(meshed.response.url).toBe('http://svc/text')
      expect(meshed.response.body?.text).toBe('hello from /text')
      expect(bare.response.type).toBe('basic')
    })

    it('sends a query string as is and answers alike', async () => {
      const { meshed } = await compare('/search?q=a%20b&x=1&empty=&flag')
      expect(meshed.received[0]!.url).toBe('/search?q=a%20b&x=1&empty=&flag')
      expect(meshed.response.body?.text).toBe('query ?q=a%20b&x=1&empty=&flag')
    })

    it('gives the same value to res.json()', async () => {
      const { meshed } = await compare('/json', {}, (res) => res.json())
      expect(meshed.response.body).toEqual({ name: 'caf\u00e9', list: [1, 2, 3], nested: { ok: true } })
    })

    it('gives an empty, non-null body for an empty 200', async () => {
      const { meshed } = await compare('/empty')
      expect(meshed.response.bodyIsNull).toBe(false)
      expect(meshed.response.body?.length).toBe(0)
    })

    it('gives a null body for a 204, on the response and its clone', async () => {
      const { meshed } = await compare('/no-content')
      expect(meshed.response.status).toBe(204)
      expect(meshed.response.bodyIsNull).toBe(true)
      expect(meshed.response.clone.bodyIsNull).toBe(true)
    })

    it.each([
      ['/missing', 404, 'not here'],
      ['/unavailable', 503, 'try later'],
      ['/teapot', 418, 'short and stout'],
      ['/status-599', 599, 'five nine nine'],
    ])('returns %s (%i) with its status text and body', async (path, status, text) => {
      const { meshed } = await compare(path)
      expect(meshed.response.status).toBe(status)
      expect(meshed.response.ok).toBe(false)
      expect(meshed.response.body?.text).toBe(text)
    })

    it("keeps a custom status text ('Teapot Time')", async () => {
      const { meshed } = await compare('/teapot')
      expect(meshed.response.statusText).toBe('Teapot Time')
    })

    it('skips 103 Early Hints and returns the final answer', async () => {
      const { meshed } = await compare('/early-hints')
      expect(meshed.handlers).toEqual(['DirectCall'])
      expect(meshed.response.body?.text).toBe('after hints')
    })

    it('returns a redirect status without Location as it is, not followed', async () => {
      const { meshed } = await compare('/found-no-location')
      expect(meshed.handlers).toEqual(['DirectCall'])
      expect(meshed.response.status).toBe(302)
      expect(meshed.response.redirected).toBe(false)
    })

    it("sends to undici's global dispatcher when the caller gives none", async () => {
      const global = globalDispatcher()
      const seen: string[] = []
      globals[GLOBAL_DISPATCHER] = {
        dispatch(options, handler) {
          seen.push(handler.constructor.name)
          return global.dispatch(options, handler)
        },
      }
      try {
        await warm('/text', {})
        const r0 = received.length
        const bare = await observe(await fetch(`${server.url}/text`))
        const meshed = await observe(await f('http://svc/text'))
        expect(seen.at(-1)).toBe('DirectCall')
        expect(meshed).toEqual(bare)
        const [b, m] = received.slice(r0)
        expect(withoutDeadline(m!)).toEqual(b)
      } finally {
        globals[GLOBAL_DISPATCHER] = global
      }
    })
  })

  describe('large bodies', () => {
    it('delivers a 2 MiB body intact to res.arrayBuffer()', async () => {
      const { meshed } = await compare('/large')
      expect(meshed.response.body).toEqual(summary(LARGE))
    })

    it('delivers a 2 MiB body intact to a BYOB reader (a byte stream on both)', async () => {
      const { meshed } = await compare('/large', {}, (res) =>
        within(byobBytes(res), 5000, 'the BYOB read of the body'),
      )
      expect(meshed.response.body).toEqual(summary(LARGE))
    })

    // fetch closes its stream and then answers a pending BYOB request (`byobRequest.respond(0)`,
    // undici's readableStreamClose), so a read that waits when a chunked body ends resolves with
    // `done`; `controller.close()` alone leaves it pending for good (found by this file).
    it('ends a BYOB read that waits when the chunked body ends', async () => {
      const readAfterFirst = async (call: () => Promise<Response>, sent = () => {}) => {
        const before = held.length
        const res = await call()
        sent()
        const reader = res.body!.getReader({ mode: 'byob' })
        const first = await reader.read(new Uint8Array(1024))
        const next = reader.read(new Uint8Array(1024)) // waits: the server sent nothing more yet
        held[before]!.res.end() // now the end of the chunked body
        const last = await within(next, 2000, 'the BYOB read waiting at the end of the body')
        return { first: Buffer.from(first.value!).toString(), done: last.done }
      }
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const bare = await readAfterFirst(() => fetch(`${server.url}/trickle`, init))
      expect(bare).toEqual({ first: 'first', done: true })
      const meshed = await readAfterFirst(
        () => f('http://svc/trickle', init),
        () => expect(spy.seen.at(-1)).toBe('DirectCall'),
      )
      expect(meshed).toEqual(bare)
    })
  })

  describe('response headers', () => {
    it('keeps two Set-Cookie headers apart (getSetCookie) and in the entries', async () => {
      const { meshed } = await compare('/cookies')
      expect(meshed.response.setCookie).toEqual(['a=1; Path=/', 'b=2; HttpOnly'])
    })

    it("combines a repeated header with ', '", async () => {
      const { meshed } = await compare('/repeated')
      expect(meshed.response.headers).toContainEqual(['x-multi', 'one, two, three'])
      expect(meshed.response.headers).toContainEqual(['cache-control', 'no-cache, no-store'])
    })

    it('gives mixed-case names, an empty value and a Latin-1 value as fetch does', async () => {
      const { meshed } = await compare('/mixed-case')
      expect(meshed.response.headers).toContainEqual(['x-mixed-case', 'Value'])
      expect(meshed.response.headers).toContainEqual(['x-latin', 'caf\u00e9'])
      expect(meshed.response.headers).toContainEqual(['x-empty', ''])
      expect(meshed.response.statusText).toBe('Fine')
    })

    // fetch keeps a header value's trailing spaces and tabs as they came (llhttp strips only the
    // leading ones), so `headers.get('x-trail')` is 'a  '; the public `Headers` constructor
    // would trim them, so such an answer is handed over to fetch.
    it("keeps a header value's trailing whitespace", async () => {
      await compare('/trailing-space')
    })

    // DIFFERENCE (known, docs/fetch-transport.md): fetch's response headers are immutable (`set`, `append` and `delete` throw
    // TypeError 'immutable'); a direct response's headers come from `new Response(...)`, whose
    // guard is 'response', so they can be changed.
    difference('gives immutable headers, as fetch does', async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const tryToChange = async (res: Response) => {
        await res.arrayBuffer()
        try {
          res.headers.set('x-added', '1')
          return 'changed'
        } catch (error) {
          return errorView(error)
        }
      }
      const bare = await tryToChange(await fetch(`${server.url}/text`, init))
      expect(bare).toMatchObject({ isTypeError: true, message: 'immutable' })
      const meshed = await tryToChange(await f('http://svc/text', init))
      expect(spy.seen.at(-1)).toBe('DirectCall')
      expect(meshed).toEqual(bare)
    })
  })

  describe('the Response object itself', () => {
    it('is an instance of Response named Response, with url and type kept by clone()', async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const res = await f('http://svc/text', init)
      expect(spy.seen.at(-1)).toBe('DirectCall')
      expect(res).toBeInstanceOf(Response)
      expect(res.constructor.name).toBe('Response')
      expect(Object.prototype.toString.call(res)).toBe('[object Response]')
      const clone = res.clone()
      expect(clone.url).toBe('http://svc/text')
      expect(clone.type).toBe('basic')
      expect(await clone.text()).toBe('hello from /text')
      expect(await res.text()).toBe('hello from /text')
    })

    // A direct response is a plain Response with own `url`, `type` and `clone`, so that its
    // prototype and constructor are fetch's.
    it('has Response.prototype as its prototype, as fetch gives', async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const identity = async (res: Response) => {
        await res.arrayBuffer()
        return {
          constructor: res.constructor === Response,
          prototype: Object.getPrototypeOf(res) === Response.prototype,
        }
      }
      const bare = await identity(await fetch(`${server.url}/text`, init))
      expect(bare).toEqual({ constructor: true, prototype: true })
      const meshed = await identity(await f('http://svc/text', init))
      expect(spy.seen.at(-1)).toBe('DirectCall')
      expect(meshed).toEqual(bare)
    })

    // fetch stores the response's header names lower-cased; iteration lower-cases either way, but
    // `util.inspect(res)` (so console.log) shows the stored names.
    it('inspects (console.log) as fetch does', async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/mixed-case', init)
      const bare = await fetch(`${server.url}/mixed-case`, init)
      const meshed = await f('http://svc/mixed-case', init)
      expect(spy.seen.at(-1)).toBe('DirectCall')
      const views = [
        asCalled(inspect(bare)).replace(`url: '${server.url}`, "url: 'http://svc"),
        inspect(meshed),
      ]
      await Promise.all([bare.arrayBuffer(), meshed.arrayBuffer()])
      expect(views[1]).toBe(views[0])
    })
  })

  describe('request bodies and headers', () => {
    it('sends a POST string with text/plain;charset=UTF-8', async () => {
      const { meshed } = await compare('/echo', { method: 'POST', body: 'h\u00e9llo, w\u00f6rld' })
      const sent = Object.fromEntries(meshed.received[0]!.headers.map(([n, v]) => [n.toLowerCase(), v]))
      expect(sent['content-type']).toBe('text/plain;charset=UTF-8')
      expect(Buffer.from(meshed.received[0]!.body, 'base64').toString()).toBe('h\u00e9llo, w\u00f6rld')
    })

    it('sends a POST Uint8Array byte-exact, without content-type', async () => {
      const bytes = new Uint8Array([0, 1, 2, 254, 255, 10, 13])
      const { meshed } = await compare('/echo', { method: 'POST', body: bytes })
      expect(meshed.received[0]!.body).toBe(Buffer.from(bytes).toString('base64'))
      expect(meshed.received[0]!.headers.some(([n]) => n.toLowerCase() === 'content-type')).toBe(false)
    })

    it('sends a POST ArrayBuffer byte-exact', async () => {
      const buffer = new Uint8Array([9, 8, 7, 0, 255]).buffer
      const { meshed } = await compare('/echo', { method: 'POST', body: buffer })
      expect(meshed.received[0]!.body).toBe(Buffer.from([9, 8, 7, 0, 255]).toString('base64'))
    })

    it('sends a POST URLSearchParams as a form', async () => {
      const form = new URLSearchParams({ a: '1', b: 'two words', c: '\u00e9&=' })
      const { meshed } = await compare('/echo', { method: 'POST', body: form })
      const sent = Object.fromEntries(meshed.received[0]!.headers.map(([n, v]) => [n.toLowerCase(), v]))
      expect(sent['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8')
      expect(Buffer.from(meshed.received[0]!.body, 'base64').toString()).toBe(form.toString())
    })

    it('sends a PUT without body with content-length: 0', async () => {
      const { meshed } = await compare('/echo', { method: 'PUT' })
      expect(meshed.received[0]!.method).toBe('PUT')
      expect(meshed.received[0]!.headers).toContainEqual(['content-length', '0'])
    })

    it("sends a DELETE with a body and the caller's content-type", async () => {
      const { meshed } = await compare('/echo', {
        method: 'DELETE',
        body: '{"id":42}',
        headers: { 'Content-Type': 'application/json' },
      })
      expect(meshed.received[0]!.method).toBe('DELETE')
      expect(meshed.received[0]!.headers).toContainEqual(['Content-Type', 'application/json'])
      expect(meshed.received[0]!.headers.filter(([n]) => n.toLowerCase() === 'content-type')).toHaveLength(1)
    })

    it("sends the caller's headers in their order and letter case, overriding accept and user-agent", async () => {
      const headers = {
        'X-Request-Id': 'abc-123',
        Accept: 'application/json',
        'user-AGENT': 'meshlet-test/1.0',
        'x-lower': 'v',
      }
      const { meshed } = await compare('/text', { headers })
      const sent = meshed.received[0]!.headers
      expect(sent.slice(0, 5)).toEqual([
        ['host', `127.0.0.1:${server.port}`],
        ['connection', 'keep-alive'],
        ['X-Request-Id', 'abc-123'],
        ['Accept', 'application/json'],
        ['user-AGENT', 'meshlet-test/1.0'],
      ])
      expect(sent.filter(([n]) => n.toLowerCase() === 'accept')).toHaveLength(1)
      expect(sent.filter(([n]) => n.toLowerCase() === 'user-agent')).toHaveLength(1)
    })

    it("accepts a lower-case method name as fetch does ('post')", async () => {
      const { meshed } = await compare('/echo', { method: 'post', body: 'lower' })
      expect(meshed.received[0]!.method).toBe('POST')
    })
  })

  describe('answers handed over to fetch', () => {
    /** Checks that the mesh's call was sent directly and handed over, later hops through fetch. */
    const handedOver = (handlers: string[], hops: number) => {
      expect(handlers[0]).toBe('DirectCall')
      expect(handlers.slice(1)).toEqual(Array(hops - 1).fill('ConnectHandler'))
    }

    it.each([301, 302, 303, 307, 308])('follows a same-origin %i redirect of a GET', async (status) => {
      const { meshed } = await compare(`/redirect/${status}`)
      handedOver(meshed.handlers, 2)
      expect(meshed.response.redirected).toBe(true)
      expect(meshed.response.url).toBe('http://svc/landed')
      expect(meshed.received.map((r) => `${r.method} ${r.url}`)).toEqual([
        `GET /redirect/${status}`,
        'GET /landed',
      ])
    })

    it.each([
      [301, 'GET', ''],
      [302, 'GET', ''],
      [303, 'GET', ''],
      [307, 'POST', 'payload'],
      [308, 'POST', 'payload'],
    ])('follows a %i redirect of a POST as %s, body %j', async (status, method, body) => {
      const { meshed } = await compare(`/redirect/${status}`, { method: 'POST', body: 'payload' })
      handedOver(meshed.handlers, 2)
      const [first, second] = meshed.received
      expect(first!.method).toBe('POST')
      expect(Buffer.from(first!.body, 'base64').toString()).toBe('payload')
      expect(second!.method).toBe(method)
      expect(Buffer.from(second!.body, 'base64').toString()).toBe(body)
    })

    it('follows a chain of 3 redirects', async () => {
      const { meshed } = await compare('/chain/3')
      handedOver(meshed.handlers, 4)
      expect(meshed.received.map((r) => r.url)).toEqual(['/chain/3', '/chain/2', '/chain/1', '/landed'])
      expect(meshed.response.url).toBe('http://svc/landed')
      expect(meshed.response.redirected).toBe(true)
    })

    it.each(['gzip', 'deflate', 'br'])('decodes a %s body', async (encoding) => {
      const { meshed } = await compare(`/${encoding}`)
      handedOver(meshed.handlers, 1)
      expect(meshed.response.body?.text).toBe(COMPRESSIBLE)
      expect(meshed.response.headers).toContainEqual(['content-encoding', encoding])
    })

    it('answers a HEAD request with a null body', async () => {
      const { meshed } = await compare('/text', { method: 'HEAD' })
      handedOver(meshed.handlers, 1)
      expect(meshed.response.bodyIsNull).toBe(true)
      expect(meshed.received[0]!.method).toBe('HEAD')
    })

    it('returns a status above 599 (600)', async () => {
      const { meshed } = await compare('/status-600')
      handedOver(meshed.handlers, 1)
      expect(meshed.response.status).toBe(600)
    })
  })

  describe('cancelling the body', () => {
    it('closes the connection when the caller cancels a body that still streams', async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const outcome = async (call: () => Promise<Response>) => {
        const before = held.length
        const res = await call()
        const reader = res.body!.getReader()
        const first = Buffer.from((await reader.read()).value!).toString()
        await within(reader.cancel(new Error('enough')), 1000, 'the cancel')
        await within(held[before]!.closed, 2000, 'the server seeing the socket close')
        return { first, afterCancel: await reader.read() }
      }
      const bare = await outcome(() => fetch(`${server.url}/trickle`, init))
      const h0 = spy.seen.length
      const meshed = await outcome(() => f('http://svc/trickle', init))
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(bare).toEqual({ first: 'first', afterCancel: { done: true, value: undefined } })
      expect(meshed).toEqual(bare)
    })
  })

  describe('network errors', () => {
    it("rejects with fetch's TypeError 'fetch failed' (with its cause) when the socket closes before an answer", async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const bare = await fetch(`${server.url}/destroy`, init).catch((e: unknown) => e)
      const h0 = spy.seen.length
      const meshed = await f('http://svc/destroy', init).catch((e: unknown) => e)
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(errorView(bare)).toMatchObject({ isTypeError: true, name: 'TypeError', message: 'fetch failed' })
      expect((bare as Error).cause).toBeDefined()
      // The mesh passes the transport's error through (one attempt, nothing wraps it).
      expect(errorView(meshed)).toEqual(errorView(bare))
    })

    it("fails the body read with TypeError 'terminated' when the socket closes mid-body", async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const readAll = async (res: Response) => {
        const status = res.status
        const error = await res.text().then(
          () => 'read in full',
          (e: unknown) => errorView(e),
        )
        return { status, error }
      }
      const bare = await readAll(await fetch(`${server.url}/destroy-mid-body`, init))
      const h0 = spy.seen.length
      const meshed = await readAll(await f('http://svc/destroy-mid-body', init))
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(bare).toMatchObject({ status: 200, error: { isTypeError: true, message: 'terminated' } })
      expect(bare.error).toHaveProperty('cause.name')
      expect(meshed).toEqual(bare)
    })

    it('rejects alike when undici refuses a header value (DEL character)', async () => {
      const init: Init = { dispatcher: spy.dispatcher, headers: { 'x-bad': 'a\u007fb' } }
      await warm('/text', init)
      const r0 = received.length
      const bare = await fetch(`${server.url}/text`, init).catch((e: unknown) => e)
      const h0 = spy.seen.length
      const meshed = await f('http://svc/text', init).catch((e: unknown) => e)
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(errorView(bare)).toMatchObject({ isTypeError: true, message: 'fetch failed' })
      expect(errorView(meshed)).toEqual(errorView(bare))
      expect(received.length).toBe(r0) // neither was sent
    })
  })

  describe("the caller's AbortSignal", () => {
    it("rejects with the signal's own reason when it was aborted before the call, sending nothing", async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const aborted = (reason?: unknown) => {
        const c = new AbortController()
        c.abort(reason)
        return c.signal
      }
      const r0 = received.length
      const h0 = spy.seen.length
      for (const reason of [undefined, new Error('mine')]) {
        const s1 = aborted(reason)
        const s2 = aborted(reason)
        const bare = await fetch(`${server.url}/text`, { ...init, signal: s1 }).catch((e: unknown) => e)
        const meshed = await f('http://svc/text', { ...init, signal: s2 }).catch((e: unknown) => e)
        expect(bare).toBe(s1.reason)
        expect(meshed).toBe(s2.reason)
        expect(errorView(meshed)).toEqual(errorView(bare))
      }
      expect(errorView(aborted().reason)).toMatchObject({ name: 'AbortError' })
      // Nothing was dispatched, by either: there is no path to tell apart here.
      expect(spy.seen.length).toBe(h0)
      expect(received.length).toBe(r0)
    })

    it("rejects with the signal's reason when aborted while waiting for the answer, closing the request", async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const outcome = async (call: (signal: AbortSignal) => Promise<Response>) => {
        const controller = new AbortController()
        const arrived = nextArrival()
        const before = held.length
        const pending = call(controller.signal).catch((e: unknown) => e)
        await within(arrived, 5000, 'the request reaching the server')
        controller.abort()
        const error = await within(pending, 1000, 'the rejection after the abort')
        await within(held[before]!.closed, 2000, 'the server seeing the socket close')
        expect(error).toBe(controller.signal.reason)
        expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
        return errorView(error)
      }
      const bare = await outcome((signal) => fetch(`${server.url}/hold`, { ...init, signal }))
      const h0 = spy.seen.length
      const meshed = await outcome((signal) => f('http://svc/hold', { ...init, signal }))
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(bare).toMatchObject({ name: 'AbortError' })
      expect(meshed).toEqual(bare)
    })

    it.each([
      ['a plain body', '/trickle'],
      ['a handed-over (gzip) body', '/gzip-trickle'],
    ])("fails the rest of %s with the signal's reason when aborted while it streams", async (_what, path) => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const outcome = async (call: (signal: AbortSignal) => Promise<Response>) => {
        const controller = new AbortController()
        const before = held.length
        const res = await call(controller.signal)
        const reader = res.body!.getReader()
        const first = Buffer.from((await reader.read()).value!).toString()
        const next = reader.read().catch((e: unknown) => e)
        controller.abort()
        const error = await within(next, 1000, 'the body read after the abort')
        await within(held[before]!.closed, 2000, 'the server seeing the socket close')
        expect(error).toBe(controller.signal.reason)
        return { first, error: errorView(error) }
      }
      const bare = await outcome((signal) => fetch(`${server.url}${path}`, { ...init, signal }))
      const h0 = spy.seen.length
      const meshed = await outcome((signal) => f(`http://svc${path}`, { ...init, signal }))
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(bare).toMatchObject({ first: 'first', error: { name: 'AbortError' } })
      expect(meshed).toEqual(bare)
    })

    it("leaves no listener on the caller's signal once the body was read in full", async () => {
      const init: Init = { dispatcher: spy.dispatcher }
      await warm('/text', init)
      const listeners = async (call: (signal: AbortSignal) => Promise<Response>) => {
        const controller = new AbortController()
        const before = held.length
        const res = await call(controller.signal)
        const reader = res.body!.getReader()
        await reader.read() // 'first'; the body is still streaming
        const streaming = getEventListeners(controller.signal, 'abort').length
        held[before]!.res.end(' and last')
        let rest = ''
        for (let r = await reader.read(); !r.done; r = await reader.read())
          rest += Buffer.from(r.value).toString()
        return { rest, streaming, afterBody: getEventListeners(controller.signal, 'abort').length }
      }
      const bare = await listeners((signal) => fetch(`${server.url}/trickle`, { ...init, signal }))
      const h0 = spy.seen.length
      const meshed = await listeners((signal) => f('http://svc/trickle', { ...init, signal }))
      expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
      expect(meshed.rest).toBe(' and last')
      expect(bare.rest).toBe(' and last')
      // While the body streams the mesh listens (that is how an abort reaches the body)...
      expect(meshed.streaming).toBeGreaterThan(0)
      // ...and not once it has ended. (Bare fetch on Node 20 keeps its one listener until the
      // signal is collected, so `bare.afterBody` is 1 there: not compared.)
      expect(meshed.afterBody).toBe(0)
      expect(bare.streaming).toBeGreaterThan(0)
    })
  })
})

describe('a status text that is not valid UTF-8', () => {
  let server: TestServer
  let mesh: Mesh
  let f: typeof fetch
  const received: Received[] = []
  const held: Held[] = []
  const spy = spyDispatcher()

  beforeAll(async () => {
    server = await routedServer(received, held, [])
    await (await fetch(`${server.url}/text`)).arrayBuffer()
    ;({ mesh, f } = meshOn(server))
    await learn(f, spy.dispatcher)
  })
  afterAll(async () => {
    await mesh.close()
    await server.close()
  })

  // undici decodes the reason phrase as UTF-8, so a Latin-1 byte (Node's
  // `res.writeHead(200, 'Café')`) becomes U+FFFD, and fetch answers with statusText 'Caf\uFFFD'.
  // `new Response(...)` refuses that statusText, so the answer is handed over to fetch; before,
  // the constructor threw inside the handler and the call never settled (found by this file).
  it("answers with fetch's statusText ('Caf\\uFFFD') instead of never settling", async () => {
    const init: Init = { dispatcher: spy.dispatcher }
    const bare = await fetch(`${server.url}/latin1-status`, init)
    expect(bare.statusText).toBe('Caf\uFFFD')
    await bare.arrayBuffer()
    const h0 = spy.seen.length
    const meshed = f('http://svc/latin1-status', init)
    const settled = await within(
      meshed.then(
        (res) => ({ statusText: res.statusText }),
        (e: unknown) => errorView(e),
      ),
      2000,
      'the mesh call',
    ).finally(() => expect(spy.seen.slice(h0)).toEqual(['DirectCall']))
    expect(settled).toEqual({ statusText: bare.statusText })
  })
})

describe('a wrapper of fetch', () => {
  let server: TestServer
  const received: Received[] = []
  const held: Held[] = []

  beforeAll(async () => {
    server = await routedServer(received, held, [])
    await (await fetch(`${server.url}/text`)).arrayBuffer()
  })
  afterAll(async () => {
    await server.close()
  })

  it("never takes the direct path, where Node's own fetch does", async () => {
    const calls = async (fn: typeof fetch) => {
      const { dispatcher, seen } = spyDispatcher()
      const mesh = createMesh({ services: { svc: { endpoints: [server.url], retry: { attempts: 1 } } } })
      const g = withMesh(fn, mesh)
      for (let i = 0; i < 5; i++) {
        const res = await g('http://svc/text', { dispatcher } as Init)
        expect(await res.text()).toBe('hello from /text')
      }
      await mesh.close()
      return seen
    }
    const wrapper = ((input: string | URL | Request, init?: RequestInit) =>
      fetch(input, init)) as typeof fetch
    expect(await calls(wrapper)).toEqual(Array(5).fill('ConnectHandler'))
    // The control: the same calls around fetch itself go direct from the third on.
    const control = await calls(fetch)
    expect(control[0]).toBe('ConnectHandler') // the first call of a shape goes through fetch
    expect(control.at(-1)).toBe('DirectCall')
  })
})

describe('the mesh timeout on the direct path', () => {
  let server: TestServer
  const received: Received[] = []
  const held: Held[] = []
  const arrivals: Array<() => void> = []

  beforeAll(async () => {
    server = await routedServer(received, held, arrivals)
    await (await fetch(`${server.url}/text`)).arrayBuffer()
  })
  afterAll(async () => {
    for (const h of held) h.res.destroy()
    await server.close()
  })

  // The deadline runs on a ManualClock, as in fetch-dispatcher.test.ts: no real waiting.
  it('rejects with a TIMEOUT MeshError at the deadline and closes the request', async () => {
    const clock = new ManualClock()
    const spy = spyDispatcher()
    const { mesh, f } = meshOn(server, { timeout: 200 }, { clock, random: seededRandom(1) })
    await learn(f, spy.dispatcher)
    const arrived = new Promise<void>((resolve) => arrivals.push(resolve))
    const before = held.length
    const h0 = spy.seen.length
    let settled = false
    const call = f('http://svc/hold', { dispatcher: spy.dispatcher } as Init).then(
      (res) => res,
      (e: unknown) => e,
    )
    void call.then(() => {
      settled = true
    })
    await within(arrived, 5000, 'the request reaching the server')
    expect(spy.seen.slice(h0)).toEqual(['DirectCall'])
    await clock.advance(199)
    await new Promise((resolve) => setImmediate(resolve)) // one turn of the event loop, no waiting
    expect(settled).toBe(false)
    await clock.advance(1)
    const error = await within(call, 1000, 'the timed-out call')
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toBeInstanceOf(MeshError)
    expect((error as MeshError).code).toBe('TIMEOUT')
    expect((error as TimeoutError).scope).toBe('call')
    await within(held[before]!.closed, 2000, 'the server seeing the socket close')
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })

  it('rejects with TIMEOUT when a handed-over redirect leads to an answer that never comes', async () => {
    const clock = new ManualClock()
    const spy = spyDispatcher()
    const { mesh, f } = meshOn(server, { timeout: 200 }, { clock, random: seededRandom(1) })
    await learn(f, spy.dispatcher)
    const before = held.length
    const h0 = spy.seen.length
    const arrivedAtHold = new Promise<void>((resolve) => {
      const wait = () => (held.length > before ? resolve() : arrivals.push(wait))
      arrivals.push(wait)
    })
    const call = f('http://svc/redirect-to-hold', { dispatcher: spy.dispatcher } as Init).catch(
      (e: unknown) => e,
    )
    await within(arrivedAtHold, 5000, 'the redirected request reaching the server')
    // Sent directly, handed over at the 302, the next hop through fetch.
    expect(spy.seen.slice(h0)).toEqual(['DirectCall', 'ConnectHandler'])
    await clock.advance(200)
    const error = await within(call, 1000, 'the timed-out call')
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as MeshError).code).toBe('TIMEOUT')
    await within(held[before]!.closed, 2000, 'the server seeing the second hop closed')
    expect(mesh.inflight).toBe(0)
    await mesh.close()
  })
})

/**
 * `gc()` from V8, for the test of an answer dropped unread (the flag is set before first use, as
 * `--expose-gc` would).
 */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

describe('the connection goes back to the pool, as with fetch', () => {
  let server: TestServer
  const received: Received[] = []
  const big = Buffer.alloc(4 * 1024 * 1024, 97)

  beforeAll(async () => {
    server = await startServer((req: IncomingMessage, res: ServerResponse) => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: pairs(req.rawHeaders),
        body: '',
      })
      if (req.url === '/205') res.writeHead(205, { 'content-length': '5' }).end('hello')
      else if (req.url === '/big') res.end(big)
      else res.end('ok')
    })
    await (await fetch(`${server.url}/warm`)).arrayBuffer()
  })
  afterAll(async () => {
    await server.close()
  })

  /** A mesh on `server` whose calls share one connection: a call that keeps it stalls the next. */
  async function oneConnection() {
    const GlobalAgent = globalDispatcher().constructor as new (
      o: object,
    ) => UndiciDispatcher & {
      close(): Promise<void>
    }
    const agent = new GlobalAgent({ connections: 1 })
    const spy = {
      seen: [] as string[],
      dispatch(options: unknown, handler: object) {
        spy.seen.push(handler.constructor.name)
        return agent.dispatch(options, handler)
      },
    }
    const { mesh, f } = meshOn(server)
    await learn(f, spy)
    const call = (path: string, headers?: Record<string, string>) =>
      f(`http://svc${path}`, { dispatcher: spy, ...(headers ? { headers } : {}) } as Init)
    return { mesh, agent, spy, call }
  }

  /** A call of a shape with one caller header, learnt first (its first call verifies it). */
  async function f2(
    call: (path: string, headers?: Record<string, string>) => Promise<Response>,
    path: string,
    headers: Record<string, string>,
  ): Promise<Response> {
    await (await call(path, headers)).arrayBuffer()
    received.length = 0
    return call(path, headers)
  }

  it('reads and drops the body of a 205, whose answer has none, and the next call goes through', async () => {
    const { mesh, agent, spy, call } = await oneConnection()
    const bare = await fetch(`${server.url}/205`)
    const res = await call('/205')
    expect(spy.seen.at(-1)).toBe('DirectCall')
    expect([res.status, res.body]).toEqual([bare.status, bare.body])
    const after = call('/after').then((r) => r.text())
    expect(await within(after, 2000, 'the call after the 205')).toBe('ok')
    await mesh.close()
    await agent.close()
  })

  it("sends the mesh's deadline header once, in place of the caller's in any letter case", async () => {
    const { mesh, agent, spy, call } = await oneConnection()
    received.length = 0
    const res = await f2(call, '/deadline', { 'X-Meshlet-Timeout-Ms': '5' })
    expect(spy.seen.at(-1)).toBe('DirectCall')
    await res.arrayBuffer()
    const deadlines = received[0]!.headers.filter(([name]) => name.toLowerCase() === DEADLINE)
    expect(deadlines).toHaveLength(1)
    expect(Number(deadlines[0]![1])).toBeGreaterThan(5)
    await mesh.close()
    await agent.close()
  })

  it('cancels the body of an answer collected unread, so the next call gets the connection', async () => {
    const gc = exposedGc()
    const { mesh, agent, spy, call } = await oneConnection()
    await (async () => {
      const res = await call('/big') // dropped unread, at once
      expect(res.status).toBe(200)
    })()
    expect(spy.seen.at(-1)).toBe('DirectCall')
    const next = call('/after').then((r) => r.text())
    let settled = false
    void next.finally(() => {
      settled = true
    })
    // The finalizer runs some time after a full collection: collect until the next call is answered.
    for (let i = 0; i < 100 && !settled; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(await within(next, 1000, 'the call after the dropped answer')).toBe('ok')
    await mesh.close()
    await agent.close()
  })
})

describe("undici's MockAgent as the global dispatcher", () => {
  it('answers direct calls from its mocks, as it answers bare fetch', async () => {
    const { MockAgent, getGlobalDispatcher, setGlobalDispatcher } = await import('undici')
    const previous = getGlobalDispatcher()
    const agent = new MockAgent()
    agent.disableNetConnect()
    const origin = 'http://127.0.0.1:65000' // nothing listens: only the mock can answer
    agent
      .get(origin)
      .intercept({ path: '/mocked', method: 'GET' })
      .reply(200, 'from the mock', { headers: { 'x-mock': 'yes' } })
      .persist()
    setGlobalDispatcher(agent)
    const mesh = createMesh({ services: { svc: { endpoints: [origin], retry: { attempts: 1 } } } })
    try {
      const f = withMesh(fetch, mesh)
      const seen: string[] = []
      const spy = {
        dispatch(options: unknown, handler: object) {
          seen.push(handler.constructor.name)
          return getGlobalDispatcher().dispatch(options as never, handler as never)
        },
      }
      const view = async (res: Response) => [res.status, res.url, res.headers.get('x-mock'), await res.text()]
      const bare = await view(await fetch(`${origin}/mocked`))
      for (let i = 0; i < 2; i++) await (await f('http://svc/mocked', { dispatcher: spy } as Init)).text()
      const meshed = await view(await f('http://svc/mocked', { dispatcher: spy } as Init))
      expect(seen.at(-1)).toBe('DirectCall')
      expect(bare).toEqual([200, `${origin}/mocked`, 'yes', 'from the mock'])
      // The same answer; its url the one the caller asked for.
      expect(meshed).toEqual([200, 'http://svc/mocked', 'yes', 'from the mock'])
    } finally {
      await mesh.close()
      setGlobalDispatcher(previous)
      await agent.close()
    }
  })
})
