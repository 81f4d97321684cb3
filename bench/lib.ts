/**
 * What the bench's parts share: loading meshlet from dist/, starting child processes (servers
 * and measuring probes) with the same Node and loader as the parent, and small statistics.
 */

import { type ChildProcess, fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
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

export type Meshlet = typeof import('../src/index.js')
export type MeshletTesting = typeof import('../src/testing/index.js')

/** The repository's root. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url))
const DIST = join(ROOT, 'dist', 'index.js')
const DIST_TESTING = join(ROOT, 'dist', 'testing', 'index.js')

/**
 * meshlet as users run it: the build in dist/ (`npm run bench` builds first). Importing src
 * through tsx would measure tsx's `keepNames`, which adds an `Object.defineProperty` to every
 * closure created per call (over 2x slower here), a cost the published package never pays.
 */
export async function loadMeshlet(): Promise<Meshlet> {
  if (!existsSync(DIST)) throw new Error('bench: dist/index.js is missing; run `npm run build` first')
  return (await import(pathToFileURL(DIST).href)) as Meshlet
}

/** meshlet's testing kit from dist/. */
export async function loadTesting(): Promise<MeshletTesting> {
  return (await import(pathToFileURL(DIST_TESTING).href)) as MeshletTesting
}

/** A short hash of the built ESM code in dist/ (so two runs can tell they measured the same build). */
export function distHash(): string {
  const hash = createHash('sha256')
  const files = readdirSync(join(ROOT, 'dist'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.js'))
    .sort()
  for (const f of files) hash.update(f).update(readFileSync(join(ROOT, 'dist', f)))
  return hash.digest('hex').slice(0, 8)
}

const require = createRequire(import.meta.url)

/** The installed version of a dependency (read from its package.json). */
export function versionOf(name: string): string {
  let dir = dirname(require.resolve(name))
  for (;;) {
    const file = join(dir, 'package.json')
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === name && pkg.version) return pkg.version
    }
    const up = dirname(dir)
    if (up === dir) return 'unknown'
    dir = up
  }
}

/**
 * Starts `bench/<script>` in a child process with this process's Node and loader flags (tsx)
 * plus `flags`, connected by IPC.
 */
export function startChild(script: string, args: string[] = [], flags: string[] = []): ChildProcess {
  return fork(join(ROOT, 'bench', script), args, {
    execArgv: [...process.execArgv, ...flags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
}

/** Runs `bench/<script>` in a child process and resolves with the one message it sends. */
export function runChild<T>(script: string, args: string[] = [], flags: string[] = []): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const child = startChild(script, args, flags)
    let result: { ok: true; value: T } | undefined
    child.on('message', (message) => {
      result = { ok: true, value: message as T }
    })
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (result) resolve(result.value)
      else reject(new Error(`bench/${script} ${args.join(' ')} exited with ${signal ?? code} and no result`))
    })
  })
}

/** Sends `value` to the parent and lets the process end once it is delivered. */
export function reply(value: unknown): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (!process.send) {
      console.log(JSON.stringify(value, null, 2))
      resolve()
      return
    }
    process.send(value, (error: Error | null) => {
      if (error) reject(error)
      else {
        process.disconnect?.()
        resolve()
      }
    })
  })
}

/** Starts a server script in a child process; resolves with its port once it listens. */
export async function startServer(script: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = startChild(script)
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m) => resolve((m as { port: number }).port))
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`bench/${script} exited with ${code} before listening`)))
  })
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve()
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
      }),
  }
}

/** The p-th percentile (0..100) of ascending `sorted`, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const n = sorted.length
  if (n === 0) return Number.NaN
  return n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Resolves after `n` turns of the event loop (destroy hooks of cleared timers run on a later turn). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve))
}

/** Full collections, then `heapUsed`. Needs `--expose-gc`. */
export function gcHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('bench: this probe needs node --expose-gc')
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/**
 * cockatiel's `wrap(retry, circuitBreaker, timeout)` as every peer row uses it: 3 attempts with
 * exponential backoff, a breaker opening after 5 consecutive failures, a cooperative 10 s timeout.
 */
export function cockatielWrap() {
  return wrap(
    retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) }),
    timeout(10_000, TimeoutStrategy.Cooperative),
  )
}
