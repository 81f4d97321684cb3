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
 * Routes each attempt to one endpoint chosen by `strategy`. On a retry it picks again, up to
 * three times, when the pick is an endpoint this call already tried and others exist.
 */
export function balancer<Req, Res>(options: BalancerOptions): Middleware<Req, Res> {
  const { endpoints, strategy, service } = options
  return (next) =>
    function balancerStage(req: Req, ctx: Context) {
      let endpoint = strategy.pick(endpoints, ctx.random)
      if (endpoint === undefined) return Promise.reject(new NoHealthyEndpointError(service))
      const tried = ctx.get(ATTEMPTED)
      if (tried !== undefined) {
        if (tried.length > 0 && tried.length < endpoints.length) {
          for (let i = 0; i < REPICKS && tried.includes(endpoint); i++) {
            endpoint = strategy.pick(endpoints, ctx.random) ?? endpoint
          }
        }
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
