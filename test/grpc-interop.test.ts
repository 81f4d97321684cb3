/**
 * The gRPC interop cases (grpc's doc/interop-test-descriptions.md), each run twice with the same
 * assertions: with a bare grpc-js client, and with the same client wrapped by
 * `withMesh(client, mesh)` on a mesh with the default config. The bare run proves the
 * assertions hold for grpc-js itself; the meshed run proves the mesh keeps them (docs/grpc.md,
 * "The interop suite").
 *
 * Servers: a grpc-js server of `grpc.testing.TestService` (test/fixtures/interop.proto), a
 * node:http2 one for the compression cases (a grpc-js server cannot compress a response nor tell
 * whether a request message was compressed), and a TLS grpc-js server with certificates made by
 * openssl at test time. The wrapped client names the service (`interop`, `compress`, `secure`);
 * the bare one the server's address, with the same TLS name where TLS is involved.
 */
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CredentialsUnavailableError, createMesh, type Mesh, withMesh } from '../src/index.js'
import {
  type CompressionServer,
  type InteropServer,
  makeCertificates,
  startCompressionServer,
  startInteropServer,
  type TestCertificates,
  TestServiceClient,
  UnimplementedServiceClient,
  zeros,
} from './helpers/interop-servers.js'

// biome-ignore lint/suspicious/noExplicitAny: clients of loadPackageDefinition are untyped
type AnyClient = grpc.Client & Record<string, any>
type Mode = 'bare' | 'meshed'
// biome-ignore lint/suspicious/noExplicitAny: messages decoded by proto-loader are untyped
type Msg = any

const GZIP = 2 // grpc-js compressionAlgorithms.gzip
const NO_COMPRESS = 2 // grpc-js WriteFlags.NoCompress
const MB = 1024 * 1024

let server: InteropServer
let compression: CompressionServer
let secure: InteropServer
let wrongName: InteropServer
let certs: TestCertificates
/** The CA of the server of `wrong-name`, whose certificate names `other`. */
let otherCa: Buffer
let mesh: Mesh
const clients: grpc.Client[] = []

beforeAll(async () => {
  certs = makeCertificates(['secure', 'localhost'])
  const other = makeCertificates(['other'])
  otherCa = other.ca
  ;[server, compression, secure, wrongName] = await Promise.all([
    startInteropServer(),
    startCompressionServer(),
    startInteropServer({ tls: { key: certs.key, cert: certs.cert } }),
    // A certificate for `other`, not for `wrong-name`.
    startInteropServer({ tls: { key: other.key, cert: other.cert } }),
  ])
  // The default config: only the endpoints are given.
  mesh = createMesh({
    services: {
      interop: { protocol: 'grpc', endpoints: [server.address] },
      compress: { protocol: 'grpc', endpoints: [compression.address] },
      secure: { protocol: 'grpc', endpoints: [secure.address] },
      'wrong-name': { protocol: 'grpc', endpoints: [wrongName.address] },
    },
  })
})

afterAll(async () => {
  for (const c of clients) c.close()
  await mesh?.close({ force: true })
  await Promise.all([server?.close(), compression?.close(), secure?.close(), wrongName?.close()])
})

const ADDRESS = {
  interop: () => server.address,
  compress: () => compression.address,
  secure: () => secure.address,
  'wrong-name': () => wrongName.address,
} as const
type Service = keyof typeof ADDRESS

/** A TestService client of `service`: bare (to its server's address) or wrapped by the mesh. */
function client(
  mode: Mode,
  service: Service = 'interop',
  options: grpc.ClientOptions = {},
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  Ctor: grpc.ServiceClientConstructor = TestServiceClient,
): AnyClient {
  if (mode === 'bare') {
    // The bare client dials the address but names the service in TLS, as the meshed one does.
    const tlsName = credentials._isSecure() ? { 'grpc.ssl_target_name_override': service } : {}
    const c = new Ctor(ADDRESS[service](), credentials, { ...tlsName, ...options }) as AnyClient
    clients.push(c)
    return c
  }
  const c = new Ctor(service, credentials, options) as AnyClient
  clients.push(c)
  return withMesh(c, mesh)
}

interface Outcome {
  error?: grpc.ServiceError
  value?: Msg
  initial?: grpc.Metadata
  status: grpc.StatusObject
}

/** A unary call, settled at its status. */
function unary(
  c: AnyClient,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Partial<Outcome> = {}
    const call = c[method](request, metadata, options, (error: grpc.ServiceError | null, value: unknown) => {
      if (error) out.error = error
      else out.value = value
    })
    call.on('metadata', (m: grpc.Metadata) => {
      out.initial = m
    })
    call.on('status', (s: grpc.StatusObject) => resolve({ ...out, status: s }))
  })
}

interface StreamOutcome {
  messages: Msg[]
  error: grpc.ServiceError | undefined
  initial: grpc.Metadata | undefined
  status: grpc.StatusObject
}

/** Reads a call's messages until its status (and, on success, its end). */
function collect(call: grpc.ClientReadableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>) {
  return new Promise<StreamOutcome>((resolve) => {
    const messages: unknown[] = []
    let error: grpc.ServiceError | undefined
    let initial: grpc.Metadata | undefined
    let status: grpc.StatusObject | undefined
    let ended = false
    const done = () => {
      if (status !== undefined && (ended || error !== undefined))
        resolve({ messages, error, initial, status })
    }
    call.on('metadata', (m: grpc.Metadata) => {
      initial = m
    })
    call.on('data', (m: unknown) => messages.push(m))
    call.on('error', (e: grpc.ServiceError) => {
      error = e
      done()
    })
    call.on('end', () => {
      ended = true
      done()
    })
    call.on('status', (s: grpc.StatusObject) => {
      status = s
      done()
    })
  })
}

/** A client-streaming call's outcome, at its status. */
function clientStream(c: AnyClient, write: (call: grpc.ClientWritableStream<unknown>) => void) {
  return new Promise<Outcome>((resolve) => {
    const out: Partial<Outcome> = {}
    const call = c.StreamingInputCall((error: grpc.ServiceError | null, value: unknown) => {
      if (error) out.error = error
      else out.value = value
    }) as grpc.ClientWritableStream<unknown>
    call.on('status', (s: grpc.StatusObject) => resolve({ ...out, status: s }))
    write(call)
  })
}

/** Whether `body` is `size` zero bytes (a deep `toEqual` on large buffers takes seconds). */
const isZeros = (body: Buffer, size: number) => Buffer.isBuffer(body) && body.equals(Buffer.alloc(size))
const sizes = (messages: Msg[]) => messages.map((m) => m.payload.body.length)
const SPECIAL = '\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n'

describe.each<Mode>(['bare', 'meshed'])('interop cases (%s client)', (mode) => {
  it('empty_unary: a zero-size request gets a non-null answer', async () => {
    const out = await unary(client(mode), 'EmptyCall', {})
    expect(out.error).toBeUndefined()
    expect(out.value).toEqual({})
  })

  it('large_unary: 271828 bytes out, 314159 back', async () => {
    const out = await unary(client(mode), 'UnaryCall', { response_size: 314159, payload: zeros(271828) })
    expect(out.error).toBeUndefined()
    expect(isZeros(out.value.payload.body, 314159)).toBe(true)
  })

  it('client_streaming: the server sums four payloads (74922 bytes)', async () => {
    const out = await clientStream(client(mode), (call) => {
      for (const n of [27182, 8, 1828, 45904]) call.write({ payload: zeros(n) })
      call.end()
    })
    expect(out.error).toBeUndefined()
    expect(out.value.aggregated_payload_size).toBe(74922)
  })

  it('server_streaming: four answers of the sizes asked, in order', async () => {
    const call = client(mode).StreamingOutputCall({
      response_parameters: [31415, 9, 2653, 58979].map((size) => ({ size })),
    })
    const out = await collect(call)
    expect(out.status.code).toBe(grpc.status.OK)
    expect(sizes(out.messages)).toEqual([31415, 9, 2653, 58979])
  })

  it('ping_pong: each request answered before the next is sent', async () => {
    const call = client(mode).FullDuplexCall() as grpc.ClientDuplexStream<unknown, Msg>
    const pending = collect(call)
    const plan: [number, number][] = [
      [31415, 27182],
      [9, 8],
      [2653, 1828],
      [58979, 45904],
    ]
    const received: number[] = []
    for (const [size, body] of plan) {
      const next = new Promise<Msg>((resolve) => call.once('data', resolve))
      call.write({ response_parameters: [{ size }], payload: zeros(body) })
      received.push((await next).payload.body.length)
    }
    call.end()
    const out = await pending
    expect(out.status.code).toBe(grpc.status.OK)
    expect(received).toEqual([31415, 9, 2653, 58979])
    expect(sizes(out.messages)).toEqual([31415, 9, 2653, 58979])
  })

  it('empty_stream: zero messages each way', async () => {
    const call = client(mode).FullDuplexCall()
    const pending = collect(call)
    call.end()
    const out = await pending
    expect(out.status.code).toBe(grpc.status.OK)
    expect(out.messages).toEqual([])
  })

  it('cancel_after_begin: a stream cancelled at once ends CANCELLED', async () => {
    const c = client(mode)
    const before = server.calls.StreamingInputCall ?? 0
    const out = await clientStream(c, (call) => call.cancel())
    expect(out.status.code).toBe(grpc.status.CANCELLED)
    expect(out.error?.code).toBe(grpc.status.CANCELLED)
    // A call after it on the same client: the cancelled one had every chance to reach the server.
    expect((await unary(c, 'EmptyCall', {})).error).toBeUndefined()
    await new Promise((resolve) => setImmediate(resolve))
    // The mesh never starts a stream cancelled before its attempt began (D38); a bare
    // grpc-js client may still send it (grpc-js's ResolvingCall race), so only the mesh is held to it.
    if (mode === 'meshed') expect(server.calls.StreamingInputCall ?? 0).toBe(before)
  })

  it('cancel_after_first_response: cancelled after a message, the call ends CANCELLED', async () => {
    const call = client(mode).FullDuplexCall() as grpc.ClientDuplexStream<unknown, Msg>
    const pending = collect(call)
    call.once('data', () => call.cancel())
    call.write({ response_parameters: [{ size: 31415 }], payload: zeros(27182) })
    const out = await pending
    expect(out.status.code).toBe(grpc.status.CANCELLED)
    expect(out.messages).toHaveLength(1)
  })

  it('timeout_on_sleeping_server: a 1 ms deadline ends DEADLINE_EXCEEDED', async () => {
    const call = client(mode).FullDuplexCall({ deadline: Date.now() + 1 })
    const pending = collect(call)
    call.write({ payload: zeros(27182) })
    const out = await pending
    expect(out.status.code).toBe(grpc.status.DEADLINE_EXCEEDED)
  })

  it('custom_metadata: ASCII and binary metadata echoed as initial and trailing metadata', async () => {
    const metadata = () => {
      const m = new grpc.Metadata()
      m.set('x-grpc-test-echo-initial', 'test_initial_metadata_value')
      m.set('x-grpc-test-echo-trailing-bin', Buffer.from([0xab, 0xab, 0xab]))
      return m
    }
    const c = client(mode)
    const u = await unary(c, 'UnaryCall', { response_size: 314159, payload: zeros(271828) }, metadata())
    expect(u.error).toBeUndefined()
    expect(u.initial?.get('x-grpc-test-echo-initial')).toEqual(['test_initial_metadata_value'])
    expect(u.status.metadata.get('x-grpc-test-echo-trailing-bin')).toEqual([Buffer.from([0xab, 0xab, 0xab])])

    const call = c.FullDuplexCall(metadata())
    const pending = collect(call)
    call.write({ response_parameters: [{ size: 314159 }], payload: zeros(271828) })
    call.end()
    const s = await pending
    expect(s.status.code).toBe(grpc.status.OK)
    expect(s.initial?.get('x-grpc-test-echo-initial')).toEqual(['test_initial_metadata_value'])
    expect(s.status.metadata.get('x-grpc-test-echo-trailing-bin')).toEqual([Buffer.from([0xab, 0xab, 0xab])])
  })

  it('status_code_and_message: the code and message the server ended with', async () => {
    const c = client(mode)
    const response_status = { code: 2, message: 'test status message' }
    const u = await unary(c, 'UnaryCall', { response_status })
    expect([u.status.code, u.status.details]).toEqual([2, 'test status message'])
    expect(u.error?.code).toBe(2)

    const call = c.FullDuplexCall()
    const pending = collect(call)
    call.write({ response_status })
    call.end()
    const s = await pending
    expect([s.status.code, s.status.details]).toEqual([2, 'test status message'])
  })

  it('special_status_message: whitespace and non-ASCII in the message arrive intact', async () => {
    const u = await unary(client(mode), 'UnaryCall', { response_status: { code: 2, message: SPECIAL } })
    expect([u.status.code, u.status.details]).toEqual([2, SPECIAL])
  })

  it('unimplemented_method: UNIMPLEMENTED', async () => {
    const u = await unary(client(mode), 'UnimplementedCall', {})
    expect(u.status.code).toBe(grpc.status.UNIMPLEMENTED)
  })

  it('unimplemented_service: UNIMPLEMENTED', async () => {
    const c = client(mode, 'interop', {}, undefined, UnimplementedServiceClient)
    const u = await unary(c, 'UnimplementedCall', {})
    expect(u.status.code).toBe(grpc.status.UNIMPLEMENTED)
  })

  it('client_compressed_unary: the client gzips with its grpc.default_compression_algorithm', async () => {
    const plain = client(mode, 'compress')
    const gzip = client(mode, 'compress', { 'grpc.default_compression_algorithm': GZIP })
    const request = (expect: boolean) => ({
      expect_compressed: { value: expect },
      response_size: 314159,
      payload: zeros(271828),
    })
    const probe = await unary(plain, 'UnaryCall', request(true))
    expect(probe.status.code).toBe(grpc.status.INVALID_ARGUMENT)
    const n = compression.records.length
    const compressed = await unary(gzip, 'UnaryCall', request(true))
    expect(compressed.error).toBeUndefined()
    expect(compressed.value.payload.body.length).toBe(314159)
    expect(compression.records[n]).toMatchObject({ encoding: 'gzip', requestCompressed: [true] })
    const uncompressed = await unary(plain, 'UnaryCall', request(false))
    expect(uncompressed.error).toBeUndefined()
    expect(uncompressed.value.payload.body.length).toBe(314159)
  })

  it('server_compressed_unary: a compressed answer and a plain one both decode', async () => {
    const c = client(mode, 'compress')
    for (const compressed of [true, false]) {
      const n = compression.records.length
      const u = await unary(c, 'UnaryCall', {
        response_compressed: { value: compressed },
        response_size: 314159,
        payload: zeros(271828),
      })
      expect(u.error).toBeUndefined()
      expect(isZeros(u.value.payload.body, 314159)).toBe(true)
      expect(compression.records[n]!.responseCompressed).toEqual([compressed])
    }
  })

  it('client_compressed_streaming: a compressed message, then one sent with NoCompress', async () => {
    const probe = await clientStream(client(mode, 'compress'), (call) => {
      call.write({ expect_compressed: { value: true }, payload: zeros(27182) })
      call.end()
    })
    expect(probe.status.code).toBe(grpc.status.INVALID_ARGUMENT)
    const n = compression.records.length
    const gzip = client(mode, 'compress', { 'grpc.default_compression_algorithm': GZIP })
    const out = await clientStream(gzip, (call) => {
      call.write({ expect_compressed: { value: true }, payload: zeros(27182) })
      call.write({ expect_compressed: { value: false }, payload: zeros(45904) }, NO_COMPRESS as never)
      call.end()
    })
    expect(out.error).toBeUndefined()
    expect(out.value.aggregated_payload_size).toBe(73086)
    expect(compression.records[n]).toMatchObject({ encoding: 'gzip', requestCompressed: [true, false] })
  })

  it('server_compressed_streaming: a compressed and a plain message, in order', async () => {
    const n = compression.records.length
    const call = client(mode, 'compress').StreamingOutputCall({
      response_parameters: [
        { compressed: { value: true }, size: 31415 },
        { compressed: { value: false }, size: 92653 },
      ],
    })
    const out = await collect(call)
    expect(out.status.code).toBe(grpc.status.OK)
    expect(sizes(out.messages)).toEqual([31415, 92653])
    expect(compression.records[n]!.responseCompressed).toEqual([true, false])
  })

  it('max message size: an 8 MB send fails RESOURCE_EXHAUSTED under a 4 MB grpc.max_send_message_length', async () => {
    const c = client(mode, 'interop', { 'grpc.max_send_message_length': 4 * MB })
    const before = server.calls.UnaryCall ?? 0
    const u = await unary(c, 'UnaryCall', { response_size: 1, payload: zeros(8 * MB) })
    expect(u.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    // Refused by the client: the server never saw it.
    expect(u.status.details).toMatch(/Attempted to send message with a size larger than/)
    expect(server.calls.UnaryCall ?? 0).toBe(before)
    // Without the limit the same request goes through.
    const ok = await unary(client(mode), 'UnaryCall', { response_size: 1, payload: zeros(8 * MB) })
    expect(ok.error).toBeUndefined()
  })

  it('max message size: an 8 MB answer needs grpc.max_receive_message_length -1 (4 MB by default)', async () => {
    const request = { response_size: 8 * MB }
    const limited = await unary(client(mode), 'UnaryCall', request)
    expect(limited.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    const c = client(mode, 'interop', { 'grpc.max_receive_message_length': -1 })
    const u = await unary(c, 'UnaryCall', request)
    expect(u.error).toBeUndefined()
    expect(u.value.payload.body.length).toBe(8 * MB)
  })

  it('TLS: a createSsl() client stays on TLS and checks the certificate against the service name', async () => {
    const tls = grpc.credentials.createSsl(certs.ca)
    const c = client(mode, 'secure', {}, tls)
    const u = await unary(c, 'UnaryCall', { response_size: 314159, payload: zeros(271828) })
    expect(u.error).toBeUndefined()
    expect(u.value.payload.body.length).toBe(314159)
    const s = await collect(c.StreamingOutputCall({ response_parameters: [{ size: 9 }, { size: 31415 }] }))
    expect(s.status.code).toBe(grpc.status.OK)
    expect(sizes(s.messages)).toEqual([9, 31415])
    // The same server refuses a plaintext client: the calls above were TLS.
    const plain = await unary(client(mode, 'secure'), 'EmptyCall', {})
    expect(plain.status.code).toBe(grpc.status.UNAVAILABLE)
  })

  it('TLS: a certificate that does not name the service is refused', async () => {
    // Its CA is trusted: only the name can fail.
    const c = client(mode, 'wrong-name', {}, grpc.credentials.createSsl(otherCa))
    const before = wrongName.calls.EmptyCall ?? 0
    const u = await unary(c, 'EmptyCall', {})
    expect(u.status.code).toBe(grpc.status.UNAVAILABLE)
    expect(wrongName.calls.EmptyCall ?? 0).toBe(before)
    // The client's own grpc.ssl_target_name_override wins over the name of its target.
    const renamed = client(
      mode,
      'wrong-name',
      { 'grpc.ssl_target_name_override': 'other' },
      grpc.credentials.createSsl(otherCa),
    )
    expect((await unary(renamed, 'EmptyCall', {})).error).toBeUndefined()
  })
})

describe('wrapping a client whose credentials cannot be read', () => {
  it('is refused with CredentialsUnavailableError unless withMesh is given credentials', async () => {
    const own = new grpc.Channel(server.address, grpc.credentials.createInsecure(), {})
    // A channel meshlet cannot read: grpc-js's Channel interface, not its ChannelImplementation.
    const opaque: grpc.ChannelInterface = {
      close: () => own.close(),
      getTarget: () => 'dns:interop',
      getConnectivityState: (t) => own.getConnectivityState(t),
      watchConnectivityState: (s, d, cb) => own.watchConnectivityState(s, d, cb),
      getChannelzRef: () => own.getChannelzRef(),
      createCall: (...args) => own.createCall(...args),
    }
    const c = new TestServiceClient('interop', grpc.credentials.createInsecure(), { channelOverride: opaque })
    clients.push(c)
    expect(() => withMesh(c, mesh)).toThrow(CredentialsUnavailableError)
    const wrapped = withMesh(c, mesh, { credentials: grpc.credentials.createInsecure() }) as AnyClient
    expect((await unary(wrapped, 'EmptyCall', {})).error).toBeUndefined()
  })
})
