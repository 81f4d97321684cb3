/**
 * Acceptance 2 to 4 of issue 8, against real grpc-js servers on 127.0.0.1: gRFC A6 retries
 * (retryable codes onto another endpoint, pushback as a delay or a stop, on a manual clock for
 * the delay), deadlines and cancellation reaching the server, and an open breaker failing fast
 * without touching the network.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, type Mesh, type MeshConfig, type MeshOptions, runWithDeadline } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import { ManualClock } from '../src/testing/index.js'
import {
  EchoClient,
  type EchoReply,
  type EchoRequest,
  type GrpcTestServer,
  startGrpcServer,
  statusError,
} from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

async function server(...args: Parameters<typeof startGrpcServer>): Promise<GrpcTestServer> {
  const s = await startGrpcServer(...args)
  cleanup.push(() => s.close())
  return s
}

/** A server that answers and records the time left before the deadline the call arrived with. */
async function deadlineServer() {
  let left = Number.NaN
  const s = await server({
    Unary: (call, cb) => {
      const d = call.getDeadline()
      left = (d instanceof Date ? d.getTime() : d) - Date.now()
      cb(null, { text: 'ok', index: 0, server: 's' })
    },
  })
  return { s, left: () => left }
}

function client(config: MeshConfig, options: MeshOptions = {}): { c: AnyClient; m: Mesh } {
  const m = createMesh(config, options)
  cleanup.push(() => m.close({ force: true }))
  const c = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
  cleanup.push(() => c.close())
  return { c, m }
}

type Result = { error: grpc.ServiceError; reply?: undefined } | { error?: undefined; reply: EchoReply }

function call(
  c: AnyClient,
  text = 'hi',
  options: grpc.CallOptions = {},
): Promise<Result> & { call: grpc.ClientUnaryCall } {
  let unaryCall: grpc.ClientUnaryCall | undefined
  const p = new Promise<Result>((resolve) => {
    unaryCall = c.Unary(
      { text },
      new grpc.Metadata(),
      options,
      (error: grpc.ServiceError | null, reply?: EchoReply) => resolve(error ? { error } : { reply: reply! }),
    )
  })
  return Object.assign(p, { call: unaryCall! })
}

const until = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}

const grpcService = (endpoints: string[], extra: Record<string, unknown> = {}) => ({
  services: {
    echo: {
      protocol: 'grpc' as const,
      endpoints,
      loadBalancer: 'round-robin' as const,
      retry: { attempts: 3, backoff: { base: '1ms', max: '2ms' } },
      ...extra,
    },
  },
})

describe('gRFC A6 retries', () => {
  it('retries UNAVAILABLE from one endpoint onto another, telling it grpc-previous-rpc-attempts', async () => {
    const down = await server({ Unary: (_call, cb) => cb(statusError(grpc.status.UNAVAILABLE, 'draining')) })
    const up = await server()
    const { c } = client(grpcService([down.address, up.address]))
    const seenByCaller: string[] = []
    for (let i = 0; i < 6; i++) {
      const pending = call(c, `n${i}`)
      pending.call.on('metadata', (md: grpc.Metadata) =>
        seenByCaller.push(String(md.get('grpc-previous-rpc-attempts')[0] ?? '')),
      )
      const r = await pending
      expect(r.reply?.text).toBe(`n${i}`)
    }
    // The caller sees it too, on the answer's headers, as grpc-js shows it.
    expect(seenByCaller.filter((p) => p === '1')).toHaveLength(down.calls)
    expect(down.calls).toBeGreaterThan(0)
    expect(up.calls).toBe(6)
    // Each call that met the bad endpoint first came to the good one as its second attempt.
    expect(up.previousAttempts.filter((p) => p === '1')).toHaveLength(down.calls)
    expect(down.previousAttempts.every((p) => p === '')).toBe(true)
  })

  it('does not retry INVALID_ARGUMENT', async () => {
    const s = await server({ Unary: (_call, cb) => cb(statusError(grpc.status.INVALID_ARGUMENT, 'bad id')) })
    const { c } = client(grpcService([s.address]))
    const r = await call(c)
    expect(r.error?.code).toBe(grpc.status.INVALID_ARGUMENT)
    expect(r.error?.details).toBe('bad id')
    expect(s.calls).toBe(1)
  })

  it('waits the 500 ms a server pushes back before retrying (manual clock)', async () => {
    let n = 0
    const s = await server({
      Unary: (call, cb) =>
        n++ === 0
          ? cb(statusError(grpc.status.UNAVAILABLE, 'later', { 'grpc-retry-pushback-ms': '500' }))
          : cb(null, { text: call.request.text, index: n, server: 's' }),
    })
    const clock = new ManualClock({ wallStart: Date.now() })
    const { c, m } = client(grpcService([s.address]), { clock })
    const delays: number[] = []
    m.events.on('retry', (e) => delays.push(e.delay))
    const pending = call(c, 'pushed')
    await until(() => delays.length === 1)
    expect(delays).toEqual([500])
    await clock.advance(499)
    await new Promise((r) => setTimeout(r, 50))
    expect(s.calls).toBe(1)
    await clock.advance(1)
    const r = await pending
    expect(r.reply?.text).toBe('pushed')
    expect(s.calls).toBe(2)
  })

  for (const value of ['-1', 'soon']) {
    it(`stops retrying when the pushback is ${value === '-1' ? 'negative' : 'malformed'} (${value})`, async () => {
      const s = await server({
        Unary: (_call, cb) =>
          cb(statusError(grpc.status.UNAVAILABLE, 'go away', { 'grpc-retry-pushback-ms': value })),
      })
      const { c } = client(grpcService([s.address]))
      const r = await call(c)
      expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)
      expect(s.calls).toBe(1)
    })
  }

  it('never retries a call once the server sent headers (committed)', async () => {
    const s = await server({
      Unary: (call, cb) => {
        call.sendMetadata(new grpc.Metadata())
        cb(statusError(grpc.status.UNAVAILABLE, 'after headers'))
      },
    })
    const { c } = client(grpcService([s.address]))
    const r = await call(c)
    expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)
    expect(s.calls).toBe(1)
  })

  it('retries a server stream that failed before its first message, never one after it', async () => {
    let n = 0
    const s = await server({
      ServerStream: (call) => {
        const i = n++
        if (i === 0) return call.emit('error', statusError(grpc.status.UNAVAILABLE, 'not yet'))
        call.write({ text: 'one', index: 0, server: 's' })
        call.emit('error', statusError(grpc.status.UNAVAILABLE, 'broke mid-stream'))
      },
    })
    const { c } = client(grpcService([s.address]))
    const stream: grpc.ClientReadableStream<EchoReply> = c.ServerStream({ text: 't', count: 1 })
    const got: string[] = []
    stream.on('data', (m: EchoReply) => got.push(m.text))
    const error = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve))
    expect(got).toEqual(['one'])
    expect(error.code).toBe(grpc.status.UNAVAILABLE)
    expect(error.details).toBe('broke mid-stream')
    expect(s.calls).toBe(2)
  })
})

describe('deadlines and cancellation', () => {
  it('answers DEADLINE_EXCEEDED at the mesh deadline, and the server sees the call cancelled', async () => {
    const s = await server({ Unary: () => {} }) // sleeps forever
    const { c } = client(grpcService([s.address], { timeout: '200ms' }))
    const started = performance.now()
    const r = await call(c)
    const elapsed = performance.now() - started
    expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    expect(elapsed).toBeGreaterThanOrEqual(190)
    expect(elapsed).toBeLessThan(1000)
    await s.waitForCancelled(1)
    expect(s.cancelled).toBe(1)
  })

  it("honours the caller's own shorter deadline", async () => {
    const s = await server({ Unary: () => {} })
    const { c } = client(grpcService([s.address], { timeout: '5s' }))
    const started = performance.now()
    const r = await call(c, 'x', { deadline: Date.now() + 150 })
    expect(r.error?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    expect(performance.now() - started).toBeLessThan(1000)
    await s.waitForCancelled(1)
  })

  it('with propagateDeadline true, sends the service timeout upstream as the gRPC deadline', async () => {
    const { s, left: leftOf } = await deadlineServer()
    const { c } = client(grpcService([s.address], { timeout: '3s', propagateDeadline: true }))
    await call(c)
    expect(leftOf()).toBeGreaterThan(2500)
    expect(leftOf()).toBeLessThanOrEqual(3000)
  })

  it("sends the caller's own deadline, and an inherited one, by default", async () => {
    const { s, left: leftOf } = await deadlineServer()
    const { c } = client(grpcService([s.address], { timeout: '30s' }))
    // The caller's CallOptions.deadline, later than the service's timeout: the earlier travels.
    await call(c, 'x', { deadline: Date.now() + 60_000 })
    // (grpc-timeout is rounded up to the millisecond, and the server reads it on its wall clock.)
    expect(leftOf()).toBeGreaterThan(29_000)
    expect(leftOf()).toBeLessThanOrEqual(30_002)
    await call(c, 'x', { deadline: Date.now() + 2000 })
    expect(leftOf()).toBeGreaterThan(1500)
    expect(leftOf()).toBeLessThanOrEqual(2002)
    // A deadline inherited from the request being served (runWithDeadline) travels too.
    await runWithDeadline(1000, () => call(c))
    expect(leftOf()).toBeGreaterThan(500)
    expect(leftOf()).toBeLessThanOrEqual(1002)
  })

  it.each([
    ['unset (D27: the service timeout alone stays local)', {}],
    ['false', { propagateDeadline: false }],
  ] as const)(
    'with propagateDeadline %s, tells the server no deadline yet still ends the call at its own',
    async (_, extra) => {
      const deadlines: unknown[] = []
      const s = await server({
        Unary: (call, cb) => {
          deadlines.push(call.getDeadline())
          if (call.request.text !== 'stall') cb(null, { text: 'ok', index: 0, server: 's' })
        },
      })
      const clock = new ManualClock({ wallStart: Date.now() })
      const { c } = client(grpcService([s.address], { timeout: '300ms', ...extra }), { clock })
      expect((await call(c)).error).toBeUndefined()
      expect(deadlines).toEqual([Number.POSITIVE_INFINITY])
      const stalled = call(c, 'stall')
      await until(() => s.calls === 2)
      await clock.advance(300)
      expect((await stalled).error?.code).toBe(grpc.status.DEADLINE_EXCEEDED)
      await s.waitForCancelled(1)
    },
  )

  it("keeps the caller's metadata free of the deadline it sends, and reports the endpoint as the peer", async () => {
    const seen: string[] = []
    const s = await server({
      Unary: (call, cb) => {
        seen.push(String(call.metadata.get('x-k')[0]))
        cb(null, { text: 'ok', index: 0, server: 's' })
      },
    })
    const { c } = client(grpcService([s.address], { timeout: '3s' }))
    const md = new grpc.Metadata()
    md.set('x-k', 'v')
    for (let i = 0; i < 2; i++) {
      let unary: grpc.ClientUnaryCall | undefined
      await new Promise<void>((resolve, reject) => {
        unary = c.Unary({ text: 'x' }, md, (e: grpc.ServiceError | null) => (e ? reject(e) : resolve()))
      })
      expect(unary!.getPeer()).toBe(s.address)
    }
    expect(seen).toEqual(['v', 'v'])
    expect(md.get('grpc-timeout')).toEqual([])
  })

  it('sends the earlier deadline when the channels have a service config with a later method timeout', async () => {
    const { s, left: leftOf } = await deadlineServer()
    const m = createMesh(grpcService([s.address], { timeout: '1s' }))
    cleanup.push(() => m.close({ force: true }))
    const serviceConfig = { methodConfig: [{ name: [{ service: 'meshlet.test.Echo' }], timeout: '30s' }] }
    const c = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m, {
      channelOptions: { 'grpc.service_config': JSON.stringify(serviceConfig) },
    })
    cleanup.push(() => c.close())
    const r = await call(c)
    expect(r.error).toBeUndefined()
    expect(leftOf()).toBeGreaterThan(500)
    expect(leftOf()).toBeLessThanOrEqual(1000)
  })

  it('cancel() after the call began cancels it upstream', async () => {
    const s = await server({ Unary: () => {} })
    const { c } = client(grpcService([s.address]))
    const pending = call(c)
    await until(() => s.calls === 1)
    pending.call.cancel()
    const r = await pending
    expect(r.error?.code).toBe(grpc.status.CANCELLED)
    await s.waitForCancelled(1)
  })

  it('cancel() of a committed server stream cancels it upstream', async () => {
    const s = await server({ ServerStream: (call) => call.write({ text: 'first', index: 0, server: 's' }) })
    const { c } = client(grpcService([s.address]))
    const stream: grpc.ClientReadableStream<EchoReply> = c.ServerStream({ text: 't', count: 1 })
    const first = await new Promise<EchoReply>((resolve) => stream.once('data', resolve))
    expect(first.text).toBe('first')
    const error = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve))
    stream.cancel()
    expect((await error).code).toBe(grpc.status.CANCELLED)
    await s.waitForCancelled(1)
  })

  it('close({ force: true }) ends a committed stream upstream; a graceful close does not wait for one', async () => {
    const s = await server({ ServerStream: (call) => call.write({ text: 'first', index: 0, server: 's' }) })
    const { c, m } = client(grpcService([s.address]))
    const stream: grpc.ClientReadableStream<EchoReply> = c.ServerStream({ text: 't', count: 1 })
    const first = await new Promise<EchoReply>((resolve) => stream.once('data', resolve))
    expect(first.text).toBe('first')
    const error = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve))
    // The stream outlives its call's pipeline: the mesh has no call in flight, and close() returns.
    expect(m.inflight).toBe(0)
    await m.close()
    await m.close({ force: true })
    const e = await error
    expect(e.code).toBe(grpc.status.UNAVAILABLE)
    expect(e.details).toMatch(/closed/)
    await s.waitForCancelled(1)
  })

  it('a bidi stream runs to its end past no deadline of its own, and closes upstream on cancel', async () => {
    const s = await server()
    const { c } = client(grpcService([s.address]))
    const stream: grpc.ClientDuplexStream<EchoRequest, EchoReply> = c.Bidi()
    const got: string[] = []
    stream.on('data', (m: EchoReply) => got.push(m.text))
    stream.write({ text: 'a', count: 0 })
    await until(() => got.length === 1)
    const error = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve))
    stream.cancel()
    expect((await error).code).toBe(grpc.status.CANCELLED)
    await s.waitForCancelled(1)
  })
})

describe('circuit breaker', () => {
  it('once open, answers UNAVAILABLE at once without a network call', async () => {
    const s = await server({ Unary: (_call, cb) => cb(statusError(grpc.status.UNAVAILABLE, 'down')) })
    const { c } = client(
      grpcService([s.address], {
        retry: { attempts: 1 },
        circuitBreaker: { consecutiveFailures: 2, halfOpenAfter: '1m' },
      }),
    )
    for (let i = 0; i < 2; i++) expect((await call(c)).error?.details).toBe('down')
    expect(s.calls).toBe(2)
    // At once: the breaker refuses before any network call (the server's count stays at 2).
    const r = await call(c)
    expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)
    const error = r.error as grpc.ServiceError & { meshCode?: string; cause?: { code?: string } }
    expect(error.meshCode).toBe('CIRCUIT_OPEN')
    expect(error.cause?.code).toBe('CIRCUIT_OPEN')
    expect(s.calls).toBe(2)
  })
})

describe('outlier detection', () => {
  it('moves traffic off an endpoint that keeps failing', async () => {
    const bad = await server({ Unary: (_call, cb) => cb(statusError(grpc.status.INTERNAL, 'broken')) })
    const good = await server()
    const { c } = client(
      grpcService([bad.address, good.address], {
        retry: { attempts: 1 },
        outlierDetection: { consecutiveFailures: 2, maxEjectionPercent: 50, baseEjectionTime: '1m' },
      }),
    )
    for (let i = 0; i < 4; i++) await call(c)
    expect(bad.calls).toBe(2)
    for (let i = 0; i < 10; i++) expect((await call(c)).reply?.text).toBe('hi')
    expect(bad.calls).toBe(2)
  })
})
