/**
 * Timeouts against real sockets: the call's deadline rejects with a call-scoped TimeoutError and
 * closes the upstream request; a per-try timeout lets a retry succeed on a stalled endpoint.
 * Small real timeouts (100-200 ms) are the point here: the subject is the socket, not the timer
 * arithmetic (unit tests cover that on a ManualClock).
 */
import type { ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { createMesh, MeshError, type MeshEvents, TimeoutError, withMesh } from '../src/index.js'
import { startServer, within } from './helpers/servers.js'

describe('timeouts against a real loopback server', () => {
  it('rejects with TIMEOUT (scope call) near the deadline and closes the request socket', async () => {
    const closed: Array<Promise<void>> = []
    const held: ServerResponse[] = []
    const server = await startServer((req, res) => {
      closed.push(new Promise((resolve) => req.socket.once('close', () => resolve())))
      held.push(res) // never answered
    })
    const mesh = createMesh({
      services: { slow: { endpoints: [server.url], timeout: 200, retry: { attempts: 1 } } },
    })
    const f = withMesh(fetch, mesh)

    const t0 = performance.now()
    const error = await within(
      f('http://slow/hold').catch((e: unknown) => e),
      5000,
      'the timed-out call',
    )
    const elapsed = performance.now() - t0

    expect(error).toBeInstanceOf(TimeoutError)
    expect(error).toBeInstanceOf(MeshError)
    expect((error as TimeoutError).code).toBe('TIMEOUT')
    expect((error as TimeoutError).scope).toBe('call')
    expect((error as TimeoutError).service).toBe('slow')
    expect(elapsed).toBeGreaterThanOrEqual(150)
    expect(elapsed).toBeLessThan(1500)

    expect(server.requests).toBe(1)
    expect(closed).toHaveLength(1)
    await within(closed[0]!, 1000, 'the server seeing the socket close')
    expect(held[0]!.writableEnded).toBe(false)
    expect(mesh.inflight).toBe(0)
    await mesh.close()
    await server.close()
  })

  // MeshEvents declares `timeout` ("A call or attempt passed its time limit") and Mesh.events
  // documents it, but no stage emits it: src/stages/timeout/timeout.ts takes no `events` and
  // src/mesh/stack.ts does not pass `parts.events` to timeout(). Left failing on purpose.
  it('emits a timeout event when the call deadline passes', async () => {
    const server = await startServer(() => {
      // never answers
    })
    const mesh = createMesh({
      services: { slow: { endpoints: [server.url], timeout: 100, retry: { attempts: 1 } } },
    })
    const timeouts: MeshEvents['timeout'][] = []
    mesh.events.on('timeout', (e) => timeouts.push(e))
    const f = withMesh(fetch, mesh)
    const error = await within(
      f('http://slow/x').catch((e: unknown) => e),
      5000,
      'the timed-out call',
    )
    expect(error).toBeInstanceOf(TimeoutError)
    await mesh.close()
    await server.close()
    // For the call scope, `timeout` is what was left of the deadline when the attempt started.
    expect(timeouts).toEqual([{ service: 'slow', scope: 'call', timeout: expect.closeTo(100, 0) }])
  })

  it('retries past an attempt that outlives perTryTimeout and succeeds within the deadline', async () => {
    const closed: Array<Promise<void>> = []
    const server = await startServer((req, res, index) => {
      closed.push(new Promise((resolve) => req.socket.once('close', () => resolve())))
      if (index === 0) return // the first request stalls
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end(`ok ${index}`)
    })
    const mesh = createMesh({
      services: {
        slow: {
          endpoints: [server.url],
          timeout: 1000,
          retry: { attempts: 3, perTryTimeout: 100, backoff: { base: '1ms', max: '5ms' } },
        },
      },
    })
    const retries: MeshEvents['retry'][] = []
    mesh.events.on('retry', (e) => retries.push(e))
    const f = withMesh(fetch, mesh)

    const t0 = performance.now()
    const res = await within(f('http://slow/x'), 5000, 'the retried call')
    const elapsed = performance.now() - t0

    expect(res.status).toBe(200)
    expect(await res.text()).toBe('ok 1')
    expect(server.requests).toBe(2)
    expect(elapsed).toBeGreaterThanOrEqual(90)
    expect(elapsed).toBeLessThan(900)
    expect(retries).toHaveLength(1)
    expect(retries[0]!.reason).toBeInstanceOf(TimeoutError)
    expect((retries[0]!.reason as TimeoutError).scope).toBe('attempt')
    // The stalled attempt's request was cancelled, not left open.
    await within(closed[0]!, 1000, 'the stalled request socket closing')
    await mesh.close()
    await server.close()
  })

  it('does not retry a non-idempotent POST that timed out per try (it may have been processed)', async () => {
    const server = await startServer(() => {
      // never answers
    })
    const mesh = createMesh({
      services: {
        slow: { endpoints: [server.url], timeout: 1000, retry: { attempts: 3, perTryTimeout: 100 } },
      },
    })
    const f = withMesh(fetch, mesh)
    const error = await within(
      f('http://slow/x', { method: 'POST', body: 'once' }).catch((e: unknown) => e),
      5000,
      'the timed-out POST',
    )
    expect(error).toBeInstanceOf(TimeoutError)
    expect((error as TimeoutError).scope).toBe('attempt')
    expect(server.requests).toBe(1)
    await mesh.close()
    await server.close()
  })
})
