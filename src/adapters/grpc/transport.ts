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
 * Every attempt carries the call's deadline to the server (`grpc-timeout` on the wire), unless
 * it is the mesh's own timeout alone or the service sets `propagateDeadline: false` (D27), and
 * `grpc-previous-rpc-attempts` on retries and hedges. Cancelling the attempt's context (the
 * deadline, a lost hedge, the caller, a forced close) cancels the HTTP/2 stream at once.
 *
 * How the deadline travels: a unary attempt writes `grpc-timeout` into its metadata and opens
 * the grpc-js call without a deadline, because the attempt timeout stage already holds a timer
 * at that deadline and cancels the attempt when it fires; handing grpc-js the deadline too would
 * arm a second timer per call (and its clock reads) for the same instant (docs/decisions.md). A
 * streaming attempt, a call with a `parent` (grpc-js takes the parent's deadline when earlier)
 * and channels with a `grpc.service_config` (which may add a method timeout) give grpc-js the
 * deadline as before: a committed stream runs past the pipeline, so only grpc-js can end it.
 */
import type { Cancellation } from '../../core/cancel.js'
import type { Context } from '../../core/context.js'
import { type Handler, settlesOnCancel } from '../../core/handler.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
import type { GrpcChannelEntry, GrpcChannelPool } from './channels.js'
import type {
  GrpcCallListener,
  GrpcMessageContext,
  GrpcMetadata,
  GrpcRawCall,
  GrpcStatusObject,
} from './grpc-types.js'
import { PREVIOUS_ATTEMPTS_KEY } from './protocol.js'
import type { GrpcCallIo, GrpcRequest, GrpcResponse } from './request.js'
import { GrpcStatus } from './status.js'

/** The gRPC deadline of an attempt: the context's deadline as a wall-clock `Date`, or `Infinity`. */
export function grpcDeadline(ctx: Context): Date | number {
  if (ctx.deadline === Number.POSITIVE_INFINITY) return Number.POSITIVE_INFINITY
  return new Date(ctx.clock.wall() + (ctx.deadline - ctx.clock.now()))
}

/** The metadata key of the gRPC deadline on the wire (the time left, `<digits><unit>`). */
export const GRPC_TIMEOUT_KEY = 'grpc-timeout'

/**
 * The `grpc-timeout` value for `ms` milliseconds left, as grpc-js writes it: rounded up, in the
 * finest unit that fits the protocol's 8 digits (`'1500m'`, `'100000S'`); `0m` when none is
 * left; `undefined` beyond what the header can say (about 11,000 years, which grpc-js refuses).
 */
export function grpcTimeout(ms: number): string | undefined {
  const t = Math.max(ms, 0)
  // Rounded up less a float's rounding error: `(start + 3000) - start` may be a hair above 3000.
  const up = (x: number) => Math.ceil(x - 1e-6)
  if (t < 1e8) return `${up(t)}m`
  if (t < 1e11) return `${up(t / 1000)}S`
  if (t < 6e12) return `${up(t / 60_000)}M`
  if (t < 3.6e14) return `${up(t / 3_600_000)}H`
  return undefined
}

/** `metadata` with `grpc-previous-rpc-attempts: attempt` when `attempt > 0` (a copy; the original is the caller's). */
export function withPreviousAttempts(metadata: GrpcMetadata, attempt: number): GrpcMetadata {
  if (attempt <= 0) return metadata
  const copy = metadata.clone()
  copy.set(PREVIOUS_ATTEMPTS_KEY, String(attempt))
  return copy
}

/** Options of {@link grpcTransport}. */
export interface GrpcTransportOptions {
  /**
   * Whether a unary attempt may carry its deadline as `grpc-timeout` metadata and leave grpc-js
   * without a deadline of its own (the attempt timeout stage, which always runs before the
   * transport when the call has a deadline, cancels it at the deadline). Default `true`. Set it
   * to `false` when grpc-js may impose a deadline of its own on the endpoint channels (a
   * `grpc.service_config` channel option with a method `timeout`): grpc-js would then overwrite
   * the header with its own deadline, which may be the later one.
   */
  readonly deadlineAsMetadata?: boolean
}

/** Sends each attempt on `pool`'s channel to the chosen endpoint; see the module comment. */
export function grpcTransport(
  pool: GrpcChannelPool,
  options: GrpcTransportOptions = {},
): Handler<GrpcRequest, GrpcResponse> {
  const deadlineAsMetadata = options.deadlineAsMetadata ?? true
  // An attempt rejects with the reason as soon as it is cancelled (`AttemptListener.abort`).
  return settlesOnCancel(function grpcAttempt(req, ctx) {
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
      // grpc-js is still loading (the first call): a cancellation rejects at once all the same.
      return new Promise<GrpcResponse>((resolve, reject) => {
        const off = ctx.cancel.onAbort(reject)
        taken.then(
          (entry) => {
            off()
            if (ctx.cancel.aborted) pool.release(entry)
            // It waited for grpc-js: the time left is counted from now.
            else attempt(pool, entry, req, ctx.restarted(), deadlineAsMetadata).then(resolve, reject)
          },
          (error: unknown) => {
            off()
            reject(error)
          },
        )
      })
    }
    return attempt(pool, taken, req, ctx, deadlineAsMetadata)
  })
}

/** The write context of the one request message of an attempt (grpc-js only reads it). */
const NO_CONTEXT: GrpcMessageContext = Object.freeze({})

function attempt(
  pool: GrpcChannelPool,
  entry: GrpcChannelEntry,
  req: GrpcRequest,
  ctx: Context,
  deadlineAsMetadata: boolean,
): Promise<GrpcResponse> {
  const io = req.io
  const n = ctx.attempt
  const kind = req.kind
  let raw: GrpcRawCall
  let metadata = withPreviousAttempts(io.metadata, n)
  try {
    let deadline: Date | number = Number.POSITIVE_INFINITY
    if (ctx.deadline !== Number.POSITIVE_INFINITY) {
      // A unary attempt ends inside the attempt timeout stage, whose timer cancels it at the
      // deadline: grpc-js need not arm a timer of its own, only tell the server (the same
      // `grpc-timeout` it would send). A streaming attempt outlives the pipeline once committed,
      // and a parent call may shorten the deadline (grpc-js takes the earlier): those keep
      // grpc-js's deadline.
      // With `propagateDeadline: false`, or a deadline that is the mesh's own timeout alone
      // (`ctx.localDeadline`, D27), a unary attempt sends none: meshlet's timer alone ends it.
      const own = deadlineAsMetadata && kind === 'unary' && io.parent == null
      const send = req.propagateDeadline !== false && !ctx.localDeadline
      const header = own && send ? grpcTimeout(ctx.deadline - ctx.startedAt) : undefined
      if (!own || (header === undefined && send)) deadline = grpcDeadline(ctx)
      else if (header !== undefined) {
        if (metadata === io.metadata) metadata = metadata.clone()
        metadata.set(GRPC_TIMEOUT_KEY, header)
      }
    }
    const bearer = req.bearer
    if (bearer !== undefined) {
      if (metadata === io.metadata) metadata = metadata.clone()
      metadata.set(bearer[0], bearer[1])
    }
    raw = entry.channel.createCall(req.path, deadline, io.host, io.parent, io.propagateFlags)
    if (io.credentials !== undefined) raw.setCredentials(io.credentials)
  } catch (error) {
    pool.release(entry)
    // A channel shut down under the call (its endpoint just left the config): the request never
    // left, which A6 calls safe to retry.
    return Promise.resolve(unsent(String(error instanceof Error ? error.message : error), n, io.metadata))
  }
  const run = new AttemptListener(pool, entry, io, raw, n, kind !== 'unary', ctx.cancel)
  return new Promise<GrpcResponse>((resolve, reject) => {
    run.resolve = resolve
    run.reject = reject
    run.listen()
    if (run.settled) return
    // A streaming attempt starts on a later microtask: a caller that cancels the stream right
    // after opening it (grpc's cancel_after_begin) cancels an attempt never started, which
    // never reaches the server (D38). Unary calls start at once (the hot path).
    if (kind === 'unary') run.begin(metadata, true)
    else queueMicrotask(() => run.begin(metadata, kind === 'server-stream'))
  })
}

/**
 * Cancels a grpc-js call, closing a race of grpc-js's `ResolvingCall` (D38): cancelled after
 * `start` but before its metadata filters resolved, it reports CANCELLED and yet creates and
 * starts its child call a few microtasks later, which then reaches the server and stays open
 * until its deadline. When the call has no child yet, the child it makes is cancelled too, once
 * the microtasks that make it have run.
 */
export function cancelCall(raw: GrpcRawCall, code: number, details: string): void {
  raw.cancelWithStatus(code, details)
  const pending = raw as unknown as { child?: GrpcRawCall | null; getConfig?: unknown }
  if (pending.child === null && typeof pending.getConfig === 'function') {
    setImmediate(() => pending.child?.cancelWithStatus(code, details))
  }
}

/**
 * One attempt in flight: grpc-js's listener of its call, and the settling of its promise. A class
 * rather than closures, as every call makes one.
 */
class AttemptListener implements GrpcCallListener {
  resolve: (response: GrpcResponse) => void = noop
  reject: (reason: unknown) => void = noop
  /** Its listener on the attempt's token, while it listens. */
  #onAbort: ((reason: unknown) => void) | undefined = undefined
  settled = false
  started = false
  #headers: GrpcMetadata | undefined = undefined
  #message: Buffer | undefined = undefined
  #committed = false

  constructor(
    readonly pool: GrpcChannelPool,
    readonly entry: GrpcChannelEntry,
    readonly io: GrpcCallIo,
    readonly raw: GrpcRawCall,
    readonly n: number,
    readonly streaming: boolean,
    readonly cancel: Cancellation,
  ) {}

  /** Starts listening to the attempt's token (an abort that already happened runs at once). */
  listen(): void {
    const onAbort = (reason: unknown) => this.abort(reason)
    this.#onAbort = onAbort
    this.cancel.listen(onAbort)
  }

  /**
   * Starts the call on its channel with `metadata`, then sends the request when it is one
   * message (`oneMessage`: unary and server streaming); unless the attempt was cancelled first
   * (then it never starts).
   */
  begin(metadata: GrpcMetadata, oneMessage: boolean): void {
    if (this.settled) return
    this.started = true
    const { raw, io } = this
    raw.start(metadata, this)
    if (this.streaming) io.attach(raw)
    if (oneMessage) {
      const msg = io.message
      if (msg !== undefined) raw.sendMessageWithContext(NO_CONTEXT, msg)
      raw.halfClose()
    }
    if (!this.streaming) raw.startRead()
  }

  /** The attempt's context was cancelled (deadline, lost hedge, caller, close): end the stream now. */
  abort(reason: unknown): void {
    if (this.settled) return
    this.settled = true
    cancelCall(this.raw, GrpcStatus.CANCELLED, 'Cancelled by meshlet')
    // A started call reports its status, which gives the channel back; one never started does not.
    if (!this.started) this.pool.release(this.entry)
    this.reject(reason)
  }

  #settle(response: GrpcResponse): void {
    if (this.settled) return
    this.settled = true
    const onAbort = this.#onAbort
    if (onAbort !== undefined) this.cancel.off(onAbort)
    this.resolve(response)
  }

  onReceiveMetadata(metadata: GrpcMetadata): void {
    this.#headers = metadata
    if (!this.streaming) return
    this.#commit()
    this.io.deliverMetadata(withPreviousAttempts(metadata, this.n))
  }

  onReceiveMessage(message: Buffer): void {
    if (!this.streaming) {
      this.#message = message
      return
    }
    this.#commit()
    this.io.deliverMessage(message)
  }

  onReceiveStatus(status: GrpcStatusObject): void {
    this.pool.release(this.entry)
    const headers = this.#headers
    const n = this.n
    if (this.streaming && this.#committed) {
      this.io.deliverStatus(headers === undefined ? withAttemptsStatus(status, n) : status)
      return
    }
    this.#settle(
      new AttemptResponse(
        headers === undefined ? withAttemptsStatus(status, n) : status,
        headers === undefined ? undefined : withPreviousAttempts(headers, n),
        this.#message,
        headers !== undefined,
        n,
        this.raw,
      ),
    )
  }

  #commit(): void {
    if (this.#committed) return
    this.#committed = true
    this.#settle(new AttemptResponse(undefined, this.#headers, undefined, true, this.n, this.raw))
  }
}

/** An attempt's answer; its peer is read from the call only when asked for. */
class AttemptResponse implements GrpcResponse {
  readonly #raw: GrpcRawCall

  constructor(
    readonly status: GrpcStatusObject | undefined,
    readonly headers: GrpcMetadata | undefined,
    readonly message: Buffer | undefined,
    readonly committed: boolean,
    readonly attempt: number,
    raw: GrpcRawCall,
  ) {
    this.#raw = raw
  }

  get peer(): string {
    return safePeer(this.#raw)
  }
}

function noop(): void {}

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
