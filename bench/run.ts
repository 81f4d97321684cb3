/**
 * The benchmark (`npm run bench`, issue 9): in one run, what meshlet costs per call in process
 * next to cockatiel, opossum and p-retry; loopback HTTP and gRPC throughput and latency next to
 * the bare clients; heap and timers per endpoint and per service; `mesh.update` time. Writes
 * bench/results/node<major>.json, appends its key figures to bench/results/history.jsonl, and
 * writes docs/performance.md (every Node version's latest run side by side); prints the same
 * markdown to stdout; progress goes to stderr.
 *
 * `--smoke` (`npm run bench:smoke`): every part for a moment, nothing written, no assertion on
 * timings: the bench code is exercised, the figures mean nothing.
 * `--render`: measures nothing; rewrites docs/performance.md from bench/results/.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './lib.js'
import { measure, type Settings } from './measure.js'
import { type HistoryEntry, type InstructionsRun, keyFigures, type RunResult, render } from './report.js'

const smoke = process.argv.includes('--smoke')
const renderOnly = process.argv.includes('--render')
const log = (line: string) => process.stderr.write(`${line}\n`)
const started = performance.now()

const settings: Settings = smoke
  ? {
      timeMs: 50,
      warmupMs: 10,
      loopMs: 300,
      rounds: 1,
      loopWarmupMs: 50,
      endpoints: 1000,
      services: 1000,
      breakers: 1000,
      updateServices: 100,
      updateReps: 3,
      simulateSeconds: 5,
      inflightCalls: 200,
    }
  : {
      timeMs: Number(process.env['BENCH_TIME_MS'] ?? 1000),
      warmupMs: 250,
      loopMs: 5000,
      rounds: 25,
      loopWarmupMs: 500,
      endpoints: 10_000,
      services: 10_000,
      breakers: 10_000,
      updateServices: 1000,
      updateReps: 9,
      simulateSeconds: 60,
      inflightCalls: 5000,
    }

const RESULTS = join(ROOT, 'bench', 'results')
const HISTORY = join(RESULTS, 'history.jsonl')

/** Every Node version's latest full run, Node 20 (the targets' reference) first. */
function savedRuns(): RunResult[] {
  if (!existsSync(RESULTS)) return []
  const order = (r: RunResult) => {
    const m = Number(r.meta.node.replace(/^v/, '').split('.')[0])
    return m === 20 ? 0 : m
  }
  return readdirSync(RESULTS)
    .filter((f) => /^node\d+\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as RunResult)
    .filter((r) => !r.meta.smoke)
    .sort((a, b) => order(a) - order(b))
}

function savedHistory(): HistoryEntry[] {
  if (!existsSync(HISTORY)) return []
  return readFileSync(HISTORY, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as HistoryEntry)
}

/** Every Node version's latest `npm run bench:instructions`, Node 20 first. */
function savedInstructions(): InstructionsRun[] {
  if (!existsSync(RESULTS)) return []
  return readdirSync(RESULTS)
    .filter((f) => /^instructions-node\d+\.json$/.test(f))
    .sort((a, b) => (a.includes('node20') ? -1 : b.includes('node20') ? 1 : a.localeCompare(b)))
    .map((f) => JSON.parse(readFileSync(join(RESULTS, f), 'utf8')) as InstructionsRun)
}

let markdown: string
if (renderOnly) {
  markdown = render(savedRuns(), savedHistory(), savedInstructions())
} else {
  const result = await measure(settings, smoke, log)
  if (smoke) {
    markdown = render([result], [keyFigures(result)])
  } else {
    const major = Number(process.versions.node.split('.')[0])
    mkdirSync(RESULTS, { recursive: true })
    writeFileSync(join(RESULTS, `node${major}.json`), `${JSON.stringify(result, null, 2)}\n`)
    appendFileSync(HISTORY, `${JSON.stringify(keyFigures(result))}\n`)
    markdown = render(savedRuns(), savedHistory(), savedInstructions())
    log(`\nwrote bench/results/node${major}.json, appended to bench/results/history.jsonl`)
  }
}
if (!smoke) {
  writeFileSync(join(ROOT, 'docs', 'performance.md'), `${markdown}\n`)
  log('wrote docs/performance.md')
}
process.stdout.write(`${markdown}\n`)
log(`done in ${Math.round((performance.now() - started) / 1000)} s`)
process.exit(0)
