import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { EndpointHealth } from './health.js'
import {
  ejectionLimit,
  ejectionTime,
  enforced,
  mayEject,
  nextMultiplier,
  OUTLIER_DETECTION_DEFAULTS,
} from './outlier-detection.js'

describe('maxEjectionPercent', () => {
  it('caps ejections at floor(percent x n / 100)', () => {
    expect(ejectionLimit(20, 10)).toBe(2)
    expect(ejectionLimit(29, 10)).toBe(2)
    expect(ejectionLimit(30, 10)).toBe(3)
    expect(ejectionLimit(10, 100)).toBe(10)
    expect(mayEject(1, 20, 10)).toBe(true)
    expect(mayEject(2, 20, 10)).toBe(false)
  })

  it('lets one endpoint go whenever the percent is above 0 (A50), none at 0', () => {
    expect(ejectionLimit(3, 10)).toBe(1)
    expect(ejectionLimit(1, 1)).toBe(1)
    expect(mayEject(0, 3, 10)).toBe(true)
    expect(mayEject(1, 3, 10)).toBe(false)
    expect(ejectionLimit(50, 0)).toBe(0)
    expect(mayEject(0, 50, 0)).toBe(false)
  })

  it('never ejects more than there are', () => {
    expect(mayEject(0, 0, 100)).toBe(false)
    expect(mayEject(2, 2, 100)).toBe(false)
  })
})

describe('ejection time', () => {
  it('is base x multiplier up to max (A50)', () => {
    expect(ejectionTime(30_000, 300_000, 1)).toBe(30_000)
    expect(ejectionTime(30_000, 300_000, 3)).toBe(90_000)
    expect(ejectionTime(30_000, 300_000, 11)).toBe(300_000)
    // A max below the base means the base (A50's max(base, max)).
    expect(ejectionTime(30_000, 10_000, 2)).toBe(30_000)
  })

  it("stops growing the multiplier once base x multiplier passes max (Envoy's cap)", () => {
    let m = 0
    for (let i = 0; i < 100; i++) m = nextMultiplier(m, 30_000, 300_000)
    expect(m).toBe(11)
    expect(ejectionTime(30_000, 300_000, m)).toBe(300_000)
  })

  it('draws for the enforcement percentage only between 0 and 100', () => {
    const never = () => {
      throw new Error('drew')
    }
    expect(enforced(100, never)).toBe(true)
    expect(enforced(0, never)).toBe(false)
    expect(enforced(50, () => 0.49)).toBe(true)
    expect(enforced(50, () => 0.5)).toBe(false)
  })
})

describe('property: ejections never exceed maxEjectionPercent (one endpoint at least may go)', () => {
  it('holds for any mix of outcomes, times and settings', () => {
    let atLimit = 0
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 5 }),
        fc.boolean(),
        fc.array(
          fc.record({
            endpoint: fc.nat(),
            failed: fc.boolean(),
            dt: fc.integer({ min: 0, max: 3_000 }),
          }),
          { maxLength: 400 },
        ),
        (n, percent, consecutive, failurePercentage, steps) => {
          const endpoints = Array.from({ length: n }, (_, i) => new Endpoint({ address: `e${i}` }))
          const health = new EndpointHealth('s', endpoints, {
            outlierDetection: {
              ...OUTLIER_DETECTION_DEFAULTS,
              consecutiveFailures: consecutive,
              interval: 1_000,
              baseEjectionTime: 2_000,
              maxEjectionPercent: percent,
              successRateEjection: {
                stdevFactor: 0.5,
                enforcementPercentage: 100,
                minimumHosts: 1,
                requestVolume: 1,
              },
              failurePercentageEjection: failurePercentage
                ? { threshold: 10, enforcementPercentage: 100, minimumHosts: 1, requestVolume: 1 }
                : undefined,
            },
          })
          const random = seededRandom(7)
          const limit = percent > 0 ? Math.max(1, Math.floor((percent * n) / 100)) : 0
          let now = 0
          for (const step of steps) {
            now += step.dt
            health.inRotation(now, random)
            health.record(endpoints[step.endpoint % n]!, step.failed ? 'failure' : 'success', now, random)
            const ejected = endpoints.filter((e) => e.health.ejected).length
            if (ejected !== health.ejectedCount || ejected > limit) return false
            if (ejected === limit && limit > 1) atLimit++
          }
          return true
        },
      ),
      { numRuns: 300, seed: 20261202 },
    )
    // The runs did reach the cap, so the property was tested where it matters.
    expect(atLimit).toBeGreaterThan(0)
  })
})
