import { describe, expect, it } from 'vitest'
import { Cancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { isMeshError, RateLimitedError } from '../../core/errors.js'
import { Events, type MeshEvents } from '../../core/events.js'
import { chain, type Handler } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { GlobalLimiter, LocalLimiter, MemoryQuotaStore } from './limiter.js'
import { quota, refusalError, type ServerSignals } from './quota.js'
import { AdaptiveThrottle } from './throttle.js'

type Res = { status: number; retryAfter?: number }

const signals: ServerSignals = {
  rejected: (ok, r) => ok && (r as Res).status === 429,
  pause: (ok, r) => (ok && (r as Res).status === 429 ? (r as Res).retryAfter : undefined),
}

function setup(
  opts: { action?: 'reject' | 'queue'; queue?: number; rate?: number; burst?: number; keyed?: boolean } = {},
) {
  const clock = new ManualClock()
  const events = new Events()
  const limiter = new LocalLimiter(
    {
      limit: { rate: opts.rate ?? 10, periodMs: 1000, burst: opts.burst ?? 2 },
      action: opts.action ?? 'reject',
      queue: opts.queue ?? 100,
      maxPause: 60_000,
      refuse: (r) => refusalError('users', r),
    },
    clock,
  )
  let answer: Res = { status: 200 }
  const sent: string[] = []
  const transport: Handler<string, Res> = async (req) => {
    sent.push(req)
    return answer
  }
  const handler = chain<string, Res>(
    [
      quota<string, Res>({
        limiter,
        signals,
        service: 'users',
        events,
        keyOf: opts.keyed ? (r) => r.split(':')[0] : undefined,
      }),
    ],
    transport,
  )
  const ctx = (deadline = Number.POSITIVE_INFINITY, cancel = new Cancellation()) =>
    Context.create({ clock, random: seededRandom(1), cancel, deadline })
  return {
    clock,
    events,
    limiter,
    sent,
    handler,
    ctx,
    answer: (r: Res) => {
      answer = r
    },
  }
}

async function settle<T>(p: Promise<T>): Promise<T | unknown> {
  return p.then(
    (v) => v,
    (e: unknown) => e,
  )
}

describe('quota stage', () => {
  it('admits the burst, then refuses with RATE_LIMITED naming the wait', async () => {
    const s = setup()
    await s.handler('a', s.ctx())
    await s.handler('b', s.ctx())
    const error = await settle(s.handler('c', s.ctx()))
    expect(error).toBeInstanceOf(RateLimitedError)
    expect(isMeshError(error, 'RATE_LIMITED')).toBe(true)
    expect((error as RateLimitedError).retryAfter).toBe(100)
    expect(s.sent).toEqual(['a', 'b'])
    await s.clock.advance(100)
    await s.handler('d', s.ctx())
    expect(s.sent).toEqual(['a', 'b', 'd'])
  })

  it('keeps one bucket per key', async () => {
    const s = setup({ keyed: true, burst: 1 })
    await s.handler('t1:x', s.ctx())
    await s.handler('t2:x', s.ctx())
    expect(await settle(s.handler('t1:y', s.ctx()))).toBeInstanceOf(RateLimitedError)
    expect(s.limiter.size).toBe(2)
  })

  it('queues in FIFO order and admits each waiter when its token comes', async () => {
    const s = setup({ action: 'queue', burst: 1 })
    await s.handler('a', s.ctx())
    const b = s.handler('b', s.ctx())
    const c = s.handler('c', s.ctx())
    await s.clock.advance(99)
    expect(s.sent).toEqual(['a'])
    await s.clock.advance(1)
    await b
    expect(s.sent).toEqual(['a', 'b'])
    await s.clock.advance(100)
    await c
    expect(s.sent).toEqual(['a', 'b', 'c'])
    expect(s.clock.pendingTimers).toBe(0)
  })

  it('refuses at once when the queue is full', async () => {
    const s = setup({ action: 'queue', burst: 1, queue: 1 })
    await s.handler('a', s.ctx())
    const b = s.handler('b', s.ctx())
    const error = await settle(s.handler('c', s.ctx()))
    expect(error).toBeInstanceOf(RateLimitedError)
    expect((error as Error).message).toMatch(/1 calls already waiting/)
    await s.clock.advance(100)
    await b
  })

  it('refuses at once a call whose token would come after its deadline', async () => {
    const s = setup({ action: 'queue', burst: 1 })
    await s.handler('a', s.ctx())
    const error = await settle(s.handler('b', s.ctx(50)))
    expect(error).toBeInstanceOf(RateLimitedError)
    expect((error as Error).message).toMatch(/after the call's deadline/)
    expect(s.clock.pendingTimers).toBe(0)
  })

  it('a cancelled wait leaves the queue, gives its place to the next and leaks no timer', async () => {
    const s = setup({ action: 'queue', burst: 1 })
    await s.handler('a', s.ctx())
    const cancel = new Cancellation()
    const b = settle(s.handler('b', s.ctx(10_000, cancel)))
    const c = s.handler('c', s.ctx(10_000))
    cancel.abort(new Error('caller gave up'))
    expect(((await b) as Error).message).toBe('caller gave up')
    await s.clock.advance(100)
    await c
    expect(s.sent).toEqual(['a', 'c'])
    expect(s.clock.pendingTimers).toBe(0)
  })

  it("ends a wait at the call's deadline when a pause pushed its token past it", async () => {
    const s = setup({ action: 'queue', burst: 1 })
    await s.handler('a', s.ctx())
    const b = settle(s.handler('b', s.ctx(500)))
    s.limiter.pause(s.limiter.single, 5000, s.clock.now())
    await s.clock.advance(500)
    const error = await b
    expect(error).toBeInstanceOf(RateLimitedError)
    expect((error as Error).message).toMatch(/until the call's deadline/)
    expect(s.clock.pendingTimers).toBe(0)
  })

  it("pauses the key for the server's Retry-After, for every later call", async () => {
    const s = setup({ rate: 1000, burst: 1000 })
    const seen: MeshEvents['quota-paused'][] = []
    s.events.on('quota-paused', (e) => seen.push(e))
    s.answer({ status: 429, retryAfter: 1000 })
    await s.handler('a', s.ctx())
    s.answer({ status: 200 })
    const error = await settle(s.handler('b', s.ctx()))
    expect(error).toBeInstanceOf(RateLimitedError)
    expect((error as Error).message).toMatch(/paused by the server/)
    expect(seen).toEqual([{ service: 'users', key: '', ms: 1000 }])
    await s.clock.advance(999)
    expect(await settle(s.handler('c', s.ctx()))).toBeInstanceOf(RateLimitedError)
    await s.clock.advance(1)
    expect(await s.handler('d', s.ctx())).toEqual({ status: 200 })
  })

  it('a queued call waits out the pause instead of failing', async () => {
    const s = setup({ action: 'queue', rate: 1000, burst: 1000 })
    s.answer({ status: 429, retryAfter: 1000 })
    await s.handler('a', s.ctx())
    s.answer({ status: 200 })
    const b = s.handler('b', s.ctx())
    await s.clock.advance(999)
    expect(s.sent).toEqual(['a'])
    await s.clock.advance(1)
    await b
    expect(s.sent).toEqual(['a', 'b'])
  })

  it('bounds a pause by maxPause', async () => {
    const s = setup({ rate: 1000, burst: 1000 })
    s.answer({ status: 429, retryAfter: 3_600_000 })
    await s.handler('a', s.ctx())
    s.answer({ status: 200 })
    await s.clock.advance(60_000)
    expect(await s.handler('b', s.ctx())).toEqual({ status: 200 })
  })

  it('sheds calls locally once the server rejects most of them (adaptive throttling)', async () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ k: 2, windowMs: 60_000 })
    let sent = 0
    const handler = chain<string, Res>(
      [quota<string, Res>({ throttle, signals, service: 'users' })],
      async () => {
        sent++
        return { status: 429 }
      },
    )
    const ctx = Context.create({ clock, random: seededRandom(3), cancel: new Cancellation() })
    let shed = 0
    for (let i = 0; i < 1000; i++) {
      const r = await settle(handler('x', ctx))
      if (r instanceof RateLimitedError) shed++
    }
    expect(shed + sent).toBe(1000)
    expect(shed).toBeGreaterThan(900)
    expect(throttle.counts(clock.now())).toEqual({ requests: 1000, accepts: 0 })
  })

  it("a limit's refusals never count as the backend's (the throttle forgets them)", async () => {
    const clock = new ManualClock()
    const throttle = new AdaptiveThrottle({ k: 2, windowMs: 60_000 })
    const limiter = new LocalLimiter(
      { limit: { rate: 1, periodMs: 60_000, burst: 1 }, refuse: (r) => refusalError('users', r) },
      clock,
    )
    const handler = chain<string, Res>(
      [quota<string, Res>({ limiter, throttle, signals, service: 'users' })],
      async () => ({ status: 200 }),
    )
    const ctx = Context.create({ clock, random: seededRandom(3), cancel: new Cancellation() })
    await handler('a', ctx)
    for (let i = 0; i < 100; i++) expect(await settle(handler('x', ctx))).toBeInstanceOf(RateLimitedError)
    expect(throttle.counts(clock.now())).toEqual({ requests: 1, accepts: 1 })
    expect(throttle.probability(clock.now())).toBe(0)
  })

  it('a global limit takes its tokens from the store, and a pause reaches the store', async () => {
    const clock = new ManualClock()
    const store = new MemoryQuotaStore(clock)
    const limiter = new GlobalLimiter(
      { limit: { rate: 10, periodMs: 1000, burst: 1 }, refuse: (r) => refusalError('users', r) },
      store,
    )
    let answer: Res = { status: 200 }
    const handler = chain<string, Res>(
      [quota<string, Res>({ limiter, signals, service: 'users', storeKey: 'svc/users:' })],
      async () => answer,
    )
    const ctx = Context.create({ clock, random: seededRandom(3), cancel: new Cancellation() })
    await handler('a', ctx)
    expect(await settle(handler('b', ctx))).toBeInstanceOf(RateLimitedError)
    await clock.advance(100)
    answer = { status: 429, retryAfter: 1000 }
    await handler('c', ctx)
    await clock.advance(500)
    answer = { status: 200 }
    expect(await settle(handler('d', ctx))).toBeInstanceOf(RateLimitedError)
    expect((await store.take('svc/users:', 1, limiter.limit)).retryAfterMs).toBe(500)
    await clock.advance(500)
    expect(await handler('e', ctx)).toEqual({ status: 200 })
  })

  it('a store failure fails the call closed with RATE_LIMITED and its cause', async () => {
    const clock = new ManualClock()
    const boom = new Error('connection refused')
    const limiter = new GlobalLimiter(
      { limit: { rate: 10, periodMs: 1000, burst: 1 } },
      { take: () => Promise.reject(boom), pause: () => Promise.resolve(), close: () => Promise.resolve() },
    )
    const handler = chain<string, Res>([quota<string, Res>({ limiter, service: 'users' })], async () => ({
      status: 200,
    }))
    const ctx = Context.create({ clock, random: seededRandom(3), cancel: new Cancellation() })
    const error = await settle(handler('a', ctx))
    expect(isMeshError(error, 'RATE_LIMITED')).toBe(true)
    expect((error as Error).cause).toBe(boom)
  })

  it('adds nothing to the stack without a limit or throttle', () => {
    const next: Handler<string, Res> = async () => ({ status: 200 })
    expect(quota<string, Res>({})(next)).toBe(next)
  })
})
