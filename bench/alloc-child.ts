/**
 * Bytes allocated per call of each in-process task, in a fresh process started with
 * `--expose-gc --min-semi-space-size=64 --max-semi-space-size=64`.
 *
 * Method (works the same on Node 20 and 24; neither exposes a cumulative allocation counter in
 * `v8.getHeapStatistics()`): after a warm-up, two full collections, then `heapUsed` is read
 * before and after N sequential awaited calls (fewer for a task whose calls allocate so much that
 * N of them would not fit in 24 MB); with a 64 MB young generation no collection runs in between, so the difference is what the N calls allocated (garbage included) on the V8 heap.
 * Each sample is checked against the `gc` performance entries: one with a collection inside it
 * is dropped. The figure is the median of the kept samples, divided by N. It counts JS heap
 * only (not Buffers' external memory) and includes the harness's own `await` (the bare row).
 */
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { inProcessTasks } from './in-process.js'
import { gcHeap, loadMeshlet, median, reply, sleep } from './lib.js'

const smoke = process.argv.includes('--smoke')
const N = smoke ? 200 : 2000
const SAMPLES = smoke ? 2 : 5

const gcTimes: number[] = []
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcTimes.push(e.startTime, e.startTime + e.duration)
})
observer.observe({ entryTypes: ['gc'] })

const lib = await loadMeshlet()
const { tasks, close } = inProcessTasks(lib)
const result: Record<string, { bytes: number; kept: number }> = {}
for (const task of tasks) {
  for (let i = 0; i < N; i++) await task.call()
  // Fewer calls per sample for a task that allocates much (Node's fetch: ~35 KB a call), so that
  // a sample fits in the young generation with room to spare and sees no collection.
  const h = gcHeap()
  for (let i = 0; i < 100; i++) await task.call()
  const pilot = (process.memoryUsage().heapUsed - h) / 100
  const n = Math.max(100, Math.min(N, Math.floor(24e6 / Math.max(pilot, 1))))
  const samples: Array<{ bytes: number; from: number; to: number }> = []
  for (let s = 0; s < SAMPLES; s++) {
    const h0 = gcHeap()
    const from = performance.now()
    for (let i = 0; i < n; i++) await task.call()
    const h1 = process.memoryUsage().heapUsed
    samples.push({ bytes: (h1 - h0) / n, from, to: performance.now() })
  }
  // gc entries are delivered asynchronously
  await sleep(50)
  const kept = samples.filter((s) => !gcTimes.some((t) => t > s.from && t < s.to)).map((s) => s.bytes)
  result[task.id] = { bytes: kept.length > 0 ? median(kept) : Number.NaN, kept: kept.length }
}
observer.disconnect()
await close()
await reply(result)
process.exit(0)
