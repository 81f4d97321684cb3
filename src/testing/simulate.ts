/**
 * `simulate(config, scenario)`: drives calls through the real pipeline built from `config`, in
 * virtual time, against simulated endpoints, and reports what callers saw. It answers questions
 * like "with endpoint b slow for 30 s, do 99.9% of my calls still succeed under 1 s?" in
 * milliseconds of wall time, deterministically: the same scenario and seed give the same report,
 * byte for byte.
 *
 * Randomness comes in separate seeded streams (arrivals, the mesh's own draws, each endpoint's
 * behaviour), so two configurations compared on one seed face the same endpoint behaviour.
 */

import { errorKind } from '../adapters/fetch/classify.js'
import { isMeshError } from '../core/errors.js'
import { seededRandom } from '../core/random.js'
import type { MeshConfig } from '../mesh/config/config.js'
import { toMilliseconds } from '../mesh/config/duration.js'
import { createMesh } from '../mesh/mesh.js'
import { withMesh } from '../mesh/with-mesh.js'
import { ManualClock } from './manual-clock.js'
import { type EndpointBehavior, type ScriptedEvent, SimulatedEndpoints } from './simulated-endpoints.js'

/** A duration: ms, or a string such as `'30s'`. */
export type SimDuration = number | string

/** A scripted event with durations that may be strings. */
export interface ScenarioEvent extends Omit<ScriptedEvent, 'from' | 'to'> {
  /** Start, from the run's start. */
  readonly from: SimDuration
  /** End (exclusive); the end of the run when omitted. */
  readonly to?: SimDuration
}

/** One request the simulation sends. */
export interface SimRequest {
  /** The URL; its host names the service (`http://api/items`). */
  readonly url: string
  /** Fetch options (method, headers, body). Default: a GET. */
  readonly init?: RequestInit
}

/** What to simulate. */
export interface Scenario {
  /** Seed of every random stream of the run. Default `1`. */
  readonly seed?: number
  /** Virtual length of the run: calls start during it, and all are let finish. */
  readonly duration: SimDuration
  /** Calls started per second (open loop). Give this or `concurrency`. */
  readonly rate?: number
  /** Calls in flight at all times (closed loop: each caller starts its next call when one ends). */
  readonly concurrency?: number
  /** Spacing of open-loop arrivals: even, or a Poisson process. Default `'constant'`. */
  readonly arrivals?: 'constant' | 'poisson'
  /** The request to send, or a function of the call's index. Default: GET `http://<first service>/`. */
  readonly request?: SimRequest | ((index: number) => SimRequest)
  /** Behaviour per endpoint URL (as in the config). */
  readonly endpoints?: Readonly<Record<string, EndpointBehavior>>
  /** Behaviour of endpoints not named. Default: 1 ms, no errors. */
  readonly defaults?: EndpointBehavior
  /** Scripted changes over time (outages, latency spikes). */
  readonly events?: readonly ScenarioEvent[]
  /** Whether a response counts as a success. Default: a 2xx or 3xx status (`res.ok`). */
  readonly isSuccess?: (res: Response) => boolean
}

/** Latency percentiles as seen by callers, in ms (rounded to 1 us). */
export interface LatencySummary {
  readonly mean: number
  readonly p50: number
  readonly p90: number
  readonly p99: number
  readonly p999: number
  readonly max: number
}

/** Per-endpoint figures of a run. */
export interface EndpointReport {
  /** Attempts the endpoint received. */
  readonly attempts: number
  /** Its share of all attempts, 0..1. */
  readonly share: number
  /** Attempts it failed. */
  readonly errors: number
  /** The most attempts it had in flight at once. */
  readonly peakInflight: number
}

/** What callers saw during a simulation. */
export interface SimulationReport {
  readonly seed: number
  /** Virtual length of the run, ms. */
  readonly duration: number
  /** Calls started. */
  readonly calls: number
  /** Calls that ended in a success (see `Scenario.isSuccess`). */
  readonly succeeded: number
  /** `succeeded / calls`. */
  readonly successRate: number
  /** Time from call to outcome, every call included (failures too). */
  readonly latency: LatencySummary
  /** Time from call to outcome of the successful calls only. */
  readonly successLatency: LatencySummary
  /** Attempts sent to endpoints, retries and hedges included. */
  readonly attempts: number
  /** `attempts / calls`. */
  readonly attemptsPerCall: number
  /** Outcomes by kind: HTTP statuses (`'200'`), mesh error codes (`'TIMEOUT'`), network errors (`'reset'`). */
  readonly outcomes: Readonly<Record<string, number>>
  /** Per endpoint, by URL. */
  readonly endpoints: Readonly<Record<string, EndpointReport>>
  /** Mesh events counted during the run. */
  readonly events: Readonly<Record<string, number>>
  /** Circuit breaker and ejection transitions, in order, with their virtual time (ms from the start). */
  readonly transitions: readonly Transition[]
}

/** A state change seen during a simulation. */
export interface Transition {
  /** Ms of virtual time from the run's start. */
  readonly at: number
  readonly service: string
  /** What changed: `circuit closed -> open`, `eject http://... (consecutive-failures)`, `return http://...`. */
  readonly what: string
}

const ms = (d: SimDuration, what: string): number => {
  const v = toMilliseconds(d)
  if (v === undefined)
    throw new RangeError(`simulate: ${what}: expected a duration (ms or "30s"), got ${JSON.stringify(d)}`)
  return v
}

const round = (x: number) => Math.round(x * 1000) / 1000

function summarize(values: Float64Array, n: number): LatencySummary {
  if (n === 0) return { mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 }
  const sorted = values.subarray(0, n).sort()
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]!
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!
  return {
    mean: round(sum / n),
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p99: round(at(0.99)),
    p999: round(at(0.999)),
    max: round(sorted[n - 1]!),
  }
}

function outcomeKey(error: unknown): string {
  if (isMeshError(error)) return error.code
  const kind = errorKind(error)
  return kind === 'other' ? 'error' : kind
}

const noFetch = (() =>
  Promise.reject(new Error('simulate: a call left the simulation'))) as unknown as typeof fetch

/**
 * Runs `scenario` against `config` in virtual time; see the module comment.
 *
 * @example
 * ```ts
 * import { simulate } from 'meshlet/testing'
 * const report = await simulate(
 *   { services: { api: { endpoints: ['http://a:1', 'http://b:1'], retry: { attempts: 2 } } } },
 *   { duration: '10s', rate: 100, endpoints: { 'http://b:1': { errorRate: 0.3 } } },
 * )
 * report.successRate // above 0.99: retries move failed calls to the healthy endpoint
 * ```
 */
export async function simulate(config: MeshConfig, scenario: Scenario): Promise<SimulationReport> {
  const seed = scenario.seed ?? 1
  const duration = ms(scenario.duration, 'duration')
  const { rate, concurrency } = scenario
  if ((rate === undefined) === (concurrency === undefined)) {
    throw new RangeError('simulate: give exactly one of rate (calls per second) or concurrency')
  }
  if (rate !== undefined && !(rate > 0 && Number.isFinite(rate))) {
    throw new RangeError(`simulate: rate: expected a positive finite number, got ${rate}`)
  }
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) {
    throw new RangeError(`simulate: concurrency: expected a positive integer, got ${concurrency}`)
  }
  const firstService = Object.keys(config.services)[0]
  const request =
    scenario.request ??
    (firstService === undefined ? undefined : ({ url: `http://${firstService}/` } satisfies SimRequest))
  if (request === undefined)
    throw new RangeError('simulate: the config has no service and the scenario no request')
  const requestFor = typeof request === 'function' ? request : () => request
  const isSuccess = scenario.isSuccess ?? ((res: Response) => res.ok)

  const clock = new ManualClock()
  const start = clock.now()
  const endpoints = new SimulatedEndpoints({
    ...(scenario.endpoints ? { endpoints: scenario.endpoints } : {}),
    ...(scenario.defaults ? { defaults: scenario.defaults } : {}),
    events: (scenario.events ?? []).map(
      (e, i): ScriptedEvent => ({
        behavior: e.behavior,
        ...(e.endpoints ? { endpoints: e.endpoints } : {}),
        from: ms(e.from, `events[${i}].from`),
        ...(e.to === undefined ? {} : { to: ms(e.to, `events[${i}].to`) }),
      }),
    ),
    seed,
    start: clock.now(),
  })
  const mesh = createMesh(config, {
    clock,
    random: seededRandom(seed ^ 0x5bd1e995),
    httpTransport: endpoints.httpTransport(),
  })
  const events: Record<string, number> = {}
  for (const type of [
    'retry',
    'timeout',
    'hedge',
    'retry-budget-exhausted',
    'circuit-state',
    'ejection',
    'ejection-end',
    'bulkhead-full',
    'fallback',
  ] as const) {
    mesh.events.on(type, () => {
      events[type] = (events[type] ?? 0) + 1
    })
  }
  const transitions: Transition[] = []
  mesh.events.on('circuit-state', (e) =>
    transitions.push({ at: clock.now() - start, service: e.service, what: `circuit ${e.from} -> ${e.to}` }),
  )
  mesh.events.on('ejection', (e) =>
    transitions.push({
      at: clock.now() - start,
      service: e.service,
      what: `eject ${e.endpoint} (${e.reason})`,
    }),
  )
  mesh.events.on('ejection-end', (e) =>
    transitions.push({ at: clock.now() - start, service: e.service, what: `return ${e.endpoint}` }),
  )
  const call = withMesh(noFetch, mesh)
  const arrivalRandom = seededRandom(seed ^ 0x27d4eb2f)

  let latencies = new Float64Array(1024)
  let successLatencies = new Float64Array(1024)
  let calls = 0
  let succeeded = 0
  let inflight = 0
  const outcomes: Record<string, number> = {}
  const count = (key: string) => {
    outcomes[key] = (outcomes[key] ?? 0) + 1
  }

  const end = start + duration
  const one = async (): Promise<void> => {
    const index = calls++
    if (index >= latencies.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2)
        b.set(a)
        return b
      }
      latencies = grow(latencies)
      successLatencies = grow(successLatencies)
    }
    const { url, init } = requestFor(index)
    const t0 = clock.now()
    inflight++
    try {
      const res = await call(url, init)
      count(String(res.status))
      if (isSuccess(res)) successLatencies[succeeded++] = clock.now() - t0
    } catch (error) {
      count(outcomeKey(error))
    } finally {
      latencies[index] = clock.now() - t0
      inflight--
    }
  }

  if (rate !== undefined) {
    const gap = 1000 / rate
    let next = start
    const arrive = () => {
      void one()
      next += scenario.arrivals === 'poisson' ? -Math.log(1 - arrivalRandom.next()) * gap : gap
      if (next < end) clock.setTimer(arrive, next - clock.now())
    }
    clock.setTimer(arrive, 0)
  } else {
    const worker = async () => {
      while (clock.now() < end) {
        const before = clock.now()
        await one()
        // A call that took no virtual time would spin forever without letting time move.
        if (clock.now() === before) await clock.sleep(1)
      }
    }
    for (let i = 0; i < (concurrency ?? 0); i++) void worker()
  }

  await clock.advanceTo(end)
  // Closing now stops what runs on timers of its own (active health checks) while the calls in
  // flight finish: otherwise their probes would keep the clock busy for ever.
  const closing = mesh.close()
  // Let every call started during the run finish: run timers until none is left (deadlines bound
  // this; at most an hour of virtual time). A call still in flight then has no timer that could
  // ever end it (a hung endpoint and no deadline): closing the mesh cancels it (`MESH_CLOSED`).
  await clock.runAll(3_600_000)
  if (inflight > 0) void mesh.close({ force: true })
  await closing

  const attempts = [...endpoints.stats.values()].reduce((n, s) => n + s.attempts, 0)
  // Endpoints in config order (those never called included), then any other that was called.
  const perEndpoint: Record<string, EndpointReport> = {}
  const configured = Object.values(mesh.config.services).flatMap((svc) => svc.endpoints.map((e) => e.url))
  for (const url of [...configured, ...endpoints.stats.keys()]) {
    if (url in perEndpoint) continue
    const s = endpoints.stats.get(url) ?? { attempts: 0, errors: 0, peakInflight: 0 }
    perEndpoint[url] = {
      attempts: s.attempts,
      share: Math.round((attempts === 0 ? 0 : s.attempts / attempts) * 1e6) / 1e6,
      errors: s.errors,
      peakInflight: s.peakInflight,
    }
  }
  const sortedOutcomes: Record<string, number> = {}
  for (const key of Object.keys(outcomes).sort()) sortedOutcomes[key] = outcomes[key]!
  return {
    seed,
    duration,
    calls,
    succeeded,
    successRate: calls === 0 ? 0 : succeeded / calls,
    latency: summarize(latencies, calls),
    successLatency: summarize(successLatencies, succeeded),
    attempts,
    attemptsPerCall: round(calls === 0 ? 0 : attempts / calls),
    outcomes: sortedOutcomes,
    endpoints: perEndpoint,
    events: Object.fromEntries(
      Object.keys(events)
        .sort()
        .map((k) => [k, events[k]!]),
    ),
    transitions,
  }
}

/** The report as a compact, stable text table. */
export function formatReport(report: SimulationReport): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`
  const l = report.latency
  const lines = [
    `calls ${report.calls}, success ${pct(report.successRate)}, attempts/call ${report.attemptsPerCall}`,
    `latency ms: p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}`,
    `outcomes: ${Object.entries(report.outcomes)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    'endpoint                         attempts   share  errors',
    ...Object.entries(report.endpoints).map(
      ([url, e]) =>
        `${url.padEnd(32)} ${String(e.attempts).padStart(8)} ${pct(e.share).padStart(7)} ${String(e.errors).padStart(7)}`,
    ),
  ]
  return lines.join('\n')
}
