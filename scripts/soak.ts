/**
 * The soak (issue 23): a long run of calls through the full stack with faults, checking that
 * nothing accumulates. `npm run soak` sends 1,000,000 calls; the test suite runs a short form
 * (test/soak-short.test.ts, 50,000 calls).
 *
 * The stack: a route splitting 90/10 between two subsets, attempt-scoped fault injection (1%
 * aborts, 1% delays of 1 ms), the deadline, retries with the default budget, optional hedging,
 * a circuit breaker, outlier detection, a bulkhead, and per-try timeouts. The upstream is a real
 * HTTP/1.1 keep-alive server on three loopback ports, in a child process (so that its work and
 * its heap are not the mesh's), which answers about 1.9% of requests with 503 and closes the
 * connection without an answer on about 0.1% (after reading the request: a reset that may have
 * reached the server). One call in ten is a POST with a unique body; the server counts any body
 * it sees twice. `--transport memory` replaces the network with an in-process transport that
 * fails alike, for a quick run of the mesh alone.
 *
 * It fails (exit code 1) when:
 * - the heap, measured after a full GC, grows by more than 10% from the end of warm-up (the first
 *   20% of calls, at least 20,000 in a short run) to the end of the run (the median of the last
 *   three samples; every sample is taken with the same number of calls in flight);
 * - a process resource (timer, socket, child process) is left after `mesh.close()` and the
 *   server's exit, compared with before the run;
 * - a POST body reached the server twice;
 * - the bulkhead, which has as many permits as there are callers, refused a call (a permit
 *   leaked);
 * - a call ended in anything but a `Response`, a `MeshError` or fetch's `TypeError`, or a
 *   rejection went unhandled;
 * - fewer than half of the calls were answered 200 (the run did not soak what it should).
 *
 * A caller whose call was refused by an open breaker waits 10 ms before its next call, as a
 * client backing off would: such a refusal costs microseconds, and without the pause the
 * callers spin through the run while a breaker is open.
 *
 * Usage: `npm run soak -- [--calls 1000000] [--concurrency 64] [--transport loopback|memory]
 * [--hedge]`
 */
import { spawn } from 'node:child_process'
import { get } from 'node:http'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import {
  type Context,
  createMesh,
  ENDPOINT,
  type HttpRequest,
  isMeshError,
  type MeshConfig,
  withMesh,
} from '../src/index.js'

/** Options of {@link soak}. */
export interface SoakOptions {
  /** Calls to send. Default 1,000,000. */
  readonly calls?: number
  /** Callers, each sending its next call when the last one ends. Default 64. */
  readonly concurrency?: number
  /** A loopback HTTP server in a child process, or an in-process transport. Default `'loopback'`. */
  readonly transport?: 'loopback' | 'memory'
  /** Turn hedging on (delay 20 ms). Default off. */
  readonly hedge?: boolean
  /**
   * Calls that warm up before the heap's reference measurement. Default 20% of the calls, but at
   * least 20,000 when that is under 40% of them (a short run's heap is still filling its pools
   * and JIT caches at 10,000 calls: about 15.4 MB then, against a plateau near 16 MB).
   */
  readonly warmup?: number
  /** Allowed heap growth after warm-up, as a share. Default 0.1. */
  readonly heapTolerance?: number
  /** Progress lines. Default none. */
  readonly log?: (line: string) => void
}

/** What a soak saw. */
export interface SoakReport {
  readonly calls: number
  readonly concurrency: number
  readonly transport: 'loopback' | 'memory'
  readonly hedge: boolean
  readonly durationMs: number
  /** Calls by outcome: an HTTP status (`'200'`), a mesh error code, `fetch failed: <cause code>`. */
  readonly outcomes: Readonly<Record<string, number>>
  /** Mesh events counted (retry, hedge, circuit-state, ejection, bulkhead-full, timeout). */
  readonly events: Readonly<Record<string, number>>
  /**
   * Heap used (bytes, after a full GC, with `concurrency` calls in flight): at the end of
   * warm-up, at eight points after it, and `final`, the median of the last three samples.
   */
  readonly heap: { readonly warm: number; readonly samples: readonly number[]; readonly final: number }
  /** Requests the server received, POST bodies it received, and POST bodies it received twice. */
  readonly server: { readonly requests: number; readonly posts: number; readonly duplicatePosts: number }
  /** Process resources above the baseline after close, as `Type: count`. */
  readonly leaked: readonly string[]
  readonly unhandledRejections: number
  /** Why the soak failed; empty when it passed. */
  readonly failures: readonly string[]
}

/**
 * How the upstream answers its `i`-th request (over all endpoints), the `j`-th of its endpoint:
 * a reset (the connection closed unanswered, after the request arrived) about once in 1,000; a
 * 503 about once in 53; and, on each endpoint, a burst of 25 consecutive 503s every 5,000
 * requests, which is enough to eject the endpoint (outlier detection) and to open the breaker
 * of the subset that has only that endpoint. The server program embeds this very function.
 */
function answer(i: number, j: number): 200 | 503 | 'reset' {
  if (i % 997 === 500) return 'reset'
  if (i % 53 === 7 || j % 5000 >= 4975) return 503
  return 200
}

/** The upstream, as a CommonJS program for `node -e`: three HTTP servers, one answering policy. */
const SERVER_PROGRAM = `
const http = require('node:http')
let n = 0, posts = 0, dup = 0
const seen = new Set()
const perPort = [0, 0, 0]
function handler(k) {
  return (req, res) => {
    if (req.url === '/__stats') return res.end(JSON.stringify({ requests: n, posts, dup }))
    const i = n++
    const j = perPort[k]++
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      if (req.method === 'POST') {
        posts++
        const id = Buffer.concat(chunks).toString()
        if (seen.has(id)) dup++
        else seen.add(id)
      }
      const verdict = answer(i, j)
      if (verdict === 'reset') return req.socket.destroy()
      res.statusCode = verdict
      res.end(verdict === 200 ? 'ok' : 'unavailable')
    })
  }
}
${answer.toString()}
const ports = []
for (let k = 0; k < 3; k++) {
  const s = http.createServer(handler(k))
  s.listen(0, '127.0.0.1', () => {
    ports[k] = s.address().port
    if (ports.filter(Boolean).length === 3) process.stdout.write(JSON.stringify(ports) + '\\n')
  })
}
`

interface Upstream {
  readonly endpoints: string[]
  stats(): Promise<SoakReport['server']>
  stop(): Promise<void>
  readonly transport?: (req: HttpRequest, ctx: Context) => Promise<Response>
}

function getOnNewConnection(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        text += chunk
      })
      res.on('end', () => resolve(text))
      res.on('error', reject)
    }).on('error', reject)
  })
}

async function loopbackUpstream(): Promise<Upstream> {
  const child = spawn(process.execPath, ['-e', SERVER_PROGRAM], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const lines = createInterface({ input: child.stdout })
  const ports = await new Promise<number[]>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the soak server exited with ${code}`)))
    lines.once('line', (line) => resolve(JSON.parse(line) as number[]))
  })
  lines.close()
  const endpoints = ports.map((p) => `http://127.0.0.1:${p}`)
  return {
    endpoints,
    async stats() {
      // On a connection of its own: an idle kept-alive one may be closing (the server's
      // keep-alive timeout), the very race the fault suite tests, which a bare GET would lose.
      const s = JSON.parse(await getOnNewConnection(`${endpoints[0]}/__stats`)) as {
        requests: number
        posts: number
        dup: number
      }
      return { requests: s.requests, posts: s.posts, duplicatePosts: s.dup }
    },
    async stop() {
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** The same answering policy in process: a `Response`, a 503, or fetch's error for a reset. */
function memoryUpstream(calls: number): Upstream {
  let n = 0
  let posts = 0
  let dup = 0
  // Allocated up front (and outside the JS heap), so that the check does not grow the heap.
  const seen = new Uint8Array(calls)
  const endpoints = ['http://10.0.0.1:8080', 'http://10.0.0.2:8080', 'http://10.0.0.3:8080']
  const perEndpoint = [0, 0, 0]
  return {
    endpoints,
    async stats() {
      return { requests: n, posts, duplicatePosts: dup }
    },
    async stop() {},
    async transport(req, ctx) {
      const i = n++
      const k = endpoints.indexOf(ctx.get(ENDPOINT)?.address ?? '')
      const j = perEndpoint[k] ?? 0
      perEndpoint[k] = j + 1
      if (req.method === 'POST') {
        posts++
        const k = Number(String(req.init.body).slice('order-'.length))
        if (seen[k] === 1) dup++
        seen[k] = 1
      }
      const verdict = answer(i, j)
      if (verdict === 'reset') {
        const cause = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' })
        throw new TypeError('fetch failed', { cause })
      }
      return verdict === 200 ? new Response('ok') : new Response('unavailable', { status: verdict })
    },
  }
}

function soakConfig(endpoints: string[], hedge: boolean, concurrency: number): MeshConfig {
  return {
    services: {
      api: {
        endpoints: endpoints.map((url, i) => ({ url, labels: { version: i < 2 ? 'v1' : 'v2' } })),
        subsets: { v1: { version: 'v1' }, v2: { version: 'v2' } },
        timeout: '2s',
        retry: {
          attempts: 3,
          perTryTimeout: '500ms',
          backoff: { base: '1ms', max: '10ms' },
          budget: { ratio: 0.2, minPerSecond: 10, ttl: '10s' },
        },
        ...(hedge ? { hedge: { delay: '20ms', maxAttempts: 2 } } : {}),
        circuitBreaker: { consecutiveFailures: 20, halfOpenAfter: '50ms', maxHalfOpenAfter: '200ms' },
        outlierDetection: {
          consecutiveFailures: 10,
          interval: '1s',
          baseEjectionTime: '100ms',
          maxEjectionTime: '1s',
          maxEjectionPercent: 50,
        },
        // As many permits as callers and no queue: the bulkhead refuses only if a permit leaks.
        concurrency: { max: concurrency, queue: 0 },
      },
    },
    routes: [
      {
        match: [{ path: { prefix: '/' } }],
        route: [
          { service: 'api', subset: 'v1', weight: 90 },
          { service: 'api', subset: 'v2', weight: 10 },
        ],
        fault: {
          abort: { percent: 1, status: 503 },
          delay: { percent: 1, duration: '1ms' },
          scope: 'attempt',
        },
      },
    ],
  }
}

/** How long a caller waits after a call refused by an open breaker. */
const REFUSAL_PAUSE_MS = 10

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>()
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1)
  return counts
}

const above = (now: Map<string, number>, baseline: Map<string, number>) =>
  [...now].filter(([type, n]) => n > (baseline.get(type) ?? 0)).map(([type, n]) => `${type}: ${n}`)

/** Classifies a call's outcome; `undefined` for one that is not of a documented type. */
function outcomeOf(error: unknown): string | undefined {
  if (isMeshError(error)) return error.code
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const code = (error.cause as { code?: unknown } | undefined)?.code
    return `fetch failed: ${typeof code === 'string' ? code : 'other'}`
  }
  return undefined
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function gcFunction(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

/** Runs the soak and reports; never throws for a failed check (see `failures`). */
export async function soak(options: SoakOptions = {}): Promise<SoakReport> {
  const calls = options.calls ?? 1_000_000
  const concurrency = options.concurrency ?? 64
  const transport = options.transport ?? 'loopback'
  const hedge = options.hedge ?? false
  const tolerance = options.heapTolerance ?? 0.1
  const log = options.log ?? (() => {})
  const gc = gcFunction()
  const heapNow = () => {
    gc()
    gc()
    return process.memoryUsage().heapUsed
  }

  let unhandled = 0
  const onUnhandled = () => {
    unhandled++
  }
  process.on('unhandledRejection', onUnhandled)

  const baseline = resourceCounts()
  const started = performance.now()
  const upstream = transport === 'loopback' ? await loopbackUpstream() : memoryUpstream(calls)
  const mesh = createMesh(
    soakConfig(upstream.endpoints, hedge, concurrency),
    upstream.transport ? { httpTransport: upstream.transport } : {},
  )
  const events: Record<string, number> = {}
  for (const name of ['retry', 'hedge', 'circuit-state', 'ejection', 'bulkhead-full', 'timeout'] as const)
    mesh.events.on(name, () => {
      events[name] = (events[name] ?? 0) + 1
    })
  const f = withMesh(fetch, mesh)

  const outcomes: Record<string, number> = {}
  const untyped: string[] = []
  const count = (key: string) => {
    outcomes[key] = (outcomes[key] ?? 0) + 1
  }
  // Heap samples are taken by the caller that starts call k (with the others in flight), so
  // every sample sees the same load: `concurrency` calls under way.
  const warmAt = Math.floor(options.warmup ?? Math.max(calls * 0.2, Math.min(20_000, calls * 0.4)))
  const lastAt = Math.max(warmAt, calls - concurrency)
  const step = Math.max(1, Math.floor((lastAt - warmAt) / 8))
  const sampleAt = new Set<number>([warmAt, lastAt])
  for (let k = warmAt + step; k < lastAt; k += step) sampleAt.add(k)
  let warm = 0
  const samples: number[] = []

  let next = 0
  const caller = async () => {
    while (next < calls) {
      const k = next++
      if (sampleAt.has(k)) {
        const used = heapNow()
        if (k === warmAt) warm = used
        else samples.push(used)
        log(`  ${k.toLocaleString('en')} calls: heap ${(used / 1e6).toFixed(2)} MB`)
      }
      const post = k % 10 === 9
      try {
        const res = await f(
          `http://api/items/${k % 100}`,
          post ? { method: 'POST', body: `order-${k}` } : undefined,
        )
        count(String(res.status))
        // A body cut short by a reset after the headers is fetch's TypeError, as documented.
        await res.text().catch((e: unknown) => {
          count(`body: ${e instanceof TypeError ? 'TypeError' : 'untyped'}`)
          if (!(e instanceof TypeError)) untyped.push(String(e))
        })
      } catch (error) {
        const key = outcomeOf(error)
        if (key === undefined) {
          untyped.push(String(error))
          count('untyped')
        } else count(key)
        // A refusal without a request (an open breaker) takes microseconds: a caller that went
        // on at once would spin through its share of the run while the breaker is open (a full
        // run once spent 978,447 of its 1,000,000 calls so), and the soak would no longer be a
        // soak of the network path. It waits as a client backing off would.
        if (key === 'CIRCUIT_OPEN') await new Promise((resolve) => setTimeout(resolve, REFUSAL_PAUSE_MS))
      }
    }
  }
  let durationMs: number
  let server: SoakReport['server']
  try {
    await Promise.all(Array.from({ length: concurrency }, caller))
    durationMs = performance.now() - started
    server = await upstream.stats()
  } finally {
    // Also on a throw, so that no server process outlives the soak.
    await mesh.close()
    await upstream.stop()
    process.off('unhandledRejection', onUnhandled)
  }
  // The median of the last three samples: one sample can land on a transient (a burst of new
  // connections after resets), a trend cannot hide in a median.
  const final = samples.length === 0 ? warm : median(samples.slice(-3))

  // Sockets close a few turns after their peer goes: wait up to 5 s for the counts to settle.
  let leaked: string[] = []
  for (let waited = 0; waited <= 5000; waited += 20) {
    leaked = above(resourceCounts(), baseline)
    if (leaked.length === 0) break
    await new Promise((resolve) => setTimeout(resolve, 20))
  }

  const failures: string[] = []
  if (final > warm * (1 + tolerance))
    failures.push(
      `heap grew ${(((final - warm) / warm) * 100).toFixed(1)}% after warm-up ` +
        `(${(warm / 1e6).toFixed(2)} -> ${(final / 1e6).toFixed(2)} MB; allowed ${tolerance * 100}%)`,
    )
  if (leaked.length > 0) failures.push(`resources left after close: ${leaked.join(', ')}`)
  if (server.duplicatePosts > 0)
    failures.push(`${server.duplicatePosts} POST bodies reached the server twice`)
  if (untyped.length > 0) failures.push(`${untyped.length} untyped outcomes, first: ${untyped[0]}`)
  if (unhandled > 0) failures.push(`${unhandled} unhandled rejections`)
  const answered = outcomes['200'] ?? 0
  if (answered < calls / 2)
    failures.push(`only ${answered} calls of ${calls} answered 200: the run did not soak the network path`)
  const refused = outcomes.BULKHEAD_FULL ?? 0
  if (refused > 0)
    failures.push(`the bulkhead, with a permit per caller, refused ${refused} calls: a permit leaked`)
  const total = Object.entries(outcomes)
    .filter(([k]) => !k.startsWith('body: '))
    .reduce((n, [, v]) => n + v, 0)
  if (total !== calls) failures.push(`${total} outcomes counted for ${calls} calls`)

  return {
    calls,
    concurrency,
    transport,
    hedge,
    durationMs,
    outcomes,
    events,
    heap: { warm, samples, final },
    server,
    leaked,
    unhandledRejections: unhandled,
    failures,
  }
}

/** The report as a small table. */
export function formatSoakReport(r: SoakReport): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`
  const pad = (s: string, n: number) => s.padEnd(n)
  const lines = [
    `soak: ${r.calls.toLocaleString('en')} calls, ${r.concurrency} callers, ${r.transport} transport, ` +
      `hedging ${r.hedge ? 'on' : 'off'}, ${(r.durationMs / 1000).toFixed(1)} s ` +
      `(${Math.round(r.calls / (r.durationMs / 1000)).toLocaleString('en')} calls/s)`,
    'outcome                            calls',
    ...Object.entries(r.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${pad(k, 30)} ${String(v).padStart(10)}`),
    `events: ${
      Object.entries(r.events)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'none'
    }`,
    `server: ${r.server.requests.toLocaleString('en')} requests, ${r.server.posts.toLocaleString('en')} POST ` +
      `bodies, ${r.server.duplicatePosts} received twice`,
    `heap after GC: warm-up ${mb(r.heap.warm)}; then ${r.heap.samples.map(mb).join(', ')}; ` +
      `final/warm-up ${(r.heap.final / r.heap.warm).toFixed(3)}`,
    `resources left after close: ${r.leaked.length === 0 ? 'none' : r.leaked.join(', ')}; ` +
      `unhandled rejections: ${r.unhandledRejections}`,
    r.failures.length === 0 ? 'PASS' : `FAIL\n${r.failures.map((f) => `  - ${f}`).join('\n')}`,
  ]
  return lines.join('\n')
}

function parseArgs(argv: readonly string[]): SoakOptions {
  const options: { -readonly [K in keyof SoakOptions]: SoakOptions[K] } = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`${arg} needs a value`)
      return v
    }
    const positive = (v: string) => {
      const n = Number(v.replaceAll('_', '').replaceAll(',', ''))
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${arg}: expected a positive integer, got ${v}`)
      return n
    }
    if (arg === '--calls') options.calls = positive(value())
    else if (arg === '--concurrency') options.concurrency = positive(value())
    else if (arg === '--transport') {
      const t = value()
      if (t !== 'loopback' && t !== 'memory')
        throw new Error(`--transport: expected loopback or memory, got ${t}`)
      options.transport = t
    } else if (arg === '--hedge') options.hedge = true
    else throw new Error(`unknown argument ${arg}`)
  }
  return options
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let options: SoakOptions
  try {
    options = parseArgs(process.argv.slice(2))
  } catch (error) {
    console.error(String(error instanceof Error ? error.message : error))
    console.error(
      'usage: npm run soak -- [--calls N] [--concurrency N] [--transport loopback|memory] [--hedge]',
    )
    process.exit(2)
  }
  const report = await soak({ ...options, log: (line) => console.log(line) })
  console.log(formatSoakReport(report))
  process.exitCode = report.failures.length === 0 ? 0 : 1
}
