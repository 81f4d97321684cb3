/**
 * DestinationRules as meshlet service policy: subsets, load balancer, connection-pool limits and
 * outlier detection, with the meanings pilot gives them when it writes Envoy's cluster
 * (`cluster_traffic_policy.go`) and Istio's validation (`validateTrafficPolicy`).
 */

import { canonical, DNS1123_LABEL, duration, Fields, isObject } from './fields.js'
import { resolveHost } from './hosts.js'
import type { IstioServiceConfig, State } from './state.js'

type OutlierDetection = NonNullable<IstioServiceConfig['outlierDetection']>

/** The longest timer Node can arm: a wait that only the call's deadline ends, as in Envoy. */
const LONGEST_WAIT_MS = 2_147_483_647
/**
 * The largest count meshlet's config takes (its range for `concurrency`): Envoy's "no limit"
 * (2^32 - 1) and any larger Istio count become this, in effect no limit either.
 */
const MESH_COUNT_MAX = 1_000_000

/** The fields of a `trafficPolicy`, one of which Istio requires. */
const POLICY_FIELDS = [
  'outlierDetection',
  'connectionPool',
  'loadBalancer',
  'tls',
  'portLevelSettings',
  'tunnel',
  'proxyProtocol',
  'retryBudget',
]

/** Translates one DestinationRule's spec into its service's policy on `state`. */
export function destinationRule(spec: Fields, scope: { state: State; namespace: string }): void {
  const { state, namespace } = scope
  const out = spec.out
  const host = spec.string('host')
  if (host === undefined || host === '') {
    out.invalid('host', 'required')
    return
  }
  if (host.includes('*')) {
    out.unsupported('host', 'wildcard host: resource left out')
    return
  }
  const name = state.service(resolveHost(host, namespace, state.naming.clusterDomain), out, 'host')
  if (name === undefined) return
  if (state.ruled.has(name)) {
    out.unsupported('', `a second DestinationRule for ${name}: Istio applies one; resource left out`)
    return
  }
  state.ruled.add(name)
  const svc = state.config(name)
  const topPolicy = spec.raw('trafficPolicy')
  if (topPolicy !== undefined) {
    if (isObject(topPolicy)) Object.assign(svc, trafficPolicy(new Fields(topPolicy, 'trafficPolicy', out)))
    else out.unsupported('trafficPolicy', 'expected an object')
  }
  const subsets: Record<string, Record<string, string>> = {}
  ;(spec.array('subsets') ?? []).forEach((raw, k) => {
    const path = `subsets[${k}]`
    if (!isObject(raw)) {
      out.unsupported(path, 'expected an object')
      return
    }
    const s = new Fields(raw, path, out)
    const subsetName = s.string('name')
    if (subsetName === undefined || subsetName === '') {
      out.invalid(s.at('name'), 'subset name cannot be empty')
      return
    }
    if (!DNS1123_LABEL.test(subsetName)) {
      out.invalid(s.at('name'), `subset name is invalid: ${subsetName}`)
      return
    }
    const labels: Record<string, string> = {}
    const l = s.object('labels')
    if (l) {
      for (const [key, value] of Object.entries(l.value)) {
        l.raw(key)
        labels[key] = String(value)
      }
    }
    // meshlet's policy is per service; a subset's own policy is fine only when it is the same.
    const policy = s.raw('trafficPolicy')
    if (policy !== undefined && canonical(policy) !== canonical(topPolicy)) {
      if (isObject(policy)) validatePolicy(new Fields(policy, s.at('trafficPolicy'), out))
      out.unsupported(s.at('trafficPolicy'), 'per-subset policy')
    }
    s.done()
    subsets[subsetName] = labels
  })
  if (Object.keys(subsets).length > 0) svc.subsets = subsets
  spec.unsupported('exportTo', 'visibility across namespaces')
  spec.unsupported('workloadSelector', 'the caller has no workload labels')
  spec.done()
}

/** Istio's checks of a traffic policy meshlet does not translate (a subset's own). */
function validatePolicy(tp: Fields): void {
  if (!POLICY_FIELDS.some((k) => tp.has(k)))
    tp.out.invalid(tp.path, 'traffic policy must have at least one field')
}

const SIMPLE_LB: Readonly<Record<string, IstioServiceConfig['loadBalancer']>> = {
  ROUND_ROBIN: 'round-robin',
  LEAST_REQUEST: 'least-request',
  LEAST_CONN: 'least-request',
  RANDOM: 'random',
}

function trafficPolicy(tp: Fields): IstioServiceConfig {
  const out = tp.out
  validatePolicy(tp)
  const svc: IstioServiceConfig = {}
  const lb = tp.object('loadBalancer')
  if (lb) {
    const simple = lb.string('simple')
    if (simple !== undefined && simple !== 'UNSPECIFIED') {
      const name = SIMPLE_LB[simple]
      if (name) svc.loadBalancer = name
      else out.unsupported(lb.at('simple'), JSON.stringify(simple))
    }
    const hash = lb.object('consistentHash')
    if (hash) {
      const key = hashKeyOf(hash)
      if (key) {
        svc.loadBalancer = 'ring-hash'
        svc.hashKey = key
      }
    }
    lb.done()
  }
  const pool = tp.object('connectionPool')
  if (pool) {
    const concurrency = connectionPool(pool)
    if (concurrency) svc.concurrency = concurrency
  }
  const od = tp.object('outlierDetection')
  if (od) svc.outlierDetection = outlierDetection(od)
  tp.done()
  return svc
}

/**
 * Envoy's circuit-breaker thresholds as meshlet's bulkhead. `http2MaxRequests` caps the calls in
 * flight and answers at once when full (Envoy's `max_requests` overflow, a 503, no queue).
 * `maxConnections` caps them too (meshlet's HTTP transport sends one request per connection at a
 * time, as HTTP/1.1), but a call over it waits as a pending request, up to
 * `http1MaxPendingRequests` of them, for as long as its deadline allows. pilot writes a
 * threshold only when its field is above 0, so 0 is unset: unlimited (Envoy's 2^32 - 1).
 */
function connectionPool(pool: Fields): IstioServiceConfig['concurrency'] {
  const out = pool.out
  const http = pool.object('http')
  const tcp = pool.object('tcp')
  if (http === undefined && tcp === undefined)
    out.invalid(pool.path, 'connection pool must have at least one field')
  const nonNegative = (f: Fields | undefined, key: string, what: string): number | undefined => {
    const v = f?.number(key)
    if (v !== undefined && v < 0) {
      out.invalid(f!.at(key), `${what} must be non-negative`)
      return undefined
    }
    return v === undefined || v === 0 ? undefined : v
  }
  const maxRequests = atMostMesh(nonNegative(http, 'http2MaxRequests', 'http2 max requests'))
  const pending = atMostMesh(nonNegative(http, 'http1MaxPendingRequests', 'http1 max pending requests'))
  const maxConnections = atMostMesh(nonNegative(tcp, 'maxConnections', 'max connections'))
  if (http?.has('maxRetries')) {
    nonNegative(http, 'maxRetries', 'max retries')
    out.unsupported(http.at('maxRetries'), 'meshlet bounds retries with its retry budget')
  }
  for (const key of ['maxRequestsPerConnection', 'maxConcurrentStreams']) {
    if (http?.has(key)) nonNegative(http, key, key)
    http?.unsupported(key, 'a connection setting of the transport')
  }
  http?.done()
  tcp?.done()
  pool.done()
  let result: IstioServiceConfig['concurrency']
  if (maxRequests !== undefined && (maxConnections === undefined || maxRequests <= maxConnections)) {
    result = { max: maxRequests, queue: 0 }
  } else if (maxConnections !== undefined) {
    result = { max: maxConnections, queue: pending ?? MESH_COUNT_MAX, queueTimeout: LONGEST_WAIT_MS }
  }
  if (result === undefined && pending !== undefined) {
    out.unsupported(http!.at('http1MaxPendingRequests'), 'no effect without a request or connection limit')
  }
  if (result?.queue === 0 && pending !== undefined) {
    out.unsupported(http!.at('http1MaxPendingRequests'), 'no effect: http2MaxRequests answers at once first')
  }
  return result
}

/**
 * Istio's `consistentHash` key as meshlet's `hashKey`. Istio's ring and Maglev sizes tune the
 * table, not where a key lands in meshlet's ring: listed, as are the source IP (a client has
 * one) and the cookie Envoy would set when absent (meshlet balances such a call at random).
 */
function hashKeyOf(h: Fields): IstioServiceConfig['hashKey'] {
  let key: IstioServiceConfig['hashKey']
  const header = h.string('httpHeaderName')
  const query = h.string('httpQueryParameterName')
  const cookie = h.object('httpCookie')
  if (header !== undefined) key = { header: header.toLowerCase() }
  else if (query !== undefined) key = { query }
  else if (cookie) {
    const name = cookie.string('name')
    if (name !== undefined) key = { cookie: name }
    cookie.unsupported('path', 'meshlet sets no cookie')
    cookie.unsupported('ttl', 'meshlet sets no cookie')
    cookie.unsupported('attributes', 'meshlet sets no cookie')
    cookie.done()
  }
  h.unsupported('useSourceIp', 'a client hashes no source address')
  h.unsupported('ringHash', 'ring size')
  h.unsupported('maglev', 'meshlet hashes on a ring')
  h.unsupported('minimumRingSize', 'ring size')
  h.done()
  if (key === undefined) h.out.unsupported(h.path, 'no header, cookie or query parameter to hash')
  return key
}

/**
 * Istio's outlier detection as pilot writes it: `consecutive5xxErrors` (Envoy's default 5 when
 * unset) and `consecutiveGatewayErrors` (off when unset) are two counters; the deprecated
 * `consecutiveErrors` is not applied, with Istio's warning; `maxEjectionPercent: 0` is unset
 * (Envoy's 10); success-rate ejection is off, and so is the panic threshold unless
 * `minHealthPercent` says otherwise.
 */
function outlierDetection(od: Fields): OutlierDetection {
  const out = od.out
  const result: OutlierDetection = {
    consecutiveFailures: 5,
    successRateEjection: { enforcementPercentage: 0 },
    panicThreshold: 0,
  }
  const counter = (key: string): number | undefined => {
    const v = od.number(key)
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
      out.unsupported(od.at(key), `expected a whole number, got ${v}`)
      return undefined
    }
    return v
  }
  const fiveXx = counter('consecutive5xxErrors')
  if (fiveXx !== undefined) result.consecutiveFailures = fiveXx
  const gateway = counter('consecutiveGatewayErrors')
  if (gateway !== undefined) result.consecutiveGatewayFailures = gateway
  if (od.number('consecutiveErrors')) {
    out.unsupported(
      od.at('consecutiveErrors'),
      'not applied, as Istio: outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead',
    )
  }
  const interval = duration(od, 'interval')
  if (interval !== undefined) result.interval = interval
  const base = duration(od, 'baseEjectionTime')
  if (base !== undefined) result.baseEjectionTime = base
  const percent = (key: string): number | undefined => {
    const v = od.number(key)
    if (v !== undefined && (v < 0 || v > 100)) {
      out.invalid(od.at(key), `percentage ${v} is not in range 0..100`)
      return undefined
    }
    return v
  }
  const max = percent('maxEjectionPercent')
  if (max !== undefined && max > 0) result.maxEjectionPercent = max
  const minHealth = percent('minHealthPercent')
  if (minHealth !== undefined) result.panicThreshold = minHealth
  const split = od.boolean('splitExternalLocalOriginErrors') === true
  const localOrigin = od.number('consecutiveLocalOriginFailures')
  if (!split && localOrigin !== undefined && localOrigin > 0) {
    out.invalid(
      od.at('consecutiveLocalOriginFailures'),
      'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false',
    )
  }
  if (split) {
    out.unsupported(
      od.at('splitExternalLocalOriginErrors'),
      'meshlet counts local and upstream failures together',
    )
    if (localOrigin !== undefined) out.unsupported(od.at('consecutiveLocalOriginFailures'))
  }
  od.done()
  return result
}

/** A count within meshlet's range: a larger one is as good as unlimited there. */
function atMostMesh(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.min(n, MESH_COUNT_MAX)
}
