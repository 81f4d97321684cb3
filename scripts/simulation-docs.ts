/**
 * Generates docs/simulation.md from the published scenarios run through `simulate()`, so the
 * numbers in the docs are exactly the ones this command prints. `npm run docs:simulation`
 * rewrites the file; a test checks that the committed file matches a fresh run.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { hedgingConfig, hedgingScenario } from '../examples/simulations/hedging.js'
import {
  backends,
  slowBackendConfig,
  slowBackendScenario,
  strategies,
} from '../examples/simulations/slow-backend.js'
import type { MeshConfig } from '../src/index.js'
import { type SimulationReport, simulate } from '../src/testing/index.js'

const pct = (x: number) => `${(x * 100).toFixed(2)}%`
const msf = (x: number) => `${x.toFixed(1)} ms`

/** The slow-backend runs, one per strategy, in the table's order. */
export async function slowBackendRuns(): Promise<Map<string, SimulationReport>> {
  const runs = new Map<string, SimulationReport>()
  for (const lb of strategies) runs.set(lb, await simulate(slowBackendConfig(lb), slowBackendScenario))
  return runs
}

/** The slow-backend table: one row per strategy. */
export async function slowBackendTable(runs?: Map<string, SimulationReport> | undefined): Promise<string> {
  const reports = runs ?? (await slowBackendRuns())
  const rows = [
    '| strategy | success | failed calls | p50 | p99 | p99.9 | share of the slow backend |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const [lb, r] of reports) {
    const slow = r.endpoints[backends[0]!]!
    rows.push(
      `| \`${lb}\` | ${pct(r.successRate)} | ${r.calls - r.succeeded} | ${msf(r.latency.p50)} | ${msf(r.latency.p99)} | ${msf(r.latency.p999)} | ${pct(slow.share)} |`,
    )
  }
  return rows.join('\n')
}

/** What the slow-backend runs show, with their own numbers. */
function slowBackendFindings(runs: Map<string, SimulationReport>): string {
  const failed = (lb: string) => {
    const r = runs.get(lb)
    return r === undefined ? 0 : r.calls - r.succeeded
  }
  return `Published for the same experiment: round robin ~95% success, least-loaded ~99%, peak EWMA
~99.9%. Round robin, weighted round robin (all weights are equal here) and random keep sending
1/11 of the calls to the slow backend for 30 s, and each of those fails at the 1 s timeout:
0.5 x 1/11 = 4.5% of all calls. \`ring-hash\` keeps each of the 1,000 users on its backend,
whatever that backend's latency, so the users of the slow one lose every call for 30 s: key
affinity is not load balancing (add outlier detection to take such a backend out).
\`least-request\` (power of two choices on in-flight calls) sees the calls piling up on the slow
backend and stops picking it within a few calls; what it still loses (${failed('least-request')}
calls) is the calls sent in each interval where the slow backend's queue had drained.
\`peak-ewma\` also weighs the latency it observed: the first timeout sets the slow backend's
estimate to 1 s, far above a healthy backend's, and it is not picked again until the estimate
has decayed (time constant 10 s), so it lost ${failed('peak-ewma')} calls in all: those sent to the
slow backend before its first timeout, and the odd probe once the estimate had come down. The
price of that caution: a backend that recovers waits a while (about 30 s here) before it gets
its share again. docs/load-balancing.md says when to choose which.`
}

/** The hedging table: with and without a hedge at p95, under two balancers. */
export async function hedgingTable(): Promise<string> {
  const rows = [
    '| balancer | hedging | p50 | p99 | p99.9 | attempts per call | p99 cut |',
    '|---|---|---|---|---|---|---|',
  ]
  for (const lb of ['round-robin', 'least-request'] as const) {
    const plain = await simulate(hedgingConfig(false, lb), hedgingScenario)
    const hedged = await simulate(hedgingConfig(true, lb), hedgingScenario)
    for (const [name, r] of [
      ['none', plain],
      ['at p95', hedged],
    ] as const) {
      const cut = name === 'none' ? '' : `${(plain.latency.p99 / r.latency.p99).toFixed(1)}x`
      rows.push(
        `| \`${lb}\` | ${name} | ${msf(r.latency.p50)} | ${msf(r.latency.p99)} | ${msf(r.latency.p999)} | ${r.attemptsPerCall.toFixed(3)} | ${cut} |`,
      )
    }
  }
  return rows.join('\n')
}

/** The budget table of docs/retries.md: sparse failures, and a service that is down. */
export async function budgetTable(): Promise<string> {
  const endpoints = ['http://10.0.3.1:8080', 'http://10.0.3.2:8080', 'http://10.0.3.3:8080']
  const config = (attempts: number, budget: boolean): MeshConfig => ({
    services: {
      api: { endpoints, retry: { attempts, ...(budget ? {} : { budget: { kind: 'none' as const } }) } },
    },
  })
  const base = {
    seed: 7,
    duration: '60s',
    rate: 1000,
    defaults: { latency: { logNormal: { median: 5, p99: 30 } } },
  }
  const sparse = { ...base, endpoints: { [endpoints[1]!]: { errorRate: 0.3, error: { status: 503 } } } }
  const down = { ...base, defaults: { ...base.defaults, errorRate: 1, error: { status: 503 } } }
  const rows = [
    '| failures | retries | success | attempts per call (load on the service) |',
    '|---|---|---|---|',
  ]
  for (const [label, scenario] of [
    ['one endpoint of three fails 30%', sparse],
    ['every endpoint fails (service down)', down],
  ] as const) {
    for (const [name, cfg] of [
      ['none', config(1, true)],
      ['3 attempts, no budget', config(3, false)],
      ['3 attempts, default budget', config(3, true)],
    ] as const) {
      const r = await simulate(cfg, scenario)
      rows.push(`| ${label} | ${name} | ${pct(r.successRate)} | ${r.attemptsPerCall.toFixed(2)} |`)
    }
  }
  return rows.join('\n')
}

/** docs/retries.md with its generated table put between its markers. */
export async function renderRetries(current: string): Promise<string> {
  const open = '<!-- simulate:budget -->'
  const close = '<!-- /simulate:budget -->'
  const start = current.indexOf(open)
  const end = current.indexOf(close)
  if (start < 0 || end < start) throw new Error('docs/retries.md: the simulate:budget markers are missing')
  return `${current.slice(0, start + open.length)}\n${await budgetTable()}\n${current.slice(end)}`
}

/** The whole page. */
export async function render(): Promise<string> {
  const slowRuns = await slowBackendRuns()
  return `# Simulations

Generated by \`npm run docs:simulation\` (scripts/simulation-docs.ts) from \`simulate()\` runs; do
not edit by hand. Every figure below is what that command printed, and a test checks that this
page matches a fresh run. The runs are deterministic: same scenario and seed, same numbers.

## Balancing under a slow backend

The scenario of Buoyant's "Beyond Round Robin" (2016): 11 backends at 1,000 calls/s, one held at
2 s latency for 30 s of a 60 s run, a 1 s call timeout, no retries, so the balancer alone decides
who waits. Healthy backends answer with a log-normal latency, median 5 ms, p99 30 ms
(examples/simulations/slow-backend.ts, seed ${slowBackendScenario.seed}). Latency is what callers
saw, failures (timeouts at 1 s) included.

${await slowBackendTable(slowRuns)}

${slowBackendFindings(slowRuns)}

## Hedging against rare slow answers

In the manner of "The Tail at Scale" (Dean & Barroso, 2013): five endpoints answer with a
log-normal latency (median 10 ms, p99 25 ms), but one of them stalls for 1 s on 10% of its
calls, at 500 calls/s for 60 s (examples/simulations/hedging.ts, seed ${hedgingScenario.seed}). With a
hedge at the service's p95 latency (\`hedge: { delay: 'p95' }\`), a call still waiting at p95 gets
a second attempt on another endpoint; the first answer wins and the other is cancelled.

${await hedgingTable()}

"Attempts per call" above 1 is the extra load the hedges cost. Under round robin any call may land
on the stalling endpoint, so ~2% of calls take a second and set the p99; the hedge cuts that
tail for the price of hedging the ~5% of calls slower than p95. Under \`least-request\` the
balancer already sends fewer calls to the endpoint holding stalled ones, so the p99 was good
without hedging; the hedge still removes the p99.9 tail. Published: a hedge after 10 ms cut p99.9
from 1,800 ms to 74 ms for 2% more requests.
`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const page = await render()
  const out = new URL('../docs/simulation.md', import.meta.url)
  writeFileSync(out, page)
  console.log(page)
  const retries = new URL('../docs/retries.md', import.meta.url)
  const updated = await renderRetries(readFileSync(retries, 'utf8'))
  writeFileSync(retries, updated)
  console.log(
    updated.slice(updated.indexOf('<!-- simulate:budget -->'), updated.indexOf('<!-- /simulate:budget -->')),
  )
}
