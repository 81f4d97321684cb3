/**
 * The meshlet configuration: one schema gives the types users write ({@link MeshConfig}), the
 * resolved form the mesh runs on ({@link ResolvedMeshConfig}: defaults applied, durations in ms),
 * the validation with every problem reported at once, and the JSON Schema for editors.
 */

import { ConfigInvalidError, type ConfigIssue } from '../../core/errors.js'
import {
  array,
  boolean,
  duration,
  formatValue,
  type Input,
  integer,
  literalUnion,
  number,
  type Output,
  object,
  optional,
  type Report,
  record,
  string,
  transform,
  union,
} from './schema.js'

const SERVICE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/

const serviceName = string({
  pattern: SERVICE_NAME,
  expected: 'a service name (letters, digits, "." and "-", starting and ending with a letter or digit)',
})

const ENDPOINT_EXPECTED = 'an endpoint ("http://host:port" with no path, or "host:port")'
// The shape only; the URL and port are checked by `toEndpointUrl`.
const ENDPOINT_PATTERN = /^(https?:\/\/[^\s/?#]+\/?|([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\]):[0-9]+)$/
const HOST_PORT = /^([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\]):([0-9]+)$/

/** An http(s) URL becomes its origin (`http://127.0.0.1:8081`); a `host:port` is kept as is. */
function toEndpointUrl(raw: string, issue: Report): string {
  const hostPort = HOST_PORT.exec(raw)
  if (hostPort) {
    const port = Number(hostPort[2])
    if (port < 1 || port > 65535) issue(`expected a port from 1 to 65535, got ${formatValue(raw)}`)
    return raw
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    issue(`expected ${ENDPOINT_EXPECTED}, got ${formatValue(raw)}`)
    return raw
  }
  if (url.username !== '' || url.password !== '' || url.hostname === '') {
    issue(`expected ${ENDPOINT_EXPECTED}, got ${formatValue(raw)}`)
  } else if (url.port === '0') {
    issue(`expected a port from 1 to 65535, got ${formatValue(raw)}`)
  }
  return url.origin
}

const endpointUrl = transform(
  string({ pattern: ENDPOINT_PATTERN, expected: ENDPOINT_EXPECTED }),
  toEndpointUrl,
)

const DEFAULT_WEIGHT = 1

const endpointObject = object({
  /** Where to send calls: `http(s)://host[:port]` for http services, `host:port` for grpc ones. Required. */
  url: endpointUrl.describe('For http services an http(s) URL with no path; for grpc services "host:port".'),
  /** The endpoint's share of traffic relative to the others, a positive integer. Default `1`. */
  weight: optional(integer({ min: 1 }), DEFAULT_WEIGHT).describe('Share of traffic relative to the others.'),
  /** Labels that subsets select on (`{ version: 'v2' }`). Default `{}`. */
  labels: optional(record(string()), {}).describe('Labels that subsets select on.'),
  /** The zone the endpoint runs in, for zone-aware balancing. Default none. */
  zone: optional(string()).describe('The zone the endpoint runs in.'),
})

const endpoint = transform(
  union(endpointUrl, endpointObject),
  (e): Output<typeof endpointObject> =>
    typeof e === 'string' ? { url: e, weight: DEFAULT_WEIGHT, labels: {}, zone: undefined } : e,
).describe('An endpoint URL, or an object with the URL and its weight, labels and zone.')

const endpoints = array(endpoint, { min: 1, uniqueBy: (e) => e.url })

const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
  '429',
] as const

const backoff = transform(
  object({
    /**
     * The shape of the delays: `'exponential'` (base x 2^n, capped by max, with `jitter`),
     * `'decorrelated'` (Polly v8's decorrelated jitter: the n-th retry lands near base x 2^n,
     * no synchronised waves), or `'constant'` (always `base`). Default `'exponential'`.
     */
    kind: optional(literalUnion(['exponential', 'decorrelated', 'constant']), 'exponential').describe(
      'The shape of the delays: exponential (with jitter), decorrelated jitter, or constant.',
    ),
    /** The first retry's delay; it doubles at each retry up to `max`. Default `'25ms'`. */
    base: optional(duration(), '25ms').describe(
      "The first retry's delay; it doubles at each retry up to max.",
    ),
    /** The longest delay between two tries. Default `'1s'` (1000 ms). */
    max: optional(duration(), '1s').describe('The longest delay between two tries.'),
    /**
     * How the delay is randomised: `'full'` (0..delay), `'equal'` (delay/2..delay) or `'none'`.
     * Default `'full'`.
     */
    jitter: optional(literalUnion(['full', 'equal', 'none']), 'full').describe(
      'How the delay is randomised: full (0..delay), equal (delay/2..delay) or none.',
    ),
  }),
  (b, issue) => {
    if (b.base > b.max) issue(`expected at most backoff.max (${b.max}ms), got ${b.base}ms`, 'base')
    return b
  },
)

const IDEMPOTENT_METHODS = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']

const budget = object({
  /**
   * `'ratio'`: Finagle's budget (retries up to `ratio` x calls plus `minPerSecond`, over `ttl`);
   * `'throttling'`: gRPC's `retryThrottling` (`maxTokens`, `tokenRatio`); `'none'`: no budget.
   * Default `'ratio'`.
   */
  kind: optional(literalUnion(['ratio', 'throttling', 'none']), 'ratio').describe(
    'ratio (Finagle), throttling (gRPC retryThrottling) or none.',
  ),
  /** Retries allowed per call (kind `ratio`), 0..1000. Default `0.2`. */
  ratio: optional(number({ min: 0, max: 1000 }), 0.2).describe('Retries allowed per call (kind ratio).'),
  /** Retries always allowed per second (kind `ratio`). Default `10`. */
  minPerSecond: optional(number({ min: 0 }), 10).describe('Retries always allowed per second (kind ratio).'),
  /** How long a call's deposit counts (kind `ratio`), 1 s..60 s. Default `'10s'`. */
  ttl: optional(duration(), '10s').describe("How long a call's deposit counts (kind ratio), 1s..60s."),
  /** Tokens when full (kind `throttling`), (0, 1000]. Default `10`. */
  maxTokens: optional(number({ min: 0.001, max: 1000 }), 10).describe('Tokens when full (kind throttling).'),
  /** Tokens a success gives back (kind `throttling`), (0, 1]. Default `0.1`. */
  tokenRatio: optional(number({ min: 0.001, max: 1 }), 0.1).describe(
    'Tokens a success gives back (kind throttling).',
  ),
})

const retry = object({
  /** Total tries, the first one included: a positive integer up to 10. Default `3`. */
  attempts: optional(integer({ min: 1, max: 10 }), 3).describe('Total tries, the first one included.'),
  /** The limit of each try; `0` for none (the call's `timeout` still applies). Default `0`. */
  perTryTimeout: optional(duration(), 0).describe(
    "The limit of each try; 0 for none (the call's timeout still applies).",
  ),
  /** What is retried, in Envoy's vocabulary, or HTTP statuses (100..599). Default `['5xx', '429']`. */
  retryOn: optional(array(union(literalUnion(RETRY_ON), integer({ min: 100, max: 599 }))), [
    '5xx',
    '429',
  ]).describe("What is retried, in Envoy's vocabulary, or HTTP statuses."),
  /** The delay between tries: exponential, capped, with jitter. Default `{}` (all its defaults). */
  backoff: optional(backoff, {}).describe('The delay between tries: exponential, capped, with jitter.'),
  /**
   * HTTP methods retried after the request may have reached the server. A request with an
   * `Idempotency-Key` header is retried whatever its method; a refused connection always is.
   * Default the idempotent methods of RFC 9110: GET, HEAD, OPTIONS, PUT, DELETE, TRACE.
   */
  methods: optional(
    array(string({ pattern: /^[A-Za-z]+$/, expected: 'an HTTP method' })),
    IDEMPOTENT_METHODS,
  ).describe('HTTP methods retried after the request may have reached the server.'),
  /**
   * The retry budget of the service, shared by all its calls (retries and hedges both spend
   * it). Default `{}`: ratio 0.2, minPerSecond 10, ttl 10 s.
   */
  budget: optional(budget, {}).describe('The retry budget shared by all calls to the service.'),
})

const PERCENTILE = /^p(\d{1,2}(\.\d+)?)$/

const hedge = transform(
  object({
    /**
     * When to send a hedge: a duration after the previous attempt started, or a percentile of
     * the service's recent latency (`'p95'`, Finagle's `BackupRequestFilter`). Required.
     */
    delay: union(
      duration(),
      string({ pattern: PERCENTILE, expected: 'a percentile such as "p95"' }),
    ).describe('A duration, or a percentile of recent latency such as "p95".'),
    /** Attempts at most, the first included, 2..5 (gRFC A6 caps at 5). Default `2`. */
    maxAttempts: optional(integer({ min: 2, max: 5 }), 2).describe('Attempts at most, the first included.'),
  }),
  (h) => {
    const match = typeof h.delay === 'string' ? PERCENTILE.exec(h.delay) : null
    return {
      delay: typeof h.delay === 'number' ? h.delay : undefined,
      percentile: match ? Number(match[1]) : undefined,
      maxAttempts: h.maxAttempts,
    }
  },
)

const service = transform(
  object({
    /** How calls reach the endpoints: `'http'` (fetch) or `'grpc'` (@grpc/grpc-js). Default `'http'`. */
    protocol: optional(literalUnion(['http', 'grpc']), 'http').describe('How calls reach the endpoints.'),
    /** Where the service runs: at least one, URLs for http, `host:port` for grpc. Required. */
    endpoints: endpoints.describe('Where the service runs: URLs for http, "host:port" for grpc.'),
    /** How an endpoint is picked for each try. Default `'least-request'`. */
    loadBalancer: optional(
      literalUnion(['least-request', 'round-robin', 'random']),
      'least-request',
    ).describe('How an endpoint is picked for each try.'),
    /**
     * The whole call's deadline, every retry included; `0` disables it.
     * Default `'15s'` (15000 ms, as Envoy).
     */
    timeout: optional(duration(), '15s').describe(
      "The whole call's deadline, every retry included; 0 disables it.",
    ),
    /** When and how failed tries are tried again. Default `{}` (all its defaults). */
    retry: optional(retry, {}).describe('When and how failed tries are tried again.'),
    /**
     * Backup requests for idempotent calls: after `delay`, another attempt to another endpoint;
     * the first good answer wins and the others are cancelled. Default none (no hedging).
     */
    hedge: optional(hedge).describe('Backup requests for idempotent calls. Default none.'),
    /**
     * Whether the time left before the deadline travels to the upstream in the
     * `x-meshlet-timeout-ms` header (gRPC sends `grpc-timeout`). Default `true`.
     */
    propagateDeadline: optional(boolean(), true).describe(
      'Whether the time left travels to the upstream in the x-meshlet-timeout-ms header.',
    ),
  }),
  (s, issue) => {
    const { ttl } = s.retry.budget
    if (ttl < 1000 || ttl > 60_000)
      issue(`expected a duration from 1s to 60s, got ${ttl}ms`, 'retry', 'budget', 'ttl')
    s.endpoints.forEach(({ url }, i) => {
      const isUrl = url.includes('://')
      if (s.protocol === 'http' && !isUrl) {
        issue(`expected an http: or https: URL for an http service, got ${formatValue(url)}`, 'endpoints', i)
      } else if (s.protocol === 'grpc' && isUrl) {
        issue(`expected "host:port" for a grpc service, got ${formatValue(url)}`, 'endpoints', i)
      }
    })
    return s
  },
)

/** The schema of the whole config; {@link parseConfig} and {@link configJsonSchema} use it. */
export const meshConfigSchema = object({
  /** The JSON Schema an editor validates the file against; ignored by meshlet. Default none. */
  $schema: optional(string()).describe('The JSON Schema an editor validates this file against.'),
  /**
   * Whether a host naming no configured service is refused; `false` lets it pass through
   * untouched. Default `false`.
   */
  strict: optional(boolean(), false).describe(
    'Whether a host naming no configured service is refused (false: it passes through untouched).',
  ),
  /** The services, by name: the host that calls use (`http://users/...`). Required, may be `{}`. */
  services: record(service, { key: serviceName }).describe('The services, by the host name that calls use.'),
})

/** A config as users write it: most fields optional, durations as ms or strings like `'2s'`. */
export type MeshConfig = Input<typeof meshConfigSchema>
/** One service as users write it. */
export type ServiceConfig = MeshConfig['services'][string]
/** A config after {@link parseConfig}: every default applied, durations in ms, deeply frozen. */
export type ResolvedMeshConfig = Output<typeof meshConfigSchema>
/** One service, resolved. */
export type ResolvedServiceConfig = ResolvedMeshConfig['services'][string]
/** One endpoint, resolved: an http origin (`http://127.0.0.1:8081`) or a grpc `host:port`. */
export type ResolvedEndpoint = ResolvedServiceConfig['endpoints'][number]
/** A condition for retrying: a name from Envoy's vocabulary or an HTTP status. */
export type RetryOn = ResolvedServiceConfig['retry']['retryOn'][number]
/** The load-balancing strategies a service may name. */
export type LoadBalancerName = ResolvedServiceConfig['loadBalancer']

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const item of Object.values(value)) deepFreeze(item)
  }
  return value
}

/**
 * Validates `input` and resolves it: defaults applied, durations in milliseconds, endpoint URLs
 * normalised. Throws a {@link ConfigInvalidError} listing every problem, not only the first.
 */
export function parseConfig(input: unknown): ResolvedMeshConfig {
  const issues: ConfigIssue[] = []
  const config = meshConfigSchema.parse(input, '', issues)
  if (issues.length > 0 || config === undefined) throw new ConfigInvalidError(issues)
  return deepFreeze(config)
}

/** The JSON Schema (draft 2020-12) of {@link MeshConfig}, for editors and other languages. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'meshlet config',
    ...meshConfigSchema.jsonSchema(),
  }
}
