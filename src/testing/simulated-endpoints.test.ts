import { describe, expect, it } from 'vitest'
import type { HttpRequest } from '../adapters/fetch/request.js'
import { Cancellation } from '../core/cancel.js'
import { Context } from '../core/context.js'
import { seededRandom } from '../core/random.js'
import { ENDPOINT, Endpoint } from '../stages/balancer/endpoint.js'
import { ManualClock } from './manual-clock.js'
import { SimulatedEndpoints } from './simulated-endpoints.js'

const A = 'http://a:1'
const B = 'http://b:1'

// The simulated transport reads only the endpoint from the context, never the request.
const request = { method: 'GET', url: `${A}/` } as unknown as HttpRequest

function contextFor(clock: ManualClock, address = A, cancel = new Cancellation()): Context {
  return Context.create({ clock, random: seededRandom(1), cancel }).with(ENDPOINT, new Endpoint({ address }))
}

describe('SimulatedEndpoints.begin', () => {
  it('fails the share of attempts given by errorRate (30% +- 2% over 10,000)', () => {
    const sim = new SimulatedEndpoints({ endpoints: { [A]: { errorRate: 0.3 } } })
    let errors = 0
    for (let i = 0; i < 10_000; i++) {
      const { result } = sim.begin(A, i)
      sim.end(A)
      if ('status' in result && result.status === 503) errors++
    }
    expect(errors / 10_000).toBeGreaterThan(0.28)
    expect(errors / 10_000).toBeLessThan(0.32)
    expect(sim.stats.get(A)).toEqual({ attempts: 10_000, errors, inflight: 0, peakInflight: 1 })
  })

  it('uses the defaults: 1 ms, status 200, no errors', () => {
    const sim = new SimulatedEndpoints()
    for (let i = 0; i < 100; i++) expect(sim.begin(A, 0)).toEqual({ delay: 1, result: { status: 200 } })
    expect(sim.stats.get(A)?.errors).toBe(0)
  })

  it('answers with the configured success status', () => {
    const sim = new SimulatedEndpoints({ defaults: { status: 204, latency: 3 } })
    expect(sim.begin(A, 0)).toEqual({ delay: 3, result: { status: 204 } })
  })

  it.each([
    ['a status', { status: 500 }, { delay: 7, result: { status: 500 } }],
    ['a reset, after the latency', { reset: true as const }, { delay: 7, result: { reset: true } }],
    ['a refusal, at once', { refused: true as const }, { delay: 0, result: { refused: true } }],
    ['a hang, never', { hang: true as const }, { delay: Number.POSITIVE_INFINITY }],
  ])('an error kind gives the right verdict: %s', (_, error, verdict) => {
    const sim = new SimulatedEndpoints({ defaults: { latency: 7, errorRate: 1, error } })
    expect(sim.begin(A, 0)).toMatchObject(verdict)
    expect(sim.stats.get(A)?.errors).toBe(1)
  })

  it('grows latency with inflight beyond capacity (processor sharing)', () => {
    const sim = new SimulatedEndpoints({ endpoints: { [A]: { latency: 10, capacity: 2 } } })
    // The n-th attempt in flight takes latency * max(1, n / capacity).
    const delays = Array.from({ length: 5 }, () => sim.begin(A, 0).delay)
    expect(delays).toEqual([10, 10, 15, 20, 25])
    for (let i = 0; i < 5; i++) sim.end(A)
    expect(sim.begin(A, 0).delay).toBe(10)
    expect(sim.stats.get(A)).toMatchObject({ inflight: 1, peakInflight: 5 })
  })

  it('applies a scripted event only inside [from, to) and only to the endpoints it names', () => {
    const sim = new SimulatedEndpoints({
      defaults: { latency: 5 },
      events: [{ endpoints: [B], from: 1000, to: 2000, behavior: { errorRate: 1, error: { status: 502 } } }],
    })
    const at = (address: string, t: number) => {
      const { result } = sim.begin(address, t)
      sim.end(address)
      return 'status' in result ? result.status : 'network'
    }
    expect([at(B, 0), at(B, 999.9), at(B, 1000), at(B, 1999.9), at(B, 2000), at(B, 5000)]).toEqual([
      200, 200, 502, 502, 200, 200,
    ])
    expect([at(A, 1000), at(A, 1500), at(A, 1999)]).toEqual([200, 200, 200])
  })

  it('keeps an endpoint own fields an event does not name, and measures events from start', () => {
    const sim = new SimulatedEndpoints({
      start: 10_000,
      endpoints: { [A]: { latency: 40 } },
      events: [{ from: 1000, behavior: { errorRate: 1 } }],
    })
    expect(sim.begin(A, 10_999)).toEqual({ delay: 40, result: { status: 200 } })
    // No `to`: to the end of the run; no `endpoints`: all of them.
    expect(sim.begin(A, 11_000)).toEqual({ delay: 40, result: { status: 503 } })
    expect(sim.begin(B, 99_000).result).toEqual({ status: 503 })
  })

  it('gives each endpoint its own random stream (common random numbers)', () => {
    const behavior = { latency: { logNormal: { median: 10, p99: 100 } }, errorRate: 0.2 }
    const alone = new SimulatedEndpoints({ seed: 9, endpoints: { [A]: behavior, [B]: behavior } })
    const mixed = new SimulatedEndpoints({ seed: 9, endpoints: { [A]: behavior, [B]: behavior } })
    const fromAlone = Array.from({ length: 200 }, (_, i) => alone.begin(A, i))
    const fromMixed: unknown[] = []
    for (let i = 0; i < 200; i++) {
      for (let j = 0; j < i % 3; j++) mixed.begin(B, i)
      fromMixed.push(mixed.begin(A, i))
    }
    expect(fromMixed).toEqual(fromAlone)
    // And the streams differ between endpoints and between seeds.
    const other = new SimulatedEndpoints({ seed: 9, endpoints: { [A]: behavior, [B]: behavior } })
    expect(Array.from({ length: 20 }, (_, i) => other.begin(B, i))).not.toEqual(fromAlone.slice(0, 20))
    const reseeded = new SimulatedEndpoints({ seed: 10, endpoints: { [A]: behavior } })
    expect(Array.from({ length: 20 }, (_, i) => reseeded.begin(A, i))).not.toEqual(fromAlone.slice(0, 20))
  })
})

describe('SimulatedEndpoints.httpTransport', () => {
  it('answers a real Response with the status, after the latency on the clock', async () => {
    const clock = new ManualClock()
    const sim = new SimulatedEndpoints({ endpoints: { [A]: { latency: 50, status: 201 } } })
    let settled = false
    const call = sim
      .httpTransport()(request, contextFor(clock))
      .finally(() => {
        settled = true
      })
    await clock.advance(49)
    expect(settled).toBe(false)
    expect(sim.stats.get(A)?.inflight).toBe(1)
    await clock.advance(1)
    const res = await call
    expect(res).toBeInstanceOf(Response)
    expect(res.status).toBe(201)
    expect(sim.stats.get(A)?.inflight).toBe(0)
    expect(clock.pendingTimers).toBe(0)
  })

  it('answers error statuses as Responses too', async () => {
    const clock = new ManualClock()
    const sim = new SimulatedEndpoints({ defaults: { errorRate: 1, error: { status: 503 } } })
    const call = sim.httpTransport()(request, contextFor(clock))
    await clock.advance(1)
    expect((await call).status).toBe(503)
  })

  it('rejects a reset with a TypeError whose cause.code is ECONNRESET', async () => {
    const clock = new ManualClock()
    const sim = new SimulatedEndpoints({ defaults: { latency: 20, errorRate: 1, error: { reset: true } } })
    const call = sim
      .httpTransport()(request, contextFor(clock))
      .catch((e: unknown) => e)
    await clock.advance(20)
    const error = await call
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).cause).toMatchObject({ code: 'ECONNRESET' })
    expect(sim.stats.get(A)?.inflight).toBe(0)
  })

  it('rejects a refusal at once with cause.code ECONNREFUSED', async () => {
    const clock = new ManualClock()
    const sim = new SimulatedEndpoints({ defaults: { latency: 20, errorRate: 1, error: { refused: true } } })
    const error = await sim
      .httpTransport()(request, contextFor(clock))
      .catch((e: unknown) => e)
    expect(clock.now()).toBe(0)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).cause).toMatchObject({ code: 'ECONNREFUSED' })
  })

  it('clears its timer and its inflight count when the attempt is cancelled', async () => {
    const clock = new ManualClock()
    const cancel = new Cancellation()
    const sim = new SimulatedEndpoints({ defaults: { latency: 1000 } })
    const call = sim
      .httpTransport()(request, contextFor(clock, A, cancel))
      .catch((e: unknown) => e)
    await clock.advance(10)
    expect(clock.pendingTimers).toBe(1)
    expect(sim.stats.get(A)?.inflight).toBe(1)
    const reason = new Error('attempt timed out')
    cancel.abort(reason)
    expect(await call).toBe(reason)
    expect(clock.pendingTimers).toBe(0)
    expect(sim.stats.get(A)?.inflight).toBe(0)
    expect(cancel.listenerCount).toBe(0)
  })

  it('a hang arms no timer and ends only when cancelled', async () => {
    const clock = new ManualClock()
    const cancel = new Cancellation()
    const sim = new SimulatedEndpoints({ defaults: { errorRate: 1, error: { hang: true } } })
    const call = sim
      .httpTransport()(request, contextFor(clock, A, cancel))
      .catch((e: unknown) => e)
    await clock.advance(3_600_000)
    expect(clock.pendingTimers).toBe(0)
    expect(sim.stats.get(A)?.inflight).toBe(1)
    cancel.abort(new Error('deadline'))
    expect(await call).toMatchObject({ message: 'deadline' })
    expect(sim.stats.get(A)?.inflight).toBe(0)
  })

  it('leaves no listener on the cancellation once answered', async () => {
    const clock = new ManualClock()
    const cancel = new Cancellation()
    const sim = new SimulatedEndpoints()
    const call = sim.httpTransport()(request, contextFor(clock, A, cancel))
    await clock.advance(1)
    await call
    expect(cancel.listenerCount).toBe(0)
  })

  it('rejects when no endpoint was chosen', async () => {
    const ctx = Context.create({
      clock: new ManualClock(),
      random: seededRandom(1),
      cancel: new Cancellation(),
    })
    await expect(new SimulatedEndpoints().httpTransport()(request, ctx)).rejects.toThrow('no endpoint chosen')
  })
  it('an attempt cancelled before it starts arms no timer and keeps inflight at 0', async () => {
    const clock = new ManualClock()
    const cancel = new Cancellation()
    cancel.abort(new Error('already gone'))
    const sim = new SimulatedEndpoints({ defaults: { latency: 10 } })
    const call = sim
      .httpTransport()(request, contextFor(clock, A, cancel))
      .catch((e: unknown) => e)
    expect(clock.pendingTimers).toBe(0)
    await clock.advance(20)
    expect(await call).toMatchObject({ message: 'already gone' })
    // It never reached the endpoint: nothing counted, nothing in flight.
    expect(sim.stats.get(A)?.attempts ?? 0).toBe(0)
    expect(sim.stats.get(A)?.inflight ?? 0).toBe(0)
  })
})
