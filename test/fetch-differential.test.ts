/**
 * The differential suite: every case is sent through bare `fetch` to a real node:http server on
 * 127.0.0.1 and through `withMesh(fetch)` to the same server named as a service, and the two are
 * compared: what the server received (method, path, headers in order, `content-length` and
 * `transfer-encoding` included, body bytes) and what the caller got (status, headers, body,
 * `url`, `redirected`, or the error's type and message). Meshed calls are made three times, so
 * that the first calls of a shape (through fetch, then verified) and the next (the direct path,
 * where the shape allows) are compared, and once more on a mesh with `directFetch: false`.
 *
 * The only differences allowed are the mesh's own: the deadline header it adds, the `Host`
 * (the endpoint's address either way), and the `url`, which reports the URL the caller asked for
 * (`http://svc/...`) where bare fetch to the endpoint reports the endpoint's; both are
 * normalised here. Every other difference is a defect, or listed in docs/fetch-transport.md's
 * "What differs".
 */
import type { IncomingMessage } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, withMesh } from '../src/index.js'
import { readBody, startServer, type TestServer } from './helpers/servers.js'

/** What the server received, normalised (see the module comment). */
interface Received {
  readonly method: string
  readonly url: string
  readonly headers: string[]
  readonly body: string
}

type Call = readonly [input: unknown, init?: RequestInit & { duplex?: 'half'; dispatcher?: unknown }]
/** A case: the call to make against `base` (`http://127.0.0.1:<port>` bare, `http://svc` meshed). */
type Make = (base: string) => Call

let server: TestServer
let received: Received[] = []
let mesh: Mesh
let viaFetch: Mesh
const DEADLINE = 'x-meshlet-timeout-ms'

/** The boundary of a multipart body differs per call: named alike on both sides. */
const sameBoundary = (text: string) =>
  text.replace(/-{2,}[A-Za-z0-9-]*?(?:formdata-undici-)?\d{6,}/g, '--BOUNDARY')

async function record(req: IncomingMessage): Promise<void> {
  const body = await readBody(req)
  const headers: string[] = []
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase()
    if (name === 'host' || name === DEADLINE) continue
    headers.push(`${name}: ${sameBoundary(req.rawHeaders[i + 1]!)}`)
  }
  received.push({
    method: req.method ?? '',
    url: req.url ?? '',
    headers,
    body: sameBoundary(body.toString('latin1')),
  })
}

beforeAll(async () => {
  server = await startServer(async (req, res) => {
    await record(req)
    const url = req.url ?? '/'
    const redirect = /^\/redirect\/(\d{3})/.exec(url)
    if (redirect) {
      res.writeHead(Number(redirect[1]), { location: '/landed', 'content-type': 'text/plain' })
      res.end('moving')
      return
    }
    const status = /^\/status\/(\d{3})/.exec(url)
    res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'text/plain', 'x-path': url })
    res.end(`answer to ${req.method} ${url}`)
  })
  const config = { services: { svc: { endpoints: [server.url], retry: { attempts: 1 } } } }
  mesh = createMesh(config)
  viaFetch = createMesh(config, { directFetch: false })
})
afterAll(async () => {
  await Promise.all([mesh.close(), viaFetch.close()])
  await server.close()
})

/** The loopback origin read as the service's, in a URL or a message. */
const asService = (text: string) =>
  text.split(`127.0.0.1:${server.port}`).join('svc').split('127.0.0.1').join('svc')

/**
 * What the caller got: the answer, or the error. A bare answer's `url` (the endpoint's) is read
 * as the service's; a meshed one's must already be the URL the caller asked for.
 */
async function outcome(call: () => Promise<Response>, bare: boolean) {
  try {
    const res = await call()
    const headers = [...(res.headers as unknown as Iterable<[string, string]>)].filter(
      ([name]) => name !== 'date' && name !== 'keep-alive',
    )
    return {
      status: res.status,
      statusText: res.statusText,
      url: bare ? asService(res.url) : res.url,
      redirected: res.redirected,
      type: res.type,
      headers,
      body: await res.text(),
    }
  } catch (error) {
    const e = error as Error & { cause?: Error }
    return {
      error: e?.constructor?.name,
      name: e?.name,
      message: asService(String(e?.message)),
      cause: e?.cause === undefined ? undefined : asService(String(e.cause?.message ?? e.cause)),
    }
  }
}

/** Sends `make` bare and meshed (twice, and once with `directFetch: false`) and compares. */
async function compare(make: Make) {
  received = []
  const [bareInput, bareInit] = make(server.url)
  const bare = await outcome(() => fetch(bareInput as string, bareInit), true)
  const bareReceived = received
  const runs = []
  for (const [m, times] of [
    // The first call tells the transport that fetch uses dispatchers, the second verifies the
    // shape against fetch, the third takes the direct path where the shape allows.
    [mesh, 3],
    [viaFetch, 1],
  ] as const) {
    const f = withMesh(fetch, m)
    for (let i = 0; i < times; i++) {
      received = []
      const [input, init] = make('http://svc')
      const got = await outcome(() => f(input as string, init), false)
      runs.push({ got, received })
    }
  }
  for (const run of runs) {
    expect(run.got).toEqual(bare)
    expect(run.received).toEqual(bareReceived)
  }
  return { bare, received: bareReceived }
}

const stream = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(text))
      controller.close()
    },
  })

const form = () => {
  const fd = new FormData()
  fd.append('field', 'value')
  fd.append('file', new Blob(['file bytes'], { type: 'text/plain' }), 'a.txt')
  return fd
}

/** Every body kind fetch takes, made fresh for each call (a stream is read once). */
const BODIES: Record<string, () => BodyInit | null> = {
  string: () => 'x',
  URLSearchParams: () => new URLSearchParams({ a: '1', b: 'two words' }),
  'Blob with a type': () => new Blob(['blob'], { type: 'application/octet-stream' }),
  'Blob without a type': () => new Blob(['blob']),
  FormData: form,
  ArrayBuffer: () => new TextEncoder().encode('bytes').buffer as ArrayBuffer,
  Uint8Array: () => new TextEncoder().encode('bytes'),
  DataView: () => new DataView(new TextEncoder().encode('view').buffer),
  Float64Array: () => new Float64Array([1.5, 2.5]),
  ReadableStream: () => stream('streamed'),
  null: () => null,
}

const needsDuplex = (body: BodyInit | null) => body instanceof ReadableStream

describe('withMesh(fetch) sends and answers as bare fetch, case by case', () => {
  describe('bodies given in init', () => {
    it.each(Object.keys(BODIES))('POST with a %s body', async (kind) => {
      await compare((base) => {
        const body = BODIES[kind]!()
        return [`${base}/echo`, { method: 'POST', body, ...(needsDuplex(body) ? { duplex: 'half' } : {}) }]
      })
    })

    it('PUT without a body (content-length: 0)', async () => {
      await compare((base) => [`${base}/echo`, { method: 'PUT' }])
    })
  })

  describe('Request inputs', () => {
    it.each(Object.keys(BODIES))(
      'a POST Request with a %s body, sent with its length as fetch sends it',
      async (kind) => {
        const { received: got } = await compare((base) => {
          const body = BODIES[kind]!()
          return [
            new Request(`${base}/echo`, {
              method: 'POST',
              body,
              ...(needsDuplex(body) ? { duplex: 'half' } : {}),
            } as RequestInit),
          ]
        })
        const headers = got[0]!.headers
        if (kind === 'ReadableStream') expect(headers).toContain('transfer-encoding: chunked')
        else expect(headers.some((h) => h.startsWith('transfer-encoding'))).toBe(false)
      },
    )

    it('a GET Request with headers, and init overriding its method and headers', async () => {
      await compare((base) => [new Request(`${base}/echo`, { headers: { 'x-a': '1' } })])
      await compare((base) => [
        new Request(`${base}/echo`, { method: 'POST', body: 'from the request' }),
        { method: 'PUT', headers: { 'x-b': '2' } },
      ])
      await compare((base) => [new Request(`${base}/echo`, { method: 'POST', body: 'old' }), { body: 'new' }])
    })

    // undici 7 (Node 24) keeps a Request's dispatcher in a private field, which the mesh cannot
    // read: listed in docs/fetch-transport.md's "What differs".
    const readable = Object.getOwnPropertySymbols(new Request('http://localhost/')).some(
      (key) => key.description === 'dispatcher',
    )
    it("a Request's own dispatcher is used, as fetch uses it, where Node lets it be read", async () => {
      const seen: string[] = []
      const { getGlobalDispatcher } = await import('undici')
      const dispatcher = {
        dispatch(options: { path: string }, handler: unknown) {
          seen.push(options.path)
          return getGlobalDispatcher().dispatch(options as never, handler as never)
        },
      }
      const f = withMesh(fetch, mesh)
      await (await fetch(new Request(`${server.url}/own`, { dispatcher } as RequestInit))).text()
      expect(seen).toEqual(['/own'])
      await (await f(new Request('http://svc/own', { dispatcher } as RequestInit))).text()
      await (
        await f(new Request('http://svc/own', { method: 'POST', body: 'x', dispatcher } as RequestInit))
      ).text()
      // Where undici hides it (Node 24), the calls are still answered, through the mesh's own
      // dispatcher: the documented difference, pinned so that a change in either is noticed.
      expect(seen).toEqual(readable ? ['/own', '/own', '/own'] : ['/own'])
    })
  })

  describe('redirects', () => {
    it.each([301, 302, 303, 307, 308])('a GET answered %i', async (status) => {
      await compare((base) => [`${base}/redirect/${status}`])
    })

    it.each([301, 302, 303, 307, 308])('a POST with a string body answered %i', async (status) => {
      await compare((base) => [`${base}/redirect/${status}`, { method: 'POST', body: 'payload' }])
    })

    it.each([301, 302, 303, 307, 308])(
      'a POST Request with a body answered %i (replayed on 307/308)',
      async (status) => {
        const { received: got } = await compare((base) => [
          new Request(`${base}/redirect/${status}`, { method: 'POST', body: 'payload' }),
        ])
        expect(got.at(-1)!.body).toBe(status === 307 || status === 308 ? 'payload' : '')
      },
    )

    it.each([303, 307])('a POST with a stream body answered %i', async (status) => {
      await compare((base) => [
        `${base}/redirect/${status}`,
        { method: 'POST', body: stream('s'), duplex: 'half' },
      ])
    })

    it('a redirect not followed (redirect: manual) and refused (redirect: error)', async () => {
      await compare((base) => [`${base}/redirect/302`, { redirect: 'manual' }])
      await compare((base) => [`${base}/redirect/302`, { redirect: 'error' }])
    })
  })

  describe('statuses', () => {
    it.each([200, 204, 404, 418, 421, 503, 599])('status %i', async (status) => {
      const { received: got } = await compare((base) => [`${base}/status/${status}`])
      // fetch sends a request answered 421 (Misdirected) once more, on a new connection.
      expect(got).toHaveLength(status === 421 ? 2 : 1)
    })
  })

  describe('aborted signals', () => {
    it('a GET with an already-aborted signal rejects with the reason', async () => {
      await compare((base) => [`${base}/echo`, { signal: AbortSignal.abort() }])
      await compare((base) => [`${base}/echo`, { signal: AbortSignal.abort(new Error('mine')) }])
    })

    it('a POST with a stream body and an already-aborted signal cancels the stream, as fetch does', async () => {
      const cancelled: unknown[] = []
      const reason = new Error('gone')
      const tracked = () =>
        new ReadableStream({
          pull() {},
          cancel(why) {
            cancelled.push(why)
          },
        })
      await compare((base) => [
        `${base}/echo`,
        { method: 'POST', body: tracked(), duplex: 'half', signal: AbortSignal.abort(reason) },
      ])
      await new Promise((resolve) => setImmediate(resolve))
      expect(cancelled).toEqual([reason, reason, reason, reason, reason])
    })

    it('a GET with a body and an aborted signal rejects with fetch TypeError first', async () => {
      const { bare } = await compare((base) => [
        `${base}/echo`,
        { method: 'GET', body: 'x', signal: AbortSignal.abort() },
      ])
      expect(bare).toMatchObject({ error: 'TypeError' })
    })

    it('a Request whose signal aborted, with a body', async () => {
      await compare((base) => [
        new Request(`${base}/echo`, { method: 'POST', body: 'x', signal: AbortSignal.abort() }),
      ])
    })
  })

  describe('bad inputs reject (never throw) as fetch rejects them', () => {
    it.each<[string, Make]>([
      ['a GET with a body', (base) => [`${base}/echo`, { method: 'GET', body: 'x' }]],
      ['a HEAD with a body', (base) => [`${base}/echo`, { method: 'HEAD', body: 'x' }]],
      ['a stream body without duplex', (base) => [`${base}/echo`, { method: 'POST', body: stream('s') }]],
      ['a URL with credentials', (base) => [base.replace('//', '//user:pw@') + '/echo']],
      ['a URL with a user name only', (base) => [base.replace('//', '//user@') + '/echo']],
      ['a port out of range', (base) => [`${base.replace(/:\d+$/, '')}:99999/echo`]],
      ['a header name with a space', (base) => [`${base}/echo`, { headers: { 'bad name': 'x' } }]],
      ['a header value with CR LF', (base) => [`${base}/echo`, { headers: { 'x-a': 'a\r\nb' } }]],
      ['a forbidden method', (base) => [`${base}/echo`, { method: 'CONNECT' }]],
      ['an invalid method', (base) => [`${base}/echo`, { method: 'bad method' }]],
    ])('%s', async (_name, make) => {
      const { bare } = await compare(make)
      expect(bare).toMatchObject({ error: 'TypeError' })
    })

    it('an object with a toString is a URL, as fetch converts it', async () => {
      await compare((base) => [{ toString: () => `${base}/echo?from=toString` }])
    })

    it('no argument, and a Symbol, reject with TypeError and never throw', async () => {
      const f = withMesh(fetch, mesh)
      const none = (f as (...args: unknown[]) => Promise<Response>)()
      expect(none).toBeInstanceOf(Promise)
      await expect(none).rejects.toThrow(TypeError)
      const symbol = (f as (input: unknown) => Promise<Response>)(Symbol('x'))
      expect(symbol).toBeInstanceOf(Promise)
      await expect(symbol).rejects.toThrow(TypeError)
    })
  })

  describe('URL parsing', () => {
    it('reads the path as the WHATWG parser does (dot segments, spaces, backslashes)', async () => {
      await compare((base) => [`${base}/a/../echo/b c`])
      await compare((base) => [`${base}\\echo\\x?q='1'`])
      await compare((base) => [`${base.toUpperCase().replace('HTTP', 'HtTp')}/ECHO#fragment`])
    })
  })
})
