/**
 * The meshlet configuration: one schema gives the types users write ({@link MeshConfig}), the
 * resolved form the mesh runs on ({@link ResolvedMeshConfig}: defaults applied, durations in ms),
 * the validation with every problem reported at once, and the JSON Schema for editors.
 */

import { IDEMPOTENT_METHODS } from '../../adapters/fetch/classify.js'
import { GRPC_FAILURE_STATUSES } from '../../adapters/grpc/status.js'
import { ConfigInvalidError, type ConfigIssue } from '../../core/errors.js'
import { regexProblem } from '../../stages/router/regex.js'
import { templatePattern } from '../../stages/router/router.js'
import { serviceAuth } from './auth.js'
import { egressPolicySchema } from './policy.js'
import { adaptiveThrottling, checkQuotaKeys, rateLimit } from './quota.js'
import { redisConfig } from './redis.js'
import {
  array,
  boolean,
  childPath,
  deepFreeze,
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
import { tlsSettings } from './tls.js'

const SERVICE_NAME = /^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/

const serviceName = string({
  pattern: SERVICE_NAME,
  maxLength: 253,
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
  string({ pattern: ENDPOINT_PATTERN, expected: ENDPOINT_EXPECTED, maxLength: 2048 }),
  toEndpointUrl,
)

/** The largest count window of a circuit breaker: it keeps one slot per call. */
const MAX_COUNT_WINDOW = 10_000

/** The upper bound of counts (failures in a row, calls, requests, limits): 1,000,000. */
const COUNT_MAX = 1_000_000

// RFC 9110 5.1: a field name is a token; 5.5: a field value is visible characters, spaces and
// tabs, and obs-text (bytes 0x80-0xff, which fetch's Headers takes as a ByteString): never CR,
// LF, NUL or another control. Checked when the config is parsed, so that a header operation never
// throws in a call (on the response side the upstream has already run: a throw there would make a
// retrying caller send the request twice).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** A header name: an RFC 9110 token, at most 256 characters. */
const headerName = string({ pattern: TOKEN, maxLength: 256, expected: 'a header name (an RFC 9110 token)' })
/** A header value: no CR, LF, NUL or other control, at most 8,192 characters. */
const headerValue = string({
  pattern: FIELD_VALUE,
  maxLength: 8192,
  expected: 'a header value (no CR, LF, NUL or other control character)',
})
/** Headers by name, as route header operations and fallbacks give them. */
const headerMap = record(headerValue, { key: headerName })
/** A cookie name: an RFC 9110 token (RFC 6265 4.1.1), at most 256 characters. */
const cookieName = string({ pattern: TOKEN, maxLength: 256, expected: 'a cookie name (an RFC 9110 token)' })
/** A `host` header: a host (name, IPv4 or [IPv6]) with an optional port. */
const hostHeader = string({
  pattern: /^([A-Za-z0-9._~!$&'()*+,;=%-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$/,
  maxLength: 261,
  expected: 'a host, with an optional port ("users.internal", "10.0.0.1:8080")',
})

const DEFAULT_WEIGHT = 1
/** The largest endpoint weight (Envoy's load-balancing weights are bounded the same way). */
const MAX_WEIGHT = 1_000_000

const endpointObject = object({
  /** Where to send calls: `http(s)://host[:port]` for http services, `host:port` for grpc ones. Required. */
  url: endpointUrl.describe('For http services an http(s) URL with no path; for grpc services "host:port".'),
  /** The endpoint's share of traffic relative to the others, 1..1,000,000. Default `1`. */
  weight: optional(integer({ min: 1, max: MAX_WEIGHT }), DEFAULT_WEIGHT).describe(
    'Share of traffic relative to the others.',
  ),
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

/** An HTTP method name, or `'*'` for any method. */
const httpMethod = string({ pattern: /^([A-Za-z]+|\*)$/, expected: 'an HTTP method or "*"' })

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
    /**
     * The first retry's delay ceiling; it grows by `factor` at each retry up to `max` (with the
     * default full jitter each delay is drawn below its ceiling). Default `'25ms'`.
     */
    base: optional(duration(), '25ms').describe(
      "The first retry's delay; it doubles at each retry up to max.",
    ),
    /** Growth of the delay at each retry (gRPC's `backoffMultiplier`). Default `2`. */
    factor: optional(number({ min: 0.01, max: 10 }), 2).describe('Growth of the delay at each retry.'),
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
  /** Retries always allowed per second (kind `ratio`), 0..1,000,000. Default `10`. */
  minPerSecond: optional(number({ min: 0, max: COUNT_MAX }), 10).describe(
    'Retries always allowed per second (kind ratio).',
  ),
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
   * HTTP methods retried after the request may have reached the server; `'*'` is any method (as
   * Envoy retries). A request with an `Idempotency-Key` header is retried whatever its method; a
   * refused connection always is. Default the idempotent methods of RFC 9110: GET, HEAD,
   * OPTIONS, PUT, DELETE, TRACE.
   */
  methods: optional(array(httpMethod), IDEMPOTENT_METHODS).describe(
    'HTTP methods retried after the request may have reached the server; "*" for any.',
  ),
  /**
   * gRPC services: the status codes retried (gRFC A6 `retryableStatusCodes`), which are also
   * the non-fatal codes of hedging. Default `['UNAVAILABLE']`.
   */
  retryableStatusCodes: optional(array(literalUnion(GRPC_FAILURE_STATUSES), { min: 1 }), [
    'UNAVAILABLE',
  ]).describe('gRPC services: the status codes retried (and non-fatal for hedging).'),
  /**
   * The retry budget of the service, shared by all its calls (retries and hedges both spend
   * it). Default `{}`: ratio 0.2, minPerSecond 10, ttl 10 s.
   */
  budget: optional(budget, {}).describe('The retry budget shared by all calls to the service.'),
})

const PERCENTILE = /^p(\d{1,2}(\.\d+)?)$/

const hedge = object({
  /**
   * When to send a hedge: a duration after the previous attempt started, or a percentile of
   * the service's recent latency (`'p95'`, Finagle's `BackupRequestFilter`). Required.
   */
  delay: union(duration(), string({ pattern: PERCENTILE, expected: 'a percentile such as "p95"' })).describe(
    'A duration, or a percentile of recent latency such as "p95".',
  ),
  /** Attempts at most, the first included, 2..5 (gRFC A6 caps at 5). Default `2`. */
  maxAttempts: optional(integer({ min: 2, max: 5 }), 2).describe('Attempts at most, the first included.'),
})

const circuitBreaker = transform(
  object({
    /** Open after this many failures in a row (0..1,000,000); `0` turns this trigger off. Default `5`. */
    consecutiveFailures: optional(integer({ min: 0, max: COUNT_MAX }), 5).describe(
      'Open after this many failures in a row (0: off).',
    ),
    /**
     * Open when the failure rate over the window reaches this percent (1..100), once the window
     * holds `minimumCalls`; `0` turns this trigger off. Default `0`.
     */
    failureRateThreshold: optional(number({ min: 0, max: 100 }), 0).describe(
      'Open when the failure rate over the window reaches this percent (0: off).',
    ),
    /**
     * Open when the share of calls slower than `slowCallDuration` reaches this percent (1..100),
     * as resilience4j's `slowCallRateThreshold`; `0` turns it off. Default `0`.
     */
    slowCallRateThreshold: optional(number({ min: 0, max: 100 }), 0).describe(
      'Open when the share of slow calls reaches this percent (0: off).',
    ),
    /** A call slower than this counts as slow. Default `'5s'`. */
    slowCallDuration: optional(duration(), '5s').describe('A call slower than this counts as slow.'),
    /**
     * The window the rates are computed over: the last `windowSize` calls (`'count'`) or the
     * last `windowSize` ms (`'time'`, a duration). Default `'count'`.
     */
    windowType: optional(literalUnion(['count', 'time']), 'count').describe(
      'Rates over the last N calls or the last N ms.',
    ),
    /**
     * Calls (count window, a whole number 1..10,000: the window keeps one slot per call) or a
     * duration (time window, 1 ms..24.8 days). Default `100` (calls) or `'60s'`.
     */
    windowSize: optional(duration()).describe('Calls (count window) or a duration (time window).'),
    /** Calls the window must hold before a rate can open the breaker, 1..1,000,000. Default `20`. */
    minimumCalls: optional(integer({ min: 1, max: COUNT_MAX }), 20).describe(
      'Calls the window must hold before a rate can open it.',
    ),
    /** How long the breaker stays open before it lets probes through. Default `'5s'`. */
    halfOpenAfter: optional(duration(), '5s').describe('How long the breaker stays open before probing.'),
    /** Each time it opens again without closing in between, the open time is multiplied by this. Default `2`. */
    backoffFactor: optional(number({ min: 1, max: 10 }), 2).describe(
      'Growth of the open time on repeated opens.',
    ),
    /** The longest open time, however often it reopens. Default `'60s'`. */
    maxHalfOpenAfter: optional(duration(), '60s').describe('The longest open time.'),
    /** Calls let through while half-open. Default `1`. */
    halfOpenProbes: optional(integer({ min: 1, max: 100 }), 1).describe('Calls let through while half-open.'),
    /** Successful probes needed to close again (at most `halfOpenProbes`). Default `1`. */
    successThreshold: optional(integer({ min: 1, max: 100 }), 1).describe(
      'Successful probes needed to close.',
    ),
  }),
  (cb, issue) => {
    // A count window keeps one slot per call: its size is bounded so a config cannot allocate
    // gigabytes (3e9 did, 1e10 threw a RangeError).
    const size = cb.windowSize
    if (
      size !== undefined &&
      cb.windowType === 'count' &&
      (!Number.isInteger(size) || size < 1 || size > MAX_COUNT_WINDOW)
    ) {
      issue(
        `expected a whole number of calls from 1 to ${MAX_COUNT_WINDOW} for a count window, got ${size}`,
        'windowSize',
      )
    } else if (size !== undefined && cb.windowType === 'time' && size < 1) {
      issue(`expected a time window of at least 1ms, got ${size}ms`, 'windowSize')
    }
    return cb
  },
)

const successRateEjection = object({
  /** Eject when success rate < mean - stdevFactor x stdev, 0..1000. Default `1.9` (A50's 1900 / 1000). */
  stdevFactor: optional(number({ min: 0, max: 1000 }), 1.9).describe(
    'Eject below mean - stdevFactor x stdev.',
  ),
  /** Percent of the time an ejection found this way is enforced. Default `100`. */
  enforcementPercentage: optional(number({ min: 0, max: 100 }), 100).describe(
    'Percent of ejections enforced.',
  ),
  /** Endpoints with `requestVolume` needed for this check to run, 1..1,000,000. Default `5`. */
  minimumHosts: optional(integer({ min: 1, max: COUNT_MAX }), 5).describe(
    'Endpoints with enough volume needed.',
  ),
  /** Requests an endpoint needs in the interval to be judged, 1..1,000,000. Default `100`. */
  requestVolume: optional(integer({ min: 1, max: COUNT_MAX }), 100).describe(
    'Requests needed in an interval to be judged.',
  ),
})

const failurePercentageEjection = object({
  /** Eject when an endpoint's failure percentage reaches this. Default `85`. */
  threshold: optional(number({ min: 0, max: 100 }), 85).describe('Eject at this failure percentage.'),
  /** Percent of the time an ejection found this way is enforced. Default `100`. */
  enforcementPercentage: optional(number({ min: 0, max: 100 }), 100).describe(
    'Percent of ejections enforced.',
  ),
  /** Endpoints with `requestVolume` needed for this check to run, 1..1,000,000. Default `5`. */
  minimumHosts: optional(integer({ min: 1, max: COUNT_MAX }), 5).describe(
    'Endpoints with enough volume needed.',
  ),
  /** Requests an endpoint needs in the interval to be judged, 1..1,000,000. Default `50`. */
  requestVolume: optional(integer({ min: 1, max: COUNT_MAX }), 50).describe(
    'Requests needed in an interval to be judged.',
  ),
})

const outlierDetection = object({
  /**
   * Eject an endpoint at the failure that makes this many in a row (as Envoy's
   * `consecutive_5xx`), 0..1,000,000; `0` turns it off. Default `5`.
   */
  consecutiveFailures: optional(integer({ min: 0, max: COUNT_MAX }), 5).describe(
    'Eject after this many failures in a row (0: off).',
  ),
  /**
   * Eject an endpoint at the gateway failure (a 502, 503 or 504 answer, a connection failure or
   * reset, an attempt timeout; gRPC: `UNAVAILABLE`, `DEADLINE_EXCEEDED`) that makes this many in
   * a row, counted apart from `consecutiveFailures`: any other outcome resets it (Envoy's
   * `consecutive_gateway_failure`, Istio's `consecutiveGatewayErrors`); `0` turns it off. Default `0`.
   */
  consecutiveGatewayFailures: optional(integer({ min: 0, max: COUNT_MAX }), 0).describe(
    'Eject after this many gateway failures (502, 503, 504, connection failures) in a row (0: off).',
  ),
  /** How often the rate-based checks run (lazily, on the next call). Default `'10s'`. */
  interval: optional(duration(), '10s').describe('How often rate-based ejection runs.'),
  /** Ejection time, multiplied by the times ejected, up to `maxEjectionTime`. Default `'30s'`. */
  baseEjectionTime: optional(duration(), '30s').describe('Base ejection time (x times ejected).'),
  /** The longest ejection. Default `'300s'`. */
  maxEjectionTime: optional(duration(), '300s').describe('The longest ejection.'),
  /** At most this percent of the endpoints ejected at once (at least one may go). Default `10`. */
  maxEjectionPercent: optional(number({ min: 0, max: 100 }), 10).describe(
    'At most this percent ejected at once.',
  ),
  /**
   * Success-rate ejection (gRFC A50). Default on, with its defaults; `{ enforcementPercentage: 0 }`
   * turns it off.
   */
  successRateEjection: optional(successRateEjection, {}).describe('Success-rate ejection (gRFC A50).'),
  /** Failure-percentage ejection (gRFC A50). Default off. */
  failurePercentageEjection: optional(failurePercentageEjection).describe(
    'Failure-percentage ejection (gRFC A50).',
  ),
  /**
   * When fewer than this percent of endpoints are healthy, balance over all of them (Envoy's
   * healthy panic threshold). Default `50`.
   */
  panicThreshold: optional(number({ min: 0, max: 100 }), 50).describe('Below this percent healthy, use all.'),
})

/** The shortest time between two health-check probes of one endpoint. */
const MIN_PROBE_INTERVAL = 10

const healthCheck = transform(
  object({
    /** The HTTP path probed (a 2xx answer is healthy); for gRPC services, `grpc.health.v1` is used. Default `'/healthz'`. */
    path: optional(
      string({
        pattern: /^\/[\x21-\x7e]*$/,
        expected: 'a path starting with "/" (no spaces or controls)',
        maxLength: 2048,
      }),
      '/healthz',
    ).describe('The HTTP path probed.'),
    /** Time between probes of one endpoint (at least 10 ms), jittered by up to 10%. Default `'10s'`. */
    interval: optional(duration(), '10s').describe('Time between probes of one endpoint.'),
    /** A probe slower than this fails. Default `'1s'`. */
    timeout: optional(duration(), '1s').describe('A probe slower than this fails.'),
    /** Successful probes in a row that make an unhealthy endpoint healthy, 1..1000. Default `2`. */
    healthyThreshold: optional(integer({ min: 1, max: 1000 }), 2).describe(
      'Successes in a row to become healthy.',
    ),
    /** Failed probes in a row that make an endpoint unhealthy, 1..1000. Default `3`. */
    unhealthyThreshold: optional(integer({ min: 1, max: 1000 }), 3).describe(
      'Failures in a row to become unhealthy.',
    ),
  }),
  (h, issue) => {
    // Each probe arms the next: an interval of 0 would probe in a loop.
    if (h.interval < MIN_PROBE_INTERVAL)
      issue(`expected at least ${MIN_PROBE_INTERVAL}ms, got ${h.interval}ms`, 'interval')
    return h
  },
)

const concurrency = object({
  /** Calls in flight to the whole service at once, 0..1,000,000; `0` for no limit. Default `0`. */
  max: optional(integer({ min: 0, max: COUNT_MAX }), 0).describe(
    'Calls in flight to the service at once (0: no limit).',
  ),
  /** Calls that may wait for a slot when `max` is reached (0..1,000,000); the rest fail at once. Default `0`. */
  queue: optional(integer({ min: 0, max: COUNT_MAX }), 0).describe('Calls that may wait for a slot.'),
  /** The longest a call waits in the queue (the deadline also bounds it). Default `'1s'`. */
  queueTimeout: optional(duration(), '1s').describe('The longest wait in the queue.'),
  /** Attempts in flight to one endpoint at once, 0..1,000,000; `0` for no limit. Default `0`. */
  perEndpoint: optional(integer({ min: 0, max: COUNT_MAX }), 0).describe(
    'Attempts in flight to one endpoint (0: no limit).',
  ),
  /**
   * Adapt `max` to measured latency (Netflix concurrency-limits): `'gradient2'` or `'vegas'`,
   * starting at `max` (or 20) and never above `maxLimit`. Default none (a fixed limit).
   */
  adaptive: optional(literalUnion(['gradient2', 'vegas'])).describe('Adapt the limit to latency.'),
  /** The ceiling of an adaptive limit, 1..1,000,000. Default `200`. */
  maxLimit: optional(integer({ min: 1, max: COUNT_MAX }), 200).describe('The ceiling of an adaptive limit.'),
})

/** Statuses whose responses have no body (fetch's null body statuses). */
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304]

const FALLBACK_CODES = [
  'TIMEOUT',
  'CIRCUIT_OPEN',
  'RETRY_BUDGET_EXHAUSTED',
  'NO_HEALTHY_ENDPOINT',
  'BULKHEAD_FULL',
  'RATE_LIMITED',
  'ERROR',
] as const

const fallback = transform(
  object({
    /**
     * The failures that get the fallback: mesh error codes, or `'ERROR'` for any other error of
     * the call (a network error that survived the retries). Default
     * `['CIRCUIT_OPEN', 'NO_HEALTHY_ENDPOINT', 'BULKHEAD_FULL']`.
     */
    on: optional(array(literalUnion(FALLBACK_CODES), { min: 1 }), [
      'CIRCUIT_OPEN',
      'NO_HEALTHY_ENDPOINT',
      'BULKHEAD_FULL',
    ]).describe('The failures that get the fallback.'),
    /** The status of the static response. Default `503`. */
    status: optional(integer({ min: 200, max: 599 }), 503).describe('The status of the static response.'),
    /** The body of the static response. Default `''`. */
    body: optional(string(), '').describe('The body of the static response.'),
    /** Headers of the static response: RFC 9110 names and values. Default `{}`. */
    headers: optional(headerMap, {}).describe('Headers of the static response.'),
  }),
  (f, issue) => {
    // fetch's Response refuses a body with these statuses: refused here, not at the call.
    if (NULL_BODY_STATUSES.includes(f.status) && f.body !== '')
      issue(`expected an empty body with status ${f.status}`, 'body')
    return f
  },
)

const subsetName = string({
  pattern: /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/,
  expected: 'a subset name',
})

// A DNS name: dot-separated labels of letters, digits, '-' and '_' (SRV names such as
// `_http._tcp.users.internal`), with an optional final dot.
const DNS_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/

const discovery = transform(
  object({
    /**
     * The DNS name to resolve: `users.internal`, or `_http._tcp.users.internal` for SRV. Default
     * none: the service's endpoints then come from the custom resolver given to `createMesh`.
     */
    dns: optional(string({ pattern: DNS_NAME, expected: 'a DNS name', maxLength: 254 })).describe(
      'The DNS name to resolve. Default none: a custom resolver given to createMesh.',
    ),
    /** The records asked for: `'A'` (IPv4), `'AAAA'` (IPv6) or `'SRV'` (hosts, ports, weights). Default `'A'`. */
    type: optional(literalUnion(['A', 'AAAA', 'SRV']), 'A').describe('The records asked for.'),
    /** The port of every endpoint found: required for A and AAAA, refused for SRV (its records carry one). */
    port: optional(integer({ min: 1, max: 65535 })).describe('The port of every endpoint (A and AAAA).'),
    /** The scheme of the endpoint URLs of an http service (ignored for grpc). Default `'http'`. */
    scheme: optional(literalUnion(['http', 'https']), 'http').describe(
      'The scheme of the endpoint URLs of an http service.',
    ),
    /** Time between two resolutions, plus up to 10% jitter; at least 100 ms. Default `'30s'`. */
    refresh: optional(duration(), '30s').describe('Time between two resolutions, plus up to 10% jitter.'),
  }),
  (d, issue) => {
    if (d.dns !== undefined && d.type !== 'SRV' && d.port === undefined) {
      issue(`required with type "${d.type}" (its records carry no port)`, 'port')
    }
    if (d.type === 'SRV' && d.port !== undefined)
      issue('expected no port with type "SRV" (its records carry one)', 'port')
    if (d.refresh < 100) issue(`expected at least 100ms, got ${d.refresh}ms`, 'refresh')
    return d
  },
)

const hashKey = transform(
  object({
    /** Hash this request header (for gRPC, this metadata key). */
    header: optional(headerName).describe('Hash this request header (gRPC: metadata key).'),
    /** Hash this cookie (a cookie name: an RFC 9110 token). */
    cookie: optional(cookieName).describe('Hash this cookie.'),
    /** `true`: hash the path, without its query. */
    path: optional(boolean()).describe('true: hash the path, without its query.'),
    /** Hash this query parameter. */
    query: optional(string()).describe('Hash this query parameter.'),
  }),
  (k, issue) => {
    const given = [k.header, k.cookie, k.path || undefined, k.query].filter((v) => v !== undefined).length
    if (given !== 1) issue(`expected exactly one of header, cookie, path: true, query; got ${given}`)
    return k
  },
)

const slowStart = transform(
  object({
    /** How long a new endpoint's weight takes to ramp up to its full value. Required. */
    window: duration().describe("How long a new endpoint's weight takes to ramp up."),
    /** The ramp's shape, 0.001..1000: `1` is linear, above 1 faster at first, below 1 slower. Default `1`. */
    aggression: optional(number({ min: 0.001, max: 1000 }), 1).describe(
      "The ramp's shape: 1 linear, above 1 faster at first, below 1 slower.",
    ),
  }),
  (w, issue) => {
    if (w.window <= 0) issue(`expected a positive duration, got ${w.window}ms`, 'window')
    return w
  },
)

const locality = object({
  /**
   * Zones to spill to, in priority order, after the caller's own `zone`; other zones come last.
   * Default `[]`.
   */
  failover: optional(array(string()), []).describe("Zones to spill to, in order, after the caller's own."),
  /**
   * Below this percent of its endpoints in rotation, a zone hands a growing part of the calls
   * to the next zone (Envoy's priority spillover, overprovisioning 100 / this), 0..100. Default `70`.
   */
  minHealthyPercent: optional(number({ min: 0, max: 100 }), 70).describe(
    'Below this percent of its endpoints in rotation, a zone spills calls to the next.',
  ),
})

// A host name as calls write it: DNS labels of letters, digits, '-' and '_', or an IPv4 address.
const hostName = string({
  pattern: /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$/,
  expected: 'a host name (letters, digits, ".", "-" and "_")',
})

const WEIGHT_RAMPS = ['weighted-round-robin', 'random', 'least-request', 'peak-ewma']

const service = transform(
  object({
    /** How calls reach the endpoints: `'http'` (fetch) or `'grpc'` (@grpc/grpc-js). Default `'http'`. */
    protocol: optional(literalUnion(['http', 'grpc']), 'http').describe('How calls reach the endpoints.'),
    /**
     * Where the service runs: at least one, URLs for http, `host:port` for grpc. Required unless
     * `discovery` is given; with it, the set used until the first resolution. Resolved: `[]` when
     * absent (until discovery finds endpoints).
     */
    endpoints: optional(endpoints).describe(
      'Where the service runs: URLs for http, "host:port" for grpc. Required unless discovery is given.',
    ),
    /**
     * Where to find the endpoints at run time: DNS (A, AAAA or SRV), or a custom resolver given to
     * `createMesh` (then `discovery: {}` or just `{ refresh }`). Default none (static endpoints).
     */
    discovery: optional(discovery).describe('Where to find the endpoints at run time. Default none.'),
    /**
     * Other host names that name this service (`['reviews.default', 'reviews.default.svc.cluster.local']`,
     * as Kubernetes DNS names one service several ways): a call to any of them is a call to the
     * service, and routes see it as a call to the service's own name (a route's `match.host`
     * names the service, not an alias). Compared in lower case; each host names one service at
     * most. Looked up in one map built at config time. Default `[]`.
     */
    hosts: optional(array(hostName), []).describe(
      'Other host names that name this service (aliases); routes see the service name.',
    ),
    /**
     * Named subsets of the endpoints, by label selector (`{ v2: { version: 'v2' } }`), that
     * routes can send to (Istio's DestinationRule subsets). Default `{}`.
     */
    subsets: optional(record(record(string()), { key: subsetName }), {}).describe(
      'Named subsets of the endpoints, by label selector.',
    ),
    /**
     * How an endpoint is picked for each try: `'least-request'` (power of two choices on
     * in-flight attempts), `'peak-ewma'` (power of two choices on latency x load),
     * `'round-robin'`, `'weighted-round-robin'` (smooth, as nginx), `'random'` (weighted), or
     * `'ring-hash'` (consistent hashing on `hashKey`). Default `'least-request'`.
     */
    loadBalancer: optional(
      literalUnion([
        'least-request',
        'round-robin',
        'random',
        'weighted-round-robin',
        'peak-ewma',
        'ring-hash',
      ]),
      'least-request',
    ).describe('How an endpoint is picked for each try.'),
    /**
     * What `ring-hash` hashes: one of a header, a cookie, the path or a query parameter. A
     * request without it is balanced at random. Default: the path.
     */
    hashKey: optional(hashKey).describe(
      'What ring-hash hashes (one of header, cookie, path, query). Default the path.',
    ),
    /**
     * Ramp the weight of a new endpoint up over `window` (Envoy's slow start), for the weighted
     * strategies (`weighted-round-robin`, `random`, `least-request`, `peak-ewma`). Default none.
     */
    slowStart: optional(slowStart).describe("Ramp a new endpoint's weight up over a window. Default none."),
    /**
     * Zone preference, when the mesh has a `zone`: calls stay in it while at least
     * `minHealthyPercent` of its endpoints are in rotation, then spill to `failover` zones in
     * order. Default `{}` (no failover order, 70 %).
     */
    locality: optional(locality).describe('Zone preference and failover order (needs the mesh zone).'),
    /**
     * The whole call's deadline, every retry included; `0` disables it. For a gRPC service it
     * applies to unary calls; streaming calls take `streamTimeout`.
     * Default `'15s'` (15000 ms, as Envoy).
     */
    timeout: optional(duration(), '15s').describe(
      "The whole call's deadline, every retry included; 0 disables it.",
    ),
    /**
     * The deadline of a gRPC streaming call (server, client or bidi streaming), from its start
     * to its last message; `0` disables it. Default none: a stream lives until it ends, as
     * grpc-js gives no call a deadline of its own (watch and subscribe streams run for hours).
     * `timeout` applies to unary calls only; the caller's `deadline` call option applies to
     * every call (decision D37).
     */
    streamTimeout: optional(duration()).describe(
      'The deadline of a gRPC streaming call; 0 or unset: none (timeout applies to unary calls).',
    ),
    /**
     * grpc-js channel options of this gRPC service's endpoint channels (`'grpc.keepalive_time_ms'`,
     * `'grpc.ssl_target_name_override'`, ...): strings, numbers or booleans, over each wrapped
     * client's own options and `withMesh`'s `channelOptions`, key by key (decision D36). Default
     * none.
     */
    channelOptions: optional(record(union(string(), number(), boolean()))).describe(
      "grpc-js channel options of a gRPC service's endpoint channels, over the client's own. Default none.",
    ),
    /** When and how failed tries are tried again. Default `{}` (all its defaults). */
    retry: optional(retry, {}).describe('When and how failed tries are tried again.'),
    /**
     * Backup requests for idempotent calls: after `delay`, another attempt to another endpoint;
     * the first good answer wins and the others are cancelled. Default none (no hedging).
     */
    hedge: optional(hedge).describe('Backup requests for idempotent calls. Default none.'),
    /**
     * A circuit breaker for the whole service (it sees every attempt): fail fast with
     * `CIRCUIT_OPEN` while the service is failing. Default none.
     */
    circuitBreaker: optional(circuitBreaker).describe(
      'A circuit breaker for the whole service. Default none.',
    ),
    /** Take failing endpoints out of rotation (Envoy, gRFC A50). Default none. */
    outlierDetection: optional(outlierDetection).describe(
      'Take failing endpoints out of rotation. Default none.',
    ),
    /** Probe each endpoint actively; results feed the same health view. Default none. */
    healthCheck: optional(healthCheck).describe('Probe each endpoint actively. Default none.'),
    /** Bulkheads: concurrency limits with a bounded queue (`BULKHEAD_FULL`). Default none. */
    concurrency: optional(concurrency).describe('Concurrency limits with a bounded queue. Default none.'),
    /** A static response instead of chosen failures. Default none. */
    fallback: optional(fallback).describe('A static response instead of chosen failures. Default none.'),
    /** A rate limit on the service's calls, every attempt taking a token (docs/quota.md). Default none. */
    rateLimit: optional(rateLimit),
    /** Client-side adaptive throttling (Google SRE book; docs/quota.md). Default none. */
    adaptiveThrottling: optional(adaptiveThrottling),
    /**
     * The authority (`Host` header) sent upstream instead of the endpoint's address, as a sidecar
     * sends the service's name (`reviews:9080`): a host with an optional port. A route's
     * `rewrite.host` overrides it. HTTP services only. Default: the endpoint's host and port, as
     * fetch sends them.
     */
    authority: optional(hostHeader).describe(
      'The Host header sent upstream instead of the endpoint address (host[:port]). Default: the endpoint address.',
    ),
    /** The bearer token each call carries (docs/security.md, "Bearer identity"). Default none. */
    auth: optional(serviceAuth),
    /**
     * Whether the time left before the deadline travels to the upstream: in the
     * `x-meshlet-timeout-ms` header for HTTP, as `grpc-timeout` for gRPC unary calls (gRPC
     * streams, calls with a `parent` and channels with a `grpc.service_config` always send it,
     * since grpc-js then enforces the deadline itself). With `false` the client still ends
     * the call at its deadline; the upstream just is not told. Default (unset): HTTP sends
     * every deadline; gRPC sends the caller's (`CallOptions.deadline`), inherited and outer
     * deadlines, and keeps the service's own `timeout` local when it is the call's only
     * deadline, as Envoy does with its route timeout (decision D27). `true`: that timeout is
     * sent too.
     */
    /** Transport security for this service's endpoints (CA, mTLS, SPIFFE identity; src/mesh/config/tls.ts). Default none. */
    tls: optional(tlsSettings).describe(
      'Transport security: CA, mTLS cert and key, expected identity. Default none.',
    ),
    propagateDeadline: optional(boolean()).describe(
      "Whether the time left travels to the upstream (x-meshlet-timeout-ms for HTTP, grpc-timeout for gRPC unary calls). Default: HTTP always; gRPC all but the service's own timeout alone; true: that too.",
    ),
  }),
  (s, issue) => {
    const cb = s.circuitBreaker
    if (cb && cb.successThreshold > cb.halfOpenProbes) {
      issue(
        `expected at most halfOpenProbes (${cb.halfOpenProbes}), got ${cb.successThreshold}`,
        'circuitBreaker',
        'successThreshold',
      )
    }
    const { ttl } = s.retry.budget
    if (ttl < 1000 || ttl > 60_000)
      issue(`expected a duration from 1s to 60s, got ${ttl}ms`, 'retry', 'budget', 'ttl')
    if (s.hashKey !== undefined && s.loadBalancer !== 'ring-hash')
      issue(`applies to loadBalancer "ring-hash", not "${s.loadBalancer}"`, 'hashKey')
    if (s.slowStart !== undefined && !WEIGHT_RAMPS.includes(s.loadBalancer)) {
      issue(
        `applies to loadBalancer ${WEIGHT_RAMPS.map((n) => `"${n}"`).join(', ')}, not "${s.loadBalancer}"`,
        'slowStart',
      )
    }
    if (s.streamTimeout !== undefined && s.protocol !== 'grpc')
      issue(`applies to protocol "grpc", not "${s.protocol}"`, 'streamTimeout')
    if (s.channelOptions !== undefined && s.protocol !== 'grpc')
      issue(`applies to protocol "grpc", not "${s.protocol}"`, 'channelOptions')
    if (s.endpoints === undefined && s.discovery === undefined) {
      issue('required unless the service has discovery', 'endpoints')
    }
    s.endpoints?.forEach(({ url }, i) => {
      const isUrl = url.includes('://')
      if (s.protocol === 'http' && !isUrl) {
        issue(`expected an http: or https: URL for an http service, got ${formatValue(url)}`, 'endpoints', i)
      } else if (s.protocol === 'grpc' && isUrl) {
        issue(`expected "host:port" for a grpc service, got ${formatValue(url)}`, 'endpoints', i)
      }
    })
    return { ...s, endpoints: s.endpoints ?? [] }
  },
)

/** Reports a `regex` field that is not an RE2 pattern within bounds (linear-time matching, D49). */
function checkRegex(regex: string | undefined, issue: Report): void {
  if (regex === undefined) return
  const problem = regexProblem(regex)
  if (problem !== undefined) {
    issue(`expected an RE2 regular expression, got ${formatValue(regex)}: ${problem}`, 'regex')
  }
}

/** Reports a `template` whose pattern would be over RE2's bounds (only a huge one can be). */
function checkTemplate(template: string | undefined, issue: Report): void {
  if (template === undefined) return
  try {
    templatePattern(template)
  } catch (e) {
    issue(
      `expected a path template within bounds, got ${formatValue(template)}: ${(e as Error).message}`,
      'template',
    )
  }
}

const stringMatch = transform(
  object({
    /** The value equals this. */
    exact: optional(string()).describe('The value equals this.'),
    /** The value starts with this. */
    prefix: optional(string()).describe('The value starts with this.'),
    /** The value matches this regular expression (whole value). */
    regex: optional(string()).describe('The value matches this regular expression (whole value).'),
    /** `true`: the value is present (any value); `false`: it is absent. */
    present: optional(boolean()).describe('true: present (any value); false: absent.'),
  }),
  (m, issue) => {
    const given = [m.exact, m.prefix, m.regex, m.present].filter((v) => v !== undefined).length
    if (given !== 1) issue(`expected exactly one of exact, prefix, regex, present; got ${given}`)
    checkRegex(m.regex, issue)
    return m
  },
)

const pathMatch = transform(
  object({
    /** The path (without query) equals this. */
    exact: optional(string()).describe('The path equals this.'),
    /** The path starts with this. */
    prefix: optional(string()).describe('The path starts with this.'),
    /** The path matches this regular expression (whole path). */
    regex: optional(string()).describe('The path matches this regular expression.'),
    /** A template such as `/users/{id}`: each `{name}` matches one path segment. */
    template: optional(string({ pattern: /^\//, expected: 'a path template starting with "/"' })).describe(
      'A template such as /users/{id}: each {name} matches one segment.',
    ),
  }),
  (m, issue) => {
    const given = [m.exact, m.prefix, m.regex, m.template].filter((v) => v !== undefined).length
    if (given !== 1) issue(`expected exactly one of exact, prefix, regex, template; got ${given}`)
    checkRegex(m.regex, issue)
    checkTemplate(m.template, issue)
    return m
  },
)

const routeMatch = object({
  /** The host the call named (a service name or any other host). Default: any host. */
  host: optional(string()).describe('The host the call named. Default any.'),
  /** Methods (upper case for HTTP). Default: any method. */
  methods: optional(array(string())).describe('Methods. Default any.'),
  /** The path (for gRPC, the full method name `/pkg.Service/Method`). Default: any path. */
  path: optional(pathMatch).describe('The path (for gRPC, /pkg.Service/Method). Default any.'),
  /** Headers (for gRPC, metadata), by lower-case name (an RFC 9110 token); all must match. Default none. */
  headers: optional(record(stringMatch, { key: headerName })).describe(
    'Headers (gRPC metadata), all must match.',
  ),
  /** Query parameters, by name; all must match. Default none. */
  query: optional(record(stringMatch)).describe('Query parameters, all must match.'),
})

const destination = object({
  /** The service to send to. Required. */
  service: serviceName.describe('The service to send to.'),
  /** A subset of that service's endpoints (its `subsets`). Default: all its endpoints. */
  subset: optional(subsetName).describe("A subset of the service's endpoints."),
  /** Relative share of the route's calls (0..1000). Default `1`. */
  weight: optional(integer({ min: 0, max: 1000 }), 1).describe("Relative share of the route's calls."),
})

const headerOps = object({
  /** Headers to set (replacing any value): RFC 9110 names and values. Default `{}`. */
  set: optional(headerMap, {}).describe('Headers to set.'),
  /** Headers to append: RFC 9110 names and values. Default `{}`. */
  add: optional(headerMap, {}).describe('Headers to append.'),
  /** Headers to remove, by name. Default `[]`. */
  remove: optional(array(headerName), []).describe('Headers to remove.'),
})

const fault = object({
  /** Abort a share of calls without sending them. Default none. */
  abort: optional(
    object({
      /** Share of calls aborted, 0..100. Required. */
      percent: number({ min: 0, max: 100 }).describe('Share of calls aborted, 0..100.'),
      /** The HTTP status answered. Default `503`. */
      status: optional(integer({ min: 200, max: 599 }), 503).describe('The HTTP status answered.'),
      /** The gRPC status code answered (gRPC services). Default `14` (UNAVAILABLE). */
      grpcStatus: optional(integer({ min: 1, max: 16 }), 14).describe('The gRPC status code answered.'),
    }),
  ).describe('Abort a share of calls without sending them.'),
  /** Delay a share of calls before sending them. Default none. */
  delay: optional(
    object({
      /** Share of calls delayed, 0..100. Required. */
      percent: number({ min: 0, max: 100 }).describe('Share of calls delayed, 0..100.'),
      /** How long. Required. */
      duration: duration().describe('How long.'),
    }),
  ).describe('Delay a share of calls before sending them.'),
  /**
   * `'call'` (as Istio: once per call, before retries, so an abort is never retried) or
   * `'attempt'` (each attempt, inside retry and breaker, to exercise them). Default `'call'`.
   */
  scope: optional(literalUnion(['call', 'attempt']), 'call').describe('Once per call, or per attempt.'),
  /**
   * Honour the request headers `x-envoy-fault-abort-request`, `x-envoy-fault-delay-request` and
   * their `-percentage` companions (Envoy's and gRFC A33's header faults). Default `false`.
   */
  headers: optional(boolean(), false).describe('Honour x-envoy-fault-* request headers.'),
})

const routeRetry = object({
  /** Overrides the destination's `retry.attempts`. */
  attempts: optional(integer({ min: 1, max: 10 })).describe("Overrides the destination's retry.attempts."),
  /** Overrides the destination's `retry.perTryTimeout`. */
  perTryTimeout: optional(duration()).describe("Overrides the destination's retry.perTryTimeout."),
  /** Overrides the destination's `retry.retryOn`. */
  retryOn: optional(array(union(literalUnion(RETRY_ON), integer({ min: 100, max: 599 })))).describe(
    "Overrides the destination's retry.retryOn.",
  ),
  /** Overrides the destination's `retry.methods` (a route may allow more methods; `'*'`: any). */
  methods: optional(array(httpMethod)).describe("Overrides the destination's retry.methods."),
  /** Overrides the destination's `retry.retryableStatusCodes` (gRPC services). */
  retryableStatusCodes: optional(array(literalUnion(GRPC_FAILURE_STATUSES), { min: 1 })).describe(
    "Overrides the destination's retry.retryableStatusCodes (gRPC services).",
  ),
})

const route = object({
  /** A name, for events and error messages. Default: `route[i]`. */
  name: optional(string()).describe('A name for events and errors.'),
  /** Conditions, any of which selects this route; all of each one's fields must hold. Default: every call. */
  match: optional(array(routeMatch)).describe(
    'Conditions, any of which selects the route. Default every call.',
  ),
  /** Where matching calls go: one destination, or a weighted split (a canary). Required. */
  route: array(destination, { min: 1 }).describe(
    'Where matching calls go: one destination or a weighted split.',
  ),
  /**
   * Keep a caller on one side of a weighted split by hashing this header, cookie or query
   * parameter (a user stays on the canary or off it). Default: each call drawn at random.
   */
  sticky: optional(
    transform(
      object({
        header: optional(headerName).describe('A header to hash.'),
        cookie: optional(cookieName).describe('A cookie to hash.'),
        query: optional(string()).describe('A query parameter to hash.'),
      }),
      (k, issue) => {
        if ([k.header, k.cookie, k.query].filter((v) => v !== undefined).length !== 1) {
          issue('expected exactly one of header, cookie, query')
        }
        return k
      },
    ),
  ).describe('Keep a caller on one side of a split by hashing a header, cookie or query parameter.'),
  /** Changes to the request's headers. Default none. */
  requestHeaders: optional(headerOps).describe("Changes to the request's headers."),
  /** Changes to the response's headers. Default none. */
  responseHeaders: optional(headerOps).describe("Changes to the response's headers."),
  /**
   * Rewrites: `prefix` replaces the path prefix the route matched (`match.path.prefix`), `host`
   * sets the `host` header sent upstream. Default none.
   */
  rewrite: optional(
    object({
      // The URL parser drops tabs and newlines from a path: refused here rather than sent changed.
      prefix: optional(
        string({
          pattern: /^[\x21-\x7e\u0080-\uffff]*$/,
          maxLength: 2048,
          expected: 'a path prefix (no spaces or controls)',
        }),
      ).describe('Replaces the matched path prefix.'),
      host: optional(hostHeader).describe('The host header sent upstream.'),
    }),
  ).describe('Path prefix and host rewrites.'),
  /**
   * A copy of a share of the calls to another destination, fire-and-forget: its answer is
   * dropped, and it never delays or fails the call. Default none.
   */
  mirror: optional(
    object({
      service: serviceName.describe('The service that gets the copies.'),
      subset: optional(subsetName).describe('A subset of it.'),
      /** Share of calls copied, 0..100. Default `100`. */
      percent: optional(number({ min: 0, max: 100 }), 100).describe('Share of calls copied.'),
    }),
  ).describe('Copies of calls to another destination, fire-and-forget.'),
  /** Injected faults (chaos testing). Default none. */
  fault: optional(fault).describe('Injected faults (chaos testing).'),
  /** Overrides the destination's `timeout`. */
  timeout: optional(duration()).describe("Overrides the destination's timeout."),
  /** Overrides some of the destination's `retry` settings. */
  retry: optional(routeRetry).describe("Overrides some of the destination's retry settings."),
  /** Overrides the destination's `hedge`. */
  hedge: optional(hedge).describe("Overrides the destination's hedge."),
  /** Overrides the destination's `circuitBreaker` (a breaker of its own for this route). */
  circuitBreaker: optional(circuitBreaker).describe("Overrides the destination's circuit breaker."),
  /** Overrides the destination's `fallback`. */
  fallback: optional(fallback).describe("Overrides the destination's fallback."),
  /** The route's own rate limit (its own buckets) instead of the destination's (docs/quota.md). */
  rateLimit: optional(rateLimit),
})

/** The schema of the whole config; {@link parseConfig} and {@link configJsonSchema} use it. */
export const meshConfigSchema = object({
  /** The JSON Schema an editor validates the file against; ignored by meshlet. Default none. */
  $schema: optional(string()).describe('The JSON Schema an editor validates this file against.'),
  /**
   * Whether a host naming no configured service is refused; `false` lets it pass through
   * untouched. Default `false`.
   */
  /** Egress access policies (Istio AuthorizationPolicy shape, see config/policy.ts). Default none. */
  egress: egressPolicySchema,
  strict: optional(boolean(), false).describe(
    'Whether a host naming no configured service is refused (false: it passes through untouched).',
  ),
  /**
   * How a fetch call reports a failure the mesh made (a timeout, an open breaker, no healthy
   * endpoint, a full bulkhead, a rate limit, a denial, a connection failure): `'reject'` with a
   * `MeshError` (or fetch's `TypeError`), or `'respond'` with the `Response` an Envoy sidecar
   * answers (504 `upstream request timeout`, 503 `no healthy upstream`, ...), for code written
   * against a sidecar. gRPC calls are not affected. Default `'reject'`.
   */
  meshErrors: optional(literalUnion(['reject', 'respond']), 'reject').describe(
    "How fetch calls report mesh-made failures: 'reject' (a MeshError) or 'respond' (Envoy's 503/504/429/403 responses).",
  ),
  /**
   * The zone this process runs in: services prefer endpoints with the same `zone` and spill to
   * others as their `locality` says. Default none: no zone preference.
   */
  zone: optional(string()).describe('The zone this process runs in (zone-aware balancing). Default none.'),
  /** The services, by name: the host that calls use (`http://users/...`). Required, may be `{}`. */
  services: record(service, { key: serviceName }).describe('The services, by the host name that calls use.'),
  /**
   * Routing rules, in order: the first whose `match` holds decides where a call goes (Istio's
   * VirtualService `http` rules). A call no rule matches goes to the service its host names.
   * Default `[]`.
   */
  routes: optional(array(route), []).describe('Routing rules, first match wins.'),
  /** The Redis that global quotas share (D59). Default none: a global limit needs it. */
  redis: optional(redisConfig).describe('The Redis connection that global quotas share. Default none.'),
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
/** A service's `discovery`, resolved. */
export type ResolvedDiscoveryConfig = NonNullable<ResolvedServiceConfig['discovery']>
/** One routing rule, resolved. */
export type ResolvedRoute = ResolvedMeshConfig['routes'][number]
/** A condition for retrying: a name from Envoy's vocabulary or an HTTP status. */
export type RetryOn = ResolvedServiceConfig['retry']['retryOn'][number]
/** The load-balancing strategies a service may name. */
export type LoadBalancerName = ResolvedServiceConfig['loadBalancer']

/**
 * Validates `input` and resolves it: defaults applied, durations in milliseconds, endpoint URLs
 * normalised. Throws a {@link ConfigInvalidError} listing every problem, not only the first.
 */
export function parseConfig(input: unknown): ResolvedMeshConfig {
  const issues: ConfigIssue[] = []
  const config = meshConfigSchema.parse(input, '', issues)
  if (config !== undefined) {
    checkReferences(config, issues)
    checkHosts(config, issues)
    checkQuotaKeys(config, issues)
  }
  if (issues.length > 0 || config === undefined) throw new ConfigInvalidError(bounded(issues))
  return deepFreeze(config)
}

/** The most issues an error lists; the rest are counted, so a message stays bounded (D46). */
const MAX_ISSUES = 100

function bounded(issues: ConfigIssue[]): ConfigIssue[] {
  if (issues.length <= MAX_ISSUES) return issues
  const more = issues.length - MAX_ISSUES
  return [
    ...issues.slice(0, MAX_ISSUES),
    { path: '', message: `and ${more} more problem${more === 1 ? '' : 's'}` },
  ]
}

/** The names in a message: at most 10, quoted, then how many more. */
function names(keys: readonly string[], none: string): string {
  if (keys.length === 0) return none
  const shown = keys.slice(0, 10).map((k) => formatValue(k))
  return keys.length > 10 ? `${shown.join(', ')} and ${keys.length - 10} more` : shown.join(', ')
}

/**
 * Routes may only name services and subsets that exist, looked up by own key only (D47): a
 * route to `constructor` names no service, whatever `Object.prototype` holds.
 */
function checkReferences(config: ResolvedMeshConfig, issues: ConfigIssue[]): void {
  const check = (path: string, service: string, subset: string | undefined) => {
    const svc = Object.hasOwn(config.services, service) ? config.services[service] : undefined
    if (svc === undefined) {
      issues.push({
        path: `${path}.service`,
        message: `expected a configured service (${names(Object.keys(config.services), 'none is configured')}), got ${formatValue(service)}`,
      })
    } else if (subset !== undefined && !Object.hasOwn(svc.subsets, subset)) {
      issues.push({
        path: `${path}.subset`,
        message: `expected a subset of service ${formatValue(service)} (${names(Object.keys(svc.subsets), 'it has none')}), got ${formatValue(subset)}`,
      })
    }
  }
  // Hosts are case-insensitive, and the mesh finds services and subsets by lower-case name: two
  // names that differ only in case would be one destination.
  const seen = new Map<string, string>()
  for (const [name, service] of Object.entries(config.services)) {
    const first = seen.get(name.toLowerCase())
    if (first !== undefined) {
      issues.push({
        path: childPath('services', name),
        message: `duplicate service name ${formatValue(name)} (hosts are case-insensitive: same as ${formatValue(first)})`,
      })
    } else seen.set(name.toLowerCase(), name)
    const subsets = new Map<string, string>()
    for (const subset of Object.keys(service.subsets)) {
      const other = subsets.get(subset.toLowerCase())
      if (other !== undefined) {
        issues.push({
          path: childPath(childPath(childPath('services', name), 'subsets'), subset),
          message: `duplicate subset name ${formatValue(subset)} (names are case-insensitive: same as ${formatValue(other)})`,
        })
      } else subsets.set(subset.toLowerCase(), subset)
    }
  }
  config.routes.forEach((r, i) => {
    r.route.forEach((d, j) => {
      check(`routes[${i}].route[${j}]`, d.service, d.subset)
    })
    if (r.route.every((d) => d.weight === 0)) {
      issues.push({
        path: `routes[${i}].route`,
        message: 'expected at least one destination with a weight above 0',
      })
    }
    if (r.mirror) check(`routes[${i}].mirror`, r.mirror.service, r.mirror.subset)
  })
}

/**
 * Service host aliases: each host names one service, never another service's name, and a route
 * matching an alias would never match (calls by an alias are matched by the service's name).
 */
function checkHosts(config: ResolvedMeshConfig, issues: ConfigIssue[]): void {
  const owner = new Map<string, string>()
  for (const name of Object.keys(config.services)) {
    owner.set(name.toLowerCase(), name)
    if (!urlKeepsHost(name)) issues.push({ path: `services.${name}`, message: hostReadAs(name) })
  }
  for (const [name, svc] of Object.entries(config.services)) {
    svc.hosts.forEach((host, i) => {
      const key = host.toLowerCase()
      if (!urlKeepsHost(host)) {
        issues.push({ path: `services.${name}.hosts[${i}]`, message: hostReadAs(host) })
        return
      }
      const other = owner.get(key)
      if (other !== undefined && other !== name) {
        issues.push({
          path: `services.${name}.hosts[${i}]`,
          message: `expected a host no other service names, got "${host}" (service "${other}")`,
        })
      } else owner.set(key, name)
    })
  }
  if (owner.size === Object.keys(config.services).length) return
  config.routes.forEach((r, i) => {
    r.match?.forEach((m, j) => {
      if (m.host === undefined) return
      const svc = owner.get(m.host.toLowerCase())
      if (svc !== undefined && svc.toLowerCase() !== m.host.toLowerCase()) {
        issues.push({
          path: `routes[${i}].match[${j}].host`,
          message: `expected the service name "${svc}", got its alias "${m.host}" (calls by an alias are matched by the service's name)`,
        })
      }
    })
  })
}

/**
 * Whether a name reaches the mesh as written when a URL names it: fetch's WHATWG parser reads a
 * host whose last label is a number as an IPv4 address (`0` is `0.0.0.0`, `1.2` is `1.0.0.2`) and
 * refuses some others (`users.123`), so a service of such a name could never be called by it.
 */
function urlKeepsHost(name: string): boolean {
  return URL.canParse(`http://${name}/`) && new URL(`http://${name}/`).hostname === name.toLowerCase()
}

function hostReadAs(name: string): string {
  const read = URL.canParse(`http://${name}/`) ? new URL(`http://${name}/`).hostname : undefined
  return read === undefined
    ? `expected a host name a URL can carry, got "${name}" (a URL with it does not parse)`
    : `expected a host name a URL keeps as written, got "${name}" (a URL reads it as "${read}")`
}

/** The JSON Schema (draft 2020-12) of {@link MeshConfig}, for editors and other languages. */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'meshlet config',
    ...meshConfigSchema.jsonSchema(),
  }
}
