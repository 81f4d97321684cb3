import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { Bucket, Gcra } from './gcra.js'

describe('Gcra', () => {
  it('admits a full burst at once, then one token per emission interval exactly', () => {
    const g = new Gcra({ rate: 10, periodMs: 1000, burst: 3 })
    const b = new Bucket()
    expect([g.take(b, 1, 0), g.take(b, 1, 0), g.take(b, 1, 0)]).toEqual([0, 0, 0])
    expect(g.take(b, 1, 0)).toBe(100)
    expect(g.take(b, 1, 99)).toBe(1)
    expect(g.take(b, 1, 100)).toBe(0)
    expect(g.take(b, 1, 100)).toBe(100)
  })

  it('refills to the burst and no more after a long idle time', () => {
    const g = new Gcra({ rate: 1, periodMs: 1000, burst: 2 })
    const b = new Bucket()
    expect(g.take(b, 1, 0)).toBe(0)
    let admitted = 0
    for (let i = 0; i < 5; i++) if (g.take(b, 1, 60_000) === 0) admitted++
    expect(admitted).toBe(2)
  })

  it('answers the time left of a pause, then resumes', () => {
    const g = new Gcra({ rate: 100, periodMs: 1000, burst: 100 })
    const b = new Bucket()
    b.pausedUntil = 1000
    expect(g.take(b, 1, 0)).toBe(1000)
    expect(g.take(b, 1, 400)).toBe(600)
    expect(g.take(b, 1, 1000)).toBe(0)
  })

  it('never admits more than burst + elapsed x rate / period over any interval', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 2000 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }),
        (rate, periodMs, burst, gaps) => {
          const g = new Gcra({ rate, periodMs, burst })
          const b = new Bucket()
          const admittedAt: number[] = []
          let now = 0
          for (const gap of gaps) {
            now += gap
            if (g.take(b, 1, now) === 0) admittedAt.push(now)
          }
          for (let i = 0; i < admittedAt.length; i++) {
            for (let j = i; j < admittedAt.length; j++) {
              const span = admittedAt[j]! - admittedAt[i]!
              expect(j - i + 1).toBeLessThanOrEqual(burst + Math.floor((span * rate) / periodMs))
            }
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it('says how long a call queued behind others waits', () => {
    const g = new Gcra({ rate: 10, periodMs: 1000, burst: 1 })
    const b = new Bucket()
    expect(g.take(b, 1, 0)).toBe(0)
    expect(g.waitFor(b, 1, 0)).toBe(100)
    expect(g.waitFor(b, 3, 0)).toBe(300)
  })
})
