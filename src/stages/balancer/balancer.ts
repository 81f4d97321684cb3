/**
 * The balancer stage: picks the endpoint for each attempt and counts it in flight there while
 * the attempt runs. It sits inside retry, so each retry picks again and can land elsewhere.
 */
import { ATTEMPTED } from '../../core/attempts.js'
import type { Context } from '../../core/context.js'
import { NoHealthyEndpointError } from '../../core/errors.js'
import type { Middleware } from '../../core/handler.js'
import { ENDPOINT, type Endpoint } from './endpoint.js'
import type { Strategy } from './strategies.js'

/** Options of {@link balancer}. */
export interface BalancerOptions {
  /** The destination's name, for errors. */
  readonly service: string
  /** The endpoints to choose from. */
  readonly endpoints: readonly Endpoint[]
  /** How to choose. */
  readonly strategy: Strategy
}

/** How many extra picks a retry makes to avoid an endpoint this call already tried (Envoy: 3 is common). */
const REPICKS = 3

/**
 * For a retry whose pick was already tried by this call: pick again up to {@link REPICKS} times
 * with the strategy (keeping its judgement of load), then, if every pick was a tried endpoint,
 * take one of the untried endpoints at random. When all were tried, the first pick stands.
 */
function avoidTried(
  first: Endpoint,
  endpoints: readonly Endpoint[],
  tried: readonly unknown[],
  strategy: Strategy,
  ctx: Context,
): Endpoint {
  for (let i = 0; i < REPICKS; i++) {
    const e = strategy.pick(endpoints, ctx.random)
    if (e !== undefined && !tried.includes(e)) return e
  }
  const untried = endpoints.filter((e) => !tried.includes(e))
  if (untried.length === 0) return first
  return untried[Math.floor(ctx.random.next() * untried.length)]!
}

/**
 * Routes each attempt to one endpoint chosen by `strategy`. A retry avoids the endpoints this call
 * already tried while untried ones exist (Envoy's `previous_hosts` predicate).
 */
export function balancer<Req, Res>(options: BalancerOptions): Middleware<Req, Res> {
  const { endpoints, strategy, service } = options
  return (next) =>
    function balancerStage(req: Req, ctx: Context) {
      let endpoint = strategy.pick(endpoints, ctx.random)
      if (endpoint === undefined) return Promise.reject(new NoHealthyEndpointError(service))
      const tried = ctx.get(ATTEMPTED)
      if (tried !== undefined) {
        if (tried.length > 0 && tried.includes(endpoint))
          endpoint = avoidTried(endpoint, endpoints, tried, strategy, ctx)
        tried.push(endpoint)
      }
      endpoint.pending++
      const done = <T>(value: T): T => {
        endpoint.pending--
        return value
      }
      const fail = (error: unknown): never => {
        endpoint.pending--
        throw error
      }
      let result: Promise<Res>
      try {
        result = next(req, ctx.with(ENDPOINT, endpoint))
      } catch (error) {
        endpoint.pending--
        return Promise.reject(error)
      }
      return result.then(done, fail)
    }
}
