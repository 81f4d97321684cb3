/**
 * A route's policy over a destination's: the route's timeout, retry settings, hedge, breaker and
 * fallback override the destination's own, field by field for retry, whole for the others.
 */
import type { ResolvedRoute, ResolvedServiceConfig } from './config/config.js'

/** The destination's config as seen through `route` (the destination's own when none). */
export function effectiveConfig(
  config: ResolvedServiceConfig,
  route: ResolvedRoute | undefined,
): ResolvedServiceConfig {
  if (route === undefined) return config
  const r = route.retry
  return {
    ...config,
    timeout: route.timeout ?? config.timeout,
    retry: r
      ? {
          ...config.retry,
          attempts: r.attempts ?? config.retry.attempts,
          perTryTimeout: r.perTryTimeout ?? config.retry.perTryTimeout,
          retryOn: r.retryOn ?? config.retry.retryOn,
          methods: r.methods ?? config.retry.methods,
          retryableStatusCodes: r.retryableStatusCodes ?? config.retry.retryableStatusCodes,
        }
      : config.retry,
    hedge: route.hedge ?? config.hedge,
    circuitBreaker: route.circuitBreaker ?? config.circuitBreaker,
    fallback: route.fallback ?? config.fallback,
  }
}
