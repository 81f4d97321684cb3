/**
 * The endpoint channels of a meshed grpc-js client: created on the first call to an endpoint,
 * shared by the clients of one mesh, retired when the endpoint leaves the config (once its calls
 * end), closed by `mesh.close()`; and a target naming no configured service passes through.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createMesh, type MeshConfig } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import { meshOf as meshOfGrpc, withMesh } from '../src/mesh/with-mesh.js'
import { EchoClient, type EchoReply, startGrpcServer } from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

const unary = (c: AnyClient, text = 'x') =>
  new Promise<{ error: grpc.ServiceError | null; reply: EchoReply | undefined }>((resolve) =>
    c.Unary({ text }, (error: grpc.ServiceError | null, reply?: EchoReply) => resolve({ error, reply })),
  )

/** Records the targets of the grpc-js channels created and closed from now on. */
function watchChannels() {
  const created: string[] = []
  const closed: string[] = []
  const proto = grpc.Channel.prototype
  const close = proto.close
  vi.spyOn(proto, 'close').mockImplementation(function (this: grpc.Channel) {
    closed.push(this.getTarget())
    close.call(this)
  })
  const createCall = proto.createCall
  vi.spyOn(proto, 'createCall').mockImplementation(function (this: grpc.Channel, ...args) {
    if (!created.includes(this.getTarget())) created.push(this.getTarget())
    return createCall.apply(this, args)
  })
  return { created, closed }
}

const config = (...endpoints: string[]): MeshConfig => ({
  services: { echo: { protocol: 'grpc', endpoints, loadBalancer: 'round-robin' } },
})

describe('endpoint channels', () => {
  it('are made on first use, shared by clients, retired with their endpoint and closed with the mesh', async () => {
    let release: () => void = () => {}
    const a = await startGrpcServer({
      Unary: (call, cb) => {
        if (call.request.text === 'hold') release = () => cb(null, { text: 'held', index: 0, server: 'a' })
        else cb(null, { text: call.request.text, index: 0, server: 'a' })
      },
    })
    const b = await startGrpcServer()
    cleanup.push(
      () => a.close(),
      () => b.close(),
    )
    const { created, closed } = watchChannels()
    const m = createMesh(config(a.address))
    cleanup.push(() => m.close({ force: true }))
    const one = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
    const two = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
    expect(created).toEqual([])
    expect((await unary(one)).reply?.server).toBe('a')
    expect((await unary(two)).reply?.server).toBe('a')
    expect(created).toEqual([`dns:${a.address}`])

    // A call in flight on a keeps a's channel open across the update that removes a.
    const held = unary(one, 'hold')
    await vi.waitFor(() => expect(a.calls).toBe(3))
    // The application's listeners are its own: clearing them leaves the mesh's wiring alone.
    m.events.clear()
    m.update(config(b.address))
    expect(closed).toEqual([])
    expect((await unary(two)).reply?.server).toBe(b.address)
    release()
    expect((await held).reply?.text).toBe('held')
    await vi.waitFor(() => expect(closed).toEqual([`dns:${a.address}`]))

    await m.close()
    expect(closed).toEqual([`dns:${a.address}`, `dns:${b.address}`])
    expect((await unary(one)).error?.code).toBe(grpc.status.UNAVAILABLE)
  })

  it('pass calls to a service the mesh does not know through to the client; strict refuses them', async () => {
    const s = await startGrpcServer()
    cleanup.push(() => s.close())
    const m = createMesh(config('127.0.0.1:1'))
    cleanup.push(() => m.close({ force: true }))
    const direct = withMeshGrpc(new EchoClient(s.address, grpc.credentials.createInsecure()) as AnyClient, m)
    cleanup.push(() => direct.close())
    expect((await unary(direct, 'through')).reply?.text).toBe('through')

    const strict = createMesh({ ...config('127.0.0.1:1'), strict: true })
    cleanup.push(() => strict.close({ force: true }))
    const refused = withMeshGrpc(
      new EchoClient(s.address, grpc.credentials.createInsecure()) as AnyClient,
      strict,
    )
    cleanup.push(() => refused.close())
    const r = await unary(refused)
    expect(r.error?.code).toBe(grpc.status.UNAVAILABLE)
    expect((r.error as grpc.ServiceError & { meshCode?: string }).meshCode).toBe('UNKNOWN_SERVICE')
    expect(s.calls).toBe(1)
  })

  it('report the service as READY to waitForReady once an endpoint is', async () => {
    const s = await startGrpcServer()
    cleanup.push(() => s.close())
    const m = createMesh(config(s.address))
    cleanup.push(() => m.close({ force: true }))
    const c = withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
    cleanup.push(() => c.close())
    await new Promise<void>((resolve, reject) =>
      c.waitForReady(Date.now() + 2000, (error?: Error) => (error ? reject(error) : resolve())),
    )
    expect(c.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY)
  })

  it('accepts a config instead of a mesh', async () => {
    const s = await startGrpcServer()
    cleanup.push(() => s.close())
    const c = withMesh(
      new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient,
      config(s.address),
    )
    cleanup.push(
      () => c.close(),
      () => meshOfGrpc(c)?.close({ force: true }),
    )
    expect(meshOfGrpc(c)?.config.services.echo?.protocol).toBe('grpc')
    expect((await unary(c, 'cfg')).reply?.text).toBe('cfg')
  })
})
