import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { Cancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { BulkheadFullError, isMeshError, TimeoutError } from '../../core/errors.js'
import { Events, type MeshEvents } from '../../core/events.js'
import { chain, compose, type Handler } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { deadline } from '../deadline/deadline.js'
import { fixture } from '../test-kit.js'
import type { Limiter } from './adaptive.js'
import { bulkhead } from './bulkhead.js'

/** A transport that holds every call until the test answers it, counting calls in flight. */
function held() {
  const open = new Map<number, { resolve: (v: number) => void; reject: (e: unknown) => void }>()
  const started: number[] = []
  let inflight = 0
  let peak = 0
  const handler: Handler<number, number> = (req) =>
    new Promise<number>((resolve, reject) => {
      started.push(req)
      inflight++
      peak = Math.max(peak, inflight)
      const done = () => {
        inflight--
        open.delete(req)
      }
      open.set(req, {
        resolve: (v) => {
          done()
          resolve(v)
        },
        reject: (e) => {
          done()
          reject(e)
        },
      })
    })
  return {
    handler,
    started,
    open,
    get inflight() {
      return inflight
    },
    get peak() {
      return peak
    },
    answer(req: number, value = req) {
      open.get(req)!.resolve(value)
    },
    fail(req: number, error: unknown) {
      open.get(req)!.reject(error)
    },
  }
}

const clocks: ManualClock[] = []
/** A manual clock that must hold no timer when its test ends. */
function testClock(): ManualClock {
  const clock = new ManualClock()
  clocks.push(clock)
  return clock
}
afterEach(() => {
  for (const clock of clocks.splice(0)) expect(clock.pendingTimers).toBe(0)
})

/** A root context of its own for one call, on a shared clock. */
function callCtx(clock: ManualClock, cancel = new Cancellation()): Context {
  return Context.create({ clock, random: seededRandom(1), cancel })
}

/** Starts a call and records how it settled, without leaving a rejection unhandled. */
function track<T>(p: Promise<T>) {
  const r: { settled: boolean; value?: T; error?: unknown } = { settled: false }
  p.then(
    (value) => {
      r.settled = true
      r.value = value
    },
    (error: unknown) => {
      r.settled = true
      r.error = error
    },
  )
  return r
}

describe('bulkhead', () => {
  it('ACCEPTANCE: a bulkhead of 10 with a queue of 5 under 100 concurrent calls lets exactly 15 in and fails the rest with BULKHEAD_FULL at once', async () => {
    const clock = testClock()
    const upstream = held()
    const h = compose(bulkhead<number, number>({ max: 10, queue: 5, service: 'users' }))(upstream.handler)
    const calls = Array.from({ length: 100 }, (_, i) => track(h(i, callCtx(clock))))

    // Without moving the clock: 10 in flight, 5 queued, 85 refused.
    await clock.flush()
    expect(clock.now()).toBe(0)
    expect(upstream.started).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    const refused = calls.filter((c) => c.settled)
    expect(refused).toHaveLength(85)
    for (const c of refused) {
      expect(c.error).toBeInstanceOf(BulkheadFullError)
      expect(c.error).toMatchObject({ code: 'BULKHEAD_FULL', service: 'users' })
    }
    expect(calls.slice(15).every((c) => c.settled)).toBe(true)
    expect(clock.pendingTimers).toBe(5) // one per queued call, none for the others

    // Each answer hands its permit to the oldest waiter.
    for (let i = 0; i < 15; i++) {
      upstream.answer(i)
      await clock.flush()
    }
    expect(upstream.started).toEqual(Array.from({ length: 15 }, (_, i) => i))
    expect(upstream.peak).toBe(10)
    expect(calls.filter((c) => c.value !== undefined)).toHaveLength(15)
    expect(calls.filter((c) => isMeshError(c.error, 'BULKHEAD_FULL'))).toHaveLength(85)
    expect(clock.now()).toBe(0)
    expect(clock.pendingTimers).toBe(0)
  })

  it('gives freed permits to waiters in FIFO order', async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain([bulkhead<number, number>({ max: 1, queue: 3 })], upstream.handler)
    const calls = [1, 2, 3, 4].map((i) => track(h(i, callCtx(clock))))
    await clock.flush()
    expect(upstream.started).toEqual([1])
    for (const i of [1, 2, 3]) {
      upstream.answer(i)
      await clock.flush()
      expect(upstream.started).toEqual([1, 2, 3, 4].slice(0, i + 1))
    }
    upstream.answer(4)
    await clock.flush()
    expect(calls.map((c) => c.value)).toEqual([1, 2, 3, 4])
    expect(clock.pendingTimers).toBe(0)
  })

  it('fails a waiter with BULKHEAD_FULL exactly at its queue timeout and emits bulkhead-full', async () => {
    const clock = testClock()
    const events = new Events()
    const seen: MeshEvents['bulkhead-full'][] = []
    events.on('bulkhead-full', (e) => seen.push(e))
    const upstream = held()
    const h = chain(
      [bulkhead<number, number>({ max: 1, queue: 1, queueTimeout: 250, service: 'users', events })],
      upstream.handler,
    )
    const first = track(h(1, callCtx(clock)))
    await clock.advance(100)
    const waiter = track(h(2, callCtx(clock)))
    await clock.advance(249)
    expect(waiter.settled).toBe(false)
    await clock.advance(1)
    expect(clock.now()).toBe(350)
    expect(waiter.error).toBeInstanceOf(BulkheadFullError)
    expect((waiter.error as Error).message).toMatch(/waited 250ms in the queue \(queueTimeout\)/)
    expect(seen).toEqual([{ service: 'users', queued: true }])
    expect(upstream.started).toEqual([1])

    const refused = track(h(3, callCtx(clock))) // queue free again, permit still taken
    const beyond = track(h(4, callCtx(clock)))
    await clock.flush()
    expect(beyond.error).toMatchObject({ code: 'BULKHEAD_FULL' })
    expect(seen.at(-1)).toEqual({ service: 'users', queued: false })
    upstream.answer(1)
    await clock.flush()
    upstream.answer(3)
    await clock.flush()
    expect(first.value).toBe(1)
    expect(refused.value).toBe(3)
    expect(clock.pendingTimers).toBe(0)
  })

  it("bounds the wait by the call's deadline when that comes first", async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain(
      [deadline({ timeout: 80 }), bulkhead<number, number>({ max: 1, queue: 1, queueTimeout: 1000 })],
      upstream.handler,
    )
    const first = track(h(1, callCtx(clock)))
    await clock.advance(20)
    const waiter = track(h(2, callCtx(clock))) // its deadline is 20 + 80 = 100
    await clock.advance(79)
    expect(waiter.settled).toBe(false)
    await clock.advance(1)
    expect(clock.now()).toBe(100)
    expect(waiter.error).toMatchObject({ code: 'BULKHEAD_FULL' })
    expect((waiter.error as Error).message).toMatch(/waited 80ms in the queue until the call's deadline/)
    // A call whose deadline has already passed does not queue, and arms no timer.
    const late = track(h(3, callCtx(clock).withDeadline(100)))
    await clock.flush()
    expect(late.error).toMatchObject({ code: 'BULKHEAD_FULL' })
    expect(clock.pendingTimers).toBe(0)
    upstream.answer(1)
    await clock.flush()
    expect(first.value).toBe(1)
  })

  it('removes a cancelled waiter, clears its timer and unlinks its listener', async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain([bulkhead<number, number>({ max: 1, queue: 1 })], upstream.handler)
    const first = track(h(1, callCtx(clock)))
    const cancel = new Cancellation()
    const waiter = track(h(2, callCtx(clock, cancel)))
    await clock.flush()
    expect(clock.pendingTimers).toBe(1)
    expect(cancel.listenerCount).toBe(1)

    const reason = new Error('caller went away')
    cancel.abort(reason)
    await clock.flush()
    expect(waiter.error).toBe(reason)
    expect(clock.pendingTimers).toBe(0)
    expect(cancel.listenerCount).toBe(0)

    // Its place in the queue is free, and the permit goes to the next waiter, not to it.
    const next = track(h(3, callCtx(clock)))
    await clock.flush()
    expect(next.settled).toBe(false)
    upstream.answer(1)
    await clock.flush()
    expect(upstream.started).toEqual([1, 3])
    upstream.answer(3)
    await clock.flush()
    expect(first.value).toBe(1)
    expect(next.value).toBe(3)
    expect(clock.pendingTimers).toBe(0)
  })

  it('unlinks the cancellation listener and clears the timer when a waiter gets its permit', async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain([bulkhead<number, number>({ max: 1, queue: 1 })], upstream.handler)
    track(h(1, callCtx(clock)))
    const cancel = new Cancellation()
    const waiter = track(h(2, callCtx(clock, cancel)))
    await clock.flush()
    upstream.answer(1)
    await clock.flush()
    expect(upstream.started).toEqual([1, 2])
    expect(clock.pendingTimers).toBe(0)
    expect(cancel.listenerCount).toBe(0)
    cancel.abort(new Error('too late: it is in flight and the bulkhead no longer listens'))
    upstream.answer(2)
    await clock.flush()
    expect(waiter.value).toBe(2)
  })

  it('passes a waiter on with a context that starts when it got its permit', async () => {
    const clock = testClock()
    const upstream = held()
    const starts: number[] = []
    const h = chain([bulkhead<number, number>({ max: 1, queue: 1 })], (req, ctx) => {
      starts.push(ctx.startedAt)
      return upstream.handler(req, ctx)
    })
    const first = track(h(1, callCtx(clock)))
    const waiter = track(h(2, callCtx(clock)))
    await clock.advance(40)
    upstream.answer(1)
    await clock.flush()
    upstream.answer(2)
    await clock.flush()
    expect([first.value, waiter.value]).toEqual([1, 2])
    // The stages inside (attempt timeout, breaker) time the waiter from its grant, not its arrival.
    expect(starts).toEqual([0, 40])
  })

  it('releases a permit exactly once when a call both rejects and is cancelled', async () => {
    const clock = testClock()
    let inflight = 0
    let peak = 0
    const started: number[] = []
    const answers = new Map<number, () => void>()
    // Rejects when cancelled, as the transport does; and rejects a second way when told to.
    const handler: Handler<number, number> = (req, ctx) =>
      new Promise<number>((resolve, reject) => {
        started.push(req)
        peak = Math.max(peak, ++inflight)
        let settled = false
        const end = (fn: () => void) => {
          if (!settled) inflight--
          settled = true
          fn()
        }
        ctx.cancel.onAbort((reason) => end(() => reject(reason)))
        answers.set(req, () => end(() => resolve(req)))
      })
    const h = chain([bulkhead<number, number>({ max: 1, queue: 2 })], handler)
    const cancel = new Cancellation()
    const a = track(h(1, callCtx(clock, cancel)))
    const b = track(h(2, callCtx(clock)))
    const c = track(h(3, callCtx(clock)))
    await clock.flush()
    cancel.abort(new Error('abort'))
    cancel.abort(new Error('again'))
    await clock.flush()
    expect(a.error).toMatchObject({ message: 'abort' })
    // One permit freed: only the oldest waiter got in.
    expect(started).toEqual([1, 2])
    expect(c.settled).toBe(false)
    answers.get(2)!()
    await clock.flush()
    answers.get(3)!()
    await clock.flush()
    expect([b.value, c.value]).toEqual([2, 3])
    expect(peak).toBe(1)

    // A handler that throws synchronously still gives its permit back.
    const throwing = chain([bulkhead<number, number>({ max: 1 })], () => {
      throw new Error('sync')
    })
    await expect(throwing(1, callCtx(clock))).rejects.toThrow('sync')
    await expect(throwing(2, callCtx(clock))).rejects.toThrow('sync')
    expect(clock.pendingTimers).toBe(0)
  })

  it('arms no timer for an admitted call, nor for a waiter with neither queue timeout nor deadline', async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain(
      [bulkhead<number, number>({ max: 1, queue: 1, queueTimeout: Infinity })],
      upstream.handler,
    )
    track(h(1, callCtx(clock)))
    await clock.flush()
    expect(clock.pendingTimers).toBe(0)
    const waiter = track(h(2, callCtx(clock)))
    await clock.advance(3_600_000)
    expect(clock.pendingTimers).toBe(0)
    expect(waiter.settled).toBe(false)
    upstream.answer(1)
    await clock.flush()
    upstream.answer(2)
    await clock.flush()
    expect(waiter.value).toBe(2)
  })

  it('refuses at once with queue 0 or queueTimeout 0, and builds no event when nobody listens', async () => {
    const clock = testClock()
    const events = new Events()
    let emitted = 0
    const emit = events.emit.bind(events)
    events.emit = ((type, event) => {
      emitted++
      emit(type, event)
    }) as typeof events.emit
    const upstream = held()
    for (const options of [{ queue: 0 }, { queue: 3, queueTimeout: 0 }]) {
      const h = chain([bulkhead<number, number>({ max: 1, ...options, events })], upstream.handler)
      track(h(1, callCtx(clock)))
      const refused = track(h(2, callCtx(clock)))
      await clock.flush()
      expect(refused.error).toMatchObject({ code: 'BULKHEAD_FULL' })
      expect(clock.pendingTimers).toBe(0)
      upstream.answer(1)
      await clock.flush()
    }
    expect(emitted).toBe(0)
  })

  it('is left out of the path when there is no limit', () => {
    const handler: Handler<number, number> = async (n) => n
    expect(bulkhead<number, number>({})(handler)).toBe(handler)
    expect(bulkhead<number, number>({ max: 0, queue: 10 })(handler)).toBe(handler)
  })

  it('feeds an adaptive limiter: latency on the clock, in-flight at admission, timeouts as drops', async () => {
    const clock = testClock()
    const samples: Array<[number, number, boolean, number]> = []
    let limit = 2
    const limiter: Limiter = {
      get limit() {
        return limit
      },
      onSample(rtt, inflight, dropped, now) {
        samples.push([rtt, inflight, dropped, now])
      },
    }
    const upstream = held()
    const h = chain([bulkhead<number, number>({ adaptive: limiter, queue: 2 })], upstream.handler)
    const calls = [1, 2, 3, 4].map((i) => track(h(i, callCtx(clock))))
    await clock.advance(30)
    expect(upstream.started).toEqual([1, 2])
    limit = 4 // the next release lets every waiter in
    upstream.answer(1)
    await clock.flush()
    expect(upstream.started).toEqual([1, 2, 3, 4])
    expect(samples).toEqual([[30, 1, false, 30]])
    await clock.advance(10)
    upstream.fail(2, new TimeoutError('attempt', 40))
    upstream.fail(3, new Error('connection refused'))
    upstream.answer(4)
    await clock.flush()
    expect(samples).toEqual([
      [30, 1, false, 30],
      [40, 2, true, 40],
      [10, 3, false, 40], // admitted with calls 2 and 3 in flight
    ])
    expect(calls.map((c) => c.value ?? (c.error as Error).message)).toEqual([
      1,
      'attempt timeout of 40ms exceeded',
      'connection refused',
      4,
    ])
    expect(clock.pendingTimers).toBe(0)
  })

  it('starts a named adaptive limit at max and lets it grow', async () => {
    const clock = testClock()
    const upstream = held()
    const h = chain([bulkhead<number, number>({ max: 2, adaptive: 'vegas', maxLimit: 50 })], upstream.handler)
    let id = 0
    const round = async (n: number) => {
      const calls = Array.from({ length: n }, () => track(h(++id, callCtx(clock))))
      await clock.advance(5)
      for (const req of [...upstream.open.keys()]) upstream.answer(req)
      await clock.flush()
      return calls.filter((c) => isMeshError(c.error, 'BULKHEAD_FULL')).length
    }
    expect(await round(3)).toBe(1) // limit 2, no queue
    for (let i = 0; i < 10; i++) await round(40)
    expect(await round(40)).toBeLessThan(38)
    expect(clock.pendingTimers).toBe(0)
  })

  it('runs the TSDoc example', async () => {
    // The example of bulkhead(), with meshlet's public names resolved locally.
    const limited = compose(bulkhead<string, string>({ max: 10, queue: 5, queueTimeout: 250 }))(
      async (req) => req,
    )
    const { ctx, clock } = fixture()
    clocks.push(clock)
    expect(await limited('hi', ctx)).toBe('hi')
  })

  it('property: in-flight never exceeds max, the queue never holds a call a free permit could take, and every call ends admitted or BULKHEAD_FULL', async () => {
    type Op =
      | { kind: 'call'; deadline: number | undefined }
      | { kind: 'answer'; pick: number; fail: boolean }
      | { kind: 'advance'; ms: number }
      | { kind: 'cancel'; pick: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('call' as const),
        deadline: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }),
      }),
      fc.record({ kind: fc.constant('answer' as const), pick: fc.nat(), fail: fc.boolean() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
    )
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: 0, max: 300 }),
        fc.array(op, { maxLength: 40 }),
        async (max, queue, queueTimeout, ops) => {
          const clock = testClock()
          const upstream = held()
          const h = chain([bulkhead<number, number>({ max, queue, queueTimeout })], upstream.handler)
          const calls: Array<{ r: ReturnType<typeof track<number>>; cancel: Cancellation; id: number }> = []
          const check = () => {
            expect(upstream.inflight).toBeLessThanOrEqual(max)
            const waiting = calls.filter((c) => !c.r.settled && !upstream.started.includes(c.id)).length
            expect(waiting).toBeLessThanOrEqual(queue)
            if (waiting > 0) expect(upstream.inflight).toBe(max)
          }
          for (const o of ops) {
            if (o.kind === 'call') {
              const id = calls.length
              const cancel = new Cancellation()
              let ctx = callCtx(clock, cancel)
              if (o.deadline !== undefined) ctx = ctx.withDeadline(clock.now() + o.deadline)
              calls.push({ r: track(h(id, ctx)), cancel, id })
            } else if (o.kind === 'answer') {
              const open = [...upstream.open.keys()]
              if (open.length > 0) {
                const req = open[o.pick % open.length]!
                if (o.fail) upstream.fail(req, new Error('boom'))
                else upstream.answer(req)
              }
            } else if (o.kind === 'advance') {
              await clock.advance(o.ms)
            } else if (calls.length > 0) {
              calls[o.pick % calls.length]!.cancel.abort(new Error('cancelled'))
            }
            await clock.flush()
            check()
          }
          // Drain: answer everything, letting waiters in or time out.
          for (let guard = 0; guard < 1000; guard++) {
            for (const req of [...upstream.open.keys()]) upstream.answer(req)
            await clock.flush()
            check()
            if (calls.every((c) => c.r.settled)) break
            await clock.advance(50)
          }
          for (const c of calls) {
            expect(c.r.settled).toBe(true)
            const admitted = upstream.started.includes(c.id)
            const full = isMeshError(c.r.error, 'BULKHEAD_FULL')
            const cancelledWhileQueued = c.cancel.aborted && c.r.error === c.cancel.reason && !admitted
            expect([admitted, full, cancelledWhileQueued].filter(Boolean)).toHaveLength(1)
          }
          expect(upstream.peak).toBeLessThanOrEqual(max)
          expect(clock.pendingTimers).toBe(0)
        },
      ),
      { numRuns: 150, seed: 20260101 },
    )
  })
})
