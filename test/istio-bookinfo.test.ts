/**
 * Acceptance: Istio's Bookinfo `reviews` VirtualService and DestinationRule (v1/v2/v3 subsets,
 * weighted and header routes) import and route as Istio would, the `ratings` fault rules import
 * with their percentages and act on the manual clock, and an unsupported field is reported, not
 * ignored. The fixtures are Istio's own files, kept in the shared directory beside the clone.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { type Context, createMesh, ENDPOINT, type HttpRequest, withMesh } from '../src/index.js'
import { fromIstio } from '../src/mesh/istio/from-istio.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'

const repoRoot = fileURLToPath(new URL('..', import.meta.url))
// Istio's own files, vendored unchanged in test/fixtures (Apache-2.0, see its README);
// MESHLET_SHARED points at another copy (the project's shared fixtures) when set.
const fixtures = process.env['MESHLET_SHARED']
  ? resolve(process.env['MESHLET_SHARED'], 'fixtures', 'istio-bookinfo')
  : join(repoRoot, 'test', 'fixtures', 'istio-bookinfo')

const fixture = (name: string): string => readFileSync(join(fixtures, name), 'utf8')
// Istio's current form of the samples whose 2018 form current pilot reads differently.
const current = (name: string): string =>
  readFileSync(join(repoRoot, 'test', 'fixtures', 'istio-current', name), 'utf8')

beforeAll(() => {
  if (!existsSync(join(fixtures, 'destination-rule-all.yaml'))) {
    throw new Error(
      `Istio Bookinfo fixtures not found in ${fixtures}: they ship in test/fixtures/istio-bookinfo, ` +
        'or set MESHLET_SHARED to a directory holding fixtures/istio-bookinfo',
    )
  }
})

/** Two endpoints per version, labelled as Bookinfo's pods are, for every Bookinfo service. */
const endpoints = {
  productpage: [{ url: 'http://10.0.1.1:9080', labels: { version: 'v1' } }],
  details: ['v1', 'v2'].map((version, i) => ({ url: `http://10.0.2.${i + 1}:9080`, labels: { version } })),
  ratings: ['v1', 'v2'].map((version, i) => ({ url: `http://10.0.3.${i + 1}:9080`, labels: { version } })),
  reviews: ['v1', 'v1', 'v2', 'v2', 'v3', 'v3'].map((version, i) => ({
    url: `http://10.0.4.${i + 1}:9080`,
    labels: { version },
  })),
}

/** A transport that answers at once and records which version served each call. */
function versionTransport() {
  const served: string[] = []
  const transport = async (_req: HttpRequest, ctx: Context) => {
    const version = ctx.get(ENDPOINT)!.labels['version'] ?? 'none'
    served.push(version)
    return new Response(version)
  }
  return { transport, served }
}

const count = (list: readonly string[], value: string) => list.filter((v) => v === value).length

describe('Istio Bookinfo: reviews', () => {
  it('imports the DestinationRule subsets and the 90/10 VirtualService with nothing left out', () => {
    const { config, unsupported } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-reviews-90-10.yaml')],
      endpoints,
    )
    expect(unsupported).toEqual([])
    expect(config.services['reviews']?.subsets).toEqual({
      v1: { version: 'v1' },
      v2: { version: 'v2' },
      v3: { version: 'v3' },
    })
    expect(config.routes).toEqual([
      {
        name: 'reviews.http[0]',
        match: [{ host: 'reviews' }],
        route: [
          { service: 'reviews', subset: 'v1', weight: 90 },
          { service: 'reviews', subset: 'v2', weight: 10 },
        ],
      },
    ])
  })

  it('splits 10,000 seeded calls 90/10 between v1 and v2 (within 1.5%), none to v3', async () => {
    const { config } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-reviews-90-10.yaml')],
      endpoints,
    )
    const { transport, served } = versionTransport()
    const mesh = createMesh(config, { httpTransport: transport, random: seededRandom(1) })
    const f = withMesh(fetch, mesh)
    for (let i = 0; i < 10_000; i++) await (await f(`http://reviews:9080/reviews/${i}`)).text()
    expect(served).toHaveLength(10_000)
    expect(Math.abs(count(served, 'v1') / 10_000 - 0.9)).toBeLessThanOrEqual(0.015)
    expect(count(served, 'v1') + count(served, 'v2')).toBe(10_000)
    await mesh.close()
  })

  it('sends every call from end-user jason to v2 and every other call to v3', async () => {
    const { config, unsupported } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-reviews-jason-v2-v3.yaml')],
      endpoints,
    )
    expect(unsupported).toEqual([])
    const { transport, served } = versionTransport()
    const mesh = createMesh(config, { httpTransport: transport, random: seededRandom(1) })
    const f = withMesh(fetch, mesh)
    for (let i = 0; i < 500; i++) {
      await (await f('http://reviews:9080/reviews/1', { headers: { 'end-user': 'jason' } })).text()
    }
    expect(served).toEqual(Array(500).fill('v2'))
    served.length = 0
    for (let i = 0; i < 500; i++) {
      const headers = i % 2 === 0 ? { 'end-user': 'someone-else' } : {}
      await (await f('http://reviews:9080/reviews/1', { headers })).text()
    }
    expect(served).toEqual(Array(500).fill('v3'))
    await mesh.close()
  })

  it('routes calls by every Kubernetes name of reviews alike (Istio resolves the short host)', async () => {
    const { config } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-reviews-jason-v2-v3.yaml')],
      endpoints,
    )
    const { transport, served } = versionTransport()
    const mesh = createMesh(config, { httpTransport: transport, random: seededRandom(1) })
    const f = withMesh(fetch, mesh)
    const names = ['reviews', 'reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local']
    for (const host of names) {
      await (await f(`http://${host}:9080/reviews/1`, { headers: { 'end-user': 'jason' } })).text()
      await (await f(`http://${host}:9080/reviews/1`)).text()
    }
    expect(served).toEqual(names.flatMap(() => ['v2', 'v3']))
    await mesh.close()
  })
})

describe('Istio Bookinfo: ratings faults', () => {
  it('imports the abort rule (100% with 500 for jason) and answers it without calling ratings', async () => {
    const { config, unsupported } = fromIstio(
      [fixture('destination-rule-all.yaml'), current('virtual-service-ratings-test-abort.yaml')],
      endpoints,
    )
    expect(unsupported).toEqual([])
    expect(config.routes?.[0]).toMatchObject({
      match: [{ host: 'ratings', headers: { 'end-user': { exact: 'jason' } } }],
      fault: { abort: { percent: 100, status: 500 } },
      route: [{ service: 'ratings', subset: 'v1' }],
    })
    expect(config.routes?.[1]?.fault).toBeUndefined()
    const { transport, served } = versionTransport()
    const mesh = createMesh(config, { httpTransport: transport, random: seededRandom(1) })
    const f = withMesh(fetch, mesh)
    for (let i = 0; i < 100; i++) {
      const res = await f('http://ratings:9080/ratings/0', { headers: { 'end-user': 'jason' } })
      expect(res.status).toBe(500)
    }
    expect(served).toEqual([])
    expect((await f('http://ratings:9080/ratings/0')).status).toBe(200)
    expect(served).toEqual(['v1'])
    await mesh.close()
  })

  it("aborts nothing with the 2018 sample's integer percent on the abort, which current pilot no longer reads", () => {
    const { config, unsupported } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-ratings-test-abort.yaml')],
      endpoints,
    )
    expect(config.routes?.[0]?.fault).toBeUndefined()
    expect(unsupported).toEqual([
      'VirtualService ratings: http[0].fault.abort.percent (deprecated: Istio reads it for delays only, use percentage)',
      'VirtualService ratings: http[0].fault.abort (no percentage: Istio aborts no call, nor does meshlet)',
    ])
  })

  it('imports the delay rule (100% for 7 s for jason) and delays on the manual clock', async () => {
    const { config, unsupported } = fromIstio(
      [fixture('destination-rule-all.yaml'), fixture('virtual-service-ratings-test-delay.yaml')],
      endpoints,
    )
    expect(unsupported).toEqual([])
    expect(config.routes?.[0]?.fault).toEqual({ delay: { percent: 100, duration: '7s' } })
    const clock = new ManualClock()
    const { transport, served } = versionTransport()
    const mesh = createMesh(config, { httpTransport: transport, random: seededRandom(1), clock })
    const f = withMesh(fetch, mesh)
    const call = f('http://ratings:9080/ratings/0', { headers: { 'end-user': 'jason' } })
    await clock.advance(6999)
    expect(served).toEqual([])
    await clock.advance(1)
    expect((await call).status).toBe(200)
    expect(served).toEqual(['v1'])
    await mesh.close()
  })
})

describe('Istio Bookinfo: what is not imported', () => {
  it('lists an unsupported field with its resource and path, and imports the rest', () => {
    const withExtras = `${fixture('destination-rule-all.yaml')}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-tls
spec:
  host: reviews-tls
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - corsPolicy:
      allowOrigins:
      - exact: https://bookinfo.example
    route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v2
      weight: 10
`
    const { config, unsupported } = fromIstio(withExtras, endpoints)
    expect(unsupported).toContain(
      'VirtualService reviews: http[0].corsPolicy (a browser policy, not a client one)',
    )
    expect(unsupported).toContain('DestinationRule reviews-tls: trafficPolicy.tls')
    expect(unsupported).toHaveLength(2)
    expect(config.routes?.[0]?.route).toEqual([
      { service: 'reviews', subset: 'v1', weight: 90 },
      { service: 'reviews', subset: 'v2', weight: 10 },
    ])
  })
})
