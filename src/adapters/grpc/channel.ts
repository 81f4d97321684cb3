/**
 * The channel a meshed client believes it has: grpc-js's `Channel` interface (the one a client
 * accepts as `channelOverride`), whose `createCall` returns a mesh call for the services the
 * mesh knows and passes every other call to the client's own channel.
 *
 * Connectivity (`getConnectivityState`, `watchConnectivityState`, and so `client.waitForReady`)
 * is that of the service's endpoint channels taken together: `READY` when one is ready, as a
 * grpc-js channel over several addresses reports it.
 */
import { ConnectivityState, type GrpcChannel, type GrpcRawCall } from './grpc-types.js'

/** What a {@link MeshChannel} asks of the mesh. */
export interface MeshChannelBackend {
  /** A mesh call for `path`, or `undefined` to send the call on the client's own channel. */
  createCall(
    path: string,
    deadline: Date | number,
    host: string | null | undefined,
    parentCall: unknown,
    propagateFlags: number | null | undefined,
  ): GrpcRawCall | undefined
  /**
   * The channels to the service's endpoints now (created when missing); empty before grpc-js is
   * loaded, which `load` starts.
   */
  endpointChannels(): readonly GrpcChannel[]
  /** Loads grpc-js, so that endpoint channels can exist. */
  load(): Promise<unknown>
}

/** Ranks states for aggregation: the best state of any endpoint is the service's. */
const RANK: Readonly<Record<number, number>> = {
  [ConnectivityState.READY]: 4,
  [ConnectivityState.CONNECTING]: 3,
  [ConnectivityState.IDLE]: 2,
  [ConnectivityState.TRANSIENT_FAILURE]: 1,
  [ConnectivityState.SHUTDOWN]: 0,
}

/** The mesh's channel for one wrapped client; see the module comment. */
export class MeshChannel implements GrpcChannel {
  readonly #original: GrpcChannel
  readonly #backend: MeshChannelBackend
  #closed = false

  constructor(original: GrpcChannel, backend: MeshChannelBackend) {
    this.#original = original
    this.#backend = backend
  }

  /** The client's own channel (what a client wrapped again reads its settings from). */
  get clientChannel(): GrpcChannel {
    return this.#original
  }

  /** Closes the client's own channel; the endpoint channels belong to the mesh and stay open. */
  close(): void {
    this.#closed = true
    this.#original.close()
  }

  getTarget(): string {
    return this.#original.getTarget()
  }

  getChannelzRef(): unknown {
    return this.#original.getChannelzRef()
  }

  getConnectivityState(tryToConnect: boolean): number {
    if (this.#closed) return ConnectivityState.SHUTDOWN
    const channels = this.#backend.endpointChannels()
    if (channels.length === 0) {
      if (tryToConnect) {
        // Connect once grpc-js is loaded; a watcher hears of the change.
        this.#backend.load().then(
          () => {
            for (const c of this.#backend.endpointChannels()) c.getConnectivityState(true)
          },
          () => {},
        )
      }
      return ConnectivityState.IDLE
    }
    let best: number = ConnectivityState.SHUTDOWN
    for (const c of channels) {
      const state = c.getConnectivityState(tryToConnect)
      if ((RANK[state] ?? 0) > (RANK[best] ?? 0)) best = state
    }
    return best
  }

  watchConnectivityState(
    currentState: number,
    deadline: Date | number,
    callback: (error?: Error) => void,
  ): void {
    if (this.#closed) throw new Error('Channel has been shut down')
    let fired = false
    const fire = (error?: Error) => {
      if (fired) return
      fired = true
      callback(error)
    }
    const watch = (c: GrpcChannel) => {
      c.watchConnectivityState(c.getConnectivityState(false), deadline, (error) => {
        if (fired) return
        if (error) fire(error)
        else if (this.getConnectivityState(false) !== currentState) fire()
        else watch(c)
      })
    }
    const arm = (first: boolean) => {
      if (fired) return
      if (this.getConnectivityState(false) !== currentState) {
        fire()
        return
      }
      const channels = this.#backend.endpointChannels()
      for (const c of channels) watch(c)
      if (channels.length === 0 && first) {
        // The client's own channel is never used by meshed calls, so it keeps its state: it
        // serves as the deadline's timer until the endpoint channels exist.
        this.#original.watchConnectivityState(this.#original.getConnectivityState(false), deadline, (error) =>
          fire(error ?? new Error('Deadline passed without connectivity state change')),
        )
        this.#backend.load().then(
          () => arm(false),
          () => {},
        )
      }
    }
    arm(true)
  }

  createCall(
    method: string,
    deadline: Date | number,
    host: string | null | undefined,
    parentCall: unknown,
    propagateFlags: number | null | undefined,
  ): GrpcRawCall {
    if (this.#closed) throw new Error('Channel has been shut down')
    return (
      this.#backend.createCall(method, deadline, host, parentCall, propagateFlags) ??
      this.#original.createCall(method, deadline, host, parentCall, propagateFlags)
    )
  }
}
