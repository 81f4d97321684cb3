/**
 * meshlet's unary call layer (src/adapters/grpc/unary.ts, decision D26) against grpc-js's own:
 * every scenario runs the same wrapped client class twice, once on meshlet's layer (the
 * default) and once with `directUnary: false` (grpc-js's `makeUnaryRequest` and interceptor
 * chain), against real grpc-js (or raw HTTP/2) servers on 127.0.0.1, and compares what the
 * application sees: replies, errors and their fields, events and their order.
 */
import * as http2 from 'node:http2'
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { createMesh } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import {
  EchoClient,
  type EchoReply,
  echoService,
  type GrpcTestServer,
  startGrpcServer,
} from './helpers/grpc-servers.js'

const cleanup: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
type AnyClient = grpc.Client & Record<string, any>
type Layer = 'meshlet' | 'grpc-js'
const LAYERS: readonly Layer[] = ['meshlet', 'grpc-js']

async function server(handlers: Parameters<typeof startGrpcServer>[0] = {}): Promise<GrpcTestServer> {
  const s = await startGrpcServer(handlers)
  cleanup.push(() => s.close())
  return s
}

/** A client of `Ctor` for service `echo` at `address`, wrapped on `layer`. */
function wrap(
  layer: Layer,
  address: string,
  Ctor: grpc.ServiceClientConstructor = EchoClient,
  clientOptions: grpc.ClientOptions = {},
): AnyClient {
  const mesh = createMesh({
    services: { echo: { protocol: 'grpc', endpoints: [address], retry: { attempts: 1 } } },
  })
  const client = new Ctor('echo', grpc.credentials.createInsecure(), clientOptions) as AnyClient
  const wrapped = withMeshGrpc(client, mesh, { directUnary: layer === 'meshlet' })
  cleanup.push(async () => {
    wrapped.close()
    await mesh.close({ force: true })
  })
  return wrapped
}

interface Seen {
  readonly events: string[]
  error: grpc.ServiceError | null
  reply: EchoReply | undefined
  status: grpc.StatusObject | undefined
  call: grpc.ClientUnaryCall
}

/** Makes one call with `args` after the request and records what the application sees, in order. */
function record(client: AnyClient, method: string, request: unknown, ...args: unknown[]): Promise<Seen> {
  return new Promise<Seen>((resolve) => {
    const events: string[] = []
    const seen = { events, error: null, reply: undefined, status: undefined } as unknown as Seen
    let pending = 2
    const done = () => {
      if (--pending === 0) resolve(seen)
    }
    seen.call = client[method](request, ...args, (error: grpc.ServiceError | null, reply?: EchoReply) => {
      events.push(error ? `callback error ${error.code}` : 'callback ok')
      seen.error = error
      seen.reply = reply
      done()
    })
    seen.call.on('metadata', (md: grpc.Metadata) =>
      events.push(`metadata ${String(md.get('x-head')[0] ?? '')}`),
    )
    seen.call.on('status', (status: grpc.StatusObject) => {
      events.push(`status ${status.code}`)
      seen.status = status
      done()
    })
  })
}

/** What of an error the application may read (the stack is checked apart). */
function errorView(error: grpc.ServiceError | null) {
  if (error === null) return null
  const e = error as grpc.ServiceError & { meshCode?: string }
  return {
    message: e.message,
    code: e.code,
    details: e.details,
    trailers: withoutDate(e.metadata?.getMap()),
    meshCode: e.meshCode,
    isError: e instanceof Error,
    stackHasCaller: /for call at\n[\s\S]*grpc-unary-layer\.test\.ts/.test(e.stack ?? ''),
  }
}

/**
 * The trailers without the server's `date` header, which two calls made a moment apart can see
 * in different seconds (it made the comparison of the two layers fail at a second's edge).
 */
function withoutDate(map: Record<string, unknown> | undefined) {
  if (map === undefined) return undefined
  const { date: _date, ...rest } = map
  return rest
}

/** Runs `scenario` on both layers and returns the two results. */
async function both<T>(scenario: (layer: Layer) => Promise<T>): Promise<Record<Layer, T>> {
  const out = {} as Record<Layer, T>
  for (const layer of LAYERS) out[layer] = await scenario(layer)
  return out
}

describe("meshlet's unary call layer", () => {
  it('is what a wrapped client without interceptors runs, unless directUnary is false', async () => {
    const s = await server()
    for (const layer of LAYERS) {
      const seen = await record(wrap(layer, s.address), 'Unary', { text: 'a', count: 0 })
      expect(seen.reply?.text).toBe('a')
      expect(seen.call.constructor.name).toBe(layer === 'meshlet' ? 'MeshUnaryCall' : 'ClientUnaryCallImpl')
    }
    expect(s.calls).toBe(2)
  })

  it('takes the four overloads as grpc-js does, and refuses bad arguments with its error', async () => {
    const s = await server({
      Unary(call, cb) {
        const md = new grpc.Metadata()
        md.set('x-head', String(call.metadata.get('x-in')[0] ?? 'none'))
        call.sendMetadata(md)
        cb(null, { text: call.request.text, index: 0, server: 's' })
      },
    })
    const r = await both(async (layer) => {
      const c = wrap(layer, s.address)
      const md = () => {
        const m = new grpc.Metadata()
        m.set('x-in', layer)
        return m
      }
      const seen = [
        await record(c, 'Unary', { text: '1' }),
        await record(c, 'Unary', { text: '2' }, md()),
        await record(c, 'Unary', { text: '3' }, { deadline: Date.now() + 5000 }),
        await record(c, 'Unary', { text: '4' }, md(), {}),
      ]
      let refused: unknown
      try {
        c.Unary({ text: 'x' }, 'not metadata', {}, () => {})
      } catch (error) {
        refused = error
      }
      return {
        seen: seen.map((x) => ({ events: x.events, reply: x.reply?.text })),
        refused: String(refused),
      }
    })
    expect(r.meshlet.seen.map((x) => x.reply)).toEqual(['1', '2', '3', '4'])
    expect(r.meshlet.seen[1]!.events).toEqual(['metadata meshlet', 'callback ok', 'status 0'])
    expect(r['grpc-js'].seen[1]!.events).toEqual(['metadata grpc-js', 'callback ok', 'status 0'])
    expect(r.meshlet.seen[0]!.events).toEqual(r['grpc-js'].seen[0]!.events)
    expect(r.meshlet.refused).toBe('Error: Incorrect arguments passed')
    expect(r.meshlet.refused).toBe(r['grpc-js'].refused)
  })

  it("reports a server's failure as grpc-js does: fields, trailers, message, caller stack, event order", async () => {
    const s = await server({
      Unary(_call, cb) {
        const trailers = new grpc.Metadata()
        trailers.set('x-trail', 't')
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing', metadata: trailers })
      },
    })
    const r = await both(async (layer) => {
      const seen = await record(wrap(layer, s.address), 'Unary', { text: 'a' })
      return { events: seen.events, error: errorView(seen.error), status: seen.status?.code }
    })
    expect(r.meshlet.error).toMatchObject({
      message: '5 NOT_FOUND: no such thing',
      code: 5,
      details: 'no such thing',
      isError: true,
      stackHasCaller: true,
    })
    expect(r.meshlet.error?.trailers).toMatchObject({ 'x-trail': 't' })
    expect(r.meshlet).toEqual(r['grpc-js'])
  })

  it("reports a mesh failure as grpc-js's layer does (UNAVAILABLE with its meshCode)", async () => {
    // Nothing listens on port 1: the endpoint is unreachable.
    const r = await both(async (layer) => {
      const seen = await record(
        wrap(layer, '127.0.0.1:1'),
        'Unary',
        { text: 'a' },
        { deadline: Date.now() + 5000 },
      )
      const v = errorView(seen.error)
      return { events: seen.events, code: v?.code, meshCode: v?.meshCode, caller: v?.stackHasCaller }
    })
    expect(r.meshlet.code).toBe(grpc.status.UNAVAILABLE)
    expect(r.meshlet.caller).toBe(true)
    expect(r.meshlet).toEqual(r['grpc-js'])
  })

  it('ends a call whose deadline has passed with DEADLINE_EXCEEDED, before anything is sent', async () => {
    const s = await server()
    const r = await both(async (layer) => {
      const seen = await record(wrap(layer, s.address), 'Unary', { text: 'a' }, { deadline: Date.now() - 1 })
      return { events: seen.events, code: seen.error?.code, meshCode: errorView(seen.error)?.meshCode }
    })
    expect(r.meshlet.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    expect(r.meshlet).toEqual(r['grpc-js'])
    expect(s.calls).toBe(0)
  })

  it('cancel() ends the call with CANCELLED, Cancelled on client, and the server sees it cancelled', async () => {
    let arrived: (() => void) | undefined
    const s = await server({
      Unary() {
        // Holds the call: only the cancellation ends it.
        arrived?.()
      },
    })
    const r = await both(async (layer) => {
      const c = wrap(layer, s.address)
      const before = s.cancelled
      const held = new Promise<void>((resolve) => {
        arrived = resolve
      })
      const events: string[] = []
      let resolveFailed: (e: grpc.ServiceError | null) => void = () => {}
      const failed = new Promise<grpc.ServiceError | null>((resolve) => {
        resolveFailed = resolve
      })
      const call: grpc.ClientUnaryCall = c.Unary({ text: 'b' }, (e: grpc.ServiceError | null) => {
        events.push('callback')
        resolveFailed(e)
      })
      call.on('status', (st: grpc.StatusObject) => events.push(`status ${st.code} ${st.details}`))
      await held
      call.cancel()
      const error = await failed
      await s.waitForCancelled(before + 1)
      return { code: error?.code, details: error?.details, events }
    })
    expect(r.meshlet).toMatchObject({ code: grpc.status.CANCELLED, details: 'Cancelled on client' })
    expect(r.meshlet).toEqual(r['grpc-js'])
  })

  it('getPeer() names the endpoint that answered', async () => {
    const s = await server()
    for (const layer of LAYERS) {
      const seen = await record(wrap(layer, s.address), 'Unary', { text: 'a' })
      expect(seen.call.getPeer()).toBe(s.address)
    }
  })

  it.each([
    ['requestSerialize', 'Request message serialization failure: cannot do this', 0],
    ['responseDeserialize', 'Response message parsing error: cannot do this', 1],
  ] as const)('reports a %s failure as grpc-js does (%s); calls sent: %i', async (step, details, sent) => {
    const s = await server()
    const fail = () => {
      throw new Error('cannot do this')
    }
    const failing = { ...echoService, Unary: { ...echoService.Unary!, [step]: fail } }
    const Ctor = grpc.makeClientConstructor(failing, 'Echo')
    const r = await both(async (layer) => {
      const seen = await record(wrap(layer, s.address, Ctor), 'Unary', { text: 'a' })
      return { events: seen.events, error: errorView(seen.error) }
    })
    expect(r.meshlet.error).toMatchObject({ code: grpc.status.INTERNAL, details })
    expect(r.meshlet).toEqual(r['grpc-js'])
    // A request that cannot be written is never sent, by either layer.
    expect(s.calls).toBe(sent * LAYERS.length)
  })

  it('reports an OK status without a message as UNIMPLEMENTED, No message received', async () => {
    // A raw HTTP/2 server: headers, no message, then grpc-status 0.
    const h2 = http2.createServer()
    h2.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true })
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
      stream.resume()
      stream.on('end', () => stream.end())
    })
    await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve))
    cleanup.push(() => new Promise<void>((resolve) => h2.close(() => resolve())))
    const address = `127.0.0.1:${(h2.address() as { port: number }).port}`
    const r = await both(async (layer) => {
      const seen = await record(wrap(layer, address), 'Unary', { text: 'a' })
      return { events: seen.events, error: errorView(seen.error) }
    })
    expect(r.meshlet.error).toMatchObject({ code: grpc.status.UNIMPLEMENTED, details: 'No message received' })
    expect(r.meshlet).toEqual(r['grpc-js'])
  })

  it("leaves calls with interceptors to grpc-js's layer: the call's, the client's", async () => {
    const s = await server()
    const ran: string[] = []
    const interceptor: grpc.Interceptor = (options, next) => {
      ran.push(options.method_definition.path)
      return new grpc.InterceptingCall(next(options))
    }
    const plain = wrap('meshlet', s.address)
    const viaCall = await record(plain, 'Unary', { text: 'a' }, { interceptors: [interceptor] })
    expect(viaCall.reply?.text).toBe('a')
    expect(viaCall.call.constructor.name).toBe('ClientUnaryCallImpl')
    const withClientInterceptor = wrap('meshlet', s.address, EchoClient, { interceptors: [interceptor] })
    const viaClient = await record(withClientInterceptor, 'Unary', { text: 'b' })
    expect(viaClient.reply?.text).toBe('b')
    expect(viaClient.call.constructor.name).toBe('ClientUnaryCallImpl')
    expect(ran).toEqual(['/meshlet.test.Echo/Unary', '/meshlet.test.Echo/Unary'])
    // Both went through the mesh to the one endpoint.
    expect(s.calls).toBe(2)
  })

  it("keeps a subclass's own method, and serves a method's originalName alias", async () => {
    const s = await server()
    let overridden = 0
    class Logged extends (EchoClient as unknown as new (...args: unknown[]) => AnyClient) {
      Unary(...args: unknown[]) {
        overridden++
        return super.Unary(...args)
      }
    }
    const logged = wrap('meshlet', s.address, Logged as unknown as grpc.ServiceClientConstructor)
    const seen = await record(logged, 'Unary', { text: 'a' })
    expect(seen.reply?.text).toBe('a')
    expect(overridden).toBe(1)
    // makeClientConstructor also names each method by its lowerCamel originalName.
    const Made = grpc.makeClientConstructor(
      { Unary: { ...echoService.Unary!, originalName: 'unary' } } as grpc.ServiceDefinition,
      'Echo',
    )
    const made = wrap('meshlet', s.address, Made)
    const alias = await record(made, 'unary', { text: 'b' })
    expect(alias.reply?.text).toBe('b')
    expect(alias.call.constructor.name).toBe('MeshUnaryCall')
  })
})
