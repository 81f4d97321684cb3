/** Tests of the meshlet config: every problem reported at once, defaults, URLs, types and JSON Schema. */
import { describe, expect, expectTypeOf, it } from 'vitest'
import { ConfigInvalidError } from '../../core/errors.js'
import {
  configJsonSchema,
  type LoadBalancerName,
  type MeshConfig,
  parseConfig,
  type ResolvedEndpoint,
  type ResolvedMeshConfig,
  type RetryOn,
} from './config.js'

/** The example of ARCHITECTURE.md, restricted to the fields this schema knows. */
const example = {
  services: {
    users: {
      endpoints: [
        'http://127.0.0.1:8081',
        { url: 'http://127.0.0.1:8082', weight: 2, labels: { version: 'v2' }, zone: 'b' },
      ],
      loadBalancer: 'least-request',
      timeout: '2s',
      retry: {
        attempts: 3,
        perTryTimeout: '500ms',
        retryOn: ['5xx', 'reset', 'connect-failure'],
        backoff: { base: '25ms', max: '1s', jitter: 'full' },
      },
    },
  },
} satisfies MeshConfig

function issuesOf(input: unknown): string[] {
  try {
    parseConfig(input)
  } catch (error) {
    if (error instanceof ConfigInvalidError) return error.issues.map((i) => `${i.path}: ${i.message}`)
    throw error
  }
  return []
}

describe('parseConfig', () => {
  it('resolves the documented example', () => {
    const config = parseConfig(example)
    // structuredClone gives the null-prototype records (D47) Object's prototype, as literals have.
    expect(structuredClone(config)).toStrictEqual({
      $schema: undefined,
      egress: undefined,
      routes: [],
      strict: false,
      meshErrors: 'reject',
      redis: undefined,
      zone: undefined,
      services: {
        users: {
          protocol: 'http',
          endpoints: [
            { url: 'http://127.0.0.1:8081', weight: 1, labels: {}, zone: undefined },
            { url: 'http://127.0.0.1:8082', weight: 2, labels: { version: 'v2' }, zone: 'b' },
          ],
          hosts: [],
          auth: undefined,
          authority: undefined,
          rateLimit: undefined,
          adaptiveThrottling: undefined,
          loadBalancer: 'least-request',
          hashKey: undefined,
          slowStart: undefined,
          streamTimeout: undefined,
          channelOptions: undefined,
          locality: undefined,
          timeout: 2000,
          tls: undefined,
          retry: {
            attempts: 3,
            perTryTimeout: 500,
            retryOn: ['5xx', 'reset', 'connect-failure'],
            backoff: { kind: 'exponential', base: 25, max: 1000, factor: 2, jitter: 'full' },
            methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
            retryableStatusCodes: ['UNAVAILABLE'],
            budget: {
              kind: 'ratio',
              ratio: 0.2,
              minPerSecond: 10,
              ttl: 10_000,
              maxTokens: 10,
              tokenRatio: 0.1,
            },
          },
          subsets: {},
          discovery: undefined,
          hedge: undefined,
          circuitBreaker: undefined,
          outlierDetection: undefined,
          healthCheck: undefined,
          concurrency: undefined,
          fallback: undefined,
          propagateDeadline: undefined,
        },
      },
    })
  })

  it('applies every default', () => {
    const config = parseConfig({ services: { users: { endpoints: ['http://10.0.0.1:80'] } } })
    expect(structuredClone(config)).toStrictEqual({
      $schema: undefined,
      egress: undefined,
      routes: [],
      strict: false,
      meshErrors: 'reject',
      redis: undefined,
      zone: undefined,
      services: {
        users: {
          protocol: 'http',
          endpoints: [{ url: 'http://10.0.0.1', weight: 1, labels: {}, zone: undefined }],
          hosts: [],
          auth: undefined,
          authority: undefined,
          rateLimit: undefined,
          adaptiveThrottling: undefined,
          loadBalancer: 'least-request',
          hashKey: undefined,
          slowStart: undefined,
          streamTimeout: undefined,
          channelOptions: undefined,
          locality: undefined,
          timeout: 15_000,
          tls: undefined,
          retry: {
            attempts: 3,
            perTryTimeout: 0,
            retryOn: ['5xx', '429'],
            backoff: { kind: 'exponential', base: 25, max: 1000, factor: 2, jitter: 'full' },
            methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
            retryableStatusCodes: ['UNAVAILABLE'],
            budget: {
              kind: 'ratio',
              ratio: 0.2,
              minPerSecond: 10,
              ttl: 10_000,
              maxTokens: 10,
              tokenRatio: 0.1,
            },
          },
          subsets: {},
          discovery: undefined,
          hedge: undefined,
          circuitBreaker: undefined,
          outlierDetection: undefined,
          healthCheck: undefined,
          concurrency: undefined,
          fallback: undefined,
          propagateDeadline: undefined,
        },
      },
    })
    expect(parseConfig({ strict: true, services: {} })).toMatchObject({
      strict: true,
      services: {},
      routes: [],
    })
  })

  it('fills the defaults of a partly written retry', () => {
    const config = parseConfig({
      services: { users: { endpoints: ['http://a:1'], retry: { backoff: { max: '5s' }, retryOn: [503] } } },
    })
    expect(config.services['users']?.retry).toEqual({
      attempts: 3,
      perTryTimeout: 0,
      retryOn: [503],
      backoff: { kind: 'exponential', base: 25, max: 5000, factor: 2, jitter: 'full' },
      methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
      retryableStatusCodes: ['UNAVAILABLE'],
      budget: { kind: 'ratio', ratio: 0.2, minPerSecond: 10, ttl: 10_000, maxTokens: 10, tokenRatio: 0.1 },
    })
  })

  it('converts every duration to milliseconds', () => {
    const config = parseConfig({
      services: {
        users: {
          endpoints: ['http://a:1'],
          timeout: '1.5s',
          retry: { perTryTimeout: 300, backoff: { base: '0', max: '1m' } },
        },
      },
    })
    const users = config.services['users']
    expect(users?.timeout).toBe(1500)
    expect(users?.retry.perTryTimeout).toBe(300)
    expect(users?.retry.backoff).toMatchObject({ base: 0, max: 60_000 })
  })

  it('reports every problem at once, with exact paths and messages', () => {
    const input = {
      strict: 'yes',
      servics: {},
      services: {
        users: {
          endpoints: [
            'http://127.0.0.1:8081/',
            { url: 'http://127.0.0.1:8082', weight: 0 },
            'http://127.0.0.1:8081',
          ],
          timeout: 'fast',
          loadBalancer: 'fastest',
          retry: { atempts: 2, attempts: -1, retryOn: ['5xx', 'bogus', 700] },
        },
        Bad_Name: { protocol: 'grpc', endpoints: [] },
      },
    }
    const expected = [
      'strict: expected a boolean, got "yes"',
      '(root): unknown key "servics" (did you mean "services"?)',
      'services.users.endpoints[1].weight: expected a positive integer, got 0',
      'services.users.endpoints[2]: duplicate "http://127.0.0.1:8081" (same as [0])',
      'services.users.timeout: expected a duration (ms number or string like "250ms", "2s"), got "fast"',
      'services.users.loadBalancer: expected one of "least-request", "round-robin", "random", ' +
        '"weighted-round-robin", "peak-ewma", "ring-hash", got "fastest"',
      'services.users.retry: unknown key "atempts" (did you mean "attempts"?)',
      'services.users.retry.attempts: expected a positive integer, got -1',
      'services.users.retry.retryOn[1]: expected one of "5xx", "gateway-error", "reset", "connect-failure", ' +
        '"refused-stream", "retriable-4xx", "429", got "bogus"',
      'services.users.retry.retryOn[2]: expected an integer from 100 to 599, got 700',
      'services.Bad_Name: expected a service name (letters, digits, "." and "-", starting and ending with a ' +
        'letter or digit), got "Bad_Name"',
      'services.Bad_Name.endpoints: expected at least 1 item, got 0',
    ]
    let error: unknown
    try {
      parseConfig(input)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigInvalidError)
    if (!(error instanceof ConfigInvalidError)) return
    expect(error.code).toBe('CONFIG_INVALID')
    expect(
      error.issues.map((i) => (i.path === '' ? `(root): ${i.message}` : `${i.path}: ${i.message}`)),
    ).toEqual(expected)
    expect(error.message).toContain('(12 problems)')
    expect(error.message).toContain('  services.users.retry.attempts: expected a positive integer, got -1')
    for (const line of expected) expect(error.message).toContain(`  ${line}`)
  })

  it('refuses what is not a config', () => {
    expect(issuesOf(undefined)).toEqual([': expected an object, got undefined'])
    expect(issuesOf([])).toEqual([': expected an object, got array'])
    expect(issuesOf({})).toEqual(['services: required'])
    expect(issuesOf({ services: { users: {} } })).toEqual([
      'services.users.endpoints: required unless the service has discovery',
    ])
  })

  it('checks attempts and HTTP statuses against their bounds', () => {
    const users = (retry: unknown) => ({ services: { users: { endpoints: ['http://a:1'], retry } } })
    expect(issuesOf(users({ attempts: 11 }))).toEqual([
      'services.users.retry.attempts: expected a positive integer <= 10, got 11',
    ])
    expect(issuesOf(users({ retryOn: [99, true] }))).toEqual([
      'services.users.retry.retryOn[0]: expected an integer from 100 to 599, got 99',
      'services.users.retry.retryOn[1]: expected one of "5xx", "gateway-error", "reset", "connect-failure", ' +
        '"refused-stream", "retriable-4xx", "429" or an integer from 100 to 599, got true',
    ])
    expect(issuesOf(users({ backoff: { jitter: 'half' } }))).toEqual([
      'services.users.retry.backoff.jitter: expected one of "full", "equal", "none", got "half"',
    ])
  })

  it('refuses a backoff whose base exceeds its max, at the base', () => {
    expect(
      issuesOf({ services: { x: { endpoints: ['http://a:1'], retry: { backoff: { base: '2s' } } } } }),
    ).toEqual(['services.x.retry.backoff.base: expected at most backoff.max (1000ms), got 2000ms'])
  })

  it('reduces http endpoints to their origin and refuses paths, queries and other schemes', () => {
    const endpoints = (list: unknown[]) => ({ services: { web: { endpoints: list } } })
    const config = parseConfig(endpoints(['https://Example.com:443/', 'http://[::1]:8080', 'http://b:8080']))
    expect(config.services['web']?.endpoints.map((e) => e.url)).toEqual([
      'https://example.com',
      'http://[::1]:8080',
      'http://b:8080',
    ])
    const shape = 'expected an endpoint ("http://host:port" with no path, or "host:port")'
    expect(
      issuesOf(
        endpoints(['http://a/api', 'http://a?x=1', 'ftp://a', 'http://u:p@a', 5, { url: 'http://a#x' }]),
      ),
    ).toEqual([
      `services.web.endpoints[0]: ${shape}, got "http://a/api"`,
      `services.web.endpoints[1]: ${shape}, got "http://a?x=1"`,
      `services.web.endpoints[2]: ${shape}, got "ftp://a"`,
      `services.web.endpoints[3]: ${shape}, got "http://u:p@a"`,
      `services.web.endpoints[4]: ${shape} or an object, got 5`,
      `services.web.endpoints[5].url: ${shape}, got "http://a#x"`,
    ])
    expect(issuesOf(endpoints(['http://a:0', 'http://a:99999']))).toEqual([
      'services.web.endpoints[0]: expected a port from 1 to 65535, got "http://a:0"',
      `services.web.endpoints[1]: ${shape}, got "http://a:99999"`,
    ])
  })

  it('reports a duplicate endpoint after normalisation, at its own index', () => {
    expect(issuesOf({ services: { users: { endpoints: ['http://a:80', { url: 'http://a/' }] } } })).toEqual([
      'services.users.endpoints[1]: duplicate "http://a" (same as [0])',
    ])
  })

  it('takes host:port endpoints for grpc services, and only there', () => {
    const config = parseConfig({
      services: { orders: { protocol: 'grpc', endpoints: ['10.0.0.1:50051', 'orders:443'] } },
    })
    expect(config.services['orders']?.endpoints.map((e) => e.url)).toEqual(['10.0.0.1:50051', 'orders:443'])
    // The protocol check waits for the endpoints to be valid, so only the port is named here.
    expect(
      issuesOf({ services: { orders: { protocol: 'grpc', endpoints: ['http://a:1', 'a:0'] } } }),
    ).toEqual(['services.orders.endpoints[1]: expected a port from 1 to 65535, got "a:0"'])
    expect(issuesOf({ services: { orders: { protocol: 'grpc', endpoints: ['http://a:1'] } } })).toEqual([
      'services.orders.endpoints[0]: expected "host:port" for a grpc service, got "http://a:1"',
    ])
    expect(issuesOf({ services: { web: { endpoints: ['a:1'] } } })).toEqual([
      'services.web.endpoints[0]: expected an http: or https: URL for an http service, got "a:1"',
    ])
  })

  it('names services with letters, digits, dots and dashes', () => {
    const ok = { endpoints: ['http://a:1'] }
    expect(Object.keys(parseConfig({ services: { 'users-v2.prod': ok, a: ok } }).services)).toEqual([
      'users-v2.prod',
      'a',
    ])
    expect(issuesOf({ services: { '-x': ok } })[0]).toMatch(/^services\.-x: expected a service name/)
  })

  it('returns plain, deeply frozen data', () => {
    const config = parseConfig(example)
    expect(JSON.parse(JSON.stringify(config))).toEqual(JSON.parse(JSON.stringify(config)))
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.services['users']?.endpoints[1]?.labels)).toBe(true)
    expect(Object.isFrozen(config.services['users']?.retry.retryOn)).toBe(true)
  })

  // How long this takes is measured by the bench (`mesh.update` of 1,000 services, target 4c),
  // not asserted here: a wall-clock bound in a test fails on a slower machine, not on slower code.
  it('parses 1,000 services, each resolved and frozen', () => {
    const services: Record<string, unknown> = {}
    for (let i = 0; i < 1000; i++) {
      services[`svc-${i}`] = {
        endpoints: [`http://10.0.${i % 250}.1:8080`, { url: `http://10.0.${i % 250}.2:8080`, weight: 2 }],
        timeout: '2s',
        retry: { perTryTimeout: '500ms', backoff: { max: '1s' } },
      }
    }
    const config = parseConfig({ services })
    expect(Object.keys(config.services)).toHaveLength(1000)
    const last = config.services['svc-999']!
    expect(last.timeout).toBe(2000)
    expect(last.retry.perTryTimeout).toBe(500)
    expect(last.endpoints.map((e) => e.weight)).toEqual([1, 2])
    expect(Object.isFrozen(last.endpoints[1])).toBe(true)
  })
})

describe('types', () => {
  it('accepts the documented example and infers the resolved shape', () => {
    expectTypeOf(example).toExtend<MeshConfig>()
    expectTypeOf<{ services: Record<string, never> }>().toExtend<MeshConfig>()
    // Durations are typed as strings (so configs in variables and from JSON type-check); the
    // format is checked at parse time.
    expectTypeOf<{ services: { a: { endpoints: ['x']; timeout: string } } }>().toExtend<MeshConfig>()
    expectTypeOf<{ services: { a: { endpoints: ['x']; timeout: boolean } } }>().not.toExtend<MeshConfig>()
    expectTypeOf<{ strict: true }>().not.toExtend<MeshConfig>()
    expectTypeOf<ResolvedMeshConfig['services'][string]['retry']['attempts']>().toEqualTypeOf<number>()
    expectTypeOf<ResolvedMeshConfig['services'][string]['timeout']>().toEqualTypeOf<number>()
    expectTypeOf<ResolvedEndpoint>().toEqualTypeOf<{
      url: string
      weight: number
      labels: Record<string, string>
      zone: string | undefined
    }>()
    expectTypeOf<LoadBalancerName>().toEqualTypeOf<
      'least-request' | 'round-robin' | 'random' | 'weighted-round-robin' | 'peak-ewma' | 'ring-hash'
    >()
    expectTypeOf<RetryOn>().toEqualTypeOf<
      | '5xx'
      | 'gateway-error'
      | 'reset'
      | 'connect-failure'
      | 'refused-stream'
      | 'retriable-4xx'
      | '429'
      | number
    >()
  })
})

describe('configJsonSchema', () => {
  const schema = configJsonSchema()

  /** Every sub-schema, depth first. */
  function* walk(node: unknown): Generator<Record<string, unknown>> {
    if (typeof node !== 'object' || node === null) return
    if (Array.isArray(node)) {
      for (const item of node) yield* walk(item)
      return
    }
    const record = node as Record<string, unknown>
    yield record
    for (const [key, value] of Object.entries(record))
      if (key !== 'default' && key !== 'enum') yield* walk(value)
  }

  it('is draft 2020-12 with a closed root', () => {
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['services'],
      additionalProperties: false,
    })
  })

  it('closes every object that lists its properties, and requires only known keys', () => {
    const objects = [...walk(schema)].filter((node) => node['properties'] !== undefined)
    expect(objects.length).toBeGreaterThanOrEqual(5) // root, service, endpoint, retry, backoff
    for (const node of objects) {
      expect(node['type']).toBe('object')
      expect(node['additionalProperties']).toBe(false)
      const known = Object.keys(node['properties'] as object)
      for (const key of (node['required'] as string[] | undefined) ?? []) expect(known).toContain(key)
    }
  })

  it('lists the choices of each literal union as an enum, with its default', () => {
    const enums = [...walk(schema)].filter((node) => Array.isArray(node['enum'])).map((node) => node['enum'])
    expect(enums).toContainEqual(['http', 'grpc'])
    expect(enums).toContainEqual([
      'least-request',
      'round-robin',
      'random',
      'weighted-round-robin',
      'peak-ewma',
      'ring-hash',
    ])
    expect(enums).toContainEqual(['full', 'equal', 'none'])
    expect(enums).toContainEqual([
      '5xx',
      'gateway-error',
      'reset',
      'connect-failure',
      'refused-stream',
      'retriable-4xx',
      '429',
    ])
  })

  it('has a default for every optional key, that parseConfig accepts', () => {
    const service = (schema['properties'] as Record<string, Record<string, unknown>>)['services']?.[
      'additionalProperties'
    ] as Record<string, unknown>
    const properties = service['properties'] as Record<string, Record<string, unknown>>
    expect(properties['timeout']?.['default']).toBe('15s')
    expect(properties['loadBalancer']?.['default']).toBe('least-request')
    const defaults = Object.fromEntries(
      Object.entries(properties)
        .filter(([key]) => key !== 'endpoints')
        .map(([key, node]) => [key, node['default']]),
    )
    expect(() =>
      parseConfig({ services: { users: { endpoints: ['http://a:1'], ...defaults } } }),
    ).not.toThrow()
  })

  it('gives patterns that agree with the parser', () => {
    const patterns = [...walk(schema)].flatMap((node) =>
      typeof node['pattern'] === 'string' ? [node['pattern']] : [],
    )
    expect(patterns.length).toBeGreaterThanOrEqual(3) // service names, durations, endpoints
    for (const pattern of patterns) expect(() => new RegExp(pattern, 'u')).not.toThrow()
    const names = (schema['properties'] as Record<string, Record<string, Record<string, string>>>)[
      'services'
    ]?.['propertyNames']
    expect(new RegExp(names?.['pattern'] ?? '', 'u').test('users-v2.prod')).toBe(true)
    expect(new RegExp(names?.['pattern'] ?? '', 'u').test('Bad_Name')).toBe(false)
  })

  it('describes every property', () => {
    const objects = [...walk(schema)].filter((node) => node['properties'] !== undefined)
    for (const node of objects) {
      for (const [key, property] of Object.entries(
        node['properties'] as Record<string, Record<string, unknown>>,
      )) {
        expect(typeof property['description'], key).toBe('string')
      }
    }
  })
})

describe('discovery config', () => {
  const issuesOf = (input: unknown): string[] => {
    try {
      parseConfig(input)
      return []
    } catch (e) {
      return (e as ConfigInvalidError).issues.map((i) => `${i.path}: ${i.message}`)
    }
  }
  const svc = (service: Record<string, unknown>) => ({ services: { users: service } })

  it('applies the defaults, and resolves endpoints to [] when only discovery is given', () => {
    const users = parseConfig(svc({ discovery: { dns: 'users.internal', port: 8080 } })).services.users!
    expect(users.discovery).toStrictEqual({
      dns: 'users.internal',
      type: 'A',
      port: 8080,
      scheme: 'http',
      refresh: 30_000,
    })
    expect(users.endpoints).toEqual([])
  })

  it('keeps the endpoints as the initial set when both are given', () => {
    const users = parseConfig(
      svc({ endpoints: ['http://10.0.0.1:80'], discovery: { dns: '_http._tcp.users', type: 'SRV' } }),
    ).services.users!
    expect(users.endpoints.map((e) => e.url)).toEqual(['http://10.0.0.1'])
    expect(users.discovery?.type).toBe('SRV')
  })

  it('accepts discovery with no DNS name (a custom resolver, checked by the mesh)', () => {
    expect(parseConfig(svc({ discovery: { refresh: '5s' } })).services.users!.discovery?.refresh).toBe(5000)
  })

  it('needs a port for A and AAAA, refuses one for SRV, and a refresh of at least 100 ms', () => {
    expect(issuesOf(svc({ discovery: { dns: 'users.internal' } }))).toEqual([
      'services.users.discovery.port: required with type "A" (its records carry no port)',
    ])
    expect(issuesOf(svc({ discovery: { dns: 'users.internal', type: 'AAAA' } }))).toEqual([
      'services.users.discovery.port: required with type "AAAA" (its records carry no port)',
    ])
    expect(issuesOf(svc({ discovery: { dns: '_http._tcp.users', type: 'SRV', port: 80 } }))).toEqual([
      'services.users.discovery.port: expected no port with type "SRV" (its records carry one)',
    ])
    expect(issuesOf(svc({ discovery: { dns: 'users.internal', port: 80, refresh: 50 } }))).toEqual([
      'services.users.discovery.refresh: expected at least 100ms, got 50ms',
    ])
  })

  it('reports a bad name, type or scheme with its path', () => {
    expect(
      issuesOf(svc({ discovery: { dns: 'bad name', type: 'MX', scheme: 'ftp', port: 80, refrsh: '1s' } })),
    ).toEqual([
      'services.users.discovery.dns: expected a DNS name, got "bad name"',
      'services.users.discovery.type: expected one of "A", "AAAA", "SRV", got "MX"',
      'services.users.discovery.scheme: expected one of "http", "https", got "ftp"',
      'services.users.discovery: unknown key "refrsh" (did you mean "refresh"?)',
    ])
  })

  it('types discovery in what users write and in the resolved config', () => {
    expectTypeOf<NonNullable<MeshConfig['services'][string]['discovery']>['type']>().toEqualTypeOf<
      'A' | 'AAAA' | 'SRV' | undefined
    >()
    expectTypeOf<ResolvedMeshConfig['services'][string]['endpoints']>().toEqualTypeOf<ResolvedEndpoint[]>()
  })
})

describe('load-balancing config', () => {
  const svc = (extra: Record<string, unknown>) => ({
    zone: 'eu-1a',
    services: { users: { endpoints: ['http://a:1', { url: 'http://b:1', zone: 'eu-1b' }], ...extra } },
  })

  it('resolves ring-hash keys, slow start, locality and the mesh zone with their defaults', () => {
    const config = parseConfig(
      svc({ loadBalancer: 'ring-hash', hashKey: { header: 'x-user' }, locality: { failover: ['eu-1b'] } }),
    )
    expect(config.zone).toBe('eu-1a')
    expect(config.services['users']).toMatchObject({
      loadBalancer: 'ring-hash',
      hashKey: { header: 'x-user' },
      locality: { failover: ['eu-1b'], minHealthyPercent: 70 },
      slowStart: undefined,
    })
    const ramp = parseConfig(svc({ loadBalancer: 'peak-ewma', slowStart: { window: '30s' } }))
    expect(ramp.services['users']?.slowStart).toEqual({ window: 30_000, aggression: 1 })
    expect(parseConfig(svc({})).services['users']?.locality).toBeUndefined()
  })

  it('refuses a hash key that names two things or none, or serves a strategy that does not hash', () => {
    expect(issuesOf(svc({ loadBalancer: 'ring-hash', hashKey: { header: 'a', cookie: 'b' } }))).toEqual([
      'services.users.hashKey: expected exactly one of header, cookie, path: true, query; got 2',
    ])
    expect(issuesOf(svc({ loadBalancer: 'ring-hash', hashKey: { path: false } }))).toEqual([
      'services.users.hashKey: expected exactly one of header, cookie, path: true, query; got 0',
    ])
    expect(issuesOf(svc({ hashKey: { path: true } }))).toEqual([
      'services.users.hashKey: applies to loadBalancer "ring-hash", not "least-request"',
    ])
  })

  it('refuses slow start for strategies that ignore weights, and an empty window', () => {
    expect(issuesOf(svc({ loadBalancer: 'ring-hash', slowStart: { window: '10s' } }))).toEqual([
      'services.users.slowStart: applies to loadBalancer "weighted-round-robin", "random", "least-request", ' +
        '"peak-ewma", not "ring-hash"',
    ])
    expect(issuesOf(svc({ slowStart: { window: 0, aggression: 0 } }))).toEqual([
      'services.users.slowStart.aggression: expected a number from 0.001 to 1000, got 0',
    ])
    expect(issuesOf(svc({ slowStart: { window: 0 } }))).toEqual([
      'services.users.slowStart.window: expected a positive duration, got 0ms',
    ])
    expect(issuesOf(svc({ locality: { minHealthyPercent: 120 } }))).toHaveLength(1)
  })
})

describe('service hosts (aliases)', () => {
  it('resolves them, and refuses a host two services claim or a route on an alias', () => {
    const ok = parseConfig({
      services: {
        reviews: { endpoints: ['http://10.0.0.1'], hosts: ['reviews.default', 'Reviews.Default.Svc'] },
      },
    })
    expect(ok.services['reviews']?.hosts).toEqual(['reviews.default', 'Reviews.Default.Svc'])
    expect(() =>
      parseConfig({
        services: {
          reviews: { endpoints: ['http://10.0.0.1'], hosts: ['reviews.default'] },
          ratings: { endpoints: ['http://10.0.0.2'], hosts: ['REVIEWS.default', 'reviews'] },
        },
        routes: [{ match: [{ host: 'reviews.default' }], route: [{ service: 'reviews' }] }],
      }),
    ).toThrow(
      expect.objectContaining({
        issues: [
          {
            path: 'services.ratings.hosts[0]',
            message: 'expected a host no other service names, got "REVIEWS.default" (service "reviews")',
          },
          {
            path: 'services.ratings.hosts[1]',
            message: 'expected a host no other service names, got "reviews" (service "reviews")',
          },
          {
            path: 'routes[0].match[0].host',
            message:
              'expected the service name "reviews", got its alias "reviews.default" (calls by an alias are matched by the service\'s name)',
          },
        ],
      }),
    )
  })
})
