/**
 * A {@link QuotaStore} around a user's own Bottleneck limiter (or `Bottleneck.Group`, one
 * limiter per key), for code that already rate-limits with Bottleneck, in process or in its Redis
 * clustering mode: meshlet's quota stage then decides with it (D60). Bottleneck is a scheduler
 * that queues; a quota decision must not wait, so each take is a job of weight `cost` that runs
 * at once or is dropped: the limiter must have `highWater: 0` and `strategy: OVERFLOW` (with
 * another strategy a take would queue, and wait, as Bottleneck jobs do). Bottleneck has no notion of a pause: pauses hold in process.
 * meshlet's own Redis engine is {@link redisQuotaStore}; D60 says why it is not Bottleneck.
 */

import { type Clock, systemClock } from '../../core/clock.js'
import type { QuotaDecision, QuotaStore } from '../../stages/quota/store.js'

/** The part of a Bottleneck limiter the store uses. */
export interface BottleneckLike {
  schedule<R>(options: { weight?: number; expiration?: number }, fn: () => Promise<R>): Promise<R>
  disconnect?(flush?: boolean): Promise<void>
}

/** The part of a `Bottleneck.Group` the store uses. */
export interface BottleneckGroupLike {
  key(key: string): BottleneckLike
}

/** Options of {@link bottleneckStore}. */
export interface BottleneckStoreOptions {
  /** The `retryAfterMs` of a refusal (Bottleneck does not say when tokens return). Default 100. */
  readonly retryAfterMs?: number | undefined
  /** Whether `close()` disconnects the limiter. Default `false`: it is the caller's. */
  readonly disconnect?: boolean | undefined
  /** The time source of pauses. Default the system clock. */
  readonly clock?: Clock | undefined
}

const ADMITTED: QuotaDecision = Object.freeze({ allowed: true, retryAfterMs: 0 })
const nothing = async (): Promise<void> => {}

/**
 * Wraps `limiter` (made with `highWater: 0, strategy: Bottleneck.strategy.OVERFLOW`) as a
 * {@link QuotaStore}: the key is ignored for one limiter, and picks the limiter of a group.
 *
 * @example
 * ```ts
 * const limiter = new Bottleneck({ reservoir: 500, reservoirRefreshAmount: 500,
 *   reservoirRefreshInterval: 1000, highWater: 0, strategy: Bottleneck.strategy.OVERFLOW })
 * const mesh = createMesh(config, { quotaStore: bottleneckStore(limiter) })
 * ```
 */
export function bottleneckStore(
  limiter: BottleneckLike | BottleneckGroupLike,
  options: BottleneckStoreOptions = {},
): QuotaStore {
  const retryAfterMs = options.retryAfterMs ?? 100
  const clock = options.clock ?? systemClock
  const pauses = new Map<string, number>()
  const pick = (key: string): BottleneckLike =>
    'key' in limiter && typeof limiter.key === 'function' ? limiter.key(key) : (limiter as BottleneckLike)
  return {
    async take(key, cost) {
      const until = pauses.get(key)
      if (until !== undefined) {
        const left = until - clock.now()
        if (left > 0) return { allowed: false, retryAfterMs: Math.ceil(left) }
        pauses.delete(key)
      }
      try {
        await pick(key).schedule({ weight: cost }, nothing)
        return ADMITTED
      } catch {
        // Dropped (no room now), or the limiter failed: refused either way.
        return { allowed: false, retryAfterMs }
      }
    },
    async pause(key, ms) {
      if (!(ms > 0)) return
      const until = clock.now() + ms
      if ((pauses.get(key) ?? 0) < until) pauses.set(key, until)
    },
    async close() {
      if (options.disconnect && !('key' in limiter)) await limiter.disconnect?.()
    },
  }
}
