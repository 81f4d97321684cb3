/**
 * `withMeshGrpc`: wraps a grpc-js client so that its calls to a configured gRPC service go
 * through the mesh, with every method signature, call object and event of grpc-js unchanged.
 *
 * How: a grpc-js client sends every call through its channel's `createCall`, below its
 * interceptors and (de)serialization. The returned object inherits from the client and hands
 * the client's own methods a mesh channel in place of its channel, so grpc-js still builds the call objects, runs the client's
 * interceptors and serializes messages exactly as before; the mesh decides where each attempt
 * of the serialized call goes. Nothing else of the client changes, and `instanceof` holds.
 *
 * The service is the host of the client's target (`new UsersClient('users', ...)` or
 * `'dns:///users:50051'` names the service `users`); a target naming no gRPC service of the
 * config passes through to the client's own channel (or fails with `UNAVAILABLE` when the
 * mesh is `strict`).
 */

import { MeshCall, type MeshCallSite } from '../adapters/grpc/call.js'
import { MeshChannel } from '../adapters/grpc/channel.js'
import { GrpcChannelPool } from '../adapters/grpc/channels.js'
import { DEFAULT_GRPC_RETRYABLE_STATUS_CODES, grpcClassifier } from '../adapters/grpc/classify.js'
import {
  type EndpointChannelSettings,
  endpointChannelSettings,
  settingsKey,
} from '../adapters/grpc/client-channel.js'
import type {
  GrpcChannel,
  GrpcClientLike,
  GrpcMetadata,
  GrpcMethodDefinitionLike,
} from '../adapters/grpc/grpc-types.js'
import { grpcHealthProbe } from '../adapters/grpc/health.js'
import { grpcProtocol } from '../adapters/grpc/protocol.js'
import { grpcQuotaSignals } from '../adapters/grpc/quota-signals.js'
import {
  type GrpcMethodKind,
  type GrpcRequest,
  type GrpcResponse,
  methodKind,
  serviceOfTarget,
} from '../adapters/grpc/request.js'
import { emptyLike, grpcTransport } from '../adapters/grpc/transport.js'
import { fitsUnaryLayer, type UnaryMethodDefinition, unaryMethod } from '../adapters/grpc/unary.js'
import { bearerOptions, grpcBearer } from '../adapters/identity/bearer.js'
import { TlsClient } from '../adapters/tls/client.js'
import { typedTlsFailures } from '../adapters/tls/grpc.js'
import type { Clock } from '../core/clock.js'
import type { Context } from '../core/context.js'
import { TlsMaterialError, UnknownServiceError } from '../core/errors.js'
import type { Handler, Middleware } from '../core/handler.js'
import type { CircuitBreaker } from '../stages/circuit-breaker/breaker.js'
import { fault } from '../stages/fault/fault.js'
import { egressDenial } from '../stages/policy/egress.js'
import type { RouteView } from '../stages/router/router.js'
import type { MeshConfig, ResolvedRoute, ResolvedServiceConfig } from './config/config.js'
import { createMesh, isMesh, type Mesh } from './mesh.js'
import { type QuotaKeyReader, templateParam } from './quota.js'
import { effectiveConfig } from './route-policy.js'
import { destinationKey, type ServiceRuntime, type Snapshot } from './runtime.js'
import { buildStack } from './stack.js'
import { tlsClientOf } from './tls.js'

/** Options of {@link withMeshGrpc}. */
export interface WithMeshGrpcOptions {
  /**
   * Channel credentials of the endpoint channels, in place of the client's own
   * (`grpc.credentials.createSsl(...)`). Default: the credentials the client was made with
   * (read from its channel; decision D36). A client whose channel meshlet cannot read (a
   * `channelOverride`, a `channelFactoryOverride`) must be given them, else `withMesh` throws
   * `CredentialsUnavailableError` rather than send its calls with other credentials.
   */
  readonly credentials?: object
  /**
   * grpc-js channel options of the endpoint channels, over the client's own (key by key), under
   * a destination service's `channelOptions` in the config. Default `{}`: the client's options
   * alone, plus `grpc.default_authority` and (with secure credentials)
   * `grpc.ssl_target_name_override` derived from the client's target when it did not set them
   * (see docs/grpc.md).
   */
  readonly channelOptions?: Readonly<Record<string, unknown>>
  /**
   * Whether unary methods run on meshlet's own unary call layer (the steps of grpc-js's
   * `makeUnaryRequest`, without its interceptor chain; decision D26) when neither the client nor
   * the call has interceptors. Default `true`. `false`: every call goes through grpc-js's client
   * layer, as calls with interceptors always do.
   */
  readonly directUnary?: boolean
}

/** Where a call goes: the destination's service and the handler calls of its kind run. */
interface Destination {
  readonly svc: ServiceRuntime
  readonly handler: Handler<GrpcRequest, GrpcResponse>
}

/** A transport over one pool of endpoint channels (stacks over it are cached by each destination). */
interface PoolTransport {
  /** The settings of its endpoint channels. */
  readonly settings: EndpointChannelSettings
  readonly pool: GrpcChannelPool
  readonly transport: Handler<GrpcRequest, GrpcResponse>
  /**
   * Where calls go in {@link ownSnapshot} when it has no routes, by the service their client's
   * target names (`undefined`: no gRPC service of that name): looked up once per snapshot
   * rather than per call, and forgotten when the configuration changes.
   */
  readonly own: Map<string, Destination | undefined>
  /** As {@link own}, for streaming calls (whose stacks have the service's `streamTimeout`). */
  readonly ownStreams: Map<string, Destination | undefined>
  ownSnapshot: Snapshot | undefined
  /** The key of the stacks of streaming calls over this pool (see {@link grpcStack}). */
  readonly streams: object
  /** Pools of services with `channelOptions`, by those options (see {@link poolFor}). */
  readonly variants: WeakMap<object, PoolTransport>
  /** Pools of services with `tls`, by their TLS client, then by `channelOptions`. */
  readonly tlsVariants: WeakMap<object, WeakMap<object, PoolTransport>>
}

/** The gRPC side of one mesh: its channel pools, kept in step with its configuration. */
class GrpcMeshRuntime {
  readonly mesh: Mesh
  readonly #pools = new Map<string, PoolTransport>()
  readonly #ids = new WeakMap<object, number>()
  /** Credentials of distinct pools, each unlike (`_equals`) the others. */
  readonly #credentials: object[] = []
  #nextId = 1

  constructor(mesh: Mesh) {
    this.mesh = mesh
    mesh.onSnapshot(() => this.#retain())
    mesh.onClose(() => {
      for (const { pool } of this.#pools.values()) pool.close()
    })
  }

  /**
   * The pool (and its transport) for these endpoint channel settings: clients with equal
   * settings (same credentials and `Channel` class by identity, equal options) share it.
   */
  pool(settings: EndpointChannelSettings, tls?: TlsClient | TlsMaterialError): PoolTransport {
    let key = settingsKey(settings, (o) =>
      o === settings.credentials ? this.#credentialsId(o) : this.#idOf(o),
    )
    if (tls !== undefined) key += `\u0000tls#${this.#idOf(tls)}`
    let entry = this.#pools.get(key)
    if (entry === undefined) {
      const pool = new GrpcChannelPool({
        credentials: settings.credentials,
        channelOptions: settings.options,
        Channel: settings.Channel,
        tls: tls instanceof TlsClient ? tls : undefined,
      })
      const failed = tls instanceof TlsMaterialError ? tls : undefined
      entry = {
        settings,
        pool,
        transport:
          failed !== undefined
            ? () => Promise.reject(failed)
            : tls instanceof TlsClient
              ? typedTlsFailures(
                  grpcTransport(pool, { deadlineAsMetadata: !pool.hasServiceConfig }),
                  tls.policy,
                )
              : grpcTransport(pool, { deadlineAsMetadata: !pool.hasServiceConfig }),
        own: new Map(),
        ownStreams: new Map(),
        ownSnapshot: undefined,
        streams: {},
        variants: new WeakMap(),
        tlsVariants: new WeakMap(),
      }
      this.#pools.set(key, entry)
    }
    return entry
  }

  /**
   * A number for channel credentials, the same for credentials grpc-js calls equal
   * (`ChannelCredentials._equals`: every insecure one, TLS ones with the same secure context and
   * verify options), as grpc-js's own subchannel pool shares connections between them.
   */
  #credentialsId(c: object): number {
    const known = this.#ids.get(c)
    if (known !== undefined) return known
    const equals = (c as { _equals?: (other: object) => boolean })._equals
    if (typeof equals === 'function') {
      for (const other of this.#credentials) {
        if (equals.call(c, other)) {
          const id = this.#idOf(other)
          this.#ids.set(c, id)
          return id
        }
      }
    }
    this.#credentials.push(c)
    return this.#idOf(c)
  }

  /** A number for an object, the same for the same object while it lives. */
  #idOf(o: object): number {
    let id = this.#ids.get(o)
    if (id === undefined) {
      id = this.#nextId++
      this.#ids.set(o, id)
    }
    return id
  }

  /** Retires the channels of endpoints the new configuration no longer lists. */
  #retain(): void {
    const addresses = new Set<string>()
    for (const svc of this.mesh.snapshot.services.values()) {
      if (svc.config.protocol === 'grpc') for (const e of svc.endpoints) addresses.add(e.address)
    }
    for (const pt of this.#pools.values()) {
      pt.pool.retain(addresses)
      pt.own.clear()
      pt.ownStreams.clear()
      pt.ownSnapshot = undefined
    }
  }
}

const runtimes = new WeakMap<Mesh, GrpcMeshRuntime>()

function runtimeOf(mesh: Mesh): GrpcMeshRuntime {
  let rt = runtimes.get(mesh)
  if (rt === undefined) {
    rt = new GrpcMeshRuntime(mesh)
    runtimes.set(mesh, rt)
  }
  return rt
}

/** The retryable (A6 retry) or non-fatal (A6 hedging) status codes of a service: `retry.retryableStatusCodes`. */
function retryableStatusCodesOf(config: ResolvedServiceConfig): readonly (string | number)[] {
  const codes = config.retry.retryableStatusCodes
  return codes ?? DEFAULT_GRPC_RETRYABLE_STATUS_CODES
}

/**
 * The handler a call of a gRPC destination (through `route`, when one matched) runs over `pt`:
 * its stack behind {@link callRunner}, built once per snapshot. Streaming calls have a stack of
 * their own, whose deadline is the service's `streamTimeout` rather than its `timeout` (D37).
 */
function grpcStack(
  svc: ServiceRuntime,
  route: ResolvedRoute | undefined,
  breaker: CircuitBreaker | undefined,
  m: Mesh,
  pt: PoolTransport,
  streaming: boolean,
): Handler<GrpcRequest, GrpcResponse> {
  const key = route ?? NO_ROUTE
  const by = streaming ? pt.streams : pt
  return (
    svc.cached<GrpcRequest, GrpcResponse>(by, key) ??
    svc.handler(by, key, () =>
      callRunner(buildGrpcStack(svc, route, breaker, m, poolFor(pt, svc, m), streaming)),
    )
  )
}

/**
 * What `mesh.invoke` runs for each call of a destination: binds the call's cancellation to the
 * call, applies the caller's own deadline (`CallOptions.deadline`) when it is the earlier one,
 * and runs `stack`. Every per-call input comes from the request's call (`req.io`), so one
 * runner serves every call of the destination.
 */
function callRunner(stack: Handler<GrpcRequest, GrpcResponse>): Handler<GrpcRequest, GrpcResponse> {
  return function grpcCall(req: GrpcRequest, ctx: Context) {
    const call = req.io as MeshCall
    call.bindCancel(ctx.cancel)
    const callerDeadline = call.deadline
    if (callerDeadline === Number.POSITIVE_INFINITY) return stack(req, ctx)
    const limit = deadlineOnClock(callerDeadline, ctx.clock)
    return stack(req, limit < ctx.deadline ? ctx.withDeadline(limit) : ctx)
  }
}

const NO_ROUTE = {}

/**
 * The pool that calls of `svc` from clients of `pt` use: `pt` itself, unless the service's config
 * has `channelOptions`, which then apply over `pt`'s settings, key by key (D36). Found once per
 * stack built and per connectivity query, never per call.
 */
function poolFor(pt: PoolTransport, svc: ServiceRuntime, m: Mesh): PoolTransport {
  const extra = svc.config.channelOptions
  const tlsSettings = svc.config.tls
  if (extra === undefined && tlsSettings === undefined) return pt
  // A service's `tls` takes precedence over the wrapped client's own credentials.
  const tls = tlsSettings === undefined ? undefined : tlsClientOf(m, svc.service, tlsSettings)
  const byExtra = extra ?? NO_EXTRA
  let variants = pt.variants
  if (tls !== undefined) {
    let inner = pt.tlsVariants.get(tls)
    if (inner === undefined) {
      inner = new WeakMap()
      pt.tlsVariants.set(tls, inner)
    }
    variants = inner
  }
  let variant = variants.get(byExtra)
  if (variant === undefined) {
    const { settings } = pt
    variant = runtimeOf(m).pool(
      extra === undefined ? settings : { ...settings, options: { ...settings.options, ...extra } },
      tls,
    )
    variants.set(byExtra, variant)
  }
  return variant
}

const NO_EXTRA = {}

/** A trailers-only answer with `code`: what an injected gRPC abort answers. */
function grpcAbort(req: GrpcRequest, code: number): Promise<GrpcResponse> {
  const metadata = emptyLike(req.metadata)
  metadata.set('x-meshlet-fault', 'abort')
  return Promise.resolve({
    status: { code, details: 'fault filter abort', metadata },
    headers: undefined,
    message: undefined,
    committed: false,
    attempt: 0,
    peer: '',
  })
}

function buildGrpcStack(
  svc: ServiceRuntime,
  route: ResolvedRoute | undefined,
  breaker: CircuitBreaker | undefined,
  m: Mesh,
  pt: PoolTransport,
  streaming: boolean,
): Handler<GrpcRequest, GrpcResponse> {
  const routed = effectiveConfig(svc.config, route)
  // A stream's deadline is `streamTimeout` (default none), never the unary `timeout` (D37).
  const config = streaming ? { ...routed, timeout: svc.config.streamTimeout ?? 0 } : routed
  const f = route?.fault
  const faultStage =
    f && (f.abort || f.delay)
      ? fault<GrpcRequest, GrpcResponse>({
          abort: f.abort ? { percent: f.abort.percent, status: f.abort.grpcStatus } : undefined,
          delay: f.delay,
          abortWith: grpcAbort,
        })
      : undefined
  return buildStack(
    {
      name: svc.name,
      config,
      endpoints: svc.endpoints,
      strategy: svc.strategy,
      classify: grpcClassifier(retryableStatusCodesOf(config)),
      protocol: grpcProtocol,
      // Hedging sends the same request to several endpoints at once: unary calls only.
      idempotent: (req) => req.kind === 'unary',
      budget: svc.budget,
      latency: svc.latency,
      health: svc.health,
      probe: svc.config.healthCheck === undefined ? undefined : grpcHealthProbe({ channels: pt.pool }),
      breaker,
      bulkhead: svc.bulkhead as Middleware<GrpcRequest, GrpcResponse> | undefined,
      quota: m.quota.stage(svc.name, config, route, grpcQuotaKey, grpcQuotaSignals, m.events),
      // A static fallback is an HTTP response; gRPC services have none (yet).
      fallback: undefined,
      faultCall: f?.scope === 'call' ? faultStage : undefined,
      faultAttempt: f?.scope === 'attempt' ? faultStage : undefined,
      events: m.events,
      // The mesh's own timeout is not written into grpc-timeout unless asked (D27); the
      // caller's CallOptions.deadline and inherited deadlines still are.
      localTimeout: config.propagateDeadline !== true,
    },
    withToken(svc, m, pt.transport),
  )
}

/** `transport`, with the service's bearer token in each attempt's metadata when it has one. */
function withToken(
  svc: ServiceRuntime,
  m: Mesh,
  transport: Handler<GrpcRequest, GrpcResponse>,
): Handler<GrpcRequest, GrpcResponse> {
  const tokens = m.tokenSource(svc.service.toLowerCase())
  if (tokens === undefined) return transport
  return grpcBearer(transport, tokens, bearerOptions(svc.config.auth)) as Handler<GrpcRequest, GrpcResponse>
}

/** A route view of a gRPC call: the path is the full method name, headers are its metadata. */
class GrpcRouteView implements RouteView {
  readonly method = 'POST'
  constructor(
    readonly host: string,
    readonly path: string,
    readonly metadata: GrpcMetadata,
  ) {}
  header(name: string): string | undefined {
    const v = this.metadata.get(name)[0]
    return v === undefined ? undefined : typeof v === 'string' ? v : v.toString()
  }
  query(): undefined {
    return undefined
  }
  cookie(): undefined {
    return undefined
  }
}

/** The router's answer for one call. */
type RouteDecision = NonNullable<ReturnType<Snapshot['router']['route']>>

/**
 * Where a gRPC call goes: the first matching route's destination (`routed`, when it was chosen
 * at the call's start; routes see the full method name and the metadata), else the service its target names. `undefined` when that is no gRPC
 * service of the snapshot.
 */
function destinationOf(
  snapshot: Snapshot,
  service: string,
  call: MeshCall,
  m: Mesh,
  pt: PoolTransport,
  routed?: RouteDecision,
): Destination | undefined {
  const own = snapshot.hosts.get(service)
  if (!snapshot.router.empty) {
    const decision =
      routed ??
      snapshot.router.route(new GrpcRouteView(own?.host ?? service, call.path, call.metadata), m.random)
    if (decision !== undefined) {
      const { destination, route, index } = decision
      const dest = snapshot.destinations.get(destinationKey(destination.service, destination.subset))
      if (dest === undefined || dest.config.protocol !== 'grpc') return undefined
      const breaker = route.circuitBreaker
        ? snapshot.routeBreakers.get(`${dest.name}#${index}`)
        : dest.breaker
      return { svc: dest, handler: grpcStack(dest, route, breaker, m, pt, call.kind !== 'unary') }
    }
  }
  if (own === undefined || own.config.protocol !== 'grpc') return undefined
  return { svc: own, handler: grpcStack(own, undefined, own.breaker, m, pt, call.kind !== 'unary') }
}

/** The caller's deadline (wall clock: a `Date` or epoch ms) on `clock`'s timeline. */
function deadlineOnClock(deadline: Date | number, clock: Clock): number {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline
  if (!Number.isFinite(ms)) return ms
  return clock.now() + (ms - clock.wall())
}

/** The shape of each method the client's class defines, by full method name. */
function methodKinds(client: object): Map<string, GrpcMethodKind> {
  const kinds = new Map<string, GrpcMethodKind>()
  for (let p: unknown = Object.getPrototypeOf(client); p !== null && p !== Object.prototype; ) {
    const ctor = (p as { constructor?: { service?: unknown } }).constructor
    const service = ctor?.service
    if (service !== null && typeof service === 'object') {
      for (const def of Object.values(service as Record<string, GrpcMethodDefinitionLike>)) {
        if (def && typeof def.path === 'string' && !kinds.has(def.path))
          kinds.set(def.path, methodKind(Boolean(def.requestStream), Boolean(def.responseStream)))
      }
    }
    p = Object.getPrototypeOf(p)
  }
  return kinds
}

/** The prototype that defines the service's methods (`makeClientConstructor`'s class). */
function serviceMethods(client: object): Record<string, unknown> | undefined {
  for (let p: unknown = Object.getPrototypeOf(client); p !== null && p !== Object.prototype; ) {
    if (Object.hasOwn(p as object, 'constructor')) {
      const ctor = (p as { constructor: { service?: unknown } }).constructor
      if (ctor.service !== null && typeof ctor.service === 'object') return p as Record<string, unknown>
    }
    p = Object.getPrototypeOf(p)
  }
  return undefined
}

/**
 * The unary methods of the client's class, by the function that implements them (a method and
 * its `originalName` alias share one): read from the class that owns the service definition
 * (`makeClientConstructor`'s), not from a subclass.
 */
function unaryDefinitions(client: object): Map<unknown, UnaryMethodDefinition> {
  const defs = new Map<unknown, UnaryMethodDefinition>()
  for (let p: unknown = Object.getPrototypeOf(client); p !== null && p !== Object.prototype; ) {
    const ctor = Object.hasOwn(p as object, 'constructor')
      ? (p as { constructor: { service?: unknown } }).constructor
      : undefined
    if (
      ctor !== undefined &&
      Object.hasOwn(ctor, 'service') &&
      ctor.service !== null &&
      typeof ctor.service === 'object'
    ) {
      const proto = p as Record<string, unknown>
      for (const [name, def] of Object.entries(
        ctor.service as Record<string, UnaryMethodDefinition & GrpcMethodDefinitionLike>,
      )) {
        const fn = Object.hasOwn(proto, name) ? proto[name] : undefined
        if (
          typeof fn === 'function' &&
          def &&
          !def.requestStream &&
          !def.responseStream &&
          typeof def.path === 'string' &&
          typeof def.requestSerialize === 'function' &&
          typeof def.responseDeserialize === 'function'
        )
          defs.set(fn, def)
      }
      return defs
    }
    p = Object.getPrototypeOf(p)
  }
  return defs
}

/**
 * Wraps a grpc-js client (made by `makeClientConstructor`, `loadPackageDefinition` or generated
 * code) so that its calls to the gRPC service named by its target go through `mesh`: routed,
 * balanced over the service's endpoints, retried and hedged after gRFC A6, given the service's
 * deadline, guarded by its breaker. The result is the same client (an object that inherits from
 * it and holds the mesh channel in its place): same type,
 * same methods and overloads (`(req, cb)`, `(req, metadata, cb)`, `(req, options, cb)`,
 * `(req, metadata, options, cb)`), same call objects and events, errors as grpc-js
 * `ServiceError`s (mesh failures carry `meshCode` and `cause`; see docs/grpc.md).
 *
 * `mesh` may be a config (a mesh is then created). Each endpoint gets its own channel from the
 * mesh, created on first use and closed when the endpoint leaves the config or the mesh closes;
 * `client.close()` closes only the client's own channel. Endpoint channels are built with the
 * client's own channel credentials and options, and announce and authenticate the client's
 * target (D36; `options` may override); a client whose channel cannot be read throws
 * `CredentialsUnavailableError` unless `options.credentials` is given. Streaming calls take the
 * service's `streamTimeout` (default none), not its `timeout` (D37).
 *
 * @example
 * ```ts
 * import { credentials, loadPackageDefinition } from '@grpc/grpc-js'
 * import { createMesh, withMeshGrpc } from 'meshlet'
 * const mesh = createMesh({ services: { users: { protocol: 'grpc', endpoints: ['127.0.0.1:50051'] } } })
 * // const users = withMeshGrpc(new pkg.Users('users', credentials.createInsecure()), mesh)
 * // users.getUser({ id: 42 }, (err, user) => { ... })
 * ```
 */
export function withMeshGrpc<C extends GrpcClientLike>(
  client: C,
  mesh: Mesh | MeshConfig,
  options: WithMeshGrpcOptions = {},
): C {
  if (client === null || typeof client !== 'object' || typeof client.getChannel !== 'function') {
    throw new TypeError('withMesh: expected a grpc-js client (an object with getChannel())')
  }
  const original = client.getChannel() as GrpcChannel
  // grpc-js keeps the channel in a private symbol-keyed slot that every call reads.
  const slot = Object.getOwnPropertySymbols(client).find(
    (s) => (client as unknown as Record<symbol, unknown>)[s] === original,
  )
  if (slot === undefined) {
    throw new TypeError('withMesh: this client does not hold its channel as @grpc/grpc-js 1.x clients do')
  }
  // Read before the mesh is made: a client that cannot keep its credentials is refused first.
  // A client wrapped again keeps the settings of the client under the first wrapper.
  const own = original instanceof MeshChannel ? original.clientChannel : original
  const settings = endpointChannelSettings(own, original.getTarget(), options)
  const m = isMesh(mesh) ? mesh : createMesh(mesh)
  const pt = runtimeOf(m).pool(settings)
  const service = serviceOfTarget(original.getTarget())
  const kinds = methodKinds(client)

  const site: MeshCallSite = {
    invoke(call, scope) {
      const snapshot = scope as Snapshot
      const target = service as string
      if (snapshot.egress !== undefined) {
        // access policy: on the service the target names, before routing, quota and the network
        // (stack.ts's order); gRPC reads ACCESS_DENIED as PERMISSION_DENIED.
        const named = snapshot.hosts.get(target)?.name ?? target
        const md = call.metadata
        const denied = egressDenial(snapshot.egress, named, 'POST', call.path, (name) => {
          const v = md.get(name)
          return v.length === 0 ? undefined : v.map(String).join(',')
        })
        if (denied) {
          queueMicrotask(() => call.rejected(denied))
          return
        }
      }
      let dest: Destination | undefined
      if (snapshot.router.empty) {
        // Every call goes to the target's own service: look it up once per snapshot.
        if (pt.ownSnapshot !== snapshot) {
          pt.own.clear()
          pt.ownStreams.clear()
          pt.ownSnapshot = snapshot
        }
        const own = call.kind === 'unary' ? pt.own : pt.ownStreams
        dest = own.get(target)
        if (dest === undefined && !own.has(target)) {
          dest = destinationOf(snapshot, target, call, m, pt)
          own.set(target, dest)
        }
      } else {
        dest = destinationOf(snapshot, target, call, m, pt, call.routed as RouteDecision | undefined)
      }
      if (dest === undefined) {
        queueMicrotask(() => call.rejected(new UnknownServiceError(target)))
        return
      }
      const req: GrpcRequest = {
        service: dest.svc.service,
        path: call.path,
        kind: call.kind,
        metadata: call.metadata,
        io: call,
        propagateDeadline: dest.svc.config.propagateDeadline !== false,
      }
      m.run(dest.handler, req, call)
    },
    committed(_call, cancel) {
      const token = m.hold()
      const off = token.onAbort(cancel)
      return () => {
        off()
        m.release(token)
      }
    },
    bypass(call, scope) {
      // Only a target that names no gRPC service of a mesh with routes gets here undecided: a
      // route may still take the call (it reads the metadata, known now); if none does, the call
      // goes to the client's own channel, as it would with no routes, unless the mesh is strict.
      const snapshot = scope as Snapshot
      if (snapshot.strict || snapshot.router.empty || service === undefined) return undefined
      const own = snapshot.hosts.get(service)
      if (own !== undefined && own.config.protocol === 'grpc') return undefined
      const decision = snapshot.router.route(
        new GrpcRouteView(own?.host ?? service, call.path, call.metadata),
        m.random,
      )
      if (decision !== undefined) {
        call.routed = decision
        return undefined
      }
      return original.createCall(call.path, call.deadline, call.host, call.parent, call.propagateFlags)
    },
  }

  const channel = new MeshChannel(original, {
    createCall(path, deadline, host, parent, propagateFlags): MeshCall | undefined {
      const snapshot = m.snapshot
      const own = service === undefined ? undefined : snapshot.hosts.get(service)
      const meshed = own !== undefined && own.config.protocol === 'grpc'
      if (service === undefined || (!meshed && snapshot.router.empty)) {
        if (!snapshot.strict || service === undefined) return undefined
      }
      const kind = kinds.get(path) ?? 'bidi'
      return new MeshCall(site, snapshot, path, kind, deadline, host, parent, propagateFlags)
    },
    endpointChannels() {
      const svc = service === undefined ? undefined : m.snapshot.hosts.get(service)
      if (svc === undefined || svc.config.protocol !== 'grpc') return []
      const channels: GrpcChannel[] = []
      const { pool } = poolFor(pt, svc, m)
      for (const e of svc.endpoints) {
        const c = pool.channel(e.address)
        if (c !== undefined) channels.push(c)
      }
      return channels
    },
    load() {
      const svc = service === undefined ? undefined : m.snapshot.hosts.get(service)
      const ptOf = svc === undefined || svc.config.protocol !== 'grpc' ? pt : poolFor(pt, svc, m)
      return ptOf.pool.load()
    },
  })

  // The wrapped client inherits from the client: every field and method is found on it, only the
  // channel slot is its own. A Proxy would run a trap on each of the several property reads
  // grpc-js makes per call.
  const wrapped = Object.create(client) as C
  Object.defineProperty(wrapped, slot, { value: channel, writable: true, configurable: true })
  // Generated code that defines each method as an instance arrow function calling `super.method`
  // binds `this` to the unwrapped client: the wrapper has the class's method instead.
  const methods = serviceMethods(client)
  if (methods !== undefined) {
    for (const key of Object.getOwnPropertyNames(client)) {
      const own = methods[key]
      if (typeof own === 'function' && typeof (client as Record<string, unknown>)[key] === 'function') {
        Object.defineProperty(wrapped, key, { value: own, writable: true, configurable: true })
      }
    }
  }
  if (options.directUnary !== false && fitsUnaryLayer(client, slot)) {
    // Unary methods on meshlet's unary layer (see adapters/grpc/unary.ts): each name whose
    // function is the class's own (on the wrapper, or found through the client), not one a
    // subclass or the application put in its place.
    const defs = unaryDefinitions(client)
    const names = new Set<string>()
    for (let p: unknown = wrapped; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p))
      for (const key of Object.getOwnPropertyNames(p)) names.add(key)
    for (const key of names) {
      const fn = (wrapped as unknown as Record<string, unknown>)[key]
      const def = defs.get(fn)
      if (def === undefined) continue
      const viaGrpc = fn as (...args: unknown[]) => unknown
      Object.defineProperty(wrapped, key, {
        value: unaryMethod(def, slot, viaGrpc),
        writable: true,
        configurable: true,
      })
    }
  }
  return wrapped
}

/** The key of a gRPC call's bucket: a metadata value, or a parameter of the route's path template. */
const grpcQuotaKey: QuotaKeyReader<GrpcRequest> = (key, route) => {
  if ('header' in key) {
    const name = key.header.toLowerCase()
    return (req) => {
      const values = req.metadata.get(name)
      const first = values[0]
      return typeof first === 'string' ? first : undefined
    }
  }
  const param = templateParam(route, key.param)
  return param === undefined ? undefined : (req) => param(req.path)
}
