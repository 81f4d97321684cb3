import { describe, expect, it } from 'vitest'
import { RedisQuotaStore } from '../../adapters/redis/redis-quota-store.js'
import { ConfigInvalidError } from '../../core/errors.js'
import { createMesh } from '../mesh.js'
import { parseConfig } from './config.js'

function issues(redis: unknown): string[] {
  try {
    parseConfig({ services: {}, redis })
  } catch (error) {
    if (error instanceof ConfigInvalidError) return error.issues.map((i) => `${i.path}: ${i.message}`)
    throw error
  }
  return []
}

describe('the redis config section', () => {
  it('applies the defaults: 50 ms timeout, fail open, breaker 3 failures / 200 ms, no lease', () => {
    expect(parseConfig({ services: {}, redis: { url: 'redis://127.0.0.1:6379' } }).redis).toEqual({
      url: 'redis://127.0.0.1:6379',
      keyPrefix: 'meshlet:',
      timeout: 50,
      onFailure: 'open',
      breaker: { failures: 3, halfOpenAfter: 200 },
      lease: undefined,
    })
  })

  it('refuses a URL of another scheme, braces in the prefix, and lease sizes out of range, naming the path', () => {
    expect(issues({ url: 'http://127.0.0.1:6379' })[0]).toMatch(/^redis\.url: expected a Redis URL/)
    expect(issues({ url: 'redis://h', keyPrefix: 'a{b}' })[0]).toMatch(/^redis\.keyPrefix: /)
    expect(issues({ url: 'redis://h', lease: { tokens: 1 } })[0]).toMatch(/^redis\.lease\.tokens: /)
    expect(issues({ url: 'redis://h', onFailure: 'maybe' })[0]).toMatch(/^redis\.onFailure: /)
    expect(
      issues({ url: 'rediss://user:pw@cache.internal:6380/2', lease: { tokens: 20, ttl: '2s' } }),
    ).toEqual([])
  })

  it('gives the mesh a Redis quota store that connects on first use and closes with the mesh', async () => {
    const mesh = createMesh({ services: {}, redis: { url: 'redis://127.0.0.1:1' } })
    expect(mesh.quotaStore).toBeInstanceOf(RedisQuotaStore)
    await mesh.close()
    expect(createMesh({ services: {} }).quotaStore).toBeUndefined()
  })
})
