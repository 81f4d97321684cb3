/**
 * Service discovery: finds each discovered service's endpoint set (DNS or a custom resolver) and
 * hands it to the mesh, which swaps in a new snapshot with that set in place of the service's
 * configured `endpoints`.
 *
 * There is one way endpoints change, discovered or configured: a new resolved config goes
 * through `buildSnapshot`, whose pool keeps the live state of an endpoint for as long as the same
 * service keeps the same address. So a surviving endpoint keeps its load counters, latency and
 * health; an added one starts cold; a removed one drains, since a call in flight finishes on the
 * snapshot it started with, retries included, while new calls see the new set only.
 *
 * A resolution that fails, answers nothing or yields an invalid set changes nothing: the last
 * good set stays (as Envoy's and gRPC's DNS resolvers keep serving their last answer), and a
 * `discovery-error` event says why. Endpoints that vanished from DNS because the DNS server is
 * down are not gone; dropping them all would turn a resolver outage into a service outage.
 *
 * Cost: one timer per polled service (DNS or a resolver function), armed on the injected clock
 * after each resolution ends (so two never overlap), `refresh` plus up to 10% jitter so that many
 * clients started together drift apart (as health checks do); none for an async iterable, which
 * is read as it yields. `close` clears every timer, cancels the DNS queries in flight and ends
 * the iterables.
 */
import type { Clock, TimerHandle } from '../../core/clock.js'
import { ConfigInvalidError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import type { Random } from '../../core/random.js'
import {
  parseConfig,
  type ResolvedEndpoint,
  type ResolvedMeshConfig,
  type ResolvedServiceConfig,
  type ServiceConfig,
} from '../config/config.js'
import { type DnsClient, type DnsOptions, dnsClient, resolveDns } from './dns.js'

/** One endpoint as a custom resolver gives it: as in config, a URL (`host:port` for grpc) or an object. */
export type EndpointInput = NonNullable<ServiceConfig['endpoints']>[number]

/**
 * A custom resolver of one service's endpoints, used while the service's config has `discovery`
 * (it wins over `discovery.dns`): a function called at once and then every `discovery.refresh`
 * (its signal aborts when the mesh closes or the service goes away, or when it has not answered
 * within `max(refresh, 5 s)`: that poll then fails, the last good set stays, and polling goes
 * on), or an async iterable read
 * as it yields, each value replacing the whole set. An iterable is read once: ended by the mesh
 * (close, discovery removed) or by itself, it is not read again.
 */
export type EndpointResolver =
  | ((signal: AbortSignal) => Promise<readonly EndpointInput[]> | readonly EndpointInput[])
  | AsyncIterable<readonly EndpointInput[]>

/**
 * The least time a resolver function gets to answer; the limit is `max(refresh, this)`. After it
 * the resolver's signal aborts and the poll counts as failed.
 */
const MIN_RESOLVE_TIMEOUT = 5_000

/** Share of the refresh interval added at random to each wait. */
const JITTER = 0.1

/** What {@link Discovery} is built with. */
export interface DiscoveryOptions {
  readonly clock: Clock
  readonly random: Random
  readonly events: Events
  /** Custom resolvers by service name, for services with `discovery`; they win over `discovery.dns`. Default none. */
  readonly resolvers?: Readonly<Record<string, EndpointResolver>> | undefined
  /** DNS settings (servers, timeout, tries). Default: the system's resolver. */
  readonly dns?: DnsOptions | undefined
  /** Called after a service's set changed; the mesh rebuilds its snapshot with {@link Discovery.apply}. */
  readonly onChange: (service: string) => void
}

/** One discovered service: where its endpoints come from, the last good set, its one timer. */
interface Watch {
  readonly service: string
  /** Identifies the source: a change of it (another DNS name, another protocol) starts afresh. */
  readonly key: string
  readonly protocol: ResolvedServiceConfig['protocol']
  refresh: number
  /** The last good set; `undefined` until the first good resolution. */
  set: ResolvedEndpoint[] | undefined
  /** {@link set} in a canonical form, to tell a new answer from the same one. */
  fingerprint: string
  /** The service config and set that {@link merged} was built from, and the result. */
  merged: { readonly base: ResolvedServiceConfig; readonly service: ResolvedServiceConfig } | undefined
  timer: TimerHandle | undefined
  /** Aborts a resolver function's call in flight. */
  abort: AbortController | undefined
  iterator: AsyncIterator<readonly EndpointInput[]> | undefined
  stopped: boolean
  settled: boolean
  readonly first: Promise<void>
  readonly settle: () => void
}

/** The discovery of every discovered service of a mesh; see the module comment. */
export class Discovery {
  readonly #o: DiscoveryOptions
  readonly #watches = new Map<string, Watch>()
  #dns: DnsClient | undefined = undefined
  #config: ResolvedMeshConfig | undefined = undefined
  #closed = false

  constructor(options: DiscoveryOptions) {
    this.#o = options
  }

  /**
   * Throws `ConfigInvalidError` when a service of `config` has `discovery` with no `dns` and no
   * custom resolver: nothing would ever find its endpoints.
   */
  check(config: ResolvedMeshConfig): void {
    const issues = Object.entries(config.services)
      .filter(
        ([name, s]) => s.discovery !== undefined && s.discovery.dns === undefined && !this.#resolver(name),
      )
      .map(([name]) => ({
        path: `services.${name}.discovery.dns`,
        message: 'required unless createMesh is given a resolver for this service (options.resolvers)',
      }))
    if (issues.length > 0) throw new ConfigInvalidError(issues)
  }

  /**
   * Follows a new config: starts discovering services that gained a source, stops those that
   * lost it or left the config (their timer is cleared), restarts those whose source changed,
   * and takes a new `refresh` at the next wait. A service whose source stays keeps its set.
   */
  sync(config: ResolvedMeshConfig): void {
    this.#config = config
    if (this.#closed) return
    for (const [name, watch] of this.#watches) {
      const service = config.services[name]
      if (service === undefined || this.#keyOf(name, service) !== watch.key) this.#stop(watch)
    }
    for (const [name, service] of Object.entries(config.services)) {
      const key = this.#keyOf(name, service)
      if (key === undefined) continue
      const refresh = service.discovery!.refresh
      const watch = this.#watches.get(name)
      if (watch === undefined) this.#start(name, key, service.protocol, refresh)
      else if (watch.refresh !== refresh) {
        watch.refresh = refresh
        if (watch.timer !== undefined) {
          this.#o.clock.clearTimer(watch.timer)
          this.#schedule(watch)
        }
      }
    }
  }

  /**
   * `config` with each discovered service's `endpoints` replaced by its last good set; `config`
   * itself when no set was found yet. A service whose set and config did not change keeps its
   * very object from one call to the next.
   */
  apply(config: ResolvedMeshConfig): ResolvedMeshConfig {
    let services: Record<string, ResolvedServiceConfig> | undefined
    for (const [name, base] of Object.entries(config.services)) {
      const watch = this.#watches.get(name)
      if (watch?.set === undefined) continue
      let merged = watch.merged
      if (merged?.base !== base || merged.service.endpoints !== watch.set) {
        merged = { base, service: Object.freeze({ ...base, endpoints: watch.set }) }
        watch.merged = merged
      }
      services ??= { ...config.services }
      services[name] = merged.service
    }
    if (services === undefined) return config
    return Object.freeze({ ...config, services: Object.freeze(services) })
  }

  /**
   * Resolves when every service discovered now has had its first resolution, good or not (an
   * async iterable: its first value, or its end).
   */
  async ready(): Promise<void> {
    await Promise.all([...this.#watches.values()].map((w) => w.first))
  }

  /** Timers armed now (at most one per polled service). */
  get timers(): number {
    let n = 0
    for (const w of this.#watches.values()) if (w.timer !== undefined) n++
    return n
  }

  /** The services discovered now. */
  get services(): readonly string[] {
    return [...this.#watches.keys()]
  }

  /** Stops everything for good: timers, DNS queries, resolver calls and iterables. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const watch of this.#watches.values()) this.#stop(watch)
    this.#dns?.cancel()
  }

  #resolver(name: string): EndpointResolver | undefined {
    const resolvers = this.#o.resolvers
    return resolvers !== undefined && Object.hasOwn(resolvers, name) ? resolvers[name] : undefined
  }

  #keyOf(name: string, service: ResolvedServiceConfig): string | undefined {
    const d = service.discovery
    if (d === undefined) return undefined
    if (this.#resolver(name) !== undefined) return `custom|${service.protocol}`
    return ['dns', service.protocol, d.type, d.dns, d.port, d.scheme].join('|')
  }

  #start(service: string, key: string, protocol: Watch['protocol'], refresh: number): void {
    let settle!: () => void
    const first = new Promise<void>((resolve) => {
      settle = resolve
    })
    const watch: Watch = {
      service,
      key,
      protocol,
      refresh,
      set: undefined,
      fingerprint: '',
      merged: undefined,
      timer: undefined,
      abort: undefined,
      iterator: undefined,
      stopped: false,
      settled: false,
      first,
      settle,
    }
    this.#watches.set(service, watch)
    const resolver = this.#resolver(service)
    if (resolver !== undefined && typeof resolver !== 'function') void this.#read(watch, resolver)
    else void this.#poll(watch)
  }

  #stop(watch: Watch): void {
    watch.stopped = true
    this.#watches.delete(watch.service)
    if (watch.timer !== undefined) this.#o.clock.clearTimer(watch.timer)
    watch.timer = undefined
    watch.abort?.abort()
    const iterator = watch.iterator
    watch.iterator = undefined
    // An async generator queues return() behind a pending next(): do not wait for it.
    if (iterator?.return) Promise.resolve(iterator.return()).catch(() => {})
    this.#settle(watch)
  }

  #settle(watch: Watch): void {
    if (watch.settled) return
    watch.settled = true
    watch.settle()
  }

  #schedule(watch: Watch): void {
    if (watch.stopped) return
    const delay = watch.refresh * (1 + JITTER * this.#o.random.next())
    watch.timer = this.#o.clock.setTimer(() => {
      watch.timer = undefined
      void this.#poll(watch)
    }, delay)
  }

  /** One resolution of a polled service (DNS or a resolver function), then the next wait. */
  async #poll(watch: Watch): Promise<void> {
    let answer: readonly EndpointInput[]
    try {
      answer = await this.#resolve(watch)
    } catch (error) {
      if (watch.stopped) return
      this.#failed(watch, error)
      this.#schedule(watch)
      return
    }
    if (watch.stopped) return
    this.#accept(watch, answer)
    this.#schedule(watch)
  }

  async #resolve(watch: Watch): Promise<readonly EndpointInput[]> {
    const resolver = this.#resolver(watch.service)
    if (typeof resolver === 'function') {
      const abort = new AbortController()
      watch.abort = abort
      // A resolver that never settles must not stop the polling: after the limit its signal
      // aborts and the poll counts as failed (the last good set stays).
      const limit = Math.max(watch.refresh, MIN_RESOLVE_TIMEOUT)
      let timer: TimerHandle | undefined
      // Settles when the limit passes or the watch stops (close, service gone), whichever first.
      const expired = new Promise<never>((_, reject) => {
        timer = this.#o.clock.setTimer(() => {
          timer = undefined
          abort.abort(new Error(`the resolver did not answer within ${limit} ms`))
        }, limit)
        abort.signal.addEventListener(
          'abort',
          () => {
            if (timer !== undefined) this.#o.clock.clearTimer(timer)
            timer = undefined
            reject(abort.signal.reason)
          },
          { once: true },
        )
      })
      try {
        return await Promise.race([resolver(abort.signal), expired])
      } finally {
        if (timer !== undefined) this.#o.clock.clearTimer(timer)
        if (watch.abort === abort) watch.abort = undefined
      }
    }
    const d = this.#config?.services[watch.service]?.discovery
    if (d?.dns === undefined) return []
    this.#dns ??= dnsClient(this.#o.dns)
    return resolveDns(this.#dns, {
      name: d.dns,
      type: d.type,
      port: d.port,
      scheme: d.scheme,
      protocol: watch.protocol,
    })
  }

  /** Reads an async iterable resolver until it ends or the watch stops. */
  async #read(watch: Watch, source: AsyncIterable<readonly EndpointInput[]>): Promise<void> {
    try {
      const iterator = source[Symbol.asyncIterator]()
      watch.iterator = iterator
      for (;;) {
        const next = await iterator.next()
        if (watch.stopped || next.done) break
        this.#accept(watch, next.value)
      }
    } catch (error) {
      if (!watch.stopped) this.#failed(watch, error)
    }
    watch.iterator = undefined
    this.#settle(watch)
  }

  /** Validates an answer; a good one that differs from the last becomes the set. */
  #accept(watch: Watch, answer: readonly EndpointInput[]): void {
    let set: ResolvedEndpoint[]
    try {
      set = this.#validate(watch, answer)
    } catch (error) {
      this.#failed(watch, error)
      return
    }
    const fingerprint = JSON.stringify([...set].sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0)))
    if (watch.set !== undefined && fingerprint === watch.fingerprint) {
      this.#settle(watch)
      return
    }
    const before = watch.set ?? this.#config?.services[watch.service]?.endpoints ?? []
    watch.set = set
    watch.fingerprint = fingerprint
    this.#o.onChange(watch.service)
    this.#settle(watch)
    const events = this.#o.events
    if (events.has('discovery-updated')) {
      const old = new Set(before.map((e) => e.url))
      const now = new Set(set.map((e) => e.url))
      events.emit('discovery-updated', {
        service: watch.service,
        endpoints: set.length,
        added: [...now].filter((url) => !old.has(url)),
        removed: [...old].filter((url) => !now.has(url)),
      })
    }
  }

  /** The answer parsed as the service's `endpoints` would be: same rules, same messages. */
  #validate(watch: Watch, answer: readonly EndpointInput[]): ResolvedEndpoint[] {
    if (!Array.isArray(answer)) {
      throw new TypeError(`${watch.service}: expected an array of endpoints from the resolver`)
    }
    if (answer.length === 0) throw new Error(`${watch.service}: the resolver found no endpoint`)
    const parsed = parseConfig({
      services: { [watch.service]: { protocol: watch.protocol, endpoints: answer } },
    })
    return parsed.services[watch.service]!.endpoints
  }

  #failed(watch: Watch, error: unknown): void {
    this.#settle(watch)
    const events = this.#o.events
    if (events.has('discovery-error')) {
      const kept = watch.set ?? this.#config?.services[watch.service]?.endpoints ?? []
      events.emit('discovery-error', { service: watch.service, error, endpoints: kept.length })
    }
  }
}
