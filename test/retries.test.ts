/**
 * Retries done right, measured with simulate() and the manual clock: retries rescue sparse
 * failures within the budget, a dead service cannot cause a retry storm, Retry-After is obeyed
 * up to the deadline, and hedging cuts the tail for little extra load.
 */
import { describe, expect, it } from 'vitest'
import { hedgingConfig, hedgingScenario } from '../examples/simulations/hedging.js'
import { type Context, createMesh, ENDPOINT, type HttpRequest, withMesh } from '../src/index.js'
import { ManualClock, seededRandom, simulate } from '../src/testing/index.js'

const three = ['http://10.0.0.1:80', 'http://10.0.0.2:80', 'http://10.0.0.3:80']

describe('retries within a budget', () => {
  it('one endpoint of three failing 30% with 503: >= 99.9% success, retries within the budget', async () => {
    const report = await simulate(
      { services: { api: { endpoints: three, timeout: '2s', retry: { attempts: 3 } } } },
      {
        seed: 11,
        duration: '60s',
        rate: 500,
        defaults: { latency: { logNormal: { median: 8, p99: 40 } } },
        endpoints: { [three[1]!]: { errorRate: 0.3, error: { status: 503 } } },
      },
    )
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)
    const retries = report.attempts - report.calls
    expect(retries).toBeGreaterThan(0)
    expect(retries).toBeLessThanOrEqual(0.2 * report.calls + 10 * 60)
    expect(report.events['retry-budget-exhausted'] ?? 0).toBe(0)
  })

  it('every endpoint failing for 60 s: retries stay within ratio x calls + minPerSecond x time', async () => {
    const report = await simulate(
      {
        services: { api: { endpoints: three, retry: { attempts: 5, backoff: { base: '1ms', max: '5ms' } } } },
      },
      {
        seed: 3,
        duration: '60s',
        rate: 1000,
        defaults: { latency: 5, errorRate: 1, error: { status: 503 } },
      },
    )
    const retries = report.attempts - report.calls
    // Without a budget this would be 4 retries per call: 240,000.
    expect(report.calls).toBe(60_000)
    expect(retries).toBeLessThanOrEqual(0.2 * report.calls + 10 * 60)
    expect(retries).toBeGreaterThan(0.2 * report.calls * 0.9)
    expect(report.attemptsPerCall).toBeLessThan(1.25)
    // A refused retry ends the call: about one refusal per call the budget could not cover.
    expect(report.events['retry-budget-exhausted']).toBeGreaterThan(0.7 * report.calls)
  })

  it('in every ttl window, retries <= ratio x calls of that window + minPerSecond x ttl', async () => {
    const mesh = createMesh(
      {
        services: {
          api: { endpoints: three, retry: { attempts: 3, backoff: { kind: 'constant', base: 0 } } },
        },
      },
      {
        clock: new ManualClock(),
        random: seededRandom(1),
        httpTransport: async () => new Response(null, { status: 503 }),
      },
    )
    const clock = mesh.clock as ManualClock
    const f = withMesh(fetch, mesh)
    const calls: number[] = []
    const retries: number[] = []
    mesh.events.on('retry', () => retries.push(clock.now()))
    // Bursty traffic: 300 calls/s for 5 s, quiet for 10 s, again for 5 s.
    for (let t = 0; t < 20_000; t += 10) {
      if (t >= 5000 && t < 15_000) continue
      for (let i = 0; i < 3; i++) {
        calls.push(clock.now())
        void f('http://api/x')
      }
      await clock.advance(10)
    }
    await clock.runAll()
    for (let end = 1000; end <= 21_000; end += 500) {
      const inWindow = (t: number) => t > end - 10_000 && t <= end
      expect(retries.filter(inWindow).length).toBeLessThanOrEqual(
        0.2 * calls.filter(inWindow).length + 10 * 10,
      )
    }
    expect(retries.length).toBeGreaterThan(0)
    await mesh.close()
  })
})

describe('server pushback: Retry-After', () => {
  function pushback(retryAfter: string) {
    const clock = new ManualClock()
    const seen: number[] = []
    const transport = async (_req: HttpRequest, ctx: Context) => {
      seen.push(ctx.clock.now())
      void ctx.get(ENDPOINT)
      return seen.length === 1
        ? new Response('busy', { status: 503, headers: { 'retry-after': retryAfter } })
        : new Response('ok')
    }
    const mesh = createMesh(
      { services: { api: { endpoints: three, timeout: '5s' } } },
      { clock, random: seededRandom(1), httpTransport: transport },
    )
    return { clock, seen, mesh, f: withMesh(fetch, mesh) }
  }

  it('Retry-After: 2 delays the retry by 2 s', async () => {
    const { clock, seen, mesh, f } = pushback('2')
    const call = f('http://api/x')
    await clock.advance(1999)
    expect(seen).toEqual([0])
    await clock.advance(1)
    expect((await call).status).toBe(200)
    expect(seen).toEqual([0, 2000])
    await mesh.close()
  })

  it('a Retry-After past the deadline is not retried: the response goes back at once', async () => {
    const { clock, seen, mesh, f } = pushback('10')
    const res = await f('http://api/x')
    expect(res.status).toBe(503)
    expect(await res.text()).toBe('busy')
    expect(clock.now()).toBe(0)
    expect(seen).toEqual([0])
    await mesh.close()
  })

  it('an HTTP-date Retry-After is read against the wall clock', async () => {
    const when = new Date(Date.UTC(2026, 0, 1) + 3000).toUTCString()
    const { clock, seen, mesh, f } = pushback(when)
    const call = f('http://api/x')
    await clock.advance(3000)
    expect((await call).status).toBe(200)
    expect(seen).toEqual([0, 3000])
    await mesh.close()
  })
})

describe('hedging', () => {
  it('with one stalling endpoint in five, a hedge at p95 cuts p99 by >= 5x for < 10% extra load', async () => {
    const plain = await simulate(hedgingConfig(false), hedgingScenario)
    const hedged = await simulate(hedgingConfig(true), hedgingScenario)
    expect(plain.latency.p99 / hedged.latency.p99).toBeGreaterThanOrEqual(5)
    expect(hedged.attemptsPerCall - 1).toBeLessThan(0.1)
    expect(hedged.attemptsPerCall - 1).toBeGreaterThan(0.02)
    expect(hedged.successRate).toBe(1)
  })
})
