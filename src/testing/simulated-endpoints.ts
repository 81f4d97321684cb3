/**
 * Simulated endpoints: upstream instances that live on the injected clock. Each has a latency
 * distribution, an error rate and kind, an optional capacity beyond which latency grows with
 * load (so overload behaves like overload), and scripted events that change its behaviour for a
 * window of virtual time (an outage, a latency spike). The model is protocol-neutral; the
 * fetch shell turns its verdicts into `Response`s and fetch-like errors, so the real pipeline
 * and its real classifier run unchanged.
 */

import type { HttpRequest } from '../adapters/fetch/request.js'
import type { Context } from '../core/context.js'
import type { Handler } from '../core/handler.js'
import { type Random, seededRandom } from '../core/random.js'
import { ENDPOINT } from '../stages/balancer/endpoint.js'
import { type LatencySampler, type LatencySpec, latencySampler } from './latency.js'

/** How a simulated endpoint fails when it fails. */
export type SimulatedError =
  /** Answers with this HTTP status after its latency. */
  | { readonly status: number }
  /** The connection is reset after its latency (retryable for idempotent calls). */
  | { readonly reset: true }
  /** The connection is refused at once (retryable for any call). */
  | { readonly refused: true }
  /** Never answers: only a timeout or a cancellation ends the attempt. */
  | { readonly hang: true }

/** The behaviour of one endpoint. */
export interface EndpointBehavior {
  /** Time to answer. Default `1` ms. */
  readonly latency?: LatencySpec
  /** Share of attempts that fail, 0..1. Default `0`. */
  readonly errorRate?: number
  /** How they fail. Default `{ status: 503 }`. */
  readonly error?: SimulatedError
  /**
   * Attempts served at full speed at once; above it, latency is multiplied by
   * `inflight / capacity` (processor sharing). Default `Infinity`.
   */
  readonly capacity?: number
  /** The status of a successful answer. Default `200`. */
  readonly status?: number
}

/** A change of behaviour for a window of virtual time. */
export interface ScriptedEvent {
  /** Which endpoints (their config URL); all when omitted. */
  readonly endpoints?: readonly string[]
  /** Start, in ms of virtual time from the simulation's start. */
  readonly from: number
  /** End (exclusive), in ms; the end of the run when omitted. */
  readonly to?: number
  /** What changes in that window; unnamed fields keep the endpoint's own behaviour. */
  readonly behavior: EndpointBehavior
}

/** What one simulated attempt does. */
export interface SimulatedVerdict {
  /** When it ends, in ms from its start. `Infinity` for a hang. */
  readonly delay: number
  /** The status it answers with, or the failure it ends in. */
  readonly result: { readonly status: number } | { readonly reset: true } | { readonly refused: true }
}

interface Compiled {
  readonly latency: LatencySampler
  readonly errorRate: number
  readonly error: SimulatedError
  readonly capacity: number
  readonly status: number
}

const compile = (b: EndpointBehavior, base?: Compiled): Compiled => ({
  latency: b.latency === undefined ? (base?.latency ?? latencySampler(1)) : latencySampler(b.latency),
  errorRate: b.errorRate ?? base?.errorRate ?? 0,
  error: b.error ?? base?.error ?? { status: 503 },
  capacity: b.capacity ?? base?.capacity ?? Number.POSITIVE_INFINITY,
  status: b.status ?? base?.status ?? 200,
})

/** Per-endpoint counters of a run. */
export interface EndpointStats {
  /** Attempts that reached the endpoint. */
  attempts: number
  /** Attempts it failed (error status, reset, refused, hang). */
  errors: number
  /** Attempts in flight now. */
  inflight: number
  /** The most attempts in flight at once. */
  peakInflight: number
}

/** Options of {@link SimulatedEndpoints}. */
export interface SimulatedEndpointsOptions {
  /** Behaviour per endpoint URL (as written in the mesh config). Endpoints not named use `defaults`. */
  readonly endpoints?: Readonly<Record<string, EndpointBehavior>>
  /** Behaviour of endpoints not named in `endpoints`. Default: 1 ms, no errors. */
  readonly defaults?: EndpointBehavior
  /** Scripted changes over time. Default none. */
  readonly events?: readonly ScriptedEvent[]
  /** Seed of the endpoints' own randomness (latency, errors). Default `1`. */
  readonly seed?: number
  /** Virtual time at which event times start (the clock's reading at the run's start). Default `0`. */
  readonly start?: number
}

/** A set of simulated endpoints; see the module comment. */
export class SimulatedEndpoints {
  readonly #options: SimulatedEndpointsOptions
  readonly #base = new Map<string, Compiled>()
  readonly #defaults: Compiled
  readonly #events: ReadonlyArray<{ readonly event: ScriptedEvent; readonly compiled: Map<string, Compiled> }>
  readonly #random = new Map<string, Random>()
  readonly #stats = new Map<string, EndpointStats>()
  readonly #seed: number

  constructor(options: SimulatedEndpointsOptions = {}) {
    this.#options = options
    this.#seed = options.seed ?? 1
    this.#defaults = compile(options.defaults ?? {})
    for (const [url, b] of Object.entries(options.endpoints ?? {}))
      this.#base.set(normalize(url), compile(b, this.#defaults))
    this.#events = (options.events ?? []).map((event) => ({ event, compiled: new Map() }))
  }

  /** Counters per endpoint URL, for the endpoints that were called. */
  get stats(): ReadonlyMap<string, EndpointStats> {
    return this.#stats
  }

  #behavior(address: string, now: number): Compiled {
    const base = this.#base.get(address) ?? this.#defaults
    const t = now - (this.#options.start ?? 0)
    let current = base
    for (const { event, compiled } of this.#events) {
      if (t < event.from || (event.to !== undefined && t >= event.to)) continue
      if (event.endpoints && !event.endpoints.some((e) => normalize(e) === address)) continue
      let c = compiled.get(address)
      if (c === undefined) {
        c = compile(event.behavior, base)
        compiled.set(address, c)
      }
      current = c
    }
    return current
  }

  #randomFor(address: string): Random {
    let r = this.#random.get(address)
    if (r === undefined) {
      // One stream per endpoint: what one endpoint draws never shifts another's draws, so two
      // configurations compared on one seed see the same endpoint behaviour (common random numbers).
      r = seededRandom(hash(`${this.#seed}|${address}`))
      this.#random.set(address, r)
    }
    return r
  }

  #statsFor(address: string): EndpointStats {
    let s = this.#stats.get(address)
    if (s === undefined) {
      s = { attempts: 0, errors: 0, inflight: 0, peakInflight: 0 }
      this.#stats.set(address, s)
    }
    return s
  }

  /** Decides what one attempt to `address` starting at `now` will do, and counts it in flight. */
  begin(address: string, now: number): SimulatedVerdict {
    const b = this.#behavior(address, now)
    const r = this.#randomFor(address)
    const stats = this.#statsFor(address)
    stats.attempts++
    stats.inflight++
    if (stats.inflight > stats.peakInflight) stats.peakInflight = stats.inflight
    let latency = b.latency(r)
    if (stats.inflight > b.capacity) latency *= stats.inflight / b.capacity
    const failed = b.errorRate > 0 && r.next() < b.errorRate
    if (!failed) return { delay: latency, result: { status: b.status } }
    stats.errors++
    const e = b.error
    if ('hang' in e) return { delay: Number.POSITIVE_INFINITY, result: { reset: true } }
    if ('refused' in e) return { delay: 0, result: { refused: true } }
    if ('reset' in e) return { delay: latency, result: { reset: true } }
    return { delay: latency, result: { status: e.status } }
  }

  /** Marks the end of an attempt to `address` (answered or cancelled). */
  end(address: string): void {
    const s = this.#stats.get(address)
    if (s) s.inflight--
  }

  /**
   * The fetch shell: a transport for `createMesh(config, { httpTransport })`. Answers are real
   * `Response`s; resets and refusals are fetch-like `TypeError`s with undici's error codes, so
   * the real HTTP classifier judges them.
   */
  httpTransport(): Handler<HttpRequest, Response> {
    return (_req, ctx) => this.#run(ctx, (status) => new Response(null, { status }))
  }

  #run<Res>(ctx: Context, respond: (status: number) => Res): Promise<Res> {
    const address = ctx.get(ENDPOINT)?.address
    if (address === undefined) return Promise.reject(new Error('simulated transport: no endpoint chosen'))
    if (ctx.cancel.aborted) return Promise.reject(ctx.cancel.reason)
    const verdict = this.begin(address, ctx.clock.now())
    return new Promise<Res>((resolve, reject) => {
      let timer: ReturnType<Context['clock']['setTimer']> | undefined
      const unlink = ctx.cancel.onAbort((reason) => {
        if (timer !== undefined) ctx.clock.clearTimer(timer)
        this.end(address)
        reject(reason)
      })
      const settle = () => {
        unlink()
        this.end(address)
        const { result } = verdict
        if ('status' in result) resolve(respond(result.status))
        else reject(networkError(result))
      }
      if (verdict.delay === Number.POSITIVE_INFINITY) return
      if (verdict.delay <= 0) settle()
      else timer = ctx.clock.setTimer(settle, verdict.delay)
    })
  }
}

function networkError(result: { reset: true } | { refused: true }): TypeError {
  const code = 'refused' in result ? 'ECONNREFUSED' : 'ECONNRESET'
  return new TypeError('fetch failed', { cause: Object.assign(new Error(`simulated ${code}`), { code }) })
}

function normalize(url: string): string {
  try {
    return url.includes('://') ? new URL(url).origin : url
  } catch {
    return url
  }
}

/** FNV-1a, 32 bits: a stable seed per endpoint name. */
function hash(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
