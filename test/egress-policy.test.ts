import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh, isMeshError, type MeshConfig, withMesh } from '../src/index.js'
import { EchoClient, startGrpcServer } from './helpers/grpc-servers.js'
import { startServer } from './helpers/servers.js'

// biome-ignore lint/suspicious/noExplicitAny: the Echo client's methods are untyped without codegen
type AnyClient = grpc.Client & Record<string, any>
const cleanup: (() => unknown)[] = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const egress: NonNullable<MeshConfig['egress']> = [
  { name: 'no-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
  {
    name: 'allowed',
    rules: [
      { to: [{ operation: { hosts: ['users'], methods: ['GET'], paths: ['/api/*'] } }] },
      { to: [{ operation: { hosts: ['echo'], paths: ['/meshlet.test.Echo/Unary'] } }] },
    ],
  },
]

describe('egress access policy', () => {
  it('lets allowed fetch calls through and refuses the rest with ACCESS_DENIED before any network call', async () => {
    const server = await startServer((_req, res) => void res.end('ok'))
    cleanup.push(() => server.close())
    const mesh = createMesh({
      services: { users: { endpoints: [server.url] }, billing: { endpoints: [server.url] } },
      egress,
    })
    cleanup.push(() => mesh.close({ force: true }))
    const f = withMesh(fetch, mesh)
    expect(await (await f('http://users/api/x?q=1')).text()).toBe('ok')
    for (const [url, init, rule] of [
      ['http://users/api/x', { method: 'POST' }, -1],
      ['http://users/other', {}, -1],
      ['http://billing/api/x', {}, -1],
      ['http://users/admin/x', {}, 0],
    ] as const) {
      const error = await f(url, init).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(isMeshError(error, 'ACCESS_DENIED'), url).toBe(true)
      expect((error as { rule: number }).rule).toBe(rule)
    }
    expect(server.requests).toBe(1)
  })

  it("answers Envoy's 403 with meshErrors 'respond', and routed calls are judged by the requested host", async () => {
    const server = await startServer((_req, res) => void res.end('ok'))
    cleanup.push(() => server.close())
    const mesh = createMesh({
      services: { users: { endpoints: [server.url] }, shadow: { endpoints: [server.url] } },
      routes: [{ match: [{ host: 'shadow' }], route: [{ service: 'users' }] }],
      egress,
      meshErrors: 'respond',
    })
    cleanup.push(() => mesh.close({ force: true }))
    const f = withMesh(fetch, mesh)
    const denied = await f('http://shadow/api/x')
    expect(denied.status).toBe(403)
    expect(await denied.text()).toBe('RBAC: access denied')
    expect((await f('http://users/api/x')).status).toBe(200)
    expect(server.requests).toBe(1)
  })

  it('refuses a gRPC method no rule allows with PERMISSION_DENIED, never reaching the server', async () => {
    const server = await startGrpcServer()
    cleanup.push(() => server.close())
    const mesh = createMesh({ services: { echo: { protocol: 'grpc', endpoints: [server.address] } }, egress })
    const c = withMesh(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, mesh)
    cleanup.push(
      () => mesh.close({ force: true }),
      () => c.close(),
    )
    const ok = await new Promise<grpc.ServiceError | null>((r) =>
      c.Unary({ text: 'a', count: 0 }, (e: grpc.ServiceError | null) => r(e)),
    )
    expect(ok).toBeNull()
    const stream = c.ServerStream({ text: 'a', count: 1 }) as grpc.ClientReadableStream<unknown>
    const error = await new Promise<grpc.ServiceError>((resolve) => {
      stream.on('data', () => {})
      stream.on('error', resolve)
      stream.on('end', () => resolve(new Error('ended') as grpc.ServiceError))
    })
    expect(error.code).toBe(grpc.status.PERMISSION_DENIED)
    expect(server.calls).toBe(1)
  })

  it('refuses a policy it cannot use as config, naming the path', () => {
    expect(() =>
      createMesh({ services: {}, egress: [{ rules: [{ to: [{ operation: { paths: [''] } }] }] }] }),
    ).toThrow(/egress/)
    expect(() => createMesh({ services: {}, egress: [{ action: 'CUSTOM' as never }] })).toThrow(
      /egress\[0\]\.action/,
    )
  })
})
