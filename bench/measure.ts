/**
 * One full measurement (bench/run.ts decides what to do with it): the in-process tasks, the
 * loopback HTTP and gRPC comparisons, memory, timers and `mesh.update` in fresh processes, and
 * `simulate()`'s speed. See bench/README.md for the method of each part.
 */
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import { Bench } from 'tinybench'
import type { MeshConfig } from '../src/index.js'
import { inProcessTasks } from './in-process.js'
import { distHash, loadMeshlet, loadTesting, ROOT, runChild, versionOf } from './lib.js'
import { loopbackGrpc, loopbackHttp } from './loopback.js'
import {
  type BreakerCost,
  type BuildCost,
  type InProcessRow,
  inProcessLine,
  type RunResult,
  type UpdateCost,
} from './report.js'

/** How long and how big each part is. */
export type Settings = {
  readonly timeMs: number
  readonly warmupMs: number
  readonly loopMs: number
  readonly rounds: number
  readonly loopWarmupMs: number
  readonly endpoints: number
  readonly services: number
  readonly breakers: number
  readonly updateServices: number
  readonly updateReps: number
  readonly simulateSeconds: number
  /** Calls held in flight at once to count the bytes each holds. */
  readonly inflightCalls: number
}

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' })
    return dirty.trim() === ''
      ? `${head}, dist ${distHash()}`
      : `${head} + uncommitted src/, dist ${distHash()}`
  } catch {
    return `dist ${distHash()}`
  }
}

/** Runs every part once; progress lines go to `log`. */
export async function measure(
  settings: Settings,
  smoke: boolean,
  log: (line: string) => void,
): Promise<RunResult> {
  const started = performance.now()
  const lib = await loadMeshlet()
  log(
    `meshlet bench${smoke ? ' (smoke)' : ''}: node ${process.version}, ${os.cpus()[0]?.model ?? '?'} x${os.cpus().length}`,
  )

  // 1. In process, timed here in two passes, the second in reverse order, so that drift of the
  // machine during the pass falls on early and late tasks alike; bytes per call in a fresh process.
  const BATCH = 100
  log(`\nin process: ${BATCH} sequential calls per sample, 2 x ${settings.timeMs / 2} ms per task`)
  const { tasks, close } = inProcessTasks(lib)
  const samples = new Map<string, number[]>(tasks.map((t) => [t.id, []]))
  for (const order of [tasks, [...tasks].reverse()]) {
    const bench = new Bench({ time: settings.timeMs / 2, warmupTime: settings.warmupMs })
    for (const task of order) {
      const call = task.call
      bench.add(task.id, async () => {
        for (let i = 0; i < BATCH; i++) await call()
      })
    }
    await bench.run()
    for (const t of bench.tasks) {
      const result = t.result
      if (result === undefined || result.error) throw result?.error ?? new Error(`${t.name}: no result`)
      samples.get(t.name)!.push(...result.latency.samples)
    }
  }
  await close()
  log('bytes per call (child process)')
  const alloc = await runChild<Record<string, { bytes: number; kept: number }>>(
    'alloc-child.ts',
    smoke ? ['--smoke'] : [],
    ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'],
  )
  const inProcess: InProcessRow[] = tasks.map((task) => {
    // tinybench's samples are ms per sample; a sample is BATCH calls.
    const xs = samples.get(task.id)!.map((ms) => (ms * 1e6) / BATCH)
    const n = xs.length
    const mean = xs.reduce((a, b) => a + b, 0) / n
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1))
    return {
      id: task.id,
      name: task.name,
      ns: mean,
      // 95% margin of error of the mean, relative (normal approximation: n is in the thousands).
      rme: ((1.96 * sd) / Math.sqrt(n) / mean) * 100,
      samples: n,
      bytes: alloc[task.id]?.bytes ?? Number.NaN,
    }
  })
  for (const x of inProcess) log(inProcessLine(x, inProcess[0]!.ns))

  // 2, 3. Loopback.
  const loopOptions = {
    ms: settings.loopMs,
    rounds: settings.rounds,
    warmupMs: settings.loopWarmupMs,
    concurrencies: [1, 64],
    log,
  }
  log(`\nloopback HTTP: ${settings.loopMs} ms per client and concurrency, ${settings.rounds} rounds`)
  const http = await loopbackHttp(lib, loopOptions)
  log('loopback gRPC')
  const grpc = await loopbackGrpc(lib, loopOptions)

  // 4, 5. Memory, timers, update: one fresh process each.
  log(
    `\nmemory: ${settings.endpoints} endpoints, ${settings.services} services, ${settings.breakers} breakers`,
  )
  const gcFlags = ['--expose-gc']
  const endpoints = await runChild<BuildCost>(
    'memory-child.ts',
    ['endpoints', String(settings.endpoints)],
    gcFlags,
  )
  const services = await runChild<BuildCost>(
    'memory-child.ts',
    ['services', String(settings.services)],
    gcFlags,
  )
  const breakers = await runChild<BreakerCost[]>(
    'memory-child.ts',
    ['breakers', String(settings.breakers)],
    gcFlags,
  )
  log(`held per call in flight: ${settings.inflightCalls} calls`)
  const inflight = await runChild<Record<string, number>>(
    'inflight-child.ts',
    [String(settings.inflightCalls)],
    gcFlags,
  )
  log(`mesh.update: ${settings.updateServices} services, ${settings.updateReps} runs`)
  const update = await runChild<UpdateCost>(
    'memory-child.ts',
    ['update', String(settings.updateServices), String(settings.updateReps)],
    gcFlags,
  )

  // simulate(): wall time of virtual seconds at 1,000 calls/s through retry, circuit breaker,
  // balancer and attempt timeouts (the testing kit's speed promise: 60 s in well under 5 s).
  log('simulate()')
  const testing = await loadTesting()
  const simConfig: MeshConfig = {
    services: {
      api: {
        endpoints: Array.from({ length: 5 }, (_, i) => `http://10.0.0.${i + 1}:80`),
        timeout: '1s',
        retry: { attempts: 3, perTryTimeout: '200ms' },
        circuitBreaker: { consecutiveFailures: 5 },
      },
    },
  }
  const simStart = performance.now()
  const sim = await testing.simulate(simConfig, {
    duration: `${settings.simulateSeconds}s`,
    rate: 1000,
    defaults: { latency: { logNormal: { median: 5, p99: 40 } }, errorRate: 0.05 },
  })
  const simWall = ((performance.now() - simStart) * 60) / settings.simulateSeconds

  const result: RunResult = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      v8: process.versions.v8,
      cpu: os.cpus()[0]?.model ?? 'unknown CPU',
      cores: os.cpus().length,
      platform: `${os.platform()} ${os.arch()}`,
      commit: commit(),
      peers: Object.fromEntries(
        ['cockatiel', 'opossum', 'p-retry', 'undici', '@grpc/grpc-js', 'tinybench'].map((n) => [
          n,
          versionOf(n),
        ]),
      ),
      smoke,
      settings,
      wallSeconds: (performance.now() - started) / 1000,
    },
    inProcess,
    http,
    grpc,
    endpoints,
    services,
    breakers,
    update,
    inflight,
    simulate: { wallMs: simWall, calls: sim.calls, attempts: sim.attempts },
  }
  return result
}
