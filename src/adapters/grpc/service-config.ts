/**
 * Reads a gRPC service config (`grpc.service_config`, gRFC A2/A6) into a meshlet service config,
 * so a team that already tuned retries or hedging for grpc-js keeps its policy when it moves
 * the client onto the mesh.
 *
 * What translates, and how (A6's semantics, checked against grpc-js 1.14's `retrying-call`):
 * - `retryPolicy`: `maxAttempts` -> `retry.attempts` (capped at 5, A6's client-side limit, as
 *   grpc-js does); `initialBackoff`/`maxBackoff` -> `retry.backoff.base`/`max` with full jitter
 *   (A6: "random(0, min(initialBackoff*backoffMultiplier**(n-1), maxBackoff))");
 *   `backoffMultiplier` -> `retry.backoff.factor`; `retryableStatusCodes` ->
 *   `retry.retryableStatusCodes`.
 * - `hedgingPolicy`: `maxAttempts` -> `hedge.maxAttempts` (capped at 5), `hedgingDelay` ->
 *   `hedge.delay` (absent: 0), `nonFatalStatusCodes` -> `retry.retryableStatusCodes` (the one
 *   classifier: A6 allows a retry or a hedging policy per method, never both), and
 *   `retry.attempts: 1`, since A6 makes no retry after all hedges failed.
 * - `timeout` -> `timeout` and `streamTimeout` (grpc-js applies a method config's timeout to
 *   streaming calls too, D37) with `propagateDeadline: true` (grpc-js sends a method config's
 *   timeout as `grpc-timeout`; meshlet's own timeouts stay local otherwise, D27); `retryThrottling` -> `retry.budget` of kind `throttling`; without it,
 *   `retry.budget.kind: 'none'`, since grpc-js limits retries by nothing else.
 * - `loadBalancingConfig` (or the older `loadBalancingPolicy`): the first policy meshlet has,
 *   as gRPC picks the first it supports: `round_robin` -> `'round-robin'`,
 *   `least_request_experimental` -> `'least-request'`.
 * - `healthCheckConfig` -> `healthCheck: {}` (`grpc.health.v1`).
 * - `maxRequestMessageBytes` / `maxResponseMessageBytes` -> `channelOptions`
 *   `grpc.max_send_message_length` / `grpc.max_receive_message_length` (the service's endpoint
 *   channels enforce them, as grpc-js does).
 *
 * Everything else is listed in `unsupported` with the reason, never dropped silently. A
 * meshlet service is a whole server, so only service-wide policies translate: per-method ones
 * need a route matching the method's path.
 *
 * Fields equal to meshlet's defaults for a gRPC service are left out (`retryableStatusCodes`
 * `['UNAVAILABLE']`, backoff factor 2, full jitter), so the result stays small.
 */
import { DEFAULT_GRPC_RETRYABLE_STATUS_CODES } from './classify.js'
import { type GrpcStatusName, statusCode, statusName } from './status.js'

/** A status a retry or hedging policy may name (every status but OK). */
export type GrpcFailureStatus = Exclude<GrpcStatusName, 'OK'>

/** The part of a meshlet service config that a gRPC service config can say. */
export interface GrpcServiceConfigPatch {
  protocol: 'grpc'
  /** The whole call's deadline, ms. */
  timeout?: number
  /** The same deadline for streaming calls, ms (D37). */
  streamTimeout?: number
  /** `true` with a `timeout`: grpc-js sends a method config's timeout as `grpc-timeout`, so meshlet does too (D27). */
  propagateDeadline?: true
  loadBalancer?: 'round-robin' | 'least-request'
  retry?: {
    attempts?: number
    backoff?: { base: number; max: number; factor?: number }
    /** The status codes retried (retry policy) or non-fatal (hedging policy). */
    retryableStatusCodes?: GrpcFailureStatus[]
    budget?: { kind: 'throttling'; maxTokens: number; tokenRatio: number } | { kind: 'none' }
  }
  hedge?: { delay: number; maxAttempts: number }
  healthCheck?: Record<string, never>
  /** `grpc.max_send_message_length` / `grpc.max_receive_message_length`, from the message limits. */
  channelOptions?: Record<string, number>
}

/** What {@link fromGrpcServiceConfig} returns. */
export interface GrpcServiceConfigTranslation {
  /** A service config without `endpoints`: spread it into the service (`{ ...service, endpoints }`). */
  readonly service: GrpcServiceConfigPatch
  /** Every field that did not translate, as `path: reason`. Empty when everything did. */
  readonly unsupported: string[]
}

/** Options of {@link fromGrpcServiceConfig}. */
export interface FromGrpcServiceConfigOptions {
  /**
   * The gRPC service (`'pkg.Users'`) whose `methodConfig` applies, when the config names
   * several. Default: the entry for all services (`name: [{}]`), else the only service-wide one.
   */
  readonly grpcService?: string
}

/** A6's client-side cap on `maxAttempts` (grpc-js: `grpc-node.retry_max_attempts_limit`, default 5). */
const MAX_ATTEMPTS_LIMIT = 5
const DURATION = /^(\d+)(\.\d{1,9})?s$/

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** A proto3 JSON duration (`'1.5s'`, or `{ seconds, nanos }` as grpc-js accepts) in ms; `undefined` when invalid. */
function durationMs(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const m = DURATION.exec(value)
    if (!m) return undefined
    return Number(m[1]) * 1000 + (m[2] ? Number(`0${m[2]}`) * 1000 : 0)
  }
  if (isObject(value) && typeof value.seconds === 'number' && typeof value.nanos === 'number')
    return value.seconds * 1000 + value.nanos / 1e6
  return undefined
}

/** Status code names, upper-case; `undefined` when one is no status code. */
function codeNames(values: unknown): GrpcFailureStatus[] | undefined {
  if (!Array.isArray(values)) return undefined
  const names: GrpcFailureStatus[] = []
  for (const v of values) {
    const code = typeof v === 'string' || typeof v === 'number' ? statusCode(v) : undefined
    if (code === undefined || code === 0) return undefined
    const name = statusName(code) as GrpcFailureStatus
    if (!names.includes(name)) names.push(name)
  }
  return names
}

const sameCodes = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x) => b.includes(x))

/** The names of a methodConfig entry, classified. */
function scopeOf(entry: Json): { all: boolean; services: string[]; methods: string[] } {
  const out = { all: false, services: [] as string[], methods: [] as string[] }
  const names = Array.isArray(entry.name) ? entry.name : []
  for (const n of names) {
    if (!isObject(n)) continue
    const service = typeof n.service === 'string' ? n.service : ''
    const method = typeof n.method === 'string' ? n.method : ''
    if (service === '') out.all = true
    else if (method === '') out.services.push(service)
    else out.methods.push(`${service}/${method}`)
  }
  return out
}

/**
 * Translates a gRPC service config (an object, or its JSON text) into the retry, hedging,
 * deadline, budget, balancing and health-check settings of one meshlet gRPC service; see the
 * module comment for the mapping. Throws a `TypeError` when `json` is not a JSON object.
 *
 * @example
 * ```ts
 * import { createMesh, fromGrpcServiceConfig } from 'meshlet'
 * const { service, unsupported } = fromGrpcServiceConfig({
 *   methodConfig: [{ name: [{ service: 'pkg.Users' }], timeout: '2s',
 *     retryPolicy: { maxAttempts: 3, initialBackoff: '0.1s', maxBackoff: '1s',
 *                    backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] } }],
 * })
 * const mesh = createMesh({ services: { users: { ...service, endpoints: ['127.0.0.1:50051'] } } })
 * ```
 */
export function fromGrpcServiceConfig(
  json: string | Record<string, unknown>,
  options: FromGrpcServiceConfigOptions = {},
): GrpcServiceConfigTranslation {
  const config: unknown = typeof json === 'string' ? JSON.parse(json) : json
  if (!isObject(config)) throw new TypeError('fromGrpcServiceConfig: expected a JSON object')
  const unsupported: string[] = []
  const service: GrpcServiceConfigPatch = { protocol: 'grpc' }

  for (const key of Object.keys(config)) {
    if (
      ![
        'methodConfig',
        'retryThrottling',
        'loadBalancingConfig',
        'loadBalancingPolicy',
        'healthCheckConfig',
      ].includes(key)
    )
      unsupported.push(`${key}: not a setting meshlet has`)
  }

  translateBalancing(config, service, unsupported)

  const throttling = config.retryThrottling
  if (throttling !== undefined) {
    const max = isObject(throttling) ? throttling.maxTokens : undefined
    const ratio = isObject(throttling) ? throttling.tokenRatio : undefined
    if (typeof max !== 'number' || !(max > 0 && max <= 1000) || typeof ratio !== 'number' || !(ratio > 0)) {
      unsupported.push('retryThrottling: invalid (maxTokens must be in (0, 1000], tokenRatio > 0); ignored')
    } else {
      // grpc-js keeps three decimals of both.
      let tokenRatio = +ratio.toFixed(3)
      if (tokenRatio > 1) {
        unsupported.push(`retryThrottling.tokenRatio: ${ratio} is above meshlet's maximum of 1; 1 used`)
        tokenRatio = 1
      }
      service.retry = { budget: { kind: 'throttling', maxTokens: +max.toFixed(3), tokenRatio } }
    }
  }

  const health = config.healthCheckConfig
  if (health !== undefined) {
    service.healthCheck = {}
    const name = isObject(health) ? health.serviceName : undefined
    if (typeof name === 'string' && name !== '')
      unsupported.push(`healthCheckConfig.serviceName: meshlet's probe asks about the server as a whole ('')`)
  }

  const methodConfig = config.methodConfig
  if (methodConfig !== undefined && !Array.isArray(methodConfig)) {
    unsupported.push('methodConfig: expected a list; ignored')
  } else if (Array.isArray(methodConfig)) {
    const chosen = chooseMethodConfig(methodConfig, options.grpcService, unsupported)
    if (chosen !== undefined)
      translateMethodConfig(chosen.entry, `methodConfig[${chosen.index}]`, service, unsupported)
  }

  // Without retryThrottling grpc-js limits retries and hedges by nothing but maxAttempts.
  if ((service.retry !== undefined || service.hedge !== undefined) && service.retry?.budget === undefined)
    service.retry = { ...service.retry, budget: { kind: 'none' } }
  return { service, unsupported }
}

function translateBalancing(config: Json, service: GrpcServiceConfigPatch, unsupported: string[]): void {
  const known: Record<string, GrpcServiceConfigPatch['loadBalancer']> = {
    round_robin: 'round-robin',
    least_request_experimental: 'least-request',
  }
  let names: string[] = []
  let path = ''
  if (Array.isArray(config.loadBalancingConfig)) {
    path = 'loadBalancingConfig'
    names = config.loadBalancingConfig.filter(isObject).map((c) => Object.keys(c)[0] ?? '')
    if (typeof config.loadBalancingPolicy === 'string')
      unsupported.push('loadBalancingPolicy: superseded by loadBalancingConfig; ignored')
  } else if (typeof config.loadBalancingPolicy === 'string') {
    path = 'loadBalancingPolicy'
    names = [config.loadBalancingPolicy.toLowerCase()]
  } else {
    if (config.loadBalancingConfig !== undefined)
      unsupported.push('loadBalancingConfig: expected a list; ignored')
    return
  }
  for (const name of names) {
    const lb = known[name]
    if (lb !== undefined) {
      service.loadBalancer = lb
      return
    }
  }
  if (names.length > 0) {
    unsupported.push(
      `${path}: ${names.join(', ')}: no such balancer in meshlet (pick_first sends every call to one ` +
        `address; meshlet balances over all endpoints); meshlet's default kept`,
    )
  }
}

/** The methodConfig entry that applies to the whole service; the others are reported. */
function chooseMethodConfig(
  entries: unknown[],
  grpcService: string | undefined,
  unsupported: string[],
): { entry: Json; index: number } | undefined {
  let forService: number | undefined
  let forAll: number | undefined
  const serviceWide: number[] = []
  entries.forEach((entry, i) => {
    if (!isObject(entry)) {
      unsupported.push(`methodConfig[${i}]: expected an object; ignored`)
      return
    }
    const scope = scopeOf(entry)
    if (scope.methods.length > 0) {
      unsupported.push(
        `methodConfig[${i}] (${scope.methods.join(', ')}): per-method policies need a route on the method's path`,
      )
    }
    if (scope.all) forAll ??= i
    if (scope.services.length > 0) {
      serviceWide.push(i)
      if (grpcService !== undefined && scope.services.includes(grpcService)) forService ??= i
    }
  })
  let chosen = forService ?? (grpcService === undefined ? undefined : forAll)
  if (chosen === undefined && grpcService === undefined) {
    chosen = forAll ?? (serviceWide.length > 0 ? serviceWide[0] : undefined)
  }
  for (const i of serviceWide) {
    if (i !== chosen) {
      const names = scopeOf(entries[i] as Json).services.join(', ')
      unsupported.push(
        `methodConfig[${i}] (${names}): one policy per meshlet service; methodConfig[${chosen}] applies (give grpcService to choose)`,
      )
    }
  }
  if (forAll !== undefined && forAll !== chosen)
    unsupported.push(
      `methodConfig[${forAll}] (all services): methodConfig[${chosen}] applies to this service`,
    )
  return chosen === undefined ? undefined : { entry: entries[chosen] as Json, index: chosen }
}

function translateMethodConfig(
  entry: Json,
  path: string,
  service: GrpcServiceConfigPatch,
  unsupported: string[],
) {
  for (const key of Object.keys(entry)) {
    switch (key) {
      case 'name':
      case 'retryPolicy':
      case 'hedgingPolicy':
      case 'timeout':
        break
      case 'waitForReady':
        if (entry.waitForReady === true)
          unsupported.push(`${path}.waitForReady: meshlet fails an attempt to an unreachable endpoint fast`)
        break
      case 'maxRequestMessageBytes':
      case 'maxResponseMessageBytes': {
        // A6/A2: a uint32 limit (JSON number or string); a service-wide one is a channel option of
        // the service's endpoint channels (D36).
        const option = `grpc.max_${key === 'maxRequestMessageBytes' ? 'send' : 'receive'}_message_length`
        const raw = entry[key]
        const bytes = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : raw
        if (typeof bytes === 'number' && Number.isInteger(bytes) && bytes >= 0 && bytes <= 0xffffffff) {
          service.channelOptions = { ...service.channelOptions, [option]: bytes }
        } else unsupported.push(`${path}.${key}: invalid byte count ${JSON.stringify(raw)}`)
        break
      }
      default:
        unsupported.push(`${path}.${key}: not a setting meshlet has`)
    }
  }
  if (entry.timeout !== undefined) {
    const ms = durationMs(entry.timeout)
    if (ms === undefined)
      unsupported.push(`${path}.timeout: invalid duration ${JSON.stringify(entry.timeout)}`)
    else {
      service.timeout = ms
      service.streamTimeout = ms
      service.propagateDeadline = true
    }
  }
  if (entry.retryPolicy !== undefined && entry.hedgingPolicy !== undefined) {
    unsupported.push(
      `${path}: retryPolicy and hedgingPolicy cannot both be set (grpc-js refuses it); both ignored`,
    )
    return
  }
  if (entry.retryPolicy !== undefined)
    translateRetry(entry.retryPolicy, `${path}.retryPolicy`, service, unsupported)
  if (entry.hedgingPolicy !== undefined)
    translateHedging(entry.hedgingPolicy, `${path}.hedgingPolicy`, service, unsupported)
}

function translateRetry(
  policy: unknown,
  path: string,
  service: GrpcServiceConfigPatch,
  unsupported: string[],
) {
  if (!isObject(policy)) {
    unsupported.push(`${path}: expected an object; ignored`)
    return
  }
  const problems: string[] = []
  const attempts = policy.maxAttempts
  if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 2)
    problems.push('maxAttempts must be an integer of at least 2')
  const base = durationMs(policy.initialBackoff)
  const max = durationMs(policy.maxBackoff)
  if (base === undefined || !(base > 0))
    problems.push('initialBackoff must be a positive duration such as "0.1s"')
  if (max === undefined || !(max > 0)) problems.push('maxBackoff must be a positive duration such as "1s"')
  const factor = policy.backoffMultiplier
  if (typeof factor !== 'number' || !(factor > 0)) problems.push('backoffMultiplier must be a number above 0')
  const codes = codeNames(policy.retryableStatusCodes)
  if (codes === undefined || codes.length === 0) problems.push('retryableStatusCodes must list status codes')
  if (problems.length > 0) {
    unsupported.push(`${path}: invalid (${problems.join('; ')}); ignored, as grpc-js would refuse it`)
    return
  }
  for (const key of Object.keys(policy)) {
    if (
      !['maxAttempts', 'initialBackoff', 'maxBackoff', 'backoffMultiplier', 'retryableStatusCodes'].includes(
        key,
      )
    )
      unsupported.push(`${path}.${key}: not a setting meshlet has`)
  }
  let baseMs = base!
  if (baseMs > max!) {
    unsupported.push(
      `${path}.initialBackoff: above maxBackoff, which meshlet does not allow; maxBackoff used`,
    )
    baseMs = max!
  }
  const backoff: { base: number; max: number; factor?: number } = { base: baseMs, max: max! }
  if (factor !== 2) backoff.factor = factor as number
  service.retry = { ...service.retry, attempts: Math.min(attempts as number, MAX_ATTEMPTS_LIMIT), backoff }
  if (!sameCodes(codes!, DEFAULT_GRPC_RETRYABLE_STATUS_CODES)) service.retry.retryableStatusCodes = codes!
}

function translateHedging(
  policy: unknown,
  path: string,
  service: GrpcServiceConfigPatch,
  unsupported: string[],
) {
  if (!isObject(policy)) {
    unsupported.push(`${path}: expected an object; ignored`)
    return
  }
  const problems: string[] = []
  const attempts = policy.maxAttempts
  if (typeof attempts !== 'number' || !Number.isInteger(attempts) || attempts < 2)
    problems.push('maxAttempts must be an integer of at least 2')
  const delay = policy.hedgingDelay === undefined ? 0 : durationMs(policy.hedgingDelay)
  if (delay === undefined) problems.push('hedgingDelay must be a duration such as "0.5s"')
  const codes = policy.nonFatalStatusCodes === undefined ? [] : codeNames(policy.nonFatalStatusCodes)
  if (codes === undefined) problems.push('nonFatalStatusCodes must list status codes')
  if (problems.length > 0) {
    unsupported.push(`${path}: invalid (${problems.join('; ')}); ignored, as grpc-js would refuse it`)
    return
  }
  for (const key of Object.keys(policy)) {
    if (!['maxAttempts', 'hedgingDelay', 'nonFatalStatusCodes'].includes(key))
      unsupported.push(`${path}.${key}: not a setting meshlet has`)
  }
  service.hedge = { delay: delay!, maxAttempts: Math.min(attempts as number, MAX_ATTEMPTS_LIMIT) }
  service.retry = { ...service.retry, attempts: 1 }
  if (!sameCodes(codes!, DEFAULT_GRPC_RETRYABLE_STATUS_CODES)) service.retry.retryableStatusCodes = codes!
}
