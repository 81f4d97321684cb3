import { describe, expect, it } from 'vitest'
import { ConfigInvalidError } from '../../core/errors.js'
import { parseConfig } from './config.js'

const svc = (extra: Record<string, unknown>) => ({
  services: { api: { endpoints: ['http://127.0.0.1:1'], ...extra } },
})

function issues(input: unknown): string[] {
  try {
    parseConfig(input)
  } catch (error) {
    if (error instanceof ConfigInvalidError) return error.issues.map((i) => `${i.path}: ${i.message}`)
    throw error
  }
  return []
}

describe('rateLimit config', () => {
  it('resolves the defaults: period 1 s, burst = rate, reject, queue 100, local, maxPause 1 min', () => {
    expect(parseConfig(svc({ rateLimit: { rate: 50 } })).services.api!.rateLimit).toEqual({
      rate: 50,
      period: 1000,
      burst: 50,
      key: undefined,
      maxKeys: 10_000,
      action: 'reject',
      queue: 100,
      scope: 'local',
      maxPause: 60_000,
    })
  })

  it('refuses numbers out of range, naming the path', () => {
    expect(issues(svc({ rateLimit: { rate: 0 } }))[0]).toMatch(/^services\.api\.rateLimit\.rate/)
    expect(issues(svc({ rateLimit: { rate: 1, burst: 2_000_000 } }))[0]).toMatch(/rateLimit\.burst/)
    expect(issues(svc({ rateLimit: { rate: 1, period: 86_400_001 } }))[0]).toMatch(
      /rateLimit\.period: expected a duration from 1ms to 1d/,
    )
    expect(issues(svc({ rateLimit: { rate: 1, period: 0 } }))[0]).toMatch(/rateLimit\.period/)
    expect(issues(svc({ rateLimit: { rate: 1, queue: -1 } }))[0]).toMatch(/rateLimit\.queue/)
    expect(issues(svc({ rateLimit: { rate: 1, maxPause: '2h' } }))[0]).toMatch(/rateLimit\.maxPause/)
    expect(issues(svc({ adaptiveThrottling: { k: 0.5 } }))[0]).toMatch(/adaptiveThrottling\.k/)
    expect(issues(svc({ adaptiveThrottling: { window: '1h' } }))[0]).toMatch(/adaptiveThrottling\.window/)
  })

  it('refuses a key header that is not a token, and a key with both sources', () => {
    expect(issues(svc({ rateLimit: { rate: 1, key: { header: 'x tenant' } } }))).toHaveLength(1)
    expect(issues(svc({ rateLimit: { rate: 1, key: { header: 'a', param: 'b' } } }))).toHaveLength(1)
  })

  it("refuses a path parameter key on a service, or one the route's templates lack", () => {
    expect(issues(svc({ rateLimit: { rate: 1, key: { param: 'id' } } }))).toEqual([
      "services.api.rateLimit.key.param: applies to a route's rateLimit (a path template parameter), not a service's",
    ])
    const route = (template: string) => ({
      ...svc({}),
      routes: [
        {
          match: [{ path: { template } }],
          route: [{ service: 'api' }],
          rateLimit: { rate: 1, key: { param: 'id' } },
        },
      ],
    })
    expect(issues(route('/users/{id}'))).toEqual([])
    expect(issues(route('/users/{uid}'))[0]).toMatch(/^routes\[0\]\.rateLimit\.key\.param/)
  })
})
