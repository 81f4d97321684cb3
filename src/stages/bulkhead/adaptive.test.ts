import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { gradient2Limit, type Limiter, vegasLimit } from './adaptive.js'

/** Feeds `n` samples of `rtt` ms with the limiter fully used; returns the limit after each. */
function feed(limiter: Limiter, n: number, rtt: number, dropped = false): number[] {
  const limits: number[] = []
  for (let i = 0; i < n; i++) {
    limiter.onSample(rtt, limiter.limit, dropped, i)
    limits.push(limiter.limit)
  }
  return limits
}

const nonIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x <= xs[i - 1]!)
const nonDecreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x >= xs[i - 1]!)

describe('gradient2Limit', () => {
  it('raises the limit by queueSize x smoothing per sample while latency stays low', () => {
    const g = gradient2Limit()
    expect(g.limit).toBe(20)
    // 20 * 0.8 + (20 * 1 + 4) * 0.2 = 20.8, then +0.8 each sample.
    expect(feed(g, 5, 10)).toEqual([20, 21, 22, 23, 24])
    const up = feed(g, 95, 10)
    expect(nonDecreasing(up)).toBe(true)
    expect(g.limit).toBeGreaterThanOrEqual(99)
  })

  it('cuts the limit when latency rises past the tolerance, by at most half, down to minLimit', () => {
    const g = gradient2Limit()
    feed(g, 100, 10)
    const before = g.limit
    const down = feed(g, 30, 100)
    // gradient clamps at 0.5: limit * 0.8 + (limit * 0.5 + 4) * 0.2 = 0.9 limit + 0.8.
    expect(down[0]).toBe(Math.floor(before * 0.9 + 0.8))
    expect(nonIncreasing(down)).toBe(true)
    expect(down.at(-1)).toBe(20) // Netflix's minLimit
    // Latency back to normal: growth resumes.
    const again = feed(g, 20, 10)
    expect(again.at(-1)).toBeGreaterThan(30)
  })

  it('tolerates latency up to rttTolerance x the long-term average', () => {
    const g = gradient2Limit({ initialLimit: 50 })
    feed(g, 20, 10)
    const at = g.limit
    feed(g, 5, 14) // 1.4x < 1.5x: still growing
    expect(g.limit).toBeGreaterThan(at)
  })

  it('does not grow while app-limited (fewer than half of the limit in use)', () => {
    const g = gradient2Limit()
    for (let i = 0; i < 50; i++) g.onSample(10, 5, false, i)
    expect(g.limit).toBe(20)
  })

  it('lets the floor follow a small initial limit, and a minLimit of 1 go lower', () => {
    const small = gradient2Limit({ initialLimit: 4, queueSize: 1 })
    expect(small.limit).toBe(4) // not raised to Netflix's minLimit of 20
    feed(small, 20, 10)
    expect(small.limit).toBe(8)
    feed(small, 50, 1000) // heads for the fixed point 2 of 0.9 limit + 0.2; held at the floor
    expect(small.limit).toBe(4)
    const low = gradient2Limit({ initialLimit: 40, minLimit: 1 })
    feed(low, 100, 1)
    expect(low.limit).toBeGreaterThan(100)
    feed(low, 40, 1000)
    expect(low.limit).toBeLessThan(20) // below Netflix's default floor, toward the fixed point 8
  })
})

describe('vegasLimit', () => {
  it('raises the limit by beta while no queue is measured', () => {
    const v = vegasLimit({ random: seededRandom(7) })
    // The first sample only records the no-load RTT; then +6 (6 x log10) per sample below 100.
    expect(feed(v, 5, 10)).toEqual([20, 26, 32, 38, 44])
    const up = feed(v, 30, 10)
    expect(nonDecreasing(up)).toBe(true)
    expect(up.at(-1)).toBe(200) // the ceiling
  })

  it('cuts the limit by log10 per sample when latency rises and on every drop', () => {
    const v = vegasLimit({ random: seededRandom(7), initialLimit: 50 })
    feed(v, 1, 10)
    // RTT doubled: queue = ceil(50 x (1 - 10/20)) = 25 > beta (6): 50 - 1.
    expect(feed(v, 3, 20)).toEqual([49, 48, 47])
    // A drop cuts even when latency looks fine.
    expect(feed(v, 2, 10, true)).toEqual([46, 45])
  })

  it('learns a new no-load RTT by probing, and grows again on it', () => {
    const v = vegasLimit({ random: seededRandom(7) })
    feed(v, 40, 10)
    const limits = feed(v, 8000, 20)
    const lowest = Math.min(...limits)
    expect(lowest).toBeLessThan(200)
    expect(limits.at(-1)).toBe(200)
  })

  it('holds while app-limited, and ignores RTTs of 0', () => {
    const v = vegasLimit({ random: seededRandom(7) })
    v.onSample(10, 20, false, 0)
    for (let i = 0; i < 20; i++) v.onSample(10, 3, false, i)
    expect(v.limit).toBe(20)
    for (let i = 0; i < 20; i++) v.onSample(0, 20, true, i)
    expect(v.limit).toBe(20)
  })
})

describe('adaptive limits (property)', () => {
  const sample = fc.record({
    rtt: fc.oneof(fc.double({ min: 0, max: 10_000, noNaN: true }), fc.constantFrom(0, 1, 10, 100)),
    inflight: fc.integer({ min: 0, max: 1000 }),
    dropped: fc.boolean(),
  })

  it('never leave [1, maxLimit] and stay whole numbers', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('gradient2', 'vegas'),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(sample, { maxLength: 300 }),
        (kind, initialLimit, maxLimit, minLimit, samples) => {
          const limiter =
            kind === 'gradient2'
              ? gradient2Limit({ initialLimit, maxLimit, minLimit })
              : vegasLimit({ initialLimit, maxLimit, random: seededRandom(initialLimit) })
          let now = 0
          for (const s of samples) {
            now += s.rtt
            limiter.onSample(s.rtt, s.inflight, s.dropped, now)
            expect(Number.isInteger(limiter.limit)).toBe(true)
            expect(limiter.limit).toBeGreaterThanOrEqual(1)
            expect(limiter.limit).toBeLessThanOrEqual(maxLimit)
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    )
  })
})
