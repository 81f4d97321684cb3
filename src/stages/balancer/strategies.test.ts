/** Seeded statistical and property tests of the picking strategies: shares, smoothness, load. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { peakEwma } from './peak-ewma.js'
import { ringHash } from './ring-hash.js'
import {
  leastRequest,
  type PickInput,
  randomPick,
  roundRobin,
  type Strategy,
  weightedRoundRobin,
} from './strategies.js'

const endpoints = (weights: readonly number[]) =>
  weights.map((weight, i) => new Endpoint({ address: `http://10.0.0.${i + 1}:80`, weight }))

const PICKS = 10_000

/** Shares of `picks` picks, by endpoint index. */
function shares(strategy: Strategy, eps: readonly Endpoint[], seed: number, key?: (i: number) => string) {
  const random = seededRandom(seed)
  const counts = new Array<number>(eps.length).fill(0)
  const input = { now: 0, key: undefined as string | undefined, all: eps }
  for (let i = 0; i < PICKS; i++) {
    if (key) input.key = key(i)
    counts[eps.indexOf(strategy.pick(eps, random, input)!)]!++
  }
  return counts.map((c) => c / PICKS)
}

const weighted: [string, () => Strategy, ((i: number) => string)?][] = [
  ['weighted-round-robin', () => weightedRoundRobin()],
  ['random', () => randomPick()],
  ['least-request', () => leastRequest()],
  ['peak-ewma', () => peakEwma()],
  // Ring hash follows the weights over the key space: 10,000 distinct keys.
  ['ring-hash', () => ringHash(), (i) => `user-${i}`],
]

describe('weighted shares', () => {
  for (const [name, make, key] of weighted) {
    it(`${name} gives each endpoint its weight's share within 2% over 10,000 seeded picks`, () => {
      for (const [weights, seed] of [
        [[1, 2, 7], 1],
        [[5, 1, 1, 3], 2],
        [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 3],
        [[10, 1], 4],
      ] as const) {
        const total = weights.reduce((a, b) => a + b, 0)
        const got = shares(make(), endpoints(weights), seed, key)
        for (const [i, share] of got.entries())
          expect(Math.abs(share - weights[i]! / total)).toBeLessThan(0.02)
      }
    })
  }

  it('least-request keeps the weight shares under steady load (each attempt holds its endpoint a while)', () => {
    const eps = endpoints([1, 2, 7])
    const s = leastRequest()
    const random = seededRandom(9)
    const inflight: Endpoint[] = []
    const counts = [0, 0, 0]
    for (let i = 0; i < 4 * PICKS; i++) {
      // 30 attempts in flight at all times, each ends after 30 more picks (equal service times).
      if (inflight.length === 30) inflight.shift()!.pending--
      const e = s.pick(eps, random)!
      e.pending++
      inflight.push(e)
      if (i >= PICKS) counts[eps.indexOf(e)]!++
    }
    const n = 3 * PICKS
    expect(Math.abs(counts[0]! / n - 0.1)).toBeLessThan(0.02)
    expect(Math.abs(counts[1]! / n - 0.2)).toBeLessThan(0.02)
    expect(Math.abs(counts[2]! / n - 0.7)).toBeLessThan(0.02)
  })
})

describe('weightedRoundRobin (smooth, as nginx)', () => {
  it('interleaves: weights 5, 1, 1 give a a b a c a a, cycle after cycle', () => {
    const eps = endpoints([5, 1, 1])
    const s = weightedRoundRobin()
    const r = seededRandom(1)
    const names = ['a', 'b', 'c']
    const seq = Array.from({ length: 14 }, () => names[eps.indexOf(s.pick(eps, r)!)]).join(' ')
    expect(seq).toBe('a a b a c a a a a b a c a a')
  })

  it('is plain round robin among equal weights', () => {
    const eps = endpoints([1, 1, 1])
    const s = weightedRoundRobin()
    const r = seededRandom(1)
    const seq = Array.from({ length: 6 }, () => eps.indexOf(s.pick(eps, r)!))
    expect(seq).toEqual([0, 1, 2, 0, 1, 2])
  })

  it('never sends two in a row to a weight-1 endpoint among weight-1 peers, whatever the other weights', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 5 }),
        fc.integer({ min: 10, max: 300 }),
        (ones, heavier, picks) => {
          const eps = endpoints([...Array.from({ length: ones }, () => 1), ...heavier])
          const s = weightedRoundRobin()
          const r = seededRandom(1)
          let last: Endpoint | undefined
          for (let i = 0; i < picks; i++) {
            const e = s.pick(eps, r)!
            if (e.weight === 1 && e === last) return false
            last = e
          }
          return true
        },
      ),
      { seed: 42, numRuns: 300 },
    )
  })

  it('gives exact shares over whole cycles and keeps the counters of the endpoints that stay', () => {
    const eps = endpoints([3, 2, 1])
    const s = weightedRoundRobin()
    const r = seededRandom(1)
    const counts = [0, 0, 0]
    for (let i = 0; i < 600; i++) counts[eps.indexOf(s.pick(eps, r)!)]!++
    expect(counts).toEqual([300, 200, 100])
    // One endpoint leaves (ejected): the other two go on with their own cycle, 3:2.
    const two = [eps[0]!, eps[1]!]
    const after = [0, 0]
    for (let i = 0; i < 500; i++) after[two.indexOf(s.pick(two, r)!)]!++
    expect(after).toEqual([300, 200])
  })
})

describe('leastRequest', () => {
  it('with equal weights, keeps the lighter of two uniform draws', () => {
    const eps = endpoints([1, 1, 1, 1])
    eps[2]!.pending = 5
    const s = leastRequest()
    const r = seededRandom(3)
    const counts = [0, 0, 0, 0]
    for (let i = 0; i < PICKS; i++) counts[eps.indexOf(s.pick(eps, r)!)]!++
    expect(counts[2]).toBe(0) // it loses every pair it is drawn into
  })

  it('compares load per unit of weight: a weight-3 endpoint with 2 in flight beats a weight-1 one with 1', () => {
    const [heavy, light] = endpoints([3, 1])
    heavy!.pending = 2
    light!.pending = 1
    const s = leastRequest()
    const r = seededRandom(1)
    for (let i = 0; i < 100; i++) expect(s.pick([heavy!, light!], r)).toBe(heavy)
  })
})

describe('every strategy', () => {
  const all: [string, () => Strategy][] = [
    ['round-robin', () => roundRobin()],
    ...weighted.map(([name, make]): [string, () => Strategy] => [name, make]),
  ]
  for (const [name, make] of all) {
    it(`${name}: undefined for no endpoint, the one for one, and the same picks for the same seed`, () => {
      const input: PickInput = { now: 0, key: 'k', all: [] }
      expect(make().pick([], seededRandom(1), input)).toBeUndefined()
      const one = endpoints([1])
      expect(make().pick(one, seededRandom(1), { ...input, all: one })).toBe(one[0])
      const run = () => {
        // Fresh endpoints: peak EWMA keeps its estimate on them.
        const eps = endpoints([1, 2, 3, 4])
        const s = make()
        const r = seededRandom(7)
        return Array.from({ length: 50 }, (_, i) =>
          eps.indexOf(s.pick(eps, r, { now: i, key: `k${i}`, all: eps })!),
        )
      }
      expect(run()).toEqual(run())
    })
  }
})
