/**
 * The gRPC transport: sends one attempt on the channel of the endpoint the balancer chose.
 *
 * Two modes, after gRFC A6's commit rule ("an RPC becomes committed when the client receives
 * response headers"):
 * - unary calls are buffered: the attempt resolves at its status with headers, message and
 *   status, so retry and hedging can still choose which attempt the caller sees (A6 also delays
 *   what the application sees until an attempt commits).
 * - streaming calls are passed through: the attempt resolves as soon as it commits (headers or a
 *   first message), and from then on messages and the final status go straight to the caller,
 *   outside the pipeline. Before that, a failure is an ordinary answer the retry stage may
 *   retry (server streaming) or not (client and bidi streaming, whose requests are not replayable).
 *
 * Every attempt carries the call's deadline as its gRPC deadline (`grpc-timeout` on the wire),
 * and `grpc-previous-rpc-attempts` on retries and hedges. Cancelling the attempt's context (the
 * deadline, a lost hedge, the caller, a forced close) cancels the HTTP/2 stream at once.
 */
import type { Context } from '../../core/context.js'
import type { Handler } from '../../core/handler.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
import type { GrpcChannelEntry, GrpcChannelPool } from './channels.js'
import type { GrpcMetadata, GrpcRawCall, GrpcStatusObject } from './grpc-types.js'
import { PREVIOUS_ATTEMPTS_KEY } from './protocol.js'
import type { GrpcRequest, GrpcResponse } from './request.js'
import { GrpcStatus } from './status.js'

/** The gRPC deadline of an attempt: the context's deadline as a wall-clock `Date`, or `Infinity`. */
export function grpcDeadline(ctx: Context): Date | number {
  if (ctx.deadline === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY
  return new Date(ctx.clock.wall() + (ctx.deadline - ctx.clock.now()))
}

/** `metadata` with `grpc-previous-rpc-attempts: attempt` when `attempt > 0` (a copy; the original is the caller's). */
export function withPreviousAttempts(metadata: GrpcMetadata, attempt: number): GrpcMetadata {
  if (attempt <= 0) return metadata
  const copy = metadata.clone()
  copy.set(PREVIOUS_ATTEMPTS_KEY, String(attempt))
  return copy
}

/** Sends each attempt on `pool`'s channel to the chosen endpoint; see the module comment. */
export function grpcTransport(pool: GrpcChannelPool): Handler<GrpcRequest, GrpcResponse> {
  return function grpcAttempt(req, ctx) {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint === undefined)
      return Promise.reject(new Error('meshlet: no endpoint chosen for this attempt'))
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    let taken: GrpcChannelEntry | Promise<GrpcChannelEntry>
    try {
      taken = pool.acquire(endpoint.address)
    } catch (error) {
      return Promise.reject(error)
    }
    if (taken instanceof Promise) {
      return taken.then((entry) => {
        if (!ctx.cancel.aborted) return attempt(pool, entry, req, ctx)
        pool.release(entry)
        throw ctx.cancel.reason
      })
    }
    return attempt(pool, taken, req, ctx)
  }
}

function attempt(
  pool: GrpcChannelPool,
  entry: GrpcChannelEntry,
  req: GrpcRequest,
  ctx: Context,
): Promise<GrpcResponse> {
  const io = req.io
  const n = ctx.attempt
  const streaming = req.kind !== 'unary'
  let raw: GrpcRawCall
  try {
    raw = entry.channel.createCall(req.path, grpcDeadline(ctx), io.host, io.parent, io.propagateFlags)
    if (io.credentials !== undefined) raw.setCredentials(io.credentials)
  } catch (error) {
    pool.release(entry)
    // A channel shut down under the call (its endpoint just left the config): the request never
    // left, which A6 calls safe to retry.
    return Promise.resolve(unsent(String(error instanceof Error ? error.message : error), n, io.metadata))
  }
  return new Promise<GrpcResponse>((resolve, reject) => {
    let settled = false
    let headers: GrpcMetadata | undefined
    let message: Buffer | undefined
    let committed = false
    const off = ctx.cancel.onAbort((reason) => {
      if (settled) return
      settled = true
      raw.cancelWithStatus(GrpcStatus.CANCELLED, 'Cancelled by meshlet')
      reject(reason)
    })
    const settle = (response: GrpcResponse) => {
      if (settled) return
      settled = true
      off()
      resolve(response)
    }
    const peer = () => safePeer(raw)

    raw.start(withPreviousAttempts(io.metadata, n), {
      onReceiveMetadata(metadata) {
        headers = metadata
        if (!streaming) return
        commit()
        io.deliverMetadata(withPreviousAttempts(metadata, n))
      },
      onReceiveMessage(msg: Buffer) {
        if (!streaming) {
          message = msg
          return
        }
        commit()
        io.deliverMessage(msg)
      },
      onReceiveStatus(status) {
        pool.release(entry)
        if (streaming && committed) {
          io.deliverStatus(headers === undefined ? withAttemptsStatus(status, n) : status)
          return
        }
        settle({
          status: headers === undefined ? withAttemptsStatus(status, n) : status,
          headers: headers === undefined ? undefined : withPreviousAttempts(headers, n),
          message,
          committed: headers !== undefined,
          attempt: n,
          peer: peer(),
        })
      },
    })

    function commit(): void {
      if (committed) return
      committed = true
      settle({ status: undefined, headers, message: undefined, committed: true, attempt: n, peer: peer() })
    }

    if (streaming) io.attach(raw)
    if (req.kind === 'unary' || req.kind === 'server-stream') {
      const msg = io.message
      if (msg !== undefined) raw.sendMessageWithContext({}, msg)
      raw.halfClose()
    }
    if (!streaming) raw.startRead()
  })
}

/** The status with `grpc-previous-rpc-attempts` in its metadata (grpc-js does this for trailers-only answers). */
function withAttemptsStatus(status: GrpcStatusObject, attempt: number): GrpcStatusObject {
  if (attempt <= 0) return status
  return { ...status, metadata: withPreviousAttempts(status.metadata, attempt) }
}

function unsent(details: string, attempt: number, like: GrpcMetadata): GrpcResponse {
  return {
    status: { code: GrpcStatus.UNAVAILABLE, details, metadata: emptyLike(like) },
    headers: undefined,
    message: undefined,
    committed: false,
    attempt,
    peer: 'unknown',
  }
}

/** An empty metadata object of the caller's grpc-js (its class, so `instanceof` holds for the caller). */
export function emptyLike(metadata: GrpcMetadata): GrpcMetadata {
  const Ctor = (metadata as unknown as { constructor: new () => GrpcMetadata }).constructor
  return new Ctor()
}

function safePeer(raw: GrpcRawCall): string {
  try {
    return raw.getPeer()
  } catch {
    return 'unknown'
  }
}
