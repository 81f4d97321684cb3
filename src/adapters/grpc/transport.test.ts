import * as grpc from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import { Cancellation } from '../../core/cancel.js'
import { Context } from '../../core/context.js'
import { seededRandom } from '../../core/random.js'
import { ENDPOINT, Endpoint } from '../../stages/balancer/endpoint.js'
import { ManualClock } from '../../testing/index.js'
import { GrpcChannelPool } from './channels.js'
import type { GrpcCallListener, GrpcMetadata, GrpcModule, GrpcRawCall } from './grpc-types.js'
import type { GrpcCallIo, GrpcMethodKind, GrpcRequest, GrpcResponse } from './request.js'
import { cancelCall, grpcTimeout, grpcTransport } from './transport.js'

/** What the fake channel saw of one call. */
interface Seen {
  deadline: Date | number
  metadata?: GrpcMetadata
  listener?: GrpcCallListener
  cancelled?: string
}

/** A pool over a fake grpc-js whose channels record their calls (grpc-js's real `Metadata`). */
function fakePool(options: { channelOptions?: Record<string, unknown> | undefined } = {}) {
  const calls: Seen[] = []
  class FakeChannel {
    createCall(_path: string, deadline: Date | number): GrpcRawCall {
      const seen: Seen = { deadline }
      calls.push(seen)
      return {
        start(metadata, listener) {
          seen.metadata = metadata
          seen.listener = listener
        },
        sendMessageWithContext() {},
        halfClose() {},
        startRead() {},
        cancelWithStatus(_code, details) {
          seen.cancelled = details
        },
        getPeer: () => '10.0.0.1:50051',
        getCallNumber: () => 1,
        setCredentials() {},
        getAuthContext: () => null,
      }
    }
    close() {}
  }
  const module = {
    credentials: { createInsecure: () => ({}) },
    Channel: FakeChannel,
    Metadata: grpc.Metadata,
  } as unknown as GrpcModule
  const pool = new GrpcChannelPool({ load: async () => module, channelOptions: options.channelOptions })
  return { pool, calls }
}

function request(kind: GrpcMethodKind, metadata: grpc.Metadata, parent: unknown = null): GrpcRequest {
  const io: GrpcCallIo = {
    metadata,
    message: Buffer.from('m'),
    credentials: undefined,
    parent,
    propagateFlags: undefined,
    host: undefined,
    attach() {},
    deliverMetadata() {},
    deliverMessage() {},
    deliverStatus() {},
  }
  return { service: 'echo', path: '/pkg.Echo/Unary', kind, metadata, io }
}

function context(clock: ManualClock, timeoutMs: number, attempt = 0): Context {
  const ctx = Context.create({ clock, random: seededRandom(1), cancel: new Cancellation() })
    .with(ENDPOINT, new Endpoint({ address: '10.0.0.1:50051' }))
    .withDeadline(clock.now() + timeoutMs)
  return attempt > 0 ? ctx.withAttempt(attempt) : ctx
}

const ok = (metadata: GrpcMetadata) => ({ code: 0, details: 'OK', metadata })

describe('grpcTimeout', () => {
  it('writes the time left as grpc-js does: rounded up, in the finest unit of 8 digits', () => {
    expect(grpcTimeout(1500)).toBe('1500m')
    expect(grpcTimeout(1.2)).toBe('2m')
    // A whole number that float arithmetic left a hair above stays whole.
    const start = 523_251.029_317_454_84
    expect(start + 3000 - start).not.toBe(3000)
    expect(grpcTimeout(start + 3000 - start)).toBe('3000m')
    expect(grpcTimeout(0)).toBe('0m')
    expect(grpcTimeout(-5)).toBe('0m')
    expect(grpcTimeout(99_999_999)).toBe('99999999m')
    expect(grpcTimeout(100_000_000)).toBe('100000S')
    expect(grpcTimeout(1e11)).toBe('1666667M')
    expect(grpcTimeout(6e12)).toBe('1666667H')
    expect(grpcTimeout(3.6e14)).toBeUndefined()
  })
})

describe('grpcTransport', () => {
  it('sends a unary deadline as grpc-timeout, gives grpc-js none, and leaves the caller metadata as it was', async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const transport = grpcTransport(pool)
    const clock = new ManualClock()
    const metadata = new grpc.Metadata()
    metadata.set('x-k', 'v')
    const pending = transport(request('unary', metadata), context(clock, 1500))
    const seen = calls[0]!
    expect(seen.deadline).toBe(Number.POSITIVE_INFINITY)
    expect(seen.metadata!.get('grpc-timeout')).toEqual(['1500m'])
    expect(seen.metadata!.get('x-k')).toEqual(['v'])
    expect(metadata.get('grpc-timeout')).toEqual([])
    seen.listener!.onReceiveMetadata(new grpc.Metadata())
    seen.listener!.onReceiveMessage(Buffer.from('r'))
    seen.listener!.onReceiveStatus(ok(new grpc.Metadata()))
    const res: GrpcResponse = await pending
    expect(res.status?.code).toBe(0)
    expect(res.message).toEqual(Buffer.from('r'))
    expect(res.committed).toBe(true)
    expect(res.peer).toBe('10.0.0.1:50051')
  })

  it("sends no grpc-timeout, and gives grpc-js no deadline, for the mesh's own timeout alone (ctx.localDeadline)", async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const transport = grpcTransport(pool)
    const ctx = context(new ManualClock(), 1500)
    const pending = transport(request('unary', new grpc.Metadata()), ctx.withDeadline(ctx.deadline, true))
    const seen = calls[0]!
    expect(seen.deadline).toBe(Number.POSITIVE_INFINITY)
    expect(seen.metadata!.get('grpc-timeout')).toEqual([])
    seen.listener!.onReceiveStatus(ok(new grpc.Metadata()))
    expect((await pending).status?.code).toBe(0)
  })

  it('adds grpc-previous-rpc-attempts next to grpc-timeout on a retry, in one copy', async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const metadata = new grpc.Metadata()
    void grpcTransport(pool)(request('unary', metadata), context(new ManualClock(), 250, 2))
    expect(calls[0]!.metadata!.get('grpc-previous-rpc-attempts')).toEqual(['2'])
    expect(calls[0]!.metadata!.get('grpc-timeout')).toEqual(['250m'])
    expect(metadata.get('grpc-previous-rpc-attempts')).toEqual([])
  })

  it('gives grpc-js the deadline for streams, parent calls and service-config channels', async () => {
    const clock = new ManualClock()
    const cases: [GrpcMethodKind, unknown, Record<string, unknown> | undefined][] = [
      ['server-stream', null, undefined],
      ['bidi', null, undefined],
      ['unary', { getDeadline: () => Number.POSITIVE_INFINITY }, undefined],
      ['unary', null, { 'grpc.service_config': '{}' }],
    ]
    for (const [kind, parent, channelOptions] of cases) {
      const { pool, calls } = fakePool({ channelOptions })
      await pool.load()
      const transport = grpcTransport(pool, { deadlineAsMetadata: !pool.hasServiceConfig })
      void transport(request(kind, new grpc.Metadata(), parent), context(clock, 1500))
      // A streaming attempt starts on the next microtask (D38).
      await Promise.resolve()
      const seen = calls[0]!
      expect(seen.deadline).toEqual(new Date(clock.wall() + 1500))
      expect(seen.metadata!.get('grpc-timeout')).toEqual([])
    }
  })

  it('sends no deadline when the call has none', async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const metadata = new grpc.Metadata()
    void grpcTransport(pool)(request('unary', metadata), context(new ManualClock(), Number.POSITIVE_INFINITY))
    expect(calls[0]!.deadline).toBe(Number.POSITIVE_INFINITY)
    expect(calls[0]!.metadata).toBe(metadata)
  })

  it('cancels the grpc-js call when the attempt is cancelled, and rejects with the reason', async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const ctx = context(new ManualClock(), 1500)
    const pending = grpcTransport(pool)(request('unary', new grpc.Metadata()), ctx)
    const reason = new Error('deadline')
    ctx.cancel.abort(reason)
    await expect(pending).rejects.toBe(reason)
    expect(calls[0]!.cancelled).toBe('Cancelled by meshlet')
    expect(ctx.cancel.listenerCount).toBe(0)
    // The status that follows the cancellation gives the channel back.
    calls[0]!.listener!.onReceiveStatus({ code: 1, details: 'Cancelled', metadata: new grpc.Metadata() })
    expect(pool.peek('10.0.0.1:50051')!.active).toBe(0)
  })

  it('never starts a streaming attempt cancelled right after it began (cancel_after_begin)', async () => {
    const { pool, calls } = fakePool()
    await pool.load()
    const ctx = context(new ManualClock(), Number.POSITIVE_INFINITY)
    const pending = grpcTransport(pool)(request('bidi', new grpc.Metadata()), ctx)
    const reason = new Error('cancelled by the caller')
    ctx.cancel.abort(reason)
    await expect(pending).rejects.toBe(reason)
    expect(calls[0]!.listener).toBeUndefined()
    expect(pool.peek('10.0.0.1:50051')!.active).toBe(0)
  })

  it('cancels the child call that grpc-js creates after a cancellation in its resolving window', async () => {
    const cancelled: string[] = []
    const child = { cancelWithStatus: (_c: number, d: string) => cancelled.push(`child:${d}`) }
    // grpc-js's ResolvingCall: no child yet at the cancellation, one made a few microtasks later.
    const resolving = {
      child: null as unknown,
      getConfig() {},
      cancelWithStatus: (_c: number, d: string) => cancelled.push(`call:${d}`),
    } as unknown as GrpcRawCall & { child: unknown }
    cancelCall(resolving, 1, 'Cancelled on client')
    await Promise.resolve()
    resolving.child = child
    await new Promise((resolve) => setImmediate(resolve))
    expect(cancelled).toEqual(['call:Cancelled on client', 'child:Cancelled on client'])
  })
})
