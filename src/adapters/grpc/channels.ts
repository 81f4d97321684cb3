/**
 * One grpc-js channel per endpoint address, created on first use and closed when the endpoint
 * leaves the configuration or the mesh closes.
 *
 * Why a channel per endpoint rather than one channel per service: the mesh's balancer, not
 * grpc-js's, must pick the endpoint of each attempt (so retries avoid the endpoint that failed,
 * outlier detection can eject one, least-request can see load), and a grpc-js channel balances
 * on its own. A channel to one `host:port` is a single HTTP/2 connection that grpc-js keeps
 * alive and reconnects: the mesh gets grpc-js's transport and keeps the decisions.
 *
 * A retired channel (its endpoint left the config) closes only when its last call ends, so
 * that calls in flight finish on the configuration they started with, as `mesh.update` promises.
 *
 * grpc-js is loaded with a dynamic `import()` on the first call, never by `import 'meshlet'`:
 * it is an optional peer dependency that fetch users do not install.
 */
import type { TlsClient } from '../tls/client.js'
import type { GrpcChannelConstructor } from './client-channel.js'
import type { GrpcChannel, GrpcMetadata, GrpcModule } from './grpc-types.js'

/** Options of {@link GrpcChannelPool}. */
export interface GrpcChannelPoolOptions {
  /**
   * The channel credentials of every endpoint (`grpc.credentials.createSsl(...)` for TLS). They
   * must come from the same copy of `@grpc/grpc-js` that meshlet resolves. Default
   * `credentials.createInsecure()`.
   */
  readonly credentials?: object | undefined
  /** grpc-js channel options of every endpoint channel (`'grpc.keepalive_time_ms'`, ...). Default `{}`. */
  readonly channelOptions?: Readonly<Record<string, unknown>> | undefined
  /**
   * The `Channel` class that builds the endpoint channels: a wrapped client's own (so that its
   * credentials, which grpc-js checks with `instanceof`, come from the same copy of grpc-js).
   * Default: `Channel` of the loaded grpc-js.
   */
  readonly Channel?: GrpcChannelConstructor | undefined
  /** Loads grpc-js. Default: `import('@grpc/grpc-js')`. */
  readonly load?: (() => Promise<GrpcModule>) | undefined
  /**
   * The service's transport security (its `tls`): its credentials replace {@link credentials}
   * (the service's `tls` takes precedence over a wrapped client's own), and after a rotation
   * the next call opens a new channel with the new credentials while the old one drains.
   * Default none.
   */
  readonly tls?: TlsClient | undefined
}

/** A channel to one endpoint, with the count of the calls on it. */
export interface GrpcChannelEntry {
  /** The endpoint's `host:port`. */
  readonly address: string
  /** The grpc-js channel to it. */
  readonly channel: GrpcChannel
  /** Calls started on the channel that have not ended. */
  active: number
  /** Whether the channel is to close once {@link active} is 0. */
  retired: boolean
  /** The TLS material version its credentials came from (0 without `tls`). */
  readonly version: number
}

let defaultModule: Promise<GrpcModule> | undefined

/** grpc-js, loaded once per process on first use. */
export function loadGrpc(): Promise<GrpcModule> {
  defaultModule ??= import('@grpc/grpc-js').then((m) => {
    // Under CommonJS interop the namespace may arrive as `default`.
    const ns = (m as { default?: GrpcModule }).default ?? (m as unknown as GrpcModule)
    return ns
  })
  return defaultModule
}

/** The endpoint channels of one mesh (per set of credentials); see the module comment. */
export class GrpcChannelPool {
  readonly #options: GrpcChannelPoolOptions
  readonly #entries = new Map<string, GrpcChannelEntry>()
  #module: GrpcModule | undefined
  #loading: Promise<GrpcModule> | undefined
  #credentials: object | undefined
  #closed = false

  constructor(options: GrpcChannelPoolOptions = {}) {
    this.#options = options
    this.#credentials = options.credentials
  }

  /**
   * Whether the channel options give grpc-js a service config (`grpc.service_config`), which may
   * set deadlines of its own (a method `timeout`).
   * @internal
   */
  get hasServiceConfig(): boolean {
    return this.#options.channelOptions?.['grpc.service_config'] !== undefined
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** Channels open now (retired ones included until they close). */
  get size(): number {
    return this.#entries.size
  }

  /** grpc-js once loaded (synchronously), else `undefined`. */
  get module(): GrpcModule | undefined {
    return this.#module
  }

  /** Loads grpc-js (once). */
  load(): Promise<GrpcModule> {
    if (this.#module) return Promise.resolve(this.#module)
    this.#loading ??= (this.#options.load ?? loadGrpc)().then((m) => {
      this.#module = m
      this.#credentials ??= m.credentials.createInsecure()
      return m
    })
    return this.#loading
  }

  /** A new, empty metadata object of the loaded grpc-js (call after {@link load}). */
  metadata(): GrpcMetadata {
    if (!this.#module) throw new Error('meshlet: grpc-js is not loaded yet')
    return new this.#module.Metadata()
  }

  /**
   * Takes the channel to `address` for one call (creating it on first use): synchronously once
   * grpc-js is loaded, else after loading it. Give it back with {@link release} when the call ends.
   */
  acquire(address: string): GrpcChannelEntry | Promise<GrpcChannelEntry> {
    if (this.#module) return this.#take(address)
    return this.load().then(() => this.#take(address))
  }

  #take(address: string): GrpcChannelEntry {
    const entry = this.#open(address)
    entry.active++
    return entry
  }

  /** The channel to `address`, created when missing (a retired one keeps only its old calls). */
  #open(address: string): GrpcChannelEntry {
    if (this.#closed) throw new Error('meshlet: the mesh is closed')
    let entry = this.#entries.get(address)
    let credentials = this.#credentials!
    let version = 0
    const tls = this.#options.tls
    if (tls !== undefined) {
      const current = tls.grpcCredentials(this.#module as never)
      credentials = current.credentials
      version = current.version
      // Rotated: new calls open a channel with the new credentials; the old one drains.
      if (entry !== undefined && entry.version !== version) {
        this.#retire(entry)
        entry = undefined
      }
    }
    if (entry === undefined) {
      const Channel = this.#options.Channel ?? this.#module!.Channel
      entry = {
        address,
        channel: new Channel(address, credentials, { ...this.#options.channelOptions }),
        active: 0,
        retired: false,
        version,
      }
      this.#entries.set(address, entry)
    }
    return entry
  }

  /**
   * The channel to `address` without taking it for a call (to read or watch its connectivity):
   * created when missing; `undefined` until grpc-js is loaded or once the pool is closed.
   */
  channel(address: string): GrpcChannel | undefined {
    if (!this.#module || this.#closed) return undefined
    return this.#open(address).channel
  }

  /** Gives back a channel taken with {@link acquire}; a retired one closes with its last call. */
  release(entry: GrpcChannelEntry): void {
    entry.active--
    if (entry.retired && entry.active <= 0) entry.channel.close()
  }

  /** The open channel to `address`, if there is one (it is not created or taken). */
  peek(address: string): GrpcChannelEntry | undefined {
    return this.#entries.get(address)
  }

  /**
   * Keeps only the channels to `addresses`: the others retire (they close when their calls
   * end). Called when the configuration changes.
   */
  retain(addresses: ReadonlySet<string>): void {
    for (const entry of [...this.#entries.values()]) {
      if (!addresses.has(entry.address)) this.#retire(entry)
    }
  }

  #retire(entry: GrpcChannelEntry): void {
    if (this.#entries.get(entry.address) === entry) this.#entries.delete(entry.address)
    if (entry.retired) return
    entry.retired = true
    if (entry.active <= 0) entry.channel.close()
  }

  /** Retires every channel and takes no more calls. */
  close(): void {
    this.#closed = true
    for (const entry of [...this.#entries.values()]) this.#retire(entry)
  }
}
