import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { chain } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { fixture } from '../test-kit.js'
import { balancer } from './balancer.js'
import { ENDPOINT, Endpoint } from './endpoint.js'
import { leastRequest, randomPick, roundRobin } from './strategies.js'

const endpoints = (n: number, weights: number[] = []) =>
  Array.from({ length: n }, (_, i) => new Endpoint({ address: `e${i}`, weight: weights[i] ?? 1 }))

describe('balancer', () => {
  it('sets the chosen endpoint on the context and counts it in flight during the attempt', async () => {
    const { ctx } = fixture()
    const eps = endpoints(2)
    let pendingSeen = -1
    const h = chain(
      [balancer({ service: 's', endpoints: eps, strategy: roundRobin() })],
      async (_r, c: Context) => {
        const e = c.get(ENDPOINT)!
        pendingSeen = e.pending
        return e.address
      },
    )
    expect(await h({}, ctx)).toBe('e0')
    expect(pendingSeen).toBe(1)
    expect(await h({}, ctx.withAttempt(1))).toBe('e1')
    expect(eps.map((e) => e.pending)).toEqual([0, 0])
  })

  it('fails with NO_HEALTHY_ENDPOINT when there is none', async () => {
    const { ctx } = fixture()
    const h = chain([balancer({ service: 'users', endpoints: [], strategy: roundRobin() })], async () => 1)
    await expect(h({}, ctx)).rejects.toMatchObject({ code: 'NO_HEALTHY_ENDPOINT', service: 'users' })
  })

  it('decrements in-flight counts when the attempt fails', async () => {
    const { ctx } = fixture()
    const eps = endpoints(1)
    const h = chain([balancer({ service: 's', endpoints: eps, strategy: roundRobin() })], async () => {
      throw new Error('x')
    })
    await expect(h({}, ctx)).rejects.toThrow('x')
    expect(eps[0]!.pending).toBe(0)
  })
})

describe('strategies', () => {
  it('round robin takes endpoints in turn', () => {
    const eps = endpoints(3)
    const s = roundRobin()
    const r = seededRandom(1)
    expect(Array.from({ length: 6 }, () => s.pick(eps, r)!.address)).toEqual([
      'e0',
      'e1',
      'e2',
      'e0',
      'e1',
      'e2',
    ])
  })

  it('random follows weights within 2% over 10,000 seeded picks', () => {
    const eps = endpoints(3, [1, 2, 7])
    const s = randomPick()
    const r = seededRandom(42)
    const counts = new Map<string, number>()
    for (let i = 0; i < 10_000; i++) {
      const a = s.pick(eps, r)!.address
      counts.set(a, (counts.get(a) ?? 0) + 1)
    }
    expect(Math.abs(counts.get('e0')! / 10_000 - 0.1)).toBeLessThan(0.02)
    expect(Math.abs(counts.get('e1')! / 10_000 - 0.2)).toBeLessThan(0.02)
    expect(Math.abs(counts.get('e2')! / 10_000 - 0.7)).toBeLessThan(0.02)
  })

  it('least request never picks the busier of two, and never the busiest of all', () => {
    const eps = endpoints(3)
    eps[0]!.pending = 10
    eps[1]!.pending = 0
    eps[2]!.pending = 5
    const s = leastRequest()
    const r = seededRandom(9)
    const picked = new Set<string>()
    for (let i = 0; i < 1000; i++) picked.add(s.pick(eps, r)!.address)
    expect(picked.has('e0')).toBe(false)
    expect(picked).toEqual(new Set(['e1', 'e2']))
  })

  it('strategies handle zero and one endpoint', () => {
    const r = seededRandom(1)
    for (const s of [roundRobin(), randomPick(), leastRequest()]) {
      expect(s.pick([], r)).toBeUndefined()
      expect(s.pick(endpoints(1), r)!.address).toBe('e0')
    }
  })
})

describe('retries prefer endpoints not yet tried (previous_hosts)', () => {
  it('a retry after a failure on one endpoint goes to another', async () => {
    const { ATTEMPTED } = await import('../../core/attempts.js')
    const { ctx } = fixture(5)
    const eps = endpoints(3)
    const picked: string[] = []
    const h = chain(
      [balancer({ service: 's', endpoints: eps, strategy: randomPick() })],
      async (_r, c: Context) => {
        picked.push(c.get(ENDPOINT)!.address)
        return 1
      },
    )
    let repeats = 0
    for (let call = 0; call < 200; call++) {
      picked.length = 0
      const callCtx = ctx.with(ATTEMPTED, [])
      await h({}, callCtx)
      await h({}, callCtx.withAttempt(1))
      if (picked[0] === picked[1]) repeats++
    }
    // Random with 3 endpoints repeats 1/3 of the time without the rule; (1/3)^4 with 3 re-picks.
    expect(repeats).toBeLessThan(10)
  })

  it('does not record anything when the call cannot retry', async () => {
    const { ctx } = fixture()
    const h = chain(
      [balancer({ service: 's', endpoints: endpoints(2), strategy: roundRobin() })],
      async () => 1,
    )
    expect(await h({}, ctx)).toBe(1)
  })
})
