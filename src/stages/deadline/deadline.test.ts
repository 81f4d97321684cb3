import { describe, expect, it } from 'vitest'
import type { Context } from '../../core/context.js'
import { TimeoutError } from '../../core/errors.js'
import { chain } from '../../core/handler.js'
import { fixture } from '../test-kit.js'
import { timeout } from '../timeout/timeout.js'
import { deadline } from './deadline.js'
import { runWithDeadline } from './propagation.js'

/** A transport that records the deadline it sees and answers at once. */
function recorder() {
  const deadlines: number[] = []
  const handler = async (_req: unknown, ctx: Context) => {
    deadlines.push(ctx.deadline)
    return 'ok'
  }
  return { handler, deadlines }
}

describe('deadline', () => {
  it("marks its own timeout local (with local: true) only when it is the call's only deadline", async () => {
    const { clock, ctx } = fixture()
    const seen: [number, boolean][] = []
    const handler = async (_req: unknown, c: Context) => {
      seen.push([c.deadline, c.localDeadline])
      return 'ok'
    }
    const h = chain([deadline({ timeout: 500, local: true })], handler)
    await h({}, ctx)
    // An outer deadline (the caller's), later or earlier, and an inherited one are not local.
    await h({}, ctx.withDeadline(800))
    await h({}, ctx.withDeadline(200))
    await runWithDeadline(900, () => h({}, ctx), clock)
    // A retry's context keeps the mark.
    await h({}, ctx.withAttempt(1))
    expect(seen).toEqual([
      [500, true],
      [500, false],
      [200, false],
      [500, false],
      [500, true],
    ])
    // Without local: true nothing is marked.
    const plain = chain([deadline({ timeout: 500 })], handler)
    await plain({}, ctx)
    expect(seen.at(-1)).toEqual([500, false])
    // The mark survives the copies stages make.
    const local = ctx.withDeadline(100, true)
    expect(
      [local.withAttempt(2), local.restarted(), local.withCancel(local.cancel)].map((c) => c.localDeadline),
    ).toEqual([true, true, true])
  })

  it('sets the deadline timeout ms from when the call started, without reading the clock', async () => {
    const { clock, ctx } = fixture()
    await clock.advance(10)
    const { handler, deadlines } = recorder()
    const h = chain([deadline({ timeout: 500 })], handler)
    await h({}, ctx.restarted())
    expect(deadlines).toEqual([510])
    // The start is the context's: one read per call, by whoever started it (Mesh.invoke).
    await clock.advance(20)
    await h({}, ctx)
    expect(deadlines).toEqual([510, 500])
  })

  it('inherits an earlier deadline from the enclosing scope', async () => {
    const { clock, ctx } = fixture()
    const { handler, deadlines } = recorder()
    const h = chain([deadline({ timeout: 2000 })], handler)
    await runWithDeadline(300, () => h({}, ctx), clock)
    expect(deadlines).toEqual([300])
  })

  it('keeps its own timeout when it is shorter than the inherited one', async () => {
    const { clock, ctx } = fixture()
    const { handler, deadlines } = recorder()
    const h = chain([deadline({ timeout: 200 })], handler)
    await runWithDeadline(5000, () => h({}, ctx), clock)
    expect(deadlines).toEqual([200])
  })

  it('inherits even when its own timeout is disabled, and never extends an outer deadline', async () => {
    const { clock, ctx } = fixture()
    const { handler, deadlines } = recorder()
    await runWithDeadline(700, () => chain([deadline({ timeout: 0 })], handler)({}, ctx), clock)
    await runWithDeadline(
      700,
      () => chain([deadline({ timeout: 0 })], handler)({}, ctx.withDeadline(90)),
      clock,
    )
    await chain([deadline({ timeout: 0 })], handler)({}, ctx)
    expect(deadlines).toEqual([700, 90, Number.POSITIVE_INFINITY])
  })

  it('times the call out at the inherited deadline, and starts no attempt once it has passed', async () => {
    const { clock, ctx } = fixture()
    let started = 0
    const stalled = (_req: unknown, c: Context) => {
      started++
      return new Promise<never>((_, reject) => c.cancel.onAbort(reject))
    }
    const h = chain([deadline({ timeout: 30_000 }), timeout({ service: 'c' })], stalled)
    const settled = runWithDeadline(250, () => h({}, ctx), clock).catch((e: unknown) => e)
    await clock.advance(250)
    expect(await settled).toMatchObject({ code: 'TIMEOUT', scope: 'call', timeout: 250 })

    const late = runWithDeadline(0, () => h({}, ctx.restarted()), clock).catch((e: unknown) => e)
    expect(await late).toBeInstanceOf(TimeoutError)
    expect(started).toBe(1)
    expect(clock.pendingTimers).toBe(0)
  })
})
