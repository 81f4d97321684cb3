/**
 * simulate() as a product: reproducible to the byte, fast enough for a unit test suite, and the
 * numbers published in docs/simulation.md are the ones a fresh run prints.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { backends, slowBackendConfig, slowBackendScenario } from '../examples/simulations/slow-backend.js'
import { render, renderRetries } from '../scripts/simulation-docs.js'
import type { MeshConfig } from '../src/index.js'
import { type Scenario, simulate } from '../src/testing/index.js'

const config: MeshConfig = {
  services: {
    api: {
      endpoints: ['http://10.0.0.1:80', 'http://10.0.0.2:80', 'http://10.0.0.3:80'],
      timeout: '1s',
      retry: { attempts: 3, perTryTimeout: '200ms' },
    },
  },
}
const scenario: Scenario = {
  duration: '5s',
  rate: 200,
  arrivals: 'poisson',
  defaults: { latency: { logNormal: { median: 10, p99: 80 } } },
  endpoints: { 'http://10.0.0.2:80': { errorRate: 0.3, latency: { uniform: [5, 300] } } },
}

describe('simulate()', () => {
  it('gives the same report, byte for byte, for the same seed; another seed differs', async () => {
    const a = JSON.stringify(await simulate(config, { ...scenario, seed: 7 }))
    const b = JSON.stringify(await simulate(config, { ...scenario, seed: 7 }))
    const c = JSON.stringify(await simulate(config, { ...scenario, seed: 8 }))
    expect(a).toBe(b)
    expect(c).not.toBe(a)
    // The run exercised retries and attempt timeouts, so determinism covers them too.
    const report = JSON.parse(a) as { events: Record<string, number> }
    expect(report.events.retry).toBeGreaterThan(0)
    expect(report.events.timeout).toBeGreaterThan(0)
  })

  it('runs 60 virtual seconds at 1,000 calls/s through retry, breaker, balancer and timeouts', async () => {
    // The wall-time figure is reported by `npm run bench`; this test only checks completion.
    const withBreaker: MeshConfig = {
      services: { api: { ...config.services.api!, circuitBreaker: { consecutiveFailures: 5 } } },
    }
    const report = await simulate(withBreaker, { duration: '60s', rate: 1000, defaults: { latency: 5 } })
    expect(report.calls).toBe(60_000)
    expect(report.successRate).toBe(1)
    expect(report.duration).toBe(60_000)
  })

  it('reproduces the expected loss of round robin in the slow-backend scenario', async () => {
    const rr = await simulate(slowBackendConfig('round-robin'), slowBackendScenario)
    // 1/11 of the calls for half the run time out: 4.5% lost.
    expect(rr.successRate).toBeGreaterThan(0.94)
    expect(rr.successRate).toBeLessThan(0.96)
    expect(rr.outcomes.TIMEOUT).toBe(rr.calls - rr.succeeded)
    const lr = await simulate(slowBackendConfig('least-request'), slowBackendScenario)
    expect(lr.successRate).toBeGreaterThan(0.995)
    expect(lr.endpoints[backends[0]!]!.share).toBeLessThan(rr.endpoints[backends[0]!]!.share)
  })

  it('keeps 99.9% of calls with peak EWMA in the slow-backend scenario, where round robin loses 4.5%', async () => {
    const peak = await simulate(slowBackendConfig('peak-ewma'), slowBackendScenario)
    expect(peak.successRate).toBeGreaterThanOrEqual(0.999)
    // It learns from the first timeouts and sends the slow backend less than least-request does.
    const lr = await simulate(slowBackendConfig('least-request'), slowBackendScenario)
    expect(peak.endpoints[backends[0]!]!.share).toBeLessThan(lr.endpoints[backends[0]!]!.share)
    expect(peak.successRate).toBeGreaterThan(lr.successRate)
  })

  it('docs/simulation.md holds the numbers a fresh `npm run docs:simulation` prints', async () => {
    const committed = readFileSync(new URL('../docs/simulation.md', import.meta.url), 'utf8')
    expect(committed).toBe(await render())
  })

  it('the budget table in docs/retries.md is the one a fresh run prints', async () => {
    const committed = readFileSync(new URL('../docs/retries.md', import.meta.url), 'utf8')
    expect(committed).toBe(await renderRetries(committed))
  })
})
