/**
 * An endpoint as the balancer sees it: an address, its static attributes, and the live load
 * counters that strategies read. Endpoint objects are owned by the mesh and survive config
 * updates for the same address, so their statistics carry over.
 */
import { createContextKey } from '../../core/context.js'

/** The static description of an endpoint. */
export interface EndpointInit {
  /** Where to send: an origin (`http://10.0.0.1:8080`) or `host:port` for gRPC. */
  readonly address: string
  /** Relative share of traffic for weighted strategies. Default `1`. */
  readonly weight?: number
  /** Labels for subsets (`{ version: 'v2' }`). Default `{}`. */
  readonly labels?: Readonly<Record<string, string>>
  /** Locality zone. Default none. */
  readonly zone?: string | undefined
}

/**
 * What outlier detection and active health checks know of one endpoint. It lives on the
 * {@link Endpoint}, so it survives config updates with it; the service's `EndpointHealth`
 * (`health.ts`) is the only writer. Plain numbers and flags: recording an outcome is a few field
 * updates, never an allocation.
 */
export class EndpointHealthState {
  /** @internal The `EndpointHealth` that counts this endpoint; `undefined` when none does. */
  owner: object | undefined = undefined
  /** Whether outlier detection has taken the endpoint out of rotation. */
  ejected = false
  /** When the current ejection ends (clock ms); meaningful while {@link ejected}. */
  ejectedUntil = 0
  /** When the last ejection ended (clock ms); `-Infinity` when never ejected. */
  unejectedAt = Number.NEGATIVE_INFINITY
  /**
   * The ejection-time multiplier (A50): one more at each ejection, one less at each interval the
   * endpoint spent in rotation, so a flapping endpoint stays out longer and longer.
   */
  multiplier = 0
  /** Failures in a row (consecutive-failure ejection); a success resets it. */
  consecutiveFailures = 0
  /** Gateway failures in a row (`consecutiveGatewayFailures`); any other outcome resets it. */
  consecutiveGatewayFailures = 0
  /** Successes in the current interval (rate-based ejection). */
  successes = 0
  /** Failures in the current interval (rate-based ejection). */
  failures = 0
  /** Whether active health checks let the endpoint serve; `true` until they say otherwise. */
  checkedHealthy = true
  /** Probes in a row that passed (active health checks). */
  probeSuccesses = 0
  /** Probes in a row that failed (active health checks). */
  probeFailures = 0
  /** Whether a probe of this endpoint is in flight. */
  probing = false

  /** Forgets everything: the endpoint is in rotation with no history. */
  reset(): void {
    this.ejected = false
    this.ejectedUntil = 0
    this.unejectedAt = Number.NEGATIVE_INFINITY
    this.multiplier = 0
    this.consecutiveFailures = 0
    this.consecutiveGatewayFailures = 0
    this.successes = 0
    this.failures = 0
    this.checkedHealthy = true
    this.probeSuccesses = 0
    this.probeFailures = 0
  }
}

/** One upstream instance, with the load counters balancing reads. */
export class Endpoint {
  /** Where to send. */
  readonly address: string
  /** Relative share of traffic for weighted strategies. */
  weight = 1
  /** Labels for subsets. */
  labels: Readonly<Record<string, string>> = {}
  /** Locality zone, when known. */
  zone: string | undefined = undefined
  /** Attempts in flight on this endpoint now. */
  pending = 0
  /** Outlier detection and health-check state (read by the balancer when health is configured). */
  readonly health = new EndpointHealthState()
  /**
   * When a balancer first saw the endpoint (clock ms; slow start ramps its weight from then).
   * `NaN` until then: the endpoint is created without a clock, so the first pick records it.
   */
  addedAt = Number.NaN
  /**
   * The peak-EWMA latency estimate (ms), kept by the `peak-ewma` strategy; `NaN` until it first
   * reads it (a cold endpoint then starts at the strategy's default RTT, as tower does).
   */
  rttEstimate = Number.NaN
  /** When {@link rttEstimate} was last decayed or updated (clock ms). */
  rttStamp = 0

  constructor(init: EndpointInit) {
    this.address = init.address
    this.reconfigure(init)
  }

  /** Takes new static attributes from a config update, keeping the live counters. */
  reconfigure(init: EndpointInit): void {
    this.weight = init.weight ?? 1
    this.labels = init.labels ?? {}
    this.zone = init.zone
  }
}

/** The endpoint chosen for the current attempt (set by the balancer, read by the transport). */
export const ENDPOINT = createContextKey<Endpoint | undefined>('meshlet.endpoint', undefined)
