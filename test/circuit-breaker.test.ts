/**
 * The circuit breaker against a real loopback server that counts requests: while the breaker is
 * open the server receives none, and after halfOpenAfter exactly the configured probes reach it.
 * The network is real; the breaker's time is a ManualClock, so nothing waits for real.
 */
import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, type MeshEvents, withMesh } from '../src/index.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'
import { startServer, type TestServer, within } from './helpers/servers.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

async function counting() {
  let healthy = false
  const held: ServerResponse[] = []
  let hold = false
  const server: TestServer = await startServer((_req, res) => {
    if (!healthy) {
      res.statusCode = 500
      res.end('broken')
    } else if (hold) held.push(res)
    else res.end('ok')
  })
  cleanup.push(() => server.close())
  return {
    server,
    heal: () => {
      healthy = true
    },
    holdAnswers: (on: boolean) => {
      hold = on
    },
    release: () => {
      for (const res of held.splice(0)) res.end('ok')
    },
    held,
  }
}

function meshWith(url: string, clock: ManualClock, extra: Record<string, unknown> = {}): Mesh {
  const mesh = createMesh(
    {
      services: {
        api: {
          endpoints: [url],
          timeout: 0,
          retry: { attempts: 1 },
          circuitBreaker: {
            consecutiveFailures: 3,
            halfOpenAfter: '10s',
            halfOpenProbes: 2,
            successThreshold: 2,
          },
          ...extra,
        },
      },
    },
    { clock, random: seededRandom(1) },
  )
  cleanup.push(() => mesh.close({ force: true }))
  return mesh
}

describe('circuit breaker against a real server', () => {
  it('sends nothing while open; after halfOpenAfter exactly the configured probes reach the server', async () => {
    const clock = new ManualClock()
    const s = await counting()
    const mesh = meshWith(s.server.url, clock)
    const transitions: string[] = []
    mesh.events.on('circuit-state', (e: MeshEvents['circuit-state']) => transitions.push(`${e.from}>${e.to}`))
    const f = withMesh(fetch, mesh)

    for (let i = 0; i < 3; i++) expect((await f('http://api/x')).status).toBe(500)
    expect(transitions).toEqual(['closed>open'])
    expect(s.server.requests).toBe(3)

    const refused = await Promise.all(
      Array.from({ length: 20 }, () => f('http://api/x').catch((e: unknown) => e)),
    )
    for (const r of refused) expect(r).toMatchObject({ code: 'CIRCUIT_OPEN', service: 'api' })
    expect(s.server.requests).toBe(3)

    s.heal()
    s.holdAnswers(true)
    await clock.advance(10_000)
    const probes = Array.from({ length: 10 }, () => f('http://api/x').catch((e: unknown) => e))
    // The two probes reach the server; the other eight fail fast.
    while (s.held.length < 2) await new Promise((r) => setImmediate(r))
    const early = await Promise.all(probes.slice(2))
    for (const r of early) expect(r).toMatchObject({ code: 'CIRCUIT_OPEN' })
    expect(s.server.requests).toBe(5)
    s.release()
    const answered = await within(Promise.all(probes.slice(0, 2)), 5000, 'the probes')
    for (const r of answered) expect((r as Response).status).toBe(200)
    expect(transitions).toEqual(['closed>open', 'open>half-open', 'half-open>closed'])

    s.holdAnswers(false)
    expect((await f('http://api/x')).status).toBe(200)
    expect(s.server.requests).toBe(6)
  })

  it('isolate() and reset() by hand; an open circuit is answered by the static fallback', async () => {
    const clock = new ManualClock()
    const s = await counting()
    s.heal()
    const mesh = meshWith(s.server.url, clock, {
      fallback: { on: ['CIRCUIT_OPEN'], status: 200, body: 'cached', headers: { 'x-fallback': '1' } },
    })
    const f = withMesh(fetch, mesh)
    mesh.circuitBreaker('api')!.isolate()
    const res = await f('http://api/x')
    expect(await res.text()).toBe('cached')
    expect(res.headers.get('x-fallback')).toBe('1')
    expect(s.server.requests).toBe(0)
    mesh.circuitBreaker('api')!.reset()
    expect(await (await f('http://api/x')).text()).toBe('ok')
    expect(s.server.requests).toBe(1)
  })

  it('a fallback function of the application gets the failure', async () => {
    const clock = new ManualClock()
    const s = await counting()
    const mesh = createMesh(
      {
        services: {
          api: {
            endpoints: [s.server.url],
            retry: { attempts: 1 },
            circuitBreaker: { consecutiveFailures: 1 },
            fallback: { on: ['CIRCUIT_OPEN'] },
          },
        },
      },
      {
        clock,
        fallbacks: {
          api: (error, req) => Response.json({ code: (error as { code: string }).code, path: req.path }),
        },
      },
    )
    cleanup.push(() => mesh.close({ force: true }))
    const f = withMesh(fetch, mesh)
    expect((await f('http://api/a')).status).toBe(500)
    expect(await (await f('http://api/b')).json()).toEqual({ code: 'CIRCUIT_OPEN', path: '/b' })
  })

  it('the breaker survives a config update that keeps its settings, and is replaced when they change', async () => {
    const clock = new ManualClock()
    const s = await counting()
    const mesh = meshWith(s.server.url, clock)
    const f = withMesh(fetch, mesh)
    for (let i = 0; i < 3; i++) await f('http://api/x')
    const config = mesh.config.services.api!
    mesh.update({ services: { api: { ...config, timeout: 5000 } } })
    await expect(f('http://api/x')).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' })
    mesh.update({ services: { api: { ...config, circuitBreaker: { consecutiveFailures: 10 } } } })
    expect((await f('http://api/x')).status).toBe(500)
  })
})

describe('no timer per breaker or endpoint', () => {
  it('10,000 services with breakers and 10,000 endpoints arm no timer at rest', async () => {
    const clock = new ManualClock()
    const services: Record<string, unknown> = {}
    for (let i = 0; i < 10_000; i++) {
      services[`s${i}`] = {
        endpoints: [`http://10.${i >> 8}.${i & 255}.1:80`],
        timeout: 0,
        circuitBreaker: {},
      }
    }
    const big = createMesh(
      {
        services: {
          ...(services as Record<string, never>),
          wide: {
            endpoints: Array.from({ length: 10_000 }, (_, i) => `http://10.${i >> 8}.${i & 255}.2:80`),
            timeout: 0,
            circuitBreaker: {},
          },
        },
      },
      { clock, httpTransport: async () => new Response('ok') },
    )
    const f = withMesh(fetch, big)
    for (let i = 0; i < 10_000; i += 97) await f(`http://s${i}/`)
    for (let i = 0; i < 100; i++) await f('http://wide/')
    expect(clock.pendingTimers).toBe(0)
    await big.close()
  })
})
