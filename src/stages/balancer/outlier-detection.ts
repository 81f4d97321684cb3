/**
 * Outlier detection's settings and arithmetic: how many endpoints may be ejected at once, how
 * long an ejection lasts, and the success-rate threshold. The algorithms follow gRFC A50
 * (success rate, failure percentage) and Envoy (consecutive failures, the ejection multiplier's
 * cap and decay); `health.ts` runs them. They are pure functions here so that their edge cases
 * (one endpoint may always go, the cap on the multiplier) are tested on their own.
 */

/** Success-rate ejection (gRFC A50 `success_rate_ejection`). */
export interface SuccessRateEjectionOptions {
  /** Eject when success rate < mean - stdevFactor x stdev. Default `1.9` (A50's 1900 / 1000). */
  readonly stdevFactor: number
  /** Percent of the time an ejection found this way is enforced. Default `100`. */
  readonly enforcementPercentage: number
  /** Endpoints with `requestVolume` needed for this check to run. Default `5`. */
  readonly minimumHosts: number
  /** Requests an endpoint needs in the interval to be judged. Default `100`. */
  readonly requestVolume: number
}

/** Failure-percentage ejection (gRFC A50 `failure_percentage_ejection`). */
export interface FailurePercentageEjectionOptions {
  /** Eject when an endpoint's failure percentage reaches this. Default `85`. */
  readonly threshold: number
  /** Percent of the time an ejection found this way is enforced. Default `100`. */
  readonly enforcementPercentage: number
  /** Endpoints with `requestVolume` needed for this check to run. Default `5`. */
  readonly minimumHosts: number
  /** Requests an endpoint needs in the interval to be judged. Default `50`. */
  readonly requestVolume: number
}

/** Outlier detection of one service, durations in ms (the resolved `outlierDetection` config). */
export interface OutlierDetectionOptions {
  /** Eject at the failure that makes this many in a row (Envoy's `consecutive_5xx`); `0`: off. Default `5`. */
  readonly consecutiveFailures: number
  /**
   * Eject at the gateway failure (502, 503, 504, a connection failure, an attempt timeout) that
   * makes this many in a row, counted apart: any other outcome resets it (Envoy's
   * `consecutive_gateway_failure`); `0`: off. Default `0`.
   */
  readonly consecutiveGatewayFailures?: number | undefined
  /** How often the rate-based checks run (lazily, on the next call). Default `10000` (10 s). */
  readonly interval: number
  /** Ejection time, multiplied by the times ejected, up to `maxEjectionTime`. Default `30000`. */
  readonly baseEjectionTime: number
  /** The longest ejection (at least `baseEjectionTime`). Default `300000`. */
  readonly maxEjectionTime: number
  /** At most this percent of the endpoints ejected at once (one may always go). Default `10`. */
  readonly maxEjectionPercent: number
  /** Success-rate ejection; `undefined` turns it off. Default on, with its defaults. */
  readonly successRateEjection?: SuccessRateEjectionOptions | undefined
  /** Failure-percentage ejection; `undefined` turns it off. Default off. */
  readonly failurePercentageEjection?: FailurePercentageEjectionOptions | undefined
  /** Below this percent of endpoints in rotation, balance over all of them (Envoy). Default `50`. */
  readonly panicThreshold: number
}

/** The defaults of {@link OutlierDetectionOptions}, as in the config schema. */
export const OUTLIER_DETECTION_DEFAULTS: OutlierDetectionOptions = Object.freeze({
  consecutiveFailures: 5,
  consecutiveGatewayFailures: 0,
  interval: 10_000,
  baseEjectionTime: 30_000,
  maxEjectionTime: 300_000,
  maxEjectionPercent: 10,
  successRateEjection: Object.freeze({
    stdevFactor: 1.9,
    enforcementPercentage: 100,
    minimumHosts: 5,
    requestVolume: 100,
  }),
  failurePercentageEjection: undefined,
  panicThreshold: 50,
})

/** The defaults of {@link FailurePercentageEjectionOptions}. */
export const FAILURE_PERCENTAGE_DEFAULTS: FailurePercentageEjectionOptions = Object.freeze({
  threshold: 85,
  enforcementPercentage: 100,
  minimumHosts: 5,
  requestVolume: 50,
})

/**
 * Whether one more endpoint may be ejected when `ejected` of `total` already are. The cap is
 * Envoy's (`(ejected + 1) / total <= maxEjectionPercent`, so never more than
 * floor(percent x total / 100)), except that one endpoint may always go when the percent is
 * above 0: A50's "will eject at least one address regardless of the value" (Envoy's
 * `always_eject_one_host`). A50's loop ("stop when the ejected percentage is greater than the
 * maximum") would overshoot the cap by one; we keep the cap exact instead.
 */
export function mayEject(ejected: number, total: number, maxEjectionPercent: number): boolean {
  if (maxEjectionPercent <= 0 || ejected >= total) return false
  return ejected === 0 || (ejected + 1) * 100 <= maxEjectionPercent * total
}

/** The most endpoints {@link mayEject} lets go at once out of `total`. */
export function ejectionLimit(total: number, maxEjectionPercent: number): number {
  if (maxEjectionPercent <= 0 || total === 0) return 0
  return Math.min(total, Math.max(1, Math.floor((maxEjectionPercent * total) / 100 + 1e-9)))
}

/**
 * The multiplier after one more ejection. Envoy stops growing it once `base x multiplier`
 * passes `max`, so that a long-flapping endpoint needs only a few healthy intervals to decay.
 */
export function nextMultiplier(multiplier: number, base: number, max: number): number {
  if (base <= 0) return 1
  return multiplier * base < Math.max(base, max) + base ? multiplier + 1 : multiplier
}

/** How long an ejection lasts: A50's `min(base x multiplier, max(base, max))`. */
export function ejectionTime(base: number, max: number, multiplier: number): number {
  return Math.min(base * multiplier, Math.max(base, max))
}

/** Whether an outlier found with this enforcement percentage is ejected (A50: a draw in [0, 100)). */
export function enforced(percentage: number, draw: () => number): boolean {
  if (percentage >= 100) return true
  if (percentage <= 0) return false
  return draw() * 100 < percentage
}
