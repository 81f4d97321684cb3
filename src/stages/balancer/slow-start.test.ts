/** Slow start: Envoy's ramp, and the shares it gives a new endpoint under each weighted strategy. */
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { peakEwma } from './peak-ewma.js'
import { EffectiveWeights } from './slow-start.js'
import { leastRequest, randomPick, type Strategy, weightedRoundRobin } from './strategies.js'

describe('EffectiveWeights', () => {
  it('ramps as Envoy: weight x max(10%, (age / window) ^ (1 / aggression)), full after the window', () => {
    const e = new Endpoint({ address: 'a', weight: 4 })
    e.addedAt = 1000
    const linear = new EffectiveWeights({ window: 10_000 })
    expect(linear.of(e, 1000)).toBeCloseTo(0.4) // the 10% floor
    expect(linear.of(e, 6000)).toBeCloseTo(2)
    expect(linear.of(e, 11_000)).toBe(4)
    const eager = new EffectiveWeights({ window: 10_000, aggression: 2 })
    expect(eager.of(e, 6000)).toBeCloseTo(4 * Math.sqrt(0.5))
    const floorless = new EffectiveWeights({ window: 10_000, minWeightPercent: 0 })
    expect(floorless.of(e, 1000)).toBe(0)
    expect(new EffectiveWeights().of(e, 1000)).toBe(4)
  })

  it('records when an endpoint is first seen, and says when every weight is equal again', () => {
    const old = [new Endpoint({ address: 'a' }), new Endpoint({ address: 'b' })]
    const w = new EffectiveWeights({ window: 1000 })
    w.sync(old, 0)
    expect(old.map((e) => e.addedAt)).toEqual([0, 0])
    expect(w.uniform(500)).toBe(false) // both ramping (alike)
    expect(w.uniform(1000)).toBe(true)
    const added = [...old, new Endpoint({ address: 'c' })]
    w.sync(added, 5000)
    expect(added[2]!.addedAt).toBe(5000)
    expect(added[0]!.addedAt).toBe(0)
    expect(w.uniform(5999)).toBe(false)
    expect(w.uniform(6000)).toBe(true)
  })
})

describe('slow start in the weighted strategies', () => {
  const strategies: [string, () => Strategy][] = [
    ['weighted-round-robin', () => weightedRoundRobin({ slowStart: { window: 10_000 } })],
    ['random', () => randomPick({ slowStart: { window: 10_000 } })],
    ['least-request', () => leastRequest({ slowStart: { window: 10_000 } })],
    ['peak-ewma', () => peakEwma({ slowStart: { window: 10_000 } })],
  ]
  for (const [name, make] of strategies) {
    it(`${name}: a new endpoint gets 0.1, then 0.5, then 1 of its share as its window passes`, () => {
      const old = Array.from({ length: 3 }, (_, i) => new Endpoint({ address: `old${i}` }))
      for (const e of old) e.addedAt = -60_000
      const fresh = new Endpoint({ address: 'new' })
      const all = [...old, fresh]
      const s = make()
      const random = seededRandom(11)
      const shareAt = (now: number) => {
        let n = 0
        for (let i = 0; i < 10_000; i++) if (s.pick(all, random, { now, key: undefined, all }) === fresh) n++
        return n / 10_000
      }
      expect(Math.abs(shareAt(0) - 0.1 / 3.1)).toBeLessThan(0.02)
      expect(Math.abs(shareAt(5000) - 0.5 / 3.5)).toBeLessThan(0.02)
      expect(Math.abs(shareAt(10_000) - 0.25)).toBeLessThan(0.02)
    })
  }
})
