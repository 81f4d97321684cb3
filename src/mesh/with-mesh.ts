/**
 * `withMesh`: the one-line adoption. It wraps an application's existing client and returns one
 * of the same type whose calls to configured services go through the mesh; calls to any other
 * host pass through untouched (or are refused when the mesh is `strict`).
 */

import { httpClassifier, idempotence } from '../adapters/fetch/classify.js'
import { answerAsEnvoy } from '../adapters/fetch/envoy-responses.js'
import { httpProtocol } from '../adapters/fetch/protocol.js'
import { httpQuotaSignals } from '../adapters/fetch/quota-signals.js'
import {
  type HttpRequest,
  parseTarget,
  type Target,
  toHttpRequest,
  urlOf,
} from '../adapters/fetch/request.js'
import {
  applyHeaderOps,
  httpAbort,
  httpHeaderFault,
  httpRouteView,
  rewriteRequest,
  rewriteResponse,
} from '../adapters/fetch/routing.js'
import { fetchTransport } from '../adapters/fetch/transport.js'
import type { GrpcClientLike } from '../adapters/grpc/grpc-types.js'
import { bearerOptions, httpBearer } from '../adapters/identity/bearer.js'
import { TlsMaterialError, UnknownServiceError } from '../core/errors.js'
import type { Handler, Middleware } from '../core/handler.js'
import { handlerProbe, type Probe } from '../stages/balancer/health-check.js'
import type { CircuitBreaker } from '../stages/circuit-breaker/breaker.js'
import { fault } from '../stages/fault/fault.js'
import { egressDenial } from '../stages/policy/egress.js'
import type { MeshConfig, ResolvedRoute, ResolvedServiceConfig } from './config/config.js'
import { createMesh, isMesh, type Mesh } from './mesh.js'
import { type QuotaKeyReader, templateParam } from './quota.js'
import { effectiveConfig } from './route-policy.js'
import { destinationKey, type ServiceRuntime, type Snapshot } from './runtime.js'
import { buildStack } from './stack.js'
import { tlsClientOf } from './tls.js'
import { type WithMeshGrpcOptions, withMeshGrpc } from './with-grpc.js'

const meshes = new WeakMap<object, Mesh>()

/**
 * Wraps `fetch` (or any function of fetch's type) so that a URL whose host names a configured
 * service (`http://users/api/42`) is routed, balanced, retried and timed out by the mesh. The
 * result has fetch's exact type and accepts string, `URL` and `Request` inputs; the caller's
 * `AbortSignal` aborts the call at once and cancels the upstream request.
 *
 * The call keeps what the caller asked for (docs/fetch-transport.md): the URL is read by the
 * WHATWG parser as fetch reads it; an `https:` call goes only to `https://` endpoints (else
 * `TLS_REQUIRED`); the answer's `url` is the URL asked for, not the endpoint's; a `Request`'s
 * body is sent as fetch sends it. It never throws: every failure is a rejection (or, with
 * `meshErrors: 'respond'`, a mesh-made failure is answered as an Envoy sidecar answers it).
 *
 * `withMesh(fetch, config)` is a shorthand that creates the mesh; {@link meshOf} returns it.
 *
 * @example
 * ```ts
 * import { createMesh, withMesh } from 'meshlet'
 * const mesh = createMesh({ services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
 * const fetch2 = withMesh(fetch, mesh)
 * // const res = await fetch2('http://users/api/users/42')
 * ```
 */
export function withMesh(fetchFn: typeof fetch, mesh: Mesh | MeshConfig): typeof fetch
/**
 * Wraps a @grpc/grpc-js client (from `makeClientConstructor`, `loadPackageDefinition` or
 * generated code) so that its calls go through the mesh: the client's target (`users`,
 * `dns:///users:50051`) names a service with `protocol: 'grpc'`. The result has the client's
 * exact type; see docs/grpc.md.
 */
export function withMesh<C extends GrpcClientLike>(
  client: C,
  mesh: Mesh | MeshConfig,
  options?: WithMeshGrpcOptions,
): C
export function withMesh(
  target: typeof fetch | GrpcClientLike,
  mesh: Mesh | MeshConfig,
  options?: WithMeshGrpcOptions,
): typeof fetch | GrpcClientLike {
  if (typeof target === 'object' && target !== null && typeof target.getChannel === 'function') {
    const m = isMesh(mesh) ? mesh : createMesh(mesh)
    const wrapped = withMeshGrpc(target, m, options)
    meshes.set(wrapped, m)
    return wrapped
  }
  if (typeof target !== 'function') {
    throw new TypeError(
      `withMesh: expected a fetch function or a @grpc/grpc-js client, got ${target === null ? 'null' : typeof target}`,
    )
  }
  return withMeshFetch(target, mesh)
}

function withMeshFetch(fetchFn: typeof fetch, mesh: Mesh | MeshConfig): typeof fetch {
  const m = isMesh(mesh) ? mesh : createMesh(mesh)
  const transport = m.httpTransport ?? fetchTransport(fetchFn, { direct: m.directFetch })
  // Services with `tls` send through a transport of their own (src/mesh/tls.ts): the others pay nothing.
  const tlsTransports = new WeakMap<object, Handler<HttpRequest, Response>>()
  const transportOf = (
    svc: ServiceRuntime,
    config: ResolvedServiceConfig,
  ): Handler<HttpRequest, Response> => {
    // A transport given to the mesh (simulations) stands for the network, TLS included.
    if (config.tls === undefined || m.httpTransport !== undefined) return transport
    const client = tlsClientOf(m, svc.service, config.tls)
    let t = tlsTransports.get(client)
    if (t === undefined) {
      const failed = client
      t =
        failed instanceof TlsMaterialError
          ? () => Promise.reject(failed)
          : fetchTransport(fetchFn, { direct: m.directFetch, tls: failed })
      tlsTransports.set(client, t)
    }
    return t
  }
  const build =
    (svc: ServiceRuntime, route: ResolvedRoute | undefined, breaker: CircuitBreaker | undefined) =>
    (): Handler<HttpRequest, Response> => {
      const config = effectiveConfig(svc.config, route)
      const faults = route?.fault
      const faultStage =
        faults && (faults.abort || faults.delay || faults.headers)
          ? fault<HttpRequest, Response>({
              abort: faults.abort,
              delay: faults.delay,
              fromHeaders: faults.headers ? httpHeaderFault : undefined,
              abortWith: httpAbort,
            })
          : undefined
      return buildStack(
        {
          name: svc.name,
          config,
          endpoints: svc.endpoints,
          strategy: svc.strategy,
          keyOf: config.loadBalancer === 'ring-hash' ? httpHashKey(config.hashKey) : undefined,
          classify: httpClassifier(config.retry.retryOn, config.retry.methods),
          protocol: httpProtocol,
          idempotent: idempotence(config.retry.methods),
          budget: svc.budget,
          latency: svc.latency,
          health: svc.health,
          probe: httpProbe(svc, transportOf(svc, config)),
          breaker,
          bulkhead: svc.bulkhead as Middleware<HttpRequest, Response> | undefined,
          quota: m.quota.stage(svc.name, config, route, httpQuotaKey, httpQuotaSignals, m.events),
          fallback: httpFallback(svc, config, m),
          faultCall: faults?.scope === 'call' ? faultStage : undefined,
          faultAttempt: faults?.scope === 'attempt' ? faultStage : undefined,
          events: m.events,
        },
        withToken(svc, m, transportOf(svc, config)),
      )
    }

  /** Sends `req` to the destination `svc` as `route` says (no route: the destination's own policy). */
  const send = (
    svc: ServiceRuntime,
    route: ResolvedRoute | undefined,
    routeIndex: number,
    req: HttpRequest,
    snapshot: Snapshot,
  ): Promise<Response> => {
    const key = route ?? NO_ROUTE
    let handler = svc.cached<HttpRequest, Response>(transport, key)
    if (handler === undefined) {
      const breaker = route?.circuitBreaker
        ? snapshot.routeBreakers.get(`${svc.name}#${routeIndex}`)
        : svc.breaker
      handler = svc.handler(transport, key, build(svc, route, breaker))
    }
    return m.invoke(handler, req, req.signal)
  }

  /**
   * The call, for a URL the mesh may claim. Everything that can throw is inside: fetch never
   * throws synchronously, and neither does the mesh (a bad header, a malformed cookie, a URL
   * with credentials all reject).
   */
  const meshFetch = function meshFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    let target: Target | undefined
    // A string is read without conversion, and parseTarget never throws (D61: no guard needed).
    if (typeof input === 'string') target = parseTarget(input)
    else {
      try {
        target = parseTarget(urlOf(input))
      } catch (error) {
        return Promise.reject(error) // fetch's own conversion failed (a Symbol, a throwing toString)
      }
    }
    if (target === undefined) return passThrough(input, init)
    try {
      const snapshot = m.snapshot
      const own = snapshot.hosts.get(target.host)
      let call: Promise<Response>
      if (snapshot.router.empty) {
        if (own === undefined || own.config.protocol !== 'http') {
          if (snapshot.strict) return Promise.reject(new UnknownServiceError(target.host))
          return passThrough(input, init)
        }
        // Claimed by the mesh: a URL with credentials is refused as fetch refuses it, never sent
        // with them silently dropped.
        if (target.credentials) return Promise.reject(credentialsError(input))
        const config = own.config
        const propagate = config.propagateDeadline !== false
        const req =
          typeof input === 'string'
            ? toHttpRequest(own.name, target.path, input, init, propagate, target, config.authority)
            : request(own.name, target, input, init, propagate, config.authority)
        if (snapshot.egress !== undefined) {
          // access policy: before routing, quota and the network (stack.ts's order).
          const denied = egressDenial(
            snapshot.egress,
            own.name,
            req.method,
            req.path,
            httpRouteView(own.name, req).header,
          )
          if (denied) return Promise.reject(denied)
        }
        const signal = req.signal
        if (signal?.aborted) return abortedCall(input, target, init, signal.reason)
        call = send(own, undefined, -1, req, snapshot)
      } else {
        const routedCall = routed(target, own, snapshot, input, init)
        if (routedCall === undefined) return passThrough(input, init)
        call = routedCall
      }
      return snapshot.respond ? call.then(undefined, answerAsEnvoy(target.href)) : call
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** A call the mesh does not claim: fetch's as it is (which never throws synchronously either). */
  const passThrough = (input: string | URL | Request, init: RequestInit | undefined): Promise<Response> => {
    try {
      return fetchFn(input, init)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The routed call; `undefined` when no rule matches and the host is no service (it passes through). */
  const routed = (
    target: Target,
    own: ServiceRuntime | undefined,
    snapshot: Snapshot,
    input: string | URL | Request,
    init: RequestInit | undefined,
  ): Promise<Response> | undefined => {
    // A call by one of the service's aliases (`hosts`) is routed as a call by its name.
    const host = own === undefined ? target.host : own.host
    const req = request(
      own?.name ?? host,
      target,
      input,
      init,
      own?.config.propagateDeadline !== false,
      own?.config.authority,
    )
    const view = httpRouteView(host, req)
    const decision = snapshot.router.route(view, m.random)
    if (snapshot.egress !== undefined && (decision !== undefined || own?.config.protocol === 'http')) {
      // access policy: on the requested service (the host, not the destination the route picked),
      // for every call the mesh claims, before quota, faults, retries and the network. The route
      // lookup before it is pure (no state, nothing spent); a host the mesh does not claim passes
      // through untouched as before (`strict` governs those).
      const denied = egressDenial(snapshot.egress, own?.name ?? host, req.method, req.path, view.header)
      if (denied) return Promise.reject(denied)
    }
    if (decision === undefined) {
      if (own === undefined || own.config.protocol !== 'http') {
        if (snapshot.strict) return Promise.reject(new UnknownServiceError(host))
        return undefined
      }
      if (target.credentials) return Promise.reject(credentialsError(input))
      if (req.signal?.aborted) return abortedCall(input, target, init, req.signal.reason)
      return send(own, undefined, -1, req, snapshot)
    }
    if (target.credentials) return Promise.reject(credentialsError(input))
    if (req.signal?.aborted) return abortedCall(input, target, init, req.signal.reason)
    const { route, index, destination } = decision
    const dest = snapshot.destinations.get(destinationKey(destination.service, destination.subset))
    if (dest === undefined) return Promise.reject(new UnknownServiceError(destination.service))
    const routedReq = rewriteRequest(
      {
        ...req,
        propagateDeadline: dest.config.propagateDeadline !== false,
        authority: dest.config.authority,
      },
      dest.service,
      route.requestHeaders,
      route.rewrite,
      decision.matchedPrefix,
    )
    if (route.mirror && routedReq.replayable && m.random.next() * 100 < route.mirror.percent) {
      const shadow = snapshot.destinations.get(destinationKey(route.mirror.service, route.mirror.subset))
      // Fire-and-forget: its own call, never awaited; its answer and its failure are dropped.
      if (shadow !== undefined) {
        const copy: HttpRequest = {
          ...routedReq,
          service: shadow.service,
          signal: undefined,
          init: { ...routedReq.init, headers: applyHeaderOps(routedReq.init.headers, SHADOW) },
        }
        send(shadow, undefined, -1, copy, snapshot).then(httpProtocol.discard, noop)
      }
    }
    const call = send(dest, route, index, routedReq, snapshot)
    const ops = route.responseHeaders
    return ops ? call.then((res) => rewriteResponse(res, ops)) : call
  }

  meshes.set(meshFetch, m)
  return meshFetch as typeof fetch
}

/**
 * The pipeline request of a call to `target`; an input that is not a `Request` or `URL` is the
 * URL string fetch converts it to.
 */
function request(
  service: string,
  target: Target,
  input: string | URL | Request,
  init: RequestInit | undefined,
  propagateDeadline: boolean,
  authority?: string,
): HttpRequest {
  const given =
    typeof input === 'string' || input instanceof URL || input instanceof Request ? input : urlOf(input)
  return toHttpRequest(service, target.path, given, init, propagateDeadline, target, authority)
}

/** fetch's refusal of a URL with a user name or password, word for word. */
function credentialsError(input: unknown): TypeError {
  return new TypeError(`Request cannot be constructed from a URL that includes credentials: ${urlOf(input)}`)
}

/**
 * A call whose signal aborted before it started, answered as fetch answers it: the request is
 * built (fetch's checks, and its taking of a `Request`'s body), its body cancelled with the
 * reason (a caller's `ReadableStream` sees the cancel), and the call rejects with the reason.
 */
function abortedCall(
  input: string | URL | Request,
  target: Target,
  init: RequestInit | undefined,
  reason: unknown,
): Promise<never> {
  try {
    const built = new Request(input instanceof Request || input instanceof URL ? input : target.href, init)
    built.body?.cancel(reason).catch(noop)
  } catch (error) {
    return Promise.reject(error)
  }
  return Promise.reject(reason)
}

/** The handler-cache key of calls that matched no route. */
const NO_ROUTE = {}
/** Mirrored copies are marked, as Envoy appends `-shadow` to their host. */
const SHADOW = { set: { 'x-meshlet-shadow': 'true' }, add: {}, remove: [] }
const noop = () => {}

/** The fallback of an HTTP service: the application's function, else the static response of its config. */
function httpFallback(
  svc: ServiceRuntime,
  config: ResolvedServiceConfig,
  m: Mesh,
): ((req: HttpRequest, error: unknown) => Promise<Response>) | undefined {
  // Own keys only (D47): a service named `toString` must not find Object.prototype.toString.
  const fns = m.fallbacks
  const custom = fns !== undefined && Object.hasOwn(fns, svc.service) ? fns[svc.service] : undefined
  if (typeof custom === 'function') return async (req, error) => custom(error, req)
  const f = config.fallback
  if (f === undefined) return undefined
  return async () => new Response(f.body === '' ? null : f.body, { status: f.status, headers: f.headers })
}

/** Active health checks of an HTTP service: a GET of its `healthCheck.path`; a 2xx is healthy. */
function httpProbe(svc: ServiceRuntime, transport: Handler<HttpRequest, Response>): Probe | undefined {
  const hc = svc.config.healthCheck
  if (hc === undefined) return undefined
  const request: HttpRequest = {
    service: svc.name,
    path: hc.path,
    method: 'GET',
    init: { method: 'GET' },
    replayable: true,
    signal: undefined,
    propagateDeadline: false,
  }
  return handlerProbe(transport, request, (res) => {
    httpProtocol.discard(res)
    return res.status >= 200 && res.status < 300
  })
}

/** `transport`, with the service's bearer token added to each attempt when it has one. */
function withToken(
  svc: ServiceRuntime,
  m: Mesh,
  transport: Handler<HttpRequest, Response>,
): Handler<HttpRequest, Response> {
  const tokens = m.tokenSource(svc.service.toLowerCase())
  return tokens === undefined ? transport : httpBearer(transport, tokens, bearerOptions(svc.config.auth))
}

/** The mesh behind a client returned by {@link withMesh}, or `undefined`. */
export function meshOf(client: object): Mesh | undefined {
  return meshes.get(client)
}

/**
 * The ring-hash key of an HTTP call: the `hashKey` header, cookie or query parameter, or the path
 * without its query (the default). `undefined` when the request has none (the pick is random).
 */
function httpHashKey(hashKey: ResolvedServiceConfig['hashKey']): (req: HttpRequest) => string | undefined {
  if (hashKey === undefined || hashKey.path === true) {
    return (req) => {
      const q = req.path.indexOf('?')
      return q < 0 ? req.path : req.path.slice(0, q)
    }
  }
  const { header, cookie, query } = hashKey
  return (req) => {
    const view = httpRouteView(req.service, req)
    return header !== undefined
      ? view.header(header)
      : cookie !== undefined
        ? view.cookie(cookie)
        : view.query(query!)
  }
}

/** The key of an HTTP call's bucket: a header's value, or a parameter of the route's path template. */
const httpQuotaKey: QuotaKeyReader<HttpRequest> = (key, route) => {
  if ('header' in key) {
    const name = key.header.toLowerCase()
    return (req) => httpRouteView(req.service, req).header(name)
  }
  const param = templateParam(route, key.param)
  return param === undefined ? undefined : (req) => param(req.path)
}
