/**
 * A gRPC call as the pipeline sees it: which service (from the client's target), which method
 * (`/pkg.Service/Method`, for routers), the caller's metadata, and the call's shape. Messages
 * travel serialized (`Buffer`s), below grpc-js's (de)serializing layer, so an attempt can be
 * sent again to another endpoint byte for byte.
 */
import type { GrpcMessageContext, GrpcMetadata, GrpcRawCall, GrpcStatusObject } from './grpc-types.js'

/** The four shapes of a gRPC method. */
export type GrpcMethodKind = 'unary' | 'server-stream' | 'client-stream' | 'bidi'

/** The shape of a method from its definition's `requestStream` / `responseStream`. */
export function methodKind(requestStream: boolean, responseStream: boolean): GrpcMethodKind {
  if (requestStream) return responseStream ? 'bidi' : 'client-stream'
  return responseStream ? 'server-stream' : 'unary'
}

/**
 * What the transport needs of the caller's side of a call (implemented by the adapter's call;
 * not part of the routing contract).
 * @internal
 */
export interface GrpcCallIo {
  /** The metadata the caller sent (after its interceptors). */
  readonly metadata: GrpcMetadata
  /** The one request message of a unary or server-streaming call, once sent. */
  readonly message: Buffer | undefined
  /** Call credentials set on the call (`CallOptions.credentials`). */
  readonly credentials: object | undefined
  /** The server call to propagate from (`CallOptions.parent`), or `null`. */
  readonly parent: unknown
  /** `CallOptions.propagate_flags`. */
  readonly propagateFlags: number | null | undefined
  /** `CallOptions.host`: the `:authority` override. */
  readonly host: string | null | undefined
  /**
   * A streaming attempt began: its writes and reads are connected to the caller's from now on
   * (writes queued so far are flushed into it).
   */
  attach(raw: GrpcRawCall): void
  /** Response headers of the committed streaming attempt. */
  deliverMetadata(metadata: GrpcMetadata): void
  /** A response message of the committed streaming attempt. */
  deliverMessage(message: Buffer): void
  /** The final status of the committed streaming attempt. */
  deliverStatus(status: GrpcStatusObject): void
}

/** A gRPC call going through the mesh. */
export interface GrpcRequest {
  /** The meshlet service, named by the host of the client's target (`dns:///users:50051` -> `users`). */
  readonly service: string
  /** The full method name, `/pkg.Service/Method`: what a route matches on. */
  readonly path: string
  /** The shape of the method. */
  readonly kind: GrpcMethodKind
  /** The caller's metadata (read it; a route can match on it). */
  readonly metadata: GrpcMetadata
  /** @internal The caller's side of the call. */
  readonly io: GrpcCallIo
  /**
   * Whether a unary attempt may send `grpc-timeout` (`false` when the service's
   * `propagateDeadline` is `false`; absent means `true`). A deadline that is the mesh's own
   * timeout alone (`ctx.localDeadline`) is not sent either. Streaming attempts always send it:
   * grpc-js enforces their deadline.
   */
  readonly propagateDeadline?: boolean
  /**
   * @internal A metadata entry each attempt adds (`[key, value]`): the service's bearer token
   * (adapters/identity/bearer.ts). Unset for services without `auth`.
   */
  readonly bearer?: readonly [string, string] | undefined
}

/** What one attempt produced. */
export interface GrpcResponse {
  /**
   * The final status, OK or not (a non-OK status is an answer, not an error, as an HTTP 503
   * is for fetch). `undefined` when a streaming call committed: it then runs outside the
   * pipeline and its status goes straight to the caller.
   */
  readonly status: GrpcStatusObject | undefined
  /** The response headers; `undefined` for a trailers-only answer. */
  readonly headers: GrpcMetadata | undefined
  /** The serialized response of a unary-response call, when one came. */
  readonly message: Buffer | undefined
  /**
   * Whether the call is committed (gRFC A6): the server sent headers or a message, which the
   * caller may have seen, so the call is never tried again.
   */
  readonly committed: boolean
  /** The attempt that produced it: 0 for the first (`grpc-previous-rpc-attempts`). */
  readonly attempt: number
  /** The peer the attempt went to (`host:port`). */
  readonly peer: string
}

/** A message queued until a streaming attempt begins. */
export interface QueuedWrite {
  readonly context: GrpcMessageContext
  readonly message: Buffer
}

/**
 * The service a grpc-js target names: the host of a `dns:` target (`users`, `dns:users:50051`,
 * `dns:///users:50051`, `dns://8.8.8.8/users`), lower-cased, without port or brackets.
 * `undefined` for the targets that address sockets directly (`ipv4:`, `ipv6:`, `unix:`,
 * `unix-abstract:`, `vsock:`), which never name a service.
 */
export function serviceOfTarget(target: string): string | undefined {
  let rest = target
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):(?!\d+$)/.exec(rest)
  if (scheme) {
    const name = scheme[1]!.toLowerCase()
    if (name !== 'dns') return undefined
    rest = rest.slice(scheme[0].length)
  }
  if (rest.startsWith('//')) {
    const slash = rest.indexOf('/', 2)
    if (slash < 0) return undefined
    rest = rest.slice(slash + 1)
  }
  if (rest.startsWith('[')) return undefined // an IPv6 literal never names a service
  const colon = rest.indexOf(':')
  const host = (colon >= 0 ? rest.slice(0, colon) : rest).toLowerCase()
  return host === '' ? undefined : host
}
