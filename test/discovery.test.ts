/**
 * Discovery against real servers: DNS discovery asks a UDP DNS server on 127.0.0.1 started here
 * (A, AAAA and SRV records, a record change picked up at the next refresh, an outage that keeps
 * the last good set), on the manual clock for the refresh timer; and an endpoint set replaced
 * under 1,000 calls in flight to real loopback HTTP servers loses none of them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, type MeshConfig, type MeshEvents, withMesh } from '../src/index.js'
import type { EndpointInput } from '../src/mesh/discovery/discovery.js'
import { ManualClock } from '../src/testing/index.js'
import { startDnsServer, type TestDnsServer } from './helpers/dns-server.js'
import { startServer, type TestServer, within } from './helpers/servers.js'

/** The next event of `type` on `mesh`, or a failure after 5 s. */
function next<K extends keyof MeshEvents>(mesh: Mesh, type: K): Promise<MeshEvents[K]> {
  return within(
    new Promise<MeshEvents[K]>((resolve) => {
      const off = mesh.events.on(type, (e) => {
        off()
        resolve(e)
      })
    }),
    5000,
    `event ${type}`,
  )
}

const urls = (mesh: Mesh, service: string) => mesh.config.services[service]!.endpoints.map((e) => e.url)
// The refresh and the most its jitter adds (10%): one advance of this always runs the next refresh.
const REFRESH = 10_000
const PAST_REFRESH = REFRESH * 1.1 + 1

describe('DNS discovery against a DNS server on 127.0.0.1', () => {
  let dns: TestDnsServer
  let clock: ManualClock
  let mesh: Mesh | undefined

  beforeAll(async () => {
    dns = await startDnsServer()
  })
  afterAll(async () => {
    await dns.close()
  })
  afterEach(async () => {
    await mesh?.close()
    expect(clock.pendingTimers).toBe(0)
    mesh = undefined
    dns.mode = 'answer'
  })

  const start = (config: MeshConfig) => {
    clock = new ManualClock()
    mesh = createMesh(config, { clock, dns: { servers: [dns.address], timeout: 200, tries: 1 } })
    return mesh
  }

  it('finds A records, follows a record change at the next refresh, and keeps the last good set through an outage', async () => {
    dns.set('users.test', 'A', ['127.0.0.1', '127.0.0.2'])
    const m = start({
      services: { users: { discovery: { dns: 'users.test', port: 8080, refresh: REFRESH } } },
    })
    await within(m.ready(), 5000, 'first resolution')
    expect(urls(m, 'users')).toEqual(['http://127.0.0.1:8080', 'http://127.0.0.2:8080'])
    const survivor = m.snapshot.services.get('users')!.endpoints[1]!

    // A record change: seen at the next refresh, not before.
    dns.set('users.test', 'A', ['127.0.0.2', '127.0.0.3'])
    await clock.advance(REFRESH / 2)
    expect(urls(m, 'users')).toEqual(['http://127.0.0.1:8080', 'http://127.0.0.2:8080'])
    const updated = next(m, 'discovery-updated')
    await clock.advance(PAST_REFRESH)
    expect(await updated).toEqual({
      service: 'users',
      endpoints: 2,
      added: ['http://127.0.0.3:8080'],
      removed: ['http://127.0.0.1:8080'],
    })
    expect(urls(m, 'users')).toEqual(['http://127.0.0.2:8080', 'http://127.0.0.3:8080'])
    // The endpoint that stayed is the same object, its live state with it.
    expect(m.snapshot.services.get('users')!.endpoints[0]).toBe(survivor)

    // An outage, answered: SERVFAIL.
    dns.mode = 'servfail'
    const servfail = next(m, 'discovery-error')
    await clock.advance(PAST_REFRESH)
    const e1 = await servfail
    expect((e1.error as NodeJS.ErrnoException).code).toBe('ESERVFAIL')
    expect(e1.endpoints).toBe(2)
    expect(urls(m, 'users')).toEqual(['http://127.0.0.2:8080', 'http://127.0.0.3:8080'])

    // An outage, silent: the query times out.
    dns.mode = 'silent'
    const silent = next(m, 'discovery-error')
    await clock.advance(PAST_REFRESH)
    expect(((await silent).error as NodeJS.ErrnoException).code).toBe('ETIMEOUT')
    expect(urls(m, 'users')).toEqual(['http://127.0.0.2:8080', 'http://127.0.0.3:8080'])

    // The name gone (NXDOMAIN) is an error too, not an empty set.
    dns.mode = 'answer'
    dns.set('users.test', 'A', [])
    const gone = next(m, 'discovery-error')
    await clock.advance(PAST_REFRESH)
    expect(((await gone).error as NodeJS.ErrnoException).code).toMatch(/^E(NOTFOUND|NODATA)$/)
    expect(urls(m, 'users')).toEqual(['http://127.0.0.2:8080', 'http://127.0.0.3:8080'])

    // Back: the next answer is taken.
    dns.set('users.test', 'A', ['127.0.0.4'])
    const back = next(m, 'discovery-updated')
    await clock.advance(PAST_REFRESH)
    await back
    expect(urls(m, 'users')).toEqual(['http://127.0.0.4:8080'])
    expect(clock.pendingTimers).toBe(1)
  })

  it('finds AAAA records as bracketed URLs', async () => {
    dns.set('users6.test', 'AAAA', ['::1'])
    const m = start({
      services: { users6: { discovery: { dns: 'users6.test', type: 'AAAA', port: 8443, scheme: 'https' } } },
    })
    await within(m.ready(), 5000, 'first resolution')
    expect(urls(m, 'users6')).toEqual(['https://[::1]:8443'])
  })

  it('finds SRV records with their ports and weights, and calls reach the server they name', async () => {
    const server = await startServer((_req, res) => {
      res.end('via srv')
    })
    try {
      dns.set('_http._tcp.api.test', 'SRV', [
        { priority: 10, weight: 3, port: server.port, target: '127.0.0.1' },
        { priority: 20, weight: 1, port: 9999, target: 'backup.api.test' },
      ])
      dns.set('_grpc._tcp.rpc.test', 'SRV', [
        { priority: 0, weight: 1, port: 50051, target: 'a.rpc.test' },
        { priority: 0, weight: 2, port: 50052, target: 'b.rpc.test' },
      ])
      const m = start({
        services: {
          api: { discovery: { dns: '_http._tcp.api.test', type: 'SRV', refresh: REFRESH } },
          rpc: { protocol: 'grpc', discovery: { dns: '_grpc._tcp.rpc.test', type: 'SRV' } },
        },
      })
      await within(m.ready(), 5000, 'first resolution')
      expect(m.config.services.api!.endpoints.map((e) => [e.url, e.weight])).toEqual([
        [`http://127.0.0.1:${server.port}`, 3],
      ])
      expect(m.config.services.rpc!.endpoints.map((e) => [e.url, e.weight])).toEqual([
        ['a.rpc.test:50051', 1],
        ['b.rpc.test:50052', 2],
      ])
      const res = await withMesh(fetch, m)('http://api/')
      expect(await res.text()).toBe('via srv')
      expect(server.requests).toBe(1)
      // A port change in the SRV record is a new endpoint.
      dns.set('_http._tcp.api.test', 'SRV', [{ priority: 10, weight: 3, port: 9998, target: '127.0.0.1' }])
      const updated = next(m, 'discovery-updated')
      await clock.advance(PAST_REFRESH)
      expect((await updated).added).toEqual(['http://127.0.0.1:9998'])
    } finally {
      await server.close()
    }
  })
})

/** An async iterable the test pushes endpoint sets into. */
function channel() {
  const queue: (readonly EndpointInput[])[] = []
  let wake: (() => void) | undefined
  const iterable: AsyncIterable<readonly EndpointInput[]> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r))
        yield queue.shift()!
      }
    },
  }
  return {
    iterable,
    push(set: readonly EndpointInput[]) {
      queue.push(set)
      wake?.()
    },
  }
}

describe('an endpoint set replaced under load', () => {
  const CALLS = 1000
  let old: TestServer[] = []
  let fresh: TestServer[] = []
  const held: Array<() => void> = []
  let arrived = 0
  let onArrival: (() => void) | undefined

  /** Holds every response until the test releases them. */
  const holding = (id: string) => (_req: IncomingMessage, res: ServerResponse) => {
    held.push(() => res.end(id))
    arrived++
    onArrival?.()
  }

  beforeAll(async () => {
    old = await Promise.all(['old-a', 'old-b'].map((id) => startServer(holding(id))))
    fresh = await Promise.all(
      ['new-a', 'new-b'].map((id) =>
        startServer((_req, res) => {
          res.end(id)
        }),
      ),
    )
  })
  afterAll(async () => {
    await Promise.all([...old, ...fresh].map((s) => s.close()))
  })

  it('loses none of 1,000 calls in flight; new calls go to the new set only', async () => {
    const source = channel()
    const mesh = createMesh(
      { services: { users: { discovery: {}, retry: { attempts: 1 }, timeout: '30s' } } },
      { resolvers: { users: source.iterable } },
    )
    const f = withMesh(fetch, mesh)
    source.push(old.map((s) => s.url))
    await within(mesh.ready(), 5000, 'first set')

    const allArrived = new Promise<void>((resolve) => {
      onArrival = () => arrived === CALLS && resolve()
    })
    const inflight = Array.from({ length: CALLS }, () =>
      f('http://users/').then(
        async (res) => ({ ok: res.status === 200, body: await res.text() }),
        (error: unknown) => ({ ok: false, body: String(error) }),
      ),
    )
    await within(allArrived, 15_000, 'all calls at the old servers')
    expect(mesh.inflight).toBe(CALLS)

    // The swap, while every call waits for its answer.
    const updated = next(mesh, 'discovery-updated')
    source.push(fresh.map((s) => s.url))
    expect([...(await updated).removed].sort()).toEqual(old.map((s) => s.url).sort())
    const oldRequests = old.map((s) => s.requests)

    const after = await Promise.all(
      Array.from({ length: 100 }, async () => (await f('http://users/')).text()),
    )
    expect(new Set(after)).toEqual(new Set(['new-a', 'new-b']))
    expect(old.map((s) => s.requests)).toEqual(oldRequests)

    // Release the old servers' answers: every call finishes, on the endpoint it started on.
    for (const release of held.splice(0)) release()
    const results = await within(Promise.all(inflight), 15_000, 'calls in flight')
    expect(results.filter((r) => !r.ok)).toEqual([])
    expect(results.every((r) => r.body === 'old-a' || r.body === 'old-b')).toBe(true)
    expect(old.reduce((n, s) => n + s.requests, 0)).toBe(CALLS)
    await mesh.close()
  })
})
