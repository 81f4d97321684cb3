/**
 * The live demo (`npm run demo`): three local backends, one healthy, one failing 20% of calls,
 * one slow, called by bare fetch (round robin, no policy) and by `withMesh(fetch, mesh)`
 * (least-request, retries, per-try timeout) with the same workers at the same time. A table
 * refreshes every second; a summary compares the two at the end. `DEMO_SECONDS` sets the length.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createMesh, type MeshConfig, seededRandom, withMesh } from '../../src/index.js'

const SECONDS = positiveNumber(process.env['DEMO_SECONDS'], 20)
const WORKERS = 8
// A short pause between a worker's calls keeps this one process (clients and servers alike) off
// 100% CPU, so latencies measure the backends and not a saturated event loop.
const THINK_MS = 5
const BACKENDS = ['A', 'B', 'C'] as const
const CLIENTS = ['bare fetch', 'meshlet'] as const
type BackendName = (typeof BACKENDS)[number]
type ClientName = (typeof CLIENTS)[number]

// ---------------------------------------------------------------------------------------------
// Backends: in this process, on 127.0.0.1 port 0, their randomness seeded.

interface Backend {
  readonly name: BackendName
  readonly url: string
  readonly server: Server
  /** Requests received per client (from the `x-client` header), retries and abandoned tries included. */
  readonly received: Record<ClientName, number>
}

const pendingTimers = new Set<NodeJS.Timeout>()

function later(ms: number, fn: () => void): void {
  const t = setTimeout(() => {
    pendingTimers.delete(t)
    fn()
  }, ms)
  pendingTimers.add(t)
}

async function startBackend(
  name: BackendName,
  behave: () => { delay: number; status: number },
): Promise<Backend> {
  const received: Record<ClientName, number> = { 'bare fetch': 0, meshlet: 0 }
  const server = createServer((req, res) => {
    const client = req.headers['x-client'] === 'meshlet' ? 'meshlet' : 'bare fetch'
    received[client]++
    const { delay, status } = behave()
    later(delay, () => {
      if (res.destroyed) return // the client gave up (per-try timeout) and closed the connection
      res.writeHead(status, { 'content-type': 'application/json', 'x-backend': name })
      res.end(status === 200 ? `{"id":1,"backend":"${name}"}` : `{"error":"unavailable"}`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { name, url: `http://127.0.0.1:${port}`, server, received }
}

const failures = seededRandom(20)
const slowness = seededRandom(300)
const backends = [
  await startBackend('A', () => ({ delay: 2, status: 200 })),
  await startBackend('B', () => ({ delay: 2, status: failures.next() < 0.2 ? 503 : 200 })),
  await startBackend('C', () => ({ delay: slowness.next() < 0.1 ? 1000 : 300, status: 200 })),
]

// ---------------------------------------------------------------------------------------------
// Clients: the same workers, one driving bare fetch, one driving the mesh.

const config: MeshConfig = {
  services: {
    catalog: {
      endpoints: backends.map((b) => b.url),
      loadBalancer: 'least-request',
      timeout: '1s',
      retry: {
        attempts: 3,
        perTryTimeout: '150ms',
        retryOn: ['5xx', 'reset', 'connect-failure'],
        backoff: { base: '5ms', max: '50ms', jitter: 'full' },
      },
    },
  },
}
const mesh = createMesh(config, { random: seededRandom(7) })
const meshFetch = withMesh(fetch, mesh)
let retries = 0
mesh.events.on('retry', (e) => {
  if (e.service === 'catalog') retries++
})

class Stats {
  calls = 0
  ok = 0
  readonly latencies: number[] = []

  record(ms: number, ok: boolean): void {
    this.calls++
    if (ok) this.ok++
    this.latencies.push(ms)
  }

  percentile(p: number): number {
    if (this.latencies.length === 0) return Number.NaN
    const sorted = Float64Array.from(this.latencies).sort()
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
  }
}

const stats: Record<ClientName, Stats> = { 'bare fetch': new Stats(), meshlet: new Stats() }

let cursor = 0
const call: Record<ClientName, () => Promise<Response>> = {
  // What an application without a mesh does: its own round robin over the addresses, no policy.
  'bare fetch': () =>
    fetch(`${backends[cursor++ % backends.length]!.url}/items/1`, { headers: { 'x-client': 'bare' } }),
  meshlet: () => meshFetch('http://catalog/items/1', { headers: { 'x-client': 'meshlet' } }),
}

const endAt = performance.now() + SECONDS * 1000

async function worker(client: ClientName): Promise<void> {
  while (performance.now() < endAt) {
    const start = performance.now()
    let ok = false
    try {
      const res = await call[client]()
      await res.arrayBuffer()
      ok = res.ok
    } catch {
      ok = false // a mesh timeout, or a network error
    }
    stats[client].record(performance.now() - start, ok)
    await new Promise((resolve) => setTimeout(resolve, THINK_MS))
  }
}

// ---------------------------------------------------------------------------------------------
// Display.

const tty = process.stdout.isTTY === true
const ms = (v: number) => (Number.isNaN(v) ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`)
const pct = (n: number, d: number) => (d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`)

function shares(client: ClientName): string {
  const total = backends.reduce((sum, b) => sum + b.received[client], 0)
  return backends
    .map((b) => (total === 0 ? ' -' : `${Math.round((100 * b.received[client]) / total)}`))
    .join('/')
}

function row(client: ClientName, extra?: string): string {
  const s = stats[client]
  return (
    client.padEnd(11) +
    String(s.calls).padStart(7) +
    pct(s.ok, s.calls).padStart(9) +
    ms(s.percentile(50)).padStart(9) +
    ms(s.percentile(99)).padStart(9) +
    (extra === undefined ? '' : extra.padStart(10)) +
    shares(client).padStart(12)
  )
}

const HEADER = `${'client'.padEnd(11)}${'calls'.padStart(7)}${'success'.padStart(9)}${'p50'.padStart(9)}${'p99'.padStart(9)}`
const SHARE = 'A/B/C %'.padStart(12)
let drawn = 0

function draw(): void {
  const elapsed = Math.min(SECONDS, Math.round(SECONDS - (endAt - performance.now()) / 1000))
  if (tty) {
    const lines = [
      `meshlet demo: ${elapsed}/${SECONDS} s, ${WORKERS} workers per client, GET /items/1`,
      HEADER + SHARE,
      ...CLIENTS.map((c) => row(c)),
    ]
    process.stdout.write((drawn > 0 ? `\x1b[${drawn}A` : '') + lines.map((l) => `\x1b[2K${l}\n`).join(''))
    drawn = lines.length
  } else {
    const brief = (c: ClientName) => {
      const s = stats[c]
      return `${c} ${s.calls} calls ${pct(s.ok, s.calls)} p50 ${ms(s.percentile(50))} p99 ${ms(s.percentile(99))} A/B/C ${shares(c)}`
    }
    console.log(`[${String(elapsed).padStart(3)}s] ${brief('bare fetch')} | ${brief('meshlet')}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Run.

console.log(
  `backends: A ${backends[0]!.url} healthy ~2 ms | B ${backends[1]!.url} 20% 503 | ` +
    `C ${backends[2]!.url} slow 300 ms (10%: 1 s)`,
)
console.log('mesh: least-request, retry attempts 3, perTryTimeout 150 ms, timeout 1 s\n')
const ticker = setInterval(draw, 1000)
await Promise.all(CLIENTS.flatMap((c) => Array.from({ length: WORKERS }, () => worker(c))))
clearInterval(ticker)
draw()

const meshStats = stats.meshlet
const meanAttempts = meshStats.calls === 0 ? 1 : 1 + retries / meshStats.calls
console.log(`\n== Summary: ${SECONDS} s, ${WORKERS} workers per client, same backends at the same time ==`)
console.log(`${HEADER}${'attempts'.padStart(10)}${SHARE}`)
console.log(row('bare fetch', '1.00'))
console.log(row('meshlet', meanAttempts.toFixed(2)))
console.log('A/B/C %: the share of requests each backend received, retries and abandoned tries included.')
console.log(
  wrap(
    `\nWhy the mesh wins: bare fetch sends a third of its calls to each backend whatever happens, so it ` +
      `returns B's 503s to the caller and waits out every one of C's 300 ms to 1 s answers, which sets ` +
      `its p99 and, because each worker is stuck behind C, its throughput. The mesh classifies B's 503 as ` +
      `retryable and sends the call again, usually to another endpoint, so few of those failures reach the ` +
      `caller (${retries} retries, ${meanAttempts.toFixed(2)} attempts per call). Its 150 ms per-try timeout ` +
      `cuts C's tail and retries elsewhere within the 1 s deadline, and least-request balancing (power of ` +
      `two choices on in-flight calls) sees requests pile up on C and sends almost everything to A and B.`,
  ),
)

await mesh.close()
for (const t of pendingTimers) clearTimeout(t)
await Promise.all(
  backends.map(
    (b) =>
      new Promise<void>((resolve) => {
        b.server.closeAllConnections()
        b.server.close(() => resolve())
      }),
  ),
)

function wrap(text: string, width = 100): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  return [...lines, line].join('\n')
}

function positiveNumber(raw: string | undefined, fallback: number): number {
  const n = Number(raw)
  return raw !== undefined && raw !== '' && Number.isFinite(n) && n > 0 ? n : fallback
}
