import { describe, expect, it } from 'vitest'
import { isMeshError } from '../core/errors.js'
import { Events } from '../core/events.js'
import { ManualClock } from '../testing/manual-clock.js'
import { parseConfig } from './config/config.js'
import { createMesh } from './mesh.js'
import { QuotaRegistry, templateParam } from './quota.js'
import { withMesh } from './with-mesh.js'

const signals = { rejected: () => false, pause: () => undefined }
const noKey = () => undefined

describe('QuotaRegistry', () => {
  it('builds no stage for a service without rateLimit or adaptiveThrottling', () => {
    const config = parseConfig({ services: { a: { endpoints: ['http://127.0.0.1:1'] } } })
    const r = new QuotaRegistry(new ManualClock(), undefined)
    expect(r.stage('a', config.services.a!, undefined, noKey, signals, new Events())).toBeUndefined()
  })

  it('keeps a limit (and its spent tokens) across an update that leaves it unchanged', async () => {
    const clock = new ManualClock()
    const config = (rate: number) => ({
      services: { a: { endpoints: ['http://127.0.0.1:1'], rateLimit: { rate, period: '1m' } } },
    })
    const m = createMesh(config(1), { clock, httpTransport: async () => new Response('ok') })
    const f = withMesh(fetch, m)
    expect((await f('http://a/')).status).toBe(200)
    m.update({ ...config(1), strict: true })
    expect(isMeshError(await f('http://a/').catch((e: unknown) => e), 'RATE_LIMITED')).toBe(true)
    m.update(config(2))
    expect((await f('http://a/')).status).toBe(200)
    await m.close()
  })

  it("gives a route's rateLimit its own buckets", async () => {
    const clock = new ManualClock()
    const m = createMesh(
      {
        services: { a: { endpoints: ['http://127.0.0.1:1'], rateLimit: { rate: 1, period: '1m' } } },
        routes: [
          {
            match: [{ path: { prefix: '/r' } }],
            route: [{ service: 'a' }],
            rateLimit: { rate: 1, period: '1m' },
          },
        ],
      },
      { clock, httpTransport: async () => new Response('ok') },
    )
    const f = withMesh(fetch, m)
    expect((await f('http://a/x')).status).toBe(200)
    expect((await f('http://a/r')).status).toBe(200)
    expect(isMeshError(await f('http://a/r').catch((e: unknown) => e), 'RATE_LIMITED')).toBe(true)
    expect(isMeshError(await f('http://a/x').catch((e: unknown) => e), 'RATE_LIMITED')).toBe(true)
    await m.close()
  })

  it('keys a route limit by a path template parameter', async () => {
    const clock = new ManualClock()
    const m = createMesh(
      {
        services: { a: { endpoints: ['http://127.0.0.1:1'] } },
        routes: [
          {
            match: [{ path: { template: '/t/{tenant}/items' } }],
            route: [{ service: 'a' }],
            rateLimit: { rate: 1, period: '1m', key: { param: 'tenant' } },
          },
        ],
      },
      { clock, httpTransport: async () => new Response('ok') },
    )
    const f = withMesh(fetch, m)
    expect((await f('http://a/t/one/items')).status).toBe(200)
    expect((await f('http://a/t/two/items?x=1')).status).toBe(200)
    expect(isMeshError(await f('http://a/t/one/items').catch((e: unknown) => e), 'RATE_LIMITED')).toBe(true)
    await m.close()
  })
})

describe('templateParam', () => {
  it('reads a whole-segment parameter, and nothing from a path of another shape', () => {
    const route = parseConfig({
      services: { a: { endpoints: ['http://127.0.0.1:1'] } },
      routes: [{ match: [{ path: { template: '/u/{id}' } }], route: [{ service: 'a' }] }],
    }).routes[0]
    const read = templateParam(route, 'id')!
    expect(read('/u/42?x=1')).toBe('42')
    expect(read('/u/42/more')).toBeUndefined()
    expect(templateParam(route, 'other')).toBeUndefined()
  })
})
