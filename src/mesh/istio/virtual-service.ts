/**
 * VirtualService `http` rules as meshlet routes: matches, weighted destinations, rewrites,
 * header changes, timeout, retries, fault and mirror, with Istio's meanings (a retry count is
 * retries, a fault without a percentage injects nothing) and Istio's validation
 * (pkg/config/validation: `validateHTTPRoute`, `ValidateHTTPRetry`, `validateHTTPFaultInjection`).
 */

import { GRPC_FAILURE_STATUSES } from '../../adapters/grpc/status.js'
import type { RetryOn } from '../config/config.js'
import { DNS1123_LABEL, duration, Fields, isObject, percentOf } from './fields.js'
import { resolveHost } from './hosts.js'
import { matchClause } from './match.js'
import type { MeshRoute, RouteMatch, State } from './state.js'

type RouteRetry = NonNullable<MeshRoute['retry']>
type Fault = NonNullable<MeshRoute['fault']>
type HeaderOps = NonNullable<MeshRoute['requestHeaders']>
type Destination = MeshRoute['route'][number]
type GrpcCode = NonNullable<RouteRetry['retryableStatusCodes']>[number]

/** What a rule is read with: the import's state and the resource's namespace (for short hosts). */
interface Scope {
  readonly state: State
  readonly namespace: string
}

/** Translates one VirtualService's spec into pending routes on `state`. */
export function virtualService(spec: Fields, name: string, scope: Scope): void {
  const { state, namespace } = scope
  const out = spec.out
  const gateways = spec.array('gateways')
  if (gateways !== undefined && gateways.length > 0 && !gateways.includes('mesh')) {
    out.unsupported('gateways', 'bound to gateways, not to the mesh: resource left out')
    return
  }
  let anyHost = false
  const hosts: string[] = []
  ;(spec.array('hosts') ?? []).forEach((h, i) => {
    if (typeof h !== 'string') out.unsupported(`hosts[${i}]`, 'expected a string')
    else if (h === '*') anyHost = true
    else if (h.includes('*')) out.unsupported(`hosts[${i}]`, `wildcard host ${JSON.stringify(h)}`)
    else {
      const fqdn = resolveHost(h, namespace, state.naming.clusterDomain)
      if (!hosts.includes(fqdn)) hosts.push(fqdn)
    }
  })
  spec.unsupported('exportTo', 'visibility across namespaces')
  const rules = spec.array('http')
  if (!anyHost && hosts.length === 0) {
    if (rules !== undefined)
      out.unsupported('http', 'no host of the resource could be translated: rules left out')
  } else {
    rules?.forEach((rule, i) => {
      const path = `http[${i}]`
      if (!isObject(rule)) {
        out.unsupported(path, 'expected an object')
        return
      }
      const route = httpRoute(new Fields(rule, path, out), `${name}.${path}`, scope)
      if (route) state.routes.push({ ...route, hosts: anyHost ? undefined : hosts })
    })
  }
  spec.done()
}

/** One `http` rule as a meshlet route, or `undefined` when it cannot be one (reported). */
function httpRoute(
  r: Fields,
  defaultName: string,
  scope: Scope,
): { route: MeshRoute; clauses: RouteMatch[] | undefined } | undefined {
  const out = r.out
  if (r.has('mirror') && r.has('mirrors'))
    out.invalid(r.path, 'HTTP route cannot contain both mirror and mirrors')
  if (!r.has('route') && !r.has('redirect') && !r.has('directResponse') && !r.has('delegate')) {
    out.invalid(r.path, 'HTTP route, redirect or direct_response is required')
    return undefined
  }
  for (const action of ['redirect', 'directResponse', 'delegate']) {
    if (r.has(action)) {
      out.unsupported(r.at(action), 'rule left out')
      return undefined
    }
  }

  // Match: a clause that would not match exactly as in Istio is left out, never loosened.
  let clauses: RouteMatch[] | undefined
  const matches = r.array('match')
  if (matches !== undefined && matches.length > 0) {
    clauses = []
    matches.forEach((m, j) => {
      const clause = matchClause(m, `${r.at('match')}[${j}]`, out)
      if (clause) clauses!.push(clause)
    })
    if (clauses.length === 0) {
      out.unsupported(r.at('match'), 'no clause could be translated: rule left out')
      return undefined
    }
  }

  const route = destinations(r, scope)
  if (route === undefined) return undefined
  const result: MeshRoute = { name: r.string('name') ?? defaultName, route: route.destinations }

  const rewrite = r.object('rewrite')
  if (rewrite) {
    const rw: { prefix?: string; host?: string } = {}
    if (!rewrite.has('uri') && !rewrite.has('uriRegexRewrite') && !rewrite.has('authority')) {
      out.invalid(rewrite.path, 'rewrite must specify at least one of URI, UriRegexRewrite, or authority')
    }
    if (rewrite.has('uri') && rewrite.has('uriRegexRewrite')) {
      out.invalid(rewrite.path, 'rewrite may only contain one of URI or UriRegexRewrite')
    }
    const uri = rewrite.string('uri')
    if (uri !== undefined) {
      // Istio replaces the matched prefix; a rule with no uri match matches the prefix "/".
      const base = clauses ?? [{}]
      if (base.every((c) => c.path === undefined || c.path.prefix !== undefined)) {
        rw.prefix = uri
        clauses = base.map((c) => (c.path === undefined ? { ...c, path: { prefix: '/' } } : c))
      } else {
        out.unsupported(rewrite.at('uri'), 'meshlet rewrites a matched prefix only')
      }
    }
    // Istio's authority rewrite is the Host the upstream sees: meshlet's `rewrite.host`.
    const authority = rewrite.string('authority')
    if (authority !== undefined) rw.host = authority
    rewrite.done()
    if (rw.prefix !== undefined || rw.host !== undefined) result.rewrite = rw
  }

  const headers = r.object('headers')
  const ops = headers ? headerOps(headers) : route.headers
  if (headers && route.headers) out.unsupported(`${r.at('route')}[0].headers`, 'with rule-level headers too')
  if (ops?.request) result.requestHeaders = ops.request
  if (ops?.response) result.responseHeaders = ops.response
  const authoritySet = Object.keys({ ...ops?.request?.set, ...ops?.request?.add }).filter((h) =>
    /^(:authority|host)$/i.test(h),
  )
  if (authoritySet.length + (result.rewrite?.host === undefined ? 0 : 1) > 1) {
    out.invalid(r.at('headers'), 'authority header cannot be set multiple times')
  }

  const timeout = duration(r, 'timeout')
  if (timeout !== undefined) result.timeout = timeout
  const retries = r.object('retries')
  if (retries) result.retry = retry(retries)
  const fault = r.object('fault')
  if (fault) {
    const f = faultOf(fault)
    if (f) result.fault = f
  }
  const mirror = mirrorOf(r, scope)
  if (mirror) result.mirror = mirror
  r.unsupported('corsPolicy', 'a browser policy, not a client one')
  r.done()
  return { route: result, clauses }
}

/** The weighted destinations of a rule (and, for a lone destination, its header changes). */
function destinations(
  r: Fields,
  scope: Scope,
): { destinations: Destination[]; headers: ReturnType<typeof headerOps> | undefined } | undefined {
  const out = r.out
  const list = r.array('route')
  if (list === undefined || list.length === 0) {
    out.unsupported(r.path, 'no route: rule left out')
    return undefined
  }
  const result: Destination[] = []
  let headers: ReturnType<typeof headerOps> | undefined
  for (const [k, raw] of list.entries()) {
    const path = `${r.at('route')}[${k}]`
    if (!isObject(raw)) {
      out.unsupported(path, 'expected an object: rule left out')
      return undefined
    }
    const d = new Fields(raw, path, out)
    const dest = destinationOf(d.object('destination'), scope)
    if (dest === undefined) {
      out.unsupported(d.at('destination'), 'no host: rule left out')
      return undefined
    }
    const weight = d.number('weight')
    if (weight !== undefined && weight < 0) out.invalid(d.at('weight'), `weight ${weight} < 0`)
    // Istio: a lone destination takes every call whatever its weight; among several, no weight is 0.
    if (list.length > 1) {
      const w = weight ?? 0
      if (Number.isInteger(w) && w >= 0 && w <= 1000) dest.weight = w
      else {
        out.unsupported(d.at('weight'), 'expected an integer from 0 to 1000: rule left out')
        return undefined
      }
    }
    const h = d.object('headers')
    if (h && list.length === 1) headers = headerOps(h)
    else if (h) out.unsupported(h.path, 'per-destination header changes of a split')
    d.done()
    result.push(dest)
  }
  if (result.every((d) => d.weight === 0)) {
    out.unsupported(r.at('route'), 'every weight is 0: rule left out')
    return undefined
  }
  return { destinations: result, headers }
}

/**
 * `{ host, subset, port }` as a meshlet destination: the service of the host as Istio resolves
 * it (a short name in the resource's namespace). A subset no rule defines fails `createMesh`.
 * The port is the service's, which an endpoint URL replaces; it is kept for the authority.
 */
function destinationOf(d: Fields | undefined, scope: Scope): Destination | undefined {
  if (d === undefined) return undefined
  const { state, namespace } = scope
  const host = d.string('host')
  if (host === undefined) return undefined
  if (host === '*') {
    d.out.invalid(d.at('host'), `invalid destination host ${host}`)
    return undefined
  }
  const service = state.service(resolveHost(host, namespace, state.naming.clusterDomain), d.out, d.at('host'))
  if (service === undefined) return undefined
  const dest: Destination = { service }
  const subset = d.string('subset')
  if (subset !== undefined) {
    if (DNS1123_LABEL.test(subset)) dest.subset = subset
    else d.out.invalid(d.at('subset'), `subset name is invalid: ${subset}`)
  }
  const port = d.object('port')
  if (port) {
    const number = port.number('number')
    if (number === undefined || !Number.isInteger(number) || number < 1 || number > 65535) {
      d.out.invalid(port.path, `port number ${number ?? 'missing'} must be in the range 1..65535`)
    } else {
      const ports = state.ports.get(service) ?? new Set<number>()
      state.ports.set(service, ports)
      ports.add(number)
    }
    port.done()
  }
  d.done()
  return dest
}

function headerOps(h: Fields): { request?: HeaderOps; response?: HeaderOps } {
  const result: { request?: HeaderOps; response?: HeaderOps } = {}
  for (const side of ['request', 'response'] as const) {
    const f = h.object(side)
    if (!f) continue
    const strings = (key: string): Record<string, string> => {
      const m = f.object(key)
      if (!m) return {}
      const r: Record<string, string> = {}
      for (const [name, value] of Object.entries(m.value)) {
        m.raw(name)
        r[name] = String(value)
      }
      return r
    }
    const remove = (f.array('remove') ?? []).map(String)
    const ops: HeaderOps = {}
    const set = strings('set')
    const add = strings('add')
    if (Object.keys(set).length > 0) ops.set = set
    if (Object.keys(add).length > 0) ops.add = add
    if (remove.length > 0) ops.remove = remove
    f.done()
    result[side] = ops
  }
  h.done()
  return result
}

/** The statuses Go's `http.StatusText` knows, which Istio's validation takes as retryOn codes. */
const HTTP_STATUSES: ReadonlySet<number> = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307,
  308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421,
  422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
])

/** Envoy's HTTP `retry_on` words meshlet's classifier speaks as they are. */
const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
])
/** Envoy's gRPC `retry_on` words: the statuses of a gRPC service's `retryableStatusCodes`. */
const GRPC_RETRY_ON: Readonly<Record<string, GrpcCode>> = {
  cancelled: 'CANCELLED',
  'deadline-exceeded': 'DEADLINE_EXCEEDED',
  internal: 'INTERNAL',
  'resource-exhausted': 'RESOURCE_EXHAUSTED',
  unavailable: 'UNAVAILABLE',
}
/** Words Istio accepts that meshlet cannot honour: listed. */
const RETRY_ON_UNSUPPORTED: Readonly<Record<string, string>> = {
  'retriable-headers': 'no header-triggered retry',
  'envoy-ratelimited': 'meshlet has no x-envoy-ratelimited answer',
  'http3-post-connect-failure': 'no HTTP/3',
}

/**
 * Istio's retry conditions when `retryOn` is not given (pilot `route/retry`): connect-failure,
 * refused-stream, unavailable, cancelled, retriable-status-codes. The status list is empty since
 * 503 left it (istio/istio#52111, `EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY` on by default).
 */
export const ISTIO_RETRY_ON: readonly RetryOn[] = ['connect-failure', 'refused-stream']
/** The gRPC side of Istio's default conditions: `unavailable` and `cancelled`. */
export const ISTIO_RETRYABLE_STATUS_CODES: readonly GrpcCode[] = ['UNAVAILABLE', 'CANCELLED']

/** Istio's `retries` (validated as `ValidateHTTPRetry`) as a route's retry override. */
function retry(f: Fields): RouteRetry {
  const result: RouteRetry = {}
  // The field is an int32 with 0 for unset: no attempts means retries are off.
  const attempts = f.number('attempts') ?? 0
  if (!Number.isInteger(attempts)) {
    f.out.unsupported(f.at('attempts'), `expected a whole number of retries, got ${attempts}`)
  } else if (attempts < 0) {
    f.out.invalid(f.at('attempts'), 'attempts cannot be negative')
  } else if (attempts === 0) {
    if (f.has('perTryTimeout') || f.has('retryOn') || f.has('retryRemoteLocalities')) {
      f.out.invalid(f.path, 'http retry policy configured when attempts are set to 0 (disabled)')
    }
    result.attempts = 1
  } else if (attempts > 9) {
    f.out.unsupported(f.at('attempts'), `${attempts} retries: meshlet allows 10 tries, so 9 retries`)
    result.attempts = 10
  } else {
    // Istio counts retries; meshlet counts tries, the first one included.
    result.attempts = attempts + 1
  }
  const perTry = duration(f, 'perTryTimeout')
  if (perTry !== undefined) result.perTryTimeout = perTry
  const retryOn = f.string('retryOn')
  if (retryOn === undefined) {
    result.retryOn = [...ISTIO_RETRY_ON]
    result.retryableStatusCodes = [...ISTIO_RETRYABLE_STATUS_CODES]
  } else {
    const on: RetryOn[] = []
    const grpc: GrpcCode[] = []
    // Istio's validation splits on "," and trims nothing: " 503" or an empty word is refused.
    for (const token of retryOn.split(',')) {
      const code = GRPC_RETRY_ON[token]
      if (RETRY_ON.has(token)) on.push(token as RetryOn)
      else if (code !== undefined) grpc.push(code)
      else if (/^\d{3}$/.test(token) && HTTP_STATUSES.has(Number(token))) on.push(Number(token))
      // It switches on the statuses listed beside it, which are translated one by one.
      else if (token === 'retriable-status-codes') continue
      // Envoy: a reset before the request was sent, so safe for any method. meshlet cannot tell
      // when a reset came, but a refused stream never carried the request.
      else if (token === 'reset-before-request') {
        on.push('refused-stream')
        f.out.unsupported(f.at('retryOn'), '"reset-before-request" retried as refused-stream only')
      } else if (RETRY_ON_UNSUPPORTED[token] !== undefined) {
        f.out.unsupported(f.at('retryOn'), `${JSON.stringify(token)}: ${RETRY_ON_UNSUPPORTED[token]}`)
      } else f.out.invalid(f.at('retryOn'), `${JSON.stringify(token)} is not a valid retryOn policy`)
    }
    result.retryOn = [...new Set(on)]
    if (grpc.length > 0) result.retryableStatusCodes = [...new Set(grpc)]
  }
  f.unsupported('retryRemoteLocalities')
  f.unsupported('retryIgnorePreviousHosts')
  if (f.has('backoff')) duration(f, 'backoff')
  f.unsupported('backoff', 'a route cannot override the backoff; set the service retry.backoff')
  f.done()
  // No attempts: no retry, whatever the conditions.
  return result.attempts === 1 ? { attempts: 1 } : result
}

// Istio's grpcStatus names (its SupportedGRPCStatus), OK included.
const GRPC_CODES: readonly string[] = ['OK', ...GRPC_FAILURE_STATUSES]

/**
 * Istio's `fault`. A fault without `percentage` injects nothing (Envoy reads an unset
 * percentage as 0: istio/istio#36303), so it is left out and listed.
 */
function faultOf(f: Fields): Fault | undefined {
  const fault: Fault = {}
  if (!f.has('abort') && !f.has('delay'))
    f.out.invalid(f.path, 'HTTP fault injection must have an abort and/or a delay')
  const abort = f.object('abort')
  if (abort) {
    // pilot reads the deprecated integer `percent` for delays only (route.go TranslateFault).
    const percent = percentOf(abort, 'percentage', null)
    if (abort.has('percent')) {
      abort.unsupported('percent', 'deprecated: Istio reads it for delays only, use percentage')
    }
    const status = abort.number('httpStatus')
    const grpc = abort.raw('grpcStatus')
    let grpcStatus: number | undefined
    if (grpc !== undefined) {
      const code = typeof grpc === 'number' ? grpc : GRPC_CODES.indexOf(String(grpc))
      if (Number.isInteger(code) && code >= 1 && code <= 16) grpcStatus = code
      else if (code === 0) abort.out.unsupported(abort.at('grpcStatus'), 'meshlet aborts with an error code')
      else abort.out.invalid(abort.at('grpcStatus'), `gRPC status ${JSON.stringify(grpc)} is not supported`)
    }
    if (abort.has('http2Error'))
      abort.out.invalid(abort.at('http2Error'), 'HTTP/2 abort fault injection not supported yet')
    abort.raw('http2Error')
    const a: NonNullable<Fault['abort']> = { percent: percent ?? 0 }
    if (status !== undefined) {
      if (!Number.isInteger(status) || status < 200 || status > 600) {
        abort.out.invalid(abort.at('httpStatus'), `HTTP status ${status} is not in range 200-599`)
      } else if (status === 600) abort.out.unsupported(abort.at('httpStatus'), 'meshlet aborts with 200..599')
      else a.status = status
    }
    if (grpcStatus !== undefined) a.grpcStatus = grpcStatus
    if (status === undefined && grpc === undefined && !abort.has('http2Error')) {
      abort.out.unsupported(abort.path, 'abort configured, but error type not set')
    } else if (percent === undefined) {
      abort.out.unsupported(abort.path, 'no percentage: Istio aborts no call, nor does meshlet')
    } else if (a.status !== undefined || a.grpcStatus !== undefined) fault.abort = a
    abort.done()
  }
  const delay = f.object('delay')
  if (delay) {
    const percent = percentOf(delay)
    const fixed = duration(delay, 'fixedDelay')
    if (delay.has('exponentialDelay')) {
      duration(delay, 'exponentialDelay')
      delay.out.invalid(delay.at('exponentialDelay'), 'exponentialDelay not supported yet')
    }
    if (fixed !== undefined && percent === undefined) {
      delay.out.unsupported(delay.path, 'no percentage: Istio delays no call, nor does meshlet')
    } else if (fixed !== undefined && percent !== undefined) fault.delay = { percent, duration: fixed }
    delay.done()
  }
  f.done()
  return fault.abort || fault.delay ? fault : undefined
}

function mirrorOf(r: Fields, scope: Scope): MeshRoute['mirror'] {
  const percent = percentOf(r, 'mirrorPercentage', 'mirrorPercent')
  const single = r.object('mirror')
  let mirror: MeshRoute['mirror']
  if (single) {
    const d = destinationOf(single, scope)
    if (d) mirror = { service: d.service, ...(d.subset === undefined ? {} : { subset: d.subset }) }
    else r.out.unsupported(single.path, 'no host')
  }
  if (mirror && percent !== undefined) mirror.percent = percent
  const list = r.array('mirrors') ?? []
  list.forEach((raw, k) => {
    const path = `${r.at('mirrors')}[${k}]`
    if (mirror !== undefined || !isObject(raw)) {
      r.out.unsupported(path, 'meshlet mirrors to one destination')
      return
    }
    const m = new Fields(raw, path, r.out)
    if (!m.has('destination')) m.out.invalid(path, 'destination is required for mirrors')
    const d = destinationOf(m.object('destination'), scope)
    const p = percentOf(m)
    m.done()
    if (d === undefined) {
      r.out.unsupported(path, 'no host')
      return
    }
    mirror = { service: d.service, ...(d.subset === undefined ? {} : { subset: d.subset }) }
    if (p !== undefined) mirror.percent = p
  })
  return mirror
}
