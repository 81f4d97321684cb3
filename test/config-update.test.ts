/**
 * Configuration at the mesh level: an invalid config is refused whole, with every problem and
 * its path; a refused update changes nothing (calls keep going to the old endpoints); a good
 * update moves new calls, while a call in flight finishes on the configuration it started with.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigInvalidError, createMesh, type MeshConfig, MeshError, withMesh } from '../src/index.js'
import { startServer, type TestServer, within } from './helpers/servers.js'

/** Answers with its id; `/gate` answers only when `open()` is called. */
function gatedHandler(id: string, gate: Array<() => void>, arrivals: Array<() => void>) {
  return (req: IncomingMessage, res: ServerResponse) => {
    for (const notify of arrivals.splice(0)) notify()
    if (req.url === '/gate') gate.push(() => res.end(id))
    else res.end(id)
  }
}

const bad = {
  services: {
    users: {
      endpoints: ['http://127.0.0.1:8081'],
      loadBalancer: 'fastest',
      timeout: '5 seconds',
      retry: { attempts: 'three' },
    },
  },
} as unknown as MeshConfig

describe('configuration at the mesh level', () => {
  let a: TestServer
  let b: TestServer
  const gate: Array<() => void> = []
  const arrivals: Array<() => void> = []

  beforeAll(async () => {
    a = await startServer(gatedHandler('a', gate, arrivals))
    b = await startServer(gatedHandler('b', gate, arrivals))
  })
  afterAll(async () => {
    await Promise.all([a.close(), b.close()])
  })

  it('createMesh refuses a config with three problems, listing each path', () => {
    let error: unknown
    try {
      createMesh(bad)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(MeshError)
    expect(error).toBeInstanceOf(ConfigInvalidError)
    const invalid = error as ConfigInvalidError
    expect(invalid.code).toBe('CONFIG_INVALID')
    const paths = invalid.issues.map((i) => i.path)
    expect(paths).toEqual(
      expect.arrayContaining([
        'services.users.loadBalancer',
        'services.users.timeout',
        'services.users.retry.attempts',
      ]),
    )
    expect(invalid.issues).toHaveLength(3)
    for (const issue of invalid.issues) {
      expect(issue.message.length).toBeGreaterThan(0)
      expect(invalid.message).toContain(issue.path)
    }
  })

  it('withMesh(fetch, config) refuses the same config the same way', () => {
    expect(() => withMesh(fetch, bad)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
  })

  it('a refused update changes nothing; a good one moves new calls to the new endpoint', async () => {
    const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
    const updates: number[] = []
    mesh.events.on('config-updated', (e) => updates.push(e.services))
    const f = withMesh(fetch, mesh)
    const call = async () => (await f('http://svc/')).text()

    expect(await call()).toBe('a')
    const before = mesh.config
    const snapshot = JSON.parse(JSON.stringify(before)) as unknown

    const refused = (() => {
      try {
        mesh.update({
          services: { svc: { endpoints: [b.url], loadBalancer: 'fastest', retry: { attempts: 0 } } },
        } as unknown as MeshConfig)
      } catch (e) {
        return e
      }
      return undefined
    })()
    expect(refused).toBeInstanceOf(ConfigInvalidError)
    expect((refused as ConfigInvalidError).code).toBe('CONFIG_INVALID')
    expect((refused as ConfigInvalidError).issues.map((i) => i.path)).toEqual(
      expect.arrayContaining(['services.svc.loadBalancer', 'services.svc.retry.attempts']),
    )
    expect(mesh.config).toBe(before)
    expect(JSON.parse(JSON.stringify(mesh.config))).toEqual(snapshot)
    expect(updates).toEqual([])

    const bBefore = b.requests
    for (let i = 0; i < 3; i++) expect(await call()).toBe('a')
    expect(b.requests).toBe(bBefore)

    mesh.update({ services: { svc: { endpoints: [b.url] } } })
    expect(mesh.config).not.toBe(before)
    expect(mesh.config.services.svc?.endpoints.map((e) => e.url)).toEqual([b.url])
    expect(updates).toEqual([1])

    const aBefore = a.requests
    for (let i = 0; i < 3; i++) expect(await call()).toBe('b')
    expect(a.requests).toBe(aBefore)
    await mesh.close()
  })

  it('a call in flight during an update finishes on the configuration it started with', async () => {
    const mesh = createMesh({ services: { svc: { endpoints: [a.url] } } })
    const f = withMesh(fetch, mesh)
    const arrived = new Promise<void>((resolve) => arrivals.push(resolve))
    const inflight = f('http://svc/gate')
    await within(arrived, 5000, 'the gated request reaching a')

    mesh.update({ services: { svc: { endpoints: [b.url] } } })
    expect(await (await f('http://svc/')).text()).toBe('b')

    for (const open of gate.splice(0)) open()
    expect(await (await inflight).text()).toBe('a')
    await mesh.close()
  })
})
