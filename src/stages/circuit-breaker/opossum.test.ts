/**
 * opossumStage against a real opossum 9 breaker. opossum reads `Date.now()` and arms global
 * `setTimeout` / `setInterval` timers, so it cannot run on meshlet's injected clock; these tests
 * put vitest's fake timers under it instead (installed before each breaker is created, since
 * opossum arms its two intervals in the constructor), and never sleep for real.
 */
import CircuitBreaker from 'opossum'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { httpClassifier } from '../../adapters/fetch/classify.js'
import type { HttpRequest } from '../../adapters/fetch/request.js'
import { Cancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { BulkheadFullError, CircuitOpenError, isMeshError, TimeoutError } from '../../core/errors.js'
import { compose, type Handler } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { type FakeReq, type FakeRes, fixture } from '../test-kit.js'
import { FailingResponseError, type OpossumLike, opossumStage } from './opossum.js'

const REQ: FakeReq = { replayable: true }
const OK: FakeRes = { status: 200 }
const UNAVAILABLE: FakeRes = { status: 503 }

/** A breaker the way the stage wants it: the action runs the attempt it is handed. */
function newBreaker(options: CircuitBreaker.Options = {}) {
  return new CircuitBreaker((run: () => Promise<unknown>) => run(), {
    timeout: false,
    resetTimeout: 1000,
    errorThresholdPercentage: 50,
    volumeThreshold: 2,
    ...options,
  })
}

/** A transport answering from a script, counting its calls. */
function scripted(...answers: Array<FakeRes | Error>) {
  let calls = 0
  const handler: Handler<FakeReq, FakeRes> = async () => {
    const answer = answers[Math.min(calls++, answers.length - 1)]!
    if (answer instanceof Error) throw answer
    return answer
  }
  return { handler, calls: () => calls }
}

const breakers: CircuitBreaker[] = []
function track<B extends CircuitBreaker>(b: B): B {
  breakers.push(b)
  return b
}

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  for (const b of breakers.splice(0)) b.shutdown()
  vi.useRealTimers()
})

describe('opossumStage', () => {
  it('a real opossum CircuitBreaker matches OpossumLike', () => {
    const breaker: OpossumLike = track(newBreaker())
    expect(breaker.halfOpen).toBe(false)
    expect(breaker.options?.resetTimeout).toBe(1000)
  })

  it('runs each attempt through the breaker and returns its response', async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker())
    const h = opossumStage<FakeReq, FakeRes>(breaker)(scripted(OK).handler)
    expect(await h(REQ, ctx)).toBe(OK)
    expect(await h(REQ, ctx)).toBe(OK)
    expect(breaker.stats).toMatchObject({ fires: 2, successes: 2, failures: 0 })
  })

  it('passes the attempt`s own errors through untouched, whatever their code', async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker({ volumeThreshold: 100 }))
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
    // Codes opossum uses for its own errors, here coming from the upstream (a nested breaker, a socket).
    const nestedOpen = Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' })
    const socketTimeout = Object.assign(new Error('connect ETIMEDOUT'), { code: 'ETIMEDOUT' })
    const h = opossumStage<FakeReq, FakeRes>(breaker)(scripted(reset, nestedOpen, socketTimeout).handler)
    await expect(h(REQ, ctx)).rejects.toBe(reset)
    await expect(h(REQ, ctx)).rejects.toBe(nestedOpen)
    await expect(h(REQ, ctx)).rejects.toBe(socketTimeout)
    expect(breaker.stats.failures).toBe(3)
  })

  it('fails fast with CIRCUIT_OPEN once opossum opens, without calling next', async () => {
    const clock = new ManualClock({ start: 500 })
    const ctx = Context.create({ clock, random: seededRandom(1), cancel: new Cancellation() })
    const breaker = track(newBreaker())
    const upstream = scripted(new Error('boom'))
    const h = opossumStage<FakeReq, FakeRes>(breaker, { service: 'users' })(upstream.handler)
    await expect(h(REQ, ctx)).rejects.toThrow('boom')
    await expect(h(REQ, ctx)).rejects.toThrow('boom')
    expect(breaker.opened).toBe(true)

    const error = await h(REQ, ctx).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CircuitOpenError)
    expect(error).toMatchObject({ code: 'CIRCUIT_OPEN', service: 'users', retryAt: 1500 })
    expect(upstream.calls()).toBe(2)
    // The classifiers treat it as meshlet's own open breaker: a failure, never retried.
    const req = { method: 'GET' } as HttpRequest
    expect(httpClassifier()(req, { ok: false, error })).toBe('failure')
  })

  it('counts responses judged failing by isFailure, and still returns them to the caller', async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker())
    const seen: unknown[] = []
    breaker.on('failure', (err) => seen.push(err))
    const upstream = scripted(UNAVAILABLE)
    const h = opossumStage<FakeReq, FakeRes>(breaker, { isFailure: (res) => res.status >= 500 })(
      upstream.handler,
    )
    expect(await h(REQ, ctx)).toBe(UNAVAILABLE)
    expect(await h(REQ, ctx)).toBe(UNAVAILABLE)
    expect(breaker.stats).toMatchObject({ successes: 0, failures: 2 })
    expect(seen[0]).toBeInstanceOf(FailingResponseError)
    expect((seen[0] as FailingResponseError).response).toBe(UNAVAILABLE)
    expect(breaker.opened).toBe(true)
    await expect(h(REQ, ctx)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN' })
    expect(upstream.calls()).toBe(2)
  })

  it('without isFailure a 5xx response is a success for opossum (its own rule)', async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker())
    const h = opossumStage<FakeReq, FakeRes>(breaker)(scripted(UNAVAILABLE).handler)
    for (let i = 0; i < 5; i++) expect(await h(REQ, ctx)).toBe(UNAVAILABLE)
    expect(breaker.stats).toMatchObject({ successes: 5, failures: 0 })
    expect(breaker.closed).toBe(true)
  })

  it('lets one probe through after resetTimeout (half-open), and a success closes it', async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker())
    const upstream = scripted(new Error('a'), new Error('b'), OK)
    const h = opossumStage<FakeReq, FakeRes>(breaker)(upstream.handler)
    await h(REQ, ctx).catch(() => {})
    await h(REQ, ctx).catch(() => {})
    expect(breaker.opened).toBe(true)
    await vi.advanceTimersByTimeAsync(999)
    await expect(h(REQ, ctx)).rejects.toBeInstanceOf(CircuitOpenError)
    await vi.advanceTimersByTimeAsync(1)
    expect(breaker.halfOpen).toBe(true)
    expect(await h(REQ, ctx)).toBe(OK)
    expect(breaker.closed).toBe(true)
    expect(upstream.calls()).toBe(3)
  })

  it('while the probe is out, other calls get CIRCUIT_OPEN with retryAt = now', async () => {
    const { clock, ctx } = fixture()
    const breaker = track(newBreaker())
    let release: (res: FakeRes) => void = () => {}
    const calls = scripted(new Error('a'), new Error('b'))
    const handler: Handler<FakeReq, FakeRes> = (req, c) =>
      calls.calls() < 2 ? calls.handler(req, c) : new Promise((resolve) => (release = resolve))
    const h = opossumStage<FakeReq, FakeRes>(breaker)(handler)
    await h(REQ, ctx).catch(() => {})
    await h(REQ, ctx).catch(() => {})
    await vi.advanceTimersByTimeAsync(1000)
    const probe = h(REQ, ctx)
    await expect(h(REQ, ctx)).rejects.toMatchObject({ code: 'CIRCUIT_OPEN', retryAt: clock.now() })
    release(OK)
    expect(await probe).toBe(OK)
    expect(breaker.closed).toBe(true)
  })

  it("maps opossum's own timeout to an attempt TimeoutError (it does not cancel the attempt)", async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker({ timeout: 50 }))
    let finished = false
    const slow: Handler<FakeReq, FakeRes> = () =>
      new Promise((resolve) =>
        setTimeout(() => {
          finished = true
          resolve(OK)
        }, 200),
      )
    const settled = opossumStage<FakeReq, FakeRes>(breaker, { service: 'users' })(slow)(REQ, ctx).catch(
      (e: unknown) => e,
    )
    await vi.advanceTimersByTimeAsync(50)
    const error = await settled
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'attempt', timeout: 50, service: 'users' })
    expect((error as Error).cause).toMatchObject({ code: 'ETIMEDOUT' })
    await vi.advanceTimersByTimeAsync(150)
    expect(finished).toBe(true)
  })

  it("maps opossum's capacity rejection to BULKHEAD_FULL", async () => {
    const { ctx } = fixture()
    const breaker = track(newBreaker({ capacity: 1, volumeThreshold: 100 }))
    let release: (res: FakeRes) => void = () => {}
    const h = opossumStage<FakeReq, FakeRes>(breaker)(() => new Promise((resolve) => (release = resolve)))
    const first = h(REQ, ctx)
    await expect(h(REQ, ctx)).rejects.toBeInstanceOf(BulkheadFullError)
    release(OK)
    expect(await first).toBe(OK)
  })

  it('refuses an answer that is not the attempt`s outcome (action not running it, fallback, cache)', async () => {
    const { ctx } = fixture()
    const wrongAction = track(new CircuitBreaker(async () => 'not a response', { timeout: false }))
    const h1 = opossumStage<FakeReq, FakeRes>(wrongAction)(scripted(OK).handler)
    await expect(h1(REQ, ctx)).rejects.toThrow(TypeError)

    const withFallback = track(newBreaker()).fallback(() => OK)
    const h2 = opossumStage<FakeReq, FakeRes>(withFallback)(scripted(new Error('x')).handler)
    await expect(h2(REQ, ctx)).rejects.toThrow(/without fallback/)

    const cached = track(newBreaker({ cache: true }))
    const h3 = opossumStage<FakeReq, FakeRes>(cached)(scripted(OK).handler)
    expect(await h3(REQ, ctx)).toBe(OK)
    await expect(h3(REQ, ctx)).rejects.toThrow(TypeError)
  })

  it('runs the TSDoc example', async () => {
    const fetch = vi.fn(async (_url: string) => new Response(null, { status: 503 }))
    // The example of opossumStage, with `fetch` stubbed.
    const breaker = track(
      new CircuitBreaker((run: () => Promise<unknown>) => run(), {
        timeout: false, // meshlet's deadline and attempt timeout own time
        resetTimeout: 5_000,
        errorThresholdPercentage: 50,
        volumeThreshold: 10,
      }),
    )
    const guarded = compose(
      opossumStage<string, Response>(breaker, { service: 'users', isFailure: (res) => res.status >= 500 }),
    )(async (url) => fetch(url))

    const { ctx } = fixture()
    for (let i = 0; i < 10; i++)
      expect((await guarded('http://users/x', ctx.withAttempt(i))).status).toBe(503)
    const error = await guarded('http://users/x', ctx.withAttempt(10)).catch((e: unknown) => e)
    expect(isMeshError(error, 'CIRCUIT_OPEN')).toBe(true)
    expect(fetch).toHaveBeenCalledTimes(10)
  })
})
