/**
 * A wrapped client's own channel settings on the mesh's endpoint channels (D36), and the
 * deadlines of streaming calls (D37), on real grpc-js servers on loopback. What the server sees
 * is the evidence: the `:authority` of each call and the deadline it was given.
 */
import * as grpc from '@grpc/grpc-js'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { ConfigInvalidError, createMesh, type MeshConfig, withMesh } from '../src/index.js'
import { EchoClient, type EchoReply, type EchoRequest, startGrpcServer } from './helpers/grpc-servers.js'

// biome-ignore lint/suspicious/noExplicitAny: clients of loadPackageDefinition are untyped
type AnyClient = grpc.Client & Record<string, any>

const cleanup: (() => unknown)[] = []
afterEach(async () => {
  vi.restoreAllMocks()
  for (const fn of cleanup.splice(0).reverse()) await fn()
})

/** A server that answers each call with what it saw: its authority and its deadline. */
async function witness() {
  const seen: { authority: string; deadline: number }[] = []
  const record = (call: { getDeadline(): grpc.Deadline; getHost(): string }) => {
    const d = call.getDeadline()
    seen.push({ authority: call.getHost(), deadline: d instanceof Date ? d.getTime() : Number(d) })
  }
  const s = await startGrpcServer({
    Unary(call, cb) {
      record(call)
      cb(null, { text: 'ok', index: 0, server: '' })
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      record(call)
      call.write({ text: 'ok', index: 0, server: '' })
      call.end()
    },
  })
  cleanup.push(() => s.close())
  return { server: s, seen }
}

function meshFor(address: string, extra: Record<string, unknown> = {}): ReturnType<typeof createMesh> {
  const config = { services: { echo: { protocol: 'grpc', endpoints: [address], ...extra } } } as MeshConfig
  const m = createMesh(config)
  cleanup.push(() => m.close({ force: true }))
  return m
}

function echo(options: grpc.ClientOptions = {}): AnyClient {
  const c = new EchoClient('echo', grpc.credentials.createInsecure(), options) as AnyClient
  cleanup.push(() => c.close())
  return c
}

const unary = (c: AnyClient, options: grpc.CallOptions = {}) =>
  new Promise<void>((resolve, reject) =>
    c.Unary({ text: 'x', count: 0 }, options, (e: Error | null) => (e ? reject(e) : resolve())),
  )
const stream = (c: AnyClient, options: grpc.CallOptions = {}) =>
  new Promise<void>((resolve, reject) => {
    const call = c.ServerStream({ text: 'x', count: 1 }, options)
    call.on('data', () => {})
    call.on('error', reject)
    call.on('end', resolve)
  })

describe("the wrapped client's channel settings", () => {
  it("announce the client's target as :authority, as the bare client would", async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address)
    await unary(withMesh(echo(), m))
    await stream(withMesh(echo(), m))
    expect(seen.map((s) => s.authority)).toEqual(['echo', 'echo'])
  })

  it("keep the client's own grpc.default_authority; withMesh's channelOptions override both", async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address)
    await unary(withMesh(echo({ 'grpc.default_authority': 'mine' }), m))
    await unary(
      withMesh(echo({ 'grpc.default_authority': 'mine' }), m, {
        channelOptions: { 'grpc.default_authority': 'theirs' },
      }),
    )
    expect(seen.map((s) => s.authority)).toEqual(['mine', 'theirs'])
  })

  it('give clients with equal settings one channel per endpoint, and others their own', async () => {
    const { server } = await witness()
    const m = meshFor(server.address)
    const used: unknown[] = []
    const createCall = grpc.Channel.prototype.createCall
    vi.spyOn(grpc.Channel.prototype, 'createCall').mockImplementation(function (this: grpc.Channel, ...args) {
      if (!used.includes(this)) used.push(this)
      return createCall.apply(this, args)
    })
    // Distinct but equal credentials (grpc-js _equals) and equal options: shared.
    await unary(withMesh(echo({ 'grpc.keepalive_time_ms': 60_000 }), m))
    await unary(withMesh(echo({ 'grpc.keepalive_time_ms': 60_000 }), m))
    expect(used).toHaveLength(1)
    // Other options: a channel of their own.
    await unary(withMesh(echo({ 'grpc.keepalive_time_ms': 120_000 }), m))
    expect(used).toHaveLength(2)
  })
})

describe("a service's channelOptions", () => {
  it("apply over the client's options and withMesh's, for that service's endpoints", async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address, { channelOptions: { 'grpc.default_authority': 'from-config' } })
    await unary(
      withMesh(echo({ 'grpc.default_authority': 'mine' }), m, {
        channelOptions: { 'grpc.default_authority': 'theirs' },
      }),
    )
    expect(seen.map((s) => s.authority)).toEqual(['from-config'])
  })

  it('are those of the destination when a route sends the call to another service', async () => {
    const { server, seen } = await witness()
    const m = createMesh({
      services: {
        echo: { protocol: 'grpc', endpoints: ['127.0.0.1:1'] },
        other: {
          protocol: 'grpc',
          endpoints: [server.address],
          channelOptions: { 'grpc.default_authority': 'other.example' },
        },
      },
      routes: [{ route: [{ service: 'other' }] }],
    })
    cleanup.push(() => m.close({ force: true }))
    await unary(withMesh(echo(), m))
    expect(seen.map((s) => s.authority)).toEqual(['other.example'])
  })

  it('are refused on an http service and when a value is not a string, number or boolean', () => {
    const issues = (config: unknown) => {
      try {
        createMesh(config as MeshConfig)
      } catch (error) {
        return (error as ConfigInvalidError).issues.map((i) => i.path)
      }
      return []
    }
    expect(
      issues({ services: { web: { endpoints: ['http://127.0.0.1:1'], channelOptions: { a: 1 } } } }),
    ).toEqual(['services.web.channelOptions'])
    expect(
      issues({
        services: { g: { protocol: 'grpc', endpoints: ['127.0.0.1:1'], channelOptions: { a: {} } } },
      }),
    ).toEqual(['services.g.channelOptions.a'])
  })
})

describe('a client wrapped twice', () => {
  it('keeps the settings of the client under the first wrapper', async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address)
    const twice = withMesh(withMesh(echo({ 'grpc.default_authority': 'mine' }), m), m)
    await unary(twice)
    expect(seen.map((s) => s.authority)).toEqual(['mine'])
  })
})

describe('stream deadlines', () => {
  it("a stream gets no deadline from the service's timeout (15 s by default)", async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address)
    const c = withMesh(echo(), m)
    await stream(c)
    expect(seen[0]!.deadline).toBe(Number.POSITIVE_INFINITY)
  })

  it('streamTimeout gives streams a deadline, told to the server', async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address, { streamTimeout: '30s' })
    const start = Date.now()
    await stream(withMesh(echo(), m))
    expect(seen[0]!.deadline).toBeGreaterThan(start + 25_000)
    // The server adds the time left (rounded up) to its own clock: a few ms of slack.
    expect(seen[0]!.deadline).toBeLessThanOrEqual(Date.now() + 31_000)
  })

  it("keeps the caller's own deadline on a stream", async () => {
    const { server, seen } = await witness()
    const m = meshFor(server.address)
    const deadline = Date.now() + 60_000
    await stream(withMesh(echo(), m), { deadline })
    expect(seen[0]!.deadline).toBeGreaterThan(deadline - 5_000)
    expect(seen[0]!.deadline).toBeLessThanOrEqual(deadline + 1_000)
  })

  it('refuses streamTimeout on an http service, naming the path', () => {
    const bad = {
      services: { web: { endpoints: ['http://127.0.0.1:1'], streamTimeout: '1s' } },
    } as MeshConfig
    try {
      createMesh(bad)
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigInvalidError)
      expect((error as ConfigInvalidError).issues.map((i) => i.path)).toEqual(['services.web.streamTimeout'])
    }
  })
})

describe('cancelling a stream in its first microtasks (D38)', () => {
  it('leaves no stream open on the server, whichever microtask the cancel lands in', async () => {
    let opened = 0
    let cancelled = 0
    const server = await startGrpcServer({
      // Never answers: a stream that reaches it stays open until the client cancels it.
      ClientStream(call) {
        opened++
        call.on('cancelled', () => cancelled++)
        call.on('data', () => {})
      },
    })
    cleanup.push(() => server.close())
    const c = withMesh(echo(), meshFor(server.address))
    // A warm channel: grpc-js's race needs a connected one.
    await unary(c)
    for (let k = 0; k < 16; k++) {
      const call = c.ClientStream(() => {})
      call.on('error', () => {})
      for (let i = 0; i < k; i++) await Promise.resolve()
      call.cancel()
    }
    await unary(c)
    await new Promise((resolve) => setImmediate(resolve))
    // Some streams reached the server (the later cancels), and each of them was cancelled.
    expect(opened).toBeGreaterThan(0)
    await vi.waitFor(() => expect(cancelled).toBe(opened), { timeout: 2000 })
  })
})
