/**
 * The parts of `@grpc/grpc-js` the adapter touches, written as structural types.
 *
 * Why not `import type` from grpc-js: it is an optional peer dependency, and meshlet's public
 * declarations must compile for fetch users who never installed it. These shapes are the
 * documented `Channel` / `Call` extension points of grpc-js (`channelOverride`), stable since
 * 1.0; `grpc-types.test.ts` checks that grpc-js's own types still fit them.
 */

/** A metadata value: a string, or a `Buffer` for `-bin` keys. */
export type GrpcMetadataValue = string | Buffer

/** grpc-js's `Metadata`, as far as meshlet reads and writes it. */
export interface GrpcMetadata {
  /** Every value of `key` (lower-case), in order. */
  get(key: string): GrpcMetadataValue[]
  /** Replaces the values of `key`. */
  set(key: string, value: GrpcMetadataValue): void
  /** A deep copy. */
  clone(): GrpcMetadata
  /** The first value of each key. */
  getMap(): { [key: string]: GrpcMetadataValue }
}

/** A call's final status, as grpc-js delivers it (the trailers are `metadata`). */
export interface GrpcStatusObject {
  /** The gRPC status code. */
  readonly code: number
  /** The status message. */
  readonly details: string
  /** The trailers (or, for a trailers-only answer, the headers and trailers together). */
  readonly metadata: GrpcMetadata
}

/** What a grpc-js call reports to: headers, each message, the final status. */
export interface GrpcCallListener {
  onReceiveMetadata(metadata: GrpcMetadata): void
  // biome-ignore lint/suspicious/noExplicitAny: grpc-js passes serialized Buffers below the (de)serializing layer, objects above it
  onReceiveMessage(message: any): void
  onReceiveStatus(status: GrpcStatusObject): void
}

/** The write context grpc-js passes with each message: a completion callback and flags. */
export interface GrpcMessageContext {
  callback?: (error?: Error | null) => void
  flags?: number
}

/** grpc-js's `Call` (call-interface.ts): one call on a channel, messages as `Buffer`s. */
export interface GrpcRawCall {
  cancelWithStatus(status: number, details: string): void
  getPeer(): string
  start(metadata: GrpcMetadata, listener: GrpcCallListener): void
  sendMessageWithContext(context: GrpcMessageContext, message: Buffer): void
  startRead(): void
  halfClose(): void
  getCallNumber(): number
  setCredentials(credentials: object): void
  getAuthContext(): object | null
}

/** grpc-js's `Channel` interface (`grpc.ChannelInterface`), which a client's `channelOverride` accepts. */
export interface GrpcChannel {
  close(): void
  getTarget(): string
  getConnectivityState(tryToConnect: boolean): number
  watchConnectivityState(
    currentState: number,
    deadline: Date | number,
    callback: (error?: Error) => void,
  ): void
  getChannelzRef(): unknown
  createCall(
    method: string,
    deadline: Date | number,
    host: string | null | undefined,
    parentCall: unknown,
    propagateFlags: number | null | undefined,
  ): GrpcRawCall
}

/** The client classes of grpc-js: `makeClientConstructor`, `loadPackageDefinition`, generated code. */
export interface GrpcClientLike {
  getChannel(): unknown
  close(): void
}

/** One method of a grpc-js service definition (`ServiceClientConstructor.service`). */
export interface GrpcMethodDefinitionLike {
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
}

/** The module `@grpc/grpc-js`, as far as the adapter uses it once loaded. */
export interface GrpcModule {
  readonly credentials: { createInsecure(): object }
  readonly Channel: new (target: string, credentials: object, options: object) => GrpcChannel
  readonly Metadata: new () => GrpcMetadata
}

/** grpc-js's connectivity states (`grpc.connectivityState`). */
export const ConnectivityState = {
  IDLE: 0,
  CONNECTING: 1,
  READY: 2,
  TRANSIENT_FAILURE: 3,
  SHUTDOWN: 4,
} as const
