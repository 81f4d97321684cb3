/**
 * Deadline propagation across real loopback hops: caller A -> server B -> server C. A's mesh
 * sends the time left in `x-meshlet-timeout-ms`; B, wrapped with `withInboundDeadline`, makes
 * its own meshed call to C inside that deadline, so C hears what is left and B gives up when A
 * does, not at its own 30 s timeout. Real sockets and short real waits: the subject is the hop.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inboundTimeout, withInboundDeadline } from '../src/adapters/fetch/inbound.js'
import type { HttpRequest } from '../src/adapters/fetch/request.js'
import { toHttpRequest } from '../src/adapters/fetch/request.js'
import { fetchTransport } from '../src/adapters/fetch/transport.js'
import { Cancellation } from '../src/core/cancel.js'
import { Context } from '../src/core/context.js'
import { seededRandom } from '../src/core/random.js'
import { createMesh, type Mesh, MeshError, withMesh } from '../src/index.js'
import { ENDPOINT, Endpoint } from '../src/stages/balancer/endpoint.js'
import { DEADLINE_HEADER } from '../src/stages/deadline/propagation.js'
import { ManualClock } from '../src/testing/index.js'
import { startServer, type TestServer, within } from './helpers/servers.js'

const header = (req: IncomingMessage, name: string) => {
  const v = req.headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** What B saw and did for one request. */
interface BRecord {
  received: number | undefined
  waited: number
  outbound: { ok: true; status: number } | { ok: false; error: unknown; after: number }
}

describe('deadline propagation through a server using withInboundDeadline', () => {
  let c: TestServer
  let b: TestServer
  let meshB: Mesh
  const cSaw: Array<string | undefined> = []
  const held: ServerResponse[] = []
  let bDone: (record: BRecord) => void = () => {}

  beforeAll(async () => {
    c = await startServer((req, res) => {
      cSaw.push(header(req, DEADLINE_HEADER))
      if (req.url === '/hold') {
        held.push(res) // never answered
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('c')
    })
    meshB = createMesh({
      services: { c: { endpoints: [c.url], timeout: '30s', retry: { attempts: 1 } } },
    })
    const fetchB = withMesh(fetch, meshB)
    b = await startServer(
      withInboundDeadline(async (req: IncomingMessage, res: ServerResponse) => {
        const started = performance.now()
        const received = inboundTimeout(req.headers)
        const path = req.url === '/slow' ? '/hold' : '/fast'
        if (path === '/fast') await new Promise((resolve) => setTimeout(resolve, 50))
        const waited = performance.now() - started
        try {
          const r = await fetchB(`http://c${path}`)
          await r.text()
          bDone({ received, waited, outbound: { ok: true, status: r.status } })
          res.writeHead(200)
          res.end('b')
        } catch (error) {
          bDone({ received, waited, outbound: { ok: false, error, after: performance.now() - started } })
          res.writeHead(504)
          res.end('b gave up')
        }
      }),
    )
  })

  afterAll(async () => {
    for (const res of held) res.destroy()
    await meshB.close({ force: true })
    await Promise.all([b.close(), c.close()])
  })

  const nextB = () => new Promise<BRecord>((resolve) => (bDone = resolve))

  it('passes the remaining deadline on to the outbound call, less the time B spent', async () => {
    cSaw.length = 0
    const meshA = createMesh({ services: { b: { endpoints: [b.url], timeout: 1000 } } })
    const fetchA = withMesh(fetch, meshA)
    const record = nextB()
    const res = await within(fetchA('http://b/'), 5000, 'the call to B')
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('b')
    const seen = await record

    expect(seen.outbound).toEqual({ ok: true, status: 200 })
    const fromA = seen.received!
    expect(fromA).toBeGreaterThan(900)
    expect(fromA).toBeLessThanOrEqual(1000)
    expect(seen.waited).toBeGreaterThanOrEqual(45)
    expect(cSaw).toHaveLength(1)
    const fromB = Number(cSaw[0])
    expect(fromB).toBeGreaterThan(0)
    // Not B's own 30 s: what A left, less the ~50 ms B waited before calling.
    expect(fromB).toBeLessThanOrEqual(fromA - 40)
    await meshA.close()
  })

  it("fails B's outbound call with TIMEOUT at A's short deadline, not at B's own 30 s", async () => {
    cSaw.length = 0
    const meshA = createMesh({
      services: { b: { endpoints: [b.url], timeout: 200, retry: { attempts: 1 } } },
    })
    const fetchA = withMesh(fetch, meshA)
    const record = nextB()
    const aError = await within(
      fetchA('http://b/slow').catch((e: unknown) => e),
      5000,
      'the call to B',
    )
    expect(aError).toBeInstanceOf(MeshError)
    expect((aError as MeshError).code).toBe('TIMEOUT')

    const seen = await within(record, 5000, "B's outbound call to C")
    expect(seen.received).toBeGreaterThan(150)
    expect(seen.received).toBeLessThanOrEqual(200)
    expect(seen.outbound.ok).toBe(false)
    if (seen.outbound.ok) return
    expect(seen.outbound.error).toBeInstanceOf(MeshError)
    expect((seen.outbound.error as MeshError).code).toBe('TIMEOUT')
    expect((seen.outbound.error as MeshError).service).toBe('c')
    expect(seen.outbound.after).toBeGreaterThanOrEqual(140)
    expect(seen.outbound.after).toBeLessThan(1000)
    expect(Number(cSaw[0])).toBeLessThanOrEqual(200)
    await meshA.close()
  })

  it('sends no header when the service says propagateDeadline: false', async () => {
    cSaw.length = 0
    const mesh = createMesh({
      services: { c: { endpoints: [c.url], timeout: 1000, propagateDeadline: false } },
    })
    const res = await within(withMesh(fetch, mesh)('http://c/fast'), 5000, 'the call to C')
    await res.text()
    expect(cSaw).toEqual([undefined])
    await mesh.close()
  })

  it("sends the header with the caller's own headers, replacing a caller-set value", async () => {
    cSaw.length = 0
    const mesh = createMesh({ services: { c: { endpoints: [c.url], timeout: 1000 } } })
    const f = withMesh(fetch, mesh)
    const headers = new Headers({ 'x-custom': 'kept', [DEADLINE_HEADER]: '99999' })
    await (await f('http://c/fast', { headers })).text()
    await (await f('http://c/fast', { headers: { 'X-Meshlet-Timeout-Ms': '99999' } })).text()
    expect(cSaw).toHaveLength(2)
    for (const v of cSaw) {
      expect(Number(v)).toBeGreaterThan(900)
      expect(Number(v)).toBeLessThanOrEqual(1000)
    }
    expect(headers.get(DEADLINE_HEADER)).toBe('99999')
    await mesh.close()
  })
})

describe('fetchTransport and the deadline header', () => {
  function attempt(init: RequestInit, deadline: number, propagate = true) {
    const clock = new ManualClock({ start: 1000 })
    const sent: RequestInit[] = []
    const fakeFetch = (async (_url: string, i: RequestInit) => {
      sent.push(i)
      return new Response('ok')
    }) as typeof fetch
    const req: HttpRequest = toHttpRequest('c', '/x', 'http://c/x', init, propagate)
    const ctx = Context.create({ clock, random: seededRandom(1), cancel: new Cancellation(), deadline }).with(
      ENDPOINT,
      new Endpoint({ address: 'http://127.0.0.1:1' }),
    )
    return { sent, done: fetchTransport(fakeFetch)(req, ctx) }
  }

  it("never mutates the caller's Headers, pairs or plain object", async () => {
    const asHeaders = new Headers({ 'x-custom': '1' })
    const asPairs: [string, string][] = [['x-custom', '1']]
    const asRecord = { 'x-custom': '1' }
    for (const headers of [asHeaders, asPairs, asRecord]) {
      const init: RequestInit = { headers }
      const { sent, done } = attempt(init, 1742.9)
      await done
      const out = new Headers(sent[0]!.headers)
      expect(out.get(DEADLINE_HEADER)).toBe('742')
      expect(out.get('x-custom')).toBe('1')
      expect(init.headers).toBe(headers)
    }
    const names: string[] = []
    asHeaders.forEach((_value, name) => {
      names.push(name)
    })
    expect(names).toEqual(['x-custom'])
    expect(asPairs).toEqual([['x-custom', '1']])
    expect(asRecord).toEqual({ 'x-custom': '1' })
  })

  it('sends a plain object when the caller gave none or a plain one, and replaces any spelling', async () => {
    const none = attempt({}, 1500)
    await none.done
    expect(none.sent[0]!.headers).toEqual({ [DEADLINE_HEADER]: '500' })
    const spelled = attempt({ headers: { a: 'b', 'X-MESHLET-TIMEOUT-MS': '7' } }, 1500)
    await spelled.done
    expect(spelled.sent[0]!.headers).toEqual({ a: 'b', [DEADLINE_HEADER]: '500' })
  })

  it('sends 0 once the deadline has passed, and nothing without a deadline or when turned off', async () => {
    const late = attempt({}, 900)
    await late.done
    expect(late.sent[0]!.headers).toEqual({ [DEADLINE_HEADER]: '0' })
    const unbounded = attempt({}, Number.POSITIVE_INFINITY)
    await unbounded.done
    expect(unbounded.sent[0]!.headers).toBeUndefined()
    const off = attempt({ headers: { a: 'b' } }, 1500, false)
    await off.done
    expect(off.sent[0]!.headers).toEqual({ a: 'b' })
  })
})

describe('inboundTimeout', () => {
  it('reads meshlet, then grpc-timeout, then Envoy, skipping malformed values', () => {
    expect(inboundTimeout({ [DEADLINE_HEADER]: '300', 'grpc-timeout': '1S' })).toBe(300)
    expect(inboundTimeout({ [DEADLINE_HEADER]: 'soon', 'grpc-timeout': '1S' })).toBe(1000)
    expect(inboundTimeout({ 'x-envoy-expected-rq-timeout-ms': '250' })).toBe(250)
    expect(inboundTimeout(new Headers({ 'grpc-timeout': '20m' }))).toBe(20)
    expect(inboundTimeout({})).toBeUndefined()
  })
})
