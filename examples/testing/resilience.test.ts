/**
 * How an application team unit-tests its own mesh configuration with vitest: the real pipeline,
 * on virtual time, with seeded randomness, so these tests take milliseconds and never flake.
 *
 * Run it with `npx vitest run examples/testing/resilience.test.ts`. The same deadline test
 * written with `node:test` is in `resilience.node-test.ts`.
 */
import { describe, expect, it } from 'vitest'
// In an application: `from 'meshlet'` and `from 'meshlet/testing'`.
import {
  type Context,
  createMesh,
  ENDPOINT,
  type HttpRequest,
  isMeshError,
  type MeshConfig,
  withMesh,
} from '../../src/index.js'
import { formatReport, ManualClock, type Scenario, seededRandom, simulate } from '../../src/testing/index.js'

const B = 'http://10.0.0.2:8080'

// The configuration under test: in a real application, import the one you deploy.
const config = {
  services: {
    users: {
      endpoints: ['http://10.0.0.1:8080', B, 'http://10.0.0.3:8080'],
      timeout: '1s',
      retry: { attempts: 3, perTryTimeout: '100ms' },
    },
  },
} satisfies MeshConfig

describe('users client: deadlines on a manual clock', () => {
  it('fails with TIMEOUT well inside the 1 s deadline when every endpoint stalls', async () => {
    const clock = new ManualClock()
    // A transport that never answers, but notices cancellation (as fetch does on abort).
    const stalled = (_req: HttpRequest, ctx: Context) =>
      new Promise<Response>((_, reject) => ctx.cancel.onAbort(reject))
    const mesh = createMesh(config, { clock, random: seededRandom(1), httpTransport: stalled })
    const fetch2 = withMesh(fetch, mesh)

    let failedAt = -1
    const call = fetch2('http://users/api/users/42').catch((e: unknown) => {
      failedAt = clock.now()
      return e
    })
    await clock.advance(1000) // a second of virtual time, no real waiting
    const error = await call
    expect(isMeshError(error, 'TIMEOUT')).toBe(true)
    // Three tries of 100 ms and two backoffs (at most 25 ms, then 50 ms): the last try's limit
    // ends the call, long before the deadline would.
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' })
    expect(failedAt).toBeGreaterThanOrEqual(300)
    expect(failedAt).toBeLessThanOrEqual(375)
    expect(clock.pendingTimers).toBe(0) // nothing left armed
    await mesh.close()
  })

  it('retries a stalled attempt after the 100 ms per-try timeout', async () => {
    const clock = new ManualClock()
    const tried: string[] = []
    // The first attempt stalls; a retry answers after 20 ms. The transport reads the endpoint
    // the balancer chose and answers on the context's clock, as the network would.
    const transport = (_req: HttpRequest, ctx: Context) => {
      tried.push(ctx.get(ENDPOINT)!.address)
      return new Promise<Response>((resolve, reject) => {
        ctx.cancel.onAbort(reject)
        if (ctx.attempt > 0) ctx.clock.setTimer(() => resolve(new Response('ok')), 20)
      })
    }
    const mesh = createMesh(config, { clock, random: seededRandom(1), httpTransport: transport })
    const fetch2 = withMesh(fetch, mesh)

    let answeredAt = -1
    const call = fetch2('http://users/api/users/42').then((res) => {
      answeredAt = clock.now()
      return res
    })
    await clock.advance(1000)
    expect((await call).status).toBe(200)
    expect(tried).toHaveLength(2)
    // 100 ms on the stalled attempt, a backoff of at most 25 ms, then 20 ms.
    expect(answeredAt).toBeGreaterThanOrEqual(120)
    expect(answeredAt).toBeLessThanOrEqual(145)
    expect(clock.pendingTimers).toBe(0)
    await mesh.close()
  })
})

describe('users client: simulated traffic', () => {
  it('with one of three endpoints failing 30% with 503, >= 99.9% of calls succeed', async () => {
    const report = await simulate(config, {
      seed: 7,
      duration: '30s',
      rate: 100,
      // Healthy latency: median 20 ms, p99 80 ms; endpoint B also fails 30% of its attempts.
      defaults: { latency: { logNormal: { median: 20, p99: 80 } } },
      endpoints: { [B]: { errorRate: 0.3, error: { status: 503 } } },
    })
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)
    // Retries cost little: about one call in ten is retried.
    expect(report.attemptsPerCall).toBeLessThan(1.2)
    expect(report.latency.p99).toBeLessThan(200)
  })

  it('with endpoint B not answering from 10 s to 20 s, p99 stays under 200 ms', async () => {
    const scenario: Scenario = {
      seed: 7,
      duration: '30s',
      rate: 100,
      defaults: { latency: { logNormal: { median: 20, p99: 80 } } },
      // B accepts connections but never answers (a hung process, a black-holed host).
      events: [{ endpoints: [B], from: '10s', to: '20s', behavior: { errorRate: 1, error: { hang: true } } }],
    }
    const report = await simulate(config, scenario)
    // On failure, print the whole report: it says where the time went.
    expect(report.latency.p99, formatReport(report)).toBeLessThan(200)
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)

    // The per-try timeout is what keeps every call: without it, least-request soon stops picking
    // B (its hung attempts count as load), but each call already sent there waits for the whole
    // 1 s deadline and fails. Same seed, so both runs face the same endpoint behaviour.
    const withoutPerTry: MeshConfig = {
      services: { users: { ...config.services.users, retry: { attempts: 3 } } },
    }
    const worse = await simulate(withoutPerTry, scenario)
    expect(worse.successRate).toBeLessThan(0.999)
    expect(worse.outcomes['TIMEOUT']).toBeGreaterThan(0)
    expect(worse.latency.p999).toBe(1000)
  })
})
