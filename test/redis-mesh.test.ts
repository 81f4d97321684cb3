/**
 * A global rate limit end to end: two meshes made from the same config (a `redis` section and
 * a service whose `rateLimit` has `scope: 'global'`) share one bucket on a real redis-server, and
 * calls through `withMesh(fetch)` over it fail with `RATE_LIMITED` without reaching the server.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, isMeshError, type MeshConfig, withMesh } from '../src/index.js'
import { RedisServer } from './helpers/redis.js'

let redis: RedisServer
let server: Server
let received = 0

beforeAll(async () => {
  redis = await RedisServer.start()
  server = createServer((_req, res) => {
    received++
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
})
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
  await redis.stop()
})

describe('a global rate limit through the mesh', () => {
  it('shares one bucket between meshes and refuses the calls over it before the network', async () => {
    const { port } = server.address() as AddressInfo
    const config: MeshConfig = {
      // A decision waits at most `timeout` for Redis, the first one included, which also loads
      // ioredis and connects: 2 s here so that no decision of this test is answered by
      // `onFailure` (the default 50 ms can admit a process's first calls by policy, docs/quota.md).
      redis: { url: redis.url, keyPrefix: `t${Date.now()}:`, timeout: '2s' },
      services: {
        partner: {
          endpoints: [`http://127.0.0.1:${port}`],
          retry: { attempts: 1 },
          // One token an hour after a burst of 3: the test cannot see a refill.
          rateLimit: { rate: 1, period: '1h', burst: 3, scope: 'global' },
        },
      },
    }
    const a = createMesh(config)
    const b = createMesh(config)
    const fa = withMesh(fetch, a)
    const fb = withMesh(fetch, b)
    const outcomes: string[] = []
    for (const f of [fa, fb, fa, fb, fa]) {
      try {
        const res = await f('http://partner/x')
        await res.text()
        outcomes.push(String(res.status))
      } catch (error) {
        outcomes.push(isMeshError(error) ? error.code : String(error))
      }
    }
    expect(outcomes).toEqual(['200', '200', '200', 'RATE_LIMITED', 'RATE_LIMITED'])
    expect(received).toBe(3)
    await a.close()
    await b.close()
  })
})
