/**
 * Istio's traffic resources as meshlet config: {@link fromIstio} translates VirtualService,
 * DestinationRule and ServiceEntry resources (networking.istio.io v1, v1beta1, v1alpha3) into
 * routes and services, and lists every field it could not translate.
 *
 * Why: teams that run Istio already describe their canaries, header routes, faults and retries
 * in these resources; reading them lets the same intent drive an in-process mesh (a job outside
 * the cluster, a test, a service that has no sidecar) without writing it twice. The translation
 * is honest rather than complete: a field meshlet cannot honour is never dropped quietly, it is
 * listed in `unsupported` with its path in the resource (`VirtualService reviews:
 * http[0].corsPolicy`), and a match clause that would match differently is left out (so a rule
 * catches fewer calls, never more) and listed. A value Istio's own validation refuses makes the
 * import fail, as `kubectl apply` would. Semantics follow Istio, not the names: host names are
 * resolved as Istio resolves them (`hosts.ts`); Istio's `retries.attempts` counts retries,
 * meshlet's `attempts` counts tries; what the resources leave unsaid gets Istio's defaults (no
 * timeout, two retries on connection failures for any method, no retry budget) unless
 * `defaults: 'meshlet'` asks for meshlet's. See docs/istio.md for the whole mapping.
 *
 * The work is split by resource kind: `virtual-service.ts` (with `match.ts`),
 * `destination-rule.ts`, `service-entry.ts`, `hosts.ts` (names), `fields.ts` (reading and
 * reporting), `state.ts`.
 *
 * Istio resources carry no endpoints (Kubernetes finds the pods); give them in the second
 * argument, or add them to the returned {@link IstioImport} before `createMesh`.
 */

import { parseAllDocuments } from 'yaml'
import { ConfigInvalidError } from '../../core/errors.js'
import type { MeshConfig, ServiceConfig } from '../config/config.js'
import { MAX_ALIASES, MAX_DEPTH, tooDeepAt } from '../config/yaml-bounds.js'
import { type IstioSecurity, securityResource } from './authorization-policy.js'
import { destinationRule } from './destination-rule.js'
import { Fields, isObject, Out } from './fields.js'
import { resolveHost } from './hosts.js'
import { serviceEntry } from './service-entry.js'
import { type IstioServiceConfig, type MeshRoute, type RouteMatch, State } from './state.js'
import { ISTIO_RETRY_ON, ISTIO_RETRYABLE_STATUS_CODES, virtualService } from './virtual-service.js'

export { istioDuration } from './fields.js'
export type { IstioServiceConfig } from './state.js'

/**
 * A config fragment translated from Istio resources: services (subsets, traffic policy, host
 * aliases) and routes, but no endpoints, which Istio resources do not carry (but for
 * ServiceEntries that list them or resolve by DNS). Before `createMesh`, give each service
 * `endpoints` (or `discovery`); `fromIstio(yaml, endpoints)` does it for you.
 */
export interface IstioImport {
  /**
   * The services the resources name, by the shortest name a call may use: `reviews` for
   * `reviews.default.svc.cluster.local` seen from namespace `default` (its other names in
   * `hosts`), `reviews.prod` from another namespace, `api.foo.com` as written.
   */
  services: Record<string, IstioServiceConfig>
  /** The VirtualServices' http rules, in document order. */
  routes: MeshRoute[]
}

/**
 * Endpoints by service: a name the import gives (`reviews`) or any name a call may use for it
 * (`reviews.default.svc.cluster.local`); a short name is resolved in the calling namespace. Each
 * endpoint is a URL or an object with its `labels`, which DestinationRule subsets select on
 * (`{ url, labels: { version: 'v2' } }`).
 */
export type IstioEndpoints = Readonly<Record<string, NonNullable<ServiceConfig['endpoints']>>>

/** Options of {@link fromIstio}. */
export interface IstioOptions {
  /**
   * What the resources leave unsaid. `'istio'`: Istio's and Envoy's behaviour, as a sidecar
   * would act: no timeout; retries as pilot's default policy (2 retries, so 3 tries, on
   * connect-failure, refused-stream and, for gRPC, UNAVAILABLE and CANCELLED, any method, no
   * retry budget, Envoy's 25 ms to 250 ms backoff); each service's `authority` set as a sidecar
   * sends it. `'meshlet'`: meshlet's own service defaults (a 15 s timeout, 3 tries on 5xx and
   * 429 for idempotent methods under a retry budget, the endpoint's address as `Host`).
   * Default `'istio'`.
   */
  readonly defaults?: 'istio' | 'meshlet'
  /**
   * The namespace of the calling workload, and of resources that state none: short hosts of
   * such resources resolve in it, and a bare short name in a call (`http://reviews/`) reaches
   * services of this namespace only, as the Kubernetes DNS search path allows. Default: the
   * namespace the resources state when they all state the same one, else `'default'`.
   */
  readonly namespace?: string
  /** The cluster's DNS domain, as in `reviews.default.svc.cluster.local`. Default `'cluster.local'`. */
  readonly clusterDomain?: string
}

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
  /**
   * AuthorizationPolicies (for `authorize()` from meshlet/inbound) and PeerAuthentication
   * modes; empty lists when the input has none.
   */
  security: IstioSecurity
}

/**
 * Translates Istio VirtualService and DestinationRule resources (one YAML or JSON text with any
 * number of `---`-separated documents, a Kubernetes `List`, or several texts) into meshlet config:
 * VirtualService `http` rules become `routes` (matches, weighted destinations, fault, retries,
 * timeout, mirror, header changes, rewrites), DestinationRules become `services` (subsets, load
 * balancer, outlier detection, connection-pool limits). Hosts are resolved as Istio resolves
 * them (a short name in the resource's namespace); each becomes one service, named by the
 * shortest name a call may use, with its other names as `hosts`. What the resources leave
 * unsaid gets Istio's defaults (see {@link IstioOptions.defaults}). Other kinds, and every field
 * that is not translated, are listed in `unsupported`.
 *
 * Throws a `SyntaxError` when the text is not YAML, and a `ConfigInvalidError` (code
 * `CONFIG_INVALID`) listing, by resource and field path, every value Istio's validation refuses
 * (`retries` with a `perTryTimeout` but no `attempts`, a percentage above 100, ...).
 *
 * Without `endpoints` the result is an {@link IstioImport}, which needs endpoints before
 * `createMesh`; with them (merged by any name of the service; a name the resources do not
 * mention adds a service) it is a full {@link MeshConfig}.
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
export function fromIstio(
  yaml: string | readonly string[],
  endpoints?: undefined,
  options?: IstioOptions,
): IstioTranslation<IstioImport>
export function fromIstio(
  yaml: string | readonly string[],
  endpoints: IstioEndpoints,
  options?: IstioOptions,
): IstioTranslation<MeshConfig>
export function fromIstio(
  yaml: string | readonly string[],
  endpoints?: IstioEndpoints,
  options: IstioOptions = {},
): IstioTranslation<IstioImport | MeshConfig> {
  const docs: Array<{ doc: unknown; where: string }> = []
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
      flatten(value, `document ${n}`, docs)
    }
  }
  const state = new State({
    namespace: (options.namespace ?? statedNamespace(docs) ?? 'default').toLowerCase(),
    clusterDomain: (options.clusterDomain ?? 'cluster.local').toLowerCase(),
  })
  for (const { doc, where } of docs) resource(doc, where, state)

  const byName = new Map<string, NonNullable<ServiceConfig['endpoints']>>()
  if (endpoints) {
    const out = new Out('endpoints', state)
    for (const [key, list] of Object.entries(endpoints)) {
      const lower = key.toLowerCase()
      const name =
        state.serviceByCallName(lower) ??
        state.service(resolveHost(lower, state.naming.namespace, state.naming.clusterDomain), out, key)
      if (name !== undefined) byName.set(name, list)
    }
  }
  if (state.invalid.length > 0) {
    const error = new ConfigInvalidError(state.invalid)
    error.message = `fromIstio: Istio's validation refuses ${error.message.replace(/^invalid mesh config /, '')}`
    throw error
  }

  const istio = (options.defaults ?? 'istio') === 'istio'
  const services: Record<string, ServiceConfig> = {}
  for (const [name, svc] of state.services) {
    // The endpoints given win over a ServiceEntry's.
    const list = byName.get(name) ?? state.endpoints.get(name)
    const result: ServiceConfig = { ...svc, ...(istio ? istioDefaults() : {}) }
    if (istio) {
      const authority = authorityOf(name, state.ports.get(name), list)
      if (authority !== undefined) result.authority = authority
    }
    if (list !== undefined) result.endpoints = list
    services[name] = result
  }
  const routes = state.routes.map(({ route, clauses, hosts }) => {
    const names = hosts?.flatMap((fqdn) => {
      const name = state.nameOf(fqdn)
      // A host that is no service (a VirtualService that only sends elsewhere) is matched by
      // every name a call may use for it.
      return name === undefined ? state.callNames(fqdn) : [name]
    })
    const match = (names ?? [undefined]).flatMap((host) =>
      (clauses ?? [{}]).map((c): RouteMatch => (host === undefined ? c : { host, ...c })),
    )
    // Key order for people reading the output: name, match, route, then the policies.
    const { name, route: to, ...policies } = route
    return {
      name,
      ...(match.some((c) => Object.keys(c).length > 0) ? { match } : {}),
      route: to,
      ...policies,
    } as MeshRoute
  })
  return { config: { services, routes }, unsupported: state.unsupported, security: state.security }
}

/**
 * Istio's defaults for a service, as pilot writes a route without a timeout or retry policy
 * (`route/retry.DefaultPolicy`) and a cluster without a retry budget.
 */
function istioDefaults(): Pick<ServiceConfig, 'timeout' | 'retry'> {
  return {
    timeout: 0,
    retry: {
      attempts: 3,
      retryOn: [...ISTIO_RETRY_ON],
      retryableStatusCodes: [...ISTIO_RETRYABLE_STATUS_CODES],
      methods: ['*'],
      backoff: { base: '25ms', max: '250ms' },
      budget: { kind: 'none' },
    },
  }
}

/**
 * The authority a sidecar's upstream sees: the name the application called with its port. The
 * port is the one the VirtualServices' destinations give, else the one all the endpoints share
 * (a Service whose port is its pods' port, as in Bookinfo); the scheme's default port is left
 * out, as a URL leaves it out. `undefined` when no single port is known: the endpoint's address is sent.
 */
function authorityOf(
  name: string,
  ports: ReadonlySet<number> | undefined,
  endpoints: NonNullable<ServiceConfig['endpoints']> | undefined,
): string | undefined {
  let port: number | undefined
  let https = false
  if (ports !== undefined && ports.size === 1) port = [...ports][0]
  else if (ports === undefined && endpoints !== undefined) {
    const seen = new Set<string>()
    for (const e of endpoints) {
      const raw = typeof e === 'string' ? e : e.url
      try {
        const url = new URL(raw)
        https = url.protocol === 'https:'
        seen.add(`${url.protocol}${url.port === '' ? (https ? 443 : 80) : url.port}`)
      } catch {
        return undefined
      }
    }
    if (seen.size === 1) port = Number([...seen][0]!.replace(/^https?:/, ''))
  }
  if (port === undefined) return undefined
  // The default port of the scheme is left out, as a URL leaves it out.
  return port === (https ? 443 : 80) ? name : `${name}:${port}`
}

const API_VERSION = /^networking\.istio\.io\/(v1|v1beta1|v1alpha3)$/

/** The documents of a text, Kubernetes Lists opened, each with where it came from. */
function flatten(doc: unknown, where: string, into: Array<{ doc: unknown; where: string }>): void {
  if (
    isObject(doc) &&
    typeof doc['kind'] === 'string' &&
    /List$/.test(doc['kind']) &&
    Array.isArray(doc['items'])
  ) {
    for (const [i, item] of doc['items'].entries()) flatten(item, `${where} items[${i}]`, into)
  } else into.push({ doc, where })
}

/** The namespace every resource that states one states, or `undefined`. */
function statedNamespace(docs: ReadonlyArray<{ doc: unknown }>): string | undefined {
  const seen = new Set<string>()
  for (const { doc } of docs) {
    const ns = isObject(doc) && isObject(doc['metadata']) ? doc['metadata']['namespace'] : undefined
    if (typeof ns === 'string' && ns !== '') seen.add(ns)
  }
  return seen.size === 1 ? [...seen][0] : undefined
}

function resource(doc: unknown, where: string, state: State): void {
  if (doc === null || doc === undefined) return
  if (!isObject(doc)) {
    state.unsupported.push(`${where} (not a Kubernetes resource)`)
    return
  }
  const kind = typeof doc['kind'] === 'string' ? doc['kind'] : undefined
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : {}
  const name = typeof metadata['name'] === 'string' ? metadata['name'] : where
  const ns = metadata['namespace']
  const namespace = typeof ns === 'string' && ns !== '' ? ns.toLowerCase() : state.naming.namespace
  const out = new Out(`${kind ?? 'resource'} ${name}`, state)
  const apiVersion = doc['apiVersion']
  if (kind === 'AuthorizationPolicy' || kind === 'PeerAuthentication') {
    if (typeof apiVersion !== 'string' || !/^security\.istio\.io\/(v1|v1beta1)$/.test(apiVersion))
      out.unsupported(
        '',
        `apiVersion ${JSON.stringify(apiVersion ?? null)} is not security.istio.io v1 or v1beta1`,
      )
    else
      securityResource(
        kind,
        isObject(doc['spec']) ? doc['spec'] : {},
        name,
        namespace,
        state.security,
        (p, d) => out.unsupported(p, d),
      )
    return
  }
  if (typeof apiVersion !== 'string' || !API_VERSION.test(apiVersion)) {
    out.unsupported(
      '',
      `apiVersion ${JSON.stringify(apiVersion ?? null)} is not networking.istio.io v1, v1beta1 or v1alpha3`,
    )
    return
  }
  const spec = isObject(doc['spec']) ? new Fields(doc['spec'], '', out) : undefined
  if (kind === 'VirtualService' && spec) virtualService(spec, name, { state, namespace })
  else if (kind === 'DestinationRule' && spec) destinationRule(spec, { state, namespace })
  else if (kind === 'ServiceEntry' && spec) serviceEntry(spec, { state })
  else
    out.unsupported(
      '',
      spec ? 'only VirtualService, DestinationRule and ServiceEntry are translated' : 'no spec',
    )
}
