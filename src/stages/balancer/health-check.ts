/**
 * Active health checks: one scheduler per service probes each endpoint once per `interval`,
 * and reports each result to the service's health view (`health.ts`).
 *
 * One timer per service, never one per endpoint (or per probe): the probes of a round are spread
 * evenly over the round, so 1,000 endpoints are not probed in one burst, and each round's length
 * is the interval plus up to 10% drawn from the injected `Random`, so that many clients started
 * together drift apart (Envoy's `interval_jitter_percent`). The same timer also ends probes that
 * outlive `timeout`. How to probe is a function given in ({@link Probe}), so the scheduler is
 * protocol-neutral: HTTP probes a path with a GET (see {@link handlerProbe}), gRPC can supply
 * `grpc.health.v1`.
 */
import { Cancellation } from '../../core/cancel.js'
import type { Clock, TimerHandle } from '../../core/clock.js'
import { Context } from '../../core/context.js'
import { TimeoutError } from '../../core/errors.js'
import type { Handler } from '../../core/handler.js'
import type { Random } from '../../core/random.js'
import { ENDPOINT, type Endpoint } from './endpoint.js'

/**
 * Probes one endpoint: resolves `true` when it is healthy. `ctx.cancel` aborts when the probe's
 * `timeout` passes (on the injected clock), and `ctx.deadline` says when; a rejection counts as
 * unhealthy.
 */
export type Probe = (endpoint: Endpoint, ctx: Context) => Promise<boolean>

/**
 * A {@link Probe} that sends `request` through `handler` (a transport) to the endpoint, and
 * judges the response with `healthy`; any error is unhealthy. With the fetch transport the
 * request's `AbortSignal` follows `ctx.cancel`, so a probe's timeout runs on the mesh's clock.
 *
 * @example
 * ```ts
 * import { fetchTransport, handlerProbe, type HttpRequest } from 'meshlet'
 * const request: HttpRequest = {
 *   service: 'users', path: '/healthz', method: 'GET', init: { method: 'GET' },
 *   replayable: true, signal: undefined, propagateDeadline: false,
 * }
 * const probe = handlerProbe(fetchTransport(fetch), request, (res) => res.ok)
 * ```
 */
export function handlerProbe<Req, Res>(
  handler: Handler<Req, Res>,
  request: Req,
  healthy: (res: Res) => boolean,
): Probe {
  return function probe(endpoint, ctx) {
    try {
      return handler(request, ctx.with(ENDPOINT, endpoint)).then(healthy, () => false)
    } catch {
      return Promise.resolve(false)
    }
  }
}

/** Timing of active health checks (the resolved `healthCheck` config, durations in ms). */
export interface HealthCheckOptions {
  /** Time between probes of one endpoint, plus up to 10% jitter. Default `10000` (10 s). */
  readonly interval: number
  /** A probe slower than this fails. Default `1000` (1 s). */
  readonly timeout: number
  /** Successful probes in a row that make an unhealthy endpoint healthy. Default `2`. */
  readonly healthyThreshold: number
  /** Failed probes in a row that make an endpoint unhealthy. Default `3`. */
  readonly unhealthyThreshold: number
}

/** What a {@link HealthChecker} runs on. */
export interface HealthCheckerOptions {
  /** Interval and timeout of the probes. */
  readonly interval: number
  readonly timeout: number
  /** The endpoints to probe now (read at each probe, so config updates are followed). */
  readonly endpoints: () => readonly Endpoint[]
  /** How to probe. */
  readonly probe: Probe
  readonly clock: Clock
  readonly random: Random
  /** Receives each probe's result (a timeout is `false`). */
  readonly onResult: (endpoint: Endpoint, healthy: boolean) => void
}

/** Share of the interval added at random to each round. */
const JITTER = 0.1

interface InFlight {
  readonly endpoint: Endpoint
  readonly cancel: Cancellation
  readonly deadline: number
  settled: boolean
}

/** The probe scheduler of one service; see the module comment. */
export class HealthChecker {
  readonly #o: HealthCheckerOptions
  #timer: TimerHandle | undefined = undefined
  #stopped = false
  #roundStart = 0
  #roundLength = 0
  #next = 0
  readonly #inflight: InFlight[] = []

  constructor(options: HealthCheckerOptions) {
    this.#o = options
  }

  /** Whether {@link stop} was called. */
  get stopped(): boolean {
    return this.#stopped
  }

  /** Probes in flight now. */
  get probing(): number {
    return this.#inflight.length
  }

  /** Starts the first round now; the first endpoint is probed at once. */
  start(): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#newRound(this.#o.clock.now())
    this.#tick()
  }

  /** Clears the timer and cancels the probes in flight; their results are dropped. */
  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) this.#o.clock.clearTimer(this.#timer)
    this.#timer = undefined
    for (const p of this.#inflight.splice(0)) {
      p.settled = true
      p.endpoint.health.probing = false
      p.cancel.abort(new TimeoutError('attempt', 0))
    }
  }

  #newRound(start: number): void {
    this.#roundStart = start
    this.#roundLength = Math.max(1, this.#o.interval * (1 + JITTER * this.#o.random.next()))
    this.#next = 0
  }

  #dueAt(index: number, n: number): number {
    return this.#roundStart + (index * this.#roundLength) / n
  }

  #tick = (): void => {
    this.#timer = undefined
    if (this.#stopped) return
    const { clock } = this.#o
    const now = clock.now()
    for (let i = this.#inflight.length - 1; i >= 0; i--) {
      const p = this.#inflight[i]!
      if (p.deadline <= now) this.#settle(p, false, new TimeoutError('attempt', this.#o.timeout))
    }
    let endpoints = this.#o.endpoints()
    let n = endpoints.length
    for (;;) {
      if (this.#next >= n) {
        const end = this.#roundStart + this.#roundLength
        if (end > now) break
        // A stalled process (or an idle clock) does not make up missed rounds in one burst.
        this.#newRound(end + this.#roundLength <= now ? now : end)
        endpoints = this.#o.endpoints()
        n = endpoints.length
        if (n === 0) break
        continue
      }
      if (this.#dueAt(this.#next, n) > now) break
      this.#probe(endpoints[this.#next]!, now)
      this.#next++
    }
    let wake = this.#next >= n ? this.#roundStart + this.#roundLength : this.#dueAt(this.#next, n)
    for (const p of this.#inflight) if (p.deadline < wake) wake = p.deadline
    this.#timer = clock.setTimer(this.#tick, Math.max(0, wake - now))
  }

  #probe(endpoint: Endpoint, now: number): void {
    const state = endpoint.health
    if (state.probing) return
    const { timeout, clock, random } = this.#o
    const cancel = new Cancellation()
    const p: InFlight = { endpoint, cancel, deadline: now + timeout, settled: false }
    state.probing = true
    this.#inflight.push(p)
    const ctx = Context.create({ clock, random, cancel, deadline: p.deadline })
    let result: Promise<boolean>
    try {
      result = this.#o.probe(endpoint, ctx)
    } catch {
      result = Promise.resolve(false)
    }
    result.then(
      (healthy) => this.#settle(p, healthy === true),
      () => this.#settle(p, false),
    )
  }

  #settle(p: InFlight, healthy: boolean, abort?: unknown): void {
    if (p.settled) return
    p.settled = true
    p.endpoint.health.probing = false
    const i = this.#inflight.indexOf(p)
    if (i >= 0) this.#inflight.splice(i, 1)
    if (abort !== undefined) p.cancel.abort(abort)
    if (!this.#stopped) this.#o.onResult(p.endpoint, healthy)
  }
}
