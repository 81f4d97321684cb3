/**
 * The balancer stage: picks the endpoint for each attempt and counts it in flight there while
 * the attempt runs. It sits inside retry, so each retry picks again and can land elsewhere.
 *
 * With a health view (`health.ts`: outlier detection, active health checks) it picks among the
 * endpoints in rotation and reports each attempt's verdict back; with `perEndpoint` it passes
 * over endpoints that already have that many attempts in flight. Without either, the stage is
 * the plain one: the features cost nothing when they are off.
 */
import { ATTEMPTED } from '../../core/attempts.js'
import type { Context } from '../../core/context.js'
import { BulkheadFullError, NoHealthyEndpointError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import type { Middleware } from '../../core/handler.js'
import type { Classifier, Outcome, Verdict } from '../../core/outcome.js'
import type { Random } from '../../core/random.js'
import { ENDPOINT, type Endpoint } from './endpoint.js'
import type { EndpointHealth } from './health.js'
import type { Probe } from './health-check.js'
import type { Strategy } from './strategies.js'

/** Options of {@link balancer}. */
export interface BalancerOptions<Req = unknown, Res = unknown> {
  /** The destination's name, for errors and events. */
  readonly service: string
  /** The endpoints to choose from. */
  readonly endpoints: readonly Endpoint[]
  /** How to choose. */
  readonly strategy: Strategy
  /**
   * The service's health view: ejected and unhealthy endpoints are skipped (all are used in
   * panic mode). Default none: every endpoint is in rotation.
   */
  readonly health?: EndpointHealth | undefined
  /**
   * Judges each attempt for outlier detection (the verdict retry and breaker read). Default
   * none: no outcome is recorded, so only health checks can take an endpoint out.
   */
  readonly classify?: Classifier<Req, Res> | undefined
  /**
   * Probes an endpoint for active health checks; they start on the first call when `health`
   * has a `healthCheck`. Default none: no active checks.
   */
  readonly probe?: Probe | undefined
  /**
   * Attempts in flight to one endpoint at once (`concurrency.perEndpoint`): a full endpoint is
   * passed over, and when every one is full the attempt fails with `BULKHEAD_FULL`. Default `0`:
   * no limit.
   */
  readonly perEndpoint?: number | undefined
  /** Where `ejection` and `ejection-end` go. Default none. */
  readonly events?: Events | undefined
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
 * The endpoint with room (fewer than `limit` attempts in flight) and the least load per weight,
 * preferring one this call has not tried; the scan starts at a random place so ties spread.
 */
function withRoom(
  candidates: readonly Endpoint[],
  limit: number,
  tried: readonly unknown[] | undefined,
  random: Random,
): Endpoint | undefined {
  const n = candidates.length
  const start = Math.floor(random.next() * n)
  let best: Endpoint | undefined
  let bestTried = true
  for (let k = 0; k < n; k++) {
    const e = candidates[(start + k) % n]!
    if (e.pending >= limit) continue
    const wasTried = tried !== undefined && tried.length > 0 && tried.includes(e)
    if (
      best === undefined ||
      (bestTried && !wasTried) ||
      (bestTried === wasTried && (e.pending + 1) / e.weight < (best.pending + 1) / best.weight)
    ) {
      best = e
      bestTried = wasTried
    }
  }
  return best
}

/**
 * Routes each attempt to one endpoint chosen by `strategy`. A retry avoids the endpoints this call
 * already tried while untried ones exist (Envoy's `previous_hosts` predicate). With `health`,
 * only endpoints in rotation are chosen (see {@link BalancerOptions}).
 */
export function balancer<Req, Res>(options: BalancerOptions<Req, Res>): Middleware<Req, Res> {
  const perEndpoint = options.perEndpoint ?? 0
  if (options.health === undefined && perEndpoint <= 0) return plainBalancer(options)
  return guardedBalancer(options, perEndpoint)
}

function plainBalancer<Req, Res>(options: BalancerOptions<Req, Res>): Middleware<Req, Res> {
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

function guardedBalancer<Req, Res>(
  options: BalancerOptions<Req, Res>,
  perEndpoint: number,
): Middleware<Req, Res> {
  const { endpoints, strategy, service, health, classify, probe, events } = options
  // One outcome of each kind, reused: a classifier judges synchronously and keeps nothing (as
  // every meshlet classifier), so recording a verdict allocates nothing. Cleared after use so
  // that no response is held.
  const okOutcome: { ok: true; value: Res | undefined } = { ok: true, value: undefined }
  const errorOutcome: { ok: false; error: unknown } = { ok: false, error: undefined }
  const judge = (req: Req, value: Res | undefined, error: unknown, ok: boolean): Verdict => {
    let verdict: Verdict
    if (ok) {
      okOutcome.value = value
      verdict = classify!(req, okOutcome as Outcome<Res>)
      okOutcome.value = undefined
    } else {
      errorOutcome.error = error
      verdict = classify!(req, errorOutcome)
      errorOutcome.error = undefined
    }
    return verdict
  }
  return (next) =>
    function balancerStage(req: Req, ctx: Context) {
      let candidates = endpoints
      if (health !== undefined) {
        if (probe !== undefined && health.checksWanted)
          health.startChecks(probe, ctx.clock, ctx.random, events)
        const now = ctx.clock.now()
        candidates =
          health.endpoints === endpoints
            ? health.inRotation(now, ctx.random, events)
            : health.inRotationOf(endpoints, now)
      }
      let endpoint = strategy.pick(candidates, ctx.random)
      if (endpoint === undefined) {
        return Promise.reject(
          new NoHealthyEndpointError(
            service,
            endpoints.length === 0 ? undefined : 'every endpoint is ejected or failing its health checks',
          ),
        )
      }
      const tried = ctx.get(ATTEMPTED)
      if (tried !== undefined && tried.length > 0 && tried.includes(endpoint))
        endpoint = avoidTried(endpoint, candidates, tried, strategy, ctx)
      if (perEndpoint > 0 && endpoint.pending >= perEndpoint) {
        const free = withRoom(candidates, perEndpoint, tried, ctx.random)
        if (free === undefined) {
          return Promise.reject(
            new BulkheadFullError(service, `every endpoint has ${perEndpoint} attempts in flight`),
          )
        }
        endpoint = free
      }
      if (tried !== undefined) tried.push(endpoint)
      const chosen = endpoint
      chosen.pending++
      const recorder = health !== undefined && classify !== undefined && health.passive ? health : undefined
      let result: Promise<Res>
      try {
        result = next(req, ctx.with(ENDPOINT, chosen))
      } catch (error) {
        chosen.pending--
        recorder?.record(chosen, judge(req, undefined, error, false), ctx.clock.now(), ctx.random, events)
        return Promise.reject(error)
      }
      if (recorder === undefined) {
        return result.then(
          (value) => {
            chosen.pending--
            return value
          },
          (error: unknown) => {
            chosen.pending--
            throw error
          },
        )
      }
      return result.then(
        (value) => {
          chosen.pending--
          recorder.record(chosen, judge(req, value, undefined, true), ctx.clock.now(), ctx.random, events)
          return value
        },
        (error: unknown) => {
          chosen.pending--
          recorder.record(chosen, judge(req, undefined, error, false), ctx.clock.now(), ctx.random, events)
          throw error
        },
      )
    }
}
