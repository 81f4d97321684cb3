/**
 * Acceptance 5 of issue 8: a gRPC service config with a retryPolicy or a hedgingPolicy, read by
 * `fromGrpcServiceConfig`, makes the mesh behave as grpc-js itself behaves with the same
 * config (channel option `grpc.service_config`) on the same server: the same attempts reach the
 * server, with the same `grpc-previous-rpc-attempts`, and the call ends with the same status.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { fromGrpcServiceConfig } from '../src/adapters/grpc/service-config.js'
import { createMesh } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import {
  EchoClient,
  type EchoHandlers,
  type EchoReply,
  startGrpcServer,
  statusError,
} from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>

interface Seen {
  readonly code: number
  readonly calls: number
  readonly cancelled: number
  readonly previousAttempts: string[]
}

/** Per call: the attempt number (grpc-previous-rpc-attempts) it arrived as. */
const attemptOf = (md: grpc.Metadata) => Number(md.get('grpc-previous-rpc-attempts')[0] ?? 0)

async function run(handlers: () => EchoHandlers, client: (address: string) => AnyClient): Promise<Seen> {
  const s = await startGrpcServer(handlers())
  cleanup.push(() => s.close())
  const c = client(s.address)
  cleanup.push(() => c.close())
  const code = await new Promise<number>((resolve) =>
    c.Unary({ text: 'x' }, (e: grpc.ServiceError | null, _r?: EchoReply) =>
      resolve(e ? e.code : grpc.status.OK),
    ),
  )
  // Let a losing hedge's cancellation reach the server.
  await new Promise((r) => setTimeout(r, 50))
  return { code, calls: s.calls, cancelled: s.cancelled, previousAttempts: [...s.previousAttempts] }
}

function viaGrpcJs(serviceConfig: object) {
  return (address: string) =>
    new EchoClient(address, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify(serviceConfig),
    }) as AnyClient
}

function viaMeshlet(serviceConfig: object) {
  return (address: string) => {
    const { service, unsupported } = fromGrpcServiceConfig(serviceConfig as Record<string, unknown>)
    expect(unsupported).toEqual([])
    const m = createMesh({ services: { echo: { ...service, endpoints: [address] } } })
    cleanup.push(() => m.close({ force: true }))
    return withMeshGrpc(new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient, m)
  }
}

const name = [{ service: 'meshlet.test.Echo' }]
const retryConfig = (codes = ['UNAVAILABLE']) => ({
  methodConfig: [
    {
      name,
      retryPolicy: {
        maxAttempts: 4,
        initialBackoff: '0.01s',
        maxBackoff: '0.05s',
        backoffMultiplier: 2,
        retryableStatusCodes: codes,
      },
    },
  ],
})
const hedgingConfig = {
  methodConfig: [
    { name, hedgingPolicy: { maxAttempts: 3, hedgingDelay: '0.1s', nonFatalStatusCodes: ['UNAVAILABLE'] } },
  ],
}

const failFirst = (n: number, code: grpc.status) => (): EchoHandlers => ({
  Unary: (call, cb) =>
    attemptOf(call.metadata) < n
      ? cb(statusError(code, 'not yet'))
      : cb(null, { text: 'ok', index: 0, server: 's' }),
})
const always = (code: grpc.status) => (): EchoHandlers => ({
  Unary: (_call, cb) => cb(statusError(code, 'no')),
})
const firstHangs = (): EchoHandlers => ({
  Unary: (call, cb) => {
    if (attemptOf(call.metadata) > 0) cb(null, { text: 'ok', index: 0, server: 's' })
  },
})

describe('a gRPC service config behaves in the mesh as in grpc-js', () => {
  const cases: Array<[string, object, () => EchoHandlers, Partial<Seen>]> = [
    [
      'retry: UNAVAILABLE twice, then OK',
      retryConfig(),
      failFirst(2, grpc.status.UNAVAILABLE),
      { calls: 3, code: 0 },
    ],
    ['retry: UNAVAILABLE always', retryConfig(), always(grpc.status.UNAVAILABLE), { calls: 4, code: 14 }],
    [
      'retry: INVALID_ARGUMENT is not retried',
      retryConfig(),
      always(grpc.status.INVALID_ARGUMENT),
      { calls: 1, code: 3 },
    ],
    ['hedging: a stalled first attempt loses to the hedge', hedgingConfig, firstHangs, { calls: 2, code: 0 }],
    [
      'hedging: non-fatal codes send the next hedge at once',
      hedgingConfig,
      always(grpc.status.UNAVAILABLE),
      { calls: 3, code: 14 },
    ],
    [
      'hedging: a fatal code ends the call',
      hedgingConfig,
      always(grpc.status.INTERNAL),
      { calls: 1, code: 13 },
    ],
  ]
  for (const [title, config, handlers, expected] of cases) {
    it(title, async () => {
      const grpcJs = await run(handlers, viaGrpcJs(config))
      expect(grpcJs).toMatchObject(expected)
      const meshlet = await run(handlers, viaMeshlet(config))
      expect(meshlet).toEqual(grpcJs)
    })
  }

  it('retry: other retryable codes (RESOURCE_EXHAUSTED)', async () => {
    const config = retryConfig(['UNAVAILABLE', 'RESOURCE_EXHAUSTED'])
    const grpcJs = await run(failFirst(2, grpc.status.RESOURCE_EXHAUSTED), viaGrpcJs(config))
    expect(grpcJs).toMatchObject({ calls: 3, code: 0 })
    expect(await run(failFirst(2, grpc.status.RESOURCE_EXHAUSTED), viaMeshlet(config))).toEqual(grpcJs)
  })
})
