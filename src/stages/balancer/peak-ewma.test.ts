/** Peak EWMA: the estimate's peak, blend and decay (as tower's tests), and the picks it drives. */
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../../core/random.js'
import { Endpoint } from './endpoint.js'
import { peakEwma } from './peak-ewma.js'

const pair = () => [new Endpoint({ address: 'a' }), new Endpoint({ address: 'b' })] as const

describe('peakEwma', () => {
  it('starts a cold endpoint at the default RTT, decaying with time (tower: default_decay)', () => {
    const [a, b] = pair()
    const s = peakEwma({ defaultRtt: 10, decay: 1000 })
    s.pick([a, b], seededRandom(1), { now: 0, key: undefined, all: [a, b] })
    expect(a.rttEstimate).toBe(10)
    s.pick([a, b], seededRandom(1), { now: 100, key: undefined, all: [a, b] })
    expect(a.rttEstimate).toBeGreaterThan(9)
    expect(a.rttEstimate).toBeLessThan(10)
    s.pick([a, b], seededRandom(1), { now: 200, key: undefined, all: [a, b] })
    expect(a.rttEstimate).toBeGreaterThan(8)
    expect(a.rttEstimate).toBeLessThan(9)
  })

  it('takes a slower answer as the new peak at once, and blends a faster one in by elapsed time', () => {
    const e = new Endpoint({ address: 'a' })
    const s = peakEwma({ defaultRtt: 20, decay: 1000 })
    s.observe!(e, 400, 300) // first answer: 400 ms, slower than the default
    expect(e.rttEstimate).toBe(400)
    s.observe!(e, 100, 300 + 1000) // one decay time later: weight 1 - 1/e to the new 100 ms
    expect(e.rttEstimate).toBeCloseTo(400 * Math.exp(-1) + 100 * (1 - Math.exp(-1)), 9)
  })

  it('decays an idle estimate towards zero, so a once-slow endpoint is tried again (tower: compound_decay)', () => {
    const [slow, fast] = pair()
    const s = peakEwma() // decay 10 s
    const random = seededRandom(1)
    const eps = [slow, fast]
    s.observe!(slow, 1000, 0)
    s.observe!(fast, 5, 0)
    const pick = (now: number) => s.pick(eps, random, { now, key: undefined, all: eps })
    // Right after the slow answer, the slow endpoint loses every comparison...
    for (let t = 1; t <= 100; t++) expect(pick(t)).toBe(fast)
    // ...then, with both idle, the estimates decay alike and their ratio stays: the slow one only
    // comes back once the fast one carries load. Put 5 in flight on the fast endpoint: after
    // ln(1000 / (5 x 6)) x 10 s = 35 s the slow one (cost 1000 e^(-t/10s)) is cheaper again.
    fast.pending = 5
    slow.rttEstimate = 1000
    slow.rttStamp = 0
    fast.rttEstimate = 5
    fast.rttStamp = 0
    const back = (t: number) => {
      fast.rttEstimate = 5 // the fast endpoint keeps answering in 5 ms
      fast.rttStamp = t
      return pick(t)
    }
    expect(back(30_000)).toBe(fast)
    expect(back(36_000)).toBe(slow)
  })

  it('costs latency x (pending + 1): a fast endpoint with a queue loses to a slower idle one', () => {
    const [a, b] = pair()
    const s = peakEwma()
    s.observe!(a, 40, 0) // slower than the default 30 ms: taken as the peak at once
    s.observe!(b, 120, 0)
    a.pending = 3 // 40 x 4 = 160 > 120 x 1
    const random = seededRandom(2)
    for (let i = 0; i < 20; i++)
      expect(s.pick([a, b], random, { now: 0, key: undefined, all: [a, b] })).toBe(b)
    a.pending = 1 // 40 x 2 = 80 < 120
    for (let i = 0; i < 20; i++)
      expect(s.pick([a, b], random, { now: 0, key: undefined, all: [a, b] })).toBe(a)
  })

  it('moves a cold estimate only slowly towards a faster first answer (tower: blended by elapsed time)', () => {
    const e = new Endpoint({ address: 'a' })
    const s = peakEwma({ defaultRtt: 30, decay: 10_000 })
    // Never read before (it was the only candidate): cold since the attempt was sent, 10 ms ago.
    s.observe!(e, 10, 1000)
    expect(e.rttEstimate).toBeCloseTo(30 * Math.exp(-10 / 10_000) + 10 * (1 - Math.exp(-10 / 10_000)), 9)
  })

  it('refuses a decay that is not positive', () => {
    expect(() => peakEwma({ decay: 0 })).toThrow(RangeError)
  })

  it('runs its documented example', () => {
    const eps = [new Endpoint({ address: 'a' }), new Endpoint({ address: 'b' })]
    const strategy = peakEwma()
    strategy.observe?.(eps[0]!, 900, 0)
    expect(strategy.pick(eps, seededRandom(1), { now: 0, key: undefined, all: eps })).toBe(eps[1])
  })
})
