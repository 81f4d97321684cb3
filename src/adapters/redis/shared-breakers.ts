/**
 * Fleet-wide breaker state: the breakers of one destination in many processes share their
 * open and closed transitions through Redis pub/sub, so a destination one process found broken
 * fails fast everywhere within a message's latency (D59). A quorum keeps one bad instance from
 * poisoning the fleet: a process opens on others' word only when `quorum` distinct processes
 * opened. One process probes a half-open destination for the fleet: the first to open takes a
 * lease key (`SET NX PX`); the others stay open a probe window longer and close when its probe
 * succeeds. Redis is advice, never a dependency: when it is unreachable, every breaker decides
 * alone, exactly as without this module.
 */

import { randomUUID } from 'node:crypto'
import { type Clock, systemClock } from '../../core/clock.js'
import type { CircuitBreaker } from '../../stages/circuit-breaker/breaker.js'

/** The part of an ioredis client used here (`Redis`); a subscriber needs its own connection. */
export interface PubSubClientLike {
  publish(channel: string, message: string): Promise<unknown>
  subscribe(...channels: string[]): Promise<unknown>
  unsubscribe(...channels: string[]): Promise<unknown>
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<unknown>
  on(event: string, listener: (...args: unknown[]) => void): unknown
  disconnect(): void
}

/** Options of {@link sharedBreakers}. */
export interface SharedBreakersOptions {
  /** The Redis URL. Required unless both clients are given. */
  readonly url?: string | undefined
  /** The client that publishes and takes probe leases. Default: one made from `url`. */
  readonly client?: PubSubClientLike | undefined
  /** A second client, for the subscription. Default: one made from `url`. */
  readonly subscriber?: PubSubClientLike | undefined
  /** Distinct processes that must have opened before others open on their word, 1 to 1000. Default 1. */
  readonly quorum?: number | undefined
  /** How much longer a process that is not the prober stays open, in ms. Default 1000. */
  readonly probeWindow?: number | undefined
  /** Prefix of the channels and keys. Default `'meshlet:'`. */
  readonly keyPrefix?: string | undefined
  /** This process's id in messages. Default a random UUID. */
  readonly processId?: string | undefined
  /** The clock of the attached breakers: the mesh's (`mesh.clock`). Default the system clock. */
  readonly clock?: Clock | undefined
  /** Loads ioredis. Default `import('ioredis')`. */
  readonly load?: (() => Promise<unknown>) | undefined
}

interface Attached {
  readonly breaker: CircuitBreaker
  /** Other processes that opened, with when their open ends (ms on `now`). */
  readonly openers: Map<string, number>
  applying: boolean
}

interface Message {
  readonly t: 'open' | 'close'
  readonly p: string
  readonly r?: number
  readonly o?: number
}

/** See the module comment; create one with {@link sharedBreakers}. */
export class SharedBreakers {
  readonly #o: SharedBreakersOptions
  readonly #id: string
  readonly #quorum: number
  readonly #window: number
  readonly #prefix: string
  readonly #now: () => number
  readonly #attached = new Map<string, Attached>()
  #clients: Promise<[PubSubClientLike, PubSubClientLike]> | undefined
  #closed = false

  /** @internal Use {@link sharedBreakers}. */
  constructor(options: SharedBreakersOptions) {
    this.#o = options
    this.#id = options.processId ?? randomUUID()
    this.#quorum = options.quorum ?? 1
    this.#window = options.probeWindow ?? 1000
    this.#prefix = options.keyPrefix ?? 'meshlet:'
    const clock = options.clock ?? systemClock
    this.#now = () => clock.now()
  }

  /** Resolves once subscribed to every attached destination's channel. */
  async ready(): Promise<void> {
    const [, sub] = await this.#connect()
    const channels = [...this.#attached.keys()].map((d) => this.#channel(d))
    if (channels.length > 0) await sub.subscribe(...channels)
  }

  /**
   * Shares `breaker`'s transitions as `destination`'s (the same name in every process). Chains
   * the breaker's `onTransition`. Returns a function that detaches it.
   */
  attach(destination: string, breaker: CircuitBreaker): () => void {
    const entry: Attached = { breaker, openers: new Map(), applying: false }
    this.#attached.set(destination, entry)
    const previous = breaker.onTransition
    breaker.onTransition = (from, to) => {
      previous?.(from, to)
      if (!entry.applying) this.#local(destination, entry, from, to)
    }
    void this.#connect()
      .then(([, sub]) => sub.subscribe(this.#channel(destination)))
      .catch(() => {})
    return () => {
      if (this.#attached.get(destination) === entry) this.#attached.delete(destination)
      breaker.onTransition = previous
      void this.#clients?.then(([, sub]) => sub.unsubscribe(this.#channel(destination))).catch(() => {})
    }
  }

  /** Unsubscribes and disconnects the clients it made. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const clients = await this.#clients?.catch(() => undefined)
    if (clients === undefined) return
    if (this.#o.client === undefined) clients[0].disconnect()
    if (this.#o.subscriber === undefined) clients[1].disconnect()
  }

  #channel(destination: string): string {
    return `${this.#prefix}breaker:${destination}`
  }

  /** A transition this process's breaker made on its own: tell the fleet. */
  #local(destination: string, entry: Attached, _from: string, to: string): void {
    const state = entry.breaker.snapshot(this.#now())
    if (to === 'open') {
      const remaining = state.remaining ?? 0
      this.#publish(destination, { t: 'open', p: this.#id, r: remaining, o: state.opens ?? 1 })
      // The first opener probes for the fleet; the others wait a probe window longer.
      void this.#clients
        ?.then(([pub]) =>
          pub.set(
            `${this.#prefix}probe:{${destination}}`,
            this.#id,
            'PX',
            Math.max(1, Math.ceil(remaining + this.#window)),
            'NX',
          ),
        )
        .then((won) => {
          const now = entry.breaker.state
          if (won === null && now.kind === 'open')
            this.#apply(entry, { kind: 'open', opens: state.opens ?? 1, remaining: remaining + this.#window })
        })
        .catch(() => {})
    } else if (to === 'closed') {
      entry.openers.clear()
      this.#publish(destination, { t: 'close', p: this.#id })
    }
  }

  /** A message from another process. */
  #remote(destination: string, message: Message): void {
    const entry = this.#attached.get(destination)
    if (entry === undefined || message.p === this.#id) return
    const kind = entry.breaker.state.kind
    const now = this.#now()
    if (message.t === 'close') {
      entry.openers.clear()
      if (kind === 'open' || kind === 'half-open') this.#apply(entry, { kind: 'closed' })
      return
    }
    const remaining = Math.max(0, Number(message.r) || 0)
    entry.openers.set(message.p, now + remaining)
    if (kind !== 'closed') return
    let count = 0
    for (const [p, until] of entry.openers) {
      if (until + this.#window < now) entry.openers.delete(p)
      else count++
    }
    if (count >= this.#quorum) {
      // Not the prober: open a probe window longer than the process that will probe.
      this.#apply(entry, {
        kind: 'open',
        opens: Math.max(1, Number(message.o) || 1),
        remaining: remaining + this.#window,
      })
    }
  }

  #apply(entry: Attached, snapshot: Parameters<CircuitBreaker['restore']>[0]): void {
    entry.applying = true
    try {
      entry.breaker.restore(snapshot, this.#now())
    } finally {
      entry.applying = false
    }
  }

  #publish(destination: string, message: Message): void {
    if (this.#closed) return
    void this.#connect()
      .then(([pub]) => pub.publish(this.#channel(destination), JSON.stringify(message)))
      .catch(() => {})
  }

  #connect(): Promise<[PubSubClientLike, PubSubClientLike]> {
    this.#clients ??= (async () => {
      const make = async (): Promise<PubSubClientLike> => {
        const loaded = (await (this.#o.load ?? (() => import('ioredis')))()) as {
          Redis?: unknown
          default?: unknown
        }
        const Redis = (loaded.Redis ?? loaded.default) as new (
          url: string,
          options: object,
        ) => PubSubClientLike
        const client = new Redis(this.#o.url as string, {
          enableOfflineQueue: true,
          maxRetriesPerRequest: 0,
          retryStrategy: (times: number) => Math.min(times * 25, 200),
        })
        client.on('error', () => {})
        return client
      }
      const pub = this.#o.client ?? (await make())
      const sub = this.#o.subscriber ?? (await make())
      sub.on('message', (channel: unknown, raw: unknown) => {
        const prefix = `${this.#prefix}breaker:`
        if (typeof channel !== 'string' || !channel.startsWith(prefix) || typeof raw !== 'string') return
        let message: Message
        try {
          message = JSON.parse(raw) as Message
        } catch {
          return
        }
        if (message === null || typeof message !== 'object' || typeof message.p !== 'string') return
        if (message.t !== 'open' && message.t !== 'close') return
        this.#remote(channel.slice(prefix.length), message)
      })
      return [pub, sub] as [PubSubClientLike, PubSubClientLike]
    })()
    return this.#clients
  }
}

/**
 * Shares breaker transitions across processes through Redis; see {@link SharedBreakers}.
 *
 * @example
 * ```ts
 * const shared = sharedBreakers({ url: 'redis://127.0.0.1:6379', quorum: 2 })
 * const breaker = mesh.circuitBreaker('partner')
 * if (breaker) shared.attach('partner', breaker)
 * ```
 */
export function sharedBreakers(options: SharedBreakersOptions): SharedBreakers {
  if (options.url === undefined && (options.client === undefined || options.subscriber === undefined)) {
    throw new TypeError('sharedBreakers: give a url, or both a client and a subscriber')
  }
  return new SharedBreakers(options)
}
