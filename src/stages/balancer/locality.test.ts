/** Locality: the local zone first, gradual spill in failover order, and the inner strategy's own draws. */
import { describe, expect, it } from 'vitest'
import { type Random, seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { locality } from './locality.js'
import { randomPick, roundRobin, weightedRoundRobin } from './strategies.js'

/** Four endpoints in each of zones a, b and c, and two with no zone. */
const fleet = () => [
  ...['a', 'b', 'c'].flatMap((zone) =>
    Array.from({ length: 4 }, (_, i) => new Endpoint({ address: `${zone}${i}`, zone })),
  ),
  new Endpoint({ address: 'x0' }),
  new Endpoint({ address: 'x1' }),
]

function zoneShares(
  pick: (random: Random) => Endpoint | undefined,
  n = 10_000,
  seed = 1,
): Record<string, number> {
  const random = seededRandom(seed)
  const counts: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const zone = pick(random)?.zone ?? 'none'
    counts[zone] = (counts[zone] ?? 0) + 1
  }
  return Object.fromEntries(Object.entries(counts).map(([z, c]) => [z, c / n]))
}

describe('locality', () => {
  it('keeps every call in the local zone while it is healthy', () => {
    const all = fleet()
    const s = locality(() => randomPick(), { zone: 'b' })
    expect(zoneShares((r) => s.pick(all, r, { now: 0, key: undefined, all }))).toEqual({ b: 1 })
  })

  it('draws nothing extra while local: the inner strategy makes the picks it would make alone', () => {
    const all = fleet()
    const local = all.filter((e) => e.zone === 'a')
    const s = locality(() => randomPick(), { zone: 'a' })
    const alone = randomPick()
    const r1 = seededRandom(4)
    const r2 = seededRandom(4)
    for (let i = 0; i < 100; i++) {
      expect(s.pick(all, r1, { now: 0, key: undefined, all })).toBe(alone.pick(local, r2))
    }
  })

  it('stays local at 75% in rotation (above 70%), spills gradually below, in failover order', () => {
    const all = fleet()
    const s = locality(() => randomPick(), { zone: 'a', failover: ['c'] })
    const without = (...out: string[]) => all.filter((e) => !out.includes(e.address))
    const pick = (candidates: Endpoint[]) => (r: Random) =>
      s.pick(candidates, r, { now: 0, key: undefined, all })
    expect(zoneShares(pick(without('a0')))).toEqual({ a: 1 })
    // Half of zone a in rotation: health 50 / 70 = 71% of the calls stay, the rest go to c (next in order).
    const half = zoneShares(pick(without('a0', 'a1')))
    expect(Math.abs(half['a']! - 5 / 7)).toBeLessThan(0.02)
    expect(Math.abs(half['c']! - 2 / 7)).toBeLessThan(0.02)
    expect(half['b']).toBeUndefined()
    // Zone a empty and zone c failing too: c takes 25 / 70 = 36%, the rest spills to b and the zoneless.
    const worse = zoneShares(pick(without('a0', 'a1', 'a2', 'a3', 'c0', 'c1', 'c2')))
    expect(worse['a']).toBeUndefined()
    expect(Math.abs(worse['c']! - 25 / 70)).toBeLessThan(0.02)
    expect(Math.abs(worse['b']! + worse['none']! - 45 / 70)).toBeLessThan(0.02)
  })

  it('spills everything when the local zone has no endpoint at all', () => {
    const all = fleet()
    const s = locality(() => randomPick(), { zone: 'z', failover: ['b'] })
    expect(zoneShares((r) => s.pick(all, r, { now: 0, key: undefined, all }))).toEqual({ b: 1 })
  })

  it('scales the shares up when every tier falls short, and fails only with no candidate', () => {
    const all = fleet()
    const s = locality(() => randomPick(), { zone: 'a', failover: ['b'], minHealthyPercent: 100 })
    const few = [all[0]!, all[4]!] // one of four in a and in b: health 25% each, 50% in all
    const shares = zoneShares((r) => s.pick(few, r, { now: 0, key: undefined, all }))
    expect(Math.abs(shares['a']! - 0.5)).toBeLessThan(0.02)
    expect(s.pick([], seededRandom(1), { now: 0, key: undefined, all })).toBeUndefined()
  })

  it('keeps one inner strategy per tier: a round robin cycles through its own zone', () => {
    const all = fleet()
    const s = locality(() => roundRobin(), { zone: 'c' })
    const r = seededRandom(1)
    const seq = Array.from({ length: 8 }, () => s.pick(all, r, { now: 0, key: undefined, all })!.address)
    expect(seq).toEqual(['c0', 'c1', 'c2', 'c3', 'c0', 'c1', 'c2', 'c3'])
  })

  it('follows weights inside the zone (weighted round robin)', () => {
    const all = [
      new Endpoint({ address: 'a0', zone: 'a', weight: 3 }),
      new Endpoint({ address: 'a1', zone: 'a', weight: 1 }),
      new Endpoint({ address: 'b0', zone: 'b', weight: 9 }),
    ]
    const s = locality(() => weightedRoundRobin(), { zone: 'a' })
    const r = seededRandom(1)
    const seq = Array.from({ length: 8 }, () => s.pick(all, r, { now: 0, key: undefined, all })!.address)
    expect(seq).toEqual(['a0', 'a0', 'a1', 'a0', 'a0', 'a0', 'a1', 'a0'])
  })
})
