import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { AdaptiveThrottle } from './throttle.js'

describe('AdaptiveThrottle', () => {
  it('never rejects while the backend accepts at least 1/K of requests', () => {
    const t = new AdaptiveThrottle({ k: 2, windowMs: 10_000 })
    const random = seededRandom(1)
    for (let i = 0; i < 1000; i++) {
      expect(t.reject(i, random)).toBe(false)
      if (i % 2 === 0) t.accept(i)
    }
  })

  it('rejects with probability (requests - K x accepts) / (requests + 1)', () => {
    const t = new AdaptiveThrottle({ k: 2, windowMs: 10_000 })
    const zero = { next: () => 0 }
    for (let i = 0; i < 100; i++) t.reject(0, { next: () => 1 })
    for (let i = 0; i < 10; i++) t.accept(0)
    expect(t.probability(0)).toBeCloseTo((100 - 20) / 101, 12)
    expect(t.reject(0, zero)).toBe(true)
    expect(t.reject(0, { next: () => 0.999 })).toBe(false)
  })

  it('matches the probability over many draws with a seeded random', () => {
    const t = new AdaptiveThrottle({ k: 2, windowMs: 10_000 })
    for (let i = 0; i < 1000; i++) t.reject(0, { next: () => 1 })
    for (let i = 0; i < 250; i++) t.accept(0)
    // p = (1000 - 500) / 1001 at the first draw; it rises slightly as rejected requests count.
    const random = seededRandom(7)
    let rejected = 0
    const n = 2000
    const before = t.probability(0)
    for (let i = 0; i < n; i++) if (t.reject(0, random)) rejected++
    const after = t.probability(0)
    expect(rejected / n).toBeGreaterThan(before - 0.05)
    expect(rejected / n).toBeLessThan(after + 0.05)
  })

  it('forgets counts older than the window, one slot at a time, with no timer', () => {
    const t = new AdaptiveThrottle({ k: 2, windowMs: 1000 })
    for (let i = 0; i < 100; i++) t.reject(0, { next: () => 1 })
    expect(t.counts(950)).toEqual({ requests: 100, accepts: 0 })
    expect(t.counts(1000)).toEqual({ requests: 0, accepts: 0 })
    expect(t.probability(1000)).toBe(0)
    t.reject(1050, { next: () => 1 })
    t.reject(1150, { next: () => 1 })
    expect(t.counts(2099).requests).toBe(1)
    expect(t.counts(5000).requests).toBe(0)
  })

  it('forget takes a request back, never below zero', () => {
    const t = new AdaptiveThrottle({ k: 2, windowMs: 1000 })
    t.reject(0, { next: () => 1 })
    t.forget(0)
    t.forget(0)
    expect(t.counts(0)).toEqual({ requests: 0, accepts: 0 })
  })
})
