/**
 * The caller's side of a meshed gRPC call: a grpc-js `Call` (the object a channel's
 * `createCall` returns) that runs the mesh pipeline instead of one HTTP/2 stream.
 *
 * grpc-js's client builds its call objects (`ClientUnaryCall`, the streams), runs the caller's
 * interceptors and (de)serializes messages above this object, so the wrapped client keeps every
 * grpc-js behaviour: its overloads, events, errors and flow control. This object only sees
 * bytes and status: it starts the pipeline when the request is known (at `halfClose` for a
 * unary request, at `start` for a streaming one), queues the caller's writes until a streaming
 * attempt begins, and reports exactly one final status.
 */
import type { Cancellation } from '../../core/cancel.js'
import type {
  GrpcCallListener,
  GrpcMessageContext,
  GrpcMetadata,
  GrpcRawCall,
  GrpcStatusObject,
} from './grpc-types.js'
import type { GrpcCallIo, GrpcMethodKind, GrpcResponse, QueuedWrite } from './request.js'
import { statusOfError } from './status.js'
import { cancelCall, emptyLike } from './transport.js'

/**
 * What runs a {@link MeshCall}'s request through the mesh: one per wrapped client, shared by all
 * its calls (so that a call carries no closures of its own).
 */
export interface MeshCallSite {
  /**
   * Runs `call`'s request (its metadata is known, and its message for a unary request) through
   * the mesh, and tells the call how it ended with {@link MeshCall.resolved} or
   * {@link MeshCall.rejected}, on a later microtask (never from inside `invoke`). `scope` is
   * what the call was created with (the configuration it started on). The pipeline hands the
   * call its cancellation with {@link MeshCall.bindCancel}.
   */
  invoke(call: MeshCall, scope: unknown): void
  /**
   * Called at `start`, once the metadata is known: a call on the client's own channel when this
   * call is to pass the mesh by after all (no route matched a target that names no service, in a
   * mesh that is not strict), else `undefined`. The site may leave what it decided on the call
   * ({@link MeshCall.routed}) for {@link invoke}.
   */
  bypass?(call: MeshCall, scope: unknown): GrpcRawCall | undefined
  /**
   * Called when a streaming call commits (its stream now runs outside the pipeline, until its
   * status): `cancel(reason)` ends it with the reason's status (the mesh calls it on a forced
   * close). Returns what to call when the stream has ended.
   */
  committed?(call: MeshCall, cancel: (reason: unknown) => void): () => void
}

/** The reason a caller's cancellation carries through the pipeline (`AbortError`: classified `ignored`). */
class CallCancelledError extends Error {
  constructor(details: string) {
    super(details)
    this.name = 'AbortError'
  }
}

const HALF_CLOSE = 'half-close'

let callNumbers = 0

/** A meshed call; see the module comment. */
export class MeshCall implements GrpcRawCall, GrpcCallIo {
  readonly #site: MeshCallSite
  readonly #scope: unknown
  /** The full method name, `/pkg.Service/Method`. */
  readonly path: string
  /** The shape of the method. */
  readonly kind: GrpcMethodKind
  /** The caller's own deadline (`CallOptions.deadline`), `Infinity` when none. */
  readonly deadline: Date | number
  readonly #host: string | null | undefined
  readonly #parent: unknown
  readonly #propagateFlags: number | null | undefined
  readonly #number = ++callNumbers
  #listener: GrpcCallListener | undefined = undefined
  #metadata: GrpcMetadata | undefined = undefined
  #message: Buffer | undefined = undefined
  #credentials: object | undefined = undefined
  /** Writes (and the half-close) of a streaming request before its attempt began; made on first need. */
  #queue: (QueuedWrite | typeof HALF_CLOSE)[] | undefined = undefined
  #raw: GrpcRawCall | undefined = undefined
  #committed = false
  #readPending = false
  #started = false
  #done = false
  #cancel: Cancellation | undefined = undefined
  /** The answer the call ended with (its peer is read from it only when asked for). */
  #response: GrpcResponse | undefined = undefined
  /** Whether the call went to the client's own channel at `start` (see {@link MeshCallSite.bypass}). */
  #bypassed = false
  /** What the site decided at `start` (the route), for its `invoke`; the site's own value. */
  routed: unknown = undefined
  /** The status of a cancellation that came before `start`, delivered at `start`. */
  #early: { code: number; details: string } | undefined = undefined
  /** Ends the hold of a committed stream (see {@link MeshCallSite.committed}). */
  #unhold: (() => void) | undefined = undefined

  constructor(
    site: MeshCallSite,
    scope: unknown,
    path: string,
    kind: GrpcMethodKind,
    deadline: Date | number,
    host: string | null | undefined,
    parent: unknown,
    propagateFlags: number | null | undefined,
  ) {
    this.#site = site
    this.#scope = scope
    this.path = path
    this.kind = kind
    this.deadline = deadline
    this.#host = host
    this.#parent = parent
    this.#propagateFlags = propagateFlags
  }

  // GrpcCallIo: read by the transport.
  get metadata(): GrpcMetadata {
    return this.#metadata!
  }
  get message(): Buffer | undefined {
    return this.#message
  }
  get credentials(): object | undefined {
    return this.#credentials
  }
  get parent(): unknown {
    return this.#parent
  }
  get propagateFlags(): number | null | undefined {
    return this.#propagateFlags
  }
  get host(): string | null | undefined {
    return this.#host
  }

  /** Whether the request is one message (unary and server streaming). */
  get #unaryRequest(): boolean {
    return this.kind === 'unary' || this.kind === 'server-stream'
  }

  /** The pipeline's cancellation of this call: the caller's `cancel()` aborts it. */
  bindCancel(cancel: Cancellation): void {
    this.#cancel = cancel
    // Cancelled between its start and the pipeline's: no attempt may begin (D38).
    if (this.#done) cancel.abort(new CallCancelledError('Cancelled on client'))
  }

  start(metadata: GrpcMetadata, listener: GrpcCallListener): void {
    this.#metadata = metadata
    this.#listener = listener
    if (this.#done) {
      // Cancelled before it started (an interceptor may pass a cancel on first): never sent.
      const early = this.#early
      if (early !== undefined) {
        queueMicrotask(() => listener.onReceiveStatus({ ...early, metadata: emptyLike(metadata) }))
      }
      return
    }
    const raw = this.#site.bypass?.(this, this.#scope)
    if (raw !== undefined) {
      // From here on a plain pass-through to a call of the client's own channel.
      this.#bypassed = true
      this.#committed = true
      this.#raw = raw
      if (this.#credentials !== undefined) raw.setCredentials(this.#credentials)
      raw.start(metadata, listener)
      return
    }
    if (!this.#unaryRequest) this.#begin()
  }

  sendMessageWithContext(context: GrpcMessageContext, message: Buffer): void {
    if (this.#bypassed) {
      this.#raw!.sendMessageWithContext(context, message)
      return
    }
    if (this.#done) {
      context.callback?.()
      return
    }
    if (this.#unaryRequest) {
      this.#message = message
      const callback = context.callback
      if (callback) queueMicrotask(() => callback())
      return
    }
    if (this.#raw) this.#raw.sendMessageWithContext(context, message)
    else this.#enqueue({ context, message })
  }

  halfClose(): void {
    if (this.#bypassed) this.#raw!.halfClose()
    else if (this.#unaryRequest) this.#begin()
    else if (this.#raw) this.#raw.halfClose()
    else this.#enqueue(HALF_CLOSE)
  }

  /** Keeps a write (or the half-close) for the streaming attempt to come. */
  #enqueue(op: QueuedWrite | typeof HALF_CLOSE): void {
    if (this.#queue === undefined) this.#queue = [op]
    else this.#queue.push(op)
  }

  startRead(): void {
    if (this.#bypassed) {
      this.#raw!.startRead()
      return
    }
    // A unary call's attempt reads its one message itself.
    if (this.kind === 'unary') return
    this.#readPending = true
    this.#raw?.startRead()
  }

  cancelWithStatus(status: number, details: string): void {
    if (this.#done) return
    if (this.#committed && this.#raw) {
      // The stream runs outside the pipeline now: its own status will report the cancellation.
      cancelCall(this.#raw, status, details)
      return
    }
    this.#done = true
    this.#cancel?.abort(new CallCancelledError(details))
    this.#releaseWrites()
    const listener = this.#listener
    const metadata = this.#metadata
    if (listener && metadata) {
      queueMicrotask(() => listener.onReceiveStatus({ code: status, details, metadata: emptyLike(metadata) }))
    } else {
      this.#early = { code: status, details }
    }
  }

  getPeer(): string {
    if (this.#raw) {
      try {
        return this.#raw.getPeer()
      } catch {
        return this.#response?.peer ?? 'unknown'
      }
    }
    return this.#response?.peer ?? 'unknown'
  }

  getCallNumber(): number {
    return this.#number
  }

  setCredentials(credentials: object): void {
    this.#credentials = credentials
  }

  getAuthContext(): object | null {
    return this.#raw?.getAuthContext() ?? null
  }

  attach(raw: GrpcRawCall): void {
    this.#raw = raw
    const queue = this.#queue
    this.#queue = undefined
    if (queue !== undefined) {
      for (const op of queue) {
        if (op === HALF_CLOSE) raw.halfClose()
        else raw.sendMessageWithContext(op.context, op.message)
      }
    }
    if (this.#readPending) raw.startRead()
  }

  deliverMetadata(metadata: GrpcMetadata): void {
    if (this.#done) return
    this.#committed = true
    this.#listener?.onReceiveMetadata(metadata)
  }

  deliverMessage(message: Buffer): void {
    if (this.#done) return
    this.#committed = true
    this.#readPending = false
    this.#listener?.onReceiveMessage(message)
  }

  deliverStatus(status: GrpcStatusObject): void {
    if (this.#done) return
    this.#done = true
    this.#unhold?.()
    this.#unhold = undefined
    this.#releaseWrites()
    this.#listener?.onReceiveStatus(status)
  }

  #begin(): void {
    // A call cancelled before its request was complete is never sent.
    if (this.#started || this.#done) return
    this.#started = true
    this.#site.invoke(this, this.#scope)
  }

  /** @internal The pipeline's answer (see {@link MeshCallSite.invoke}). */
  resolved(res: GrpcResponse): void {
    if (this.#done) return
    this.#response = res
    // A committed stream reports its own status through deliverStatus; until then the mesh
    // holds it, so that a forced close ends it.
    const status = res.status
    if (status === undefined) {
      this.#unhold = this.#site.committed?.(this, (reason) => this.#end(reason))
      return
    }
    this.#done = true
    this.#releaseWrites()
    const listener = this.#listener!
    // The caller's listener runs outside the promise chain (see `report`).
    try {
      if (res.headers !== undefined) listener.onReceiveMetadata(res.headers)
      if (res.message !== undefined) listener.onReceiveMessage(res.message)
      listener.onReceiveStatus(status)
    } catch (error) {
      rethrow(error)
    }
  }

  /** Ends a committed stream with `reason`'s status (the stream then reports it as its own). */
  #end(reason: unknown): void {
    const s = statusOfError(reason)
    if (this.#raw !== undefined) cancelCall(this.#raw, s.code, s.details)
  }

  /** @internal The pipeline failed (see {@link MeshCallSite.invoke}). */
  rejected(error: unknown): void {
    if (this.#done) return
    this.#done = true
    this.#releaseWrites()
    const s = statusOfError(error)
    const status: GrpcStatusObject & { meshCode?: string; cause: unknown } = {
      code: s.code,
      details: s.details,
      metadata: emptyLike(this.#metadata!),
      cause: s.cause,
    }
    if (s.meshCode !== undefined) status.meshCode = s.meshCode
    const listener = this.#listener!
    report(() => listener.onReceiveStatus(status))
  }

  /** Writes that will never be sent complete, so a writer waiting on them is not stuck. */
  #releaseWrites(): void {
    const queue = this.#queue
    if (queue === undefined) return
    this.#queue = undefined
    for (const op of queue) if (op !== HALF_CLOSE) op.context.callback?.()
  }
}

/**
 * Runs the caller's listener outside the promise chain: an exception thrown by application code
 * (its callback) surfaces as an uncaught exception, as it would from grpc-js, rather than as an
 * unhandled rejection that points into meshlet.
 */
function report(fn: () => void): void {
  try {
    fn()
  } catch (error) {
    rethrow(error)
  }
}

/** Throws `error` from a microtask of its own: an uncaught exception, not a rejection. */
function rethrow(error: unknown): void {
  queueMicrotask(() => {
    throw error
  })
}
