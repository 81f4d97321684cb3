/**
 * The server side of deadline propagation: reads the time left from an inbound request's headers
 * and runs the handler inside a deadline scope, so that every meshed call it makes inherits what
 * its caller is still willing to wait (Finagle's `Deadline` context, gRPC's `grpc-timeout`).
 *
 * Three headers are understood, so that a meshlet server can sit behind a meshlet client, a gRPC
 * gateway or an Envoy sidecar alike; they are all relative times, so the hosts' clocks need not
 * agree. The deadline starts when the handler is called: the time the request spent in transit
 * is not counted, so the inherited deadline is a little later than the caller's.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { type Clock, systemClock } from '../../core/clock.js'
import {
  DEADLINE_HEADER,
  parseGrpcTimeout,
  parseTimeoutHeader,
  runWithDeadline,
} from '../../stages/deadline/propagation.js'

/** Options of {@link withInboundDeadline}. */
export interface InboundDeadlineOptions {
  /** The time source the deadline is measured on. Default the system clock (as the mesh's). */
  readonly clock?: Clock
  /**
   * The longest time in ms a caller may grant this server's outbound calls: a longer inbound
   * timeout is cut to it. It applies only when the request carried a timeout. Default
   * `Infinity` (the caller's value as is).
   */
  readonly max?: number
}

function header(headers: IncomingHttpHeaders | Headers, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined
  const value = headers[name]
  return Array.isArray(value) ? value[0] : value
}

/**
 * The timeout in ms that an inbound request carries, or `undefined` when it carries none. Read
 * in this order, the first valid one winning: `x-meshlet-timeout-ms` (meshlet's clients),
 * `grpc-timeout` (gRPC, `100m`, `5S`), `x-envoy-expected-rq-timeout-ms` (an Envoy sidecar or
 * gateway in front). A malformed value is skipped, never trusted. Accepts `node:http`'s
 * `req.headers` (lower-case keys) or a fetch `Headers`.
 */
export function inboundTimeout(headers: IncomingHttpHeaders | Headers): number | undefined {
  return (
    parseTimeoutHeader(header(headers, DEADLINE_HEADER)) ??
    parseGrpcTimeout(header(headers, 'grpc-timeout')) ??
    parseTimeoutHeader(header(headers, 'x-envoy-expected-rq-timeout-ms'))
  )
}

/**
 * Wraps a `node:http` request handler (or any handler whose first argument has `IncomingMessage`
 * -like `headers`) so that, when the request carried a timeout (see {@link inboundTimeout}), the
 * handler runs inside `runWithDeadline(timeout, ...)`: every meshed call it makes, directly or
 * after any `await`, ends no later than the caller's deadline, and passes on what is left to
 * the next hop. A request without a timeout runs the handler as is. The handler's return value
 * (a promise, for an async handler) is returned unchanged.
 *
 * @example
 * ```ts
 * import http from 'node:http'
 * import { withInboundDeadline, withMesh } from 'meshlet'
 *
 * const fetch2 = withMesh(fetch, { services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
 * http.createServer(
 *   withInboundDeadline(async (req, res) => {
 *     // Inherits the caller's deadline: fails with TIMEOUT when the caller would have given up.
 *     const r = await fetch2(`http://users/api/users/${req.url?.slice(1)}`)
 *     res.writeHead(r.status, { 'content-type': 'application/json' })
 *     res.end(await r.text())
 *   }),
 * ).listen(8080)
 * ```
 */
export function withInboundDeadline<
  Req extends { readonly headers: IncomingHttpHeaders | Headers } = IncomingMessage,
  Res = ServerResponse,
  R = void | Promise<void>,
>(handler: (req: Req, res: Res) => R, options: InboundDeadlineOptions = {}): (req: Req, res: Res) => R {
  const clock = options.clock ?? systemClock
  const max = options.max ?? Number.POSITIVE_INFINITY
  return function inboundDeadline(req, res) {
    const timeout = inboundTimeout(req.headers)
    if (timeout === undefined) return handler(req, res)
    return runWithDeadline(Math.min(timeout, max), () => handler(req, res), clock)
  }
}
