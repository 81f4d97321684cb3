import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { Events } from '../../core/events.js'
import { chain } from '../../core/handler.js'
import { classifyFake, type FakeReq, type FakeRes, fakeProtocol, fixture } from '../test-kit.js'
import { ratioBudget } from './budget.js'
import { hedge } from './hedge.js'
import { LatencyHistogram } from './latency-histogram.js'

const req: FakeReq = { replayable: true }
const always = () => true

/** A transport whose n-th attempt answers `plan[n]` after its delay; records cancellations. */
function planned(plan: Array<{ after: number; status: number } | 'hang'>) {
  const started: number[] = []
  const cancelled: number[] = []
  const handler = (_r: FakeReq, ctx: Context) => {
    const n = started.length
    started.push(ctx.clock.now())
    const step = plan[n] ?? 'hang'
    return new Promise<FakeRes>((resolve, reject) => {
      const timer =
        step === 'hang' ? undefined : ctx.clock.setTimer(() => resolve({ status: step.status }), step.after)
      ctx.cancel.onAbort((reason) => {
        if (timer !== undefined) ctx.clock.clearTimer(timer)
        cancelled.push(n)
        reject(reason)
      })
    })
  }
  return { handler, started, cancelled }
}

describe('hedge', () => {
  it('sends a backup after the delay; the first answer wins and the loser is cancelled', async () => {
    const { clock, ctx } = fixture()
    const t = planned([
      { after: 1000, status: 200 },
      { after: 20, status: 201 },
    ])
    const h = chain(
      [hedge({ delay: 50, idempotent: always, classify: classifyFake, protocol: fakeProtocol })],
      t.handler,
    )
    const p = h(req, ctx)
    await clock.advance(100)
    expect(await p).toEqual({ status: 201 })
    expect(t.started).toEqual([0, 50])
    expect(t.cancelled).toEqual([0])
    expect(clock.pendingTimers).toBe(0)
  })

  it('sends no backup when the first attempt answers in time', async () => {
    const { clock, ctx } = fixture()
    const t = planned([{ after: 10, status: 200 }])
    const h = chain(
      [hedge({ delay: 50, idempotent: always, classify: classifyFake, protocol: fakeProtocol })],
      t.handler,
    )
    const p = h(req, ctx)
    await clock.advance(100)
    expect(await p).toEqual({ status: 200 })
    expect(t.started).toEqual([0])
    expect(clock.pendingTimers).toBe(0)
  })

  it('hedges at once after a retryable failure (non-fatal), and settles on a fatal one', async () => {
    const { clock, ctx } = fixture()
    const t = planned([
      { after: 5, status: 503 },
      { after: 5, status: 200 },
    ])
    const h = chain(
      [
        hedge({
          delay: 50,
          maxAttempts: 3,
          idempotent: always,
          classify: classifyFake,
          protocol: fakeProtocol,
        }),
      ],
      t.handler,
    )
    const p = h(req, ctx)
    await clock.advance(100)
    expect(await p).toEqual({ status: 200 })
    expect(t.started).toEqual([0, 5])
  })

  it('never hedges a request that is not idempotent or cannot be replayed', async () => {
    for (const [idempotent, r] of [
      [() => false, req],
      [always, { replayable: false }],
    ] as const) {
      const { clock, ctx } = fixture()
      const t = planned([{ after: 500, status: 200 }])
      const h = chain(
        [hedge({ delay: 50, idempotent, classify: classifyFake, protocol: fakeProtocol })],
        t.handler,
      )
      const p = h(r, ctx)
      await clock.advance(600)
      expect(await p).toEqual({ status: 200 })
      expect(t.started).toEqual([0])
    }
  })

  it('spends the retry budget, and reports a refused hedge', async () => {
    const { clock, ctx } = fixture()
    const budget = ratioBudget({ ratio: 0, minPerSecond: 0, ttl: 1000 })
    const events = new Events()
    const refused: string[] = []
    events.on('retry-budget-exhausted', (e) => refused.push(e.kind))
    const t = planned([{ after: 500, status: 200 }])
    const h = chain(
      [
        hedge({
          delay: 50,
          idempotent: always,
          classify: classifyFake,
          protocol: fakeProtocol,
          budget,
          events,
        }),
      ],
      t.handler,
    )
    const p = h(req, ctx)
    await clock.advance(600)
    expect(await p).toEqual({ status: 200 })
    expect(t.started).toEqual([0])
    expect(refused).toEqual(['hedge'])
  })

  it('waits for a percentile of recent latency, and not before the histogram has samples', async () => {
    const latency = new LatencyHistogram({ minSamples: 10, refresh: 0 })
    const { clock, ctx } = fixture()
    const run = async (plan: Array<{ after: number; status: number }>) => {
      const t = planned(plan)
      const h = chain(
        [
          hedge({
            percentile: 90,
            latency,
            idempotent: always,
            classify: classifyFake,
            protocol: fakeProtocol,
          }),
        ],
        t.handler,
      )
      const p = h(req, ctx)
      await clock.advance(2000)
      await p
      return t.started.map((s) => s - t.started[0]!)
    }
    // Cold: no hedge even for a slow call; the call's latency is recorded.
    expect(await run([{ after: 1000, status: 200 }])).toEqual([0])
    for (let i = 0; i < 20; i++) await run([{ after: 10, status: 200 }])
    // Warm: p90 of ~10 ms (and one 1000 ms) is about 10 ms: the slow call is hedged then.
    const started = await run([
      { after: 1000, status: 200 },
      { after: 10, status: 200 },
    ])
    expect(started).toHaveLength(2)
    expect(started[1]).toBeGreaterThanOrEqual(10)
    expect(started[1]).toBeLessThanOrEqual(11)
  })

  it('never starts a hedge past the deadline', async () => {
    const { clock, ctx } = fixture()
    const t = planned(['hang', 'hang'])
    const h = chain(
      [hedge({ delay: 50, idempotent: always, classify: classifyFake, protocol: fakeProtocol })],
      t.handler,
    )
    const call = h(req, ctx.withDeadline(40)).catch((e: unknown) => e)
    await clock.advance(100)
    expect(t.started).toEqual([0])
    ctx.cancel.abort(new Error('stop'))
    expect(await call).toMatchObject({ message: 'stop' })
  })
})
