import { describe, expect, it } from 'vitest'
import { directOrigin, matchesDispatched, planDirect } from './plan.js'

const ORIGIN = 'http://127.0.0.1:65000'

/**
 * What Node's fetch hands its dispatcher for `init`, caught by a dispatcher that records the
 * options and fails the request before any connection is made.
 */
async function dispatchedByFetch(
  path: string,
  init: RequestInit,
  origin = ORIGIN,
): Promise<Record<string, unknown>> {
  let seen: Record<string, unknown> | undefined
  const spy = {
    dispatch(options: Record<string, unknown>, handler: { onError(e: unknown): void }) {
      seen = options
      handler.onError(new Error('caught'))
      return true
    },
  }
  await fetch(origin + path, { ...init, dispatcher: spy } as RequestInit).catch(() => {})
  if (seen === undefined) throw new Error('fetch did not dispatch')
  return seen
}

describe('planDirect predicts what Node fetch dispatches', () => {
  const cases: Array<[string, string, RequestInit]> = [
    ['a bare GET', '/x', {}],
    ['a GET with a query', '/a/b?q=1&r=%20', {}],
    ['lower-case get', '/x', { method: 'get' }],
    ['a POST with text', '/x', { method: 'POST', body: 'héllo' }],
    ['a post with bytes', '/x', { method: 'post', body: new Uint8Array([1, 2, 3]) }],
    ['a PUT with an ArrayBuffer', '/x', { method: 'PUT', body: new ArrayBuffer(4) }],
    ['a PUT with a DataView', '/x', { method: 'PUT', body: new DataView(new ArrayBuffer(6), 1, 3) }],
    ['a POST with a form', '/x', { method: 'POST', body: new URLSearchParams('a=1&b=2') }],
    ['a PUT with no body', '/x', { method: 'PUT' }],
    ['a POST with no body', '/x', { method: 'POST' }],
    [
      'a DELETE with a body and a type',
      '/x',
      { method: 'DELETE', body: 'x', headers: { 'Content-Type': 'a/b' } },
    ],
    ['a PATCH', '/x', { method: 'PATCH', body: '{}' }],
    ['an OPTIONS', '/x', { method: 'OPTIONS' }],
    [
      'caller headers in their case and order, with defaults overridden',
      '/x',
      { headers: { 'X-B': '2', Accept: 'text/html', 'user-agent': 'me/1', 'x-a': '' } },
    ],
    [
      'every default overridden',
      '/x',
      {
        method: 'POST',
        body: 's',
        headers: {
          'content-type': 't/t',
          accept: 'a',
          'accept-language': 'en',
          'user-agent': 'u',
          'accept-encoding': 'identity',
        },
      },
    ],
    ['a null-prototype record', '/x', { headers: Object.assign(Object.create(null), { 'x-a': '1' }) }],
    ['redirect follow, said explicitly', '/x', { redirect: 'follow' }],
  ]

  it.each(cases)('%s', async (_name, path, init) => {
    const plan = planDirect(ORIGIN, path, init)
    expect(plan).toBeDefined()
    const dispatched = await dispatchedByFetch(path, init)
    expect(matchesDispatched(plan!, dispatched, 'x-meshlet-timeout-ms')).toBe(true)
    // What the answer reports as its URL, as fetch's would.
    expect(plan!.origin + plan!.path).toBe(new URL(ORIGIN + path).href)
  })

  it.each<[string, RequestInit]>([
    ['a GET', {}],
    [
      'a POST with text and an encoding of its own',
      { method: 'POST', body: 'x', headers: { 'accept-encoding': 'br' } },
    ],
  ])('predicts what fetch sends over https: %s', async (_name, init) => {
    const https = 'https://127.0.0.1:65000'
    const plan = planDirect(https, '/x', init)
    expect(matchesDispatched(plan!, await dispatchedByFetch('/x', init, https), 'x-meshlet-timeout-ms')).toBe(
      true,
    )
    expect(plan?.shape).not.toBe(planDirect(ORIGIN, '/x', init)?.shape)
  })

  it('gives the body fetch would send, and its length', () => {
    const plan = planDirect(ORIGIN, '/x', { method: 'POST', body: 'héllo' })
    expect(plan?.body).toBe('héllo')
    expect(plan?.headers['content-length']).toBe('6')
    const view = new Uint16Array([1, 2, 3]).subarray(1)
    const bytes = planDirect(ORIGIN, '/x', { method: 'POST', body: view })?.body as Uint8Array
    expect([...bytes]).toEqual([...new Uint8Array(view.buffer, 2, 4)])
  })

  it("copies a byte body when the call is made, as fetch does, so later writes to the caller's buffer do not go out", () => {
    const buf = Buffer.from('original')
    const plan = planDirect(ORIGIN, '/x', { method: 'POST', body: buf })
    buf.write('MUTATED!')
    expect(Buffer.from(plan!.body as Uint8Array).toString()).toBe('original')
  })

  it("leaves out the caller's spellings of the header the transport replaces, and keeps it otherwise", async () => {
    const init = { headers: { 'X-Meshlet-Timeout-Ms': '5', 'x-a': '1' } }
    const replaced = planDirect(ORIGIN, '/x', init, 'x-meshlet-timeout-ms')!
    expect(Object.keys(replaced.headers).map((h) => h.toLowerCase())).not.toContain('x-meshlet-timeout-ms')
    const kept = planDirect(ORIGIN, '/x', init)!
    expect(kept.headers['X-Meshlet-Timeout-Ms']).toBe('5')
    const dispatched = await dispatchedByFetch('/x', init)
    expect(matchesDispatched(replaced, dispatched, 'x-meshlet-timeout-ms')).toBe(true)
    expect(matchesDispatched(kept, dispatched, 'x-meshlet-timeout-ms')).toBe(true)
  })

  it('gives calls of one shape one key, and calls of another another', () => {
    const a = planDirect(ORIGIN, '/a', { headers: { 'x-one': '1' } })
    const b = planDirect(ORIGIN, '/b?x', { headers: { 'x-two': '2' } })
    const c = planDirect(ORIGIN, '/a', { headers: { accept: 'text/html' } })
    const d = planDirect(ORIGIN, '/a', { method: 'POST', body: 'x' })
    expect(a?.shape).toBe(b?.shape)
    expect(new Set([a?.shape, c?.shape, d?.shape]).size).toBe(3)
  })
})

describe('planDirect leaves to fetch what only fetch can tell', () => {
  it.each<[string, string, RequestInit]>([
    ['an unnormalised method', '/x', { method: 'patch' }],
    ['an unknown method', '/x', { method: 'PROPFIND' }],
    ['a GET with a body (fetch throws)', '/x', { body: 'x' }],
    ['a Blob body', '/x', { method: 'POST', body: new Blob(['x']) }],
    ['a FormData body', '/x', { method: 'POST', body: new FormData() }],
    ['a stream body', '/x', { method: 'POST', body: new ReadableStream(), duplex: 'half' } as RequestInit],
    // fetch sends a Headers object's inner list (names in the caller's case, in insertion order),
    // which no public API shows: iteration gives them lower-cased and sorted.
    ['a Headers object', '/x', { headers: new Headers({ B: 'b', a: 'a' }) }],
    ['header pairs', '/x', { headers: [['a', 'b']] }],
    ['a header name fetch rejects', '/x', { headers: { 'a b': 'c' } }],
    ['a value fetch would trim', '/x', { headers: { a: ' b' } }],
    ['a value with a newline', '/x', { headers: { a: 'b\nc' } }],
    ['a value beyond Latin-1', '/x', { headers: { a: 'ж' } }],
    ['two spellings of one name', '/x', { headers: { 'X-A': '1', 'x-a': '2' } }],
    ['a conditional request', '/x', { headers: { 'if-none-match': '"e"' } }],
    ['a range', '/x', { headers: { range: 'bytes=0-1' } }],
    [
      'an own __proto__ header (fetch drops it)',
      '/x',
      { headers: JSON.parse('{"__proto__":"a","x-b":"1"}') },
    ],
    ['a symbol key', '/x', { headers: { a: 'b', [Symbol('s')]: 'c' } as unknown as Record<string, string> }],
    [
      'an own Symbol.iterator',
      '/x',
      { headers: { a: 'b', [Symbol.iterator]: () => [][Symbol.iterator]() } as never },
    ],
    ['a non-enumerable header', '/x', { headers: Object.defineProperty({ a: 'b' }, 'c', { value: 'd' }) }],
    ['an encoded dot segment', '/a/%2e%2E/b', {}],
    ['a single encoded dot segment', '/a/%2e/b', {}],
    ['an empty query', '/a?', {}],
    [
      'a SharedArrayBuffer body',
      '/x',
      { method: 'POST', body: new Uint8Array(new SharedArrayBuffer(2)) as unknown as BodyInit },
    ],
    [
      'a resizable ArrayBuffer body',
      '/x',
      {
        method: 'POST',
        body: new (ArrayBuffer as unknown as new (n: number, o: object) => ArrayBuffer)(2, {
          maxByteLength: 4,
        }),
      },
    ],
    ['a sec-fetch-mode (fetch overwrites it)', '/x', { headers: { 'sec-fetch-mode': 'navigate' } }],
    ['a caller content-length', '/x', { method: 'POST', body: 'x', headers: { 'content-length': '1' } }],
    ['a cache mode', '/x', { cache: 'no-store' }],
    ['a manual redirect', '/x', { redirect: 'manual' }],
    ['credentials', '/x', { credentials: 'include' }],
    ['a path the URL parser would encode', '/a b', {}],
    ["a query with ' (encoded in http(s) queries)", "/x?a='", {}],
    ['a dot segment', '/a/../b', {}],
    ['a non-ASCII path', '/é', {}],
  ])('%s', (_name, path, init) => {
    expect(planDirect(ORIGIN, path, init)).toBeUndefined()
  })

  it('ignores keys whose value is undefined', () => {
    expect(
      planDirect(ORIGIN, '/x', { cache: undefined, mode: undefined } as unknown as RequestInit),
    ).toBeDefined()
  })
})

describe('matchesDispatched', () => {
  const plan = planDirect(ORIGIN, '/x', { headers: { 'x-a': '1' } })!
  const exact = { origin: ORIGIN, path: '/x', method: 'GET', headers: { ...plan.headers } }

  it('accepts the same options, with the ignored header anywhere', () => {
    expect(matchesDispatched(plan, exact, 'x-meshlet-timeout-ms')).toBe(true)
    const withDeadline = { ...exact, headers: { 'X-Meshlet-Timeout-Ms': '5', ...plan.headers } }
    expect(matchesDispatched(plan, withDeadline, 'x-meshlet-timeout-ms')).toBe(true)
  })

  it('refuses any difference: a value, a header more or less, the order, the case, the target', () => {
    const { accept, ...withoutAccept } = plan.headers
    const reordered = { accept, ...withoutAccept }
    const variants: unknown[] = [
      { ...exact, headers: { ...plan.headers, accept: 'x' } },
      { ...exact, headers: { ...plan.headers, extra: '1' } },
      { ...exact, headers: withoutAccept },
      { ...exact, headers: reordered },
      {
        ...exact,
        headers: Object.fromEntries(Object.entries(plan.headers).map(([k, v]) => [k.toUpperCase(), v])),
      },
      { ...exact, method: 'POST' },
      { ...exact, path: '/y' },
      { ...exact, origin: 'http://127.0.0.1:65001' },
      { ...exact, headers: Object.entries(plan.headers).flat() },
      null,
    ]
    for (const v of variants) expect(matchesDispatched(plan, v, 'x-meshlet-timeout-ms')).toBe(false)
  })
})

describe('directOrigin', () => {
  it.each([
    ['http://127.0.0.1:8080', true],
    ['https://users.internal', true],
    ['http://[::1]:8080', true],
    ['http://127.0.0.1:8080/', false], // not an origin: the path would double its slash
    ['http://127.0.0.1:80', false], // the parser drops the default port
    ['http://Users:8080', false], // the parser lower-cases the host
    ['http://127.0.0.1:6000', false], // a port fetch refuses (X11)
    ['ftp://127.0.0.1', false],
    ['not a url', false],
  ])('%s -> %s', (address, ok) => {
    expect(directOrigin(address)).toBe(ok ? address : undefined)
  })
})
