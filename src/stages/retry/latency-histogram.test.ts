import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { LatencyHistogram } from './latency-histogram.js'

describe('LatencyHistogram', () => {
  it('gives percentiles within its 4% bucket width', () => {
    const h = new LatencyHistogram({ refresh: 0 })
    const r = seededRandom(3)
    const values: number[] = []
    for (let i = 0; i < 10_000; i++) {
      const v = 1 + r.next() * 999
      values.push(v)
      h.record(v, 0)
    }
    values.sort((a, b) => a - b)
    for (const p of [50, 90, 95, 99]) {
      const exact = values[Math.ceil((p / 100) * values.length) - 1]!
      const got = h.percentile(p, 0)!
      expect(got).toBeGreaterThanOrEqual(exact)
      expect(got).toBeLessThanOrEqual(exact * 1.041)
    }
  })

  it('gives nothing before minSamples', () => {
    const h = new LatencyHistogram({ minSamples: 10, refresh: 0 })
    for (let i = 0; i < 9; i++) h.record(5, 0)
    expect(h.percentile(50, 0)).toBeUndefined()
    h.record(5, 0)
    expect(h.percentile(50, 0)).toBeCloseTo(5, 0)
  })

  it('forgets samples older than the window, lazily', () => {
    const h = new LatencyHistogram({ window: 10_000, minSamples: 1, refresh: 0 })
    h.record(100, 0)
    expect(h.count(9_000)).toBe(1)
    expect(h.count(20_001)).toBe(0)
    h.record(3, 20_001)
    expect(h.percentile(99, 20_001)).toBeLessThan(4)
  })

  it('caches a percentile for refresh ms', () => {
    const h = new LatencyHistogram({ minSamples: 1, refresh: 1000 })
    h.record(10, 0)
    const first = h.percentile(50, 0)
    for (let i = 0; i < 100; i++) h.record(500, 10)
    expect(h.percentile(50, 500)).toBe(first)
    expect(h.percentile(50, 1000)).toBeGreaterThan(400)
  })
})
