/**
 * Real grpc-js servers on 127.0.0.1, port 0, for the gRPC integration tests: the `Echo` service
 * of `test/fixtures/echo.proto` with handlers given per test, counting the calls it received
 * and the calls it saw cancelled, so a test can tell what reached the wire.
 */
import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))

/** The Echo package definition (proto-loader). */
export const echoDefinition = protoLoader.loadSync(fixture('echo.proto'), { keepCase: true, defaults: true })
/** The grpc.health.v1 package definition (proto-loader). */
export const healthDefinition = protoLoader.loadSync(fixture('health.proto'), {
  keepCase: true,
  defaults: true,
})

// biome-ignore lint/suspicious/noExplicitAny: loadPackageDefinition is untyped without generated code
const echoPackage = grpc.loadPackageDefinition(echoDefinition) as any
/** The Echo client class, as `loadPackageDefinition` makes it. */
export const EchoClient: grpc.ServiceClientConstructor = echoPackage.meshlet.test.Echo
/** The service definition of Echo (for `server.addService` and `makeClientConstructor`). */
export const echoService: grpc.ServiceDefinition = EchoClient.service

/** An Echo request. */
export interface EchoRequest {
  text: string
  count: number
}
/** An Echo reply. */
export interface EchoReply {
  text: string
  index: number
  server: string
}

/** Handlers of the Echo methods; a missing one answers as an echo. */
export interface EchoHandlers {
  Unary?: grpc.handleUnaryCall<EchoRequest, EchoReply>
  ServerStream?: grpc.handleServerStreamingCall<EchoRequest, EchoReply>
  ClientStream?: grpc.handleClientStreamingCall<EchoRequest, EchoReply>
  Bidi?: grpc.handleBidiStreamingCall<EchoRequest, EchoReply>
}

/** A running server. */
export interface GrpcTestServer {
  /** `127.0.0.1:<port>`: an endpoint of a grpc service in the mesh config. */
  readonly address: string
  readonly port: number
  readonly server: grpc.Server
  /** Calls received so far, all methods. */
  readonly calls: number
  /** Calls the server saw cancelled by the client (or by their deadline). */
  readonly cancelled: number
  /** The `grpc-previous-rpc-attempts` metadata of each call received, `''` when absent. */
  readonly previousAttempts: string[]
  /** Resolves when `n` calls have been cancelled. */
  waitForCancelled(n?: number): Promise<void>
  close(): Promise<void>
}

/** Options of {@link startGrpcServer}. */
export interface GrpcTestServerOptions {
  /** Serve grpc.health.v1 with this status for `''` (and any service). Default: no health service. */
  readonly health?: () => 'SERVING' | 'NOT_SERVING'
  /** A name put in each reply's `server` field. Default the address. */
  readonly name?: string
}

/** Starts an Echo server; handlers not given echo their input. */
export async function startGrpcServer(
  handlers: EchoHandlers = {},
  options: GrpcTestServerOptions = {},
): Promise<GrpcTestServer> {
  const server = new grpc.Server()
  let calls = 0
  let cancelled = 0
  const previousAttempts: string[] = []
  const cancelWaiters: Array<() => void> = []
  let name = options.name ?? ''
  const track = (call: { metadata: grpc.Metadata; on(event: 'cancelled', fn: () => void): unknown }) => {
    calls++
    const prev = call.metadata.get('grpc-previous-rpc-attempts')[0]
    previousAttempts.push(prev === undefined ? '' : String(prev))
    call.on('cancelled', () => {
      cancelled++
      for (const w of cancelWaiters.splice(0)) w()
    })
  }
  server.addService(echoService, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      track(call)
      if (handlers.Unary) return handlers.Unary(call, cb)
      cb(null, { text: call.request.text, index: 0, server: name })
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      track(call)
      if (handlers.ServerStream) return handlers.ServerStream(call)
      for (let i = 0; i < call.request.count; i++)
        call.write({ text: call.request.text, index: i, server: name })
      call.end()
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      track(call)
      if (handlers.ClientStream) return handlers.ClientStream(call, cb)
      const texts: string[] = []
      call.on('data', (r: EchoRequest) => texts.push(r.text))
      call.on('end', () => cb(null, { text: texts.join(','), index: texts.length, server: name }))
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      track(call)
      if (handlers.Bidi) return handlers.Bidi(call)
      let i = 0
      call.on('data', (r: EchoRequest) => call.write({ text: r.text, index: i++, server: name }))
      call.on('end', () => call.end())
    },
  })
  if (options.health) {
    const health = options.health
    // biome-ignore lint/suspicious/noExplicitAny: untyped package definition
    const pkg = grpc.loadPackageDefinition(healthDefinition) as any
    server.addService(pkg.grpc.health.v1.Health.service, {
      Check(_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
        cb(null, { status: health() })
      },
      Watch(call: grpc.ServerWritableStream<unknown, unknown>) {
        call.end()
      },
    })
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  )
  const address = `127.0.0.1:${port}`
  if (name === '') name = address
  return {
    address,
    port,
    server,
    get calls() {
      return calls
    },
    get cancelled() {
      return cancelled
    },
    previousAttempts,
    waitForCancelled(n = 1) {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (cancelled >= n) resolve()
          else cancelWaiters.push(check)
        }
        check()
      })
    },
    close() {
      return new Promise<void>((resolve) => {
        server.forceShutdown()
        resolve()
      })
    },
  }
}

/** A status error for a handler to fail with, with optional trailers. */
export function statusError(
  code: grpc.status,
  details: string,
  trailers: Record<string, string> = {},
): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata()
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v)
  return { code, details, metadata }
}
