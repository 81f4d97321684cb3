import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../testing/index.js'
import { type RedisClientLike, redisQuotaStore } from './redis-quota-store.js'

/** A connected client whose scripts never answer (a Redis that hangs), counting the calls. */
function hangingClient() {
  const calls = { gcra: 0 }
  const client = {
    status: 'ready',
    defineCommand() {},
    on() {},
    once() {},
    quit: async () => 'OK',
    disconnect() {},
    meshletGcra: () => {
      calls.gcra++
      return new Promise(() => {})
    },
  }
  return { client: client as unknown as RedisClientLike, calls }
}

const limit = { rate: 10, periodMs: 1000, burst: 1 }
const tick = () => new Promise((r) => setImmediate(r))

describe('redisQuotaStore when Redis hangs', () => {
  it("answers by the 'closed' policy at the timeout, then stops asking once its breaker opens, and probes again", async () => {
    const clock = new ManualClock()
    const { client, calls } = hangingClient()
    const store = redisQuotaStore({
      client,
      clock,
      timeout: 50,
      onFailure: 'closed',
      breaker: { failures: 2, halfOpenAfter: 200 },
    })
    for (let i = 0; i < 2; i++) {
      let answer: unknown
      void store.take('k', 1, limit).then((d) => {
        answer = d
      })
      await tick()
      await clock.advance(49)
      await tick()
      expect(answer).toBeUndefined()
      await clock.advance(1)
      await tick()
      expect(answer).toEqual({ allowed: false, retryAfterMs: i === 0 ? 1 : 200 })
    }
    expect(store.breakerOpen).toBe(true)
    // Open: answered at once, Redis not asked.
    expect(await store.take('k', 1, limit)).toEqual({ allowed: false, retryAfterMs: 200 })
    expect(calls.gcra).toBe(2)
    // After halfOpenAfter, one decision probes; the others still answer at once meanwhile.
    await clock.advance(200)
    void store.take('k', 1, limit)
    await tick()
    expect(calls.gcra).toBe(3)
    expect((await store.take('k', 1, limit)).allowed).toBe(false)
    expect(calls.gcra).toBe(3)
    await store.close()
  })

  it("admits with the 'open' policy, and a pause holds in process even when Redis cannot take it", async () => {
    const clock = new ManualClock()
    const { client } = hangingClient()
    const store = redisQuotaStore({ client, clock, timeout: 10, onFailure: 'open', breaker: { failures: 1 } })
    const pending = store.take('k', 1, limit)
    await tick()
    await clock.advance(10)
    await tick()
    expect(await pending).toEqual({ allowed: true, retryAfterMs: 0 })
    await store.pause('k', 1000)
    expect(await store.take('k', 1, limit)).toEqual({ allowed: false, retryAfterMs: 1000 })
    await clock.advance(1000)
    // The pause is over: this decision probes the hanging Redis and is admitted by policy.
    const after = store.take('k', 1, limit)
    await tick()
    await clock.advance(10)
    await tick()
    expect(await after).toEqual({ allowed: true, retryAfterMs: 0 })
    await store.close()
  })
})
