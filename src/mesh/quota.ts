/**
 * The mesh's quota state: the limiters and throttles of its services and routes, kept across the
 * stacks built for them (a stack is built per destination and route) and across updates that
 * leave a limit unchanged, so that a limit and a server's pause hold for every call of the
 * process. Builds the quota stage of a stack; a service with neither `rateLimit` nor
 * `adaptiveThrottling` gets none (nothing on its path).
 */
import type { Clock } from '../core/clock.js'
import { ConfigInvalidError, type ConfigIssue } from '../core/errors.js'
import type { Events } from '../core/events.js'
import type { Middleware } from '../core/handler.js'
import { GlobalLimiter, LocalLimiter } from '../stages/quota/limiter.js'
import { quota, refusalError, type ServerSignals } from '../stages/quota/quota.js'
import type { QuotaStore } from '../stages/quota/store.js'
import { AdaptiveThrottle } from '../stages/quota/throttle.js'
import type { ResolvedMeshConfig, ResolvedRoute, ResolvedServiceConfig } from './config/config.js'

type RateLimitConfig = NonNullable<ResolvedServiceConfig['rateLimit']>
type ThrottleConfig = NonNullable<ResolvedServiceConfig['adaptiveThrottling']>

/** How an adapter reads a limit's key from its requests. */
export type QuotaKeyReader<Req> = (
  key: NonNullable<RateLimitConfig['key']>,
  route: ResolvedRoute | undefined,
) => ((req: Req) => string | undefined) | undefined

/** Refuses a config whose global limits have no store to run on. */
export function checkQuotaStore(config: ResolvedMeshConfig, store: QuotaStore | undefined): void {
  if (store !== undefined) return
  const issues: ConfigIssue[] = []
  const message =
    'scope "global" needs a quota store (createMesh option quotaStore, or a top-level redis connection)'
  for (const [name, s] of Object.entries(config.services)) {
    if (s.rateLimit?.scope === 'global') issues.push({ path: `services.${name}.rateLimit.scope`, message })
  }
  config.routes.forEach((r, i) => {
    if (r.rateLimit?.scope === 'global') issues.push({ path: `routes[${i}].rateLimit.scope`, message })
  })
  if (issues.length > 0) throw new ConfigInvalidError(issues)
}

/** The quota state of one mesh; see the module comment. */
export class QuotaRegistry {
  readonly #clock: Clock
  readonly #store: QuotaStore | undefined
  // By owner (`svc/<name>`, `route/<name or index>`), with the config they were built from.
  readonly #limiters = new Map<string, { json: string; limiter: LocalLimiter | GlobalLimiter }>()
  readonly #throttles = new Map<string, { json: string; throttle: AdaptiveThrottle }>()
  readonly #routeIds = new WeakMap<ResolvedRoute, string>()

  constructor(clock: Clock, store: QuotaStore | undefined) {
    this.#clock = clock
    this.#store = store
  }

  #limiter(owner: string, service: string, config: RateLimitConfig): LocalLimiter | GlobalLimiter {
    const json = JSON.stringify(config)
    const kept = this.#limiters.get(owner)
    if (kept !== undefined && kept.json === json) return kept.limiter
    const options = {
      limit: { rate: config.rate, periodMs: config.period, burst: config.burst },
      action: config.action,
      queue: config.queue,
      maxPause: config.maxPause,
      maxKeys: config.maxKeys,
      refuse: (r: Parameters<typeof refusalError>[1]) => refusalError(service, r),
    }
    // checkQuotaStore refused a global limit without a store before any stack is built.
    const limiter =
      config.scope === 'global' && this.#store !== undefined
        ? new GlobalLimiter(options, this.#store)
        : new LocalLimiter(options, this.#clock)
    this.#limiters.set(owner, { json, limiter })
    return limiter
  }

  #throttle(service: string, config: ThrottleConfig): AdaptiveThrottle {
    const json = JSON.stringify(config)
    const kept = this.#throttles.get(service)
    if (kept !== undefined && kept.json === json) return kept.throttle
    const throttle = new AdaptiveThrottle({ k: config.k, windowMs: config.window })
    this.#throttles.set(service, { json, throttle })
    return throttle
  }

  /**
   * A route's owner id: its name, else a hash of its match and destinations. The same in every
   * process running the same config (a global limit's store key) and across updates that keep
   * the route, so its buckets and pauses hold.
   */
  #routeId(route: ResolvedRoute): string {
    let id = this.#routeIds.get(route)
    if (id === undefined) {
      id =
        route.name !== undefined
          ? `route/${encodeURIComponent(route.name)}`
          : `route/#${fnv1a(JSON.stringify([route.match ?? null, route.route, route.rateLimit ?? null]))}`
      this.#routeIds.set(route, id)
    }
    return id
  }

  /**
   * The quota stage of the stack of `service` under `route`, or `undefined` when neither has a
   * limit and the service has no adaptive throttling. A route's `rateLimit` replaces the
   * service's (its own buckets, shared by the route's destinations).
   */
  stage<Req, Res>(
    service: string,
    config: ResolvedServiceConfig,
    route: ResolvedRoute | undefined,
    readKey: QuotaKeyReader<Req>,
    signals: ServerSignals,
    events: Events,
  ): Middleware<Req, Res> | undefined {
    const own = route?.rateLimit
    const rateLimit = own ?? config.rateLimit
    const throttling = config.adaptiveThrottling
    if (rateLimit === undefined && throttling === undefined) return undefined
    const owner = own !== undefined && route !== undefined ? this.#routeId(route) : `svc/${service}`
    const limiter = rateLimit === undefined ? undefined : this.#limiter(owner, service, rateLimit)
    const keyOf =
      rateLimit?.key === undefined ? undefined : readKey(rateLimit.key, own !== undefined ? route : undefined)
    return quota<Req, Res>({
      limiter,
      keyOf,
      storeKey: `${owner}:`,
      throttle: throttling === undefined ? undefined : this.#throttle(service, throttling),
      signals,
      service,
      events,
    })
  }
}

/**
 * Reads a path template parameter from a path: `undefined` when no template of the route's
 * matches has `{name}` as a whole segment or the path does not fit one.
 */
export function templateParam(
  route: ResolvedRoute | undefined,
  name: string,
): ((path: string) => string | undefined) | undefined {
  const templates = (route?.match ?? [])
    .map((m) => m.path?.template)
    .filter((t): t is string => t !== undefined)
    .map((t) => t.split('/'))
    .filter((segments) => segments.includes(`{${name}}`))
  if (templates.length === 0) return undefined
  return (rawPath) => {
    const q = rawPath.indexOf('?')
    const segments = (q < 0 ? rawPath : rawPath.slice(0, q)).split('/')
    for (const t of templates) {
      if (t.length !== segments.length) continue
      const at = t.indexOf(`{${name}}`)
      const value = segments[at]
      if (value !== undefined && value !== '') return value
    }
    return undefined
  }
}

/** FNV-1a (32 bits) of `text`, in hex: a short stable id. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0).toString(16).padStart(8, '0')
}
