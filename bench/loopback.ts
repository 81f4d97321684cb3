/**
 * Loopback throughput and latency: a server in another process (bench/http-server.ts,
 * bench/grpc-server.ts), driven from this one by a closed loop of C workers, each sending its
 * next call as soon as the previous one is answered.
 *
 * Fairness: every client gets the same warm-up at the same concurrency, then the measured time
 * is cut into rounds and each round runs every client once, in an order rotated each round, so
 * that drift of the machine (other load, CPU frequency, the server's GC) falls on all clients
 * alike. A client's req/s is its calls over its own measured time; its latencies are every
 * call's, all rounds pooled.
 */
import * as grpc from '@grpc/grpc-js'
import { Pool, request } from 'undici'
import { EchoClient, type EchoReply } from '../test/helpers/grpc-servers.js'
import { cockatielWrap, type Meshlet, percentile, startServer } from './lib.js'
import { CONTROL } from './report.js'

/** The deadline header meshlet sends (`DEADLINE_HEADER`), spelled out so the bench needs no import of the build. */
const DEADLINE = 'x-meshlet-timeout-ms'

/** One client at one concurrency. */
export interface LoopResult {
  readonly client: string
  readonly concurrency: number
  /** Calls answered per second of measured time. */
  readonly rps: number
  /** Latency of one call, microseconds. */
  readonly p50: number
  readonly p99: number
  readonly calls: number
  readonly errors: number
  /** Measured seconds (warm-up excluded). */
  readonly seconds: number
  /** req/s of each round, in round order (the spread within the run). */
  readonly roundRps: readonly number[]
}

/** How long each part runs. */
export interface LoopOptions {
  /** Measured ms per client and concurrency, cut into `rounds`. */
  readonly ms: number
  readonly rounds: number
  /** Warm-up ms per client and concurrency. */
  readonly warmupMs: number
  readonly concurrencies: readonly number[]
  /** Progress lines go here. */
  readonly log: (line: string) => void
}

type Call = () => Promise<unknown>

interface Tally {
  roundRps: number[]
  calls: number
  errors: number
  ms: number
  latencies: number[]
  firstError: unknown
}

async function drive(call: Call, concurrency: number, ms: number, tally: Tally | undefined): Promise<void> {
  const start = performance.now()
  const end = start + ms
  const worker = async () => {
    for (;;) {
      const t0 = performance.now()
      if (t0 >= end) return
      try {
        await call()
        if (tally) {
          tally.latencies.push((performance.now() - t0) * 1000)
          tally.calls++
        }
      } catch (error) {
        if (tally) {
          tally.errors++
          tally.firstError ??= error
        }
      }
    }
  }
  const calls = tally?.calls ?? 0
  await Promise.all(Array.from({ length: concurrency }, worker))
  if (tally) {
    const ms = performance.now() - start
    tally.ms += ms
    tally.roundRps.push(((tally.calls - calls) / ms) * 1000)
  }
}

/** Runs every client at every concurrency; see the module comment. */
export async function compare(
  clients: ReadonlyArray<readonly [name: string, call: Call]>,
  options: LoopOptions,
): Promise<LoopResult[]> {
  const results: LoopResult[] = []
  for (const concurrency of options.concurrencies) {
    const tallies = clients.map(
      (): Tally => ({ roundRps: [], calls: 0, errors: 0, ms: 0, latencies: [], firstError: undefined }),
    )
    for (const [, call] of clients) await drive(call, concurrency, options.warmupMs, undefined)
    for (let r = 0; r < options.rounds; r++) {
      for (let k = 0; k < clients.length; k++) {
        const i = (k + r) % clients.length
        await drive(clients[i]![1], concurrency, options.ms / options.rounds, tallies[i])
      }
    }
    clients.forEach(([client], i) => {
      const t = tallies[i]!
      const sorted = Float64Array.from(t.latencies).sort()
      if (t.errors > 0)
        options.log(`  ${client} C=${concurrency}: ${t.errors} errors, first: ${String(t.firstError)}`)
      results.push({
        client,
        concurrency,
        rps: (t.calls / t.ms) * 1000,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        calls: t.calls,
        errors: t.errors,
        seconds: t.ms / 1000,
        roundRps: t.roundRps,
      })
      options.log(
        `  C=${concurrency} ${client}: ${Math.round((t.calls / t.ms) * 1000)} req/s, p50 ${Math.round(percentile(sorted, 50))} us`,
      )
    })
  }
  return results
}

/**
 * Loopback HTTP: bare Node fetch, `withMesh(fetch)` with the default stack, undici's `request`
 * on its own `Pool` (not the global dispatcher, which Node's fetch shares), and cockatiel's
 * wrap around fetch for reference. Every client reads the whole body as text.
 */
export async function loopbackHttp(lib: Meshlet, options: LoopOptions): Promise<LoopResult[]> {
  const server = await startServer('http-server.ts')
  const origin = `http://127.0.0.1:${server.port}`
  const url = `${origin}/x`
  const mesh = lib.createMesh({ services: { svc: { endpoints: [origin] } } })
  const meshFetch = lib.withMesh(fetch, mesh)
  // The same stack with every call through fetch itself (the direct path off).
  const viaFetchMesh = lib.createMesh({ services: { svc: { endpoints: [origin] } } }, { directFetch: false })
  const viaFetch = lib.withMesh(fetch, viaFetchMesh)
  const pool = new Pool(origin)
  const policy = cockatielWrap()
  try {
    return await compare(
      [
        ['fetch', async () => (await fetch(url)).text()],
        // What any wrapper that can cancel a call and tell the upstream its deadline pays in
        // fetch itself: a fresh signal and one header (meshlet's portable path, and cockatiel's).
        [
          'fetch+signal',
          async () =>
            (
              await fetch(url, { signal: new AbortController().signal, headers: { [DEADLINE]: '15000' } })
            ).text(),
        ],
        ['meshlet', async () => (await meshFetch('http://svc/x')).text()],
        ['meshlet via fetch', async () => (await viaFetch('http://svc/x')).text()],
        ['undici', async () => (await request(url, { dispatcher: pool })).body.text()],
        ['cockatiel', () => policy.execute(async ({ signal }) => (await fetch(url, { signal })).text())],
      ],
      options,
    )
  } finally {
    await mesh.close()
    await viaFetchMesh.close()
    await pool.close()
    await server.stop()
  }
}

// biome-ignore lint/suspicious/noExplicitAny: the dynamic client's methods are untyped
export type AnyClient = grpc.Client & Record<string, any>

export const unary = (client: AnyClient, options?: () => grpc.CallOptions) => () =>
  new Promise<EchoReply>((resolve, reject) =>
    client.Unary(
      { text: 'x', count: 0 },
      options?.() ?? {},
      (error: grpc.ServiceError | null, reply: EchoReply) => (error ? reject(error) : resolve(reply)),
    ),
  )

/**
 * Loopback gRPC, unary Echo: the bare grpc-js client (one channel), a second one on a channel of
 * its own (the A/A control: its ratio to the first is the noise of the run), the same client class
 * wrapped with `withMesh` (the default stack; one mesh channel to the one endpoint), the same
 * with `directUnary: false` (grpc-js's client layer above the mesh), and cockatiel's wrap around
 * the bare client for reference.
 */
export async function loopbackGrpc(lib: Meshlet, options: LoopOptions): Promise<LoopResult[]> {
  const server = await startServer('grpc-server.ts')
  const address = `127.0.0.1:${server.port}`
  const insecure = grpc.credentials.createInsecure()
  const bare = new EchoClient(address, insecure) as AnyClient
  // A second bare client on a channel of its own: the same code as `bare`, so its ratio to it is
  // the measurement's own error in this run (an A/A control).
  const control = new EchoClient(address, insecure) as AnyClient
  const mesh = lib.createMesh({ services: { echo: { protocol: 'grpc', endpoints: [address] } } })
  const wrapped = lib.withMesh(new EchoClient('echo', insecure) as AnyClient, mesh)
  // The same stack with every unary call through grpc-js's own client layer (its interceptor chain).
  const viaGrpcJs = lib.withMesh(new EchoClient('echo', insecure) as AnyClient, mesh, { directUnary: false })
  const policy = cockatielWrap()
  const bareCall = unary(bare)
  try {
    return await compare(
      [
        ['bare', bareCall],
        // The bare client with the deadline meshlet gives every call by default (15 s).
        ['bare+deadline', unary(bare, () => ({ deadline: Date.now() + 15_000 }))],
        [CONTROL, unary(control)],
        ['meshlet', unary(wrapped)],
        ['meshlet via grpc-js', unary(viaGrpcJs)],
        ['cockatiel', () => policy.execute(bareCall)],
      ],
      options,
    )
  } finally {
    bare.close()
    control.close()
    wrapped.close()
    viaGrpcJs.close()
    await mesh.close()
    await server.stop()
  }
}
