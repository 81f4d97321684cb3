import Bottleneck from 'bottleneck'
import { describe, expect, it } from 'vitest'
import { bottleneckStore } from './bottleneck-store.js'

const limit = { rate: 2, periodMs: 60_000, burst: 2 }

describe('bottleneckStore', () => {
  it("decides with the user's limiter: admits while its reservoir lasts, refuses at once after", async () => {
    const limiter = new Bottleneck({ reservoir: 2, highWater: 0, strategy: Bottleneck.strategy.OVERFLOW })
    const store = bottleneckStore(limiter, { retryAfterMs: 250 })
    expect(await store.take('k', 1, limit)).toEqual({ allowed: true, retryAfterMs: 0 })
    expect(await store.take('k', 1, limit)).toEqual({ allowed: true, retryAfterMs: 0 })
    expect(await store.take('k', 1, limit)).toEqual({ allowed: false, retryAfterMs: 250 })
    expect(limiter.counts().QUEUED).toBe(0)
    await store.close()
  })

  it('takes a weight of the cost, picks one limiter per key from a group, and pauses in process', async () => {
    const group = new Bottleneck.Group({ reservoir: 3, highWater: 0, strategy: Bottleneck.strategy.OVERFLOW })
    const store = bottleneckStore(group)
    expect((await store.take('a', 3, limit)).allowed).toBe(true)
    expect((await store.take('a', 1, limit)).allowed).toBe(false)
    expect((await store.take('b', 1, limit)).allowed).toBe(true)
    await store.pause('b', 60_000)
    const paused = await store.take('b', 1, limit)
    expect(paused.allowed).toBe(false)
    expect(paused.retryAfterMs).toBeGreaterThan(59_000)
    await store.close()
  })
})
