/**
 * What routing needs from HTTP: a {@link RouteView} over a fetch call (headers, query and
 * cookies parsed only when a rule asks for them), request and response header changes, path and
 * host rewrites, Envoy's header-triggered faults, and the response an injected abort answers.
 */
import type { HeaderFault } from '../../stages/fault/fault.js'
import type { RouteView } from '../../stages/router/router.js'
import type { HttpRequest } from './request.js'

/** Header changes of a route. */
export interface HeaderOps {
  readonly set: Readonly<Record<string, string>>
  readonly add: Readonly<Record<string, string>>
  readonly remove: readonly string[]
}

/** A route view of an HTTP call to `host`; headers, query and cookies are parsed on first use. */
export function httpRouteView(host: string, req: HttpRequest): RouteView {
  let headers: Headers | undefined
  let query: URLSearchParams | undefined
  let cookies: Map<string, string> | undefined
  const h = () => {
    headers ??= new Headers(req.init.headers)
    return headers
  }
  return {
    host,
    method: req.method,
    path: req.path,
    header: (name) => h().get(name) ?? undefined,
    query(name) {
      if (query === undefined) {
        const q = req.path.indexOf('?')
        query = new URLSearchParams(q < 0 ? '' : req.path.slice(q + 1))
      }
      return query.get(name) ?? undefined
    },
    cookie(name) {
      cookies ??= parseCookies(h().get('cookie'))
      return cookies.get(name)
    },
  }
}

/**
 * The cookies of a `Cookie` header (RFC 6265, section 5.4: `name=value` pairs separated by
 * `;`), read as Envoy reads them for hashing and stickiness: each value as its octets, never
 * percent-decoded (RFC 6265 gives `%` no meaning, so `promo=50%off` is the value `50%off`), a
 * pair of surrounding double quotes removed (`cookie-value` may be quoted), and the first
 * cookie of a name winning. Fetch joins several `Cookie` headers with `, `, so that separator
 * is accepted too. Decision D41.
 */
export function parseCookies(header: string | null | undefined): Map<string, string> {
  const cookies = new Map<string, string>()
  if (header === null || header === undefined) return cookies
  for (const part of header.split(/;|, /)) {
    const eq = part.indexOf('=')
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    if (name === '' || cookies.has(name)) continue
    let value = part.slice(eq + 1).trim()
    if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34)
      value = value.slice(1, -1)
    cookies.set(name, value)
  }
  return cookies
}

/** Applies header changes to a copy of `headers`. */
export function applyHeaderOps(headers: HeadersInit | undefined, ops: HeaderOps | undefined): Headers {
  const out = new Headers(headers)
  if (ops) {
    for (const name of ops.remove) out.delete(name)
    for (const [name, value] of Object.entries(ops.set)) out.set(name, value)
    for (const [name, value] of Object.entries(ops.add)) out.append(name, value)
  }
  return out
}

/**
 * The request as a route sends it: header changes, the matched path prefix replaced, and the
 * authority: `rewrite.host` becomes the `Host` sent upstream ({@link HttpRequest.authority};
 * fetch itself drops a `host` header, so the transport sets it at the dispatcher). The
 * caller's objects are never changed.
 */
export function rewriteRequest(
  req: HttpRequest,
  service: string,
  ops: HeaderOps | undefined,
  rewrite: { readonly prefix?: string | undefined; readonly host?: string | undefined } | undefined,
  matchedPrefix: string | undefined,
): HttpRequest {
  let path = req.path
  if (rewrite?.prefix !== undefined && matchedPrefix !== undefined && path.startsWith(matchedPrefix)) {
    path = rewrite.prefix + path.slice(matchedPrefix.length)
    if (!path.startsWith('/')) path = `/${path}`
  }
  const init = ops ? { ...req.init, headers: applyHeaderOps(req.init.headers, ops) } : req.init
  return { ...req, service, path, init, authority: rewrite?.host ?? req.authority }
}

/**
 * A response with header changes (fetch responses have immutable headers: the body is carried
 * over). It never throws: the upstream has already run, and a throw would make a retrying caller
 * send the request again. Header names and values of `ops` are checked when the config is parsed;
 * a status fetch's `Response` cannot be built with (outside 200..599) is answered as received.
 */
export function rewriteResponse(res: Response, ops: HeaderOps): Response {
  try {
    return new Response(res.body, {
      status: res.status,
      statusText: res.statusText,
      headers: applyHeaderOps(res.headers, ops),
    })
  } catch {
    return res
  }
}

const num = (v: string | null): number | undefined => {
  if (v === null || !/^\d+(\.\d+)?$/.test(v.trim())) return undefined
  return Number(v)
}

/**
 * Envoy's header faults: `x-envoy-fault-abort-request` (a status), `x-envoy-fault-delay-request`
 * (ms), and their `-percentage` companions (0..100). Malformed values are ignored.
 */
export function httpHeaderFault(req: HttpRequest): HeaderFault | undefined {
  const headers = req.init.headers
  if (headers === undefined) return undefined
  const h = new Headers(headers)
  const abort = num(h.get('x-envoy-fault-abort-request'))
  const delay = num(h.get('x-envoy-fault-delay-request'))
  if (abort === undefined && delay === undefined) return undefined
  return {
    abort: abort !== undefined && abort >= 200 && abort <= 599 ? abort : undefined,
    abortPercent: num(h.get('x-envoy-fault-abort-request-percentage')),
    delay,
    delayPercent: num(h.get('x-envoy-fault-delay-request-percentage')),
  }
}

/** What an injected HTTP abort answers: an empty response with the status, marked as injected. */
export function httpAbort(_req: HttpRequest, status: number): Promise<Response> {
  return Promise.resolve(
    // 204, 205 and 304 answers carry no body: fetch's Response refuses one.
    new Response(status === 204 || status === 205 || status === 304 ? null : 'fault filter abort', {
      status,
      headers: { 'x-meshlet-fault': 'abort' },
    }),
  )
}
