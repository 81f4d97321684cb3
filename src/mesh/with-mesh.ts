/**
 * `withMesh`: the one-line adoption. It wraps an application's existing client and returns one
 * of the same type whose calls to configured services go through the mesh; calls to any other
 * host pass through untouched (or are refused when the mesh is `strict`).
 */

import { httpClassifier, idempotence } from '../adapters/fetch/classify.js'
import { httpProtocol } from '../adapters/fetch/protocol.js'
import { type HttpRequest, parseTarget, toHttpRequest, urlOf } from '../adapters/fetch/request.js'
import { fetchTransport } from '../adapters/fetch/transport.js'
import { UnknownServiceError } from '../core/errors.js'
import type { Handler, Middleware } from '../core/handler.js'
import { handlerProbe, type Probe } from '../stages/balancer/health-check.js'
import type { MeshConfig } from './config/config.js'
import { createMesh, type Mesh } from './mesh.js'
import type { ServiceRuntime } from './runtime.js'
import { buildStack } from './stack.js'

const meshes = new WeakMap<object, Mesh>()

/**
 * Wraps `fetch` (or any function of fetch's type) so that a URL whose host names a configured
 * service (`http://users/api/42`) is routed, balanced, retried and timed out by the mesh. The
 * result has fetch's exact type and accepts string, `URL` and `Request` inputs; the caller's
 * `AbortSignal` aborts the call at once and cancels the upstream request.
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
export function withMesh(fetchFn: typeof fetch, mesh: Mesh | MeshConfig): typeof fetch {
  if (typeof fetchFn !== 'function') {
    throw new TypeError(
      `withMesh: expected a fetch function, got ${fetchFn === null ? 'null' : typeof fetchFn}`,
    )
  }
  const m = isMesh(mesh) ? mesh : createMesh(mesh)
  const transport = m.httpTransport ?? fetchTransport(fetchFn)
  const build = (svc: ServiceRuntime) => (): Handler<HttpRequest, Response> =>
    buildStack(
      {
        name: svc.name,
        config: svc.config,
        endpoints: svc.endpoints,
        strategy: svc.strategy,
        classify: httpClassifier(svc.config.retry.retryOn, svc.config.retry.methods),
        protocol: httpProtocol,
        idempotent: idempotence(svc.config.retry.methods),
        budget: svc.budget,
        latency: svc.latency,
        health: svc.health,
        probe: httpProbe(svc, transport),
        breaker: svc.breaker,
        bulkhead: svc.bulkhead as Middleware<HttpRequest, Response> | undefined,
        fallback: httpFallback(svc, m),
        events: m.events,
      },
      transport,
    )

  const meshFetch = function meshFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const target = parseTarget(urlOf(input))
    if (target === undefined) return fetchFn(input, init)
    const snapshot = m.snapshot
    const svc = snapshot.services.get(target.host)
    if (svc === undefined || svc.config.protocol !== 'http') {
      if (snapshot.strict) return Promise.reject(new UnknownServiceError(target.host))
      return fetchFn(input, init)
    }
    let req: HttpRequest
    try {
      req = toHttpRequest(svc.name, target.path, input, init, svc.config.propagateDeadline)
    } catch (error) {
      return Promise.reject(error)
    }
    return m.invoke(svc.handler(transport, build(svc)), req, req.signal)
  }
  meshes.set(meshFetch, m)
  return meshFetch as typeof fetch
}

/** The fallback of an HTTP service: the application's function, else the static response of its config. */
function httpFallback(
  svc: ServiceRuntime,
  m: Mesh,
): ((req: HttpRequest, error: unknown) => Promise<Response>) | undefined {
  const custom = m.fallbacks?.[svc.name]
  if (custom) return async (req, error) => custom(error, req)
  const f = svc.config.fallback
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

/** The mesh behind a client returned by {@link withMesh}, or `undefined`. */
export function meshOf(client: object): Mesh | undefined {
  return meshes.get(client)
}

function isMesh(value: unknown): value is Mesh {
  return typeof value === 'object' && value !== null && 'invoke' in value && 'snapshot' in value
}
