import { describe, expect, it } from 'vitest'
import { CallCancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { TimeoutError } from '../../core/errors.js'
import { Events } from '../../core/events.js'
import { chain, settlesOnCancel } from '../../core/handler.js'
import { seededRandom } from '../../core/random.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { deadline } from '../deadline/deadline.js'
import { fixture } from '../test-kit.js'
import { timeout } from './timeout.js'

/** A transport that never answers but records when it is cancelled. */
function stalled() {
  const cancelledAt: number[] = []
  const handler = (_req: unknown, ctx: Context) =>
    new Promise<never>((_, reject) => {
      ctx.cancel.onAbort((reason) => {
        cancelledAt.push(ctx.clock.now())
        reject(reason)
      })
    })
  return { handler, cancelledAt }
}

describe('timeout around a transport that settles on cancel (one promise per attempt)', () => {
  it('rejects with TIMEOUT through the transport, scope call or attempt, and leaves nothing behind', async () => {
    for (const [perTryTimeout, scope, at] of [
      [0, 'call', 2000],
      [300, 'attempt', 300],
    ] as const) {
      const { clock, ctx, cancel } = fixture()
      const { handler, cancelledAt } = stalled()
      const timeouts: unknown[] = []
      const events = new Events()
      events.on('timeout', (e) => timeouts.push(e))
      const h = chain(
        [deadline({ timeout: 2000 }), timeout({ perTryTimeout, service: 'users', events })],
        settlesOnCancel(handler),
      )
      const settled = h({}, ctx).catch((e: unknown) => e)
      await clock.advance(at - 1)
      expect(cancelledAt).toEqual([])
      await clock.advance(1)
      const error = await settled
      expect(error).toBeInstanceOf(TimeoutError)
      expect(error).toMatchObject({ code: 'TIMEOUT', scope, service: 'users' })
      expect(cancelledAt).toEqual([at])
      expect(timeouts).toEqual([{ service: 'users', scope, timeout: at }])
      expect(clock.pendingTimers).toBe(0)
      expect(cancel.listenerCount).toBe(0)
      // A per-try limit cancels the attempt only; the call's deadline cancels the call.
      expect(cancel.aborted).toBe(scope === 'call')
    }
  })

  it('answers in time: clears its timer, releases its token, and an answer that lost the race is a TIMEOUT', async () => {
    const { clock, ctx, cancel } = fixture()
    const h = chain(
      [timeout({ perTryTimeout: 100 })],
      settlesOnCancel(async () => 'ok'),
    )
    expect(await h({}, ctx)).toBe('ok')
    expect(clock.pendingTimers).toBe(0)
    expect(cancel.listenerCount).toBe(0)
    // A transport that answers after the expiry (it had its answer before it saw the abort).
    let answer: (v: string) => void = () => {}
    const late = chain(
      [timeout({ perTryTimeout: 100 })],
      settlesOnCancel(() => new Promise<string>((resolve) => (answer = resolve))),
    )
    let outcome: unknown
    late({}, ctx.restarted()).then(
      (v) => (outcome = v),
      (e: unknown) => (outcome = e),
    )
    await clock.advance(100)
    // Through the transport's own promise: no promise of the stage's own rejects first (the
    // general stage would have rejected at the expiry already).
    expect(outcome).toBeUndefined()
    answer('too late')
    await clock.flush()
    expect(outcome).toMatchObject({ code: 'TIMEOUT', scope: 'attempt' })
  })
})

describe('timeout and deadline', () => {
  it('rejects a stalled call with TIMEOUT (scope call) at the deadline and cancels the attempt', async () => {
    const { clock, ctx } = fixture()
    const { handler, cancelledAt } = stalled()
    const h = chain([deadline({ timeout: 2000 }), timeout({ service: 'users' })], handler)
    const p = h({}, ctx)
    const settled = p.catch((e: unknown) => e)
    await clock.advance(1999)
    expect(cancelledAt).toEqual([])
    await clock.advance(1)
    const error = await settled
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ code: 'TIMEOUT', scope: 'call', service: 'users' })
    expect(cancelledAt).toEqual([2000])
    expect(clock.pendingTimers).toBe(0)
  })

  it('uses the per-try limit when it is earlier than the deadline (scope attempt)', async () => {
    const { clock, ctx } = fixture()
    const { handler } = stalled()
    const h = chain([deadline({ timeout: 2000 }), timeout({ perTryTimeout: 300 })], handler)
    const settled = h({}, ctx).catch((e: unknown) => e)
    await clock.advance(300)
    expect(await settled).toMatchObject({ code: 'TIMEOUT', scope: 'attempt', timeout: 300 })
  })

  it('cuts the per-try limit to what is left of the deadline', async () => {
    const { clock, ctx } = fixture()
    const { handler } = stalled()
    const h = chain([timeout({ perTryTimeout: 300 })], handler)
    const settled = h({}, ctx.withDeadline(120)).catch((e: unknown) => e)
    await clock.advance(120)
    expect(await settled).toMatchObject({ code: 'TIMEOUT', scope: 'call' })
  })

  it('never starts an attempt past the deadline', async () => {
    const { clock, ctx } = fixture()
    let started = false
    const h = chain([timeout({})], async () => {
      started = true
      return 1
    })
    await clock.advance(50)
    await expect(h({}, ctx.withDeadline(50).restarted())).rejects.toMatchObject({ code: 'TIMEOUT' })
    expect(started).toBe(false)
  })

  it('clears its timer and releases its cancellation when the attempt answers in time', async () => {
    const { clock, ctx, cancel } = fixture()
    const h = chain([deadline({ timeout: 1000 }), timeout({})], async () => 'ok')
    expect(await h({}, ctx)).toBe('ok')
    expect(clock.pendingTimers).toBe(0)
    expect(cancel.listenerCount).toBe(0)
  })

  it('arms no timer when there is neither deadline nor per-try limit', async () => {
    const { clock, ctx } = fixture()
    let pendingDuringCall = -1
    const h = chain([deadline({ timeout: 0 }), timeout({})], async () => {
      pendingDuringCall = clock.pendingTimers
      return 1
    })
    await h({}, ctx)
    expect(pendingDuringCall).toBe(0)
  })

  it('keeps an earlier outer deadline', async () => {
    const { ctx } = fixture()
    let seen = 0
    const h = chain([deadline({ timeout: 5000 })], async (_r: unknown, c: Context) => {
      seen = c.deadline
      return 1
    })
    await h({}, ctx.withDeadline(100))
    expect(seen).toBe(100)
  })
})

describe('timeout on a call token (CallCancellation, D28)', () => {
  /** A call token as Mesh.invoke makes one, its context, and a transport that answers on demand. */
  function call() {
    const clock = new ManualClock()
    const token = new CallCancellation()
    const ctx = Context.create({ clock, random: seededRandom(1), cancel: token })
    return { clock, token, ctx }
  }

  it('arms one timer for the whole call, shared by its retries, cleared by finish()', async () => {
    const { clock, token, ctx } = call()
    const attempts: Context[] = []
    const h = chain(
      [deadline({ timeout: 1000 }), timeout({})],
      settlesOnCancel(async (_req: unknown, c: Context) => {
        attempts.push(c)
        return 'ok'
      }),
    )
    expect(await h({}, ctx)).toBe('ok')
    expect(token.timerAt).toBe(1000)
    expect(clock.pendingTimers).toBe(1)
    // A retry of the same call: same instant, no second timer.
    expect(await h({}, ctx.withAttempt(1))).toBe('ok')
    expect(clock.pendingTimers).toBe(1)
    expect(attempts.map((c) => c.cancel)).toEqual([token, token])
    token.finish()
    expect(clock.pendingTimers).toBe(0)
    expect(Number.isNaN(token.timerAt)).toBe(true)
  })

  it('at the deadline aborts the call token with TIMEOUT (scope call), which the transport rejects with, once', async () => {
    const { clock, token, ctx } = call()
    const { handler, cancelledAt } = stalled()
    const timeouts: unknown[] = []
    const events = new Events()
    events.on('timeout', (e) => timeouts.push(e))
    const h = chain(
      [deadline({ timeout: 500 }), timeout({ service: 'users', events })],
      settlesOnCancel(handler),
    )
    const settled = h({}, ctx).catch((e: unknown) => e)
    await clock.advance(499)
    expect(cancelledAt).toEqual([])
    await clock.advance(1)
    const error = await settled
    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toMatchObject({ scope: 'call', timeout: 500 })
    expect(token.aborted).toBe(true)
    expect(cancelledAt).toEqual([500])
    expect(timeouts).toEqual([{ service: 'users', scope: 'call', timeout: 500 }])
    // A later attempt of the expired call fails at once with the call's own error.
    await expect(h({}, ctx.withAttempt(1))).rejects.toBe(error)
    expect(timeouts).toHaveLength(1)
    token.finish()
    expect(clock.pendingTimers).toBe(0)
  })

  it('times an attempt itself when the call token holds a timer for another instant, and per-try limits always', async () => {
    const { clock, token, ctx } = call()
    const h = chain(
      [timeout({ perTryTimeout: 200 })],
      settlesOnCancel(async () => 'ok'),
    )
    // A per-try limit is the attempt's: nothing is left on the call token.
    expect(await h({}, ctx.withDeadline(1000))).toBe('ok')
    expect(Number.isNaN(token.timerAt)).toBe(true)
    const callBound = chain(
      [timeout({})],
      settlesOnCancel(async () => 'ok'),
    )
    expect(await callBound({}, ctx.withDeadline(1000))).toBe('ok')
    expect(token.timerAt).toBe(1000)
    // Another deadline within the same call: this attempt arms and clears its own timer.
    expect(await callBound({}, ctx.withDeadline(800))).toBe('ok')
    expect(token.timerAt).toBe(1000)
    expect(clock.pendingTimers).toBe(1)
    token.finish()
    expect(clock.pendingTimers).toBe(0)
  })
})
