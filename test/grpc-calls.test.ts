/**
 * Acceptance 1 of issue 8: a grpc-js client wrapped with the mesh behaves as the bare client
 * for the four shapes of call (messages, status code and message, custom metadata both ways),
 * against a real grpc-js server on 127.0.0.1, whatever way the client class was made.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it } from 'vitest'
import { unaryCall } from '../src/adapters/grpc/promise.js'
import { createMesh, type Mesh } from '../src/index.js'
import { withMeshGrpc } from '../src/mesh/with-grpc.js'
import {
  EchoClient,
  type EchoReply,
  type EchoRequest,
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

/** Copies `x-*` keys of incoming metadata into an object (the ones a test sets). */
function custom(md: grpc.Metadata | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (!md) return out
  for (const [k, v] of Object.entries(md.getMap())) if (k.startsWith('x-')) out[k] = String(v)
  return out
}

/** A server whose handlers echo metadata: headers `x-head`, trailers `x-trail`, fail on text 'fail'. */
async function metadataServer(): Promise<GrpcTestServer> {
  const headers = (call: { metadata: grpc.Metadata }) => {
    const md = new grpc.Metadata()
    md.set('x-head', `h-${String(call.metadata.get('x-in')[0] ?? '')}`)
    return md
  }
  const trailers = () => {
    const md = new grpc.Metadata()
    md.set('x-trail', 't')
    return md
  }
  const s = await startGrpcServer({
    Unary(call, cb) {
      if (call.request.text === 'fail') {
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing', metadata: trailers() })
        return
      }
      call.sendMetadata(headers(call))
      cb(null, { text: call.request.text.toUpperCase(), index: 1, server: 's' }, trailers())
    },
    ServerStream(call) {
      call.sendMetadata(headers(call))
      for (let i = 0; i < call.request.count; i++)
        call.write({ text: call.request.text, index: i, server: 's' })
      if (call.request.text === 'fail') {
        call.emit('error', { code: grpc.status.ABORTED, details: 'stopped half way', metadata: trailers() })
        return
      }
      call.end(trailers())
    },
    ClientStream(call, cb) {
      const texts: string[] = []
      call.on('data', (r: EchoRequest) => texts.push(r.text))
      call.on('end', () => {
        call.sendMetadata(headers(call))
        if (texts.includes('fail'))
          cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad item', metadata: trailers() })
        else cb(null, { text: texts.join('+'), index: texts.length, server: 's' }, trailers())
      })
    },
    Bidi(call) {
      call.sendMetadata(headers(call))
      let i = 0
      call.on('data', (r: EchoRequest) => call.write({ text: `${r.text}!`, index: i++, server: 's' }))
      call.on('end', () => call.end(trailers()))
    },
  })
  cleanup.push(() => s.close())
  return s
}

function meshFor(address: string): Mesh {
  const m = createMesh({ services: { echo: { protocol: 'grpc', endpoints: [address], timeout: '5s' } } })
  cleanup.push(() => m.close({ force: true }))
  return m
}

interface Observed {
  error: { code: number; details: string; trailers: Record<string, unknown> } | undefined
  messages: unknown[]
  headers: Record<string, unknown> | undefined
  status: { code: number; details: string; trailers: Record<string, unknown> } | undefined
}

function observe(
  call: grpc.ClientUnaryCall | grpc.ClientReadableStream<unknown> | grpc.ClientWritableStream<unknown>,
) {
  const seen: Observed = { error: undefined, messages: [], headers: undefined, status: undefined }
  call.on('metadata', (md: grpc.Metadata) => {
    seen.headers = custom(md)
  })
  const status = new Promise<Observed>((resolve) => {
    call.on('status', (s: grpc.StatusObject) => {
      seen.status = { code: s.code, details: s.details, trailers: custom(s.metadata) }
      // The callback (or 'error') may come just before or after 'status'.
      setTimeout(() => resolve(seen), 20)
    })
  })
  return { seen, status }
}

function unary(client: AnyClient, text: string): Promise<Observed> {
  const md = new grpc.Metadata()
  md.set('x-in', text)
  let onDone: (err: grpc.ServiceError | null, res?: EchoReply) => void = () => {}
  const call = client.Unary({ text, count: 0 }, md, (err: grpc.ServiceError | null, res?: EchoReply) =>
    onDone(err, res),
  )
  const { seen, status } = observe(call)
  onDone = (err, res) => {
    if (err) seen.error = { code: err.code, details: err.details, trailers: custom(err.metadata) }
    else seen.messages.push(res)
  }
  return status
}

function serverStream(client: AnyClient, text: string, count: number): Promise<Observed> {
  const md = new grpc.Metadata()
  md.set('x-in', text)
  const call: grpc.ClientReadableStream<EchoReply> = client.ServerStream({ text, count }, md)
  const { seen, status } = observe(call)
  call.on('data', (m: EchoReply) => seen.messages.push(m))
  call.on('error', (err: grpc.ServiceError) => {
    seen.error = { code: err.code, details: err.details, trailers: custom(err.metadata) }
  })
  return status
}

function clientStream(client: AnyClient, texts: string[]): Promise<Observed> {
  const md = new grpc.Metadata()
  md.set('x-in', texts.join(''))
  let onDone: (err: grpc.ServiceError | null, res?: EchoReply) => void = () => {}
  const call: grpc.ClientWritableStream<EchoRequest> = client.ClientStream(
    md,
    (err: grpc.ServiceError | null, res?: EchoReply) => onDone(err, res),
  )
  const { seen, status } = observe(call)
  onDone = (err, res) => {
    if (err) seen.error = { code: err.code, details: err.details, trailers: custom(err.metadata) }
    else seen.messages.push(res)
  }
  for (const text of texts) call.write({ text, count: 0 })
  call.end()
  return status
}

function bidi(client: AnyClient, texts: string[]): Promise<Observed> {
  const md = new grpc.Metadata()
  md.set('x-in', 'bidi')
  const call: grpc.ClientDuplexStream<EchoRequest, EchoReply> = client.Bidi(md)
  const { seen, status } = observe(call)
  call.on('data', (m: EchoReply) => seen.messages.push(m))
  call.on('error', (err: grpc.ServiceError) => {
    seen.error = { code: err.code, details: err.details, trailers: custom(err.metadata) }
  })
  // One message, wait for its echo, then the next: a real conversation.
  let i = 0
  const next = () => {
    if (i < texts.length) call.write({ text: texts[i++]!, count: 0 })
    else call.end()
  }
  call.on('data', next)
  next()
  return status
}

describe('a wrapped grpc-js client behaves as the bare one', () => {
  // [name, run, what the bare client sees: messages, status code, headers sent, trailers]
  const scenarios: Array<[string, (c: AnyClient) => Promise<Observed>, number, number, boolean]> = [
    ['unary', (c) => unary(c, 'hello'), 1, grpc.status.OK, true],
    ['unary failing NOT_FOUND with trailers', (c) => unary(c, 'fail'), 0, grpc.status.NOT_FOUND, false],
    ['server streaming', (c) => serverStream(c, 'tick', 3), 3, grpc.status.OK, true],
    [
      'server streaming failing after two messages',
      (c) => serverStream(c, 'fail', 2),
      2,
      grpc.status.ABORTED,
      true,
    ],
    ['client streaming', (c) => clientStream(c, ['a', 'b', 'c']), 1, grpc.status.OK, true],
    [
      'client streaming failing INVALID_ARGUMENT',
      (c) => clientStream(c, ['a', 'fail']),
      0,
      grpc.status.INVALID_ARGUMENT,
      true,
    ],
    ['bidi streaming', (c) => bidi(c, ['x', 'y', 'z']), 3, grpc.status.OK, true],
  ]
  for (const [name, run, messages, code, headers] of scenarios) {
    it(`${name}: same messages, status and metadata`, async () => {
      const s = await metadataServer()
      const bare = new EchoClient(s.address, grpc.credentials.createInsecure()) as AnyClient
      cleanup.push(() => bare.close())
      const wrapped = withMeshGrpc(
        new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient,
        meshFor(s.address),
      )
      cleanup.push(() => wrapped.close())
      const expected = await run(bare)
      const actual = await run(wrapped)
      expect(expected.messages).toHaveLength(messages)
      expect(expected.status?.code).toBe(code)
      expect(expected.status?.trailers).toEqual({ 'x-trail': 't' })
      expect(expected.headers === undefined).toBe(!headers)
      if (code !== grpc.status.OK) expect(expected.error?.code).toBe(code)
      expect(actual).toEqual(expected)
      expect(s.calls).toBe(2)
    })
  }

  it('keeps the client class: instanceof, method names, close()', async () => {
    const s = await metadataServer()
    const raw = new EchoClient('dns:///echo:50051', grpc.credentials.createInsecure())
    const wrapped = withMeshGrpc(raw, meshFor(s.address))
    expect(wrapped).toBeInstanceOf(EchoClient)
    expect(wrapped).toBeInstanceOf(grpc.Client)
    expect(typeof (wrapped as AnyClient).unary).toBe('function') // grpc-js's camelCase alias
    const res = await new Promise<EchoReply>((resolve, reject) =>
      (wrapped as AnyClient).unary({ text: 'alias' }, (e: Error | null, r: EchoReply) =>
        e ? reject(e) : resolve(r),
      ),
    )
    expect(res.text).toBe('ALIAS')
    wrapped.close()
    expect(() => (wrapped as AnyClient).Unary({ text: 'x' }, () => {})).toThrow(/shut down/)
  })

  it('accepts every unary overload', async () => {
    const s = await metadataServer()
    const c = withMeshGrpc(
      new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient,
      meshFor(s.address),
    )
    cleanup.push(() => c.close())
    const call = (...args: unknown[]) =>
      new Promise<EchoReply>((resolve, reject) =>
        c.Unary({ text: 'o' }, ...args, (e: Error | null, r: EchoReply) => (e ? reject(e) : resolve(r))),
      )
    const md = new grpc.Metadata()
    const opts = { deadline: Date.now() + 5000 }
    for (const args of [[], [md], [opts], [md, opts]]) expect((await call(...args)).text).toBe('O')
  })

  it('works for clients made by makeClientConstructor and by generated code', async () => {
    const s = await metadataServer()
    const m = meshFor(s.address)
    const Made = grpc.makeClientConstructor(echoService, 'Echo')
    // protoc-gen-ts style: methods as instance arrow functions calling super.
    class Generated extends Made {
      // biome-ignore lint/suspicious/noExplicitAny: mirrors generated code
      Unary = (req: EchoRequest, cb: (e: grpc.ServiceError | null, r?: EchoReply) => void): any =>
        // biome-ignore lint/suspicious/noExplicitAny: mirrors generated code
        (super.Unary as any)(req, cb)
    }
    for (const client of [
      new Made('echo', grpc.credentials.createInsecure()),
      new Generated('echo', grpc.credentials.createInsecure()),
    ]) {
      const c = withMeshGrpc(client as AnyClient, m)
      cleanup.push(() => c.close())
      const res = await new Promise<EchoReply>((resolve, reject) =>
        c.Unary({ text: 'gen' }, (e: Error | null, r: EchoReply) => (e ? reject(e) : resolve(r))),
      )
      expect(res.text).toBe('GEN')
    }
    expect(s.calls).toBe(2)
  })
})

describe('unaryCall', () => {
  it('resolves with the response, rejects with the ServiceError, and exposes the call', async () => {
    const s = await metadataServer()
    const c = withMeshGrpc(
      new EchoClient('echo', grpc.credentials.createInsecure()) as AnyClient,
      meshFor(s.address),
    )
    cleanup.push(() => c.close())
    const md = new grpc.Metadata()
    md.set('x-in', 'p')
    const pending = unaryCall<EchoReply>(c, 'Unary', { text: 'promised' }, { metadata: md, callOptions: {} })
    const headers = new Promise<grpc.Metadata>((resolve) =>
      pending.call.on('metadata', (m) => resolve(m as grpc.Metadata)),
    )
    expect((await pending).text).toBe('PROMISED')
    expect((await headers).get('x-head')).toEqual(['h-p'])
    await expect(unaryCall(c, 'Unary', { text: 'fail' })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    })
    expect(() => unaryCall(c, 'Nope', {})).toThrow(TypeError)
  })
})
