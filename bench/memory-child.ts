/**
 * Memory, timers and reconfiguration, each mode in a fresh `node --expose-gc` process
 * (bench/run.ts starts one per mode) so that earlier work leaves nothing on the heap:
 *
 * - `endpoints N`: one service with N endpoints and outlier detection on.
 * - `services N`: N services of one endpoint each, each with a circuit breaker.
 * - `breakers N`: N breakers alone: meshlet's `CircuitBreaker`, opossum's, cockatiel's policy.
 * - `update N REPS`: `mesh.update` of N services, median of REPS.
 *
 * Bytes: `heapUsed` after two full collections, before and after, divided by N; the mesh is
 * built with the fetch wrapped, then called (2 x N calls over the endpoints; one call to each
 * service), since stacks are built on a destination's first call. The config object given to
 * `createMesh` exists before the first reading, so it is not counted; what meshlet makes of it is.
 *
 * Timers: a second, separate build with an `async_hooks` hook counting `Timeout` resources
 * created (init) and still alive (init minus destroy, read a few loop turns after the calls so
 * that cleared per-call timers are gone). Counted this way because a timer that is `unref()`ed
 * is invisible to `process.getActiveResourcesInfo()`, which is printed beside it.
 */
import { createHook } from 'node:async_hooks'
import { performance } from 'node:perf_hooks'
import { ConsecutiveBreaker, circuitBreaker as cockatielBreaker, handleAll } from 'cockatiel'
import OpossumBreaker from 'opossum'
import type { Handler, HttpRequest, MeshConfig } from '../src/index.js'
import { gcHeap, loadMeshlet, median, reply, turns } from './lib.js'

const [mode = 'endpoints', nArg = '10000', repsArg = '9'] = process.argv.slice(2)
const N = Number(nArg)
const lib = await loadMeshlet()
const { createMesh, withMesh, CircuitBreaker } = lib

const RESPONSE = new Response(null, { status: 200 })
const noopFetch = (async () => RESPONSE) as unknown as typeof fetch
const noopTransport: Handler<HttpRequest, Response> = async () => RESPONSE

const live = new Set<number>()
let created = 0
const hook = createHook({
  init(id, type) {
    if (type === 'Timeout') {
      live.add(id)
      created++
    }
  },
  destroy(id) {
    live.delete(id)
  },
})
const refedTimers = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length

/** Figures of one measured build. */
export interface BuildCost {
  /** Bytes per unit after the mesh is built. */
  readonly bytesBuilt: number
  /** Bytes per unit after the calls (stacks built, state touched). */
  readonly bytesCalled: number
  /** Timers created while building, per unit. */
  readonly timersCreatedBuild: number
  /** Timers created per call, while calling. */
  readonly timersPerCall: number
  /** Timers alive after the calls, per unit. */
  readonly timersLive: number
  /** Of those, the ones `process.getActiveResourcesInfo()` sees (ref'ed), per unit. */
  readonly timersRefed: number
  readonly units: number
  readonly calls: number
}

async function measureBuild(config: MeshConfig, urls: readonly string[]): Promise<BuildCost> {
  const callAll = async (f: typeof fetch) => {
    for (const url of urls) await f(url)
  }
  // Bytes.
  const h0 = gcHeap()
  let mesh = createMesh(config, { httpTransport: noopTransport })
  let f = withMesh(noopFetch, mesh)
  const hBuilt = gcHeap()
  await callAll(f)
  await turns(3)
  const hCalled = gcHeap()
  await mesh.close()
  // Timers, with the hook on (it makes promises heavier, so not during the byte count).
  hook.enable()
  const live0 = live.size
  const refed0 = refedTimers()
  const created0 = created
  mesh = createMesh(config, { httpTransport: noopTransport })
  f = withMesh(noopFetch, mesh)
  const createdBuild = created - created0
  await callAll(f)
  const createdCalls = created - created0 - createdBuild
  await turns(5)
  const timersLive = live.size - live0
  const timersRefed = refedTimers() - refed0
  hook.disable()
  await mesh.close()
  return {
    bytesBuilt: (hBuilt - h0) / N,
    bytesCalled: (hCalled - h0) / N,
    timersCreatedBuild: createdBuild / N,
    timersPerCall: createdCalls / urls.length,
    timersLive: timersLive / N,
    timersRefed: timersRefed / N,
    units: N,
    calls: urls.length,
  }
}

const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`

async function endpoints() {
  const config: MeshConfig = {
    services: {
      big: { endpoints: Array.from({ length: N }, (_, i) => `http://${ip(i)}:8080`), outlierDetection: {} },
    },
  }
  return measureBuild(
    config,
    Array.from({ length: 2 * N }, () => 'http://big/x'),
  )
}

async function services() {
  const config: MeshConfig = { services: {} }
  for (let i = 0; i < N; i++)
    config.services[`s${i}`] = { endpoints: [`http://${ip(i)}:8080`], circuitBreaker: {} }
  return measureBuild(
    config,
    Array.from({ length: N }, (_, i) => `http://s${i}/x`),
  )
}

async function breakers() {
  const runIt = (run: () => Promise<unknown>) => run()
  const kinds: Array<[string, () => unknown, (b: unknown) => void]> = [
    ['meshlet CircuitBreaker (defaults)', () => new CircuitBreaker(), () => {}],
    [
      'opossum CircuitBreaker (defaults)',
      () => new OpossumBreaker(runIt),
      (b) => (b as OpossumBreaker).shutdown(),
    ],
    [
      'cockatiel circuitBreaker (ConsecutiveBreaker)',
      () => cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
      (b) => (b as { dispose?: () => void }).dispose?.(),
    ],
  ]
  const out = []
  for (const [name, make, shutdown] of kinds) {
    let kept: unknown[] = []
    const h0 = gcHeap()
    for (let i = 0; i < N; i++) kept.push(make())
    const bytes = (gcHeap() - h0) / N
    for (const b of kept) shutdown(b)
    kept = []
    hook.enable()
    const live0 = live.size
    const refed0 = refedTimers()
    for (let i = 0; i < N; i++) kept.push(make())
    const timers = (live.size - live0) / N
    const refed = (refedTimers() - refed0) / N
    for (const b of kept) shutdown(b)
    await turns(5)
    const left = (live.size - live0) / N
    hook.disable()
    kept = []
    out.push({ name, bytes, timers, refed, left })
  }
  return out
}

async function update() {
  const reps = Number(repsArg)
  const configOf = (timeout: string): MeshConfig => {
    const config: MeshConfig = { services: {} }
    for (let i = 0; i < N; i++) {
      config.services[`s${i}`] = {
        endpoints: [`http://${ip(2 * i)}:8080`, `http://${ip(2 * i + 1)}:8080`],
        timeout,
        retry: { attempts: 3 },
      }
    }
    return config
  }
  const a = configOf('15s')
  const b = configOf('10s')
  let t = performance.now()
  const mesh = createMesh(a, { httpTransport: noopTransport })
  const create = performance.now() - t
  const f = withMesh(noopFetch, mesh)
  const times: number[] = []
  for (let r = 0; r < reps + 2; r++) {
    t = performance.now()
    mesh.update(r % 2 === 0 ? b : a)
    const ms = performance.now() - t
    if (r >= 2) times.push(ms)
  }
  // Stacks are built on a destination's first call after an update, not by the update.
  t = performance.now()
  for (let i = 0; i < N; i++) await f(`http://s${i}/x`)
  const firstCalls = performance.now() - t
  t = performance.now()
  for (let i = 0; i < N; i++) await f(`http://s${i}/x`)
  const nextCalls = performance.now() - t
  await mesh.close()
  return {
    services: N,
    reps,
    create,
    median: median(times),
    min: Math.min(...times),
    max: Math.max(...times),
    firstCalls,
    nextCalls,
  }
}

const run = { endpoints, services, breakers, update }[mode as 'endpoints']
if (run === undefined) throw new Error(`memory-child: unknown mode ${mode}`)
await reply(await run())
process.exit(0)
