/**
 * A rate limit over keys, with its FIFO queue: the mechanism behind the quota stage's `limit`.
 * {@link LocalLimiter} keeps GCRA buckets in this process and decides synchronously;
 * {@link GlobalLimiter} asks a {@link QuotaStore} (Redis), one round trip per decision.
 *
 * The queue (action `queue`): a call that finds no token waits behind the calls already waiting
 * on its bucket, in arrival order. Only the oldest waiter has a timer (armed for when its token
 * will be there); a waiter also has a timer at its deadline when it has one, so no wait outlives
 * its call. A waiter cancelled or out of time leaves the list at once and its place goes to the
 * next; a call that could not get its token before its deadline is refused at once, not after
 * waiting for nothing.
 */
import type { Clock, TimerHandle } from '../../core/clock.js'
import type { Context } from '../../core/context.js'
import { Bucket, Gcra, type Waiter } from './gcra.js'
import type { QuotaLimit, QuotaStore } from './store.js'

/** What a limiter does with a call over the limit. */
export type QuotaAction = 'reject' | 'queue'

/** Options shared by both limiters. */
export interface LimiterOptions {
  /** The rate. */
  readonly limit: QuotaLimit
  /** `'reject'` or `'queue'`. Default `'reject'`. */
  readonly action?: QuotaAction
  /** Calls that may wait per key (action `queue`). Default `100`. */
  readonly queue?: number
  /** The longest pause a server may impose, ms. Default `60000`. */
  readonly maxPause?: number
  /** Turns a refusal into the error a waiting call rejects with. Default: the refusal itself. */
  readonly refuse?: (refusal: Refusal) => unknown
}

/** Why a call was refused. */
export type Refusal = {
  readonly reason: 'limit' | 'paused' | 'queue'
  readonly detail: string
  readonly retryAfter: number
}

/** A local limit: GCRA buckets by key, bounded to `maxKeys`; see the module comment. */
export class LocalLimiter {
  readonly gcra: Gcra
  readonly action: QuotaAction
  readonly queue: number
  readonly maxPause: number
  readonly #refuse: (refusal: Refusal) => unknown
  readonly #clock: Clock
  readonly #maxKeys: number
  readonly #buckets = new Map<string, Bucket>()
  /** The bucket of an unkeyed limit (and of calls without a key). */
  readonly single = new Bucket()

  constructor(options: LimiterOptions & { readonly maxKeys?: number }, clock: Clock) {
    this.gcra = new Gcra(options.limit)
    this.action = options.action ?? 'reject'
    this.queue = options.queue ?? 100
    this.maxPause = options.maxPause ?? 60_000
    this.#maxKeys = options.maxKeys ?? 10_000
    this.#refuse = options.refuse ?? ((r) => r)
    this.#clock = clock
  }

  /** Keys that have a bucket now. */
  get size(): number {
    return this.#buckets.size
  }

  /**
   * The bucket of `key` (`undefined` or `''`: the shared one). At `maxKeys`, full idle buckets
   * are dropped (nothing is lost: a full bucket is a missing one), and if none is, the oldest
   * idle bucket: the only over-admission, when more than `maxKeys` keys are busy at once.
   */
  bucket(key: string | undefined, now: number): Bucket {
    if (key === undefined || key === '') return this.single
    let b = this.#buckets.get(key)
    if (b !== undefined) return b
    if (this.#buckets.size >= this.#maxKeys) this.#evict(now)
    b = new Bucket()
    this.#buckets.set(key, b)
    return b
  }

  #evict(now: number): void {
    const target = Math.floor(this.#maxKeys * 0.9)
    let oldestIdle: string | undefined
    for (const [k, b] of this.#buckets) {
      if (b.waiting !== undefined) continue
      if (this.gcra.idle(b, now)) {
        this.#buckets.delete(k)
        if (this.#buckets.size <= target) return
      } else if (oldestIdle === undefined) {
        oldestIdle = k
      }
    }
    if (this.#buckets.size >= this.#maxKeys && oldestIdle !== undefined) this.#buckets.delete(oldestIdle)
  }

  /**
   * Takes a token of `bucket` now: `undefined` when taken, else the refusal (action `reject`), or
   * `false` when the call should {@link enqueue}.
   */
  tryTake(bucket: Bucket, now: number): Refusal | undefined | false {
    if (bucket.waiting === undefined) {
      const wait = this.gcra.take(bucket, 1, now)
      if (wait === 0) return undefined
      if (this.action === 'reject') {
        return bucket.pausedUntil > now
          ? {
              reason: 'paused',
              detail: `paused by the server for ${Math.ceil(wait)}ms more`,
              retryAfter: wait,
            }
          : { reason: 'limit', detail: `no token for ${Math.ceil(wait)}ms`, retryAfter: wait }
      }
    }
    return false
  }

  /**
   * Queues a call on `bucket`: resolves when its token is taken, rejects with a refusal when the
   * queue is full or it cannot be served before `ctx.deadline`, and with the cancellation's
   * reason when the call is cancelled while waiting.
   */
  enqueue(bucket: Bucket, ctx: Context, now: number): Promise<void> | Refusal {
    if (bucket.queued >= this.queue) {
      return {
        reason: 'queue',
        detail: `${bucket.queued} calls already waiting (queue ${this.queue})`,
        retryAfter: 0,
      }
    }
    const wait = this.gcra.waitFor(bucket, bucket.queued + 1, now)
    if (now + wait > ctx.deadline) {
      return {
        reason: 'queue',
        detail: `the token comes in ${Math.ceil(wait)}ms, after the call's deadline`,
        retryAfter: wait,
      }
    }
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    const clock = this.#clock
    return new Promise<void>((resolve, reject) => {
      let deadlineTimer: TimerHandle | undefined
      let unlisten: (() => void) | undefined
      const done = (): void => {
        if (deadlineTimer !== undefined) clock.clearTimer(deadlineTimer)
        unlisten?.()
      }
      const w: Waiter = {
        older: undefined,
        newer: undefined,
        cost: 1,
        deadline: ctx.deadline,
        admit: () => {
          done()
          resolve()
        },
      }
      this.#link(bucket, w)
      if (Number.isFinite(ctx.deadline)) {
        deadlineTimer = clock.setTimer(() => {
          deadlineTimer = undefined
          this.#leave(bucket, w)
          unlisten?.()
          const waited = Math.round(clock.now() - now)
          reject(
            this.#refuse({
              reason: 'queue',
              detail: `waited ${waited}ms until the call's deadline`,
              retryAfter: 0,
            }),
          )
        }, ctx.deadline - now)
      }
      unlisten = ctx.cancel.onAbort((reason) => {
        if (!this.#leave(bucket, w)) return
        if (deadlineTimer !== undefined) clock.clearTimer(deadlineTimer)
        reject(reason)
      })
      if (bucket.waiting === w) this.#wake(bucket)
    })
  }

  /** Pauses `bucket` for `ms` (at most `maxPause`) from `now`, and re-times its queue. */
  pause(bucket: Bucket, ms: number, now: number): number {
    const bounded = Math.min(ms, this.maxPause)
    if (!(bounded > 0)) return 0
    if (now + bounded > bucket.pausedUntil) bucket.pausedUntil = now + bounded
    if (bucket.waiting !== undefined) this.#wake(bucket)
    return bounded
  }

  #link(bucket: Bucket, w: Waiter): void {
    w.older = bucket.newest
    if (bucket.newest === undefined) bucket.waiting = w
    else bucket.newest.newer = w
    bucket.newest = w
    bucket.queued++
  }

  /** Unlinks `w` (re-timing the queue when it was the oldest); `false` when it had left. */
  #leave(bucket: Bucket, w: Waiter): boolean {
    const wasHead = bucket.waiting === w
    if (!wasHead && w.older === undefined) return false
    if (w.older === undefined) bucket.waiting = w.newer
    else w.older.newer = w.newer
    if (w.newer === undefined) bucket.newest = w.older
    else w.newer.older = w.older
    w.older = undefined
    w.newer = undefined
    bucket.queued--
    if (wasHead) this.#wake(bucket)
    return true
  }

  /** Admits the oldest waiters whose tokens are there, and arms one timer for the next. */
  #wake(bucket: Bucket): void {
    const clock = this.#clock
    if (bucket.timer !== undefined) {
      clock.clearTimer(bucket.timer as TimerHandle)
      bucket.timer = undefined
    }
    const now = clock.now()
    for (let w = bucket.waiting; w !== undefined; w = bucket.waiting) {
      const wait = this.gcra.take(bucket, w.cost, now)
      if (wait > 0) {
        bucket.timer = clock.setTimer(() => {
          bucket.timer = undefined
          this.#wake(bucket)
        }, wait)
        return
      }
      bucket.waiting = w.newer
      if (w.newer === undefined) bucket.newest = undefined
      else w.newer.older = undefined
      w.newer = undefined
      bucket.queued--
      w.admit()
    }
  }
}

/**
 * A global limit: each decision is one {@link QuotaStore.take}; a call to queue sleeps for the
 * time the store names and asks again, within its deadline (not in FIFO order across processes).
 */
export class GlobalLimiter {
  readonly store: QuotaStore
  readonly limit: QuotaLimit
  readonly action: QuotaAction
  readonly maxPause: number
  readonly #refuse: (refusal: Refusal) => unknown

  constructor(options: LimiterOptions, store: QuotaStore) {
    this.#refuse = options.refuse ?? ((r) => r)
    this.store = store
    this.limit = options.limit
    this.action = options.action ?? 'reject'
    this.maxPause = options.maxPause ?? 60_000
  }

  /** Takes a token of `key`: resolves when taken, rejects with a {@link Refusal} when not. */
  async take(key: string, ctx: Context): Promise<void> {
    for (;;) {
      const decision = await this.store.take(key, 1, this.limit)
      if (decision.allowed) return
      const wait = Math.max(0, decision.retryAfterMs)
      if (this.action === 'reject') {
        throw this.#refuse({
          reason: 'limit',
          detail: `no token for ${Math.ceil(wait)}ms (global)`,
          retryAfter: wait,
        })
      }
      const now = ctx.clock.now()
      if (now + wait > ctx.deadline) {
        throw this.#refuse({
          reason: 'queue',
          detail: `the token comes in ${Math.ceil(wait)}ms, after the call's deadline (global)`,
          retryAfter: wait,
        })
      }
      // A store that answers 0 ms for a refusal must not make this loop spin.
      await ctx.clock.sleep(Math.max(1, wait), ctx.cancel)
    }
  }

  /** Pauses `key` for `ms` (at most `maxPause`) in the store: every process sees it. */
  pause(key: string, ms: number): number {
    const bounded = Math.min(ms, this.maxPause)
    if (!(bounded > 0)) return 0
    this.store.pause(key, bounded).catch(() => {})
    return bounded
  }
}

/** An in-memory {@link QuotaStore} (GCRA, as the Redis store): for tests and single processes. */
export class MemoryQuotaStore implements QuotaStore {
  readonly #clock: Clock
  readonly #buckets = new Map<string, { bucket: Bucket; gcra: Gcra }>()
  closed = false

  constructor(clock: Clock) {
    this.#clock = clock
  }

  #entry(key: string, limit: QuotaLimit): { bucket: Bucket; gcra: Gcra } {
    let e = this.#buckets.get(key)
    if (
      e === undefined ||
      e.gcra.limit.rate !== limit.rate ||
      e.gcra.limit.periodMs !== limit.periodMs ||
      e.gcra.limit.burst !== limit.burst
    ) {
      e = { bucket: e?.bucket ?? new Bucket(), gcra: new Gcra(limit) }
      this.#buckets.set(key, e)
    }
    return e
  }

  take(key: string, cost: number, limit: QuotaLimit): Promise<{ allowed: boolean; retryAfterMs: number }> {
    const { bucket, gcra } = this.#entry(key, limit)
    const wait = gcra.take(bucket, cost, this.#clock.now())
    return Promise.resolve({ allowed: wait === 0, retryAfterMs: wait })
  }

  pause(key: string, ms: number): Promise<void> {
    let e = this.#buckets.get(key)
    if (e === undefined) {
      e = { bucket: new Bucket(), gcra: new Gcra({ rate: 1, periodMs: 1, burst: 1 }) }
      this.#buckets.set(key, e)
    }
    const until = this.#clock.now() + ms
    if (until > e.bucket.pausedUntil) e.bucket.pausedUntil = until
    return Promise.resolve()
  }

  close(): Promise<void> {
    this.closed = true
    this.#buckets.clear()
    return Promise.resolve()
  }
}
