/**
 * `mesh.close()` leaves nothing behind: after a mix of successes, retries, a timeout and an
 * abort against a real server, no timer, in-flight request, event listener or caller-signal
 * listener of meshlet's remains. Also: calls after close are refused, close waits for calls in
 * flight, and `force` cancels them.
 */
import { getEventListeners } from 'node:events'
import type { ServerResponse } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Cancellation,
  type Clock,
  createMesh,
  type MeshConfig,
  MeshError,
  systemClock,
  type TimerHandle,
  withMesh,
} from '../src/index.js'
import { pendingSystemTimers } from '../src/testing/index.js'
import { startServer, within } from './helpers/servers.js'

/** The system clock, counting the timers armed and not yet run or cleared. */
function trackingClock(): Clock & { readonly live: number } {
  const live = new Set<TimerHandle>()
  const clock: Clock & { readonly live: number } = {
    get live() {
      return live.size
    },
    now: () => systemClock.now(),
    wall: () => systemClock.wall(),
    setTimer(fn, ms) {
      const handle = systemClock.setTimer(() => {
        live.delete(handle)
        fn()
      }, ms)
      live.add(handle)
      return handle
    },
    clearTimer(handle) {
      live.delete(handle)
      systemClock.clearTimer(handle)
    },
    sleep(ms, cancel?: Cancellation) {
      if (cancel?.aborted) return Promise.reject(cancel.reason)
      return new Promise<void>((resolve, reject) => {
        let off: (() => void) | undefined
        const timer = clock.setTimer(() => {
          off?.()
          resolve()
        }, ms)
        off = cancel?.onAbort((reason) => {
          clock.clearTimer(timer)
          reject(reason)
        })
      })
    },
  }
  return clock
}

/** `fetch`, counting the calls that have not settled yet. */
function countingFetch(): typeof fetch & { readonly inflight: number; readonly calls: number } {
  let inflight = 0
  let calls = 0
  const f = (input: string | URL | Request, init?: RequestInit) => {
    inflight++
    calls++
    return fetch(input, init).finally(() => {
      inflight--
    })
  }
  Object.defineProperty(f, 'inflight', { get: () => inflight })
  Object.defineProperty(f, 'calls', { get: () => calls })
  return f as typeof fetch & { readonly inflight: number; readonly calls: number }
}

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Routes: `/ok`; `/flaky/<id>` answers 503 the first time for each id, then 204 (no body);
 * `/flaky-then-hold/<id>` answers 503 the first time, then never; `/hold` never answers;
 * `/gate` answers when the test calls `openGate()`. Tracks requests whose response is still
 * open (neither ended nor closed by the client).
 */
async function routedServer() {
  const flakySeen = new Set<string>()
  const held: ServerResponse[] = []
  let openResponses = 0
  const arrivals: Array<() => void> = []
  const gate: Array<() => void> = []
  const server = await startServer((req, res) => {
    openResponses++
    res.once('close', () => {
      openResponses--
    })
    for (const notify of arrivals.splice(0)) notify()
    const url = req.url ?? '/'
    if (url === '/ok') {
      res.end('ok')
    } else if (url.startsWith('/flaky/') || url.startsWith('/flaky-then-hold/')) {
      if (!flakySeen.has(url)) {
        flakySeen.add(url)
        res.writeHead(503)
        res.end('unavailable')
      } else if (url.startsWith('/flaky/')) {
        res.writeHead(204)
        res.end()
      } else {
        held.push(res)
      }
    } else if (url === '/gate') {
      gate.push(() => res.end('opened'))
    } else {
      held.push(res)
    }
  })
  return Object.assign(server, {
    get openResponses() {
      return openResponses
    },
    /** Resolves when the next request arrives. */
    nextArrival: () => new Promise<void>((resolve) => arrivals.push(resolve)),
    openGate: () => {
      for (const open of gate.splice(0)) open()
    },
  })
}

type RoutedServer = Awaited<ReturnType<typeof routedServer>>

describe('mesh.close()', () => {
  let server: RoutedServer
  let config: MeshConfig

  beforeAll(async () => {
    server = await routedServer()
    config = {
      services: {
        svc: { endpoints: [server.url], retry: { backoff: { base: '1ms', max: '5ms' } } },
        tight: {
          endpoints: [server.url],
          timeout: 100,
          retry: { attempts: 2, backoff: { base: '1ms', max: '5ms' } },
        },
      },
    }
  })
  afterAll(async () => {
    await server.close()
  })

  it('leaves no timer, request, listener or in-flight call behind after a mixed batch', async () => {
    await tick()
    const timeoutsBefore = activeTimeouts()
    const clock = trackingClock()
    const counting = countingFetch()
    const mesh = createMesh(config, { clock })
    const f = withMesh(counting, mesh)
    const seen: string[] = []
    mesh.events.on('retry', () => seen.push('retry'))
    mesh.events.on('timeout', () => seen.push('timeout'))
    mesh.events.on('config-updated', () => seen.push('config-updated'))
    expect(mesh.events.listenerCount).toBe(3)

    // Successes.
    const oks = await Promise.all(Array.from({ length: 5 }, () => f('http://svc/ok')))
    for (const res of oks) expect(await res.text()).toBe('ok')
    // A retried GET, and a POST whose 503 is returned without retry.
    expect((await f('http://svc/flaky/1')).status).toBe(204)
    const post = await f('http://svc/flaky/2', { method: 'POST', body: 'x' })
    expect(post.status).toBe(503)
    await post.text()
    // A timeout.
    const timeoutSignal = new AbortController().signal
    const timedOut = await f('http://tight/hold', { signal: timeoutSignal }).catch((e: unknown) => e)
    expect(timedOut).toMatchObject({ code: 'TIMEOUT', scope: 'call' })
    // An abort by the caller.
    const controller = new AbortController()
    const arrived = server.nextArrival()
    const aborted = f('http://svc/hold', { signal: controller.signal }).catch((e: unknown) => e)
    await within(arrived, 5000, 'the request to abort reaching the server')
    controller.abort()
    expect(await aborted).toMatchObject({ name: 'AbortError' })
    // A call still in flight when close() starts.
    const gateArrived = server.nextArrival()
    const late = f('http://svc/gate')
    await within(gateArrived, 5000, 'the gated request reaching the server')
    expect(mesh.inflight).toBe(1)

    const closing = mesh.close()
    server.openGate()
    const res = await late
    expect(await res.text()).toBe('opened')
    await within(closing, 5000, 'close()')

    expect(mesh.closed).toBe(true)
    expect(mesh.inflight).toBe(0)
    expect(counting.inflight).toBe(0)
    expect(clock.live).toBe(0)
    expect(mesh.events.listenerCount).toBe(0)
    expect(getEventListeners(timeoutSignal, 'abort')).toHaveLength(0)
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
    // Every request meshlet sent was answered or had its connection closed.
    await within(
      (async () => {
        while (server.openResponses > 0) await tick()
      })(),
      2000,
      'the server seeing every request finished or closed',
    )
    await tick()
    expect(activeTimeouts()).toBeLessThanOrEqual(timeoutsBefore)
    expect(pendingSystemTimers()).toBe(0)
  })

  it('refuses calls after close with MESH_CLOSED, sending nothing', async () => {
    const counting = countingFetch()
    const mesh = createMesh(config)
    const f = withMesh(counting, mesh)
    await mesh.close()
    const before = server.requests
    const error = await f('http://svc/ok').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(MeshError)
    expect((error as MeshError).code).toBe('MESH_CLOSED')
    expect(counting.calls).toBe(0)
    expect(server.requests).toBe(before)
  })

  it('waits for a call in flight to finish, refusing new calls meanwhile', async () => {
    const mesh = createMesh(config)
    const f = withMesh(fetch, mesh)
    const arrived = server.nextArrival()
    const inflight = f('http://svc/gate')
    await within(arrived, 5000, 'the gated request reaching the server')

    let closed = false
    const closing = mesh.close().then(() => {
      closed = true
    })
    for (let i = 0; i < 5; i++) await tick()
    expect(closed).toBe(false)
    expect(mesh.inflight).toBe(1)
    await expect(f('http://svc/ok')).rejects.toMatchObject({ code: 'MESH_CLOSED' })

    server.openGate()
    const res = await inflight
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('opened')
    await within(closing, 5000, 'close()')
    expect(closed).toBe(true)
    expect(mesh.inflight).toBe(0)
  })

  it('with force, cancels a call in flight at once with MESH_CLOSED and closes its request', async () => {
    const mesh = createMesh(config)
    const f = withMesh(fetch, mesh)
    const arrived = server.nextArrival()
    const closedBefore = server.socketsClosed
    const call = f('http://svc/hold').catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')

    const t0 = performance.now()
    await within(mesh.close({ force: true }), 1000, 'close({ force: true })')
    const error = await within(call, 1000, 'the cancelled call')
    expect(performance.now() - t0).toBeLessThan(500)
    expect(error).toBeInstanceOf(MeshError)
    expect((error as MeshError).code).toBe('MESH_CLOSED')
    expect(mesh.inflight).toBe(0)
    await within(server.waitForSocketClose(closedBefore), 2000, 'the server seeing the socket close')
  })

  // Bug (src/mesh/mesh.ts, close(): `this.#drained = resolve`): each close() overwrites the one
  // drain resolver, so an earlier close() still waiting never resolves. The common shutdown
  // pattern "close(), then close({ force: true }) after a grace period" hangs the first promise.
  it('resolves every close() promise when close is called again while draining', async () => {
    const mesh = createMesh(config)
    const f = withMesh(fetch, mesh)
    const arrived = server.nextArrival()
    const call = f('http://svc/hold').catch((e: unknown) => e)
    await within(arrived, 5000, 'the request reaching the server')

    const graceful = mesh.close()
    const forced = mesh.close({ force: true })
    await within(forced, 1000, 'close({ force: true })')
    expect(await call).toMatchObject({ code: 'MESH_CLOSED' })
    await within(graceful, 1000, 'the first, graceful close()')
  })

  describe("the caller's AbortSignal", () => {
    it('keeps no listener after a call that timed out', async () => {
      const mesh = createMesh(config)
      const f = withMesh(fetch, mesh)
      const signal = new AbortController().signal
      const error = await f('http://tight/hold', { signal }).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'TIMEOUT' })
      expect(getEventListeners(signal, 'abort')).toHaveLength(0)
      await mesh.close()
    })

    // Bug (src/adapters/fetch/transport.ts, fetchAttempt's success path): the listener added on
    // the caller's signal for each attempt is removed only when that attempt's response has no
    // body. A 503 that the retry stage discards has a body, so its listener stays on the
    // caller's signal for good: one leaked listener per retried attempt.
    it('keeps no listener after a failed call whose first attempt got a 503 and was retried', async () => {
      const mesh = createMesh(config)
      const f = withMesh(fetch, mesh)
      const signal = new AbortController().signal
      const error = await f('http://tight/flaky-then-hold/1', { signal }).catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'TIMEOUT' })
      expect(getEventListeners(signal, 'abort')).toHaveLength(0)
      await mesh.close()
    })

    it('keeps no listener after a retried call that ends with a bodiless 204', async () => {
      const mesh = createMesh(config)
      const f = withMesh(fetch, mesh)
      const signal = new AbortController().signal
      const res = await f('http://svc/flaky/leak-204', { signal })
      expect(res.status).toBe(204)
      expect(res.body).toBeNull()
      expect(getEventListeners(signal, 'abort')).toHaveLength(0)
      await mesh.close()
    })

    // Bare fetch also leaves a listener per call on a shared signal, but undici removes it when
    // the request is garbage-collected (a FinalizationRegistry); meshlet's per-attempt listener
    // is referenced only by the signal and is never removed, so a long-lived signal (an app's
    // shutdown signal passed to every call) accumulates one listener per call for ever.
    it('does not accumulate listeners on a long-lived signal across calls (after GC, as bare fetch)', async () => {
      setFlagsFromString('--expose-gc')
      const gc = runInNewContext('gc') as () => void
      const listenersAfterGc = async (f: typeof fetch, url: string) => {
        const shared = new AbortController().signal
        for (let i = 0; i < 20; i++) expect(await (await f(url, { signal: shared })).text()).toBe('ok')
        for (let i = 0; i < 10 && getEventListeners(shared, 'abort').length > 0; i++) {
          gc()
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
        return getEventListeners(shared, 'abort').length
      }
      // The control: bare fetch's listeners go away with its requests.
      expect(await listenersAfterGc(fetch, `${server.url}/ok`)).toBe(0)
      const mesh = createMesh(config)
      expect(await listenersAfterGc(withMesh(fetch, mesh), 'http://svc/ok')).toBe(0)
      await mesh.close()
    })
  })
})
