/**
 * The health view of one service: which endpoints are in rotation, from passive outlier
 * detection (gRFC A50, Envoy) and active health checks together. The balancer asks it for the
 * endpoints to pick from and tells it each attempt's verdict.
 *
 * No timer for outlier detection, per endpoint or per service. A consecutive-failure ejection
 * happens inside {@link EndpointHealth.record}, at the failure that crosses the threshold (as
 * Envoy). The rate-based checks that A50 runs on an interval timer run when a call arrives after
 * the interval is due, as of the time they were due; an ejection ends when a call arrives after
 * its end. Both are one comparison per call against {@link EndpointHealth} `#nextCheck`. The
 * endpoints in rotation are a cached array, rebuilt only when an endpoint leaves or returns, so
 * the per-call cost is that comparison and a few counter updates.
 *
 * Active health checks do need a timer: one per service, armed on the first call (see
 * `health-check.ts`), stopped by {@link EndpointHealth.close} (the mesh closing or the service
 * going away) or when the `healthCheck` config changes.
 *
 * When fewer than `panicThreshold` percent of the endpoints are in rotation, the balancer uses
 * all of them (Envoy's panic mode): a service where most endpoints look bad is more likely
 * failing as a whole, and piling every call onto the few left would only take those down too.
 */
import type { Clock } from '../../core/clock.js'
import type { Events, MeshEvents } from '../../core/events.js'
import type { Verdict } from '../../core/outcome.js'
import type { Random } from '../../core/random.js'
import type { Endpoint } from './endpoint.js'
import { HealthChecker, type HealthCheckOptions, type Probe } from './health-check.js'
import {
  ejectionTime,
  enforced,
  mayEject,
  nextMultiplier,
  type OutlierDetectionOptions,
} from './outlier-detection.js'

/** What makes an endpoint leave rotation. */
export type EjectionReason = MeshEvents['ejection']['reason']

/** The health settings of a service. */
export interface EndpointHealthConfig {
  /** Passive outlier detection. Default none. */
  readonly outlierDetection?: OutlierDetectionOptions | undefined
  /** Active health checks. Default none. */
  readonly healthCheck?: HealthCheckOptions | undefined
}

/** The panic threshold when only health checks are configured (Envoy's default). */
const DEFAULT_PANIC_THRESHOLD = 50
/** Success rates closer than this are equal: the mean of equal rates may differ from them by an ulp. */
const EPSILON = 1e-9

/** The health view of one service; see the module comment. */
export class EndpointHealth {
  /** The service's name, for events. */
  readonly service: string
  #endpoints: readonly Endpoint[] = []
  #od: OutlierDetectionOptions | undefined = undefined
  #hc: HealthCheckOptions | undefined = undefined
  #hcKey = ''
  #panicThreshold = DEFAULT_PANIC_THRESHOLD
  // The endpoints in rotation (reused array) and what the balancer picks from (it, or all in panic).
  readonly #rotation: Endpoint[] = []
  #current: readonly Endpoint[] = []
  #panic = false
  #dirty = true
  readonly #ejected: Endpoint[] = []
  #started = false
  #nextSweep = Number.POSITIVE_INFINITY
  #lastSweep = 0
  #nextUneject = Number.POSITIVE_INFINITY
  #nextCheck = Number.NEGATIVE_INFINITY
  #checker: HealthChecker | undefined = undefined
  #events: Events | undefined = undefined
  #closed = false

  constructor(service: string, endpoints: readonly Endpoint[], config: EndpointHealthConfig) {
    this.service = service
    this.configure(endpoints, config)
  }

  /**
   * Takes a new endpoint list and settings (a config update). Endpoints that stay keep their
   * state (ejections, multipliers, health-check results); new ones start in rotation. Without
   * outlier detection every ejection is lifted; without health checks every endpoint is healthy.
   * A changed `healthCheck` stops the probes, which start again, with the new settings, on the
   * next call.
   */
  configure(endpoints: readonly Endpoint[], config: EndpointHealthConfig): void {
    const kept = new Set(endpoints)
    for (const e of this.#endpoints) if (!kept.has(e) && e.health.owner === this) e.health.owner = undefined
    for (const e of endpoints) {
      const s = e.health
      if (s.owner !== this) {
        s.reset()
        s.owner = this
      }
    }
    this.#endpoints = endpoints
    const od = config.outlierDetection
    this.#od = od
    this.#panicThreshold = od?.panicThreshold ?? DEFAULT_PANIC_THRESHOLD
    this.#ejected.length = 0
    this.#nextUneject = Number.POSITIVE_INFINITY
    for (const e of endpoints) {
      const s = e.health
      if (od === undefined) {
        s.ejected = false
        s.multiplier = 0
        s.consecutiveFailures = 0
        s.consecutiveGatewayFailures = 0
      }
      if (s.ejected) {
        this.#ejected.push(e)
        if (s.ejectedUntil < this.#nextUneject) this.#nextUneject = s.ejectedUntil
      }
    }
    // A50: a new config keeps the interval's start; the next sweep is one new interval after it.
    this.#nextSweep =
      od === undefined || !this.#started
        ? Number.POSITIVE_INFINITY
        : this.#lastSweep + Math.max(1, od.interval)
    if (od === undefined) this.#started = false
    this.#nextCheck = Number.NEGATIVE_INFINITY
    const hc = config.healthCheck
    const hcKey = hc === undefined ? '' : JSON.stringify(hc)
    if (hcKey !== this.#hcKey) {
      this.#stopChecks()
      if (hc === undefined) for (const e of endpoints) e.health.checkedHealthy = true
    }
    this.#hc = hc
    this.#hcKey = hcKey
    this.#dirty = true
  }

  /** The endpoints this view covers (the latest config's). */
  get endpoints(): readonly Endpoint[] {
    return this.#endpoints
  }

  /** Whether outlier detection is on, so the balancer should report each attempt's verdict. */
  get passive(): boolean {
    return this.#od !== undefined
  }

  /** Endpoints ejected by outlier detection now (health-check failures are not counted). */
  get ejectedCount(): number {
    return this.#ejected.length
  }

  /** Whether the last {@link inRotation} fell back to every endpoint (panic mode). */
  get panicking(): boolean {
    return this.#panic
  }

  /**
   * The endpoints to pick from at `now`: those neither ejected nor failing health checks, or
   * all of them in panic mode. Runs the rate-based checks when their interval is due and lifts
   * ejections that ended. The array is cached: do not keep or change it.
   */
  inRotation(now: number, random: Random, events?: Events): readonly Endpoint[] {
    if (now >= this.#nextCheck) this.#refresh(now, random, events)
    if (this.#dirty) this.#rebuild()
    return this.#current
  }

  /**
   * The endpoints of an older endpoint list that are in rotation at `now` (for calls still in
   * flight on a configuration that was replaced). Allocates; off the hot path.
   */
  inRotationOf(endpoints: readonly Endpoint[], now: number): readonly Endpoint[] {
    const list = endpoints.filter(
      (e) => e.health.checkedHealthy && !(e.health.ejected && e.health.ejectedUntil > now),
    )
    return list.length * 100 < this.#panicThreshold * endpoints.length ? endpoints : list
  }

  /** Whether outlier detection counts gateway failures apart, so {@link record} needs to be told of them. */
  get countsGateway(): boolean {
    return (this.#od?.consecutiveGatewayFailures ?? 0) > 0
  }

  /**
   * Takes the verdict of one attempt on `endpoint`, which finished at `now`. `success` and the
   * failures (`retryable`, `failure`) count; `ignored` does not. The failure that makes
   * `consecutiveFailures` in a row ejects the endpoint at once, within `maxEjectionPercent`;
   * so does the failure that makes `consecutiveGatewayFailures` gateway failures (`gateway`) in
   * a row, a count that any other outcome resets (Envoy's `consecutive_gateway_failure`).
   */
  record(
    endpoint: Endpoint,
    verdict: Verdict,
    now: number,
    random: Random,
    events?: Events,
    gateway = false,
  ): void {
    const od = this.#od
    const s = endpoint.health
    if (verdict === 'ignored' || od === undefined || s.owner !== this) return
    if (now >= this.#nextCheck) this.#refresh(now, random, events)
    if (verdict === 'success') {
      s.successes++
      s.consecutiveFailures = 0
      s.consecutiveGatewayFailures = 0
      return
    }
    s.failures++
    const threshold = od.consecutiveFailures
    let reason: EjectionReason | undefined
    if (threshold > 0 && !s.ejected && ++s.consecutiveFailures >= threshold) {
      // Envoy resets the count whether or not the cap let the ejection happen.
      s.consecutiveFailures = 0
      reason = 'consecutive-failures'
    }
    const gatewayThreshold = od.consecutiveGatewayFailures ?? 0
    if (!gateway) s.consecutiveGatewayFailures = 0
    else if (gatewayThreshold > 0 && !s.ejected && ++s.consecutiveGatewayFailures >= gatewayThreshold) {
      s.consecutiveGatewayFailures = 0
      reason ??= 'consecutive-gateway-failures'
    }
    if (reason !== undefined && mayEject(this.#ejected.length, this.#endpoints.length, od.maxEjectionPercent))
      this.#eject(endpoint, now, reason, events)
  }

  /** Whether active health checks are configured and not running yet (the balancer starts them). */
  get checksWanted(): boolean {
    return this.#hc !== undefined && this.#checker === undefined && !this.#closed
  }

  /** Whether the health-check scheduler is running. */
  get checking(): boolean {
    return this.#checker !== undefined
  }

  /**
   * Starts active health checks with `probe`, on `clock`: one timer for the service, until
   * {@link close}. Does nothing without `healthCheck`, when running or when closed.
   */
  startChecks(probe: Probe, clock: Clock, random: Random, events?: Events): void {
    const hc = this.#hc
    if (hc === undefined || this.#checker !== undefined || this.#closed) return
    this.#events = events
    const checker = new HealthChecker({
      interval: hc.interval,
      timeout: hc.timeout,
      endpoints: () => this.#endpoints,
      probe,
      clock,
      random,
      onResult: (endpoint, healthy) => this.probed(endpoint, healthy),
    })
    this.#checker = checker
    checker.start()
  }

  /**
   * Takes one active health-check result. `unhealthyThreshold` failures in a row take the
   * endpoint out of rotation; `healthyThreshold` successes in a row bring it back.
   */
  probed(endpoint: Endpoint, healthy: boolean): void {
    const hc = this.#hc
    const s = endpoint.health
    if (hc === undefined || s.owner !== this) return
    const events = this.#events
    if (healthy) {
      s.probeFailures = 0
      s.probeSuccesses++
      if (!s.checkedHealthy && s.probeSuccesses >= hc.healthyThreshold) {
        s.checkedHealthy = true
        this.#dirty = true
        if (!s.ejected) this.#emitEnd(endpoint, events)
      }
    } else {
      s.probeSuccesses = 0
      s.probeFailures++
      if (s.checkedHealthy && s.probeFailures >= hc.unhealthyThreshold) {
        s.checkedHealthy = false
        this.#dirty = true
        if (!s.ejected && events?.has('ejection')) {
          events.emit('ejection', {
            service: this.service,
            endpoint: endpoint.address,
            reason: 'health-check',
            until: Number.POSITIVE_INFINITY,
          })
        }
      }
    }
  }

  /** Stops the health checks for good (the mesh closed, or the service went away). */
  close(): void {
    this.#closed = true
    this.#stopChecks()
  }

  #stopChecks(): void {
    this.#checker?.stop()
    this.#checker = undefined
  }

  #refresh(now: number, random: Random, events: Events | undefined): void {
    const od = this.#od
    if (od !== undefined && !this.#started) {
      this.#started = true
      this.#lastSweep = now
      this.#nextSweep = now + Math.max(1, od.interval)
    }
    if (now >= this.#nextSweep) this.#sweep(this.#nextSweep, now, random, events)
    if (now >= this.#nextUneject) this.#unejectExpired(now, events)
    this.#nextCheck = Math.min(this.#nextSweep, this.#nextUneject)
  }

  /**
   * A50's interval sweep, run late: as of `due` (when its timer would have fired), with the
   * counts of the interval, then the sweeps missed between `due` and `now` at once (their
   * counts are empty: any call would have run them; they only decay multipliers).
   */
  #sweep(due: number, now: number, random: Random, events: Events | undefined): void {
    const od = this.#od!
    const interval = Math.max(1, od.interval)
    if (due >= this.#nextUneject) this.#unejectExpired(due, events)
    const draw = () => random.next()
    const endpoints = this.#endpoints
    const total = endpoints.length
    const sr = od.successRateEjection
    if (sr !== undefined) {
      // A50: mean and standard deviation of the success rates of the endpoints with enough volume.
      let hosts = 0
      let sum = 0
      for (const e of endpoints) {
        const s = e.health
        const volume = s.successes + s.failures
        if (s.ejected || volume < sr.requestVolume) continue
        hosts++
        sum += s.successes / volume
      }
      if (hosts > 0 && hosts >= sr.minimumHosts) {
        const mean = sum / hosts
        let squares = 0
        for (const e of endpoints) {
          const s = e.health
          const volume = s.successes + s.failures
          if (s.ejected || volume < sr.requestVolume) continue
          const d = s.successes / volume - mean
          squares += d * d
        }
        const threshold = mean - sr.stdevFactor * Math.sqrt(squares / hosts) - EPSILON
        for (const e of endpoints) {
          const s = e.health
          const volume = s.successes + s.failures
          if (s.ejected || volume < sr.requestVolume || s.successes / volume >= threshold) continue
          if (!mayEject(this.#ejected.length, total, od.maxEjectionPercent)) break
          if (enforced(sr.enforcementPercentage, draw)) this.#eject(e, due, 'success-rate', events)
        }
      }
    }
    const fp = od.failurePercentageEjection
    if (fp !== undefined) {
      // The config (as Envoy) counts the endpoints with enough volume against minimumHosts.
      let hosts = 0
      for (const e of endpoints) {
        const s = e.health
        if (!s.ejected && s.successes + s.failures >= fp.requestVolume) hosts++
      }
      if (hosts > 0 && hosts >= fp.minimumHosts) {
        for (const e of endpoints) {
          const s = e.health
          const volume = s.successes + s.failures
          if (s.ejected || volume < fp.requestVolume || s.failures * 100 < fp.threshold * volume) continue
          if (!mayEject(this.#ejected.length, total, od.maxEjectionPercent)) break
          if (enforced(fp.enforcementPercentage, draw)) this.#eject(e, due, 'failure-percentage', events)
        }
      }
    }
    // Sweeps at due + i x interval for i = 0..missed. Envoy lowers the multiplier of an endpoint
    // that has been back in rotation for a whole interval, once per sweep.
    const missed = Math.floor((now - due) / interval)
    for (const e of endpoints) {
      const s = e.health
      s.successes = 0
      s.failures = 0
      if (s.multiplier === 0) continue
      const back = s.ejected ? s.ejectedUntil : s.unejectedAt
      const first = Math.max(0, Math.ceil((back + interval - due) / interval))
      const sweeps = missed - first + 1
      if (sweeps > 0) s.multiplier = Math.max(0, s.multiplier - sweeps)
    }
    this.#lastSweep = due + missed * interval
    this.#nextSweep = this.#lastSweep + interval
  }

  #eject(endpoint: Endpoint, at: number, reason: EjectionReason, events: Events | undefined): void {
    const od = this.#od!
    const s = endpoint.health
    s.ejected = true
    s.multiplier = nextMultiplier(s.multiplier, od.baseEjectionTime, od.maxEjectionTime)
    s.ejectedUntil = at + ejectionTime(od.baseEjectionTime, od.maxEjectionTime, s.multiplier)
    s.consecutiveFailures = 0
    s.consecutiveGatewayFailures = 0
    this.#ejected.push(endpoint)
    if (s.ejectedUntil < this.#nextUneject) this.#nextUneject = s.ejectedUntil
    if (s.ejectedUntil < this.#nextCheck) this.#nextCheck = s.ejectedUntil
    this.#dirty = true
    if (s.checkedHealthy && events?.has('ejection')) {
      events.emit('ejection', {
        service: this.service,
        endpoint: endpoint.address,
        reason,
        until: s.ejectedUntil,
      })
    }
  }

  #unejectExpired(now: number, events: Events | undefined): void {
    const list = this.#ejected
    let next = Number.POSITIVE_INFINITY
    let kept = 0
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!
      const s = e.health
      if (s.ejectedUntil <= now) {
        s.ejected = false
        s.unejectedAt = s.ejectedUntil
        // Envoy: a fresh start, so that a few new failures do not eject it again at once.
        s.consecutiveFailures = 0
        s.consecutiveGatewayFailures = 0
        this.#dirty = true
        if (s.checkedHealthy) this.#emitEnd(e, events)
      } else {
        list[kept++] = e
        if (s.ejectedUntil < next) next = s.ejectedUntil
      }
    }
    list.length = kept
    this.#nextUneject = next
  }

  #emitEnd(endpoint: Endpoint, events: Events | undefined): void {
    if (events?.has('ejection-end')) {
      events.emit('ejection-end', { service: this.service, endpoint: endpoint.address })
    }
  }

  #rebuild(): void {
    const list = this.#rotation
    list.length = 0
    const endpoints = this.#endpoints
    for (const e of endpoints) if (!e.health.ejected && e.health.checkedHealthy) list.push(e)
    this.#panic = list.length * 100 < this.#panicThreshold * endpoints.length
    this.#current = this.#panic ? endpoints : list
    this.#dirty = false
  }
}
