import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { Events } from '../../core/events.js'
import { chain } from '../../core/handler.js'
import { classifyFake, type FakeReq, type FakeRes, fakeProtocol, fixture } from '../test-kit.js'
import { constantBackoff } from './backoff.js'
import { retry } from './retry.js'

const replayable: FakeReq = { replayable: true }

function scripted(statuses: Array<number | Error>) {
  const seen: Array<{ at: number; attempt: number }> = []
  const starts: number[] = []
  const handler = async (_req: FakeReq, ctx: Context): Promise<FakeRes> => {
    seen.push({ at: ctx.clock.now(), attempt: ctx.attempt })
    starts.push(ctx.startedAt)
    const next = statuses.shift() ?? 200
    if (next instanceof Error) throw next
    return { status: next }
  }
  return { handler, seen, starts }
}

describe('retry', () => {
  it('retries retryable outcomes after the backoff, with a new context per attempt', async () => {
    const { clock, ctx } = fixture()
    const { handler, seen, starts } = scripted([503, new Error('reset'), 200])
    const h = chain(
      [retry({ attempts: 3, backoff: constantBackoff(100), classify: classifyFake, protocol: fakeProtocol })],
      handler,
    )
    const p = h(replayable, ctx)
    await clock.advance(1000)
    expect(await p).toEqual({ status: 200 })
    expect(seen).toEqual([
      { at: 0, attempt: 0 },
      { at: 100, attempt: 1 },
      { at: 200, attempt: 2 },
    ])
    // Each attempt starts after its backoff: the attempt timeout inside times it from there.
    expect(starts).toEqual([0, 100, 200])
  })

  it('returns the last outcome when attempts run out, and discards only the responses it drops', async () => {
    const { clock, ctx } = fixture()
    fakeProtocol.discarded.length = 0
    const { handler, seen } = scripted([500, 501, 502])
    const h = chain(
      [retry({ attempts: 3, backoff: constantBackoff(10), classify: classifyFake, protocol: fakeProtocol })],
      handler,
    )
    const p = h(replayable, ctx)
    await clock.advance(100)
    expect(await p).toEqual({ status: 502 })
    expect(seen).toHaveLength(3)
    expect(fakeProtocol.discarded).toEqual([{ status: 500 }, { status: 501 }])
  })

  it('never retries a request that cannot be replayed', async () => {
    const { clock, ctx } = fixture()
    const { handler, seen } = scripted([503])
    const h = chain([retry({ attempts: 3, classify: classifyFake, protocol: fakeProtocol })], handler)
    const p = h({ replayable: false }, ctx)
    await clock.advance(100)
    expect(await p).toEqual({ status: 503 })
    expect(seen).toHaveLength(1)
  })

  it('waits for the server pushback instead of the backoff, bounded by the deadline not by max', async () => {
    const { clock, ctx } = fixture()
    const seen: number[] = []
    const statuses: FakeRes[] = [{ status: 503, retryAfter: 2000 }, { status: 200 }]
    const h = chain(
      [retry({ attempts: 3, backoff: constantBackoff(1), classify: classifyFake, protocol: fakeProtocol })],
      async (_req: FakeReq, c: Context) => {
        seen.push(c.clock.now())
        return statuses.shift()!
      },
    )
    const p = h(replayable, ctx.withDeadline(5000))
    await clock.advance(5000)
    expect(await p).toEqual({ status: 200 })
    expect(seen).toEqual([0, 2000])
  })

  it('does not retry when the wait would end past the deadline, returning the outcome at once', async () => {
    const { clock, ctx } = fixture()
    const { handler, seen } = scripted([503])
    const h = chain(
      [retry({ attempts: 3, backoff: constantBackoff(500), classify: classifyFake, protocol: fakeProtocol })],
      handler,
    )
    const p = h(replayable, ctx.withDeadline(400))
    await clock.flush()
    expect(await p).toEqual({ status: 503 })
    expect(clock.now()).toBe(0)
    expect(seen).toHaveLength(1)
  })

  it('stops when the server pushes back with a negative delay', async () => {
    const { clock, ctx } = fixture()
    const h = chain(
      [retry({ attempts: 3, classify: classifyFake, protocol: fakeProtocol })],
      async (): Promise<FakeRes> => ({ status: 503, retryAfter: -1 }),
    )
    const p = h(replayable, ctx)
    await clock.flush()
    expect(await p).toEqual({ status: 503, retryAfter: -1 })
  })

  it('stops sleeping and rejects when the call is cancelled during the backoff', async () => {
    const { clock, ctx, cancel } = fixture()
    const { handler, seen } = scripted([503])
    const h = chain(
      [
        retry({
          attempts: 3,
          backoff: constantBackoff(1000),
          classify: classifyFake,
          protocol: fakeProtocol,
        }),
      ],
      handler,
    )
    const p = h(replayable, ctx)
    await clock.advance(10)
    cancel.abort(new Error('caller gave up'))
    await expect(p).rejects.toThrow('caller gave up')
    expect(clock.pendingTimers).toBe(0)
    expect(seen).toHaveLength(1)
  })

  it('emits a retry event only when someone listens', async () => {
    const { clock, ctx } = fixture()
    const events = new Events()
    const got: number[] = []
    events.on('retry', (e) => got.push(e.delay))
    const { handler } = scripted([503, 200])
    const h = chain(
      [
        retry({
          attempts: 2,
          backoff: constantBackoff(5),
          classify: classifyFake,
          protocol: fakeProtocol,
          events,
        }),
      ],
      handler,
    )
    const p = h(replayable, ctx)
    await clock.advance(10)
    await p
    expect(got).toEqual([5])
  })
})

describe('each backoff on the manual clock', () => {
  it('attempts start exactly at the cumulative delays of the backoff sequence', async () => {
    const { seededRandom } = await import('../../core/random.js')
    const { decorrelatedJitterBackoff, exponentialBackoff } = await import('./backoff.js')
    const kinds = {
      constant: constantBackoff(40),
      exponential: exponentialBackoff({ base: 10, max: 1000, jitter: 'full' }),
      equal: exponentialBackoff({ base: 10, max: 1000, jitter: 'equal' }),
      none: exponentialBackoff({ base: 10, max: 1000, jitter: 'none' }),
      decorrelated: decorrelatedJitterBackoff({ base: 10, max: 1000 }),
    }
    for (const [name, backoff] of Object.entries(kinds)) {
      // The expected schedule: the same backoff stepped with the same seeded random stream.
      const r = seededRandom(9)
      let b = backoff
      const expected = [0]
      for (let i = 0; i < 4; i++) {
        b = b.next(r)
        expected.push(expected[expected.length - 1]! + b.duration)
      }
      const { clock, ctx } = fixture(9)
      const { handler, seen } = scripted([503, 503, 503, 503, 200])
      const h = chain(
        [retry({ attempts: 5, backoff, classify: classifyFake, protocol: fakeProtocol })],
        handler,
      )
      const p = h(replayable, ctx)
      await clock.advance(10_000)
      expect(await p, name).toEqual({ status: 200 })
      expect(
        seen.map((s) => s.at),
        name,
      ).toEqual(expected)
    }
  })
})
