/**
 * Discovery on the manual clock: when resolutions happen (refresh plus jitter, one timer per
 * service), what a failed, empty or invalid answer leaves in force (the last good set), how an
 * async iterable is read, and that removing a service or closing the mesh stops everything.
 */
import { describe, expect, it } from 'vitest'
import type { HttpRequest } from '../../adapters/fetch/request.js'
import type { Context } from '../../core/context.js'
import { ConfigInvalidError } from '../../core/errors.js'
import type { MeshEvents } from '../../core/events.js'
import type { Random } from '../../core/random.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { createMesh, type Mesh, type MeshOptions } from '../mesh.js'
import { withMesh } from '../with-mesh.js'
import type { EndpointInput, EndpointResolver } from './discovery.js'

const fixed = (value: number): Random => ({ next: () => value })
const urls = (mesh: Mesh, service = 'users') => mesh.config.services[service]!.endpoints.map((e) => e.url)
const endpointsOf = (mesh: Mesh, service = 'users') => mesh.snapshot.services.get(service)!.endpoints

/** A resolver function answering from `answers` in turn (the last one again when they run out). */
function scripted(...answers: Array<readonly EndpointInput[] | Error>) {
  const calls: number[] = []
  let i = 0
  const clock = { now: () => 0 }
  const fn = async () => {
    calls.push(clock.now())
    const answer = answers[Math.min(i++, answers.length - 1)]!
    if (answer instanceof Error) throw answer
    return answer
  }
  return { fn, calls, bind: (c: ManualClock) => (clock.now = () => c.now()) }
}

/** An async iterable the test pushes sets into; records whether the mesh ended it. */
function channel<T>() {
  const queue: T[] = []
  let wake: (() => void) | undefined
  const state = { returned: false }
  const iterable: AsyncIterable<T> = {
    [Symbol.asyncIterator]: () => ({
      async next(): Promise<IteratorResult<T>> {
        while (queue.length === 0 && !state.returned) await new Promise<void>((r) => (wake = r))
        if (state.returned) return { done: true, value: undefined }
        return { done: false, value: queue.shift()! }
      },
      async return(): Promise<IteratorResult<T>> {
        state.returned = true
        wake?.()
        return { done: true, value: undefined }
      },
    }),
  }
  return {
    iterable,
    state,
    push(value: T) {
      queue.push(value)
      wake?.()
    },
  }
}

function record<K extends keyof MeshEvents>(mesh: Mesh, type: K): MeshEvents[K][] {
  const seen: MeshEvents[K][] = []
  mesh.events.on(type, (e) => seen.push(e))
  return seen
}

function meshWith(
  resolvers: Readonly<Record<string, EndpointResolver>>,
  service: Record<string, unknown> = { discovery: { refresh: '10s' } },
  options: MeshOptions = {},
) {
  const clock = new ManualClock()
  const mesh = createMesh({ services: { users: service } } as never, {
    clock,
    random: fixed(0.5),
    resolvers,
    ...options,
  })
  return { clock, mesh }
}

describe('discovery with a resolver function', () => {
  it('resolves at once, then every refresh plus the jitter drawn from the injected random', async () => {
    const r = scripted(['http://10.0.0.1:80'])
    const { clock, mesh } = meshWith({ users: r.fn })
    r.bind(clock)
    await mesh.ready()
    expect(r.calls).toEqual([0])
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    // 10 s plus 10% x 0.5 of it.
    expect(clock.nextTimerAt()).toBe(10_500)
    expect(clock.pendingTimers).toBe(1)
    await clock.advance(10_499)
    expect(r.calls).toEqual([0])
    await clock.advance(1)
    expect(r.calls).toEqual([0, 10_500])
    await clock.advance(10_500)
    expect(r.calls).toEqual([0, 10_500, 21_000])
    expect(clock.pendingTimers).toBe(1)
    await mesh.close()
    expect(clock.pendingTimers).toBe(0)
  })

  it('spreads the waits over refresh .. refresh + 10% with the random', async () => {
    for (const [draw, at] of [
      [0, 10_000],
      [0.999, 10_999],
    ] as const) {
      const { clock, mesh } = meshWith({ users: async () => ['http://10.0.0.1:80'] }, undefined, {
        random: fixed(draw),
      })
      await mesh.ready()
      expect(clock.nextTimerAt()).toBeCloseTo(at, 6)
      await mesh.close()
    }
  })

  it('abandons a resolver that never answers after max(refresh, 5 s), aborts its signal and polls on', async () => {
    const signals: AbortSignal[] = []
    let call = 0
    const resolver = (signal: AbortSignal) => {
      signals.push(signal)
      call++
      if (call === 2) return new Promise<never>(() => {}) // hangs, ignoring its signal
      return Promise.resolve([call === 1 ? 'http://10.0.0.1:80' : 'http://10.0.0.2:80'])
    }
    const { clock, mesh } = meshWith({ users: resolver })
    const errors = record(mesh, 'discovery-error')
    await mesh.ready()
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    await clock.advance(10_500) // the second poll starts and hangs
    expect(call).toBe(2)
    await clock.advance(9_999)
    expect(signals[1]!.aborted).toBe(false)
    expect(errors).toHaveLength(0)
    await clock.advance(1) // 10 s (the refresh, above the 5 s floor) after it started
    expect(signals[1]!.aborted).toBe(true)
    expect(errors).toHaveLength(1)
    expect(String(errors[0]!.error)).toContain('did not answer within 10000 ms')
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    await clock.advance(10_500) // polling goes on
    expect(call).toBe(3)
    expect(urls(mesh)).toEqual(['http://10.0.0.2'])
    await mesh.close()
    expect(clock.pendingTimers).toBe(0)
  })

  it('keeps the last good set through a failure, an empty answer and an invalid one', async () => {
    const r = scripted(
      ['http://10.0.0.1:80', 'http://10.0.0.2:80'],
      new Error('control plane down'),
      [],
      ['not a url'],
      ['http://10.0.0.3:80'],
    )
    const { clock, mesh } = meshWith({ users: r.fn })
    const errors = record(mesh, 'discovery-error')
    const updates = record(mesh, 'discovery-updated')
    await mesh.ready()
    expect(urls(mesh)).toEqual(['http://10.0.0.1', 'http://10.0.0.2'])
    for (let i = 0; i < 3; i++) await clock.advance(10_500)
    expect(urls(mesh)).toEqual(['http://10.0.0.1', 'http://10.0.0.2'])
    expect(errors.map((e) => [e.service, e.endpoints])).toEqual([
      ['users', 2],
      ['users', 2],
      ['users', 2],
    ])
    expect(String(errors[0]!.error)).toContain('control plane down')
    expect(String(errors[1]!.error)).toContain('no endpoint')
    expect(errors[2]!.error).toBeInstanceOf(ConfigInvalidError)
    expect(String(errors[2]!.error)).toContain('services.users.endpoints[0]')
    // Still one timer: a failure schedules the next try like a success.
    expect(clock.pendingTimers).toBe(1)
    await clock.advance(10_500)
    expect(urls(mesh)).toEqual(['http://10.0.0.3'])
    expect(updates.map((u) => [u.added, u.removed])).toEqual([
      [['http://10.0.0.1', 'http://10.0.0.2'], []],
      [['http://10.0.0.3'], ['http://10.0.0.1', 'http://10.0.0.2']],
    ])
    await mesh.close()
  })

  it('swaps nothing when the answer is the same set in another order', async () => {
    const r = scripted(
      ['http://10.0.0.1:80', 'http://10.0.0.2:80'],
      ['http://10.0.0.2:80', 'http://10.0.0.1:80'],
    )
    const { clock, mesh } = meshWith({ users: r.fn })
    await mesh.ready()
    const snapshot = mesh.snapshot
    const updates = record(mesh, 'discovery-updated')
    await clock.advance(10_500)
    expect(r.calls).toHaveLength(2)
    expect(mesh.snapshot).toBe(snapshot)
    expect(updates).toEqual([])
    await mesh.close()
  })

  it('keeps the state of endpoints that stay; added ones start cold', async () => {
    const r = scripted(
      ['http://10.0.0.1:80', 'http://10.0.0.2:80'],
      ['http://10.0.0.2:80', 'http://10.0.0.3:80'],
    )
    const { clock, mesh } = meshWith({ users: r.fn })
    await mesh.ready()
    const [, survivor] = endpointsOf(mesh)
    survivor!.pending = 7
    survivor!.health.consecutiveFailures = 2
    await clock.advance(10_500)
    const [kept, added] = endpointsOf(mesh)
    expect(kept).toBe(survivor)
    expect(kept!.pending).toBe(7)
    expect(kept!.health.consecutiveFailures).toBe(2)
    expect(added!.address).toBe('http://10.0.0.3')
    expect(added!.pending).toBe(0)
    await mesh.close()
  })

  it('uses the configured endpoints until the first resolution, and takes weights, labels and zones', async () => {
    let answer!: (set: readonly EndpointInput[]) => void
    const resolver = () => new Promise<readonly EndpointInput[]>((resolve) => (answer = resolve))
    const { mesh } = meshWith(
      { users: resolver },
      {
        endpoints: ['http://10.0.0.9:80'],
        discovery: {},
      },
    )
    expect(urls(mesh)).toEqual(['http://10.0.0.9'])
    answer([{ url: 'http://10.0.0.1:80', weight: 3, labels: { version: 'v2' }, zone: 'b' }])
    await mesh.ready()
    expect(mesh.config.services.users!.endpoints).toEqual([
      { url: 'http://10.0.0.1', weight: 3, labels: { version: 'v2' }, zone: 'b' },
    ])
    await mesh.close()
  })

  it('passes a signal that aborts when the mesh closes during a resolution', async () => {
    let seen: AbortSignal | undefined
    const resolver = (signal: AbortSignal) => {
      seen = signal
      return new Promise<readonly EndpointInput[]>(() => {})
    }
    const { clock, mesh } = meshWith(
      { users: resolver },
      {
        endpoints: ['http://10.0.0.9:80'],
        discovery: {},
      },
    )
    expect(seen?.aborted).toBe(false)
    await mesh.close()
    expect(seen?.aborted).toBe(true)
    expect(clock.pendingTimers).toBe(0)
  })
})

describe('discovery with an async iterable', () => {
  it('takes each set as it is yielded, with no timer, and ends the iterable on close', async () => {
    const c = channel<readonly EndpointInput[]>()
    const { clock, mesh } = meshWith({ users: c.iterable })
    const ready = mesh.ready()
    c.push(['http://10.0.0.1:80'])
    await ready
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    c.push(['http://10.0.0.1:80', 'http://10.0.0.2:80'])
    await clock.flush()
    expect(urls(mesh)).toEqual(['http://10.0.0.1', 'http://10.0.0.2'])
    c.push([])
    await clock.flush()
    expect(urls(mesh)).toEqual(['http://10.0.0.1', 'http://10.0.0.2'])
    expect(clock.pendingTimers).toBe(0)
    await mesh.close()
    expect(c.state.returned).toBe(true)
  })

  it('keeps the last good set when the iterable throws', async () => {
    async function* failing() {
      yield ['http://10.0.0.1:80']
      throw new Error('stream broken')
    }
    const { mesh } = meshWith({ users: failing() })
    const errors = record(mesh, 'discovery-error')
    await mesh.ready()
    await new Promise((r) => setImmediate(r))
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    expect(errors.map((e) => String(e.error))).toEqual(['Error: stream broken'])
    await mesh.close()
  })
})

describe('discovery and the config', () => {
  it('refuses discovery with neither dns nor a resolver, at createMesh and at update', async () => {
    const config = { services: { users: { discovery: {} } } }
    expect(() => createMesh(config)).toThrow(ConfigInvalidError)
    try {
      createMesh(config)
    } catch (e) {
      expect((e as ConfigInvalidError).issues.map((i) => i.path)).toEqual(['services.users.discovery.dns'])
    }
    const mesh = createMesh({ services: { users: { endpoints: ['http://10.0.0.1:80'] } } })
    expect(() => mesh.update(config)).toThrow(ConfigInvalidError)
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    await mesh.close()
  })

  it('stops the timer of a service that leaves the config, and keeps the set of one that stays', async () => {
    const users = scripted(['http://10.0.0.1:80'])
    const orders = scripted(['http://10.0.1.1:80'])
    const clock = new ManualClock()
    const mesh = createMesh(
      { services: { users: { discovery: { refresh: '10s' } }, orders: { discovery: { refresh: '10s' } } } },
      { clock, random: fixed(0), resolvers: { users: users.fn, orders: orders.fn } },
    )
    await mesh.ready()
    expect(clock.pendingTimers).toBe(2)
    mesh.update({ services: { users: { discovery: { refresh: '20s' } } } })
    // orders' timer is gone; users keeps its set and takes the new refresh at once.
    expect(clock.pendingTimers).toBe(1)
    expect(urls(mesh)).toEqual(['http://10.0.0.1'])
    expect(clock.nextTimerAt()).toBe(20_000)
    await clock.advance(30_000)
    expect(orders.calls).toHaveLength(1)
    expect(users.calls).toHaveLength(2)
    mesh.update({ services: { users: { endpoints: ['http://10.0.0.9:80'] } } })
    expect(clock.pendingTimers).toBe(0)
    expect(urls(mesh)).toEqual(['http://10.0.0.9'])
    await mesh.close()
  })

  it('leaves no timer after close, and a later update is refused and starts none', async () => {
    const { clock, mesh } = meshWith({ users: async () => ['http://10.0.0.1:80'] })
    await mesh.ready()
    expect(clock.pendingTimers).toBe(1)
    await mesh.close()
    expect(clock.pendingTimers).toBe(0)
    expect(() => mesh.update({ services: { users: { discovery: {} } } })).toThrow(
      expect.objectContaining({ code: 'MESH_CLOSED' }),
    )
    await clock.advance(60_000)
    expect(clock.pendingTimers).toBe(0)
  })

  it('sends new calls to the new set; a call in flight finishes on the endpoint it started on', async () => {
    const c = channel<readonly EndpointInput[]>()
    const clock = new ManualClock()
    const hits: string[] = []
    const transport = (_req: HttpRequest, ctx: Context) => {
      const address = ctx.get(ENDPOINT)!.address
      hits.push(address)
      return ctx.clock.sleep(100).then(() => new Response(address))
    }
    const mesh = createMesh(
      { services: { users: { discovery: {} } } },
      { clock, random: fixed(0), resolvers: { users: c.iterable }, httpTransport: transport },
    )
    const f = withMesh(fetch, mesh)
    c.push(['http://10.0.0.1:80'])
    await mesh.ready()
    const first = f('http://users/')
    await clock.flush()
    c.push(['http://10.0.0.2:80'])
    await clock.flush()
    const second = f('http://users/')
    await clock.advance(100)
    expect(await (await first).text()).toBe('http://10.0.0.1')
    expect(await (await second).text()).toBe('http://10.0.0.2')
    expect(hits).toEqual(['http://10.0.0.1', 'http://10.0.0.2'])
    await mesh.close()
  })
})
