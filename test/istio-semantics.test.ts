/**
 * Acceptance (issue 22, Istio): Istio-shaped resources imported by `fromIstio` act as a sidecar
 * would, against real loopback servers: host names resolved as Istio resolves them (every name a
 * call may use reaches the service, distinct FQDNs stay distinct), faults without a percentage
 * inject nothing, Istio's defaults (no timeout, no retry of a 503, any method), the authority,
 * the gateway-error counter apart from the 5xx one, connection-pool limits that answer at once
 * or queue as Envoy does, and Istio's validation as a typed refusal.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigInvalidError, createMesh, type Mesh, withMesh } from '../src/index.js'
import { fromIstio } from '../src/mesh/istio/from-istio.js'
import { startServer, type TestServer } from './helpers/servers.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!()
})

async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler)
  cleanup.push(() => s.close())
  return s
}

function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(config)
  cleanup.push(() => m.close())
  return m
}

const named = (name: string) =>
  server((_req, res) => {
    res.end(name)
  })

const REVIEWS = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets:
  - name: v1
    labels: { version: v1 }
  - name: v2
    labels: { version: v2 }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: { end-user: { exact: jason } }
    route:
    - destination: { host: reviews, subset: v2 }
  - route:
    - destination: { host: reviews, subset: v1 }
`

describe('Istio host names', () => {
  it('reaches a short-host VirtualService by every name a call may use, and routes each alike', async () => {
    const v1 = await named('v1')
    const v2 = await named('v2')
    const ratings = await named('ratings')
    const { config, unsupported } = fromIstio(
      [
        REVIEWS,
        // Only a DestinationRule, by its full name.
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ratings, namespace: default }
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }`,
      ],
      {
        reviews: [
          { url: v1.url, labels: { version: 'v1' } },
          { url: v2.url, labels: { version: 'v2' } },
        ],
        'ratings.default.svc.cluster.local': [ratings.url],
      },
    )
    expect(unsupported).toEqual([])
    expect(config.services['reviews']?.hosts).toEqual([
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
    ])
    const f = withMesh(fetch, mesh(config))
    for (const host of [
      'reviews',
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
    ]) {
      expect(await (await f(`http://${host}:9080/reviews/0`)).text(), host).toBe('v1')
      const jason = await f(`http://${host.toUpperCase()}:9080/reviews/0`, {
        headers: { 'end-user': 'jason' },
      })
      expect(await jason.text(), host).toBe('v2')
    }
    for (const host of [
      'ratings',
      'ratings.default',
      'ratings.default.svc',
      'ratings.default.svc.cluster.local',
    ]) {
      expect(await (await f(`http://${host}:9080/ratings/0`)).text(), host).toBe('ratings')
    }
    expect(v1.requests + v2.requests + ratings.requests).toBe(12)
  })

  it('keeps api.foo.com and api.bar.com two services, each call on its own endpoint', async () => {
    const foo = await named('foo')
    const bar = await named('bar')
    const { config, unsupported } = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: foo }
spec:
  hosts: [api.foo.com]
  http:
  - timeout: 3s
    route:
    - destination: { host: api.foo.com }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bar }
spec:
  hosts: [api.bar.com]
  http:
  - route:
    - destination: { host: api.bar.com }`,
      { 'api.foo.com': [foo.url], 'api.bar.com': [bar.url] },
    )
    expect(unsupported).toEqual([])
    expect(Object.keys(config.services).sort()).toEqual(['api.bar.com', 'api.foo.com'])
    expect(config.routes?.map((r) => r.match)).toEqual([[{ host: 'api.foo.com' }], [{ host: 'api.bar.com' }]])
    const f = withMesh(fetch, mesh(config))
    expect(await (await f('http://api.foo.com/x')).text()).toBe('foo')
    expect(await (await f('http://api.bar.com/x')).text()).toBe('bar')
    expect([foo.requests, bar.requests]).toEqual([1, 1])
  })

  it('sends calls for ServiceEntry hosts to the endpoints each entry lists', async () => {
    const foo = await named('foo')
    const bar = await named('bar')
    const entry = (name: string, host: string, port: number) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name} }
spec:
  hosts: [${host}]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { http: ${port} } }]
`
    const { config, unsupported } = fromIstio([
      entry('foo', 'api.foo.com', foo.port),
      entry('bar', 'api.bar.com', bar.port),
    ])
    expect(unsupported).toEqual([])
    const f = withMesh(fetch, mesh(config))
    expect(await (await f('http://api.bar.com/x')).text()).toBe('bar')
    expect(await (await f('http://API.foo.com/x')).text()).toBe('foo')
    expect([foo.requests, bar.requests]).toEqual([1, 1])
  })

  it('resolves short hosts in the namespace option and the cluster domain option', () => {
    const { config } = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec: { host: reviews }`,
      undefined,
      { namespace: 'shop', clusterDomain: 'corp.internal', defaults: 'meshlet' },
    )
    expect(config.services).toEqual({
      reviews: { hosts: ['reviews.shop', 'reviews.shop.svc', 'reviews.shop.svc.corp.internal'] },
    })
    // A resource's own namespace wins; from the calling namespace its bare name does not reach it.
    const other = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: prod }
spec: { host: reviews }`,
      undefined,
      { namespace: 'shop', defaults: 'meshlet' },
    )
    expect(other.config.services).toEqual({
      'reviews.prod': { hosts: ['reviews.prod.svc', 'reviews.prod.svc.cluster.local'] },
    })
  })
})

describe("Istio's defaults", () => {
  it('injects no fault when the fault has no percentage', async () => {
    const upstream = await named('ok')
    const { config, unsupported } = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings }
spec:
  hosts: [ratings]
  http:
  - fault:
      abort: { httpStatus: 500 }
      delay: { fixedDelay: 7s }
    route:
    - destination: { host: ratings }`,
      { ratings: [upstream.url] },
    )
    expect(config.routes?.[0]?.fault).toBeUndefined()
    expect(unsupported).toHaveLength(2)
    const f = withMesh(fetch, mesh(config))
    const res = await f('http://ratings/ratings/0')
    expect([res.status, await res.text()]).toEqual([200, 'ok'])
  })

  it("gives a rule without timeout or retries Istio's: no timeout, no retry of a 503, any method retried", async () => {
    const answers = await server((_req, res) => {
      res.statusCode = 503
      res.end()
    })
    const resources = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: details }
spec:
  hosts: [details]
  http:
  - route:
    - destination: { host: details }`
    const { config } = fromIstio(resources, { details: [answers.url] })
    const resolved = mesh(config).config.services['details']!
    expect(resolved.timeout).toBe(0)
    expect(resolved.retry).toMatchObject({
      attempts: 3,
      retryOn: ['connect-failure', 'refused-stream'],
      retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED'],
      methods: ['*'],
      budget: { kind: 'none' },
      backoff: { base: 25, max: 250 },
    })
    const f = withMesh(fetch, mesh(config))
    expect((await f('http://details/details/0')).status).toBe(503)
    expect(answers.requests).toBe(1) // 503 left Istio's default retry conditions (istio/istio#52111)

    // meshlet's own defaults on request: 15 s, 3 tries on 5xx for idempotent methods, a budget.
    const own = fromIstio(resources, { details: [answers.url] }, { defaults: 'meshlet' })
    const meshlet = mesh(own.config)
    expect(meshlet.config.services['details']?.timeout).toBe(15_000)
    const g = withMesh(fetch, meshlet)
    expect((await g('http://details/details/0')).status).toBe(503)
    expect(answers.requests).toBe(4)
  })

  it('retries a POST on a refused connection under Istio defaults (any method)', async () => {
    const live = await named('live')
    const dead = await startServer(() => {})
    await dead.close() // its port now refuses connections
    const { config } = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: details }
spec:
  host: details
  trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } }`,
      { details: [dead.url, live.url] },
    )
    const f = withMesh(fetch, mesh(config))
    for (let i = 0; i < 4; i++) {
      const res = await f('http://details/orders', { method: 'POST', body: 'x' })
      expect(await res.text()).toBe('live')
    }
  })

  it('maps rewrite.authority to the route host rewrite and gives each service the authority a sidecar sends', () => {
    const { config } = fromIstio(
      `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings }
spec:
  hosts: [ratings]
  http:
  - rewrite: { authority: ratings.internal }
    route:
    - destination: { host: ratings, port: { number: 8080 } }`,
      {
        reviews: [
          { url: 'http://10.0.0.1:9080', labels: { version: 'v1' } },
          { url: 'http://10.0.0.2:9080', labels: { version: 'v2' } },
        ],
        ratings: ['http://10.0.0.3:9999'],
      },
    )
    expect(config.routes?.[2]?.rewrite).toEqual({ host: 'ratings.internal' })
    expect(config.services['reviews']?.authority).toBe('reviews:9080')
    // The destination's port is the service's port, which the app called.
    expect(config.services['ratings']?.authority).toBe('ratings:8080')
    // The scheme's default port is left out, as a URL leaves it out; ports that differ give none.
    const ports = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec: { host: api.foo.com }`,
      {
        'api.foo.com': ['https://10.0.0.5'],
        web: ['http://10.0.0.6:80'],
        mixed: ['http://10.0.0.7:8080', 'http://10.0.0.8:8081'],
      },
    )
    expect(ports.config.services['api.foo.com']?.authority).toBe('api.foo.com')
    expect(ports.config.services['web']?.authority).toBe('web')
    expect(ports.config.services['mixed']?.authority).toBeUndefined()
    const own = fromIstio(REVIEWS, { reviews: ['http://10.0.0.1:9080'] }, { defaults: 'meshlet' })
    expect(own.config.services['reviews']?.authority).toBeUndefined()
  })
})

describe('Istio outlier detection and connection pool', () => {
  const rule = (policy: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: details }
spec:
  host: details
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
${policy}`

  it('ejects on consecutiveGatewayErrors (502, 503, 504) apart from the 5xx count', async () => {
    const good = await named('good')
    const gateway = await server((_req, res) => {
      res.statusCode = 503
      res.end()
    })
    const internal = await server((_req, res) => {
      res.statusCode = 500
      res.end()
    })
    const { config } = fromIstio(
      rule(`    outlierDetection:
      consecutive5xxErrors: 0
      consecutiveGatewayErrors: 2
      maxEjectionPercent: 100
      consecutiveErrors: 1`),
      { details: [good.url, gateway.url, internal.url] },
    )
    expect(config.services['details']?.outlierDetection).toMatchObject({
      consecutiveFailures: 0,
      consecutiveGatewayFailures: 2,
      maxEjectionPercent: 100,
    })
    const f = withMesh(fetch, mesh(config))
    for (let i = 0; i < 30; i++) await (await f('http://details/x')).arrayBuffer()
    // The 503 endpoint went out at its second gateway error; the 500 one counts for no counter.
    expect(gateway.requests).toBe(2)
    expect(good.requests + internal.requests).toBe(28)
    expect(internal.requests).toBeGreaterThanOrEqual(12) // never ejected: it shared every round
  })

  it('reads maxEjectionPercent 0 as unset and ignores the deprecated consecutiveErrors, with a note', () => {
    const { config, unsupported } = fromIstio(
      rule(`    outlierDetection: { consecutiveErrors: 3, maxEjectionPercent: 0 }`),
      undefined,
      { defaults: 'meshlet' },
    )
    expect(config.services['details']?.outlierDetection).toEqual({
      consecutiveFailures: 5,
      successRateEjection: { enforcementPercentage: 0 },
      panicThreshold: 0,
    })
    expect(unsupported).toEqual([
      'DestinationRule details: trafficPolicy.outlierDetection.consecutiveErrors (not applied, as Istio: outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead)',
    ])
  })

  it('answers at once over http2MaxRequests, and queues over maxConnections without a limit when pending is 0', async () => {
    const held: Array<() => void> = []
    const slow = await server((_req, res) => {
      held.push(() => res.end('done'))
    })
    const full = fromIstio(rule(`    connectionPool: { http: { http2MaxRequests: 1 } }`), {
      details: [slow.url],
    })
    expect(full.config.services['details']?.concurrency).toEqual({ max: 1, queue: 0 })
    const f = withMesh(fetch, mesh(full.config))
    const first = f('http://details/a')
    await expect(f('http://details/b')).rejects.toMatchObject({ code: 'BULKHEAD_FULL' })
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5))
    held.shift()!()
    expect(await (await first).text()).toBe('done')

    const pending = fromIstio(
      rule(`    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 0 } }`),
      { details: [slow.url] },
    )
    expect(pending.config.services['details']?.concurrency).toEqual({
      max: 1,
      queue: 1_000_000,
      queueTimeout: 2_147_483_647,
    })
    const g = withMesh(fetch, mesh(pending.config))
    const calls = [g('http://details/c'), g('http://details/d'), g('http://details/e')]
    for (let released = 0; released < 3; released++) {
      while (held.length === 0) await new Promise((r) => setTimeout(r, 5))
      expect(slow.requests).toBe(2 + released) // one at a time: the others wait, none refused
      held.shift()!()
    }
    expect(await Promise.all(calls.map(async (c) => (await c).text()))).toEqual(['done', 'done', 'done'])
  })
})

describe("Istio's validation", () => {
  it('refuses retries with a perTryTimeout but no attempts, naming the resource and path', () => {
    const attempt = () =>
      fromIstio(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - retries: { perTryTimeout: 2s }
    route:
    - destination: { host: reviews }
  - fault: { abort: { httpStatus: 503, percentage: { value: 150 } } }
    route:
    - destination: { host: reviews }`)
    expect(attempt).toThrow(ConfigInvalidError)
    try {
      attempt()
    } catch (error) {
      expect((error as ConfigInvalidError).code).toBe('CONFIG_INVALID')
      expect((error as ConfigInvalidError).issues).toEqual([
        {
          path: 'VirtualService reviews: http[0].retries',
          message: 'http retry policy configured when attempts are set to 0 (disabled)',
        },
        {
          path: 'VirtualService reviews: http[1].fault.abort.percentage',
          message: 'percentage 150 is neither 0.0, nor in range [0.0001, 100.0]',
        },
      ])
      expect((error as Error).message).toMatch(/^fromIstio: Istio's validation refuses \(2 problems\)/)
    }
  })

  it('refuses what Istio refuses in retries, faults, rewrites and destination rules', () => {
    const issues = (text: string) => {
      try {
        fromIstio(text)
        return []
      } catch (error) {
        return (error as ConfigInvalidError).issues.map((i) => `${i.path}: ${i.message}`)
      }
    }
    const vs = (http: string) =>
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: r }\nspec:\n  hosts: [r]\n  http:\n${http}`
    expect(issues(vs('  - retries: { attempts: -1 }\n    route: [{ destination: { host: r } }]'))).toEqual([
      'VirtualService r: http[0].retries.attempts: attempts cannot be negative',
    ])
    expect(
      issues(
        vs(
          '  - retries: { attempts: 2, retryOn: "5xx,sometimes" }\n    route: [{ destination: { host: r } }]',
        ),
      ),
    ).toEqual(['VirtualService r: http[0].retries.retryOn: "sometimes" is not a valid retryOn policy'])
    expect(
      issues(
        vs(
          '  - retries: { attempts: 2, retryOn: "5xx, 503,599" }\n    route: [{ destination: { host: r } }]',
        ),
      ),
    ).toEqual([
      'VirtualService r: http[0].retries.retryOn: " 503" is not a valid retryOn policy',
      'VirtualService r: http[0].retries.retryOn: "599" is not a valid retryOn policy',
    ])
    expect(issues(vs('  - timeout: 0s\n    route: [{ destination: { host: r } }]'))).toEqual([
      'VirtualService r: http[0].timeout: duration must be greater than 1ms, got "0s"',
    ])
    expect(issues(vs('  - fault: {}\n    route: [{ destination: { host: r } }]'))).toEqual([
      'VirtualService r: http[0].fault: HTTP fault injection must have an abort and/or a delay',
    ])
    expect(issues(vs('  - rewrite: {}\n    route: [{ destination: { host: r } }]'))).toEqual([
      'VirtualService r: http[0].rewrite: rewrite must specify at least one of URI, UriRegexRewrite, or authority',
    ])
    expect(issues(vs('  - route: [{ destination: { host: r, subset: V_1 } }]'))).toEqual([
      'VirtualService r: http[0].route[0].destination.subset: subset name is invalid: V_1',
    ])
    const dr = (spec: string) =>
      `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: r }\nspec:\n  host: r\n${spec}`
    expect(issues(dr('  trafficPolicy: {}'))).toEqual([
      'DestinationRule r: trafficPolicy: traffic policy must have at least one field',
    ])
    expect(issues(dr('  trafficPolicy: { outlierDetection: { maxEjectionPercent: 120 } }'))).toEqual([
      'DestinationRule r: trafficPolicy.outlierDetection.maxEjectionPercent: percentage 120 is not in range 0..100',
    ])
    expect(issues(dr('  trafficPolicy: { connectionPool: { http: { http2MaxRequests: -1 } } }'))).toEqual([
      'DestinationRule r: trafficPolicy.connectionPool.http.http2MaxRequests: http2 max requests must be non-negative',
    ])
  })
})
