/**
 * The overhead benchmark (`npm run bench`): what meshlet's stack, cockatiel's policies and p-retry
 * cost per call around a no-op transport, next to the bare call, all measured in one run so that
 * the ratios are comparable. See bench/README.md for how to read it.
 */
import os from 'node:os'
import { fileURLToPath, pathToFileURL } from 'node:url'
import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel'
import pRetry from 'p-retry'
import { Bench } from 'tinybench'
import type { Handler, HttpRequest, MeshConfig, Middleware } from '../src/index.js'
import { pRetryStage } from './p-retry-stage.js'

type Meshlet = typeof import('../src/index.js')

/**
 * meshlet as users run it: the build in dist/ (`npm run bench` builds first). Importing src
 * through tsx would measure tsx's `keepNames`, which adds an `Object.defineProperty` to every
 * closure created per call (over 2x slower here), a cost the published package never pays.
 */
async function loadMeshlet(): Promise<{ lib: Meshlet; how: string; cleanup: () => Promise<void> }> {
  const lib = (await import(
    pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href
  )) as Meshlet
  return { lib, how: 'dist/ (the published build)', cleanup: async () => {} }
}

const meshlet = await loadMeshlet()
const { createMesh, withMesh } = meshlet.lib

// Each task runs BATCH sequential calls, so that the timer's own cost (~30-50 ns per reading)
// is spread over many calls instead of dwarfing a 50 ns call; results are divided by BATCH.
const BATCH = 100
const TIME_MS = Number(process.env['BENCH_TIME_MS'] ?? 1000)

// One pre-built response, returned by every no-op transport: Response construction is not measured.
const RESPONSE = new Response(null, { status: 200 })
const noopFetch = (async () => RESPONSE) as unknown as typeof fetch
const noopTransport = async () => RESPONSE
const noop = async () => 1

const endpoints = ['http://127.0.0.1:1']
function meshFetch(service: MeshConfig['services'][string], viaFetch = false): typeof fetch {
  const mesh = createMesh({ services: { svc: service } }, viaFetch ? {} : { httpTransport: noopTransport })
  return withMesh(noopFetch, mesh)
}
// The default stack: deadline (default 15 s, so one timer per call), retry, balancer, attempt timeout.
const meshDefault = meshFetch({ endpoints })
// The same without a deadline: no timer at all.
const meshNoDeadline = meshFetch({ endpoints, timeout: 0 })
// Retry with a per-try timeout under a 2 s deadline: one timer per attempt.
const meshRetryTimeout = meshFetch({
  endpoints,
  timeout: '2s',
  retry: { attempts: 3, perTryTimeout: '500ms' },
})
// The default stack through the fetch transport, which creates one AbortController per attempt.
const meshViaFetch = meshFetch({ endpoints }, true)

const cockatielRetry = retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
const cockatielWrap = wrap(
  retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() }),
  circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
  timeout(10_000, TimeoutStrategy.Cooperative),
)

// The default service stack composed by hand, as mesh/stack.ts chains it (no compose guard), so
// that its retry stage can be swapped for the p-retry-based one (bench/p-retry-stage.ts, D6).
// Called directly with a root context per call, as Mesh.invoke does, without withMesh's parsing.
const {
  balancer,
  Cancellation,
  Context,
  deadline,
  Endpoint,
  exponentialBackoff,
  httpClassifier,
  httpProtocol,
  leastRequest,
  retry: meshRetry,
  systemClock,
  systemRandom,
  timeout: attemptTimeout,
} = meshlet.lib
type Req = HttpRequest
type Res = Response
function defaultStack(retryStage: Middleware<Req, Res>): Handler<Req, Res> {
  const stages: Middleware<Req, Res>[] = [
    deadline({ timeout: 15_000 }),
    retryStage,
    balancer({
      service: 'svc',
      endpoints: [new Endpoint({ address: endpoints[0]! })],
      strategy: leastRequest(),
    }),
    attemptTimeout({ perTryTimeout: 0, service: 'svc' }),
  ]
  return stages.reduceRight<Handler<Req, Res>>((inner, stage) => stage(inner), noopTransport)
}
const retryPolicy = {
  attempts: 3,
  backoff: exponentialBackoff({ base: 25, max: 1000, jitter: 'full' }),
  classify: httpClassifier(),
  protocol: httpProtocol,
}
const stackMeshletRetry = defaultStack(meshRetry<Req, Res>({ ...retryPolicy, service: 'svc' }))
const stackPRetry = defaultStack(pRetryStage<Req, Res>(retryPolicy))
const REQ: HttpRequest = {
  service: 'svc',
  path: '/x',
  method: 'GET',
  init: {},
  replayable: true,
  signal: undefined,
  propagateDeadline: true,
}
const rootContext = () =>
  Context.create({ clock: systemClock, random: systemRandom, cancel: new Cancellation() })

const URL_ = 'http://svc/x'
const tasks: Array<[name: string, call: () => Promise<unknown>]> = [
  ['bare async call (no-op transport)', () => noopFetch(URL_)],
  ['meshlet default stack (15 s deadline)', () => meshDefault(URL_)],
  ['meshlet default stack, timeout 0', () => meshNoDeadline(URL_)],
  ['meshlet retry 3 + perTryTimeout 500ms', () => meshRetryTimeout(URL_)],
  ['meshlet default, via fetch transport', () => meshViaFetch(URL_)],
  ['cockatiel retry', () => cockatielRetry.execute(noop)],
  ['cockatiel wrap(retry, breaker, timeout)', () => cockatielWrap.execute(noop)],
  ['p-retry bare, pRetry(noop, { retries: 2 })', () => pRetry(noop, { retries: 2 })],
  ['default stack composed, meshlet retry', () => stackMeshletRetry(REQ, rootContext())],
  ['default stack composed, p-retry stage', () => stackPRetry(REQ, rootContext())],
]

const bench = new Bench({ time: TIME_MS, warmupTime: 250 })
for (const [name, call] of tasks) {
  bench.add(name, async () => {
    for (let i = 0; i < BATCH; i++) await call()
  })
}

console.log(`meshlet bench: ${new Date().toISOString()}`)
console.log(
  `node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} x${os.cpus().length}, ${os.platform()}`,
)
console.log(`meshlet: ${meshlet.how}`)
console.log(`${BATCH} sequential calls per sample, ${TIME_MS} ms per task\n`)
await bench.run()

const rows = bench.tasks.map((task) => {
  const latency = task.result?.latency
  if (latency === undefined || task.result?.error)
    throw task.result?.error ?? new Error(`${task.name}: no result`)
  // tinybench reports milliseconds per sample; a sample is BATCH calls.
  return {
    name: task.name,
    mean: (latency.mean * 1e6) / BATCH,
    p99: ((latency.p99 ?? Number.NaN) * 1e6) / BATCH,
  }
})
const bare = rows[0]!.mean
const fmt = (ns: number) => (Number.isNaN(ns) ? '-' : Math.round(ns).toLocaleString('en-US'))
const width = Math.max(...rows.map((r) => r.name.length))
console.log(
  `${'what'.padEnd(width)}  ${'ns/op mean'.padStart(10)}  ${'ns/op p99'.padStart(10)}  ${'x bare'.padStart(7)}`,
)
for (const r of rows) {
  console.log(
    `${r.name.padEnd(width)}  ${fmt(r.mean).padStart(10)}  ${fmt(r.p99).padStart(10)}  ${(r.mean / bare).toFixed(1).padStart(7)}`,
  )
}
console.log(`\np99 is the 99th percentile of per-sample means (${BATCH} calls each), not of single calls.`)
const mean = (name: string) => rows.find((r) => r.name.startsWith(name))!.mean
const pRetryBare = mean('p-retry bare')
const composedOwn = mean('default stack composed, meshlet retry')
const composedPRetry = mean('default stack composed, p-retry stage')
console.log(
  `p-retry stage: ${(composedPRetry / composedOwn).toFixed(1)}x the stack with meshlet's retry ` +
    `(+${fmt(composedPRetry - composedOwn)} ns/op), ${(composedPRetry / pRetryBare).toFixed(2)}x bare p-retry`,
)
await meshlet.cleanup()

// simulate(): wall time of 60 virtual seconds at 1,000 calls/s through retry, balancer and
// attempt timeouts (the testing kit's speed promise: well under 5 s), from the build in dist/.
const testing = (await import(
  pathToFileURL(fileURLToPath(new URL('../dist/testing/index.js', import.meta.url))).href
)) as typeof import('../src/testing/index.js')
const simConfig: MeshConfig = {
  services: {
    api: {
      endpoints: Array.from({ length: 5 }, (_, i) => `http://10.0.0.${i + 1}:80`),
      timeout: '1s',
      retry: { attempts: 3, perTryTimeout: '200ms' },
    },
  },
}
const simStart = performance.now()
const sim = await testing.simulate(simConfig, {
  duration: '60s',
  rate: 1000,
  defaults: { latency: { logNormal: { median: 5, p99: 40 } }, errorRate: 0.05 },
})
const simWall = performance.now() - simStart
console.log(
  `\nsimulate(): 60 virtual s at 1,000 calls/s (retry, balancer, timeouts; ${sim.calls} calls, ` +
    `${sim.attempts} attempts) took ${Math.round(simWall)} ms of wall time (${(60_000 / simWall) | 0}x real time)`,
)
