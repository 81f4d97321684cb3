/**
 * meshlet's own unary call layer: what grpc-js's `Client.makeUnaryRequest` does for a call that
 * has no interceptors, without grpc-js's interceptor machinery (decision D26).
 *
 * A meshed unary call made through grpc-js's client passes three layers before the mesh sees
 * it: `makeUnaryRequest` (arguments, call object, caller stack), `getInterceptingCall` (the
 * interceptor chain, empty or not, and the options it copies) and `BaseUnaryInterceptingCall`
 * ((de)serialization), about 13 us of CPU per call on the loopback bench besides the caller
 * stack. When neither the client nor the call has interceptors, that chain does nothing but
 * forward, so a wrapped client's unary methods run this layer instead: the same steps in the
 * same order on the same channel (the mesh channel), with one listener object.
 *
 * What stays exactly as grpc-js does it:
 * - arguments: parsed by the client's own `checkOptionalUnaryResponseArguments` (so the
 *   `Metadata` class, the overloads and the `Incorrect arguments passed` error are grpc-js's);
 * - the call: `createCall(path, deadline ?? Infinity, host, parent ?? null, propagate_flags)`,
 *   then `setCredentials`, `start`, `startRead`, the serialized message, `halfClose`;
 * - errors: `callErrorFromStatus` (`"<code> <NAME>: <details>"`, the status's fields assigned,
 *   `for call at` and the caller's stack), `No message received`, `Too many responses
 *   received`, `Request message serialization failure: ...`, `Response message parsing
 *   error: ...`;
 * - events: `metadata` when headers arrive, the callback, then `status`.
 *
 * What differs: the call object is a {@link MeshUnaryCall} (an `EventEmitter` with grpc-js's
 * `cancel`, `getPeer`, `getAuthContext` and `call`), not grpc-js's internal
 * `ClientUnaryCallImpl`; the caller stack starts at the client method rather than at
 * `makeUnaryRequest`. A call with interceptors, a client with interceptors, interceptor
 * providers or a `callInvocationTransformer` go through grpc-js's layer unchanged.
 */
import { EventEmitter } from 'node:events'
import type {
  GrpcCallListener,
  GrpcChannel,
  GrpcMetadata,
  GrpcRawCall,
  GrpcStatusObject,
} from './grpc-types.js'
import { GrpcStatus, statusName } from './status.js'
import { emptyLike } from './transport.js'

/** One unary method of a service definition (`ServiceClientConstructor.service[name]`). */
export interface UnaryMethodDefinition {
  readonly path: string
  requestSerialize(value: unknown): Buffer
  responseDeserialize(bytes: Buffer): unknown
}

/** The caller's callback of a unary method. */
type UnaryCallback = (error: Error | null, value?: unknown) => void

/** What grpc-js's `checkOptionalUnaryResponseArguments` returns. */
interface CheckedArguments {
  readonly metadata: GrpcMetadata
  readonly options: UnaryCallOptions
  readonly callback: UnaryCallback
}

/** The grpc-js `CallOptions` this layer reads. */
interface UnaryCallOptions {
  readonly deadline?: Date | number
  readonly host?: string
  readonly parent?: unknown
  readonly propagate_flags?: number
  readonly credentials?: object
  readonly interceptors?: readonly unknown[]
  readonly interceptor_providers?: readonly unknown[]
}

/** The part of a grpc-js client this layer calls. */
interface UnaryClient {
  checkOptionalUnaryResponseArguments(arg1: unknown, arg2: unknown, arg3: unknown): CheckedArguments
}

/** grpc-js's `ClientUnaryCall`: what a unary method returns (see the module comment). */
export class MeshUnaryCall extends EventEmitter {
  /** The call on the channel (grpc-js names it `call` too). */
  call: GrpcRawCall | undefined = undefined

  /** Cancels the call: it ends with `CANCELLED`, `Cancelled on client`. */
  cancel(): void {
    this.call?.cancelWithStatus(GrpcStatus.CANCELLED, 'Cancelled on client')
  }

  /** The address of the server that answered, or `'unknown'`. */
  getPeer(): string {
    return this.call?.getPeer() ?? 'unknown'
  }

  /** The TLS auth context of the call's connection, or `null`. */
  getAuthContext(): object | null {
    return this.call?.getAuthContext() ?? null
  }
}

/** The write context of the request message (grpc-js only reads it). */
const NO_CONTEXT = Object.freeze({})

/** grpc-js's `getErrorMessage`. */
function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** grpc-js's `getErrorStackString`: the stack without its first line. */
function stackOf(error: Error): string {
  return error.stack?.split('\n').slice(1).join('\n') || 'no stack trace available'
}

/** grpc-js's `callErrorFromStatus`. */
function callError(status: GrpcStatusObject, callerStack: string): Error {
  const message = `${status.code} ${statusName(status.code)}: ${status.details}`
  const error = new Error(message)
  const stack = `${error.stack}\nfor call at\n${callerStack}`
  return Object.assign(new Error(message), status, { stack })
}

/**
 * The listener of one call: `BaseInterceptingCall`'s deserialization, `BaseUnaryInterceptingCall`'s
 * missing-message rule and `makeUnaryRequest`'s listener, as one object.
 */
class UnaryListener implements GrpcCallListener {
  #response: unknown = null
  #receivedMessage = false
  #receivedStatus = false
  #readError: GrpcStatusObject | undefined = undefined
  #caller: Error | undefined

  constructor(
    readonly emitter: MeshUnaryCall,
    readonly raw: GrpcRawCall,
    readonly metadata: GrpcMetadata,
    readonly deserialize: (bytes: Buffer) => unknown,
    readonly callback: UnaryCallback,
    caller: Error,
  ) {
    this.#caller = caller
  }

  onReceiveMetadata(metadata: GrpcMetadata): void {
    this.emitter.emit('metadata', metadata)
  }

  onReceiveMessage(message: Buffer): void {
    let value: unknown
    try {
      value = this.deserialize(message)
    } catch (error) {
      const details = `Response message parsing error: ${errorMessage(error)}`
      this.#readError = { code: GrpcStatus.INTERNAL, details, metadata: emptyLike(this.metadata) }
      this.raw.cancelWithStatus(GrpcStatus.INTERNAL, details)
      return
    }
    this.#receivedMessage = true
    this.#take(value)
  }

  /** `makeUnaryRequest`'s `onReceiveMessage`. */
  #take(value: unknown): void {
    if (this.#response !== null)
      this.raw.cancelWithStatus(GrpcStatus.UNIMPLEMENTED, 'Too many responses received')
    this.#response = value
  }

  onReceiveStatus(received: GrpcStatusObject): void {
    const status = this.#readError ?? received
    if (!this.#receivedMessage) this.#take(null)
    if (this.#receivedStatus) return
    this.#receivedStatus = true
    const caller = this.#caller!
    this.#caller = undefined
    if (status.code === GrpcStatus.OK) {
      if (this.#response === null) {
        const missing = {
          code: GrpcStatus.UNIMPLEMENTED,
          details: 'No message received',
          metadata: status.metadata,
        }
        this.callback(callError(missing, stackOf(caller)))
      } else {
        this.callback(null, this.#response)
      }
    } else {
      this.callback(callError(status, stackOf(caller)))
    }
    this.emitter.emit('status', status)
  }
}

/** Whether a call's options name interceptors (the call then takes grpc-js's layer). */
function hasInterceptors(options: UnaryCallOptions): boolean {
  const i = options.interceptors
  const p = options.interceptor_providers
  return (i != null && i.length > 0) || (p != null && p.length > 0)
}

/**
 * Whether a client's calls may take this layer: none of its symbol-keyed fields but its channel
 * (`channelSlot`) holds anything (grpc-js keeps its interceptors, interceptor providers and
 * `callInvocationTransformer` there: empty arrays and `undefined` when none), and it parses
 * arguments as grpc-js 1.x does.
 */
export function fitsUnaryLayer(client: object, channelSlot: symbol): boolean {
  if (typeof (client as Partial<UnaryClient>).checkOptionalUnaryResponseArguments !== 'function') return false
  for (const s of Object.getOwnPropertySymbols(client)) {
    if (s === channelSlot) continue
    const v = (client as Record<symbol, unknown>)[s]
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue
    return false
  }
  return true
}

/**
 * The unary method `def` of a client that {@link fitsUnaryLayer}, on this layer: the channel is
 * read from `channelSlot` of `this`; a call whose options name interceptors runs `viaGrpc` (the
 * class's own method) instead.
 */
export function unaryMethod(
  def: UnaryMethodDefinition,
  channelSlot: symbol,
  viaGrpc: (...args: unknown[]) => unknown,
): (argument: unknown, metadata?: unknown, options?: unknown, callback?: unknown) => unknown {
  const { path } = def
  const serialize = def.requestSerialize
  const deserialize = def.responseDeserialize
  return function meshUnary(this: UnaryClient, argument, metadata, options, callback) {
    const args = this.checkOptionalUnaryResponseArguments(metadata, options, callback)
    const opts = args.options
    if (hasInterceptors(opts)) return viaGrpc.call(this, argument, metadata, options, callback)
    const emitter = new MeshUnaryCall()
    const channel = (this as unknown as Record<symbol, GrpcChannel>)[channelSlot]!
    const raw = channel.createCall(
      path,
      opts.deadline ?? Number.POSITIVE_INFINITY,
      opts.host,
      opts.parent ?? null,
      opts.propagate_flags,
    )
    if (opts.credentials) raw.setCredentials(opts.credentials)
    emitter.call = raw
    raw.start(
      args.metadata,
      new UnaryListener(emitter, raw, args.metadata, deserialize, args.callback, new Error()),
    )
    raw.startRead()
    let bytes: Buffer
    try {
      bytes = serialize(argument)
    } catch (error) {
      raw.cancelWithStatus(
        GrpcStatus.INTERNAL,
        `Request message serialization failure: ${errorMessage(error)}`,
      )
      raw.halfClose()
      return emitter
    }
    raw.sendMessageWithContext(NO_CONTEXT, bytes)
    raw.halfClose()
    return emitter
  }
}
