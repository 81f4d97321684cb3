/**
 * The overhead benchmark (`npm run bench`): what meshlet's stack, cockatiel's policies, opossum
 * and p-retry cost per call around a no-op transport, next to the bare call, all measured in one
 * run so that the ratios are comparable. See bench/README.md for how to read it.
 */
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
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
import OpossumBreaker from 'opossum'
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

// opossum as the interop stage uses it (docs/decisions.md, D14): one breaker whose action runs the
// attempt it is handed, fired around the no-op; with its own timeout off, and with its default
// 10 s timeout (a setTimeout + clearTimeout per call).
const runIt = (run: () => Promise<unknown>) => run()
const opossumNoTimeout = new OpossumBreaker(runIt, { timeout: false })
const opossumDefault = new OpossumBreaker(runIt)

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

// meshlet's own breaker stage alone around the no-op, default options (5 failures in a row),
// called with one prebuilt context like opossum's `fire`: the breaker's cost, not the context's.
const { CircuitBreaker: MeshBreaker, circuitBreaker: meshCircuitBreaker } = meshlet.lib
const meshBreakerStage = meshCircuitBreaker<Req, Res>({
  breaker: new MeshBreaker(),
  classify: httpClassifier(),
  service: 'svc',
})(noopTransport)
const breakerContext = rootContext()

const URL_ = 'http://svc/x'
const tasks: Array<[name: string, call: () => Promise<unknown>]> = [
  ['bare async call (no-op transport)', () => noopFetch(URL_)],
  ['meshlet default stack (15 s deadline)', () => meshDefault(URL_)],
  ['meshlet default stack, timeout 0', () => meshNoDeadline(URL_)],
  ['meshlet retry 3 + perTryTimeout 500ms', () => meshRetryTimeout(URL_)],
  ['meshlet default, via fetch transport', () => meshViaFetch(URL_)],
  ['cockatiel retry', () => cockatielRetry.execute(noop)],
  ['cockatiel wrap(retry, breaker, timeout)', () => cockatielWrap.execute(noop)],
  ['opossum fire (timeout off)', () => opossumNoTimeout.fire(noop)],
  ['opossum fire (default 10 s timeout)', () => opossumDefault.fire(noop)],
  ['meshlet circuitBreaker stage alone', () => meshBreakerStage(REQ, breakerContext)],
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
const opossumOff = mean('opossum fire (timeout off)')
const opossumOn = mean('opossum fire (default 10 s timeout)')
const meshBreaker = mean('meshlet circuitBreaker stage alone')
console.log(
  `opossum fire: ${(opossumOff / meshBreaker).toFixed(1)}x (timeout off) and ${(opossumOn / meshBreaker).toFixed(1)}x ` +
    `(10 s timeout) meshlet's circuitBreaker stage alone`,
)
opossumNoTimeout.shutdown()
opossumDefault.shutdown()
await meshlet.cleanup()

// Memory and timers per breaker, in a fresh process with --expose-gc so that heapUsed is read
// after full collections. opossum unref()s its intervals, and process.getActiveResourcesInfo()
// lists only what keeps the loop alive, so it sees none of them: live Timeout objects are
// counted with an async_hooks hook instead, and both counts are printed.
const opossumUrl = pathToFileURL(createRequire(import.meta.url).resolve('opossum')).href
const distUrl = new URL('../dist/index.js', import.meta.url).href
const breakerProbe = `
import { createHook } from 'node:async_hooks'
const OpossumBreaker = (await import(${JSON.stringify(opossumUrl)})).default
const { CircuitBreaker } = await import(${JSON.stringify(distUrl)})
const N = 10_000
const live = new Set()
const hook = createHook({
  init(id, type) { if (type === 'Timeout') live.add(id) },
  destroy(id) { live.delete(id) },
})
const refed = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length
const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed }
async function measure(name, create, shutdown) {
  let kept = []
  const h0 = heap()
  for (let i = 0; i < N; i++) kept.push(create())
  const bytes = (heap() - h0) / N
  for (const b of kept) shutdown(b)
  kept = []
  hook.enable()
  const live0 = live.size
  const refed0 = refed()
  for (let i = 0; i < N; i++) kept.push(create())
  const timers = (live.size - live0) / N
  const loopTimers = (refed() - refed0) / N
  for (const b of kept) shutdown(b)
  // destroy hooks of cleared timers run on a later turn of the loop
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  const left = (live.size - live0) / N
  hook.disable()
  console.log(JSON.stringify({ name, bytes, timers, loopTimers, left }))
}
const runIt = (run) => run()
await measure('opossum CircuitBreaker (default options)', () => new OpossumBreaker(runIt), (b) => b.shutdown())
await measure('meshlet CircuitBreaker (default options)', () => new CircuitBreaker(), () => {})
`
type BreakerCost = { name: string; bytes: number; timers: number; loopTimers: number; left: number }
try {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', breakerProbe], {
    encoding: 'utf8',
  })
  console.log('\nper breaker, 10,000 created in a fresh node --expose-gc process (heapUsed after gc):')
  for (const line of out.trim().split('\n')) {
    const c = JSON.parse(line) as BreakerCost
    console.log(
      `${c.name}: ${fmt(c.bytes)} bytes, ${c.timers.toFixed(2)} live timers (async_hooks; ` +
        `${c.loopTimers.toFixed(2)} in process.getActiveResourcesInfo(), which skips unref'd ones), ` +
        `${c.left.toFixed(2)} left after shutdown`,
    )
  }
} catch (error) {
  console.log(`\nper-breaker memory not measured: ${(error as Error).message}`)
}

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
