/**
 * Regular expressions in routes, through createMesh and withMesh: RE2 syntax and full matches on
 * header, query and path matchers (and Istio's regexes through fromIstio), refusals at parse
 * naming the path, and the ReDoS reproductions of issue 23 answered at once.
 */
import { describe, expect, it } from 'vitest'
import {
  ConfigInvalidError,
  type Context,
  createMesh,
  ENDPOINT,
  fromIstio,
  type HttpRequest,
  type MeshConfig,
  withMesh,
} from '../src/index.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'

const reviews = {
  endpoints: [
    { url: 'http://10.1.0.1:9080', labels: { version: 'v1' } },
    { url: 'http://10.1.0.2:9080', labels: { version: 'v2' } },
  ],
  subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
}

/** A mesh on virtual time whose transport records the version label of each attempt's endpoint. */
function virtual(routes: MeshConfig['routes']) {
  const versions: string[] = []
  const transport = async (_req: HttpRequest, ctx: Context) => {
    versions.push(ctx.get(ENDPOINT)!.labels.version ?? '?')
    return new Response('ok')
  }
  const mesh = createMesh(
    { services: { reviews }, routes },
    { clock: new ManualClock(), random: seededRandom(1), httpTransport: transport },
  )
  const f = withMesh(fetch, mesh)
  /** The version a call lands on (the service's own route spreads over both otherwise). */
  const land = async (url: string, init?: RequestInit): Promise<string> => {
    await f(url, init)
    return versions.at(-1)!
  }
  return { mesh, land }
}

const toV2 = (match: NonNullable<MeshConfig['routes']>[number]['match']) => [
  { match, route: [{ service: 'reviews', subset: 'v2' }] },
  { route: [{ service: 'reviews', subset: 'v1' }] },
]

function refusal(routes: MeshConfig['routes']): ConfigInvalidError {
  try {
    createMesh({ services: { reviews }, routes })
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigInvalidError)
    return e as ConfigInvalidError
  }
  throw new Error('expected the config to be refused')
}

describe('regex matchers run RE2, matching the whole value', () => {
  it('header regex: full match, RE2 classes and flags', async () => {
    const { mesh, land } = virtual(
      toV2([
        { headers: { 'x-version': { regex: '^v[0-9]+\\.[0-9]+$' } } },
        { headers: { 'x-name': { regex: '\\pL+' } } },
        { headers: { 'x-flag': { regex: '(?i)on|yes' } } },
      ]),
    )
    const h = (headers: Record<string, string>) => land('http://reviews/', { headers })
    expect(await h({ 'x-version': 'v1.2' })).toBe('v2')
    expect(await h({ 'x-version': 'v1.2-beta' })).toBe('v1') // whole value, not a substring
    expect(await h({ 'x-version': 'xv1.2' })).toBe('v1')
    expect(await h({ 'x-name': 'Zoë' })).toBe('v2') // \pL: any letter, as RE2
    expect(await h({ 'x-name': 'zoe1' })).toBe('v1')
    expect(await h({ 'x-flag': 'ON' })).toBe('v2') // (?i) is RE2's inline flag
    expect(await h({ 'x-flag': 'Yes' })).toBe('v2')
    expect(await h({ 'x-flag': 'onward' })).toBe('v1')
    expect(await h({})).toBe('v1') // an absent header never matches a regex
    await mesh.close()
  })

  it('query regex matches the decoded value in full', async () => {
    const { mesh, land } = virtual(toV2([{ query: { tenant: { regex: 't-[0-9]{2,4}' } } }]))
    expect(await land('http://reviews/x?tenant=t-42')).toBe('v2')
    expect(await land('http://reviews/x?tenant=t-42x')).toBe('v1')
    expect(await land('http://reviews/x?tenant=%74-123')).toBe('v2')
    expect(await land('http://reviews/x?other=t-42')).toBe('v1')
    await mesh.close()
  })

  it('path regex matches the whole path without its query, as Envoy', async () => {
    const { mesh, land } = virtual(toV2([{ path: { regex: '/api/v[0-9]+/users/[^/]+' } }]))
    expect(await land('http://reviews/api/v2/users/42')).toBe('v2')
    expect(await land('http://reviews/api/v2/users/42?x=/y')).toBe('v2')
    expect(await land('http://reviews/api/v2/users/42/orders')).toBe('v1')
    expect(await land('http://reviews/v0/api/v2/users/42')).toBe('v1')
    await mesh.close()
  })

  it('literal patterns (the fast path) still mean what RE2 means', async () => {
    const { mesh, land } = virtual(
      toV2([{ headers: { 'x-canary': { regex: 'canary' } } }, { path: { regex: '^/beta/.*$' } }]),
    )
    expect(await land('http://reviews/', { headers: { 'x-canary': 'canary' } })).toBe('v2')
    expect(await land('http://reviews/', { headers: { 'x-canary': 'canary2' } })).toBe('v1')
    expect(await land('http://reviews/beta/x/y')).toBe('v2')
    expect(await land('http://reviews/bet/x')).toBe('v1')
    await mesh.close()
  })
})

describe('regexes that are not RE2 are refused at parse, naming the path', () => {
  it('refuses lookaround and backreferences with re2js reason', () => {
    const e = refusal(
      toV2([
        { headers: { 'x-a': { regex: '(?=a)a' } } },
        { query: { q: { regex: '(a)\\1' } } },
        { path: { regex: '/(?<!x)y' } },
      ]),
    )
    expect(e.issues.map((i) => i.path)).toEqual([
      'routes[0].match[0].headers.x-a.regex',
      'routes[0].match[1].query.q.regex',
      'routes[0].match[2].path.regex',
    ])
    expect(e.issues[0]!.message).toContain('invalid or unsupported Perl syntax: `(?=`')
    expect(e.issues[1]!.message).toContain('invalid escape sequence: `\\1`')
  })

  it('refuses a pattern over the program bound quickly', () => {
    const start = performance.now()
    const e = refusal(toV2([{ headers: { 'x-a': { regex: '[a-z]{1000}'.repeat(1000) } } }]))
    // Compiling it would take about a second; the unit test holds the refusal itself to 50 ms.
    expect(performance.now() - start).toBeLessThan(250)
    expect(e.issues[0]!.path).toBe('routes[0].match[0].headers.x-a.regex')
    expect(e.issues[0]!.message).toMatch(/over the 32768 allowed/)
  })
})

describe('the ReDoS reproductions of issue 23', () => {
  it('a header rule (a+)+b against 27 a answers at once (V8 blocked the loop 3-5 s)', async () => {
    const { mesh, land } = virtual(toV2([{ headers: { 'x-a': { regex: '(a+)+b' } } }]))
    const start = performance.now()
    expect(await land('http://reviews/', { headers: { 'x-a': 'a'.repeat(27) } })).toBe('v1')
    expect(performance.now() - start).toBeLessThan(250) // ~0.1 ms; V8's backtracking took seconds
    expect(await land('http://reviews/', { headers: { 'x-a': `${'a'.repeat(27)}b` } })).toBe('v2')
    await mesh.close()
  })

  it('a header regex against a 100 KB value routes in well under a second, correctly', async () => {
    const { mesh, land } = virtual(toV2([{ headers: { 'x-a': { regex: '(a+)+b' } } }]))
    const value = 'a'.repeat(100_000)
    await land('http://reviews/', { headers: { 'x-a': 'aab' } }) // warm
    const start = performance.now()
    expect(await land('http://reviews/', { headers: { 'x-a': value } })).toBe('v1')
    expect(await land('http://reviews/', { headers: { 'x-a': `${value}b` } })).toBe('v2')
    // The regex itself is held to 10 ms in regex.test.ts; here the whole call, headers and all.
    expect(performance.now() - start).toBeLessThan(1000)
    await mesh.close()
  })

  it('a template with several params in one segment does not backtrack', async () => {
    const { mesh, land } = virtual(toV2([{ path: { template: '/{a}{b}{c}{d}{e}{f}/x' } }]))
    const start = performance.now()
    expect(await land(`http://reviews/${'a'.repeat(3_000)}/y`)).toBe('v1')
    expect(performance.now() - start).toBeLessThan(250) // V8: O(n^6) on this path
    expect(await land('http://reviews/abcdef/x')).toBe('v2')
    await mesh.close()
  })
})

describe('Istio regexes mean what they mean in Istio', () => {
  it('keeps RE2 syntax through fromIstio and routes by it', async () => {
    const yaml = [
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets:
  - { name: v1, labels: { version: v1 } }
  - { name: v2, labels: { version: v2 } }`,
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: { end-user: { regex: "(?i)jason|[[:digit:]]+" } }
    - uri: { regex: "/items/(?P<id>[0-9]+)" }
    route:
    - destination: { host: reviews, subset: v2 }
  - route:
    - destination: { host: reviews, subset: v1 }`,
    ]
    const { config, unsupported } = fromIstio(yaml, { reviews: reviews.endpoints })
    expect(unsupported).toEqual([])
    const versions: string[] = []
    const mesh = createMesh(config, {
      clock: new ManualClock(),
      httpTransport: async (_req, ctx) => {
        versions.push(ctx.get(ENDPOINT)!.labels.version ?? '?')
        return new Response('ok')
      },
    })
    const f = withMesh(fetch, mesh)
    await f('http://reviews/', { headers: { 'end-user': 'JASON' } })
    await f('http://reviews/', { headers: { 'end-user': '12345' } })
    await f('http://reviews/', { headers: { 'end-user': 'jasonx' } })
    await f('http://reviews/items/42')
    await f('http://reviews/items/42/x')
    expect(versions).toEqual(['v2', 'v2', 'v1', 'v2', 'v1'])
    await mesh.close()
  })
})
