/**
 * A {@link QuotaStore} on Redis: global limits shared by every process that names the same key,
 * decided by one atomic GCRA script per decision (one round trip, Redis's clock), with a pause
 * per key, an opt-in lease mode (zero round trips for most calls), and an explicit policy when
 * Redis is slow or down: every decision answers within its timeout, and a breaker keeps calls
 * off a Redis that is failing until a probe succeeds (D59).
 *
 * ioredis is loaded with a dynamic `import()` on first use, never by `import 'meshlet'`: it is an
 * optional peer dependency, needed only by configs with a `redis` section.
 */

import { createHash } from 'node:crypto'
import { type Clock, systemClock, type TimerHandle } from '../../core/clock.js'
import type { QuotaDecision, QuotaLimit, QuotaStore } from '../../stages/quota/store.js'
import { GCRA_SCRIPT, PAUSE_SCRIPT } from './scripts.js'

/**
 * The part of an ioredis client the store uses; an ioredis `Redis` or `Cluster` fits. Keys are
 * Cluster-safe: the two keys of a limit share one hash tag.
 */
export interface RedisClientLike {
  defineCommand(name: string, definition: { numberOfKeys: number; lua: string }): void
  on(event: string, listener: (...args: unknown[]) => void): unknown
  once(event: string, listener: (...args: unknown[]) => void): unknown
  off?(event: string, listener: (...args: unknown[]) => void): unknown
  readonly status: string
  quit(): Promise<unknown>
  disconnect(): void
}

/** Lease mode: take `tokens` at once from Redis and spend them in process. */
export interface QuotaLeaseOptions {
  /**
   * Tokens taken per round trip (at least the call's cost). Over any span of time the fleet
   * admits at most `processes * (tokens - 1)` calls more than the exact limit (D59). Required.
   */
  readonly tokens: number
  /** How long leased tokens stay usable; unspent ones are dropped (never over-admitted). Default 1000 ms. */
  readonly ttl?: number | undefined
}

/** What a decision does when Redis does not answer in time, errs, or its breaker is open. */
export type QuotaFailurePolicy = 'open' | 'closed'

/** Options of {@link redisQuotaStore}. */
export interface RedisQuotaStoreOptions {
  /** The Redis URL (`redis://host:port/db`, `rediss://` for TLS). Required unless `client` is given. */
  readonly url?: string
  /**
   * A client to use instead of one made from `url` (an ioredis `Redis` or `Cluster`); the store
   * defines its scripts on it and does not close it. Default none.
   */
  readonly client?: RedisClientLike
  /** Prefix of every key the store writes. Default `'meshlet:'`. */
  readonly keyPrefix?: string
  /** How long a decision waits for Redis before answering by `onFailure`, in ms. Default 50. */
  readonly timeout?: number
  /** `'open'` admits, `'closed'` refuses (`RATE_LIMITED`) when Redis cannot decide. Default `'open'`. */
  readonly onFailure?: QuotaFailurePolicy
  /** The breaker around Redis. */
  readonly breaker?: {
    /** Consecutive failed decisions that open it. Default 3. */
    readonly failures?: number
    /** How long it stays open before one decision probes Redis again, in ms. Default 200. */
    readonly halfOpenAfter?: number
  }
  /** Lease mode; default off (every decision is one round trip). */
  readonly lease?: QuotaLeaseOptions | undefined
  /** Loads ioredis. Default `import('ioredis')`. */
  readonly load?: () => Promise<unknown>
  /** The time source of timeouts, the breaker, leases and local pauses. Default the system clock. */
  readonly clock?: Clock | undefined
}

/** Tokens leased from Redis, spent in process. */
interface Lease {
  tokens: number
  expiresAt: number
  refill: Promise<QuotaDecision> | undefined
}

/** Refusal when Redis cannot decide and the policy is closed. */
const FAILED_OPEN: QuotaDecision = Object.freeze({ allowed: true, retryAfterMs: 0 })
const ADMITTED: QuotaDecision = FAILED_OPEN

/** Keys longer than this are hashed, so a huge header value cannot make a huge Redis key. */
const MAX_RAW_KEY = 200

type GcraCommand = (
  k1: string,
  k2: string,
  t: string,
  burst: number,
  cost: number,
  want: number,
) => Promise<[number, number]>
type PauseCommand = (k1: string, ms: number) => Promise<number>

/** See the module comment; create one with {@link redisQuotaStore}. */
export class RedisQuotaStore implements QuotaStore {
  readonly #timeout: number
  readonly #clock: Clock
  readonly #closedPolicy: boolean
  readonly #prefix: string
  readonly #failuresToOpen: number
  readonly #halfOpenAfter: number
  readonly #lease: Required<QuotaLeaseOptions> | undefined
  readonly #ownsClient: boolean
  readonly #leases = new Map<string, Lease>()
  readonly #localPauses = new Map<string, number>()
  #client: RedisClientLike | undefined
  #connecting: Promise<RedisClientLike> | undefined
  #everReady = false
  #markReady: () => void = () => {}
  readonly #firstReady = new Promise<void>((resolve) => {
    this.#markReady = resolve
  })
  #closed = false
  // The breaker around Redis.
  #failures = 0
  #openUntil = 0
  #probing = false

  /** @internal Use {@link redisQuotaStore}. */
  constructor(private readonly options: RedisQuotaStoreOptions) {
    if (options.url === undefined && options.client === undefined) {
      throw new TypeError('redisQuotaStore: give a url or a client')
    }
    this.#timeout = options.timeout ?? 50
    this.#clock = options.clock ?? systemClock
    this.#closedPolicy = options.onFailure === 'closed'
    this.#prefix = options.keyPrefix ?? 'meshlet:'
    this.#failuresToOpen = options.breaker?.failures ?? 3
    this.#halfOpenAfter = options.breaker?.halfOpenAfter ?? 200
    this.#lease =
      options.lease === undefined
        ? undefined
        : { tokens: options.lease.tokens, ttl: options.lease.ttl ?? 1000 }
    this.#ownsClient = options.client === undefined
  }

  /** Whether the breaker around Redis is open (decisions answer by policy without asking Redis). */
  get breakerOpen(): boolean {
    return this.#failures >= this.#failuresToOpen
  }

  /** Resolves once the client is connected; rejects after `ms` (default the decision timeout x 20). */
  async ready(ms = this.#timeout * 20): Promise<void> {
    await this.#connect()
    if (this.#everReady) return
    let timer: TimerHandle | undefined
    const late = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimer(() => reject(new Error('redis: not ready in time')), ms)
    })
    try {
      await Promise.race([this.#firstReady, late])
    } finally {
      if (timer !== undefined) this.#clock.clearTimer(timer)
    }
  }

  take(key: string, cost: number, limit: QuotaLimit): Promise<QuotaDecision> {
    if (this.#closed) return Promise.resolve(this.#policy())
    const now = this.#clock.now()
    const pausedUntil = this.#localPauses.get(key)
    if (pausedUntil !== undefined) {
      if (pausedUntil > now)
        return Promise.resolve({ allowed: false, retryAfterMs: Math.ceil(pausedUntil - now) })
      this.#localPauses.delete(key)
    }
    if (this.#lease === undefined) return this.#decide(key, cost, cost, limit)
    return this.#takeLeased(key, cost, limit, now)
  }

  async #takeLeased(key: string, cost: number, limit: QuotaLimit, now: number): Promise<QuotaDecision> {
    const lease = this.#leaseOf(key)
    for (let round = 0; round < 2; round++) {
      if (lease.expiresAt <= now) lease.tokens = 0
      if (lease.tokens >= cost) {
        lease.tokens -= cost
        return ADMITTED
      }
      if (lease.refill === undefined) break
      // Another caller is refilling: wait for its answer rather than make a round trip each.
      const answer = await lease.refill
      if (!answer.allowed) return answer
      now = this.#clock.now()
    }
    const want = Math.max(cost, this.#lease?.tokens ?? cost)
    const refill = this.#decide(key, cost, want, limit, lease)
    lease.refill = refill
    try {
      return await refill
    } finally {
      if (lease.refill === refill) lease.refill = undefined
    }
  }

  #leaseOf(key: string): Lease {
    let lease = this.#leases.get(key)
    if (lease === undefined) {
      lease = { tokens: 0, expiresAt: 0, refill: undefined }
      this.#leases.set(key, lease)
    }
    return lease
  }

  /** One round trip: GCRA for `cost` to `want` tokens, within the timeout, behind the breaker. */
  #decide(key: string, cost: number, want: number, limit: QuotaLimit, lease?: Lease): Promise<QuotaDecision> {
    if (!this.#allowRedis()) return Promise.resolve(this.#policy())
    const interval = limit.periodMs / limit.rate
    const [tokens, pause] = this.#keys(key)
    return this.#withTimeout(async (client, late) => {
      const [granted, retryAfterMs] = await (client as unknown as { meshletGcra: GcraCommand }).meshletGcra(
        tokens,
        pause,
        String(interval),
        limit.burst,
        cost,
        want,
      )
      if (retryAfterMs > 0) return { allowed: false, retryAfterMs }
      if (lease !== undefined) {
        // A reply after the timeout (its call answered by policy) still credits its tokens, so a
        // slow Redis does not make a lease lose them.
        lease.tokens += late() ? granted : granted - cost
        lease.expiresAt = this.#clock.now() + (this.#lease?.ttl ?? 0)
      }
      return ADMITTED
    })
  }

  async pause(key: string, ms: number): Promise<void> {
    if (!(ms > 0) || this.#closed) return
    // In process at once, whatever Redis does; then for every process through Redis.
    const until = this.#clock.now() + ms
    if ((this.#localPauses.get(key) ?? 0) < until) this.#localPauses.set(key, until)
    const lease = this.#leases.get(key)
    if (lease !== undefined) lease.tokens = 0
    if (!this.#allowRedis()) return
    const [, pauseKey] = this.#keys(key)
    await this.#withTimeout(async (client) => {
      const left = await (client as unknown as { meshletPause: PauseCommand }).meshletPause(
        pauseKey,
        Math.ceil(ms),
      )
      // A longer pause already in force (another process's) holds here too.
      const longer = this.#clock.now() + Number(left)
      if (longer > (this.#localPauses.get(key) ?? 0)) this.#localPauses.set(key, longer)
      return ADMITTED
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const client =
      this.#client ?? (this.#connecting ? await this.#connecting.catch(() => undefined) : undefined)
    if (client !== undefined && this.#ownsClient) {
      // quit() waits for replies in flight; a Redis that is down would make it wait for a reconnect.
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
      else client.disconnect()
    }
  }

  /** The limit's two keys, sharing one hash tag so a Redis Cluster keeps them on one slot. */
  #keys(key: string): [string, string] {
    const k = key.length > MAX_RAW_KEY ? `#${createHash('sha256').update(key).digest('base64url')}` : key
    const base = `${this.#prefix}{q:${k}}`
    return [`${base}:t`, `${base}:p`]
  }

  #policy(): QuotaDecision {
    if (!this.#closedPolicy) return FAILED_OPEN
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(this.#openUntil - this.#clock.now())) }
  }

  #allowRedis(): boolean {
    if (this.#failures < this.#failuresToOpen) return true
    if (this.#probing || this.#clock.now() < this.#openUntil) return false
    this.#probing = true
    return true
  }

  #succeeded(): void {
    this.#failures = 0
    this.#probing = false
  }

  #failed(): void {
    this.#failures++
    if (this.#probing || this.#failures >= this.#failuresToOpen) {
      this.#probing = false
      this.#failures = Math.max(this.#failures, this.#failuresToOpen)
      this.#openUntil = this.#clock.now() + this.#halfOpenAfter
    }
  }

  /** Runs `fn` on the client; a failure or a timeout answers by policy and counts for the breaker. */
  #withTimeout(
    fn: (client: RedisClientLike, late: () => boolean) => Promise<QuotaDecision>,
  ): Promise<QuotaDecision> {
    return new Promise<QuotaDecision>((resolve) => {
      let settled = false
      const expire = (): void => {
        if (settled) return
        settled = true
        this.#failed()
        resolve(this.#policy())
      }
      // Timers run before the event loop reads sockets: when the timer fires, let one poll phase
      // read a reply that has already arrived, so a busy process does not blame Redis for its own
      // lateness (setImmediate runs right after that poll).
      const timer = this.#clock.setTimer(() => setImmediate(expire), this.#timeout)
      const run = async (): Promise<QuotaDecision> => {
        const client = this.#client ?? (await this.#connect())
        if (client.status !== 'ready') {
          // Never send while disconnected: a queued command would take tokens long after its call
          // was answered by policy. Only the very first connection is waited for.
          if (this.#everReady) throw new Error('redis: not connected')
          await this.#firstReady
          if (settled) throw new Error('redis: answered by policy meanwhile')
        }
        return fn(client, () => settled)
      }
      run().then(
        (decision) => {
          if (settled) return
          settled = true
          this.#clock.clearTimer(timer)
          this.#succeeded()
          resolve(decision)
        },
        () => {
          if (settled) return
          settled = true
          this.#clock.clearTimer(timer)
          this.#failed()
          resolve(this.#policy())
        },
      )
    })
  }

  #connect(): Promise<RedisClientLike> {
    this.#connecting ??= this.#makeClient().then((client) => {
      client.defineCommand('meshletGcra', { numberOfKeys: 2, lua: GCRA_SCRIPT })
      client.defineCommand('meshletPause', { numberOfKeys: 1, lua: PAUSE_SCRIPT })
      const ready = (): void => {
        this.#everReady = true
        this.#markReady()
      }
      if (client.status === 'ready') ready()
      client.on('ready', ready)
      this.#client = client
      if (this.#closed && this.#ownsClient) client.disconnect()
      return client
    })
    return this.#connecting
  }

  async #makeClient(): Promise<RedisClientLike> {
    if (this.options.client !== undefined) return this.options.client
    const loaded = (await (this.options.load ?? (() => import('ioredis')))()) as {
      default?: unknown
      Redis?: unknown
    }
    const Redis = (loaded.Redis ?? loaded.default) as new (url: string, options: object) => RedisClientLike
    const client = new Redis(this.options.url as string, {
      // Commands fail at once while disconnected (see #withTimeout), and reconnects are quick so
      // the quota is exact again soon after Redis returns.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(times * 25, 200),
      connectTimeout: 2000,
    })
    // Without a listener ioredis prints every connection error; the breaker already counts them.
    client.on('error', () => {})
    return client
  }
}

/**
 * A {@link QuotaStore} on Redis for limits with `scope: 'global'`; see {@link RedisQuotaStore}.
 *
 * @example
 * ```ts
 * const store = redisQuotaStore({ url: 'redis://127.0.0.1:6379', onFailure: 'closed' })
 * const decision = await store.take('partner-api', 1, { rate: 500, periodMs: 1000, burst: 50 })
 * ```
 */
export function redisQuotaStore(options: RedisQuotaStoreOptions): RedisQuotaStore {
  return new RedisQuotaStore(options)
}
