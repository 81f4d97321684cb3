/**
 * fromIstio field by field: what each Istio field becomes, that the result validates, and that
 * every field it does not translate is listed with its path instead of being dropped.
 */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../config/config.js'
import { createMesh } from '../mesh.js'
import { fromIstio, istioDuration } from './from-istio.js'

const vs = (spec: string, name = 'reviews', apiVersion = 'networking.istio.io/v1') =>
  `apiVersion: ${apiVersion}\nkind: VirtualService\nmetadata:\n  name: ${name}\nspec:\n${spec}`
const dr = (spec: string, name = 'reviews') =>
  `apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n  name: ${name}\nspec:\n${spec}`
const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => (l === '' ? l : `  ${l}`))
    .join('\n')
const REVIEWS_DR = dr(
  indent(`host: reviews
subsets:
- name: v1
  labels: { version: v1 }
- name: v2
  labels: { version: v2 }`),
)
const endpoints = {
  reviews: [
    { url: 'http://10.0.0.1:9080', labels: { version: 'v1' } },
    { url: 'http://10.0.0.2:9080', labels: { version: 'v2' } },
  ],
}

/** One http rule of a `reviews` VirtualService, translated; `unsupported` as well. */
function rule(http: string, hosts = '[reviews]') {
  const { config, unsupported } = fromIstio(
    [REVIEWS_DR, vs(indent(`hosts: ${hosts}\nhttp:\n${http}`))],
    endpoints,
  )
  parseConfig(config)
  return { route: config.routes?.[0], routes: config.routes ?? [], unsupported }
}

describe('fromIstio: VirtualService http rules', () => {
  it('names a service by the shortest host a call may use, the others as its hosts', () => {
    const text = vs(
      indent(`hosts: [reviews.prod.svc.cluster.local]
http:
- route:
  - destination: { host: reviews.prod.svc.cluster.local }`),
    )
    const { config, unsupported } = fromIstio(text, undefined, { defaults: 'meshlet', namespace: 'default' })
    expect(unsupported).toEqual([])
    expect(config.services).toEqual({
      'reviews.prod': { hosts: ['reviews.prod.svc', 'reviews.prod.svc.cluster.local'] },
    })
    expect(config.routes).toEqual([
      { name: 'reviews.http[0]', match: [{ host: 'reviews.prod' }], route: [{ service: 'reviews.prod' }] },
    ])
    // From namespace prod, the bare name reaches it too.
    const same = fromIstio(text, undefined, { defaults: 'meshlet', namespace: 'prod' })
    expect(same.config.services).toEqual({
      reviews: { hosts: ['reviews.prod', 'reviews.prod.svc', 'reviews.prod.svc.cluster.local'] },
    })
  })

  it('translates uri, method, headers and query params, one clause per Istio match block', () => {
    const { route, unsupported } = rule(`- name: api
  match:
  - uri: { prefix: /api/ }
    method: { exact: GET }
    headers:
      end-user: { exact: jason }
      x-canary: {}
      x-tenant: { regex: "t-(?P<n>[0-9]+)" }
    queryParams:
      debug: { exact: "1" }
  - uri: { regex: "/v[0-9]+/items" }
    method: { regex: "PUT|POST" }
    withoutHeaders:
      x-internal: {}
  route:
  - destination: { host: reviews, subset: v2 }`)
    expect(unsupported).toEqual([])
    expect(route).toEqual({
      name: 'api',
      match: [
        {
          host: 'reviews',
          path: { prefix: '/api/' },
          methods: ['GET'],
          headers: {
            'end-user': { exact: 'jason' },
            'x-canary': { present: true },
            'x-tenant': { regex: 't-(?P<n>[0-9]+)' },
          },
          query: { debug: { exact: '1' } },
        },
        {
          host: 'reviews',
          path: { regex: '/v[0-9]+/items' },
          methods: ['PUT', 'POST'],
          headers: { 'x-internal': { present: false } },
        },
      ],
      route: [{ service: 'reviews', subset: 'v2' }],
    })
  })

  it('matches a uri in any case when ignoreUriCase is set', () => {
    const { route } = rule(`- match:
  - uri: { prefix: /Api }
    ignoreUriCase: true
  route:
  - destination: { host: reviews }`)
    expect(route?.match?.[0]?.path).toEqual({ regex: '/[aA][pP][iI].*' })
  })

  it('leaves out a clause it cannot match exactly, and a rule left with none, and says so', () => {
    const { routes, unsupported } = rule(`- match:
  - sourceLabels: { app: productpage }
  - headers: { end-user: { exact: jason } }
  route:
  - destination: { host: reviews, subset: v2 }
- match:
  - port: 9080
  route:
  - destination: { host: reviews, subset: v2 }
- route:
  - destination: { host: reviews, subset: v1 }`)
    expect(routes.map((r) => r.match)).toEqual([
      [{ host: 'reviews', headers: { 'end-user': { exact: 'jason' } } }],
      [{ host: 'reviews' }],
    ])
    expect(unsupported).toEqual([
      'VirtualService reviews: http[0].match[0].sourceLabels (the caller has no workload labels: clause left out)',
      'VirtualService reviews: http[1].match[0].port (no port match: clause left out)',
      'VirtualService reviews: http[1].match (no clause could be translated: rule left out)',
    ])
  })

  it('keeps RE2 patterns as written, since meshlet matches RE2 too, and refuses what RE2 refuses', () => {
    const { route, unsupported } = rule(`- match:
  - uri: { regex: "/\\\\pL+" }
  - headers: { x-id: { regex: "(?i)abc" } }
  - uri: { regex: "/items/(a)\\\\1" }
  - headers: { x-id: { regex: "(?=a)a" } }
  route:
  - destination: { host: reviews }`)
    expect(route?.match).toEqual([
      { host: 'reviews', path: { regex: '/\\pL+' } },
      { host: 'reviews', headers: { 'x-id': { regex: '(?i)abc' } } },
    ])
    expect(unsupported).toEqual([
      'VirtualService reviews: http[0].match[2].uri (not translatable: clause left out)',
      'VirtualService reviews: http[0].match[3].headers.x-id (not translatable: clause left out)',
    ])
  })

  it('keeps Istio weights, and the weight a lone destination does not need', () => {
    const { route } = rule(`- route:
  - destination: { host: reviews, subset: v1 }
    weight: 75
  - destination: { host: reviews, subset: v2 }
    weight: 25`)
    expect(route?.route).toEqual([
      { service: 'reviews', subset: 'v1', weight: 75 },
      { service: 'reviews', subset: 'v2', weight: 25 },
    ])
    expect(route?.match).toEqual([{ host: 'reviews' }])
    // A split with no weights sends nothing anywhere: refused, as Istio's validation does.
    const none = rule(`- route:
  - destination: { host: reviews, subset: v1 }
  - destination: { host: reviews, subset: v2 }`)
    expect(none.routes).toEqual([])
    expect(none.unsupported).toEqual([
      'VirtualService reviews: http[0].route (every weight is 0: rule left out)',
    ])
  })

  it('counts Istio retries as retries: attempts + 1 tries, retryOn split, durations kept', () => {
    const { route, unsupported } = rule(`- retries:
    attempts: 3
    perTryTimeout: 0.5s
    retryOn: gateway-error,connect-failure,retriable-status-codes,503,unavailable
  timeout: 10s
  route:
  - destination: { host: reviews }`)
    expect(route?.retry).toEqual({
      attempts: 4,
      perTryTimeout: '0.5s',
      retryOn: ['gateway-error', 'connect-failure', 503],
      retryableStatusCodes: ['UNAVAILABLE'],
    })
    expect(route?.timeout).toBe('10s')
    expect(unsupported).toEqual([])
    // No retryOn: Istio's own default conditions, 503 no longer among them (istio/istio#52111).
    expect(
      rule(`- retries: { attempts: 2 }\n  route:\n  - destination: { host: reviews }`).route?.retry,
    ).toEqual({
      attempts: 3,
      retryOn: ['connect-failure', 'refused-stream'],
      retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED'],
    })
    // attempts 0: retries off.
    expect(
      rule(`- retries: { attempts: 0 }\n  route:\n  - destination: { host: reviews }`).route?.retry,
    ).toEqual({ attempts: 1 })
  })

  it('reads Istio durations, Go style included', () => {
    expect(istioDuration('10s')).toBe('10s')
    expect(istioDuration('0.5s')).toBe('0.5s')
    expect(istioDuration('100ms')).toBe('100ms')
    expect(istioDuration('1m30s')).toBe(90_000)
    expect(istioDuration('1500us')).toBe(1.5)
    expect(istioDuration('1h')).toBe('1h')
    expect(istioDuration('soon')).toBeUndefined()
    expect(istioDuration('')).toBeUndefined()
  })

  it('translates faults with percentage.value or the legacy percent; none injects nothing (Istio)', () => {
    const { route, unsupported } = rule(`- fault:
    abort:
      httpStatus: 503
      percentage: { value: 0.1 }
    delay:
      fixedDelay: 5s
  route:
  - destination: { host: reviews }`)
    expect(route?.fault).toEqual({ abort: { percent: 0.1, status: 503 } })
    expect(unsupported).toEqual([
      'VirtualService reviews: http[0].fault.delay (no percentage: Istio delays no call, nor does meshlet)',
    ])
    const legacy = rule(`- fault:
    abort: { httpStatus: 500, percent: 50 }
    delay: { fixedDelay: 7s, percent: 10 }
  route:
  - destination: { host: reviews }`)
    // pilot reads the legacy integer for delays only: that abort aborts nothing.
    expect(legacy.route?.fault).toEqual({ delay: { percent: 10, duration: '7s' } })
    expect(legacy.unsupported).toEqual([
      'VirtualService reviews: http[0].fault.abort.percent (deprecated: Istio reads it for delays only, use percentage)',
      'VirtualService reviews: http[0].fault.abort (no percentage: Istio aborts no call, nor does meshlet)',
    ])
    const grpc = rule(`- fault:
    abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } }
  route:
  - destination: { host: reviews }`)
    expect(grpc.route?.fault).toEqual({ abort: { percent: 100, grpcStatus: 14 } })
    const none = rule(`- fault:
    abort: { grpcStatus: UNAVAILABLE }
  route:
  - destination: { host: reviews }`)
    expect(none.route?.fault).toBeUndefined()
    expect(none.unsupported).toEqual([
      'VirtualService reviews: http[0].fault.abort (no percentage: Istio aborts no call, nor does meshlet)',
    ])
  })

  it('translates mirror and its percentage, header changes and rewrites', () => {
    const { route, unsupported } = rule(`- match:
  - uri: { prefix: /v1/ }
  rewrite: { uri: /api/v1/, authority: reviews.internal }
  headers:
    request:
      set: { x-test: "true" }
      remove: [x-debug]
    response:
      add: { x-served-by: mesh }
  mirror: { host: reviews, subset: v2 }
  mirrorPercentage: { value: 10 }
  route:
  - destination: { host: reviews, subset: v1 }`)
    expect(unsupported).toEqual([])
    expect(route).toMatchObject({
      match: [{ host: 'reviews', path: { prefix: '/v1/' } }],
      rewrite: { prefix: '/api/v1/', host: 'reviews.internal' },
      requestHeaders: { set: { 'x-test': 'true' }, remove: ['x-debug'] },
      responseHeaders: { add: { 'x-served-by': 'mesh' } },
      mirror: { service: 'reviews', subset: 'v2', percent: 10 },
    })
    // Without a uri match Istio's rewrite replaces the prefix "/": so does the translation.
    const all = rule(`- rewrite: { uri: /v2/ }\n  route:\n  - destination: { host: reviews }`)
    expect(all.route).toMatchObject({
      match: [{ host: 'reviews', path: { prefix: '/' } }],
      rewrite: { prefix: '/v2/' },
    })
  })

  it('reports every field it does not translate, with its path, unknown ones included', () => {
    const { route, unsupported } = rule(`- corsPolicy:
    allowOrigins: [{ exact: https://example.com }]
  someFutureField: 1
  retries:
    attempts: 2
    retryRemoteLocalities: true
  fault:
    delay: { fixedDelay: 1s, someFutureField: 2 }
  route:
  - destination: { host: reviews, port: { number: 9080 } }`)
    expect(route?.route).toEqual([{ service: 'reviews' }])
    expect(route?.fault).toBeUndefined()
    expect(unsupported.sort()).toEqual(
      [
        'VirtualService reviews: http[0].corsPolicy (a browser policy, not a client one)',
        'VirtualService reviews: http[0].someFutureField',
        'VirtualService reviews: http[0].retries.retryRemoteLocalities',
        'VirtualService reviews: http[0].fault.delay (no percentage: Istio delays no call, nor does meshlet)',
        'VirtualService reviews: http[0].fault.delay.someFutureField',
      ].sort(),
    )
  })

  it('leaves out redirects, gateway-only resources, wildcard hosts, tcp and tls routes, and says so', () => {
    const redirect = rule(`- redirect: { uri: /new }\n- route:\n  - destination: { host: reviews }`)
    expect(redirect.routes).toHaveLength(1)
    expect(redirect.unsupported).toEqual(['VirtualService reviews: http[0].redirect (rule left out)'])
    const { config, unsupported } = fromIstio([
      vs(indent('hosts: [bookinfo.com]\ngateways: [bookinfo-gateway]\nhttp: []'), 'gw'),
      vs(indent('hosts: ["*.example.com"]\nhttp:\n- route:\n  - destination: { host: a }'), 'wild'),
      vs(indent('hosts: [db]\ntcp:\n- route:\n  - destination: { host: db }'), 'db'),
    ])
    expect(config.routes).toEqual([])
    expect(unsupported).toEqual([
      'VirtualService gw: gateways (bound to gateways, not to the mesh: resource left out)',
      'VirtualService wild: hosts[0] (wildcard host "*.example.com")',
      'VirtualService wild: http (no host of the resource could be translated: rules left out)',
      'VirtualService db: tcp',
    ])
  })

  it('applies a "*" host to every call', () => {
    const { route } = rule(`- route:\n  - destination: { host: reviews }`, '["*"]')
    expect(route?.match).toBeUndefined()
  })
})

describe('fromIstio: DestinationRules', () => {
  it('turns subsets into label selectors and the traffic policy into service policy', () => {
    const { config, unsupported } = fromIstio(
      dr(
        indent(`host: reviews.prod.svc.cluster.local
trafficPolicy:
  loadBalancer: { simple: ROUND_ROBIN }
  connectionPool:
    http: { http2MaxRequests: 100, http1MaxPendingRequests: 10 }
  outlierDetection:
    consecutive5xxErrors: 7
    interval: 5s
    baseEjectionTime: 1m
    maxEjectionPercent: 50
subsets:
- name: v1
  labels: { version: v1, track: stable }`),
      ),
    )
    expect(unsupported).toEqual([
      'DestinationRule reviews: trafficPolicy.connectionPool.http.http1MaxPendingRequests (no effect: http2MaxRequests answers at once first)',
    ])
    expect(config.services['reviews.prod']).toEqual({
      hosts: ['reviews.prod.svc', 'reviews.prod.svc.cluster.local'],
      loadBalancer: 'round-robin',
      concurrency: { max: 100, queue: 0 },
      outlierDetection: {
        successRateEjection: { enforcementPercentage: 0 },
        panicThreshold: 0,
        consecutiveFailures: 7,
        interval: '5s',
        baseEjectionTime: '1m',
        maxEjectionPercent: 50,
      },
      subsets: { v1: { version: 'v1', track: 'stable' } },
      timeout: 0,
      retry: {
        attempts: 3,
        retryOn: ['connect-failure', 'refused-stream'],
        retryableStatusCodes: ['UNAVAILABLE', 'CANCELLED'],
        methods: ['*'],
        backoff: { base: '25ms', max: '250ms' },
        budget: { kind: 'none' },
      },
    })
  })

  it('maps RANDOM, queues over maxConnections as Envoy pends, keeps the gateway-error count apart', () => {
    const { config } = fromIstio(
      dr(
        indent(`host: ratings
trafficPolicy:
  loadBalancer: { simple: RANDOM }
  connectionPool:
    tcp: { maxConnections: 1 }
    http: { http1MaxPendingRequests: 1 }
  outlierDetection: { consecutiveGatewayErrors: 3, minHealthPercent: 20 }`),
        'ratings',
      ),
    )
    expect(config.services['ratings']).toMatchObject({
      loadBalancer: 'random',
      concurrency: { max: 1, queue: 1 },
      outlierDetection: { consecutiveFailures: 5, consecutiveGatewayFailures: 3, panicThreshold: 20 },
    })
  })

  it('hashes on a header, a cookie or a query parameter with ring-hash', () => {
    const hashed = (key: string) =>
      fromIstio(
        dr(indent(`host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash: ${key}`)),
        undefined,
        { defaults: 'meshlet' },
      )
    expect(hashed('{ httpHeaderName: X-User }').config.services['reviews']).toEqual({
      hosts: ['reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local'],
      loadBalancer: 'ring-hash',
      hashKey: { header: 'x-user' },
    })
    expect(hashed('{ httpQueryParameterName: user }').config.services['reviews']?.hashKey).toEqual({
      query: 'user',
    })
    const cookie = hashed('{ httpCookie: { name: session, ttl: 0s } }')
    expect(cookie.config.services['reviews']?.hashKey).toEqual({ cookie: 'session' })
    expect(cookie.unsupported).toEqual([
      'DestinationRule reviews: trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl (meshlet sets no cookie)',
    ])
  })

  it('reports PASSTHROUGH, source-IP hashing, tls, per-subset policy and a second rule for a host', () => {
    const { config, unsupported } = fromIstio([
      dr(
        indent(`host: reviews
trafficPolicy:
  loadBalancer:
    simple: PASSTHROUGH
  tls: { mode: ISTIO_MUTUAL }
subsets:
- name: v1
  labels: { version: v1 }
  trafficPolicy:
    loadBalancer:
      consistentHash: { httpHeaderName: x-user }
- name: v2
  labels: { version: v2 }
  trafficPolicy:
    loadBalancer: { simple: PASSTHROUGH }
    tls: { mode: ISTIO_MUTUAL }`),
      ),
      dr(indent('host: reviews'), 'reviews-again'),
      dr(
        indent('host: ratings\ntrafficPolicy:\n  loadBalancer:\n    consistentHash: { useSourceIp: true }'),
        'r',
      ),
    ])
    expect(config.services['reviews']?.subsets).toEqual({ v1: { version: 'v1' }, v2: { version: 'v2' } })
    expect(unsupported).toEqual([
      'DestinationRule reviews: trafficPolicy.loadBalancer.simple ("PASSTHROUGH")',
      'DestinationRule reviews: trafficPolicy.tls',
      'DestinationRule reviews: subsets[0].trafficPolicy (per-subset policy)',
      'DestinationRule reviews-again (a second DestinationRule for reviews: Istio applies one; resource left out)',
      'DestinationRule r: trafficPolicy.loadBalancer.consistentHash.useSourceIp (a client hashes no source address)',
      'DestinationRule r: trafficPolicy.loadBalancer.consistentHash (no header, cookie or query parameter to hash)',
    ])
  })
})

describe('fromIstio: documents', () => {
  it('reads every API version, Kubernetes Lists, and reports other kinds and versions', () => {
    const list = `apiVersion: v1
kind: List
items:
- ${vs(
      indent('hosts: [a]\nhttp:\n- route:\n  - destination: { host: a }'),
      'a',
      'networking.istio.io/v1alpha3',
    )
      .split('\n')
      .join('\n  ')}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw }
spec: {}
---
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: { name: future }
spec: {}
`
    const { config, unsupported } = fromIstio(list)
    expect(config.routes).toHaveLength(1)
    expect(unsupported).toEqual([
      'Gateway gw (only VirtualService, DestinationRule and ServiceEntry are translated)',
      'VirtualService future (apiVersion "networking.istio.io/v2" is not networking.istio.io v1, v1beta1 or v1alpha3)',
    ])
  })

  it('merges endpoints by short or full name into a config createMesh accepts', () => {
    const { config } = fromIstio(REVIEWS_DR, {
      'reviews.default.svc.cluster.local': endpoints.reviews,
      ratings: ['http://10.0.0.9:9080'],
    })
    expect(Object.keys(config.services)).toEqual(['reviews', 'ratings'])
    expect(parseConfig(config).services['reviews']?.endpoints.map((e) => e.labels['version'])).toEqual([
      'v1',
      'v2',
    ])
  })

  it('throws a SyntaxError for text that is not YAML', () => {
    expect(() => fromIstio('kind: [VirtualService\n')).toThrow(SyntaxError)
  })

  it('runs the TSDoc example', async () => {
    const yamlText = [
      REVIEWS_DR,
      vs(indent('hosts: [reviews]\nhttp:\n- route:\n  - destination: { host: reviews, subset: v2 }')),
    ]
    const { config, unsupported } = fromIstio(yamlText, {
      reviews: [
        { url: 'http://10.0.0.1:9080', labels: { version: 'v1' } },
        { url: 'http://10.0.0.2:9080', labels: { version: 'v2' } },
      ],
    })
    if (unsupported.length > 0) console.warn('not imported:', unsupported)
    const mesh = createMesh(config)
    expect(mesh.config.routes[0]?.route).toEqual([{ service: 'reviews', subset: 'v2', weight: 1 }])
    await mesh.close()
  })
})
