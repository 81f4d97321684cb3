import { describe, expect, it } from 'vitest'
import { seededRandom } from '../core/random.js'
import { type LatencySpec, latencySampler } from './latency.js'

const draw = (spec: LatencySpec, n: number, seed = 1): number[] => {
  const sample = latencySampler(spec)
  const random = seededRandom(seed)
  return Array.from({ length: n }, () => sample(random))
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length
const stdev = (xs: readonly number[]) => {
  const m = mean(xs)
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1))
}
const quantile = (xs: readonly number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}

describe('latencySampler', () => {
  it('a number is a constant latency and draws nothing', () => {
    const sample = latencySampler(12.5)
    let draws = 0
    const random = {
      next: () => {
        draws++
        return 0.5
      },
    }
    expect([sample(random), sample(random), sample(random)]).toEqual([12.5, 12.5, 12.5])
    expect(draws).toBe(0)
    expect(latencySampler(0)(random)).toBe(0)
  })

  it('uniform stays within its bounds and covers them', () => {
    const xs = draw({ uniform: [10, 30] }, 10_000)
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(10)
    expect(Math.max(...xs)).toBeLessThan(30)
    expect(Math.min(...xs)).toBeLessThan(10.1)
    expect(Math.max(...xs)).toBeGreaterThan(29.9)
    expect(mean(xs)).toBeCloseTo(20, 0)
  })

  it('uniform with min = max is a constant', () => {
    expect(new Set(draw({ uniform: [7, 7] }, 100))).toEqual(new Set([7]))
  })

  it('normal has the given mean and stdev over 20,000 draws', () => {
    const xs = draw({ normal: { mean: 100, stdev: 15 } }, 20_000)
    expect(Math.abs(mean(xs) - 100)).toBeLessThan(0.5)
    expect(Math.abs(stdev(xs) - 15) / 15).toBeLessThan(0.02)
  })

  it('normal is clipped at 0, never negative', () => {
    const xs = draw({ normal: { mean: 5, stdev: 10 } }, 20_000)
    expect(Math.min(...xs)).toBe(0)
    // About P(Z < -0.5) = 31% of draws fall below zero and are clipped.
    const clipped = xs.filter((x) => x === 0).length / xs.length
    expect(clipped).toBeGreaterThan(0.28)
    expect(clipped).toBeLessThan(0.34)
  })

  it('logNormal has the given median and p99 within 5% over 50,000 draws', () => {
    const xs = draw({ logNormal: { median: 20, p99: 250 } }, 50_000)
    expect(Math.abs(quantile(xs, 0.5) / 20 - 1)).toBeLessThan(0.05)
    expect(Math.abs(quantile(xs, 0.99) / 250 - 1)).toBeLessThan(0.05)
    expect(Math.min(...xs)).toBeGreaterThan(0)
  })

  it('logNormal with p99 = median is a constant', () => {
    for (const x of draw({ logNormal: { median: 40, p99: 40 } }, 100)) expect(x).toBeCloseTo(40, 9)
  })

  it('samples returns only the given values, each of them', () => {
    const values = [3, 5, 8, 13, 250]
    const xs = draw({ samples: values }, 5_000)
    expect(new Set(xs)).toEqual(new Set(values))
    for (const v of values) {
      const share = xs.filter((x) => x === v).length / xs.length
      expect(share).toBeGreaterThan(0.17)
      expect(share).toBeLessThan(0.23)
    }
  })

  it('draws the same values from the same seed', () => {
    const spec: LatencySpec = { logNormal: { median: 10, p99: 100 } }
    expect(draw(spec, 50, 7)).toEqual(draw(spec, 50, 7))
    expect(draw(spec, 50, 7)).not.toEqual(draw(spec, 50, 8))
  })

  it.each<[LatencySpec, string]>([
    [-1, 'latency:'],
    [Number.NaN, 'latency:'],
    [{ uniform: [10, 5] }, 'latency.uniform'],
    [{ uniform: [-1, 5] }, 'latency.uniform'],
    [{ normal: { mean: 10, stdev: -1 } }, 'latency.normal.stdev'],
    [{ logNormal: { median: 0, p99: 10 } }, 'latency.logNormal'],
    [{ logNormal: { median: 20, p99: 10 } }, 'latency.logNormal'],
    [{ samples: [] }, 'latency.samples'],
  ])('rejects %j with a RangeError naming %s', (spec, field) => {
    expect(() => latencySampler(spec)).toThrow(RangeError)
    expect(() => latencySampler(spec)).toThrow(field)
  })
})
