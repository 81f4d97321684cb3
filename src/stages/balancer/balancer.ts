/**
 * The balancer stage: picks the endpoint for each attempt and counts it in flight there while
 * the attempt runs. It sits inside retry, so each retry picks again and can land elsewhere.
 *
 * With a health view (`health.ts`: outlier detection, active health checks) it picks among the
 * endpoints in rotation and reports each attempt's verdict back; with `perEndpoint` it passes
 * over endpoints that already have that many attempts in flight. Without either, the stage is
 * the plain one: the features cost nothing when they are off.
 *
 * The stage also feeds the strategy what it needs and nothing more: the time (read only for a
 * strategy that is `timed`), the request's hash key (only when `keyOf` is given), and each
 * attempt's latency on the call's clock (only for a strategy that `observe`s, peak EWMA). It
 * records when each endpoint first appeared (`Endpoint.addedAt`, for slow start) at the first
 * call, since endpoints are created without a clock. One input object per stage is reused for
 * every pick (picks are synchronous), so none of this allocates per call.
 */
import { ATTEMPTED, type Attempted } from '../../core/attempts.js'
import type { Context } from '../../core/context.js'
import { BulkheadFullError, NoHealthyEndpointError } from '../../core/errors.js'
import type { Events } from '../../core/events.js'
import { type ExitHook, isJoiningExits, joinsExits } from '../../core/exits.js'
import { type Handler, type Middleware, send } from '../../core/handler.js'
import type { Classifier, Outcome, Verdict } from '../../core/outcome.js'
import type { Random } from '../../core/random.js'
import { ENDPOINT, type Endpoint } from './endpoint.js'
import type { EndpointHealth } from './health.js'
import type { Probe } from './health-check.js'
import type { PickInput, Strategy } from './strategies.js'

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
  /**
   * The request's hash key for `ring-hash` (a header, a cookie, the path), or `undefined` when
   * it has none (the pick is then random). Default none: no key.
   */
  readonly keyOf?: ((req: Req) => string | undefined) | undefined
  /**
   * Whether an attempt's outcome is a gateway failure, for outlier detection's
   * `consecutiveGatewayFailures` (the protocol's `gatewayFailure`). Asked only when `health`
   * counts gateway failures. Default none: no outcome is one.
   */
  readonly gatewayFailure?: ((outcome: Outcome<Res>) => boolean) | undefined
}

/** The per-stage, reused {@link PickInput}. */
interface MutablePickInput {
  now: number
  key: string | undefined
  all: readonly Endpoint[]
}

/** Records the first sight of endpoints created since the last configuration (slow start reads it). */
function recordArrivals(endpoints: readonly Endpoint[], now: number): void {
  for (const e of endpoints) if (Number.isNaN(e.addedAt)) e.addedAt = now
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
  tried: Attempted,
  strategy: Strategy,
  ctx: Context,
  input: PickInput,
): Endpoint {
  for (let i = 0; i < REPICKS; i++) {
    const e = strategy.pick(endpoints, ctx.random, input)
    if (e !== undefined && !tried.has(e)) return e
  }
  const untried = endpoints.filter((e) => !tried.has(e))
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
  tried: Attempted | undefined,
  random: Random,
): Endpoint | undefined {
  const n = candidates.length
  const start = Math.floor(random.next() * n)
  let best: Endpoint | undefined
  let bestTried = true
  for (let k = 0; k < n; k++) {
    const e = candidates[(start + k) % n]!
    if (e.pending >= limit) continue
    const wasTried = tried?.has(e) === true
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
  const { endpoints, strategy, service, keyOf } = options
  const timed = strategy.timed === true
  const observe = strategy.observe?.bind(strategy)
  const input: MutablePickInput = { now: 0, key: undefined, all: endpoints }
  let arrivals = true
  // What an attempt does when it settles: its endpoint's in-flight count back, and its latency
  // to a strategy that observes (peak EWMA), timed from the attempt's start on the call's clock.
  const exit: ExitHook =
    observe === undefined
      ? (endpoint) => {
          ;(endpoint as Endpoint).pending--
        }
      : (endpoint, sent, _ok, _result, _req, ctx) => {
          ;(endpoint as Endpoint).pending--
          const now = ctx.clock.now()
          observe(endpoint as Endpoint, now - (sent as number), now)
        }
  return (next) => {
    const inner = isJoiningExits(next as Handler<unknown, unknown>)
    return joinsExits(function balancerStage(req: Req, ctx: Context) {
      if (arrivals) {
        recordArrivals(endpoints, ctx.startedAt)
        arrivals = false
      }
      if (timed) input.now = ctx.startedAt
      if (keyOf !== undefined) input.key = keyOf(req)
      let endpoint = strategy.pick(endpoints, ctx.random, input)
      if (endpoint === undefined) return Promise.reject(new NoHealthyEndpointError(service))
      const tried = ctx.get(ATTEMPTED)
      if (tried !== undefined) {
        if (tried.has(endpoint)) endpoint = avoidTried(endpoint, endpoints, tried, strategy, ctx, input)
        tried.add(endpoint)
      }
      endpoint.pending++
      return attempt(next, inner, exit, endpoint, req, ctx)
    })
  }
}

/**
 * Sends the attempt to `endpoint` (its in-flight count already raised) and runs `exit` when it
 * settles: in the attempt's open scope when there is one (no promise of its own), else in a
 * reaction of its own. The scope goes on only to a handler that joins it (core/exits.ts).
 */
function attempt<Req, Res>(
  next: Handler<Req, Res>,
  inner: boolean,
  exit: ExitHook,
  endpoint: Endpoint,
  req: Req,
  ctx: Context,
): Promise<Res> {
  const exits = ctx.exits
  const sent = ctx.startedAt
  if (exits !== undefined) {
    exits.add(exit, endpoint, sent)
    return send(next, req, ctx.withEntry(ENDPOINT, endpoint, inner ? exits : undefined))
  }
  return send(next, req, ctx.with(ENDPOINT, endpoint)).then(
    (value) => {
      exit(endpoint, sent, true, value, req, ctx)
      return value
    },
    (error: unknown) => {
      exit(endpoint, sent, false, error, req, ctx)
      throw error
    },
  )
}

function guardedBalancer<Req, Res>(
  options: BalancerOptions<Req, Res>,
  perEndpoint: number,
): Middleware<Req, Res> {
  const { endpoints, strategy, service, health, classify, probe, events, keyOf, gatewayFailure } = options
  const timed = strategy.timed === true
  const observe = strategy.observe?.bind(strategy)
  const input: MutablePickInput = { now: 0, key: undefined, all: endpoints }
  let arrivals = true
  // One outcome of each kind, reused: a classifier judges synchronously and keeps nothing (as
  // every meshlet classifier), so recording a verdict allocates nothing. Cleared after use so
  // that no response is held.
  const okOutcome: { ok: true; value: unknown } = { ok: true, value: undefined }
  const errorOutcome: { ok: false; error: unknown } = { ok: false, error: undefined }
  const judge = (req: Req, ok: boolean, result: unknown): Verdict => {
    try {
      if (ok) {
        okOutcome.value = result
        return classify!(req, okOutcome as Outcome<Res>)
      }
      errorOutcome.error = result
      return classify!(req, errorOutcome)
    } finally {
      // Also when the classifier throws: no response is held.
      okOutcome.value = undefined
      errorOutcome.error = undefined
    }
  }
  const recorder = health !== undefined && classify !== undefined && health.passive ? health : undefined
  const gateway = (ok: boolean, result: unknown): boolean => {
    if (gatewayFailure === undefined || !recorder!.countsGateway) return false
    try {
      if (ok) {
        okOutcome.value = result
        return gatewayFailure(okOutcome as Outcome<Res>)
      }
      errorOutcome.error = result
      return gatewayFailure(errorOutcome)
    } finally {
      okOutcome.value = undefined
      errorOutcome.error = undefined
    }
  }
  // What an attempt does when it settles: its endpoint's in-flight count back, its latency to a
  // strategy that observes, and its verdict to passive health (outlier detection): `verdict` when
  // the scope's owner judged with this same classifier (D34), else judged here.
  const settle = (
    chosen: Endpoint,
    sent: number,
    ok: boolean,
    result: unknown,
    req: Req,
    ctx: Context,
    verdict: Verdict | undefined,
  ) => {
    chosen.pending--
    const end = ctx.clock.now()
    observe?.(chosen, end - sent, end)
    if (recorder !== undefined) {
      const v = verdict ?? judge(req, ok, result)
      recorder.record(
        chosen,
        v,
        end,
        ctx.random,
        events,
        v !== 'success' && v !== 'ignored' && gateway(ok, result),
      )
    }
  }
  const exit: ExitHook =
    recorder === undefined && observe === undefined
      ? (endpoint) => {
          ;(endpoint as Endpoint).pending--
        }
      : (endpoint, sent, ok, result, req, ctx) =>
          settle(endpoint as Endpoint, sent as number, ok, result, req as Req, ctx, undefined)
  // Added, in place of `exit`, to a scope whose owner judges with this stage's classifier.
  const sharedExit: ExitHook =
    recorder === undefined
      ? exit
      : (endpoint, sent, ok, result, req, ctx, verdict) =>
          settle(endpoint as Endpoint, sent as number, ok, result, req as Req, ctx, verdict)
  return (next) => {
    const inner = isJoiningExits(next as Handler<unknown, unknown>)
    return joinsExits(function balancerStage(req: Req, ctx: Context) {
      let candidates = endpoints
      const now = ctx.startedAt
      if (arrivals) {
        recordArrivals(endpoints, now)
        arrivals = false
      }
      if (health !== undefined) {
        if (probe !== undefined && health.checksWanted)
          health.startChecks(probe, ctx.clock, ctx.random, events)
        // A subset (or an older endpoint list) shares its service's health view: the view still
        // runs its lazy sweeps, and the subset's endpoints are filtered by their health.
        const rotation = health.inRotation(now, ctx.random, events)
        candidates = health.endpoints === endpoints ? rotation : health.inRotationOf(endpoints, now)
      }
      if (timed) input.now = now
      if (keyOf !== undefined) input.key = keyOf(req)
      let endpoint = strategy.pick(candidates, ctx.random, input)
      if (endpoint === undefined) {
        return Promise.reject(
          new NoHealthyEndpointError(
            service,
            endpoints.length === 0 ? undefined : 'every endpoint is ejected or failing its health checks',
          ),
        )
      }
      const tried = ctx.get(ATTEMPTED)
      if (tried?.has(endpoint)) endpoint = avoidTried(endpoint, candidates, tried, strategy, ctx, input)
      if (perEndpoint > 0 && endpoint.pending >= perEndpoint) {
        const free = withRoom(candidates, perEndpoint, tried, ctx.random)
        if (free === undefined) {
          return Promise.reject(
            new BulkheadFullError(service, `every endpoint has ${perEndpoint} attempts in flight`),
          )
        }
        endpoint = free
      }
      if (tried !== undefined) tried.add(endpoint)
      endpoint.pending++
      return attempt(next, inner, ctx.exits?.judge === classify ? sharedExit : exit, endpoint, req, ctx)
    })
  }
}
