/** Consistent hashing: stable keys, minimal movement when the set changes, ejections, no key. */
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { hash32, ringHash } from './ring-hash.js'

const endpoints = (n: number, from = 1) =>
  Array.from({ length: n }, (_, i) => new Endpoint({ address: `http://10.0.1.${from + i}:8080` }))

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`)

describe('ringHash', () => {
  it('sends the same key to the same endpoint, whatever the random draws and the strategy instance', () => {
    const eps = endpoints(10)
    const a = ringHash()
    const b = ringHash()
    for (const key of KEYS.slice(0, 1000)) {
      const first = a.pick(eps, seededRandom(1), { now: 0, key, all: eps })
      expect(a.pick(eps, seededRandom(2), { now: 5, key, all: eps })).toBe(first)
      expect(b.pick(eps, seededRandom(3), { now: 0, key, all: eps })).toBe(first)
    }
  })

  it('adding one endpoint to ten moves at most 13% of 10,000 keys (ideal 1/11 = 9.1%), all to the new one', () => {
    const ten = endpoints(10)
    const eleven = [...ten, ...endpoints(1, 11)]
    const before = ringHash()
    const after = ringHash()
    const r = seededRandom(1)
    let moved = 0
    for (const key of KEYS) {
      const x = before.pick(ten, r, { now: 0, key, all: ten })
      const y = after.pick(eleven, r, { now: 0, key, all: eleven })
      if (x !== y) {
        moved++
        expect(y).toBe(eleven[10])
      }
    }
    expect(moved / KEYS.length).toBeLessThanOrEqual(0.13)
    expect(moved / KEYS.length).toBeGreaterThan(0.05)
  })

  it('removing one endpoint moves only its own keys', () => {
    const ten = endpoints(10)
    const nine = ten.slice(1)
    const s = ringHash()
    const r = seededRandom(1)
    for (const key of KEYS.slice(0, 2000)) {
      const x = s.pick(ten, r, { now: 0, key, all: ten })
      const y = s.pick(nine, r, { now: 0, key, all: nine })
      if (x !== ten[0]) expect(y).toBe(x)
    }
  })

  it('passes over an endpoint out of rotation: its keys go to the next point, the others stay', () => {
    const all = endpoints(5)
    const candidates = all.filter((_, i) => i !== 2) // e.g. ejected by outlier detection
    const s = ringHash()
    const r = seededRandom(1)
    for (const key of KEYS.slice(0, 2000)) {
      const home = s.pick(all, r, { now: 0, key, all })
      const now = s.pick(candidates, r, { now: 0, key, all })
      expect(now).not.toBe(all[2])
      if (home !== all[2]) expect(now).toBe(home)
    }
  })

  it('balances a request without a key at random, in proportion to weight', () => {
    const eps = [new Endpoint({ address: 'a', weight: 1 }), new Endpoint({ address: 'b', weight: 3 })]
    const s = ringHash()
    const r = seededRandom(5)
    let b = 0
    for (let i = 0; i < 10_000; i++) if (s.pick(eps, r, { now: 0, key: undefined, all: eps }) === eps[1]) b++
    expect(Math.abs(b / 10_000 - 0.75)).toBeLessThan(0.02)
  })

  it('runs its documented example', () => {
    const eps = ['a', 'b', 'c'].map((address) => new Endpoint({ address }))
    const strategy = ringHash()
    const input = { now: 0, key: 'user-42', all: eps }
    expect(strategy.pick(eps, seededRandom(1), input)).toBe(strategy.pick(eps, seededRandom(2), input))
  })

  it('hashes strings to well-spread 32-bit values', () => {
    const buckets = new Array<number>(16).fill(0)
    for (const key of KEYS) buckets[hash32(key) >>> 28]!++
    for (const n of buckets) expect(Math.abs(n - KEYS.length / 16)).toBeLessThan(100)
    expect(hash32('x')).toBe(hash32('x'))
  })
})
