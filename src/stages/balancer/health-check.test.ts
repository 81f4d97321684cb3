import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { ENDPOINT, Endpoint } from './endpoint.js'
import { EndpointHealth } from './health.js'
import { HealthChecker, handlerProbe, type Probe } from './health-check.js'

const endpoints = (n: number) => Array.from({ length: n }, (_, i) => new Endpoint({ address: `e${i}` }))

function checker(n: number, probe: Probe, interval = 1_000, timeout = 100) {
  const clock = new ManualClock()
  const eps = endpoints(n)
  const results: Array<[string, boolean, number]> = []
  const c = new HealthChecker({
    interval,
    timeout,
    endpoints: () => eps,
    probe,
    clock,
    random: seededRandom(11),
    onResult: (e, healthy) => results.push([e.address, healthy, clock.now()]),
  })
  return { clock, eps, c, results }
}

describe('health-check scheduler', () => {
  it('uses one timer for the whole service, and spreads the probes over the interval', async () => {
    const probed: Array<[string, number]> = []
    const { clock, c } = checker(
      4,
      (e, ctx) => {
        probed.push([e.address, ctx.clock.now()])
        return Promise.resolve(true)
      },
      1_000,
    )
    c.start()
    expect(clock.pendingTimers).toBe(1)
    await clock.advance(5_000)
    expect(clock.pendingTimers).toBe(1)
    const first = probed.slice(0, 4)
    expect(first.map(([a]) => a)).toEqual(['e0', 'e1', 'e2', 'e3'])
    expect(first[0]![1]).toBe(0)
    const round = (probed[4]![1] - probed[0]![1]) / 4
    for (let i = 1; i < 4; i++) expect(first[i]![1]).toBeCloseTo(i * round, 6)
    c.stop()
    expect(clock.pendingTimers).toBe(0)
  })

  it('probes each endpoint once per interval, jittered by up to 10%', async () => {
    const times = new Map<string, number[]>()
    const { clock, c } = checker(3, (e, ctx) => {
      times.set(e.address, [...(times.get(e.address) ?? []), ctx.clock.now()])
      return Promise.resolve(true)
    })
    c.start()
    await clock.advance(60_000)
    c.stop()
    const gaps = [...times.values()].flatMap((t) => t.slice(1).map((x, i) => x - t[i]!))
    expect(gaps.length).toBeGreaterThan(150)
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1_000)
    expect(Math.max(...gaps)).toBeLessThan(1_100)
    expect(new Set(gaps.map((g) => Math.round(g))).size).toBeGreaterThan(10) // the jitter varies
  })

  it('fails a probe at its timeout on the injected clock, and aborts its cancellation', async () => {
    const seen: Context[] = []
    const { clock, c, results } = checker(1, (_e, ctx) => {
      seen.push(ctx)
      return new Promise<boolean>(() => {}) // never answers
    })
    c.start()
    await clock.advance(99)
    expect(results).toEqual([])
    expect(seen[0]!.cancel.aborted).toBe(false)
    expect(seen[0]!.deadline).toBe(100)
    const signal = seen[0]!.cancel.signal()
    await clock.advance(1)
    expect(results).toEqual([['e0', false, 100]])
    expect(signal.aborted).toBe(true)
    expect(clock.pendingTimers).toBe(1) // the next round; no timer per probe
    c.stop()
  })

  it('does not start a second probe of an endpoint while one is in flight', async () => {
    let calls = 0
    const { clock, c } = checker(
      1,
      () => {
        calls++
        return new Promise<boolean>(() => {})
      },
      100,
      10_000,
    )
    c.start()
    await clock.advance(1_000)
    expect(calls).toBe(1)
    c.stop()
  })

  it('stop clears the timer, cancels probes in flight and drops their results', async () => {
    let resolve: (v: boolean) => void = () => {}
    const seen: Context[] = []
    const { clock, c, results } = checker(2, (_e, ctx) => {
      seen.push(ctx)
      return new Promise<boolean>((r) => {
        resolve = r
      })
    })
    c.start()
    c.stop()
    expect(clock.pendingTimers).toBe(0)
    expect(seen[0]!.cancel.aborted).toBe(true)
    resolve(true)
    await clock.flush()
    expect(results).toEqual([])
  })

  it('a probe that throws or rejects counts as a failure', async () => {
    let n = 0
    const { clock, c, results } = checker(2, () => {
      if (n++ === 0) throw new Error('sync')
      return Promise.reject(new Error('async'))
    })
    c.start()
    await clock.advance(600)
    c.stop()
    expect(results.map(([, ok]) => ok)).toEqual([false, false])
  })
})

describe('handlerProbe', () => {
  it('sends the request to the probed endpoint and judges the answer; an error is unhealthy', async () => {
    const clock = new ManualClock()
    const { Context: Ctx } = await import('../../core/context.js')
    const { Cancellation } = await import('../../core/cancel.js')
    const ctx = Ctx.create({ clock, random: seededRandom(1), cancel: new Cancellation() })
    const probe = handlerProbe(
      async (req: string, c: Context) => {
        if (c.get(ENDPOINT)!.address === 'down') throw new Error('refused')
        return `${c.get(ENDPOINT)!.address}${req}`
      },
      '/healthz',
      (res) => res === 'up/healthz',
    )
    expect(await probe(new Endpoint({ address: 'up' }), ctx)).toBe(true)
    expect(await probe(new Endpoint({ address: 'down' }), ctx)).toBe(false)
    expect(await probe(new Endpoint({ address: 'other' }), ctx)).toBe(false)
  })
})

describe('health checks feed the health view', () => {
  it('an endpoint failing 3 probes in a row leaves rotation; 2 passing bring it back', async () => {
    const clock = new ManualClock()
    const random = seededRandom(5)
    const eps = endpoints(3)
    let down = true
    const health = new EndpointHealth('s', eps, {
      healthCheck: { interval: 1_000, timeout: 100, healthyThreshold: 2, unhealthyThreshold: 3 },
    })
    expect(health.checksWanted).toBe(true)
    health.startChecks((e) => Promise.resolve(!(down && e === eps[1])), clock, random)
    expect(health.checksWanted).toBe(false)
    expect(health.inRotation(clock.now(), random)).toHaveLength(3)
    // e1 is probed about 1/3 into each round of 1 000..1 100 ms: near 0.35 s, 1.4 s, 2.45 s, ...
    await clock.advanceTo(2_000)
    expect(health.inRotation(clock.now(), random)).toHaveLength(3)
    await clock.advanceTo(3_000)
    expect(health.inRotation(clock.now(), random).map((e) => e.address)).toEqual(['e0', 'e2'])
    down = false
    await clock.advanceTo(4_000)
    expect(health.inRotation(clock.now(), random)).toHaveLength(2)
    await clock.advanceTo(5_000)
    expect(health.inRotation(clock.now(), random)).toHaveLength(3)
    health.close()
    expect(clock.pendingTimers).toBe(0)
    expect(health.checksWanted).toBe(false)
  })
})
