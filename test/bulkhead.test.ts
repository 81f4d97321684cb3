/**
 * The bulkhead against a real loopback server that holds requests until the test releases
 * them: the server never sees more than `max` requests at once, the caller beyond the queue is
 * refused at once with BULKHEAD_FULL (while the server still holds the others), and the queued
 * caller reaches the server when a permit frees. Also: the options the lead passes from a
 * parsed config (`concurrency`) build a working bulkhead.
 */
import type { ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { BulkheadFullError } from '../src/core/errors.js'
import {
  Cancellation,
  Context,
  compose,
  Events,
  type Handler,
  type MeshEvents,
  parseConfig,
  systemClock,
  systemRandom,
} from '../src/index.js'
import { bulkhead } from '../src/stages/bulkhead/bulkhead.js'
import { startServer, within } from './helpers/servers.js'

const newCtx = () => Context.create({ clock: systemClock, random: systemRandom, cancel: new Cancellation() })

describe('bulkhead against a real loopback server', () => {
  it('lets at most 2 requests reach the server, queues 1 and refuses the 4th caller at once', async () => {
    const held: ServerResponse[] = []
    let inflight = 0
    let peak = 0
    let arrived: () => void = () => {}
    const server = await startServer((_req, res) => {
      peak = Math.max(peak, ++inflight)
      res.on('close', () => inflight--)
      held.push(res)
      arrived()
    })
    const waitForHeld = (n: number) =>
      within(
        new Promise<void>((resolve) => {
          arrived = () => held.length >= n && resolve()
          arrived()
        }),
        5000,
        `${n} requests held by the server`,
      )

    const events = new Events()
    const refusals: MeshEvents['bulkhead-full'][] = []
    events.on('bulkhead-full', (e) => refusals.push(e))
    const transport: Handler<string, string> = async (path) => {
      const res = await fetch(server.url + path)
      return `${res.status} ${await res.text()}`
    }
    const call = compose(
      bulkhead<string, string>({ max: 2, queue: 1, queueTimeout: 10_000, service: 'held', events }),
    )(transport)

    const first = call('/1', newCtx())
    const second = call('/2', newCtx())
    const third = call('/3', newCtx())
    await waitForHeld(2)

    // Refused at once: settled before the event loop's next turn, so without any I/O or timer.
    const nextTurn = new Promise<string>((resolve) => setImmediate(() => resolve('the next turn')))
    const fourth = await Promise.race([call('/4', newCtx()).catch((e: unknown) => e), nextTurn])
    expect(fourth).toBeInstanceOf(BulkheadFullError)
    expect(fourth).toMatchObject({ code: 'BULKHEAD_FULL', service: 'held' })
    expect(refusals).toEqual([{ service: 'held', queued: false }])
    expect(server.requests).toBe(2) // the third waits in the bulkhead, not at the server

    held[0]!.end('one')
    await waitForHeld(3)
    expect(server.requests).toBe(3)
    held[1]!.end('two')
    held[2]!.end('three')
    expect(await within(Promise.all([first, second, third]), 5000, 'the three answers')).toEqual([
      '200 one',
      '200 two',
      '200 three',
    ])
    expect(peak).toBe(2)
    await server.close()
  })

  it('builds from a parsed config with the call stack.ts makes', async () => {
    const config = parseConfig({
      services: { users: { endpoints: ['http://127.0.0.1:1'], concurrency: { max: 1, queue: 1 } } },
    })
    const c = config.services.users!.concurrency!
    expect(c).toMatchObject({ max: 1, queue: 1, queueTimeout: 1000, maxLimit: 200 })
    const events = new Events()
    // The exact call for src/mesh/stack.ts:
    const stage = bulkhead<string, string>({
      max: c.max,
      queue: c.queue,
      queueTimeout: c.queueTimeout,
      adaptive: c.adaptive,
      maxLimit: c.maxLimit,
      service: 'users',
      events,
    })
    let release: () => void = () => {}
    const h = compose(stage)(
      (req) =>
        new Promise<string>((resolve) => {
          release = () => resolve(req)
        }),
    )
    const a = h('a', newCtx())
    const b = h('b', newCtx())
    await expect(h('c', newCtx())).rejects.toMatchObject({ code: 'BULKHEAD_FULL', service: 'users' })
    release()
    expect(await a).toBe('a')
    await new Promise((resolve) => setImmediate(resolve))
    release()
    expect(await b).toBe('b')
  })
})
