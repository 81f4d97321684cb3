/**
 * Retries and hedging against real loopback servers: sparse 503s are absorbed within the
 * budget, a hedge wins a race against a stalled endpoint and the loser's socket is closed, and
 * nothing that must not be sent twice is sent twice.
 */
import type { ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, withMesh } from '../src/index.js'
import { seededRandom } from '../src/testing/index.js'
import { startServer, type TestServer, within } from './helpers/servers.js'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})
async function server(handler: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const s = await startServer(handler)
  cleanup.push(() => s.close())
  return s
}
function mesh(config: Parameters<typeof createMesh>[0]): Mesh {
  const m = createMesh(config)
  cleanup.push(() => m.close({ force: true }))
  return m
}

describe('retries against real servers', () => {
  it('one of three endpoints failing 30% with 503: >= 99.9% success, retries within the budget', async () => {
    const flaky = seededRandom(30)
    const ok = (_req: unknown, res: ServerResponse) => {
      res.end('ok')
    }
    const servers = [
      await server(ok),
      await server((_req, res) => {
        if (flaky.next() < 0.3) {
          res.statusCode = 503
          res.end('unavailable')
        } else res.end('ok')
      }),
      await server(ok),
    ]
    const m = mesh({ services: { api: { endpoints: servers.map((s) => s.url), timeout: '5s' } } })
    const f = withMesh(fetch, m)
    const started = performance.now()
    const calls = 900
    let succeeded = 0
    let next = 0
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < calls) {
          next++
          const res = await f('http://api/items')
          if (res.ok && (await res.text()) === 'ok') succeeded++
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    const received = servers.reduce((n, s) => n + s.requests, 0)
    const retries = received - calls
    expect(succeeded / calls).toBeGreaterThanOrEqual(0.999)
    expect(servers[1]!.requests).toBeGreaterThan(100)
    expect(retries).toBeGreaterThan(0)
    expect(retries).toBeLessThanOrEqual(0.2 * calls + 10 * Math.max(10, seconds))
  })
})

describe('hedging against real servers', () => {
  it('a hedge wins against a stalled endpoint, and the losing request’s socket is closed', async () => {
    let stalledClosed: Promise<void> | undefined
    const stalled = await server((req) => {
      stalledClosed = new Promise((resolve) => req.socket.once('close', () => resolve()))
      // never answers
    })
    const fast = await server((_req, res) => {
      res.end('fast')
    })
    const m = mesh({
      services: {
        api: {
          endpoints: [stalled.url, fast.url],
          loadBalancer: 'round-robin',
          timeout: '5s',
          hedge: { delay: '50ms' },
        },
      },
    })
    const hedges: number[] = []
    m.events.on('hedge', (e) => hedges.push(e.delay))
    const started = performance.now()
    const res = await within(withMesh(fetch, m)('http://api/slow-or-fast'), 4000, 'the hedged call')
    expect(await res.text()).toBe('fast')
    expect(performance.now() - started).toBeLessThan(1000)
    expect(hedges).toHaveLength(1)
    expect(hedges[0]).toBeGreaterThanOrEqual(49)
    expect(stalled.requests).toBe(1)
    expect(fast.requests).toBe(1)
    await within(stalledClosed ?? Promise.reject(new Error('no request')), 2000, "the loser's socket closing")
  })

  it('never hedges or retries a POST without Idempotency-Key: the server sees it once', async () => {
    const bodies: string[] = []
    const holding = await server(async (req, res) => {
      let body = ''
      for await (const chunk of req) body += chunk
      bodies.push(body)
      res.statusCode = 503
      setTimeout(() => res.end(), 150)
    })
    const other = await server((_req, res) => {
      res.end('other')
    })
    const m = mesh({
      services: {
        api: { endpoints: [holding.url, other.url], loadBalancer: 'round-robin', hedge: { delay: '20ms' } },
      },
    })
    const res = await withMesh(fetch, m)('http://api/orders', { method: 'POST', body: 'order-1' })
    expect(res.status).toBe(503)
    expect(bodies).toEqual(['order-1'])
    expect(other.requests).toBe(0)
  })

  it('hedges a POST that carries an Idempotency-Key', async () => {
    const slow = await server((_req, res) => {
      setTimeout(() => res.end('slow'), 1000)
    })
    const fast = await server((_req, res) => {
      res.end('fast')
    })
    const m = mesh({
      services: {
        api: { endpoints: [slow.url, fast.url], loadBalancer: 'round-robin', hedge: { delay: '30ms' } },
      },
    })
    const res = await withMesh(fetch, m)('http://api/orders', {
      method: 'POST',
      body: 'order-2',
      headers: { 'Idempotency-Key': 'k-2' },
    })
    expect(await res.text()).toBe('fast')
    expect(slow.requests + fast.requests).toBe(2)
  })
})
