/**
 * Attaches a service's bearer token to each attempt: an HTTP header for fetch calls, a metadata
 * entry for gRPC calls. It wraps the transport (innermost, after the balancer picked the
 * endpoint and inside the attempt timeout), so a retry after a refresh carries the new token and
 * a wait for a token is bounded by the attempt's limit and the call's deadline.
 *
 * A caller that sets the header itself keeps its own value: the mesh never replaces credentials
 * the application chose (fidelity first; docs/security.md). A token that cannot be had fails the
 * attempt with `TOKEN_UNAVAILABLE` before anything is sent.
 */

import type { Context } from '../../core/context.js'
import type { Handler } from '../../core/handler.js'
import type { HttpRequest } from '../fetch/request.js'
import type { GrpcRequest } from '../grpc/request.js'
import type { TokenSource } from './token-provider.js'

/** How a token is sent. */
export interface BearerOptions {
  /** The header (metadata key) that carries it, lower-case. Default `authorization`. */
  readonly header: string
  /** The scheme written before the token (`Bearer <token>`); `''` sends the token alone. Default `Bearer`. */
  readonly scheme: string
}

/** The sending options of a service's `auth` (absent: the defaults, `authorization: Bearer <token>`). */
export function bearerOptions(
  auth: { readonly header: string; readonly scheme: string } | undefined,
): BearerOptions {
  return auth === undefined ? DEFAULT_BEARER : { header: auth.header, scheme: auth.scheme }
}

const DEFAULT_BEARER: BearerOptions = Object.freeze({ header: 'authorization', scheme: 'Bearer' })

/** Wraps an HTTP transport so that each attempt carries the token of `tokens`. */
export function httpBearer(
  transport: Handler<HttpRequest, Response>,
  tokens: TokenSource,
  options: BearerOptions,
): Handler<HttpRequest, Response> {
  const { header, scheme } = options
  const prefix = scheme === '' ? '' : `${scheme} `
  const send = (req: HttpRequest, ctx: Context, token: string): Promise<Response> => {
    // The attempt was cancelled (its limit passed, the caller aborted) while the token came.
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    return transport(withHeader(req, header, prefix + token), ctx)
  }
  return function bearerToken(req, ctx) {
    if (hasHeader(req.init.headers, header)) return transport(req, ctx)
    const token = tokens.current()
    if (token !== undefined) return send(req, ctx, token)
    return tokens.get().then((t) => send(req, ctx, t))
  }
}

/** Wraps a gRPC transport so that each attempt carries the token of `tokens` in its metadata. */
export function grpcBearer(
  transport: Handler<GrpcRequest, GrpcResponseLike>,
  tokens: TokenSource,
  options: BearerOptions,
): Handler<GrpcRequest, GrpcResponseLike> {
  const { header, scheme } = options
  const prefix = scheme === '' ? '' : `${scheme} `
  const send = (req: GrpcRequest, ctx: Context, token: string) => {
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    return transport({ ...req, bearer: [header, prefix + token] }, ctx)
  }
  return function bearerToken(req, ctx) {
    if (req.io.metadata.get(header).length > 0) return transport(req, ctx)
    const token = tokens.current()
    if (token !== undefined) return send(req, ctx, token)
    return tokens.get().then((t) => send(req, ctx, t))
  }
}

// The transport's answer type is not needed here; only the request is changed.
type GrpcResponseLike = unknown

/** Whether `headers` (any form fetch accepts) has `name` (lower-case). */
export function hasHeader(headers: HeadersInit | undefined, name: string): boolean {
  if (headers === undefined || headers === null) return false
  if (headers instanceof Headers) return headers.has(name)
  if (Array.isArray(headers)) {
    for (const pair of headers) if (typeof pair[0] === 'string' && pair[0].toLowerCase() === name) return true
    return false
  }
  if (
    typeof headers === 'object' &&
    typeof (headers as unknown as Iterable<unknown>)[Symbol.iterator] !== 'function'
  ) {
    for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return true
    return false
  }
  // Another iterable: fetch's own reading decides.
  return new Headers(headers).has(name)
}

/**
 * `req` with `name: value` added to its headers, in the form the caller used: a plain record
 * stays a plain record (so the direct path still sends it as fetch would, the new header last,
 * where fetch puts it), any other form becomes `Headers`. The caller's objects are not changed.
 */
function withHeader(req: HttpRequest, name: string, value: string): HttpRequest {
  const given = req.init.headers
  let headers: HeadersInit
  if (given === undefined || given === null) {
    headers = { [name]: value }
  } else if (
    typeof given === 'object' &&
    !(given instanceof Headers) &&
    !Array.isArray(given) &&
    (Object.getPrototypeOf(given) === Object.prototype || Object.getPrototypeOf(given) === null)
  ) {
    const copy: Record<string, string> = Object.create(Object.getPrototypeOf(given))
    // Own properties as they are (an own `__proto__` key stays a key, never a prototype).
    for (const key of Reflect.ownKeys(given)) {
      const d = Object.getOwnPropertyDescriptor(given, key)
      if (d !== undefined) Object.defineProperty(copy, key, d)
    }
    Object.defineProperty(copy, name, { value, enumerable: true, writable: true, configurable: true })
    headers = copy
  } else {
    const h = new Headers(given)
    h.set(name, value)
    headers = h
  }
  return { ...req, init: { ...req.init, headers } }
}
