/**
 * Outlier detection and health checks across the whole stack: against three real loopback
 * servers (one answering 500, then healing), in virtual time at a larger scale with simulate(),
 * and the timer discipline: no timer for outlier detection even with 10,000 endpoints, one per
 * service for health checks, none left after `mesh.close()` or an update that drops them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createMesh,
  Endpoint,
  fetchTransport,
  type HttpRequest,
  type Mesh,
  type MeshConfig,
  type MeshEvents,
  withMesh,
} from '../src/index.js'
import { HealthChecker, handlerProbe } from '../src/stages/balancer/health-check.js'
import { ManualClock, seededRandom, simulate } from '../src/testing/index.js'
import { startServer, type TestServer } from './helpers/servers.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})
async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler)
  cleanup.push(() => s.close())
  return s
}
function mesh(config: MeshConfig, options?: Parameters<typeof createMesh>[1]): Mesh {
  const m = createMesh(config, options)
  cleanup.push(() => m.close({ force: true }))
  return m
}
function record(m: Mesh) {
  const events: Array<['ejection', MeshEvents['ejection']] | ['ejection-end', MeshEvents['ejection-end']]> =
    []
  m.events.on('ejection', (e) => events.push(['ejection', e]))
  m.events.on('ejection-end', (e) => events.push(['ejection-end', e]))
  return events
}
async function until(check: () => boolean, ms = 5_000) {
  const started = performance.now()
  while (!check() && performance.now() - started < ms) await new Promise((r) => setTimeout(r, 2))
  expect(check()).toBe(true)
}
const ok = (_req: IncomingMessage, res: ServerResponse) => {
  res.end('ok')
}

describe('outlier detection against real servers', () => {
  it('ejects an endpoint answering 500: under 2% of traffic, >= 99.9% success, back once healthy', async () => {
    let healed = false
    const servers = [
      await server(ok),
      await server((_req, res) => {
        if (healed) return void res.end('ok')
        res.statusCode = 500
        res.end('broken')
      }),
      await server(ok),
    ]
    const bad = servers[1]!
    const m = mesh({
      services: {
        api: {
          endpoints: servers.map((s) => s.url),
          timeout: '5s',
          outlierDetection: { consecutiveFailures: 5, baseEjectionTime: '300ms' },
        },
      },
    })
    const events = record(m)
    const f = withMesh(fetch, m)
    const received = () => servers.reduce((n, s) => n + s.requests, 0)
    let calls = 0
    let succeeded = 0
    const run = async (n: number) => {
      const end = calls + n
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (calls < end) {
            calls++
            const res = await f('http://api/items')
            if (res.ok && (await res.text()) === 'ok') succeeded++
          }
        }),
      )
    }

    await run(100)
    expect(events[0]).toEqual([
      'ejection',
      { service: 'api', endpoint: bad.url, reason: 'consecutive-failures', until: expect.any(Number) },
    ])
    // While broken, it gets only the few attempts that re-eject it each time it returns.
    const [badAt, allAt] = [bad.requests, received()]
    await run(1_500)
    const share = (bad.requests - badAt) / (received() - allAt)
    expect(share).toBeLessThan(0.02)

    healed = true
    const healedAt = bad.requests
    const started = performance.now()
    while (bad.requests - healedAt < 50 && performance.now() - started < 10_000) await run(60)
    expect(bad.requests - healedAt).toBeGreaterThanOrEqual(50)
    expect(events.at(-1)).toEqual(['ejection-end', { service: 'api', endpoint: bad.url }])
    // Back in full rotation: about a third of the traffic.
    const [badBack, allBack] = [bad.requests, received()]
    await run(600)
    expect((bad.requests - badBack) / (received() - allBack)).toBeGreaterThan(0.2)
    expect(succeeded / calls).toBeGreaterThanOrEqual(0.999)
  })

  it('health checks take an endpoint whose /healthz fails out of rotation, and bring it back', async () => {
    let sick = true
    const traffic = [0, 0]
    const handler = (i: number) => (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/healthz') {
        res.statusCode = i === 1 && sick ? 503 : 200
        return void res.end()
      }
      traffic[i]!++
      res.end('ok')
    }
    const servers = [await server(handler(0)), await server(handler(1))]
    const m = mesh({
      services: {
        api: {
          endpoints: servers.map((s) => s.url),
          healthCheck: { interval: '40ms', timeout: '500ms', unhealthyThreshold: 2, healthyThreshold: 1 },
          outlierDetection: { panicThreshold: 0 },
        },
      },
    })
    const events = record(m)
    const f = withMesh(fetch, m)
    await (await f('http://api/')).text() // the first call starts the probes
    await until(() => events.some(([type]) => type === 'ejection'))
    expect(events[0]).toEqual([
      'ejection',
      { service: 'api', endpoint: servers[1]!.url, reason: 'health-check', until: Number.POSITIVE_INFINITY },
    ])
    const before = traffic[1]!
    for (let i = 0; i < 40; i++) await (await f('http://api/')).text()
    expect(traffic[1]).toBe(before)
    sick = false
    await until(() => events.some(([type]) => type === 'ejection-end'))
    for (let i = 0; i < 40; i++) await (await f('http://api/')).text()
    expect(traffic[1]!).toBeGreaterThan(before + 5)
  })
})

describe('the HTTP probe', () => {
  it('GETs the path through the fetch transport: 2xx healthy, 503 not; a hung probe is aborted at its timeout on the mesh clock', async () => {
    const closed: string[] = []
    const s = await server((req, res) => {
      if (req.url === '/healthz') return void res.end()
      if (req.url === '/sick') {
        res.statusCode = 503
        return void res.end()
      }
      req.socket.once('close', () => closed.push(req.url ?? ''))
      // '/hang' never answers
    })
    const request = (path: string): HttpRequest => ({
      service: 'users',
      path,
      method: 'GET',
      init: { method: 'GET' },
      replayable: true,
      signal: undefined,
      propagateDeadline: false,
    })
    const endpoint = new Endpoint({ address: s.url })
    const clock = new ManualClock()
    const results: boolean[] = []
    for (const [i, path] of ['/healthz', '/sick', '/hang'].entries()) {
      const checker = new HealthChecker({
        interval: 10_000,
        timeout: 1_000,
        endpoints: () => [endpoint],
        probe: handlerProbe(fetchTransport(fetch), request(path), (res) => res.ok),
        clock,
        random: seededRandom(1),
        onResult: (_e, healthy) => results.push(healthy),
      })
      checker.start()
      if (path === '/hang') {
        // Real time passes and nothing happens; the probe ends when the mesh's clock says so.
        await new Promise((r) => setTimeout(r, 100))
        expect(results).toHaveLength(i)
        await clock.advance(1_000)
      }
      await until(() => results.length > i)
      checker.stop()
    }
    expect(results).toEqual([true, false, false])
    await until(() => closed.includes('/hang'))
  })
})

describe('outlier detection in virtual time (simulate)', () => {
  const endpoints = Array.from({ length: 20 }, (_, i) => `http://10.0.1.${i + 1}:8080`)
  const bad = endpoints[7]!

  it('20 endpoints, one answering 500 for 30 s: ejected within 5 failures per return, then back', async () => {
    const report = await simulate(
      {
        services: {
          api: {
            endpoints,
            timeout: '1s',
            outlierDetection: { consecutiveFailures: 5, baseEjectionTime: '10s' },
          },
        },
      },
      {
        duration: '120s',
        rate: 500,
        defaults: { latency: { uniform: [2, 8] } },
        events: [
          { endpoints: [bad], from: 0, to: '30s', behavior: { errorRate: 1, error: { status: 500 } } },
        ],
      },
    )
    expect(report.successRate).toBeGreaterThanOrEqual(0.999)
    const b = report.endpoints[bad]!
    // Ejected at 0 s (5 failures), back at 10 s (5 more), out until 30 s: a handful of failures,
    // instead of 1/20 of 15,000 attempts without outlier detection.
    expect(b.errors).toBeLessThanOrEqual(15)
    expect(b.errors / (30 * 500)).toBeLessThan(0.02)
    // Healthy from 30 s: it serves its share of the last 90 s again.
    expect(b.attempts - b.errors).toBeGreaterThan(0.8 * ((90 * 500) / 20))
  })

  it('success-rate ejection takes out an endpoint failing 30%, and cuts its failures by more than half', async () => {
    const config = (outlierDetection: boolean): MeshConfig => ({
      services: {
        api: {
          endpoints,
          timeout: '1s',
          ...(outlierDetection ? { outlierDetection: { consecutiveFailures: 0 } } : {}),
        },
      },
    })
    const scenario = {
      seed: 3,
      duration: '60s',
      rate: 1_000,
      defaults: { latency: 5 },
      endpoints: { [bad]: { errorRate: 0.3, error: { status: 503 } } },
    } as const
    const [without, withOd] = await Promise.all([
      simulate(config(false), scenario),
      simulate(config(true), scenario),
    ])
    expect(withOd.endpoints[bad]!.errors).toBeLessThan(0.5 * without.endpoints[bad]!.errors)
    expect(withOd.successRate).toBeGreaterThanOrEqual(0.999)
    expect(withOd.attemptsPerCall).toBeLessThan(without.attemptsPerCall)
  })
})

describe('timers', () => {
  const instant = async () => new Response('ok')

  it('10,000 endpoints with outlier detection: no timer, ever', async () => {
    const clock = new ManualClock()
    const endpoints = Array.from({ length: 10_000 }, (_, i) => `http://10.${i >> 8}.${i & 255}.1:80`)
    const m = mesh(
      { services: { big: { endpoints, timeout: 0, outlierDetection: { interval: '1s' } } } },
      { clock, random: seededRandom(1), httpTransport: instant },
    )
    const f = withMesh(fetch, m)
    for (let i = 0; i < 3_000; i++) {
      expect((await f('http://big/')).status).toBe(200)
      expect(clock.pendingTimers).toBe(0)
      if (i % 500 === 0) await clock.advance(1_500)
    }
  })

  it('health checks: one timer per service, armed on first use, gone after mesh.close()', async () => {
    const clock = new ManualClock()
    const config: MeshConfig = {
      services: {
        a: { endpoints: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080'], timeout: 0, healthCheck: {} },
        b: { endpoints: ['http://10.0.0.3:8080'], timeout: 0, healthCheck: {} },
        c: { endpoints: ['http://10.0.0.4:8080'], timeout: 0 },
      },
    }
    const m = createMesh(config, { clock, random: seededRandom(1), httpTransport: instant })
    const f = withMesh(fetch, m)
    expect(clock.pendingTimers).toBe(0)
    await f('http://a/')
    await f('http://c/')
    expect(clock.pendingTimers).toBe(1)
    await f('http://b/')
    await f('http://a/')
    expect(clock.pendingTimers).toBe(2)
    await clock.advance(60_000)
    expect(clock.pendingTimers).toBe(2)
    await m.close()
    expect(clock.pendingTimers).toBe(0)
  })

  it('an update that drops a service or its healthCheck stops its probes; state of kept endpoints survives', async () => {
    const clock = new ManualClock()
    let failing = true
    const m = mesh(
      {
        services: {
          a: {
            endpoints: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080', 'http://10.0.0.3:8080'],
            timeout: 0,
            retry: { attempts: 1 },
            healthCheck: {},
            outlierDetection: { consecutiveFailures: 3 },
          },
          b: { endpoints: ['http://10.0.0.9:8080'], timeout: 0, healthCheck: {} },
        },
      },
      {
        clock,
        random: seededRandom(2),
        httpTransport: async (req, ctx) => {
          const { ENDPOINT } = await import('../src/index.js')
          const bad = ctx.get(ENDPOINT)?.address === 'http://10.0.0.2:8080' && req.path !== '/healthz'
          return new Response(null, { status: bad && failing ? 500 : 200 })
        },
      },
    )
    const events = record(m)
    const f = withMesh(fetch, m)
    for (let i = 0; i < 30; i++) await f('http://a/')
    await f('http://b/')
    expect(clock.pendingTimers).toBe(2)
    expect(events.filter(([t]) => t === 'ejection')).toHaveLength(1)
    m.update({
      services: {
        a: {
          endpoints: [
            'http://10.0.0.1:8080',
            'http://10.0.0.2:8080',
            'http://10.0.0.3:8080',
            'http://10.0.0.4:8080',
          ],
          timeout: 0,
          retry: { attempts: 1 },
          outlierDetection: { consecutiveFailures: 3 },
        },
      },
    })
    expect(clock.pendingTimers).toBe(0)
    failing = false
    // Still ejected after the update: no call reaches it (its ejection has 30 s to run).
    const statuses = new Set<number>()
    for (let i = 0; i < 40; i++) statuses.add((await f('http://a/')).status)
    expect(statuses).toEqual(new Set([200]))
    expect(events.filter(([t]) => t === 'ejection-end')).toHaveLength(0)
    await clock.advance(30_000)
    await f('http://a/')
    expect(events.filter(([t]) => t === 'ejection-end')).toHaveLength(1)
    expect(clock.pendingTimers).toBe(0)
  })
})
