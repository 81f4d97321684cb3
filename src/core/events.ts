/**
 * Typed events that cost nothing when nobody listens: stages test {@link Events.has} before
 * building an event object, so an unobserved mesh allocates nothing for telemetry.
 */

/** Every event the mesh emits, by type. */
export interface MeshEvents {
  /** An attempt failed and another one is scheduled after `delay` ms. */
  retry: { service: string; attempt: number; delay: number; reason: unknown }
  /** A retry or hedge was refused by the destination's retry budget. */
  'retry-budget-exhausted': { service: string; kind: 'retry' | 'hedge' }
  /** A hedge (backup request) was sent `delay` ms after the previous attempt started. */
  hedge: { service: string; attempt: number; delay: number }
  /** A circuit breaker changed state. */
  'circuit-state': {
    service: string
    from: 'closed' | 'open' | 'half-open' | 'isolated'
    to: 'closed' | 'open' | 'half-open' | 'isolated'
  }
  /** An endpoint was taken out of rotation until `until` (clock ms), by outlier detection or a health check. */
  ejection: {
    service: string
    endpoint: string
    reason:
      | 'consecutive-failures'
      | 'consecutive-gateway-failures'
      | 'success-rate'
      | 'failure-percentage'
      | 'health-check'
    until: number
  }
  /** An ejected or unhealthy endpoint came back into rotation. */
  'ejection-end': { service: string; endpoint: string }
  /** A call was refused by a bulkhead (`BULKHEAD_FULL`). */
  'bulkhead-full': { service: string; queued: boolean }
  /**
   * A rate limit refused an attempt (`RATE_LIMITED`): `reason` `'limit'` (no token), `'paused'`
   * (a server's Retry-After), `'queue'` (the wait was over its bounds) or `'throttled'` (adaptive
   * throttling).
   */
  'rate-limited': { service: string; key: string; reason: 'limit' | 'paused' | 'queue' | 'throttled' }
  /** A server asked `service` to slow down: the limit's `key` pauses for `ms`. */
  'quota-paused': { service: string; key: string; ms: number }
  /** A call got the service's fallback instead of `code`. */
  fallback: { service: string; code: string }
  /** A call or attempt passed its time limit. */
  timeout: { service: string; scope: 'call' | 'attempt'; timeout: number }
  /** The mesh configuration was replaced. */
  'config-updated': { services: number }
  /**
   * Discovery found a new endpoint set for `service` and the mesh swapped it in: `added` and
   * `removed` list addresses; `endpoints` counts the new set.
   */
  'discovery-updated': {
    service: string
    endpoints: number
    added: readonly string[]
    removed: readonly string[]
  }
  /**
   * A resolution of `service` failed, answered nothing or gave an invalid set; the last good
   * set (`endpoints` of them) stays in force.
   */
  'discovery-error': { service: string; error: unknown; endpoints: number }
  /** New TLS material (certificate, key, CA) of `service` was taken: new connections use it. */
  'tls-rotated': { service: string; version: number }
  /** Changed TLS files of `service` were refused (half written, key and certificate apart); the old material stays. */
  'tls-rejected': { service: string; reason: string }
}

/** Receives one event. */
export type MeshEventListener<E> = (event: E) => void

/** A small typed event hub. */
export class Events<M extends object = MeshEvents> {
  readonly #listeners = new Map<keyof M, MeshEventListener<never>[]>()

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof M>(type: K, fn: MeshEventListener<M[K]>): () => void {
    const list = this.#listeners.get(type)
    if (list) list.push(fn as MeshEventListener<never>)
    else this.#listeners.set(type, [fn as MeshEventListener<never>])
    return () => {
      const current = this.#listeners.get(type)
      if (!current) return
      const i = current.indexOf(fn as MeshEventListener<never>)
      if (i >= 0) current.splice(i, 1)
      if (current.length === 0) this.#listeners.delete(type)
    }
  }

  /** Whether anyone listens to `type`: test it before building an event. */
  has(type: keyof M): boolean {
    return this.#listeners.has(type)
  }

  /** Delivers `event` to the listeners of `type`; a throwing listener does not stop the others. */
  emit<K extends keyof M>(type: K, event: M[K]): void {
    const list = this.#listeners.get(type)
    if (!list) return
    for (const fn of list.slice()) {
      try {
        ;(fn as MeshEventListener<M[K]>)(event)
      } catch (error) {
        queueMicrotask(() => {
          throw error
        })
      }
    }
  }

  /** The number of listeners, all types together (for leak tests). */
  get listenerCount(): number {
    let n = 0
    for (const list of this.#listeners.values()) n += list.length
    return n
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear()
  }
}
