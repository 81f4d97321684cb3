/**
 * The global quota on a real redis-server (issue 25, acceptance 1 to 3): four processes sharing
 * one limit admit exactly the limit plus the burst, with and without lease mode; a Redis killed
 * mid-run answers by policy within the timeout and is exact again within 1 s of returning; a
 * pause taken by one process holds for the others. Real time, since the clock that decides is
 * Redis's; every bound asserted has room for a loaded machine but none for a wrong algorithm.
 * The full 10 s run: QUOTA_DURATION_MS=10000 npx vitest run test/redis-quota.test.ts
 */

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisQuotaStore } from '../src/adapters/redis/redis-quota-store.js'
import { RedisServer } from './helpers/redis.js'

const DURATION = Number(process.env.QUOTA_DURATION_MS ?? 3000)
const RATE = 500
const BURST = 50
const WORKER = fileURLToPath(new URL('./fixtures/quota-worker.ts', import.meta.url))

let redis: RedisServer
beforeAll(async () => {
  redis = await RedisServer.start()
})
afterAll(async () => {
  await redis?.stop()
})

interface WorkerResult {
  admitted: number
  refused: number
  maxLatency: number
  slots: number[]
}

function worker(job: object): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString()
    })
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${err}`))
      resolve(JSON.parse(out.trim()) as WorkerResult)
    })
  })
}

async function fleet(key: string, extra: object = {}): Promise<WorkerResult[]> {
  const results = await runFleet(key, extra)
  if (process.env.QUOTA_REPORT) {
    const admitted = results.map((r) => r.admitted)
    const sum = admitted.reduce((a, b) => a + b, 0)
    console.log(
      `${key}: ${DURATION} ms, exact ${exact}, admitted ${sum} (${admitted.join(' + ')}), max decision ${Math.max(...results.map((r) => r.maxLatency))} ms`,
    )
  }
  return results
}

async function runFleet(key: string, extra: object): Promise<WorkerResult[]> {
  // Processes start together after their start-up (tsx), whatever the machine's speed.
  const startAt = Date.now() + 3000
  const job = {
    url: redis.url,
    key,
    startAt,
    durationMs: DURATION,
    concurrency: 64,
    rate: RATE,
    periodMs: 1000,
    burst: BURST,
    // A decision Redis could not answer in time refuses: it can only lower the count. The
    // timeout is long so that a loaded machine (other test files beside this one) does not turn
    // late answers into refusals whose tokens Redis has already spent, which only this test's
    // lower bound would notice; the kill test sets its own.
    onFailure: 'closed',
    timeout: 1000,
    ...extra,
  }
  return Promise.all([worker(job), worker(job), worker(job), worker(job)])
}

const exact = (RATE * DURATION) / 1000 + BURST

describe('a global quota shared by four processes of 64 callers each', () => {
  it('admits the rate times the duration plus the burst, within 1% and never more', async () => {
    const results = await fleet('exact')
    const admitted = results.reduce((n, r) => n + r.admitted, 0)
    // +1: the last decision may land on Redis's clock a fraction of a token after the end.
    expect(admitted).toBeLessThanOrEqual(exact + 1)
    expect(admitted).toBeGreaterThanOrEqual(exact - (RATE * DURATION) / 1000 / 100)
    for (const r of results) expect(r.admitted).toBeGreaterThan(0)
  }, 30_000)

  it('in lease mode stays within its bound: never more from a fresh key, at most P x (N - 1) fewer', async () => {
    const lease = 10
    const results = await fleet('leased', { lease })
    const admitted = results.reduce((n, r) => n + r.admitted, 0)
    expect(admitted).toBeLessThanOrEqual(exact + 1)
    expect(admitted).toBeGreaterThanOrEqual(exact - (RATE * DURATION) / 1000 / 100 - 4 * (lease - 1))
  }, 30_000)
})

describe('a Redis that goes away', () => {
  it('answers by policy within the timeout and is exact again within 1 s of returning', async () => {
    const timeout = 50
    const store = redisQuotaStore({ url: redis.url, timeout, onFailure: 'closed' })
    await store.ready()
    const limit = { rate: 200, periodMs: 1000, burst: 10 }
    const log: Array<{ at: number; allowed: boolean; took: number }> = []
    const start = Date.now()
    const end = start + 3000
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
    const caller = async () => {
      while (Date.now() < end) {
        const at = Date.now()
        const d = await store.take('outage', 1, limit)
        log.push({ at, allowed: d.allowed, took: Date.now() - at })
        if (!d.allowed) await sleep(Math.min(d.retryAfterMs, 20))
        else await new Promise((r) => setImmediate(r))
      }
    }
    const callers = Promise.all(Array.from({ length: 16 }, caller))
    await sleep(800)
    await redis.stop()
    const stopped = Date.now()
    await sleep(700)
    await redis.restart()
    const back = Date.now()
    await callers
    await store.close()

    // No decision waited past the timeout (plus a loaded event loop's lateness).
    expect(Math.max(...log.map((e) => e.took))).toBeLessThan(timeout + 150)
    // Closed policy: nothing admitted while Redis was down (after the replies in flight).
    const during = log.filter((e) => e.at > stopped + 20 && e.at < back && e.allowed)
    expect(during).toHaveLength(0)
    // From 1 s after Redis returned: Redis decides again (calls admitted) and exactly (the state
    // was lost with the restart, so one burst on top of the rate).
    const after = log.filter((e) => e.at >= back + 1000 && e.at < end && e.allowed).length
    const span = (end - (back + 1000)) / 1000
    expect(after).toBeGreaterThan(0)
    expect(after).toBeLessThanOrEqual(Math.ceil(limit.rate * span + limit.burst) + 1)
    expect(after).toBeGreaterThanOrEqual(Math.floor(limit.rate * span * 0.8))
  }, 20_000)

  it("with the 'open' policy admits within the timeout while Redis is down", async () => {
    const spare = await RedisServer.start()
    const store = redisQuotaStore({ url: spare.url, timeout: 30, onFailure: 'open' })
    await store.ready()
    const limit = { rate: 1, periodMs: 1000, burst: 1 }
    expect((await store.take('k', 1, limit)).allowed).toBe(true)
    expect((await store.take('k', 1, limit)).allowed).toBe(false)
    await spare.stop()
    const at = Date.now()
    expect(await store.take('k', 1, limit)).toEqual({ allowed: true, retryAfterMs: 0 })
    expect(Date.now() - at).toBeLessThan(30 + 150)
    await store.close()
  })
})

describe('a global pause', () => {
  it('pauses the key for every process sharing it, for the time asked', async () => {
    const a = redisQuotaStore({ url: redis.url })
    const b = redisQuotaStore({ url: redis.url })
    await Promise.all([a.ready(), b.ready()])
    const limit = { rate: 1000, periodMs: 1000, burst: 100 }
    expect((await b.take('paused', 1, limit)).allowed).toBe(true)
    await a.pause('paused', 1000)
    const refused = await b.take('paused', 1, limit)
    expect(refused.allowed).toBe(false)
    expect(refused.retryAfterMs).toBeGreaterThan(900)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1000)
    // Other keys are not paused; a shorter pause does not shorten a longer one.
    expect((await b.take('other', 1, limit)).allowed).toBe(true)
    await b.pause('paused', 10)
    expect((await b.take('paused', 1, limit)).retryAfterMs).toBeGreaterThan(800)
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 20))
    expect((await b.take('paused', 1, limit)).allowed).toBe(true)
    await Promise.all([a.close(), b.close()])
  })

  it('keys stay on one Redis Cluster slot: both keys of a limit share one hash tag', async () => {
    // Through the store's own writes: the token key and the pause key both carry {q:<key>}
    // (non-empty even for an empty key, where `{}` would hash the whole name).
    const { Redis } = await import('ioredis')
    const client = new Redis(redis.url)
    const store = redisQuotaStore({ url: redis.url, keyPrefix: 'tag:' })
    await store.take('user}{x', 1, { rate: 1, periodMs: 1000, burst: 1 })
    await store.pause('user}{x', 1000)
    const keys = (await client.keys('tag:*')).sort()
    expect(keys).toEqual(['tag:{q:user}{x}:p', 'tag:{q:user}{x}:t'])
    // Cluster hashes the text between the first '{' and the next '}': "q:user" for both.
    await store.close()
    client.disconnect()
  })
})
