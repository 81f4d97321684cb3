/**
 * A promise form of a unary call, for code that prefers `await` to callbacks. It calls the
 * client's own method (any grpc-js client, meshed or not), so nothing of grpc-js changes: the
 * promise rejects with the same `ServiceError` the callback would get, and `call` is the same
 * `ClientUnaryCall` (for `cancel()` and the `metadata` and `status` events).
 */
import type { GrpcMetadata } from './grpc-types.js'

/** Options of {@link unaryCall}. */
export interface UnaryCallOptions {
  /** Request metadata (a grpc-js `Metadata`). Default none. */
  readonly metadata?: GrpcMetadata
  /** grpc-js call options (`deadline`, `credentials`, ...). Default none. */
  readonly callOptions?: object
}

/** The call object grpc-js returns for a unary call, as far as a caller of {@link unaryCall} uses it. */
export interface UnaryCallHandle {
  cancel(): void
  getPeer(): string
  on(event: string, listener: (...args: unknown[]) => void): unknown
}

/**
 * Calls the unary method `method` of `client` and resolves with its response. Throws a
 * `TypeError` at once when the client has no such method.
 *
 * @example
 * ```ts
 * import { unaryCall } from 'meshlet'
 * // const user = await unaryCall<User>(users, 'getUser', { id: 42 }, { callOptions: { deadline: new Date(new Date().getTime() + 500) } })
 * ```
 */
export function unaryCall<Res = unknown>(
  client: object,
  method: string,
  request: unknown,
  options: UnaryCallOptions = {},
): Promise<Res> & { readonly call: UnaryCallHandle } {
  const fn = (client as Record<string, unknown>)[method]
  if (typeof fn !== 'function') throw new TypeError(`unaryCall: the client has no method ${method}`)
  let call: UnaryCallHandle | undefined
  const promise = new Promise<Res>((resolve, reject) => {
    const args: unknown[] = [request]
    if (options.metadata !== undefined) args.push(options.metadata)
    if (options.callOptions !== undefined) args.push(options.callOptions)
    args.push((error: Error | null, response?: Res) => (error ? reject(error) : resolve(response as Res)))
    call = fn.apply(client, args) as UnaryCallHandle
  })
  return Object.assign(promise, { call: call! })
}
