/**
 * The deadline test of `resilience.test.ts`, written with Node's own test runner: the testing
 * kit does not depend on vitest (or on any test framework).
 *
 * Run it with `npx tsx --test examples/testing/resilience.node-test.ts`.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
// In an application: `from 'meshlet'` and `from 'meshlet/testing'`.
import {
  type Context,
  createMesh,
  type HttpRequest,
  isMeshError,
  type MeshConfig,
  withMesh,
} from '../../src/index.js'
import { ManualClock, seededRandom } from '../../src/testing/index.js'

const config = {
  services: {
    users: {
      endpoints: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080', 'http://10.0.0.3:8080'],
      timeout: '1s',
      retry: { attempts: 3, perTryTimeout: '100ms' },
    },
  },
} satisfies MeshConfig

// A transport that never answers, but notices cancellation (as fetch does on abort).
const stalled = (_req: HttpRequest, ctx: Context) =>
  new Promise<Response>((_, reject) => ctx.cancel.onAbort(reject))

describe('users client (node:test)', () => {
  it('fails with TIMEOUT well inside the 1 s deadline when every endpoint stalls', async () => {
    const clock = new ManualClock()
    const mesh = createMesh(config, { clock, random: seededRandom(1), httpTransport: stalled })
    const fetch2 = withMesh(fetch, mesh)

    let failedAt = -1
    const call = fetch2('http://users/api/users/42').catch((e: unknown) => {
      failedAt = clock.now()
      return e
    })
    await clock.advance(1000) // a second of virtual time, no real waiting
    const error = await call
    assert.ok(isMeshError(error, 'TIMEOUT'), `expected a TIMEOUT, got ${String(error)}`)
    // Three tries of 100 ms and two backoffs of at most 25 ms and 50 ms.
    assert.ok(failedAt >= 300 && failedAt <= 375, `failed at ${failedAt} ms`)
    assert.equal(clock.pendingTimers, 0) // nothing left armed
    await mesh.close()
  })

  it('gives up at the call deadline when a try may take all of it', async () => {
    const clock = new ManualClock()
    const mesh = createMesh(
      { services: { users: { endpoints: ['http://10.0.0.1:8080'], timeout: '2s' } } },
      { clock, random: seededRandom(1), httpTransport: stalled },
    )
    const call = withMesh(fetch, mesh)('http://users/api/users/42').catch((e: unknown) => e)
    await clock.advance(2000)
    const error = await call
    assert.ok(isMeshError(error, 'TIMEOUT'))
    assert.equal((error as { scope?: string }).scope, 'call')
    assert.equal(clock.pendingTimers, 0)
    await mesh.close()
  })
})
