/**
 * The mesh: one validated configuration made live, shared by every client wrapped with it. It
 * owns time, randomness and events for its calls, swaps configurations atomically, and on
 * close leaves no timer, socket or listener behind.
 */

import type { HttpRequest } from '../adapters/fetch/request.js'
import { fileTokenProvider, type TokenProvider, TokenSource } from '../adapters/identity/token-provider.js'
import { redisQuotaStore } from '../adapters/redis/redis-quota-store.js'
import { onSignalAbort } from '../core/abort-hub.js'
import { CallCancellation, type Cancellation } from '../core/cancel.js'
import { type Clock, systemClock } from '../core/clock.js'
import { Context } from '../core/context.js'
import { ConfigInvalidError, type ConfigIssue, MeshClosedError } from '../core/errors.js'
import { Events } from '../core/events.js'
import { type ExitHook, Exits, isJoiningExits, isRunningExits } from '../core/exits.js'
import { type Handler, send } from '../core/handler.js'
import { type Random, systemRandom } from '../core/random.js'
import type { CircuitBreaker } from '../stages/circuit-breaker/breaker.js'
import type { QuotaStore } from '../stages/quota/store.js'
import { type MeshConfig, parseConfig, type ResolvedMeshConfig } from './config/config.js'
import { Discovery, type EndpointResolver } from './discovery/discovery.js'
import type { DnsOptions } from './discovery/dns.js'
import { checkQuotaStore, QuotaRegistry } from './quota.js'
import { buildSnapshot, closeState, type Snapshot, statePool } from './runtime.js'

/** Options of {@link createMesh}, for tests and simulations more than for production. */
export interface MeshOptions {
  /** The time source. Default: the system clock. `ManualClock` from `meshlet/testing` in tests. */
  readonly clock?: Clock
  /** The random source. Default: `Math.random`. `seededRandom(n)` for reproducible runs. */
  readonly random?: Random
  /**
   * Replaces the HTTP transport of every fetch wrapped with this mesh (the testing kit's
   * simulated endpoints plug in here). Default: the wrapped fetch itself.
   */
  readonly httpTransport?: Handler<HttpRequest, Response>
  /**
   * Whether `withMesh(fetch)` sends plain calls straight to undici's dispatcher, building the
   * `Response` itself, when the wrapped function is Node's own fetch: about twice fetch's
   * throughput, with fetch's results (docs/fetch-transport.md). `false` sends every call
   * through fetch. Default `true`; other fetch functions are always called as they are.
   */
  readonly directFetch?: boolean
  /**
   * Fallback functions by service name, for services whose config has a `fallback`: called
   * with the failure and the request instead of the static response. Default none.
   */
  readonly fallbacks?: Readonly<
    Record<string, (error: unknown, req: HttpRequest) => Response | Promise<Response>>
  >
  /**
   * Custom endpoint resolvers by service name, used while the service's config has `discovery`
   * (`discovery: {}` when there is no DNS name): a function returning the endpoint set (called
   * at once, then every `discovery.refresh`) or an async iterable yielding sets. A resolver wins
   * over `discovery.dns`. Default none.
   */
  readonly resolvers?: Readonly<Record<string, EndpointResolver>>
  /** Where and how DNS discovery asks (servers, timeout, tries). Default: the system's resolver. */
  readonly dns?: DnsOptions
  /**
   * Bearer token functions by service name: each call to the service carries the token (in the
   * header of the service's `auth`, `authorization: Bearer <token>` by default; `auth` may be
   * left out). Called on the first call and again before the token expires (80% of the
   * lifetime its JWT `exp` claim gives, and at least every `auth.refresh`), never concurrently
   * for one service; a failure keeps the previous token until it expires. A service with
   * `auth.tokenFile` may not have one too. Default none (docs/security.md, "Bearer identity").
   */
  readonly tokens?: Readonly<Record<string, TokenProvider>>
  /**
   * The shared store of limits with `scope: 'global'` (docs/quota.md). Default: a Redis store
   * made from the config's `redis` section (`redisQuotaStore`), or none. A config with a global
   * limit and no store is refused (`CONFIG_INVALID`). A store given here is the caller's to
   * close (several meshes may share it); one the mesh made is closed by {@link Mesh.close}.
   */
  readonly quotaStore?: QuotaStore
}

/** Options of {@link Mesh.close}. */
export interface CloseOptions {
  /**
   * `false` (the default) lets calls in flight finish; `true` cancels them at once with
   * `MeshError` code `MESH_CLOSED`.
   */
  readonly force?: boolean
}

/** A live mesh; see the module comment. Create one with {@link createMesh}. */
export class Mesh {
  /** The mesh's events (`retry`, `timeout`, `config-updated`, ...). */
  readonly events: Events = new Events()
  /** The time source of every call. */
  readonly clock: Clock
  /** The random source of every call. */
  readonly random: Random
  /** @internal */
  readonly httpTransport: Handler<HttpRequest, Response> | undefined
  /** @internal See {@link MeshOptions.directFetch}. */
  readonly directFetch: boolean
  /** @internal */
  readonly fallbacks: MeshOptions['fallbacks']
  readonly #tokenProviders: MeshOptions['tokens']
  // The token source of each service with a token, kept across updates while its source stays.
  #tokens = new Map<string, TokenSource>()
  /** @internal The limiters and throttles of the services and routes (src/mesh/quota.ts). */
  readonly quota: QuotaRegistry
  /** @internal The store of global limits (see MeshOptions.quotaStore). */
  readonly quotaStore: QuotaStore | undefined
  #snapshot: Snapshot
  // The config as given; the snapshot's is this one with discovered endpoint sets in place.
  #base: ResolvedMeshConfig
  readonly #discovery: Discovery
  readonly #pool = statePool()
  // The calls in flight, as an intrusive list: a `Set` of fresh objects costs ~250 ns per call
  // on Node 20 (identity hash plus a table that grows and shrinks around one entry).
  readonly #inflight = new InflightCall()
  #inflightCount = 0
  // Work that outlives its call's pipeline (committed gRPC streams): not waited for, but a forced
  // close aborts it too.
  readonly #held = new InflightCall()
  #forced = false
  #closed = false
  #closing: Promise<void> | undefined
  #closed2 = false
  readonly #onClose: Array<() => void> = []
  readonly #onSnapshot: Array<() => void> = []
  #drained: (() => void) | undefined
  readonly #ownedStore: QuotaStore | undefined

  /** @internal Use {@link createMesh}. */
  constructor(config: ResolvedMeshConfig, options: MeshOptions) {
    this.clock = options.clock ?? systemClock
    this.random = options.random ?? systemRandom
    this.httpTransport = options.httpTransport
    this.directFetch = options.directFetch ?? true
    this.fallbacks = options.fallbacks
    // Made once, from the first config: a later `redis` section does not reconnect (D59).
    const store =
      options.quotaStore ??
      (config.redis === undefined ? undefined : redisQuotaStore({ ...config.redis, clock: this.clock }))
    checkQuotaStore(config, store)
    this.#tokenProviders = options.tokens
    this.#tokens = this.#tokenSources(config, true)
    this.quotaStore = store
    this.#ownedStore = options.quotaStore === undefined ? store : undefined
    this.quota = new QuotaRegistry(this.clock, store)
    this.#discovery = new Discovery({
      clock: this.clock,
      random: this.random,
      events: this.events,
      resolvers: options.resolvers,
      dns: options.dns,
      onChange: () => this.#rebuild(),
    })
    this.#discovery.check(config)
    this.#base = config
    this.#snapshot = buildSnapshot(config, this.#pool, this.events)
    this.#discovery.sync(config)
  }

  /**
   * Swaps in a snapshot of the config with the latest discovered sets: the same rebuild as
   * {@link update}, so an endpoint that stays keeps its state and calls in flight drain on the
   * snapshot they started with.
   */
  #rebuild(): void {
    this.#swap(buildSnapshot(this.#discovery.apply(this.#base), this.#pool, this.events))
  }

  /** Makes `snapshot` the one in force and tells what depends on it (see {@link onSnapshot}). */
  #swap(snapshot: Snapshot): void {
    this.#snapshot = snapshot
    for (const fn of this.#onSnapshot) fn()
  }

  /**
   * @internal Runs `fn` after each new snapshot (an update, or a change of discovered endpoints):
   * for what adapters hold per endpoint, such as gRPC channels. Internal wiring rather than a
   * listener on {@link events}, which the application may clear.
   */
  onSnapshot(fn: () => void): void {
    this.#onSnapshot.push(fn)
  }

  /**
   * @internal The bearer token source of `service` (its name as configured, lower-case), or
   * `undefined` when its calls carry none.
   */
  tokenSource(service: string): TokenSource | undefined {
    return this.#tokens.get(service)
  }

  /**
   * The token sources of `config`: one per service with `auth.tokenFile` or a `tokens`
   * function, the current one kept when its source and limits are unchanged. Throws
   * `ConfigInvalidError` for a service with `auth` and no source, or with both, and (at
   * creation) for a `tokens` name that is no service.
   */
  #tokenSources(config: ResolvedMeshConfig, initial = false): Map<string, TokenSource> {
    const given = this.#tokenProviders
    const next = new Map<string, TokenSource>()
    const issues: ConfigIssue[] = []
    if (given !== undefined && (typeof given !== 'object' || given === null))
      issues.push({
        path: '(createMesh options)',
        message: 'tokens must be an object of functions by service name',
      })
    const fns = typeof given === 'object' && given !== null ? given : undefined
    const named = new Set<string>()
    for (const [name, svc] of Object.entries(config.services)) {
      const key = name.toLowerCase()
      // Own keys only (D47): a service named `toString` must not find Object.prototype.toString.
      const fn = fns !== undefined && Object.hasOwn(fns, name) ? fns[name] : undefined
      if (fn !== undefined) named.add(name)
      const auth = svc.auth
      if (fn !== undefined && typeof fn !== 'function') {
        issues.push({ path: `services.${name}`, message: `createMesh's tokens.${name} is not a function` })
        continue
      }
      if (auth?.tokenFile !== undefined && fn !== undefined) {
        issues.push({
          path: `services.${name}.auth.tokenFile`,
          message: `expected a token file or createMesh's tokens.${name}, not both`,
        })
        continue
      }
      if (auth !== undefined && auth.tokenFile === undefined && fn === undefined) {
        issues.push({
          path: `services.${name}.auth.tokenFile`,
          message: `required unless createMesh is given tokens.${name}`,
        })
        continue
      }
      if (auth === undefined && fn === undefined) continue
      const source = auth?.tokenFile !== undefined ? `file ${auth.tokenFile}` : `provider tokens.${name}`
      const refresh = auth?.refresh ?? 60_000
      const timeout = auth?.timeout ?? 10_000
      const old = this.#tokens.get(key)
      const provider = fn ?? fileTokenProvider(auth!.tokenFile!)
      const same =
        old !== undefined &&
        old.source === source &&
        old.refresh === refresh &&
        old.timeout === timeout &&
        (fn === undefined || old.provider === fn)
      next.set(
        key,
        same
          ? old
          : new TokenSource({ service: name, source, provider, refresh, timeout, clock: this.clock }),
      )
    }
    // A name that matches no service is a typo at creation; an update may drop a service for a while.
    if (fns !== undefined && initial) {
      for (const name of Object.keys(fns)) {
        if (!named.has(name))
          issues.push({
            path: 'services',
            message: `createMesh's tokens.${name} names no configured service`,
          })
      }
    }
    if (issues.length > 0) throw new ConfigInvalidError(issues)
    return next
  }

  /**
   * The configuration in force, defaults applied and durations in ms; a discovered service's
   * `endpoints` are its last good discovered set.
   */
  get config(): ResolvedMeshConfig {
    return this.#snapshot.config
  }

  /**
   * The circuit breaker of `service` (to `isolate()`, `reset()`, or `snapshot()` it), or
   * `undefined` when the service has none.
   */
  circuitBreaker(service: string): CircuitBreaker | undefined {
    return this.#snapshot.services.get(service.toLowerCase())?.breaker
  }

  /**
   * Resolves when every discovered service has had its first resolution, good or failed (an
   * async iterable resolver: its first set). At once when no service is discovered. Until then a
   * discovered service with no `endpoints` in its config fails calls with `NO_HEALTHY_ENDPOINT`.
   */
  ready(): Promise<void> {
    return this.#discovery.ready()
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** The number of calls in flight. */
  get inflight(): number {
    return this.#inflightCount
  }

  /** @internal The snapshot in force; a call reads it once, at its start. */
  get snapshot(): Snapshot {
    return this.#snapshot
  }

  /**
   * Replaces the configuration atomically. Calls in flight finish on the configuration they
   * started with; endpoints that stay keep their live statistics. An invalid configuration
   * throws `ConfigInvalidError` (code `CONFIG_INVALID`) and changes nothing.
   */
  update(config: MeshConfig): void {
    if (this.#closed) throw new MeshClosedError()
    const resolved = parseConfig(config)
    this.#discovery.check(resolved)
    checkQuotaStore(resolved, this.quotaStore)
    const tokens = this.#tokenSources(resolved)
    this.#tokens = tokens
    this.#base = resolved
    // Discovery first: a service that keeps its source keeps its discovered set in the new snapshot.
    this.#discovery.sync(resolved)
    this.#swap(buildSnapshot(this.#discovery.apply(resolved), this.#pool, this.events))
    if (this.events.has('config-updated')) {
      this.events.emit('config-updated', { services: this.#snapshot.services.size })
    }
  }

  /**
   * Stops taking calls (new ones reject with code `MESH_CLOSED`), waits for the calls in flight
   * (or cancels them with `force`), then releases everything the mesh holds. A committed gRPC
   * stream, which runs past its call's stack, is not waited for; `force` ends it too.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closed = true
    // Health-check probes and discovery are not calls: they stop at once, and a late call cannot
    // restart them.
    closeState(this.#pool)
    this.#discovery.close()
    if (options.force) {
      this.#forced = true
      const calls: InflightCall[] = []
      for (const head of [this.#inflight, this.#held]) {
        for (let c = head.next; c !== head; c = c.next) calls.push(c)
      }
      for (const c of calls) c.abort(new MeshClosedError())
    }
    this.#closing ??= (async () => {
      if (this.#inflightCount > 0) {
        await new Promise<void>((resolve) => {
          this.#drained = resolve
        })
      }
      for (const fn of this.#onClose.splice(0)) fn()
      for (const tokens of this.#tokens.values()) tokens.close()
      try {
        await this.#ownedStore?.close()
      } catch {
        // A store that fails to close must not fail the mesh's close: its calls are over.
      }
      this.#closed2 = true
      this.events.clear()
    })()
    return this.#closing
  }

  /**
   * Runs `fn` once when the mesh has closed and its calls have drained (at once if that already
   * happened): for resources that adapters hold per mesh, such as gRPC channels.
   */
  onClose(fn: () => void): void {
    if (this.#closed2) fn()
    else this.#onClose.push(fn)
  }

  /**
   * @internal Runs one call through `handler`: a root context, the caller's signal linked to
   * it (an abort rejects at once with the signal's reason, as fetch does), tracked for close.
   */
  invoke<Req, Res>(handler: Handler<Req, Res>, req: Req, signal: AbortSignal | undefined): Promise<Res> {
    if (this.#closed) return Promise.reject(new MeshClosedError())
    if (signal?.aborted) return Promise.reject(signal.reason)
    const cancel = this.#enter()
    if (signal === undefined && isRunningExits(handler as Handler<unknown, unknown>)) {
      // The stack runs the call's scope itself, in the reaction its retry stage has anyway: the
      // call's bookkeeping is one more exit there, and this call adds no promise (D32).
      const scope = new Exits()
      scope.add(Mesh.#finishExit, this, cancel)
      const root = Context.root(this.clock, this.random, cancel, undefined, scope)
      try {
        return handler(req, root)
      } catch (error) {
        // Thrown before a runner took the scope (a second run does nothing if one did).
        scope.run(false, error, req, root)
        return Promise.reject(error)
      }
    }
    // The call's scope of exit hooks, for the stages that join it (the bulkhead): run in the
    // reaction this call has anyway, so they need none of their own (core/exits.ts).
    const exits = isJoiningExits(handler as Handler<unknown, unknown>) ? new Exits() : undefined
    const ctx = Context.root(this.clock, this.random, cancel, signal, exits)
    const sent = send(handler, req, ctx)
    if (signal === undefined) {
      // No signal to race: the handler's own promise, with the call's bookkeeping after it.
      return sent.then(
        (value) => {
          // The call's bookkeeping first: a hook that failed must not leave it counted in flight.
          this.#finish(cancel)
          exits?.run(true, value, req, ctx)
          return value
        },
        (error: unknown) => {
          this.#finish(cancel)
          exits?.run(false, error, req, ctx)
          throw error
        },
      )
    }
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => {
        cancel.abort(signal.reason)
        reject(signal.reason)
      }
      // One listener per signal however many calls share it (core/abort-hub.ts, D40).
      const unlink = onSignalAbort(signal, onAbort)
      sent.then(
        (value) => {
          unlink()
          this.#finish(cancel)
          try {
            exits?.run(true, value, req, ctx)
            resolve(value)
          } catch (failure) {
            reject(failure)
          }
        },
        (error: unknown) => {
          unlink()
          this.#finish(cancel)
          try {
            exits?.run(false, error, req, ctx)
            reject(error)
          } catch (failure) {
            reject(failure)
          }
        },
      )
    })
  }

  /**
   * @internal Runs one call through `handler` as {@link invoke} does with no signal, and reports
   * its end to `sink` rather than through a promise of its own: for an adapter that ends each
   * call in a callback (gRPC's `MeshCall`), one promise, two closures and a microtask fewer per
   * call. `sink` is told on a later microtask, never from inside this method.
   */
  run<Req, Res>(handler: Handler<Req, Res>, req: Req, sink: CallSink<Res>): void {
    if (this.#closed) {
      queueMicrotask(() => sink.rejected(new MeshClosedError()))
      return
    }
    const cancel = this.#enter()
    const exits = isJoiningExits(handler as Handler<unknown, unknown>) ? new Exits() : undefined
    const ctx = Context.root(this.clock, this.random, cancel, undefined, exits)
    send(handler, req, ctx).then(
      (value) => {
        this.#finish(cancel)
        try {
          exits?.run(true, value, req, ctx)
        } catch (failure) {
          sink.rejected(failure)
          return
        }
        sink.resolved(value)
      },
      (error: unknown) => {
        this.#finish(cancel)
        try {
          exits?.run(false, error, req, ctx)
        } catch (failure) {
          sink.rejected(failure)
          return
        }
        sink.rejected(error)
      },
    )
  }

  /** The call's bookkeeping as the exit of its scope, for a stack that runs it (D32). */
  static readonly #finishExit: ExitHook = (mesh, cancel) => {
    ;(mesh as Mesh).#finish(cancel as InflightCall)
  }

  /** A call starts: its root token, linked into the calls in flight. */
  #enter(): InflightCall {
    const cancel = new InflightCall()
    cancel.linkAfter(this.#inflight)
    this.#inflightCount++
    return cancel
  }

  /**
   * @internal A token for work that outlives its call's pipeline (a committed gRPC stream,
   * whose messages flow after the call's stack has settled): `close({ force: true })` aborts it,
   * at once when that already happened; {@link release} forgets it when the work ends. A
   * graceful close does not wait for it.
   */
  hold(): Cancellation {
    const token = new InflightCall()
    if (this.#forced) {
      token.abort(new MeshClosedError())
      return token
    }
    token.linkAfter(this.#held)
    return token
  }

  /** @internal Forgets a token of {@link hold}. */
  release(token: Cancellation): void {
    ;(token as InflightCall).unlink()
  }

  /** A call has settled: it leaves the in-flight set, and a draining `close` may finish. */
  #finish(cancel: InflightCall): void {
    cancel.unlink()
    cancel.finish()
    if (--this.#inflightCount === 0 && this.#drained) {
      this.#drained()
      this.#drained = undefined
    }
  }
}

/**
 * What {@link Mesh.run} tells of a call's end. Neither method may throw (they run in the
 * call's promise reactions, where a throw would be an unhandled rejection).
 * @internal
 */
export interface CallSink<Res> {
  /** The call's answer. */
  resolved(value: Res): void
  /** The call's failure. */
  rejected(error: unknown): void
}

/** A call's root token, linked into the mesh's list of calls in flight (the list head is one too). */
class InflightCall extends CallCancellation {
  // Assigned in the constructor, as in core/cancel.ts: one is made per call (D33).
  declare prev: InflightCall
  declare next: InflightCall

  constructor() {
    super()
    this.prev = this
    this.next = this
  }

  /** Links this token in just after `head`. */
  linkAfter(head: InflightCall): void {
    this.prev = head
    this.next = head.next
    head.next.prev = this
    head.next = this
  }

  /** Takes this token out of its list (nothing when it is in none). */
  unlink(): void {
    this.prev.next = this.next
    this.next.prev = this.prev
    this.prev = this
    this.next = this
  }
}

/**
 * Whether `value` is a {@link Mesh}. Structural rather than `instanceof`, so a mesh from the ESM
 * build is recognised by the CJS build and the other way round.
 * @internal
 */
export function isMesh(value: unknown): value is Mesh {
  return typeof value === 'object' && value !== null && 'invoke' in value && 'snapshot' in value
}

/**
 * Validates `config` and makes it live. Throws `ConfigInvalidError` (code `CONFIG_INVALID`)
 * listing every problem with its path.
 *
 * @example
 * ```ts
 * import { createMesh, withMesh } from 'meshlet'
 * const mesh = createMesh({ services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
 * const fetch2 = withMesh(fetch, mesh)
 * // await fetch2('http://users/api/users/42')
 * await mesh.close()
 * ```
 */
export function createMesh(config: MeshConfig, options: MeshOptions = {}): Mesh {
  return new Mesh(parseConfig(config), options)
}
