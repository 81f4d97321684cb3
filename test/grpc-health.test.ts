/**
 * The `grpc.health.v1` probe against real grpc-js servers: SERVING is healthy; NOT_SERVING, a
 * server without the health service, and a probe that outlives its timeout are not.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { GrpcChannelPool } from '../src/adapters/grpc/channels.js'
import { grpcHealthProbe } from '../src/adapters/grpc/health.js'
import { Cancellation, Context, Endpoint, systemClock, systemRandom } from '../src/index.js'
import { startGrpcServer } from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

function probeContext(timeoutMs: number): { ctx: Context; cancel: Cancellation } {
  const cancel = new Cancellation()
  const ctx = Context.create({
    clock: systemClock,
    random: systemRandom,
    cancel,
    deadline: systemClock.now() + timeoutMs,
  })
  return { ctx, cancel }
}

describe('grpcHealthProbe', () => {
  it('is healthy while the server answers SERVING, and not once it answers NOT_SERVING', async () => {
    let status: 'SERVING' | 'NOT_SERVING' = 'SERVING'
    const s = await startGrpcServer({}, { health: () => status })
    cleanup.push(() => s.close())
    const channels = new GrpcChannelPool()
    cleanup.push(() => channels.close())
    const probe = grpcHealthProbe({ channels })
    const endpoint = new Endpoint({ address: s.address })
    expect(await probe(endpoint, probeContext(1000).ctx)).toBe(true)
    status = 'NOT_SERVING'
    expect(await probe(endpoint, probeContext(1000).ctx)).toBe(false)
    expect(channels.size).toBe(1)
  })

  it('is unhealthy without a health service, or when nothing listens', async () => {
    const s = await startGrpcServer()
    cleanup.push(() => s.close())
    const channels = new GrpcChannelPool()
    cleanup.push(() => channels.close())
    const probe = grpcHealthProbe({ channels })
    expect(await probe(new Endpoint({ address: s.address }), probeContext(1000).ctx)).toBe(false)
    await s.close()
    expect(await probe(new Endpoint({ address: s.address }), probeContext(1000).ctx)).toBe(false)
  })

  it('is unhealthy when the probe times out, and the call is cancelled', async () => {
    const server = new grpc.Server()
    let cancelled = false
    const { healthDefinition } = await import('./helpers/grpc-servers.js')
    // biome-ignore lint/suspicious/noExplicitAny: untyped package definition
    const pkg = grpc.loadPackageDefinition(healthDefinition) as any
    server.addService(pkg.grpc.health.v1.Health.service, {
      Check(call: grpc.ServerUnaryCall<unknown, unknown>) {
        call.on('cancelled', () => {
          cancelled = true
        })
      },
    })
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    )
    cleanup.push(() => server.forceShutdown())
    const channels = new GrpcChannelPool()
    cleanup.push(() => channels.close())
    const probe = grpcHealthProbe({ channels })
    const { ctx, cancel } = probeContext(5000)
    const result = probe(new Endpoint({ address: `127.0.0.1:${port}` }), ctx)
    setTimeout(() => cancel.abort(new Error('probe timeout')), 50)
    expect(await result).toBe(false)
    await new Promise((r) => setTimeout(r, 50))
    expect(cancelled).toBe(true)
  })
})
