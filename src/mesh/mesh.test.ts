import { describe, expect, expectTypeOf, it } from 'vitest'
import type { HttpRequest } from '../adapters/fetch/request.js'
import type { Context } from '../core/context.js'
import { ConfigInvalidError, MeshError } from '../core/errors.js'
import { settlesOnCancel } from '../core/handler.js'
import { seededRandom } from '../core/random.js'
import { ENDPOINT } from '../stages/balancer/endpoint.js'
import { ManualClock } from '../testing/manual-clock.js'
import { createMesh } from './mesh.js'
import { meshOf, withMesh } from './with-mesh.js'

const services = {
  users: { endpoints: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080'], timeout: '2s' },
}

/** A transport on virtual time: answers per `script(endpoint, attempt)`, `undefined` = never. */
function virtualTransport(script: (address: string, ctx: Context) => number | undefined) {
  const calls: Array<{ address: string; at: number; path: string }> = []
  const cancelled: number[] = []
  const transport = (req: HttpRequest, ctx: Context) => {
    const address = ctx.get(ENDPOINT)!.address
    calls.push({ address, at: ctx.clock.now(), path: req.path })
    const status = script(address, ctx)
    return new Promise<Response>((resolve, reject) => {
      ctx.cancel.onAbort((reason) => {
        cancelled.push(ctx.clock.now())
        reject(reason)
      })
      if (status !== undefined) ctx.clock.setTimer(() => resolve(new Response(`${address}`, { status })), 10)
    })
  }
  return { transport, calls, cancelled }
}

describe('mesh on the manual clock', () => {
  it('rejects a stalled upstream with TIMEOUT at the deadline and cancels the attempt', async () => {
    const clock = new ManualClock()
    const { transport, cancelled } = virtualTransport(() => undefined)
    const mesh = createMesh({ services }, { clock, random: seededRandom(1), httpTransport: transport })
    const f = withMesh(fetch, mesh)
    const settled = f('http://users/api/1').catch((e: unknown) => e)
    await clock.advance(1999)
    expect(cancelled).toEqual([])
    await clock.advance(1)
    const error = await settled
    expect(error).toBeInstanceOf(MeshError)
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'call', service: 'users' })
    expect(cancelled).toEqual([2000])
    expect(clock.pendingTimers).toBe(0)
    await mesh.close()
  })

  it('holds one deadline timer per call around a transport that settles on cancel, gone once it settles (D28)', async () => {
    const clock = new ManualClock()
    // 10.0.0.1 answers 503 (retried onto 10.0.0.2, which answers 200), each after 10 virtual ms.
    const { transport, calls } = virtualTransport((address) => (address.includes('10.0.0.1') ? 503 : 200))
    const mesh = createMesh(
      { services: { users: { ...services.users, loadBalancer: 'round-robin' } } },
      { clock, random: seededRandom(1), httpTransport: settlesOnCancel(transport) },
    )
    const f = withMesh(fetch, mesh)
    const p = f('http://users/api/1')
    await Promise.resolve()
    // The attempt's answer and the call's deadline: two timers.
    expect(clock.pendingTimers).toBe(2)
    await clock.advance(1000)
    const res = await p
    expect(res.status).toBe(200)
    expect(calls.map((c) => c.address)).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080'])
    expect(clock.pendingTimers).toBe(0)
    await mesh.close()
  })

  it('retries a 503 onto the other endpoint after a jittered backoff within the deadline', async () => {
    const clock = new ManualClock()
    const { transport, calls } = virtualTransport((address) => (address.includes('10.0.0.1') ? 503 : 200))
    const mesh = createMesh(
      { services: { users: { ...services.users, loadBalancer: 'round-robin' } } },
      { clock, random: seededRandom(1), httpTransport: transport },
    )
    const f = withMesh(fetch, mesh)
    const p = f('http://users/api/1?x=2')
    await clock.advance(500)
    const res = await p
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('http://10.0.0.2:8080')
    expect(calls.map((c) => c.address)).toEqual(['http://10.0.0.1:8080', 'http://10.0.0.2:8080'])
    expect(calls[0]!.path).toBe('/api/1?x=2')
    expect(calls[1]!.at).toBeGreaterThanOrEqual(10)
    expect(calls[1]!.at).toBeLessThan(10 + 25)
    await mesh.close()
  })

  it('keeps the old configuration when an update is invalid, listing every problem', async () => {
    const mesh = createMesh({ services })
    const before = mesh.config
    let error: unknown
    try {
      mesh.update({
        services: { users: { endpoints: [], retry: { attempts: -1 }, timeout: 'fast' } },
      } as never)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigInvalidError)
    const paths = (error as ConfigInvalidError).issues.map((i) => i.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'services.users.endpoints',
        'services.users.retry.attempts',
        'services.users.timeout',
      ]),
    )
    expect(mesh.config).toBe(before)
    await mesh.close()
  })

  it('in-flight calls finish on the configuration they started with', async () => {
    const clock = new ManualClock()
    const { transport, calls } = virtualTransport(() => 200)
    const mesh = createMesh({ services }, { clock, random: seededRandom(1), httpTransport: transport })
    const f = withMesh(fetch, mesh)
    const first = f('http://users/a')
    mesh.update({ services: { users: { endpoints: ['http://10.0.0.9:8080'] } } })
    const second = f('http://users/b')
    await clock.advance(20)
    await Promise.all([first, second])
    expect(calls[0]!.address).not.toBe('http://10.0.0.9:8080')
    expect(calls[1]!.address).toBe('http://10.0.0.9:8080')
    await mesh.close()
  })

  it('withMesh(fetch, config) creates the mesh, reachable with meshOf', async () => {
    const f = withMesh(fetch, { services })
    const mesh = meshOf(f)
    expect(mesh?.config.services.users?.endpoints).toHaveLength(2)
    await mesh?.close()
  })

  it('keeps fetch’s exact type', () => {
    const f = withMesh(fetch, { services })
    expectTypeOf(f).toEqualTypeOf<typeof fetch>()
    expectTypeOf(f).parameter(0).toEqualTypeOf<Parameters<typeof fetch>[0]>()
    expectTypeOf(f).returns.toEqualTypeOf<Promise<Response>>()
  })

  it('rejects a non-function with a clear TypeError', () => {
    expect(() => withMesh(42 as never, { services })).toThrow(
      'expected a fetch function or a @grpc/grpc-js client, got number',
    )
  })

  it('reads the clock once per successful call of the full stack (at its start), twice with a rate window', async () => {
    const clock = new ManualClock()
    let reads = 0
    const now = clock.now.bind(clock)
    clock.now = () => {
      reads++
      return now()
    }
    const transport = async () => new Response('ok')
    const endpoints = ['http://10.0.0.1:8080']
    const full = { endpoints, circuitBreaker: {}, concurrency: { max: 10 } }
    const rated = { endpoints, circuitBreaker: { failureRateThreshold: 50 }, concurrency: { max: 10 } }
    const mesh = createMesh(
      { services: { full, rated } },
      { clock, random: seededRandom(1), httpTransport: transport },
    )
    const f = withMesh(fetch, mesh)
    const readsPerCall = async (service: string) => {
      await f(`http://${service}/warm`)
      reads = 0
      for (let i = 0; i < 10; i++) expect((await f(`http://${service}/x`)).status).toBe(200)
      return reads / 10
    }
    // Deadline, budget, breaker admission, balancer and attempt timeout all use ctx.startedAt; a
    // consecutive-failures breaker needs no time for a success, a rate window does.
    expect(await readsPerCall('full')).toBe(1)
    expect(await readsPerCall('rated')).toBe(2)
    await mesh.close()
  })
})

describe('Mesh.run (the callback form of invoke, for gRPC calls)', () => {
  it('tells the sink after the call has left the in-flight set, on a later microtask', async () => {
    const mesh = createMesh({ services })
    const seen: Array<[string, unknown, number]> = []
    const sink = {
      resolved: (value: string) => seen.push(['resolved', value, mesh.inflight]),
      rejected: (error: unknown) => seen.push(['rejected', (error as Error).message, mesh.inflight]),
    }
    mesh.run(async (req: string) => `${req}!`, 'a', sink)
    mesh.run(
      () => {
        throw new Error('thrown')
      },
      'b',
      sink,
    )
    expect(mesh.inflight).toBe(2)
    expect(seen).toEqual([])
    await new Promise((r) => setImmediate(r))
    expect(seen).toEqual([
      ['resolved', 'a!', 1],
      ['rejected', 'thrown', 0],
    ])
    await mesh.close()
  })

  it('rejects on a closed mesh, never from inside run', async () => {
    const mesh = createMesh({ services })
    await mesh.close()
    const seen: unknown[] = []
    mesh.run(async () => 'never', 'x', { resolved: (v) => seen.push(v), rejected: (e) => seen.push(e) })
    expect(seen).toEqual([])
    await Promise.resolve()
    expect(seen).toHaveLength(1)
    expect(seen[0]).toMatchObject({ code: 'MESH_CLOSED' })
  })

  it('a forced close aborts a call in flight through run', async () => {
    const mesh = createMesh({ services })
    let reason: unknown
    const result = new Promise((resolve) =>
      mesh.run(
        (_req: string, ctx: Context) =>
          new Promise<string>((_, reject) =>
            ctx.cancel.onAbort((r) => {
              reason = r
              reject(r)
            }),
          ),
        'x',
        { resolved: resolve, rejected: resolve },
      ),
    )
    await mesh.close({ force: true })
    expect(await result).toBe(reason)
    expect(reason).toMatchObject({ code: 'MESH_CLOSED' })
    expect(mesh.inflight).toBe(0)
  })
})
