import { describe, expect, it } from 'vitest'
import type { MeshConfig } from '../mesh/config/config.js'
import { formatReport, type Scenario, type SimulationReport, simulate } from './simulate.js'

const A = 'http://a:1'
const B = 'http://b:1'
const C = 'http://c:1'

const threeEndpoints = (retry: { attempts: number }): MeshConfig => ({
  services: { api: { endpoints: [A, B, C], retry } },
})

/** Every number anywhere in the report, with its path. */
function numbers(value: unknown, path = 'report'): Array<[string, number]> {
  if (typeof value === 'number') return [[path, value]]
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => numbers(v, `${path}.${k}`))
  }
  return []
}

const sumOutcomes = (r: SimulationReport) => Object.values(r.outcomes).reduce((s, n) => s + n, 0)

describe('simulate: input validation', () => {
  const config = threeEndpoints({ attempts: 1 })
  it.each<[string, Scenario, RegExp]>([
    ['both rate and concurrency', { duration: '1s', rate: 10, concurrency: 2 }, /exactly one of rate/],
    ['neither rate nor concurrency', { duration: '1s' }, /exactly one of rate .*or concurrency/],
    ['a duration without a unit', { duration: '10', rate: 10 }, /simulate: duration: expected a duration/],
    ['a negative duration', { duration: -1, rate: 10 }, /simulate: duration:/],
    ['a zero rate', { duration: '1s', rate: 0 }, /simulate: rate: expected a positive finite number, got 0/],
    ['a negative rate', { duration: '1s', rate: -5 }, /simulate: rate:/],
    ['a NaN rate', { duration: '1s', rate: Number.NaN }, /simulate: rate:/],
    [
      'a fractional concurrency',
      { duration: '1s', concurrency: 1.5 },
      /simulate: concurrency: expected a positive integer/,
    ],
    [
      'a bad event time',
      { duration: '1s', rate: 10, events: [{ from: 'soon', behavior: {} }] },
      /simulate: events\[0\]\.from/,
    ],
  ])('rejects %s with a RangeError', async (_, scenario, message) => {
    const run = simulate(config, scenario)
    await expect(run).rejects.toThrow(RangeError)
    await expect(run).rejects.toThrow(message)
  })

  it('rejects a bad latency spec with a RangeError naming the field', async () => {
    await expect(
      simulate(config, { duration: '1s', rate: 10, defaults: { latency: { uniform: [5, 1] } } }),
    ).rejects.toThrow(/latency\.uniform/)
  })
  it('rejects an infinite rate', async () => {
    await expect(simulate(config, { duration: 0, rate: Number.POSITIVE_INFINITY })).rejects.toThrow(
      RangeError,
    )
  })
})

describe('simulate: load', () => {
  it('open loop: starts rate x duration calls and lets every one finish', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A] } } },
      { duration: '1s', rate: 10, defaults: { latency: 500 } },
    )
    // Calls start at 0, 100, ..., 900 ms; the last one ends at 1400 ms, after the run's end.
    expect(report.calls).toBe(10)
    expect(report.outcomes).toEqual({ 200: 10 })
    expect(report.latency).toMatchObject({ p50: 500, max: 500 })
    expect(report.duration).toBe(1000)
  })

  it('poisson arrivals average the rate', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A] } } },
      { duration: '10s', rate: 200, arrivals: 'poisson' },
    )
    expect(report.calls).toBeGreaterThan(1900)
    expect(report.calls).toBeLessThan(2100)
    expect(report.calls).not.toBe(2000)
  })

  it('closed loop: keeps at most `concurrency` calls in flight, for the whole duration', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A] } } },
      { duration: '2s', concurrency: 4, defaults: { latency: 10 } },
    )
    expect(report.endpoints[A]?.peakInflight).toBe(4)
    // Four callers, each starting a 10 ms call at 0, 10, ..., 1990 ms.
    expect(report.calls).toBe(800)
    expect(report.successRate).toBe(1)
  })

  it('closed loop over several endpoints never exceeds `concurrency` on any of them', async () => {
    const report = await simulate(threeEndpoints({ attempts: 3 }), {
      duration: '3s',
      concurrency: 6,
      defaults: { latency: { uniform: [5, 25] } },
      endpoints: { [C]: { errorRate: 0.2 } },
    })
    for (const e of Object.values(report.endpoints)) {
      expect(e.peakInflight).toBeGreaterThan(0)
      expect(e.peakInflight).toBeLessThanOrEqual(6)
    }
    // About 6 callers x 3000 ms / 15 ms mean latency (plus a few retries and backoffs).
    expect(report.calls).toBeGreaterThan(1000)
    expect(report.calls).toBeLessThan(1300)
  })
})

describe('simulate: resilience', () => {
  // Endpoint b answers 503 from 2 s to 8 s of a 10 s run at 100 calls/s.
  const outage: Scenario = {
    duration: '10s',
    rate: 100,
    defaults: { latency: { uniform: [5, 15] } },
    events: [{ endpoints: [B], from: '2s', to: '8s', behavior: { errorRate: 1, error: { status: 503 } } }],
  }

  it('retries (attempts 3, retryOn 5xx by default) hide an outage of one endpoint of three', async () => {
    const report = await simulate(threeEndpoints({ attempts: 3 }), outage)
    expect(report.calls).toBe(1000)
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)
    expect(report.attemptsPerCall).toBeGreaterThan(1.1)
    expect(report.attemptsPerCall).toBeLessThan(1.5)
    expect(report.events['retry']).toBe(report.attempts - report.calls)
    expect(report.endpoints[B]?.errors).toBeGreaterThan(100)
  })

  it('without retries the same outage reaches callers', async () => {
    const report = await simulate(threeEndpoints({ attempts: 1 }), outage)
    expect(report.successRate).toBeLessThan(0.9)
    expect(report.successRate).toBeGreaterThan(0.7)
    expect(report.attemptsPerCall).toBe(1)
    expect(report.outcomes['503']).toBe(report.calls - report.succeeded)
    expect(report.events['retry']).toBeUndefined()
  })
  it('retries reach the healthy endpoint of two when the other always fails (no budget)', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A, B], retry: { attempts: 3, budget: { kind: 'none' } } } } },
      {
        duration: '10s',
        rate: 100,
        defaults: { latency: { uniform: [5, 15] } },
        endpoints: { [B]: { errorRate: 1 } },
      },
    )
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)
  })

  it('with the default budget, retries stop at 20% of calls plus 10 per second', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A, B], retry: { attempts: 3 } } } },
      {
        duration: '10s',
        rate: 100,
        defaults: { latency: { uniform: [5, 15] } },
        endpoints: { [B]: { errorRate: 1 } },
      },
    )
    const retries = report.attempts - report.calls
    // Half the calls need a retry, the budget allows 0.2 x 1000 calls + 10/s x 10 s = 300.
    expect(retries).toBeLessThanOrEqual(0.2 * report.calls + 10 * 10 + 1)
    expect(retries).toBeGreaterThan(250)
    expect(report.successRate).toBeLessThan(0.9)
  })

  it('counts outcomes by status and by mesh error code', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A, B], timeout: '100ms', retry: { attempts: 1 } } } },
      {
        duration: '2s',
        rate: 200,
        defaults: { latency: 10 },
        endpoints: { [B]: { errorRate: 0.5, error: { hang: true } } },
        request: (i) => ({ url: `http://api/items/${i}` }),
        isSuccess: (res) => res.status === 200,
      },
    )
    expect(Object.keys(report.outcomes)).toEqual(['200', 'TIMEOUT'])
    expect(report.outcomes['TIMEOUT']).toBe(report.endpoints[B]?.errors)
    expect(report.events['timeout']).toBe(report.outcomes['TIMEOUT'])
    expect(sumOutcomes(report)).toBe(report.calls)
    // A call that hangs ends at the 100 ms deadline.
    expect(report.latency.max).toBe(100)
    expect(report.successLatency.max).toBe(10)
  })

  it('counts network errors and non-success statuses', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A, B], retry: { attempts: 1 } } } },
      {
        duration: '1s',
        rate: 100,
        endpoints: { [A]: { status: 404 }, [B]: { errorRate: 1, error: { reset: true } } },
      },
    )
    expect(Object.keys(report.outcomes)).toEqual(['404', 'reset'])
    expect(report.succeeded).toBe(0)
    expect(sumOutcomes(report)).toBe(report.calls)
  })
})

describe('simulate: the report', () => {
  it('has no NaN and lists every endpoint of the config, called or not', async () => {
    const report = await simulate(
      { services: { api: { endpoints: [A, B] }, other: { endpoints: [C] } } },
      { duration: '1s', rate: 50, defaults: { errorRate: 1 }, request: { url: 'http://api/x' } },
    )
    expect(Object.keys(report.endpoints)).toEqual([A, B, C])
    expect(report.endpoints[C]).toEqual({ attempts: 0, share: 0, errors: 0, peakInflight: 0 })
    expect(report.succeeded).toBe(0)
    expect(report.successLatency).toEqual({ mean: 0, p50: 0, p90: 0, p99: 0, p999: 0, max: 0 })
    const bad = numbers(report).filter(([, n]) => !Number.isFinite(n))
    expect(bad).toEqual([])
  })

  it('is the same byte for byte for the same seed, and differs for another', async () => {
    const scenario: Scenario = {
      duration: '2s',
      rate: 200,
      arrivals: 'poisson',
      defaults: { latency: { logNormal: { median: 10, p99: 80 } }, errorRate: 0.05 },
    }
    const config = threeEndpoints({ attempts: 2 })
    const one = JSON.stringify(await simulate(config, { ...scenario, seed: 42 }))
    const two = JSON.stringify(await simulate(config, { ...scenario, seed: 42 }))
    const other = JSON.stringify(await simulate(config, { ...scenario, seed: 43 }))
    expect(two).toBe(one)
    expect(other).not.toBe(one)
  })

  it('formatReport names the success rate and every endpoint', async () => {
    const report = await simulate(threeEndpoints({ attempts: 3 }), { duration: '1s', rate: 100 })
    const text = formatReport(report)
    expect(text).toContain('success 100.00%')
    for (const url of [A, B, C]) expect(text).toContain(url)
    expect(text).not.toContain('NaN')
  })
})
