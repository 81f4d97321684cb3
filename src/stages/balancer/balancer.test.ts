import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { Events } from '../../core/events.js'
import { chain } from '../../core/handler.js'
import type { Outcome, Verdict } from '../../core/outcome.js'
import { seededRandom } from '../../core/random.js'
import { fixture } from '../test-kit.js'
import { balancer } from './balancer.js'
import { ENDPOINT, Endpoint } from './endpoint.js'
import { EndpointHealth } from './health.js'
import { OUTLIER_DETECTION_DEFAULTS, type OutlierDetectionOptions } from './outlier-detection.js'
import { peakEwma } from './peak-ewma.js'
import { ringHash } from './ring-hash.js'
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
    const { ATTEMPTED, Attempted } = await import('../../core/attempts.js')
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
      const callCtx = ctx.with(ATTEMPTED, new Attempted())
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

describe('balancer with outlier detection', () => {
  const od = (o: Partial<OutlierDetectionOptions> = {}) => ({ ...OUTLIER_DETECTION_DEFAULTS, ...o })
  const verdictOf = (_req: { fail?: string }, o: Outcome<string>): Verdict =>
    o.ok ? 'success' : o.error === 'cancelled' ? 'ignored' : 'retryable'

  function setup(
    n: number,
    settings: Partial<OutlierDetectionOptions> = {},
    bad: readonly string[] = ['e1'],
  ) {
    const { ctx, clock } = fixture(4)
    const eps = endpoints(n)
    const events = new Events()
    const ejections: string[] = []
    events.on('ejection', (e) => ejections.push(`${e.endpoint}:${e.reason}`))
    const health = new EndpointHealth('s', eps, { outlierDetection: od(settings) })
    const hits = new Map<string, number>()
    let failWith: unknown = 'boom'
    const h = chain(
      [
        balancer({
          service: 's',
          endpoints: eps,
          strategy: roundRobin(),
          health,
          classify: verdictOf,
          events,
        }),
      ],
      async (_r: { fail?: string }, c: Context) => {
        const a = c.get(ENDPOINT)!.address
        hits.set(a, (hits.get(a) ?? 0) + 1)
        if (bad.includes(a)) throw failWith
        return a
      },
    )
    return {
      /** A context per call, starting now, as `Mesh.invoke` makes one. */
      get ctx() {
        return ctx.restarted()
      },
      clock,
      eps,
      health,
      h,
      hits,
      ejections,
      setFailure(e: unknown) {
        failWith = e
      },
    }
  }

  it('ejects at the failure that crosses the threshold and then skips the endpoint', async () => {
    const t = setup(3, { consecutiveFailures: 2 })
    for (let i = 0; i < 6; i++) await t.h({}, t.ctx).catch(() => {})
    expect(t.ejections).toEqual(['e1:consecutive-failures'])
    t.hits.clear()
    for (let i = 0; i < 30; i++) await t.h({}, t.ctx)
    expect(t.hits.get('e1')).toBeUndefined()
    expect(t.eps.map((e) => e.pending)).toEqual([0, 0, 0])
  })

  it('counts only what the classifier calls a failure: ignored outcomes eject nobody', async () => {
    const t = setup(3, { consecutiveFailures: 2 })
    t.setFailure('cancelled')
    for (let i = 0; i < 30; i++) await t.h({}, t.ctx).catch(() => {})
    expect(t.ejections).toEqual([])
  })

  it('brings the endpoint back after the ejection time, with no timer armed', async () => {
    const t = setup(3, { consecutiveFailures: 1, baseEjectionTime: 1_000 }, [])
    await t.h({}, t.ctx)
    t.health.record(t.eps[0]!, 'failure', t.clock.now(), t.ctx.random)
    t.hits.clear()
    for (let i = 0; i < 9; i++) await t.h({}, t.ctx)
    expect(t.hits.get('e0')).toBeUndefined()
    await t.clock.advance(1_000)
    for (let i = 0; i < 9; i++) await t.h({}, t.ctx)
    expect(t.hits.get('e0')).toBe(3)
    expect(t.clock.pendingTimers).toBe(0)
  })

  it('falls back to every endpoint in panic, or fails with NO_HEALTHY_ENDPOINT when panic is off', async () => {
    const t = setup(2, { consecutiveFailures: 1, maxEjectionPercent: 100 }, ['e0', 'e1'])
    for (let i = 0; i < 4; i++) await t.h({}, t.ctx).catch(() => {})
    expect(t.health.ejectedCount).toBe(2)
    t.hits.clear()
    for (let i = 0; i < 4; i++) await t.h({}, t.ctx).catch(() => {})
    expect(t.hits.size).toBe(2)
    const off = setup(2, { consecutiveFailures: 1, maxEjectionPercent: 100, panicThreshold: 0 }, ['e0', 'e1'])
    for (let i = 0; i < 2; i++) await off.h({}, off.ctx).catch(() => {})
    await expect(off.h({}, off.ctx)).rejects.toMatchObject({ code: 'NO_HEALTHY_ENDPOINT', service: 's' })
  })

  it('10,000 endpoints with outlier detection: calls arm no timer, and the rotation is not rebuilt per call', async () => {
    const { ctx, clock } = fixture(2)
    const eps = endpoints(10_000)
    const health = new EndpointHealth('s', eps, { outlierDetection: od({ interval: 1_000 }) })
    const h = chain(
      [
        balancer({
          service: 's',
          endpoints: eps,
          strategy: leastRequest(),
          health,
          classify: () => 'success',
        }),
      ],
      async () => 1,
    )
    const rotation = health.inRotation(clock.now(), ctx.random)
    for (let i = 0; i < 2_000; i++) {
      await h({}, ctx)
      if (i % 100 === 0) await clock.advance(370) // past several intervals
    }
    expect(clock.pendingTimers).toBe(0)
    expect(health.inRotation(clock.now(), ctx.random)).toBe(rotation)
  })

  it('calls still in flight on a replaced configuration pick from their own endpoint list', async () => {
    const { ctx } = fixture()
    const [a, b, c] = endpoints(3) as [Endpoint, Endpoint, Endpoint]
    const health = new EndpointHealth('s', [a, b], { outlierDetection: od({ consecutiveFailures: 1 }) })
    const old = chain<object, string>(
      [
        balancer({
          service: 's',
          endpoints: [a, b],
          strategy: roundRobin(),
          health,
          classify: () => 'success',
        }),
      ],
      async (_r, x: Context) => x.get(ENDPOINT)!.address,
    )
    health.configure([b, c], { outlierDetection: od({ consecutiveFailures: 1, maxEjectionPercent: 100 }) })
    health.record(b, 'failure', 0, ctx.random)
    const seen = new Set<string>()
    for (let i = 0; i < 4; i++) seen.add(await old({}, ctx))
    expect(seen).toEqual(new Set(['e0']))
  })
})

describe('balancer with health checks', () => {
  it('starts the probes on the first call, not before, with one timer', async () => {
    const { ctx, clock } = fixture()
    const eps = endpoints(3)
    const health = new EndpointHealth('s', eps, {
      healthCheck: { interval: 1_000, timeout: 100, healthyThreshold: 1, unhealthyThreshold: 1 },
    })
    const probed: string[] = []
    const h = chain<object, string>(
      [
        balancer({
          service: 's',
          endpoints: eps,
          strategy: roundRobin(),
          health,
          probe: async (e) => {
            probed.push(e.address)
            return e.address !== 'e2'
          },
        }),
      ],
      async (_r, c: Context) => c.get(ENDPOINT)!.address,
    )
    await clock.advance(5_000)
    expect(probed).toEqual([])
    expect(clock.pendingTimers).toBe(0)
    await h({}, ctx)
    expect(clock.pendingTimers).toBe(1)
    await clock.advance(1_000)
    const seen = new Set<string>()
    for (let i = 0; i < 6; i++) seen.add(await h({}, ctx))
    expect(seen).toEqual(new Set(['e0', 'e1']))
    health.close()
    expect(clock.pendingTimers).toBe(0)
    await h({}, ctx)
    expect(clock.pendingTimers).toBe(0)
  })
})

describe('per-endpoint concurrency', () => {
  it('passes over a full endpoint, and fails with BULKHEAD_FULL when all are full', async () => {
    const { ctx } = fixture()
    const eps = endpoints(2)
    const gates: Array<() => void> = []
    const h = chain(
      [balancer({ service: 's', endpoints: eps, strategy: roundRobin(), perEndpoint: 2 })],
      (_r, c: Context) =>
        new Promise<string>((resolve) => gates.push(() => resolve(c.get(ENDPOINT)!.address))),
    )
    const calls = Array.from({ length: 4 }, () => h({}, ctx))
    expect(eps.map((e) => e.pending)).toEqual([2, 2])
    await expect(h({}, ctx)).rejects.toMatchObject({ code: 'BULKHEAD_FULL', service: 's' })
    gates.shift()!()
    await calls[0]
    expect(eps.map((e) => e.pending)).toEqual([1, 2])
    // Round robin would take e1 now; it is full, so e0 takes the attempt.
    const next = h({}, ctx)
    expect(eps.map((e) => e.pending)).toEqual([2, 2])
    for (const g of gates.splice(0)) g()
    await Promise.all([...calls, next])
    expect(eps.map((e) => e.pending)).toEqual([0, 0])
  })

  it('0 means no limit, and the plain stage is used', async () => {
    const { ctx } = fixture()
    const eps = endpoints(1)
    const gates: Array<() => void> = []
    const stage = balancer({ service: 's', endpoints: eps, strategy: roundRobin(), perEndpoint: 0 })
    const h = chain([stage], () => new Promise<number>((r) => gates.push(() => r(1))))
    const calls = Array.from({ length: 50 }, () => h({}, ctx))
    expect(eps[0]!.pending).toBe(50)
    for (const g of gates) g()
    await Promise.all(calls)
  })
})

describe('what the balancer feeds its strategy', () => {
  const slowOn = (address: string, ms: number) => async (_r: unknown, c: Context) => {
    const e = c.get(ENDPOINT)!
    if (e.address === address) await c.clock.sleep(ms)
    return e.address
  }

  it('measures each attempt on the call clock for peak EWMA, failures included, and steers away', async () => {
    const { ctx, clock } = fixture(2)
    const eps = endpoints(3)
    const h = chain(
      [balancer({ service: 's', endpoints: eps, strategy: peakEwma() })],
      async (_r, c: Context) => {
        const e = c.get(ENDPOINT)!
        if (e.address === 'e0') {
          await c.clock.sleep(800)
          throw new Error('slow and failing')
        }
        await c.clock.sleep(5)
        return e.address
      },
    )
    const calls = Array.from({ length: 30 }, () => h({}, ctx).catch(() => 'failed'))
    await clock.advance(1000)
    await Promise.all(calls)
    expect(eps[0]!.rttEstimate).toBe(800)
    expect(eps.map((e) => e.pending)).toEqual([0, 0, 0])
    const later: string[] = []
    for (let i = 0; i < 50; i++) {
      const p = h({}, ctx.restarted())
      await clock.advance(5)
      later.push((await p) as string)
    }
    expect(later).not.toContain('e0')
  })

  it('measures in the health-checked stage too, next to outlier detection', async () => {
    const { ctx, clock } = fixture(2)
    const eps = endpoints(2)
    const health = new EndpointHealth('s', eps, { outlierDetection: OUTLIER_DETECTION_DEFAULTS })
    const h = chain(
      [balancer({ service: 's', endpoints: eps, strategy: peakEwma(), health, classify: () => 'success' })],
      slowOn('e1', 300),
    )
    const calls = Array.from({ length: 10 }, () => h({}, ctx))
    await clock.advance(400)
    await Promise.all(calls)
    expect(eps[1]!.rttEstimate).toBe(300)
    expect(eps[1]!.health.successes).toBeGreaterThan(0)
  })

  it('passes the request key to ring hash, so one key keeps its endpoint', async () => {
    const { ctx } = fixture(3)
    const eps = endpoints(5)
    const h = chain(
      [
        balancer({
          service: 's',
          endpoints: eps,
          strategy: ringHash(),
          keyOf: (req: { user?: string }) => req.user,
        }),
      ],
      async (_r, c: Context) => c.get(ENDPOINT)!.address,
    )
    const first = await h({ user: 'ada' }, ctx)
    for (let i = 0; i < 20; i++) expect(await h({ user: 'ada' }, ctx)).toBe(first)
    const spread = new Set<string>()
    for (let i = 0; i < 50; i++) spread.add((await h({}, ctx)) as string) // no key: random
    expect(spread.size).toBeGreaterThan(1)
  })

  it('records when each endpoint first appeared at the first call, for slow start', async () => {
    const { ctx, clock } = fixture(1)
    await clock.advance(1234)
    const eps = endpoints(3)
    const h = chain([balancer({ service: 's', endpoints: eps, strategy: roundRobin() })], async () => 1)
    expect(eps[0]!.addedAt).toBeNaN()
    await h({}, ctx.restarted())
    expect(eps.map((e) => e.addedAt)).toEqual([1234, 1234, 1234])
    // A later configuration adds an endpoint: only the new one gets the new time.
    await clock.advance(1000)
    const next = [...eps, new Endpoint({ address: 'e3' })]
    await chain([balancer({ service: 's', endpoints: next, strategy: roundRobin() })], async () => 1)(
      {},
      ctx.restarted(),
    )
    expect(next.map((e) => e.addedAt)).toEqual([1234, 1234, 1234, 2234])
  })

  it('does not measure latency for strategies that do not observe it', async () => {
    const { ctx, clock } = fixture(1)
    const eps = endpoints(2)
    const h = chain([balancer({ service: 's', endpoints: eps, strategy: leastRequest() })], slowOn('e0', 50))
    const p = Promise.all([h({}, ctx), h({}, ctx)])
    await clock.advance(60)
    await p
    expect(eps.map((e) => e.rttEstimate)).toEqual([Number.NaN, Number.NaN])
  })
})
