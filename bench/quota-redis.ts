/**
 * Global quota decision latency on one loopback redis-server, same run (issue 25, acceptance 5;
 * D60): meshlet's Redis store (one GCRA script per decision, and lease mode) beside bottleneck's
 * Redis clustering mode and rate-limiter-flexible's RateLimiterRedis. Then bottleneck against
 * acceptance 1 and 2 in one process: the count admitted in 3 s at 500/s, and what a call does
 * while Redis is down. Run: npm run bench:quota (needs redis-server; see test/helpers/redis.ts).
 */

import Bottleneck from 'bottleneck'
import { Redis } from 'ioredis'
import { RateLimiterRedis } from 'rate-limiter-flexible'
import { redisQuotaStore } from '../src/adapters/redis/redis-quota-store.js'
import { RedisServer } from '../test/helpers/redis.js'

const N = Number(process.env.QUOTA_BENCH_N ?? 5000)
const WARMUP = 500

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

async function latency(name: string, decide: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < WARMUP; i++) await decide()
  const samples: number[] = []
  for (let i = 0; i < N; i++) {
    const t = performance.now()
    await decide()
    samples.push(performance.now() - t)
  }
  samples.sort((a, b) => a - b)
  const p50 = percentile(samples, 50)
  const p99 = percentile(samples, 99)
  console.log(
    `${name.padEnd(44)} p50 ${(p50 * 1000).toFixed(0).padStart(5)} us   p99 ${(p99 * 1000).toFixed(0).padStart(5)} us`,
  )
}

const redis = await RedisServer.start()
const [host, port] = ['127.0.0.1', redis.port]
const big = { rate: 1e9, periodMs: 1000, burst: 1e9 }
console.log(
  `global decision latency, sequential, ${N} decisions each, loopback redis-server, node ${process.version}`,
)

const store = redisQuotaStore({ url: redis.url, timeout: 1000 })
await store.ready()
await latency('meshlet redisQuotaStore (GCRA, 1 round trip)', () => store.take('bench', 1, big))
const leased = redisQuotaStore({ url: redis.url, timeout: 1000, lease: { tokens: 100 } })
await leased.ready()
await latency('meshlet redisQuotaStore, lease 100', () => leased.take('bench-lease', 1, big))

const client = new Redis(redis.port, host)
const rlf = new RateLimiterRedis({ storeClient: client, points: 1e9, duration: 1, keyPrefix: 'rlf' })
await latency('rate-limiter-flexible RateLimiterRedis', () => rlf.consume('bench'))

const limiter = new Bottleneck({
  id: 'bench',
  datastore: 'ioredis',
  clearDatastore: true,
  clientOptions: { host, port },
  reservoir: 1e9,
  highWater: 0,
  strategy: Bottleneck.strategy.OVERFLOW,
})
limiter.on('error', () => {})
let bottleneckWorks = true
try {
  await Promise.race([
    limiter.schedule(async () => {}),
    new Promise((_, reject) => setTimeout(() => reject(new Error('no answer in 5 s')), 5000)),
  ])
  await latency('bottleneck (Redis clustering, ioredis)', () => limiter.schedule(async () => {}))
} catch (error) {
  bottleneckWorks = false
  console.log(`bottleneck (Redis clustering): failed on Redis ${redis.port}: ${(error as Error).message}`)
}

// Acceptance 1, in one process: 64 callers, 500/s for 3 s (bottleneck: a reservoir refreshed
// every second, its closest form of a rate; meshlet: burst 50).
async function admitted(take: () => Promise<boolean>): Promise<number> {
  const end = Date.now() + 3000
  let n = 0
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (Date.now() < end) {
        if (await take()) n++
        else await new Promise((r) => setTimeout(r, 5))
      }
    }),
  )
  return n
}
const rate = { rate: 500, periodMs: 1000, burst: 50 }
console.log(
  `meshlet, 64 callers, 500/s burst 50, 3 s: admitted ${await admitted(async () => (await store.take('a1', 1, rate)).allowed)} (exact 1550)`,
)
if (bottleneckWorks) {
  const windowed = new Bottleneck({
    id: 'a1',
    datastore: 'ioredis',
    clearDatastore: true,
    clientOptions: { host, port },
    reservoir: 500,
    reservoirRefreshAmount: 500,
    reservoirRefreshInterval: 1000,
    highWater: 0,
    strategy: Bottleneck.strategy.OVERFLOW,
  })
  windowed.on('error', () => {})
  await windowed.ready()
  const n = await admitted(() => windowed.schedule(async () => true).catch(() => false))
  console.log(
    `bottleneck, 64 callers, reservoir 500 per 1 s, 3 s: admitted ${n} (a fixed window: exact 1500)`,
  )
  // Acceptance 2: Redis down. Does a call answer, and when?
  await redis.stop()
  const t = performance.now()
  const outcome = await Promise.race([
    windowed.schedule(async () => 'ran').catch((e: Error) => `rejected (${e.message.slice(0, 60)})`),
    new Promise((r) => setTimeout(() => r('no answer after 2 s (hung)'), 2000)),
  ])
  console.log(`bottleneck with Redis down: ${outcome} after ${(performance.now() - t).toFixed(0)} ms`)
  const t2 = performance.now()
  const ours = await store.take('a1', 1, rate)
  console.log(
    `meshlet with Redis down (timeout 1000 for this bench, default 50): ${JSON.stringify(ours)} after ${(performance.now() - t2).toFixed(0)} ms`,
  )
  await windowed.disconnect(false).catch(() => {})
}

await Promise.all([store.close(), leased.close(), limiter.disconnect(false).catch(() => {})])
client.disconnect()
await redis.stop()
process.exit(0)
