/**
 * Routing gRPC calls by full method name and by metadata, to subsets, against real grpc-js
 * servers on 127.0.0.1; and an injected abort answered with its gRPC status.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, type MeshConfig, withMesh } from '../src/index.js'
import { EchoClient, type EchoReply, startGrpcServer } from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})
// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

const unary = (c: AnyClient, text: string, md = new grpc.Metadata()) =>
  new Promise<{ reply?: EchoReply; error?: grpc.ServiceError }>((resolve) => {
    c.Unary({ text, count: 0 }, md, (error: grpc.ServiceError | null, reply: EchoReply) =>
      resolve(error ? { error } : { reply }),
    )
  })

async function setup(routes: MeshConfig['routes']) {
  const v1 = await startGrpcServer({}, { name: 'v1' })
  const v2 = await startGrpcServer({}, { name: 'v2' })
  cleanup.push(
    () => v1.close(),
    () => v2.close(),
  )
  const mesh = createMesh({
    services: {
      echo: {
        protocol: 'grpc',
        endpoints: [
          { url: v1.address, labels: { version: 'v1' } },
          { url: v2.address, labels: { version: 'v2' } },
        ],
        subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
      },
    },
    routes,
  })
  const c = withMesh(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, mesh)
  cleanup.push(
    () => mesh.close({ force: true }),
    () => c.close(),
  )
  return c
}

describe('gRPC routing', () => {
  it('routes by metadata and by full method name, first match wins', async () => {
    const c = await setup([
      { match: [{ headers: { 'x-canary': { exact: 'on' } } }], route: [{ service: 'echo', subset: 'v2' }] },
      {
        match: [{ path: { exact: '/meshlet.test.Echo/Unary' } }],
        route: [{ service: 'echo', subset: 'v1' }],
      },
    ])
    const canary = new grpc.Metadata()
    canary.set('x-canary', 'on')
    for (let i = 0; i < 5; i++) {
      expect((await unary(c, 'a', canary)).reply?.server).toBe('v2')
      expect((await unary(c, 'b')).reply?.server).toBe('v1')
    }
  })

  it('answers an injected abort with its gRPC status, without reaching a server', async () => {
    const c = await setup([
      {
        route: [{ service: 'echo' }],
        fault: { abort: { percent: 100, grpcStatus: grpc.status.UNAVAILABLE } },
      },
    ])
    const { error } = await unary(c, 'x')
    expect(error?.code).toBe(grpc.status.UNAVAILABLE)
    expect(error?.details).toBe('fault filter abort')
  })

  it('a target naming no service passes through when no route takes the call, unless the mesh is strict', async () => {
    const own = await startGrpcServer({}, { name: 'own' })
    const v2 = await startGrpcServer({}, { name: 'v2' })
    cleanup.push(
      () => own.close(),
      () => v2.close(),
    )
    const config = (strict: boolean): MeshConfig => ({
      strict,
      services: {
        echo: { protocol: 'grpc', endpoints: [{ url: v2.address, labels: { version: 'v2' } }] },
      },
      routes: [{ match: [{ headers: { 'x-canary': { exact: 'on' } } }], route: [{ service: 'echo' }] }],
    })
    const canary = new grpc.Metadata()
    canary.set('x-canary', 'on')
    for (const strict of [false, true]) {
      const mesh = createMesh(config(strict))
      // The target is an address, which names no service of the config.
      const c = withMesh(new EchoClient(own.address, grpc.credentials.createInsecure()) as AnyClient, mesh)
      cleanup.push(
        () => mesh.close({ force: true }),
        () => c.close(),
      )
      // A route that matches the metadata still takes the call.
      expect((await unary(c, 'a', canary)).reply?.server).toBe('v2')
      const plain = await unary(c, 'b')
      if (strict) {
        expect(plain.error?.code).toBe(grpc.status.UNAVAILABLE)
        expect(plain.error).toMatchObject({ meshCode: 'UNKNOWN_SERVICE' })
      } else {
        // No route matched: the client's own channel, untouched.
        expect(plain.reply?.server).toBe('own')
        expect(plain.reply?.text).toBe('b')
      }
    }
  })
})

describe('gRPC calls by a service alias (hosts)', () => {
  it('reaches the service by any of its hosts, and routes see the service name', async () => {
    const v1 = await startGrpcServer({}, { name: 'v1' })
    const v2 = await startGrpcServer({}, { name: 'v2' })
    cleanup.push(
      () => v1.close(),
      () => v2.close(),
    )
    const mesh = createMesh({
      services: {
        echo: {
          protocol: 'grpc',
          hosts: ['echo.default.svc.cluster.local'],
          endpoints: [
            { url: v1.address, labels: { version: 'v1' } },
            { url: v2.address, labels: { version: 'v2' } },
          ],
          subsets: { v2: { version: 'v2' } },
        },
      },
      strict: true,
    })
    const byAlias = withMesh(
      new EchoClient('echo.default.svc.cluster.local:50051', grpc.credentials.createInsecure()) as AnyClient,
      mesh,
    )
    cleanup.push(
      () => mesh.close({ force: true }),
      () => byAlias.close(),
    )
    // A strict mesh refuses a target it does not know: an answer proves the alias named the service.
    const { reply } = await unary(byAlias, 'a')
    expect(['v1', 'v2']).toContain(reply?.server)

    mesh.update({
      services: mesh.config.services,
      routes: [{ match: [{ host: 'echo' }], route: [{ service: 'echo', subset: 'v2' }] }],
      strict: true,
    } as MeshConfig)
    for (let i = 0; i < 4; i++) expect((await unary(byAlias, 'b')).reply?.server).toBe('v2')
  })
})
