import { describe, expect, it } from 'vitest'
import { seededRandom } from './random.js'

describe('seededRandom', () => {
  it('repeats for one seed and differs for another', () => {
    const a = seededRandom(7)
    const b = seededRandom(7)
    const c = seededRandom(8)
    const xs = Array.from({ length: 5 }, () => a.next())
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs)
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs)
  })

  it('stays in [0, 1) and is roughly uniform', () => {
    const r = seededRandom(3)
    const buckets = new Array<number>(10).fill(0)
    let outside = 0
    for (let i = 0; i < 100_000; i++) {
      const x = r.next()
      if (!(x >= 0 && x < 1)) outside++
      else buckets[Math.floor(x * 10)]!++
    }
    expect(outside).toBe(0)
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(500)
  })
})
