/**
 * Servers of the gRPC interop suite (test/grpc-interop.test.ts), on 127.0.0.1 port 0: the
 * `grpc.testing.TestService` of test/fixtures/interop.proto on a grpc-js server (the server
 * features of grpc's doc/interop-test-descriptions.md: EmptyCall, UnaryCall,
 * StreamingInputCall, StreamingOutputCall, FullDuplexCall, Echo Status, Echo Metadata), a
 * node:http2 server speaking the gRPC wire format for the compression cases, and TLS
 * certificates made at test time with openssl.
 *
 * Why a second server for compression: a grpc-js server never compresses a response (its
 * `serializeMessage` always writes the flag 0) and does not tell a handler whether a request
 * message arrived compressed, so CompressedRequest and CompressedResponse cannot be served by
 * it. The node:http2 one reads and writes each message's compressed flag itself.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'

/** The interop package definition (proto-loader). */
export const interopDefinition = protoLoader.loadSync(
  fileURLToPath(new URL('../fixtures/interop.proto', import.meta.url)),
  { keepCase: true, defaults: true },
)
// biome-ignore lint/suspicious/noExplicitAny: loadPackageDefinition is untyped without generated code
const testing = (grpc.loadPackageDefinition(interopDefinition) as any).grpc.testing
/** The TestService client class. */
export const TestServiceClient: grpc.ServiceClientConstructor = testing.TestService
/** The UnimplementedService client class (no server serves it). */
export const UnimplementedServiceClient: grpc.ServiceClientConstructor = testing.UnimplementedService

/** A payload body of `size` zero bytes. */
export const zeros = (size: number) => ({ type: 'COMPRESSABLE', body: Buffer.alloc(size) })

interface Payload {
  body: Buffer
}
interface EchoStatus {
  code: number
  message: string
}
interface ResponseParameters {
  size: number
  compressed?: { value: boolean } | null
}
interface StreamingOutputCallRequest {
  response_parameters: ResponseParameters[]
  payload?: Payload | null
  response_status?: EchoStatus | null
}

const ECHO_INITIAL = 'x-grpc-test-echo-initial'
const ECHO_TRAILING = 'x-grpc-test-echo-trailing-bin'

/** Echo Metadata: the initial metadata to send back, and the trailers, from the request's. */
function echoed(metadata: grpc.Metadata): { initial: grpc.Metadata; trailing: grpc.Metadata } {
  const initial = new grpc.Metadata()
  const trailing = new grpc.Metadata()
  for (const v of metadata.get(ECHO_INITIAL)) initial.add(ECHO_INITIAL, v)
  for (const v of metadata.get(ECHO_TRAILING)) trailing.add(ECHO_TRAILING, v)
  return { initial, trailing }
}

/** A running interop server. */
export interface InteropServer {
  readonly address: string
  readonly port: number
  /** Calls received, by method name. */
  readonly calls: Record<string, number>
  /** Calls the server saw cancelled, by method name. */
  readonly cancelled: Record<string, number>
  close(): Promise<void>
}

/** Options of {@link startInteropServer}. */
export interface InteropServerOptions {
  /** Serve TLS with this key and certificate chain. Default plaintext. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer }
  /** grpc-js server options. Default: no receive limit (the send-limit case must reach no server limit). */
  readonly options?: grpc.ServerOptions
}

/** Starts the grpc-js interop server. */
export async function startInteropServer(options: InteropServerOptions = {}): Promise<InteropServer> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': -1, ...options.options })
  const calls: Record<string, number> = {}
  const cancelled: Record<string, number> = {}
  const track = (name: string, call: { on(event: 'cancelled', fn: () => void): unknown }) => {
    calls[name] = (calls[name] ?? 0) + 1
    call.on('cancelled', () => {
      cancelled[name] = (cancelled[name] ?? 0) + 1
    })
  }
  const outputs = (
    call: grpc.ServerWritableStream<unknown, unknown>,
    req: StreamingOutputCallRequest,
  ): boolean => {
    if (req.response_status && req.response_status.code !== 0) {
      call.emit('error', { code: req.response_status.code, details: req.response_status.message })
      return false
    }
    for (const p of req.response_parameters) call.write({ payload: zeros(p.size) })
    return true
  }
  server.addService(TestServiceClient.service, {
    EmptyCall(call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) {
      track('EmptyCall', call)
      cb(null, {})
    },
    UnaryCall(
      call: grpc.ServerUnaryCall<{ response_size: number; response_status?: EchoStatus | null }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      track('UnaryCall', call)
      const { initial, trailing } = echoed(call.metadata)
      call.sendMetadata(initial)
      const status = call.request.response_status
      if (status && status.code !== 0) {
        cb({ code: status.code, details: status.message, metadata: trailing })
        return
      }
      cb(null, { payload: zeros(call.request.response_size) }, trailing)
    },
    StreamingInputCall(
      call: grpc.ServerReadableStream<{ payload?: Payload | null }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      track('StreamingInputCall', call)
      let size = 0
      call.on('data', (r) => {
        size += r.payload?.body.length ?? 0
      })
      call.on('end', () => cb(null, { aggregated_payload_size: size }))
    },
    StreamingOutputCall(call: grpc.ServerWritableStream<StreamingOutputCallRequest, unknown>) {
      track('StreamingOutputCall', call)
      if (outputs(call, call.request)) call.end()
    },
    FullDuplexCall(call: grpc.ServerDuplexStream<StreamingOutputCallRequest, unknown>) {
      track('FullDuplexCall', call)
      const { initial, trailing } = echoed(call.metadata)
      call.sendMetadata(initial)
      let failed = false
      call.on('data', (req: StreamingOutputCallRequest) => {
        if (!failed && !outputs(call as unknown as grpc.ServerWritableStream<unknown, unknown>, req))
          failed = true
      })
      call.on('end', () => {
        if (!failed) call.end(trailing)
      })
      call.on('error', () => {})
    },
  })
  const credentials = options.tls
    ? grpc.ServerCredentials.createSsl(null, [{ private_key: options.tls.key, cert_chain: options.tls.cert }])
    : grpc.ServerCredentials.createInsecure()
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, p) => (error ? reject(error) : resolve(p))),
  )
  return {
    address: `127.0.0.1:${port}`,
    port,
    calls,
    cancelled,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve())
        setTimeout(() => server.forceShutdown(), 200).unref()
      }),
  }
}

/** What the compression server saw of one call. */
export interface CompressionRecord {
  readonly method: string
  /** The request's `grpc-encoding`. */
  readonly encoding: string
  /** The compressed flag of each request message. */
  readonly requestCompressed: boolean[]
  /** The compressed flag of each response message it sent. */
  readonly responseCompressed: boolean[]
}

/** A running compression server. */
export interface CompressionServer {
  readonly address: string
  readonly records: CompressionRecord[]
  close(): Promise<void>
}

const TEST_SERVICE = interopDefinition['grpc.testing.TestService'] as protoLoader.ServiceDefinition

/** The messages of a gRPC request body (length-prefixed), decompressed, with their flags. */
function messagesOf(body: Buffer, encoding: string): { compressed: boolean; bytes: Buffer }[] {
  const out: { compressed: boolean; bytes: Buffer }[] = []
  for (let i = 0; i + 5 <= body.length; ) {
    const compressed = body[i] === 1
    const length = body.readUInt32BE(i + 1)
    const raw = body.subarray(i + 5, i + 5 + length)
    i += 5 + length
    const bytes = !compressed
      ? raw
      : encoding === 'gzip'
        ? zlib.gunzipSync(raw)
        : encoding === 'deflate'
          ? zlib.inflateSync(raw)
          : raw
    out.push({ compressed, bytes })
  }
  return out
}

/** One length-prefixed message, gzip-compressed when `compress`. */
function frame(bytes: Buffer, compress: boolean): Buffer {
  const body = compress ? zlib.gzipSync(bytes) : bytes
  const head = Buffer.alloc(5)
  head[0] = compress ? 1 : 0
  head.writeUInt32BE(body.length, 1)
  return Buffer.concat([head, body])
}

/**
 * Starts a node:http2 server of UnaryCall, StreamingInputCall and StreamingOutputCall with
 * CompressedRequest (`expect_compressed` checked against each message's flag:
 * `INVALID_ARGUMENT` when they differ) and CompressedResponse (`response_compressed`, or each
 * response parameter's `compressed`, sets the flag and gzips the message).
 */
export async function startCompressionServer(): Promise<CompressionServer> {
  const records: CompressionRecord[] = []
  const server = http2.createServer()
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path'])
    const method = path.slice(path.lastIndexOf('/') + 1)
    const encoding = String(headers['grpc-encoding'] ?? 'identity')
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('error', () => {})
    stream.on('end', () => {
      const def = TEST_SERVICE[method]
      const fail = (code: number, message: string) =>
        stream.respond(
          {
            ':status': 200,
            'content-type': 'application/grpc+proto',
            'grpc-status': String(code),
            'grpc-message': encodeURIComponent(message),
          },
          { endStream: true },
        )
      if (def === undefined) return fail(grpc.status.UNIMPLEMENTED, `${method} is not served here`)
      const messages = messagesOf(Buffer.concat(chunks), encoding)
      const record: CompressionRecord = {
        method,
        encoding,
        requestCompressed: messages.map((m) => m.compressed),
        responseCompressed: [],
      }
      records.push(record)
      const requests = messages.map((m) => ({
        compressed: m.compressed,
        // biome-ignore lint/suspicious/noExplicitAny: decoded by proto-loader
        value: def.requestDeserialize(m.bytes) as any,
      }))
      for (const r of requests) {
        const expect = r.value.expect_compressed?.value === true
        if (expect !== r.compressed)
          return fail(
            grpc.status.INVALID_ARGUMENT,
            `expected a ${expect ? 'compressed' : 'plain'} message, got a ${r.compressed ? 'compressed' : 'plain'} one`,
          )
      }
      const out: { value: unknown; compress: boolean }[] = []
      if (method === 'UnaryCall') {
        const req = requests[0]!.value
        out.push({
          value: { payload: zeros(req.response_size) },
          compress: req.response_compressed?.value === true,
        })
      } else if (method === 'StreamingInputCall') {
        let size = 0
        for (const r of requests) size += r.value.payload?.body.length ?? 0
        out.push({ value: { aggregated_payload_size: size }, compress: false })
      } else if (method === 'StreamingOutputCall') {
        for (const p of requests[0]!.value.response_parameters as ResponseParameters[])
          out.push({ value: { payload: zeros(p.size) }, compress: p.compressed?.value === true })
      } else {
        return fail(grpc.status.UNIMPLEMENTED, `${method} is not served here`)
      }
      stream.respond(
        { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-encoding': 'gzip' },
        { waitForTrailers: true },
      )
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }))
      for (const o of out) {
        record.responseCompressed.push(o.compress)
        stream.write(frame(def.responseSerialize(o.value as object), o.compress))
      }
      stream.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return {
    address: `127.0.0.1:${port}`,
    records,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Sessions of clients that are still open keep the server up: end them.
        setTimeout(() => resolve(), 200).unref()
      }),
  }
}

/** A CA and a server certificate for `names` (subject alternative names), made with openssl. */
export interface TestCertificates {
  readonly ca: Buffer
  readonly key: Buffer
  readonly cert: Buffer
}

/** Makes a CA and a server key and certificate for the DNS `names`, in a temporary directory. */
export function makeCertificates(names: readonly string[]): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'meshlet-tls-'))
  try {
    const f = (n: string) => join(dir, n)
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=meshlet test CA',
    )
    openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      `/CN=${names[0]}`,
    )
    writeFileSync(f('ext.cnf'), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`)
    openssl(
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('server.pem'),
      '-days',
      '1',
      '-extfile',
      f('ext.cnf'),
    )
    return {
      ca: readFileSync(f('ca.pem')),
      key: readFileSync(f('server.key')),
      cert: readFileSync(f('server.pem')),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
