import { describe, expect, it } from 'vitest'
import { Events, type MeshEvents } from '../../core/events.js'
import type { Verdict } from '../../core/outcome.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { Endpoint } from './endpoint.js'
import { EndpointHealth } from './health.js'
import { OUTLIER_DETECTION_DEFAULTS, type OutlierDetectionOptions } from './outlier-detection.js'

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => new Endpoint({ address: `e${i}` }))
const od = (o: Partial<OutlierDetectionOptions> = {}): OutlierDetectionOptions => ({
  ...OUTLIER_DETECTION_DEFAULTS,
  ...o,
})
const random = seededRandom(3)
const addresses = (list: readonly Endpoint[]) => list.map((e) => e.address)

function recorder(events: Events) {
  const seen: Array<[string, unknown]> = []
  events.on('ejection', (e) => seen.push(['ejection', e]))
  events.on('ejection-end', (e) => seen.push(['ejection-end', e]))
  return seen
}

/** `count` verdicts on `e` at `now`. */
function feed(h: EndpointHealth, e: Endpoint, verdict: Verdict, count: number, now: number, events?: Events) {
  for (let i = 0; i < count; i++) h.record(e, verdict, now, random, events)
}

describe('consecutive gateway failures (Envoy consecutive_gateway_failure)', () => {
  it('ejects at the gateway failure that crosses its own threshold, reason consecutive-gateway-failures', () => {
    const eps = endpoints(3)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({
        consecutiveFailures: 0,
        consecutiveGatewayFailures: 3,
        maxEjectionPercent: 100,
      }),
    })
    expect(h.countsGateway).toBe(true)
    for (let i = 0; i < 2; i++) h.record(eps[1]!, 'failure', 0, random, events, true)
    expect(eps[1]!.health.ejected).toBe(false)
    h.record(eps[1]!, 'retryable', 0, random, events, true)
    expect(eps[1]!.health.ejected).toBe(true)
    expect(seen).toEqual([
      ['ejection', { service: 's', endpoint: 'e1', reason: 'consecutive-gateway-failures', until: 30_000 }],
    ])
  })

  it('a failure that is no gateway failure resets its count but not the 5xx count; a success resets both', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({
        consecutiveFailures: 4,
        consecutiveGatewayFailures: 2,
        maxEjectionPercent: 100,
      }),
    })
    h.record(eps[0]!, 'failure', 0, random, undefined, true)
    h.record(eps[0]!, 'failure', 0, random, undefined, false) // a 500: gateway count back to 0
    h.record(eps[0]!, 'failure', 0, random, undefined, true)
    expect(eps[0]!.health.ejected).toBe(false)
    expect(eps[0]!.health.consecutiveFailures).toBe(3)
    h.record(eps[0]!, 'success', 0, random)
    expect([eps[0]!.health.consecutiveFailures, eps[0]!.health.consecutiveGatewayFailures]).toEqual([0, 0])
    // The 5xx count, which gateway failures feed too, trips on its own.
    for (let i = 0; i < 4; i++) h.record(eps[2]!, 'failure', 0, random, undefined, i % 2 === 0)
    expect(eps[2]!.health.ejected).toBe(true)
  })

  it('is off by default and at 0', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, { outlierDetection: od({ consecutiveFailures: 0 }) })
    expect(h.countsGateway).toBe(false)
    for (let i = 0; i < 20; i++) h.record(eps[0]!, 'failure', 0, random, undefined, true)
    expect(eps[0]!.health.ejected).toBe(false)
  })
})

describe('consecutive failures', () => {
  it('ejects at the failure that crosses the threshold, and not before', () => {
    const eps = endpoints(3)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, { outlierDetection: od({ consecutiveFailures: 5 }) })
    feed(h, eps[1]!, 'retryable', 4, 0, events)
    expect(eps[1]!.health.ejected).toBe(false)
    h.record(eps[1]!, 'failure', 0, random, events)
    expect(eps[1]!.health.ejected).toBe(true)
    expect(addresses(h.inRotation(0, random))).toEqual(['e0', 'e2'])
    expect(seen).toEqual([
      ['ejection', { service: 's', endpoint: 'e1', reason: 'consecutive-failures', until: 30_000 }],
    ])
  })

  it('a success resets the count; ignored verdicts count for nothing', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, { outlierDetection: od({ consecutiveFailures: 3 }) })
    feed(h, eps[0]!, 'failure', 2, 0)
    h.record(eps[0]!, 'success', 0, random)
    feed(h, eps[0]!, 'failure', 2, 0)
    feed(h, eps[0]!, 'ignored', 10, 0)
    expect(eps[0]!.health.ejected).toBe(false)
    h.record(eps[0]!, 'retryable', 0, random)
    expect(eps[0]!.health.ejected).toBe(true)
  })

  it('0 turns it off', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, { outlierDetection: od({ consecutiveFailures: 0 }) })
    feed(h, eps[0]!, 'failure', 1000, 0)
    expect(h.ejectedCount).toBe(0)
  })
})

describe('ejection time', () => {
  it('returns the endpoint lazily when base x times ejected has passed, and emits ejection-end', () => {
    const eps = endpoints(3)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, baseEjectionTime: 1_000, interval: 60_000 }),
    })
    h.inRotation(0, random, events)
    h.record(eps[0]!, 'failure', 100, random, events)
    expect(h.inRotation(1_099, random, events)).toHaveLength(2)
    expect(h.inRotation(1_100, random, events)).toHaveLength(3)
    expect(seen.map(([type]) => type)).toEqual(['ejection', 'ejection-end'])
    // Ejected again at once: twice as long.
    h.record(eps[0]!, 'failure', 1_200, random, events)
    expect(eps[0]!.health.ejectedUntil).toBe(3_200)
    h.inRotation(3_200, random, events)
    h.record(eps[0]!, 'failure', 3_300, random, events)
    expect(eps[0]!.health.ejectedUntil).toBe(3_300 + 3_000)
  })

  it('the multiplier is capped at maxEjectionTime and decays by one per interval back in rotation', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({
        consecutiveFailures: 1,
        baseEjectionTime: 1_000,
        maxEjectionTime: 3_000,
        interval: 10_000,
      }),
    })
    let now = 0
    h.inRotation(now, random)
    for (let i = 0; i < 6; i++) {
      h.record(eps[0]!, 'failure', now, random)
      now = eps[0]!.health.ejectedUntil
      h.inRotation(now, random)
    }
    expect(eps[0]!.health.multiplier).toBe(4) // Envoy: grows while base x m < max + base
    expect(now).toBe(1_000 + 2_000 + 3_000 + 3_000 + 3_000 + 3_000)
    // Back since t = 15 s. Sweeps at 20 s (not back a whole interval yet), 30 s, 40 s, ... decay it.
    h.inRotation(20_000, random)
    expect(eps[0]!.health.multiplier).toBe(4)
    h.inRotation(30_000, random)
    expect(eps[0]!.health.multiplier).toBe(3)
    // Idle for a minute: the missed sweeps decay it at once, when the next call comes.
    h.inRotation(95_000, random)
    expect(eps[0]!.health.multiplier).toBe(0)
  })
})

describe('success-rate ejection (A50)', () => {
  const settings = od({
    consecutiveFailures: 0,
    interval: 10_000,
    successRateEjection: {
      stdevFactor: 1.9,
      enforcementPercentage: 100,
      minimumHosts: 5,
      requestVolume: 100,
    },
    maxEjectionPercent: 50,
  })

  it('ejects below mean - 1.9 x stdev at the interval, not before', () => {
    const eps = endpoints(10)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, { outlierDetection: settings })
    h.inRotation(0, random, events)
    for (const e of eps) feed(h, e, 'success', 100, 1_000, events)
    feed(h, eps[3]!, 'failure', 40, 1_000, events) // 100 / 140 = 71%; the others 100%
    expect(h.inRotation(9_999, random, events)).toHaveLength(10)
    expect(h.inRotation(10_000, random, events)).toHaveLength(9)
    expect(eps[3]!.health.ejected).toBe(true)
    expect(seen[0]).toEqual([
      'ejection',
      { service: 's', endpoint: 'e3', reason: 'success-rate', until: 40_000 },
    ])
  })

  it('uses the stdev factor: one outlier among 5 sits 2 stdev below the mean', () => {
    // A single outlier among n is always sqrt(n - 1) standard deviations from the mean.
    for (const [factor, ejected] of [
      [1.9, true],
      [2.1, false],
    ] as const) {
      const eps = endpoints(5)
      const h = new EndpointHealth('s', eps, {
        outlierDetection: {
          ...settings,
          successRateEjection: { ...settings.successRateEjection!, stdevFactor: factor },
        },
      })
      h.inRotation(0, random)
      for (const e of eps) feed(h, e, 'success', e === eps[0] ? 90 : 100, 1)
      feed(h, eps[0]!, 'failure', 10, 1)
      h.inRotation(10_000, random)
      expect(eps[0]!.health.ejected).toBe(ejected)
    }
  })

  it('needs minimumHosts endpoints with requestVolume each', () => {
    const eps = endpoints(10)
    const h = new EndpointHealth('s', eps, { outlierDetection: settings })
    h.inRotation(0, random)
    // Only 4 endpoints with 100 requests: no verdict.
    for (const e of eps.slice(0, 4)) feed(h, e, 'success', 100, 1)
    feed(h, eps[0]!, 'failure', 100, 1)
    for (const e of eps.slice(4)) feed(h, e, 'success', 99, 1)
    h.inRotation(10_000, random)
    expect(h.ejectedCount).toBe(0)
  })

  it('equal success rates eject nobody (no rounding artefact)', () => {
    const eps = endpoints(7)
    const h = new EndpointHealth('s', eps, { outlierDetection: settings })
    h.inRotation(0, random)
    for (const e of eps) {
      feed(h, e, 'success', 70, 1)
      feed(h, e, 'failure', 30, 1)
    }
    h.inRotation(10_000, random)
    expect(h.ejectedCount).toBe(0)
  })

  it('counts each interval afresh', () => {
    const eps = endpoints(5)
    const h = new EndpointHealth('s', eps, { outlierDetection: settings })
    h.inRotation(0, random)
    for (const e of eps) feed(h, e, 'success', 60, 1)
    h.inRotation(10_000, random)
    // 60 + 60 = 120 requests over two intervals, but never 100 in one: no verdict.
    for (const e of eps) feed(h, e, e === eps[0] ? 'failure' : 'success', 60, 10_001)
    h.inRotation(20_000, random)
    expect(h.ejectedCount).toBe(0)
  })
})

describe('failure-percentage ejection (A50)', () => {
  it('ejects at 85% failures among endpoints with 50 requests, once 5 such endpoints exist', () => {
    const eps = endpoints(6)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({
        consecutiveFailures: 0,
        successRateEjection: undefined,
        maxEjectionPercent: 50,
        failurePercentageEjection: {
          threshold: 85,
          enforcementPercentage: 100,
          minimumHosts: 5,
          requestVolume: 50,
        },
      }),
    })
    h.inRotation(0, random, events)
    for (const e of eps.slice(2)) feed(h, e, 'success', 50, 1, events)
    feed(h, eps[0]!, 'failure', 85, 1, events)
    feed(h, eps[0]!, 'success', 15, 1, events)
    feed(h, eps[1]!, 'failure', 84, 1, events)
    feed(h, eps[1]!, 'success', 16, 1, events)
    h.inRotation(10_000, random, events)
    expect(eps.map((e) => e.health.ejected)).toEqual([true, false, false, false, false, false])
    expect(seen[0]![1]).toMatchObject({ endpoint: 'e0', reason: 'failure-percentage' })
  })

  it('enforcementPercentage 0 finds the outlier but never ejects it', () => {
    const eps = endpoints(5)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({
        consecutiveFailures: 0,
        successRateEjection: undefined,
        failurePercentageEjection: {
          threshold: 85,
          enforcementPercentage: 0,
          minimumHosts: 5,
          requestVolume: 50,
        },
      }),
    })
    h.inRotation(0, random)
    for (const e of eps) feed(h, e, e === eps[0] ? 'failure' : 'success', 50, 1)
    h.inRotation(10_000, random)
    expect(h.ejectedCount).toBe(0)
  })
})

describe('maxEjectionPercent', () => {
  it('stops consecutive-failure ejections at the cap, and one may always go', () => {
    const eps = endpoints(20)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 10 }),
    })
    for (const e of eps) h.record(e, 'failure', 0, random)
    expect(h.ejectedCount).toBe(2)
    const three = endpoints(3)
    const h3 = new EndpointHealth('s', three, { outlierDetection: od({ consecutiveFailures: 1 }) })
    for (const e of three) h3.record(e, 'failure', 0, random)
    expect(h3.ejectedCount).toBe(1)
  })

  it('0 ejects nothing', () => {
    const eps = endpoints(5)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 0 }),
    })
    for (const e of eps) h.record(e, 'failure', 0, random)
    expect(h.ejectedCount).toBe(0)
  })
})

describe('panic threshold', () => {
  it('falls back to every endpoint when fewer than panicThreshold percent are in rotation (Envoy)', () => {
    const eps = endpoints(4)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 50 }),
    })
    h.record(eps[0]!, 'failure', 0, random)
    h.record(eps[1]!, 'failure', 0, random)
    // 2 of 4 in rotation: 50% is not below 50%.
    expect(addresses(h.inRotation(0, random))).toEqual(['e2', 'e3'])
    expect(h.panicking).toBe(false)
    h.record(eps[2]!, 'failure', 0, random)
    expect(h.inRotation(0, random)).toBe(eps)
    expect(h.panicking).toBe(true)
  })

  it('panicThreshold 0 never panics: with nothing in rotation there is nothing to pick', () => {
    const eps = endpoints(2)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 0 }),
    })
    for (const e of eps) h.record(e, 'failure', 0, random)
    expect(h.inRotation(0, random)).toEqual([])
  })
})

describe('no timer, and a cached rotation', () => {
  it('runs intervals and un-ejections lazily: nothing is ever armed on the clock', () => {
    const clock = new ManualClock()
    const eps = endpoints(10)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 2, interval: 1_000 }),
    })
    for (let t = 0; t < 100_000; t += 137) {
      const list = h.inRotation(t, random)
      h.record(list[t % list.length]!, t % 3 === 0 ? 'failure' : 'success', t, random)
    }
    expect(clock.pendingTimers).toBe(0)
  })

  it('returns the same array until an endpoint leaves or returns', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, {
      outlierDetection: od({ consecutiveFailures: 1, baseEjectionTime: 100 }),
    })
    const a = h.inRotation(0, random)
    h.record(eps[0]!, 'success', 1, random)
    expect(h.inRotation(2, random)).toBe(a)
    expect(a).toHaveLength(3)
    h.record(eps[0]!, 'failure', 3, random)
    expect(h.inRotation(4, random)).toHaveLength(2)
    expect(h.inRotation(103, random)).toHaveLength(3)
  })
})

describe('config updates', () => {
  it('keep ejections of endpoints that stay; new endpoints start in rotation', () => {
    const [a, b, c] = endpoints(3) as [Endpoint, Endpoint, Endpoint]
    const h = new EndpointHealth('s', [a, b], { outlierDetection: od({ consecutiveFailures: 1 }) })
    h.record(a, 'failure', 0, random)
    h.configure([a, b, c], { outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 50 }) })
    expect(h.ejectedCount).toBe(1)
    expect(addresses(h.inRotation(1, random))).toEqual(['e1', 'e2'])
  })

  it('removing outlier detection lifts every ejection', () => {
    const eps = endpoints(3)
    const h = new EndpointHealth('s', eps, { outlierDetection: od({ consecutiveFailures: 1 }) })
    h.record(eps[0]!, 'failure', 0, random)
    h.configure(eps, {
      healthCheck: { interval: 1_000, timeout: 100, healthyThreshold: 1, unhealthyThreshold: 1 },
    })
    expect(h.inRotation(1, random)).toHaveLength(3)
    expect(h.passive).toBe(false)
  })

  it('an endpoint dropped from the list is no longer judged', () => {
    const [a, b] = endpoints(2) as [Endpoint, Endpoint]
    const h = new EndpointHealth('s', [a, b], { outlierDetection: od({ consecutiveFailures: 1 }) })
    h.configure([b], { outlierDetection: od({ consecutiveFailures: 1 }) })
    h.record(a, 'failure', 0, random)
    expect(a.health.ejected).toBe(false)
  })
})

describe('health-check results', () => {
  const hc = { interval: 1_000, timeout: 100, healthyThreshold: 2, unhealthyThreshold: 3 }

  it('take an endpoint out after unhealthyThreshold failures and back after healthyThreshold successes', () => {
    const eps = endpoints(3)
    const events = new Events()
    const seen = recorder(events)
    const h = new EndpointHealth('s', eps, { healthCheck: hc })
    // The events object reaches the view when the checks start; a probe that never answers is enough.
    h.startChecks(() => new Promise<boolean>(() => {}), new ManualClock(), random, events)
    h.probed(eps[2]!, false)
    h.probed(eps[2]!, false)
    expect(h.inRotation(0, random)).toHaveLength(3)
    h.probed(eps[2]!, false)
    expect(addresses(h.inRotation(0, random))).toEqual(['e0', 'e1'])
    h.probed(eps[2]!, true)
    expect(h.inRotation(0, random)).toHaveLength(2)
    h.probed(eps[2]!, true)
    expect(h.inRotation(0, random)).toHaveLength(3)
    const types: Array<[string, MeshEvents['ejection']['reason'] | undefined]> = seen.map(([type, e]) => [
      type,
      (e as { reason?: MeshEvents['ejection']['reason'] }).reason,
    ])
    expect(types).toEqual([
      ['ejection', 'health-check'],
      ['ejection-end', undefined],
    ])
    h.close()
  })
})
