/**
 * Istio's traffic resources as meshlet config: {@link fromIstio} translates VirtualService and
 * DestinationRule resources (networking.istio.io v1, v1beta1, v1alpha3) into routes and services,
 * and lists every field it could not translate.
 *
 * Why: teams that run Istio already describe their canaries, header routes, faults and retries
 * in these resources; reading them lets the same intent drive an in-process mesh (a job outside
 * the cluster, a test, a service that has no sidecar) without writing it twice. The translation
 * is honest rather than complete: a field meshlet cannot honour is never dropped quietly, it is
 * listed in `unsupported` with its path in the resource (`VirtualService reviews:
 * http[0].corsPolicy`), and a match clause that would match differently is left out (so a rule
 * catches fewer calls, never more) and listed. Semantics follow Istio, not the names: Istio's
 * `retries.attempts` counts retries, meshlet's `attempts` counts tries; Istio's header match `{}`
 * tests presence; Istio turns success-rate ejection and the panic threshold off, so the import
 * does too. See docs/istio.md for the whole mapping.
 *
 * Istio resources carry no endpoints (Kubernetes finds the pods); give them in the second
 * argument, or add them to the returned {@link IstioImport} before `createMesh`.
 */

import { parseAllDocuments } from 'yaml'
import { GRPC_FAILURE_STATUSES } from '../../adapters/grpc/status.js'
import type { MeshConfig, RetryOn, ServiceConfig } from '../config/config.js'
import { DURATION_PATTERN } from '../config/duration.js'
import { MAX_ALIASES, MAX_DEPTH, tooDeepAt } from '../config/yaml-bounds.js'

type MeshRoute = NonNullable<MeshConfig['routes']>[number]
type RouteMatch = NonNullable<MeshRoute['match']>[number]
type StringMatch = NonNullable<RouteMatch['headers']>[string]
type PathMatch = NonNullable<RouteMatch['path']>
type RouteRetry = NonNullable<MeshRoute['retry']>
type Fault = NonNullable<MeshRoute['fault']>
type HeaderOps = NonNullable<MeshRoute['requestHeaders']>
type Destination = MeshRoute['route'][number]

/** A service as {@link fromIstio} produces it: everything but where it runs. */
export type IstioServiceConfig = Omit<ServiceConfig, 'endpoints' | 'discovery'>

/**
 * A config fragment translated from Istio resources: services (subsets and traffic policy) and
 * routes, but no endpoints, which Istio resources do not carry. Before `createMesh`, give each
 * service `endpoints` (or `discovery`); `fromIstio(yaml, endpoints)` does it for you.
 */
export interface IstioImport {
  /** The services the resources name, by short name (`reviews.prod.svc.cluster.local` is `reviews`). */
  services: Record<string, IstioServiceConfig>
  /** The VirtualServices' http rules, in document order. */
  routes: MeshRoute[]
}

/**
 * Endpoints by service name (short or fully qualified), each a URL or an object with its
 * `labels`, which the DestinationRule subsets select on (`{ url, labels: { version: 'v2' } }`).
 */
export type IstioEndpoints = Readonly<Record<string, NonNullable<ServiceConfig['endpoints']>>>

/** What {@link fromIstio} returns. */
export interface IstioTranslation<C> {
  /** The meshlet config (or, without endpoints, the fragment that still needs them). */
  config: C
  /**
   * Every field not translated, with its resource and path and, where useful, why:
   * `VirtualService reviews: http[0].corsPolicy`,
   * `DestinationRule reviews: trafficPolicy.loadBalancer.simple ("PASSTHROUGH")`. Empty when the
   * translation is exact.
   */
  unsupported: string[]
}

/**
 * Translates Istio VirtualService and DestinationRule resources (one YAML or JSON text with any
 * number of `---`-separated documents, a Kubernetes `List`, or several texts) into meshlet config:
 * VirtualService `http` rules become `routes` (matches, weighted destinations, fault, retries,
 * timeout, mirror, header changes, rewrites), DestinationRules become `services` (subsets, load
 * balancer, outlier detection, connection-pool limits). Host names become service names by their
 * first label. Other kinds, and every field that is not translated, are listed in `unsupported`.
 * Throws a `SyntaxError` when the text is not YAML.
 *
 * Without `endpoints` the result is an {@link IstioImport}, which needs endpoints before
 * `createMesh`; with them (merged by service name; a name the resources do not mention adds a
 * service) it is a full {@link MeshConfig}.
 *
 * @example
 * ```ts
 * const { config, unsupported } = fromIstio(yamlText, {
 *   reviews: [
 *     { url: 'http://10.0.0.1:9080', labels: { version: 'v1' } },
 *     { url: 'http://10.0.0.2:9080', labels: { version: 'v2' } },
 *   ],
 * })
 * if (unsupported.length > 0) console.warn('not imported:', unsupported)
 * const mesh = createMesh(config)
 * ```
 */
export function fromIstio(yaml: string | readonly string[]): IstioTranslation<IstioImport>
export function fromIstio(
  yaml: string | readonly string[],
  endpoints: IstioEndpoints,
): IstioTranslation<MeshConfig>
export function fromIstio(
  yaml: string | readonly string[],
  endpoints?: IstioEndpoints,
): IstioTranslation<IstioImport | MeshConfig> {
  const state = new State()
  const texts = typeof yaml === 'string' ? [yaml] : yaml
  let n = 0
  for (const text of texts) {
    // Control-plane input is untrusted: depth and alias expansion are bounded before the YAML
    // composer and toJS, which recurse, see the text (D48).
    const deepAt = tooDeepAt(text)
    if (deepAt !== undefined) {
      throw new SyntaxError(`fromIstio: nested deeper than ${MAX_DEPTH} levels at line ${deepAt}`)
    }
    for (const doc of parseAllDocuments(text)) {
      n++
      const error = doc.errors[0]
      if (error) throw new SyntaxError(`fromIstio: document ${n} is not valid YAML: ${error.message}`)
      let value: unknown
      try {
        value = doc.toJS({ maxAliasCount: MAX_ALIASES })
      } catch (cause) {
        const reason = cause instanceof Error ? cause.message : String(cause)
        throw new SyntaxError(`fromIstio: document ${n} is not valid YAML: ${reason}`)
      }
      resource(value, `document ${n}`, state)
    }
  }
  const services: Record<string, ServiceConfig> = Object.fromEntries(state.services)
  if (endpoints) {
    for (const [host, list] of Object.entries(endpoints)) {
      const name = serviceNameOf(host)
      services[name] = { ...services[name], endpoints: list }
    }
  }
  return { config: { services, routes: state.routes }, unsupported: state.unsupported }
}

// ---------------------------------------------------------------------------------------------
// Reading: every object goes through `Fields`, which remembers what was read, so whatever is
// left at the end is reported. That is what makes "never silently ignored" hold for fields
// added to Istio after this file was written.

type Json = Record<string, unknown>

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `a.b`, `a[0]`, or `a["x.y"]` when the key is not a plain name. */
function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return `${path}[${JSON.stringify(key)}]`
  return path === '' ? key : `${path}.${key}`
}

/** Reports against one resource: `VirtualService reviews: <path> (<detail>)`. */
class Out {
  constructor(
    readonly label: string,
    readonly state: State,
  ) {}

  unsupported(path: string, detail?: string): void {
    const where = path === '' ? this.label : `${this.label}: ${path}`
    this.state.unsupported.push(detail === undefined ? where : `${where} (${detail})`)
  }
}

/** An object being read; see the section comment. */
class Fields {
  readonly #read = new Set<string>()

  constructor(
    readonly value: Json,
    readonly path: string,
    readonly out: Out,
  ) {}

  at(key: string | number): string {
    return join(this.path, key)
  }

  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null
  }

  /** The raw value, marked read; `null` reads as absent, as Kubernetes treats it. */
  raw(key: string): unknown {
    this.#read.add(key)
    const v = this.value[key]
    return v === null ? undefined : v
  }

  string(key: string): string | undefined {
    const v = this.raw(key)
    if (v === undefined || typeof v === 'string') return v
    this.out.unsupported(this.at(key), `expected a string, got ${JSON.stringify(v)}`)
    return undefined
  }

  number(key: string): number | undefined {
    const v = this.raw(key)
    if (v === undefined || (typeof v === 'number' && Number.isFinite(v))) return v
    this.out.unsupported(this.at(key), `expected a number, got ${JSON.stringify(v)}`)
    return undefined
  }

  boolean(key: string): boolean | undefined {
    const v = this.raw(key)
    if (v === undefined || typeof v === 'boolean') return v
    this.out.unsupported(this.at(key), `expected true or false, got ${JSON.stringify(v)}`)
    return undefined
  }

  object(key: string): Fields | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (isObject(v)) return new Fields(v, this.at(key), this.out)
    this.out.unsupported(this.at(key), 'expected an object')
    return undefined
  }

  array(key: string): unknown[] | undefined {
    const v = this.raw(key)
    if (v === undefined || Array.isArray(v)) return v
    this.out.unsupported(this.at(key), 'expected a list')
    return undefined
  }

  /** Reports `key` as not translated when it is present, with an optional reason. */
  unsupported(key: string, detail?: string): boolean {
    const present = this.has(key)
    this.#read.add(key)
    if (present) this.out.unsupported(this.at(key), detail)
    return present
  }

  /** Reports every key not read; returns how many there were. */
  done(detail?: string): number {
    let left = 0
    for (const key of Object.keys(this.value)) {
      if (this.#read.has(key) || this.value[key] === null) continue
      left++
      this.out.unsupported(this.at(key), detail)
    }
    return left
  }
}

/** Everything gathered across resources. */
class State {
  readonly services = new Map<string, IstioServiceConfig>()
  readonly routes: MeshRoute[] = []
  readonly unsupported: string[] = []
  readonly ruled = new Set<string>()

  service(name: string): IstioServiceConfig {
    let svc = this.services.get(name)
    if (svc === undefined) {
      svc = {}
      this.services.set(name, svc)
    }
    return svc
  }
}

const API_VERSION = /^networking\.istio\.io\/(v1|v1beta1|v1alpha3)$/

function resource(doc: unknown, where: string, state: State): void {
  if (doc === null || doc === undefined) return
  if (!isObject(doc)) {
    state.unsupported.push(`${where} (not a Kubernetes resource)`)
    return
  }
  const kind = typeof doc['kind'] === 'string' ? doc['kind'] : undefined
  if (kind !== undefined && /List$/.test(kind) && Array.isArray(doc['items'])) {
    for (const [i, item] of doc['items'].entries()) resource(item, `${where} items[${i}]`, state)
    return
  }
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : {}
  const name = typeof metadata['name'] === 'string' ? metadata['name'] : where
  const out = new Out(`${kind ?? 'resource'} ${name}`, state)
  const apiVersion = doc['apiVersion']
  if (typeof apiVersion !== 'string' || !API_VERSION.test(apiVersion)) {
    out.unsupported(
      '',
      `apiVersion ${JSON.stringify(apiVersion ?? null)} is not networking.istio.io v1, v1beta1 or v1alpha3`,
    )
    return
  }
  const spec = isObject(doc['spec']) ? new Fields(doc['spec'], '', out) : undefined
  if (kind === 'VirtualService' && spec) virtualService(spec, name, state)
  else if (kind === 'DestinationRule' && spec) destinationRule(spec, state)
  else out.unsupported('', spec ? 'only VirtualService and DestinationRule are translated' : 'no spec')
}

// ---------------------------------------------------------------------------------------------
// Names and values

const SERVICE_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/
const IPV4 = /^\d+\.\d+\.\d+\.\d+$/

/** `reviews.prod.svc.cluster.local` -> `reviews`: the first DNS label, lower case. */
function serviceNameOf(host: string): string {
  const lower = host.toLowerCase()
  return IPV4.test(lower) ? lower : (lower.split('.')[0] ?? lower)
}

/** A host a rule applies to, as calls may name it: the short name, and the full one as written. */
function hostNamesOf(host: string): string[] {
  const short = serviceNameOf(host)
  const full = host.toLowerCase()
  return short === full ? [short] : [short, full]
}

const GO_DURATION = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/
const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/**
 * An Istio duration (`'10s'`, `'0.5s'`, `'100ms'`, or Go's `'1m30s'`) as a meshlet duration: the
 * same string when meshlet reads it alike, otherwise milliseconds. `undefined` when malformed.
 */
export function istioDuration(value: string): string | number | undefined {
  if (DURATION_PATTERN.test(value)) return value
  let rest = value
  let ms = 0
  if (rest === '') return undefined
  while (rest !== '') {
    const m = GO_DURATION.exec(rest)
    if (m === null) return undefined
    ms += Number(m[1]) * (MS_PER_UNIT[m[2]!] ?? Number.NaN)
    rest = rest.slice(m[0].length)
  }
  return Number.isFinite(ms) ? Math.round(ms * 1000) / 1000 : undefined
}

function duration(f: Fields, key: string): string | number | undefined {
  const v = f.raw(key)
  if (v === undefined) return undefined
  const d = typeof v === 'string' ? istioDuration(v) : undefined
  if (d === undefined) f.out.unsupported(f.at(key), `not a duration: ${JSON.stringify(v)}`)
  return d
}

/** `percentage: { value }` (a double) or the deprecated integer `percent`; `undefined` when neither. */
function percentOf(f: Fields, key = 'percentage', legacy = 'percent'): number | undefined {
  let percent: number | undefined
  const p = f.raw(key)
  if (isObject(p)) {
    const pf = new Fields(p, f.at(key), f.out)
    percent = pf.number('value') ?? 0
    pf.done()
  } else if (typeof p === 'number') {
    percent = p
  } else if (p !== undefined) {
    f.out.unsupported(f.at(key), 'expected { value: <percent> }')
  }
  const old = f.raw(legacy)
  if (percent === undefined && old !== undefined) {
    const value = isObject(old) ? old['value'] : old
    if (typeof value === 'number') percent = value
    else f.out.unsupported(f.at(legacy), 'expected a number')
  }
  if (percent !== undefined && !(percent >= 0 && percent <= 100)) {
    f.out.unsupported(f.at(key), `${percent} is not a percentage from 0 to 100`)
    return undefined
  }
  return percent
}

/** One of Istio's StringMatch forms; `'any'` for `{}` (Istio: presence); `undefined` if malformed. */
type IstioString = { kind: 'exact' | 'prefix' | 'regex'; value: string } | 'any' | undefined

function stringMatch(raw: unknown, path: string, out: Out): IstioString {
  if (raw === null || raw === undefined) return 'any'
  if (!isObject(raw)) {
    out.unsupported(path, 'expected exact, prefix or regex')
    return undefined
  }
  const f = new Fields(raw, path, out)
  const given: Array<{ kind: 'exact' | 'prefix' | 'regex'; value: string }> = []
  for (const kind of ['exact', 'prefix', 'regex'] as const) {
    const value = f.raw(kind)
    if (value === undefined) continue
    if (typeof value !== 'string') {
      out.unsupported(f.at(kind), 'expected a string')
      return undefined
    }
    given.push({ kind, value })
  }
  if (f.done() > 0 || given.length > 1) return undefined
  return given[0] ?? 'any'
}

/**
 * An RE2 pattern (Istio's dialect) as a JavaScript one, or `undefined` when JavaScript would not
 * read it alike. RE2's `(?P<name>` is JavaScript's `(?<name>`. Refused: what JavaScript compiles
 * to something else without a word (`\pL`, `\Q..\E`, `\A`, `\z`, `\x{41}`, `[[:alpha:]]`) and
 * what it does not compile (inline flags such as `(?i)` before ES2025).
 */
function jsRegex(re2: string): string | undefined {
  if (/\[:[a-z]+:\]/.test(re2)) return undefined
  for (const m of re2.matchAll(/\\(.)/g)) {
    const c = m[1]!
    if (
      c === 'x'
        ? !/^[0-9a-fA-F]{2}/.test(re2.slice(m.index + 2))
        : /[A-Za-z0-9]/.test(c) && !/[dDwWsSbBnrtfv]/.test(c)
    ) {
      return undefined
    }
  }
  const js = re2.replaceAll('(?P<', '(?<')
  try {
    new RegExp(`^(?:${js})$`)
    return js
  } catch {
    return undefined
  }
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** A pattern matching `text` in any letter case: `/Api` -> `/[aA][pP][iI]`. */
function caseless(text: string): string {
  return [...text]
    .map((c) =>
      c.toLowerCase() !== c.toUpperCase() ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRegex(c),
    )
    .join('')
}

// ---------------------------------------------------------------------------------------------
// VirtualService

function virtualService(spec: Fields, name: string, state: State): void {
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
    else for (const n of hostNamesOf(h)) if (!hosts.includes(n)) hosts.push(n)
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
      const route = httpRoute(
        new Fields(rule, path, out),
        `${name}.${path}`,
        anyHost ? [undefined] : hosts,
        state,
      )
      if (route) state.routes.push(route)
    })
  }
  spec.done()
}

/** One `http` rule as a meshlet route, or `undefined` when it cannot be one (reported). */
function httpRoute(
  r: Fields,
  defaultName: string,
  hosts: readonly (string | undefined)[],
  state: State,
): MeshRoute | undefined {
  const out = r.out
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
      const clause = matchClause(m, r.at('match') + `[${j}]`, out)
      if (clause) clauses!.push(clause)
    })
    if (clauses.length === 0) {
      out.unsupported(r.at('match'), 'no clause could be translated: rule left out')
      return undefined
    }
  }

  const route = destinations(r, state)
  if (route === undefined) return undefined
  const result: MeshRoute = { name: r.string('name') ?? defaultName, route: route.destinations }

  const rewrite = r.object('rewrite')
  if (rewrite) {
    const rw: { prefix?: string; host?: string } = {}
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
    const authority = rewrite.string('authority')
    if (authority !== undefined) rw.host = authority
    rewrite.done()
    if (rw.prefix !== undefined || rw.host !== undefined) result.rewrite = rw
  }

  const match = hosts.flatMap((host) =>
    (clauses ?? [{}]).map((c): RouteMatch => (host === undefined ? c : { host, ...c })),
  )
  if (match.some((c) => Object.keys(c).length > 0)) result.match = match

  const headers = r.object('headers')
  const ops = headers ? headerOps(headers) : route.headers
  if (headers && route.headers) out.unsupported(`${r.at('route')}[0].headers`, 'with rule-level headers too')
  if (ops?.request) result.requestHeaders = ops.request
  if (ops?.response) result.responseHeaders = ops.response

  const timeout = duration(r, 'timeout')
  if (timeout !== undefined) result.timeout = timeout
  const retries = r.object('retries')
  if (retries) result.retry = retry(retries)
  const fault = r.object('fault')
  if (fault) {
    const f = faultOf(fault)
    if (f) result.fault = f
  }
  const mirror = mirrorOf(r, state)
  if (mirror) result.mirror = mirror
  r.unsupported('corsPolicy', 'a browser policy, not a client one')
  r.done()
  // Key order for people reading the output: name, match, route, then the policies.
  const { name: n, match: m, route: to, ...policies } = result
  return { name: n, ...(m === undefined ? {} : { match: m }), route: to, ...policies }
}

function matchClause(raw: unknown, path: string, out: Out): RouteMatch | undefined {
  if (!isObject(raw)) {
    out.unsupported(path, 'expected an object: clause left out')
    return undefined
  }
  const m = new Fields(raw, path, out)
  const LEFT_OUT = 'clause left out'
  let ok = true
  const refuse = (key: string, why: string): void => {
    if (m.unsupported(key, `${why}: ${LEFT_OUT}`)) ok = false
  }
  const clause: RouteMatch = {}

  const ignoreCase = m.boolean('ignoreUriCase') === true
  if (m.has('uri')) {
    const uri = stringMatch(m.raw('uri'), m.at('uri'), out)
    let p: PathMatch | undefined
    if (uri === undefined || uri === 'any') p = undefined
    else if (uri.kind === 'regex') {
      const re = jsRegex(uri.value)
      p = re === undefined ? undefined : { regex: re }
    } else if (ignoreCase) p = { regex: caseless(uri.value) + (uri.kind === 'prefix' ? '.*' : '') }
    else p = uri.kind === 'exact' ? { exact: uri.value } : { prefix: uri.value }
    if (p) clause.path = p
    else {
      out.unsupported(m.at('uri'), `not translatable: ${LEFT_OUT}`)
      ok = false
    }
  }

  if (m.has('method')) {
    const method = stringMatch(m.raw('method'), m.at('method'), out)
    let methods: string[] | undefined
    if (method !== undefined && method !== 'any') {
      if (method.kind === 'exact') methods = [method.value]
      else if (method.kind === 'regex' && /^[A-Za-z]+(\|[A-Za-z]+)*$/.test(method.value)) {
        methods = method.value.split('|')
      }
    }
    if (methods) clause.methods = methods
    else {
      out.unsupported(m.at('method'), `only exact or a|b methods: ${LEFT_OUT}`)
      ok = false
    }
  }

  const headers: Record<string, StringMatch> = {}
  const headerMap = m.object('headers')
  if (headerMap) {
    for (const [name, sm] of Object.entries(headerMap.value)) {
      headerMap.raw(name)
      const at = headerMap.at(name)
      if (['uri', 'scheme', 'method', 'authority'].includes(name)) {
        out.unsupported(at, 'Istio ignores this header name too')
        continue
      }
      const s = stringValue(stringMatch(sm, at, out), true)
      if (s) headers[name.toLowerCase()] = s
      else {
        out.unsupported(at, `not translatable: ${LEFT_OUT}`)
        ok = false
      }
    }
  }
  const without = m.object('withoutHeaders')
  if (without) {
    for (const [name, sm] of Object.entries(without.value)) {
      without.raw(name)
      const key = name.toLowerCase()
      if (stringMatch(sm, without.at(name), out) === 'any' && headers[key] === undefined) {
        headers[key] = { present: false }
      } else {
        out.unsupported(without.at(name), `meshlet negates presence only: ${LEFT_OUT}`)
        ok = false
      }
    }
  }
  if (Object.keys(headers).length > 0) clause.headers = headers

  const query = m.object('queryParams')
  if (query) {
    const params: Record<string, StringMatch> = {}
    for (const [name, sm] of Object.entries(query.value)) {
      query.raw(name)
      const s = stringValue(stringMatch(sm, query.at(name), out), true)
      if (s) params[name] = s
      else {
        out.unsupported(query.at(name), `not translatable: ${LEFT_OUT}`)
        ok = false
      }
    }
    if (Object.keys(params).length > 0) clause.query = params
  }

  const gateways = m.array('gateways')
  if (gateways !== undefined && gateways.length > 0 && !gateways.includes('mesh')) {
    out.unsupported(m.at('gateways'), `gateways only, not the mesh: ${LEFT_OUT}`)
    ok = false
  }
  refuse('authority', 'meshlet matches the host the call named, not the authority')
  refuse('scheme', 'no scheme match')
  refuse('port', 'no port match')
  refuse('sourceLabels', 'the caller has no workload labels')
  refuse('sourceNamespace', 'the caller has no namespace')
  m.unsupported('name', 'ignored')
  m.unsupported('statPrefix', 'ignored')
  if (m.done(LEFT_OUT) > 0) ok = false
  return ok ? clause : undefined
}

/** A StringMatch as meshlet's; `{}` is presence when `presence` allows it. */
function stringValue(s: IstioString, presence: boolean): StringMatch | undefined {
  if (s === undefined) return undefined
  if (s === 'any') return presence ? { present: true } : undefined
  if (s.kind === 'regex') {
    const re = jsRegex(s.value)
    return re === undefined ? undefined : { regex: re }
  }
  return s.kind === 'exact' ? { exact: s.value } : { prefix: s.value }
}

/** The weighted destinations of a rule (and, for a lone destination, its header changes). */
function destinations(
  r: Fields,
  state: State,
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
    const path = r.at('route') + `[${k}]`
    if (!isObject(raw)) {
      out.unsupported(path, 'expected an object: rule left out')
      return undefined
    }
    const d = new Fields(raw, path, out)
    const dest = destinationOf(d.object('destination'), state)
    if (dest === undefined) {
      out.unsupported(d.at('destination'), 'no host: rule left out')
      return undefined
    }
    const weight = d.number('weight')
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

/** `{ host, subset, port }` as a meshlet destination (a subset no rule defines fails `createMesh`). */
function destinationOf(d: Fields | undefined, state: State): Destination | undefined {
  if (d === undefined) return undefined
  const host = d.string('host')
  if (host === undefined) return undefined
  const service = serviceNameOf(host)
  if (!SERVICE_NAME.test(service) && !IPV4.test(service)) {
    d.out.unsupported(d.at('host'), `${JSON.stringify(host)} makes no service name`)
    return undefined
  }
  state.service(service)
  const dest: Destination = { service }
  const subset = d.string('subset')
  if (subset !== undefined) dest.subset = subset
  d.unsupported('port', 'ignored: an endpoint URL carries its port')
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

const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'refused-stream',
  'retriable-4xx',
])
// Istio's retry policy when a rule's `retries` gives no `retryOn`; its gRPC conditions
// (unavailable, cancelled) have no HTTP meaning.
const ISTIO_DEFAULT_RETRY_ON: RetryOn[] = ['connect-failure', 'refused-stream', 503]

function retry(f: Fields): RouteRetry {
  const result: RouteRetry = {}
  const attempts = f.number('attempts')
  if (attempts !== undefined) {
    if (!Number.isInteger(attempts) || attempts < 0) {
      f.out.unsupported(f.at('attempts'), `expected a whole number of retries, got ${attempts}`)
    } else if (attempts > 9) {
      f.out.unsupported(f.at('attempts'), `${attempts} retries: meshlet allows 10 tries, so 9 retries`)
      result.attempts = 10
    } else {
      // Istio counts retries; meshlet counts tries, the first one included.
      result.attempts = attempts + 1
    }
  }
  const perTry = duration(f, 'perTryTimeout')
  if (perTry !== undefined) result.perTryTimeout = perTry
  const retryOn = f.string('retryOn')
  if (retryOn === undefined) result.retryOn = [...ISTIO_DEFAULT_RETRY_ON]
  else {
    const on: RetryOn[] = []
    for (const token of retryOn.split(',').map((t) => t.trim())) {
      if (token === '') continue
      if (RETRY_ON.has(token)) on.push(token as RetryOn)
      else if (/^\d{3}$/.test(token) && Number(token) >= 100 && Number(token) <= 599) on.push(Number(token))
      // It switches on the statuses listed beside it, which are translated one by one.
      else if (token === 'retriable-status-codes') continue
      else f.out.unsupported(f.at('retryOn'), JSON.stringify(token))
    }
    result.retryOn = [...new Set(on)]
  }
  f.unsupported('retryRemoteLocalities')
  f.unsupported('retryIgnorePreviousHosts')
  f.unsupported('backoff', 'a route cannot override the backoff; set the service retry.backoff')
  f.done()
  return result
}

const GRPC_CODES: readonly string[] = ['OK', ...GRPC_FAILURE_STATUSES]

function faultOf(f: Fields): Fault | undefined {
  const fault: Fault = {}
  const abort = f.object('abort')
  if (abort) {
    // Istio: with no percentage, every call is aborted (or delayed).
    const percent = percentOf(abort) ?? 100
    const status = abort.number('httpStatus')
    const grpc = abort.raw('grpcStatus')
    let grpcStatus: number | undefined
    if (grpc !== undefined) {
      const code = typeof grpc === 'number' ? grpc : GRPC_CODES.indexOf(String(grpc).toUpperCase())
      if (Number.isInteger(code) && code >= 1 && code <= 16) grpcStatus = code
      else abort.out.unsupported(abort.at('grpcStatus'), `${JSON.stringify(grpc)} is not a gRPC error code`)
    }
    abort.unsupported('http2Error')
    const a: NonNullable<Fault['abort']> = { percent }
    if (status !== undefined) {
      if (Number.isInteger(status) && status >= 200 && status <= 599) a.status = status
      else abort.out.unsupported(abort.at('httpStatus'), `meshlet aborts with 200..599, got ${status}`)
    }
    if (grpcStatus !== undefined) a.grpcStatus = grpcStatus
    if (a.status !== undefined || a.grpcStatus !== undefined) fault.abort = a
    abort.done()
  }
  const delay = f.object('delay')
  if (delay) {
    const percent = percentOf(delay) ?? 100
    const fixed = duration(delay, 'fixedDelay')
    delay.unsupported('exponentialDelay')
    if (fixed !== undefined) fault.delay = { percent, duration: fixed }
    delay.done()
  }
  f.done()
  return fault.abort || fault.delay ? fault : undefined
}

function mirrorOf(r: Fields, state: State): MeshRoute['mirror'] {
  const percent = percentOf(r, 'mirrorPercentage', 'mirrorPercent')
  const single = r.object('mirror')
  let mirror: MeshRoute['mirror']
  if (single) {
    const d = destinationOf(single, state)
    if (d) mirror = { service: d.service, ...(d.subset === undefined ? {} : { subset: d.subset }) }
    else r.out.unsupported(single.path, 'no host')
  }
  if (mirror && percent !== undefined) mirror.percent = percent
  const list = r.array('mirrors') ?? []
  list.forEach((raw, k) => {
    const path = r.at('mirrors') + `[${k}]`
    if (mirror !== undefined || !isObject(raw)) {
      r.out.unsupported(path, 'meshlet mirrors to one destination')
      return
    }
    const m = new Fields(raw, path, r.out)
    const d = destinationOf(m.object('destination'), state)
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

// ---------------------------------------------------------------------------------------------
// DestinationRule

/** The longest timer Node can arm: a wait that only the call's deadline ends, as in Envoy. */
const LONGEST_WAIT_MS = 2_147_483_647
/** Envoy's default limits (2^32 - 1): no limit. */
const ENVOY_UNLIMITED = 4_294_967_295

function destinationRule(spec: Fields, state: State): void {
  const out = spec.out
  const host = spec.string('host')
  if (host === undefined || host.includes('*')) {
    out.unsupported(
      'host',
      host === undefined ? 'required: resource left out' : 'wildcard host: resource left out',
    )
    return
  }
  const name = serviceNameOf(host)
  if (!SERVICE_NAME.test(name)) {
    out.unsupported('host', `${JSON.stringify(host)} makes no service name: resource left out`)
    return
  }
  if (state.ruled.has(name)) {
    out.unsupported('', `a second DestinationRule for ${name}: Istio applies one; resource left out`)
    return
  }
  state.ruled.add(name)
  const svc = state.service(name)
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
    if (subsetName === undefined || !/^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/.test(subsetName)) {
      out.unsupported(s.at('name'), 'expected a subset name: subset left out')
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

/** JSON with sorted keys, to compare policies. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  )
}

const SIMPLE_LB: Readonly<Record<string, IstioServiceConfig['loadBalancer']>> = {
  ROUND_ROBIN: 'round-robin',
  LEAST_REQUEST: 'least-request',
  LEAST_CONN: 'least-request',
  RANDOM: 'random',
}

function trafficPolicy(tp: Fields): IstioServiceConfig {
  const out = tp.out
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
    const http = pool.object('http')
    const tcp = pool.object('tcp')
    const maxRequests = http?.number('http2MaxRequests')
    const pending = http?.number('http1MaxPendingRequests')
    // meshlet's HTTP transport sends one request per connection at a time (HTTP/1.1), so a
    // connection limit is a request limit too.
    const maxConnections = tcp?.number('maxConnections')
    const limits = [maxRequests, maxConnections].filter((v): v is number => v !== undefined && v > 0)
    if (limits.length > 0) {
      svc.concurrency = {
        max: Math.min(...limits),
        // Envoy queues pending requests without limit by default, for as long as the route's timeout.
        queue: pending ?? ENVOY_UNLIMITED,
        queueTimeout: LONGEST_WAIT_MS,
      }
    } else if (pending !== undefined) {
      out.unsupported(http!.at('http1MaxPendingRequests'), 'no effect without a request or connection limit')
    }
    http?.done()
    tcp?.done()
    pool.done()
  }

  const od = tp.object('outlierDetection')
  if (od) svc.outlierDetection = outlierDetection(od)
  tp.done()
  return svc
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

function outlierDetection(od: Fields): NonNullable<IstioServiceConfig['outlierDetection']> {
  // Istio turns success-rate ejection and the panic threshold off unless minHealthPercent says so.
  const result: NonNullable<IstioServiceConfig['outlierDetection']> = {
    successRateEjection: { enforcementPercentage: 0 },
    panicThreshold: od.number('minHealthPercent') ?? 0,
  }
  const fiveXx = od.number('consecutive5xxErrors')
  const gateway = od.number('consecutiveGatewayErrors')
  const legacy = od.number('consecutiveErrors')
  // meshlet counts every failure its classifier sees; of Istio's two counters (the 5xx one is on
  // at 5 unless set, or unless the legacy consecutiveErrors is used), the one that trips first is kept.
  const counts = [fiveXx ?? (legacy === undefined ? 5 : undefined), gateway ?? legacy].filter(
    (v): v is number => v !== undefined,
  )
  if (fiveXx !== undefined || gateway !== undefined || legacy !== undefined) {
    const positive = counts.filter((v) => v > 0)
    result.consecutiveFailures = positive.length > 0 ? Math.min(...positive) : 0
  }
  const interval = duration(od, 'interval')
  if (interval !== undefined) result.interval = interval
  const base = duration(od, 'baseEjectionTime')
  if (base !== undefined) result.baseEjectionTime = base
  const max = od.number('maxEjectionPercent')
  if (max !== undefined) result.maxEjectionPercent = max
  od.unsupported('splitExternalLocalOriginErrors')
  od.unsupported('consecutiveLocalOriginFailures')
  od.done()
  return result
}
