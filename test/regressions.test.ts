/**
 * Regressions found in review, each pinned by a test: a fallback answers the call's own
 * TIMEOUT; subsets keep their service's outlier detection working; an injected delay ends at
 * the deadline; update() after close() is refused.
 */
import { describe, expect, it } from 'vitest'
import {
  type Context,
  createMesh,
  ENDPOINT,
  type HttpRequest,
  type MeshConfig,
  withMesh,
} from '../src/index.js'
import { ManualClock, seededRandom } from '../src/testing/index.js'

function virtual(config: MeshConfig, respond: (req: HttpRequest, ctx: Context) => Promise<Response>) {
  const clock = new ManualClock()
  const mesh = createMesh(config, { clock, random: seededRandom(3), httpTransport: respond })
  return { clock, mesh, f: withMesh(fetch, mesh) }
}
const stall = (_req: HttpRequest, ctx: Context) =>
  new Promise<Response>((_, reject) => ctx.cancel.onAbort(reject))

describe('regressions', () => {
  it('a fallback on TIMEOUT answers a call that hit its deadline', async () => {
    const { clock, mesh, f } = virtual(
      {
        services: {
          api: {
            endpoints: ['http://10.0.0.1:80'],
            timeout: '1s',
            fallback: { on: ['TIMEOUT'], status: 200, body: 'late' },
          },
        },
      },
      stall,
    )
    const call = f('http://api/x')
    await clock.advance(1000)
    expect(await (await call).text()).toBe('late')
    await mesh.close()
  })

  it('defining subsets does not switch off the service outlier detection', async () => {
    const endpoints = ['http://10.0.0.1:80', 'http://10.0.0.2:80', 'http://10.0.0.3:80'].map((url, i) => ({
      url,
      labels: { version: i === 0 ? 'v1' : 'v2' },
    }))
    const ejected: string[] = []
    const { mesh, f } = virtual(
      {
        services: {
          api: {
            endpoints,
            subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
            retry: { attempts: 1 },
            outlierDetection: { consecutiveFailures: 3, maxEjectionPercent: 50 },
          },
        },
      },
      async (_req, ctx) =>
        new Response(null, { status: ctx.get(ENDPOINT)!.address === 'http://10.0.0.1' ? 500 : 200 }),
    )
    mesh.events.on('ejection', (e) => ejected.push(e.endpoint))
    for (let i = 0; i < 60; i++) await f('http://api/x')
    expect(ejected).toEqual(['http://10.0.0.1'])
    await mesh.close()
  })

  it('an attempt-scoped injected delay ends at the deadline with TIMEOUT', async () => {
    const { clock, mesh, f } = virtual(
      {
        services: { api: { endpoints: ['http://10.0.0.1:80'], timeout: '50ms', retry: { attempts: 1 } } },
        routes: [
          {
            route: [{ service: 'api' }],
            fault: { delay: { percent: 100, duration: '300ms' }, scope: 'attempt' },
          },
        ],
      },
      async () => new Response('ok'),
    )
    const call = f('http://api/x').catch((e: unknown) => e)
    await clock.advance(50)
    expect(await call).toMatchObject({ code: 'TIMEOUT' })
    expect(clock.now()).toBe(50)
    await mesh.close()
  })

  it('update() after close() is refused with MESH_CLOSED', async () => {
    const mesh = createMesh({ services: {} })
    await mesh.close()
    expect(() => mesh.update({ services: {} })).toThrow(expect.objectContaining({ code: 'MESH_CLOSED' }))
  })
})
