import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { constantBackoff, exponentialBackoff } from './backoff.js'

const sequence = (b: ReturnType<typeof exponentialBackoff>, n: number, seed = 1) => {
  const r = seededRandom(seed)
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    b = b.next(r)
    out.push(b.duration)
  }
  return out
}

describe('exponentialBackoff', () => {
  it('doubles from base up to max without jitter', () => {
    expect(sequence(exponentialBackoff({ base: 10, max: 100, jitter: 'none' }), 6)).toEqual([
      10, 20, 40, 80, 100, 100,
    ])
  })

  it('full jitter stays in [0, ceiling)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const got = sequence(exponentialBackoff({ base: 10, max: 100, jitter: 'full' }), 6, seed)
      const ceilings = [10, 20, 40, 80, 100, 100]
      got.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(0)
        expect(d).toBeLessThan(ceilings[i]!)
      })
    }
  })

  it('equal jitter stays in [ceiling/2, ceiling)', () => {
    for (let seed = 0; seed < 50; seed++) {
      const got = sequence(exponentialBackoff({ base: 10, max: 100, jitter: 'equal' }), 6, seed)
      const ceilings = [10, 20, 40, 80, 100, 100]
      got.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(ceilings[i]! / 2)
        expect(d).toBeLessThan(ceilings[i]!)
      })
    }
  })

  it('is an immutable value: stepping one copy does not move another', () => {
    const r = seededRandom(1)
    const start = exponentialBackoff({ base: 10, jitter: 'none' })
    const one = start.next(r)
    one.next(r)
    expect(start.next(r).duration).toBe(10)
    expect(start.duration).toBe(0)
  })

  it('defaults to base 25 ms, max 1 s', () => {
    expect(sequence(exponentialBackoff({ jitter: 'none' }), 8)).toEqual([
      25, 50, 100, 200, 400, 800, 1000, 1000,
    ])
  })
})

describe('constantBackoff', () => {
  it('waits the same every time', () => {
    expect(sequence(constantBackoff(7), 3)).toEqual([7, 7, 7])
  })
})
