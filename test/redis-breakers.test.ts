/**
 * Fleet-wide breaker state on a real redis-server (issue 25, acceptance 4). Each SharedBreakers
 * has its own two connections, as a process would; the breakers use real time, as the test
 * measures pub/sub latency.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type SharedBreakers, sharedBreakers } from '../src/adapters/redis/shared-breakers.js'
import { CircuitBreaker, Permit } from '../src/stages/circuit-breaker/breaker.js'
import { RedisServer } from './helpers/redis.js'

let redis: RedisServer
const open: SharedBreakers[] = []
beforeAll(async () => {
  redis = await RedisServer.start()
})
afterAll(async () => {
  for (const s of open) await s.close()
  await redis?.stop()
})

async function process(quorum: number, dest: string): Promise<CircuitBreaker> {
  const shared = sharedBreakers({ url: redis.url, quorum })
  open.push(shared)
  const breaker = new CircuitBreaker({ consecutiveFailures: 2, halfOpenAfter: 5000 })
  shared.attach(dest, breaker)
  await shared.ready()
  return breaker
}

function fail(breaker: CircuitBreaker): void {
  for (let i = 0; i < 2; i++)
    breaker.record(breaker.tryAcquire(performance.now()), 'failure', 1, performance.now())
}

async function until(check: () => boolean, ms: number): Promise<number> {
  const start = Date.now()
  while (!check() && Date.now() - start < ms) await new Promise((r) => setTimeout(r, 2))
  return Date.now() - start
}

describe('fleet-wide breaker state', () => {
  it("opens another process's breaker of the same destination within 100 ms, and closes it with the probe", async () => {
    const a = await process(1, 'partner')
    const b = await process(1, 'partner')
    const other = await process(1, 'elsewhere')
    fail(a)
    expect(a.state.kind).toBe('open')
    const took = await until(() => b.state.kind === 'open', 1000)
    expect(b.state.kind).toBe('open')
    expect(took).toBeLessThan(100)
    expect(b.tryAcquire(performance.now())).toBe(Permit.Denied)
    // One prober for the fleet: the process that opened first probes; the other stays open a
    // probe window (1 s) longer, and the lease key names the prober.
    const untilOf = (x: CircuitBreaker) => (x.state.kind === 'open' ? x.state.until : 0)
    expect(untilOf(b) - untilOf(a)).toBeGreaterThan(900)
    const { Redis } = await import('ioredis')
    const client = new Redis(redis.url)
    expect(await client.pttl('meshlet:probe:{partner}')).toBeGreaterThan(5000)
    client.disconnect()
    expect(other.state.kind).toBe('closed')
    // The prober's success closes the fleet.
    a.reset()
    await until(() => b.state.kind === 'closed', 1000)
    expect(b.state.kind).toBe('closed')
  })

  it('with quorum 2, one process alone does not open the others; a second one does', async () => {
    const a = await process(2, 'q2')
    const b = await process(2, 'q2')
    const c = await process(2, 'q2')
    fail(a)
    await until(() => c.state.kind !== 'closed', 300)
    expect(c.state.kind).toBe('closed')
    expect(b.state.kind).toBe('closed')
    fail(b)
    const took = await until(() => c.state.kind === 'open', 1000)
    expect(c.state.kind).toBe('open')
    expect(took).toBeLessThan(100)
  })

  it('leaves decisions local when Redis is unreachable', async () => {
    const shared = sharedBreakers({ url: 'redis://127.0.0.1:1' })
    const breaker = new CircuitBreaker({ consecutiveFailures: 2 })
    shared.attach('down', breaker)
    fail(breaker)
    expect(breaker.state.kind).toBe('open')
    breaker.reset()
    expect(breaker.state.kind).toBe('closed')
    await shared.close()
  })
})
