/**
 * The bench's results and docs/performance.md: one {@link RunResult} per Node version (kept in
 * bench/results/), rendered side by side, with issue 9's targets judged on each run's own
 * ratios.
 */

import type { LoopResult } from './loopback.js'
import type { BuildCost } from './memory-child.js'

export type { BuildCost }

/** One in-process row. */
export interface InProcessRow {
  readonly id: string
  readonly name: string
  /** Mean ns per call. */
  readonly ns: number
  /** Relative margin of error of the mean, percent. */
  readonly rme: number
  /** Samples (of BATCH calls each). */
  readonly samples: number
  /** V8 heap bytes allocated per call (NaN when no clean sample). */
  readonly bytes: number
}

/** One breaker kind alone. */
export interface BreakerCost {
  readonly name: string
  readonly bytes: number
  readonly timers: number
  readonly refed: number
  readonly left: number
}

/** `mesh.update` timings, ms. */
export interface UpdateCost {
  readonly services: number
  readonly reps: number
  readonly create: number
  readonly median: number
  readonly min: number
  readonly max: number
  readonly firstCalls: number
  readonly nextCalls: number
}

/** Everything one `npm run bench` measured. */
export interface RunResult {
  readonly meta: {
    readonly date: string
    readonly node: string
    readonly v8: string
    readonly cpu: string
    readonly cores: number
    readonly platform: string
    readonly commit: string
    readonly peers: Readonly<Record<string, string>>
    readonly smoke: boolean
    readonly settings: Readonly<Record<string, number>>
    readonly wallSeconds: number
  }
  readonly inProcess: readonly InProcessRow[]
  readonly http: readonly LoopResult[]
  readonly grpc: readonly LoopResult[]
  readonly endpoints: BuildCost
  readonly services: BuildCost
  readonly breakers: readonly BreakerCost[]
  readonly update: UpdateCost
  /** Bytes each client holds per call in flight (bench/inflight-child.ts); absent in older runs. */
  readonly inflight?: Readonly<Record<string, number>>
  readonly simulate: { readonly wallMs: number; readonly calls: number; readonly attempts: number }
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '-')
const fixed = (n: number, d: number) => (Number.isFinite(n) ? n.toFixed(d) : '-')
const major = (r: RunResult) => r.meta.node.replace(/^v/, '').split('.')[0]!
const label = (r: RunResult) => `Node ${major(r)}`

function row(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`
}
function table(head: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  return [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n')
}

const ns = (r: RunResult, id: string) => r.inProcess.find((x) => x.id === id)?.ns ?? Number.NaN
const bytes = (r: RunResult, id: string) => r.inProcess.find((x) => x.id === id)?.bytes ?? Number.NaN
const loop = (rows: readonly LoopResult[], client: string, c: number) =>
  rows.find((x) => x.client === client && x.concurrency === c)
/** `client`'s req/s over `base`'s with every round's calls pooled (calls over measured time). */
const pooledRatio = (rows: readonly LoopResult[], client: string, base: string, c: number) =>
  (loop(rows, client, c)?.rps ?? Number.NaN) / (loop(rows, base, c)?.rps ?? Number.NaN)
/**
 * `client`'s req/s over `base`'s in one run: the median, over rounds, of the two clients' ratio
 * within a round (where they ran back to back), so that a burst of load on the machine that hits
 * one client's slice moves one round's ratio, not the run's. Pooled when the run kept no rounds.
 */
const rpsRatio = (rows: readonly LoopResult[], client: string, base: string, c: number) => {
  const m = loop(rows, client, c)?.roundRps ?? []
  const b = loop(rows, base, c)?.roundRps ?? []
  if (m.length === 0 || m.length !== b.length) return pooledRatio(rows, client, base, c)
  return medianOf(m.map((v, i) => v / b[i]!))
}
const addedP50 = (r: RunResult) =>
  (loop(r.http, 'meshlet', 1)?.p50 ?? Number.NaN) - (loop(r.http, 'fetch', 1)?.p50 ?? Number.NaN)

/** The key figures of one full run, kept in bench/results/history.jsonl to show run-to-run spread. */
export interface HistoryEntry {
  readonly date: string
  readonly node: string
  readonly commit: string
  readonly fullNs: number
  readonly fullXWrap: number
  readonly httpC1: number
  readonly httpC64: number
  readonly addedP50: number
  readonly grpcC1: number
  readonly grpcC64: number
  readonly bytesPerEndpoint: number
  readonly timersPerEndpoint?: number
  readonly updateMs: number
}

/** The name of the A/A control of the gRPC set: a second bare client on a channel of its own. */
export const CONTROL = 'bare, 2nd channel'

/**
 * The A/A control of the gRPC set (a second bare client) against `bare`, when the run had one:
 * how far two identical clients land apart in this run, the yardstick for the targets' ratios.
 */
function controlLine(rows: readonly LoopResult[]): string {
  if (!rows.some((row) => row.client === CONTROL)) return ''
  const c1 = rpsRatio(rows, CONTROL, 'bare', 1)
  const c64 = rpsRatio(rows, CONTROL, 'bare', 64)
  return `A/A control, ${CONTROL} / bare: C=1 ${fixed(c1, 3)}x, C=64 ${fixed(c64, 3)}x (identical clients; a ratio within this of 1 is noise). `
}

/** The {@link HistoryEntry} of a run. */
export function keyFigures(r: RunResult): HistoryEntry {
  return {
    date: r.meta.date,
    node: r.meta.node,
    commit: r.meta.commit,
    fullNs: ns(r, 'mesh-full'),
    fullXWrap: ns(r, 'mesh-full') / ns(r, 'cockatiel-wrap'),
    httpC1: rpsRatio(r.http, 'meshlet', 'fetch', 1),
    httpC64: rpsRatio(r.http, 'meshlet', 'fetch', 64),
    addedP50: addedP50(r),
    grpcC1: rpsRatio(r.grpc, 'meshlet', 'bare', 1),
    grpcC64: rpsRatio(r.grpc, 'meshlet', 'bare', 64),
    bytesPerEndpoint: r.endpoints.bytesCalled,
    timersPerEndpoint: Math.max(r.endpoints.timersCreatedBuild, r.endpoints.timersLive),
    updateMs: r.update.median,
  }
}

/** One target of issue 9, judged on one run. */
interface Judged {
  readonly value: string
  readonly met: boolean | undefined
}

type Figure = Exclude<keyof HistoryEntry, 'date' | 'node' | 'commit'>

/** A target on one key figure: `limit` is a ceiling, or a floor when `atLeast`. */
interface Target {
  readonly id: string
  readonly text: string
  readonly figure: Figure
  readonly limit: number
  readonly atLeast?: boolean
  readonly show: (value: number) => string
}

function judge(t: Target, value: number, suffix = ''): Judged {
  if (!Number.isFinite(value)) return { value: '-', met: undefined }
  const met = t.atLeast ? value >= t.limit : value <= t.limit
  const miss = Math.abs(value - t.limit) / t.limit
  const note = met ? '' : ` (${fixed(miss * 100, t.atLeast ? 1 : 0)}% ${t.atLeast ? 'short' : 'over'})`
  return { value: `${t.show(value)}${suffix}${note}`, met }
}

const TARGETS: readonly Target[] = [
  {
    id: '1a',
    text: 'Full stack (default + breaker + bulkhead), no-op transport: <= 1.5 us per call',
    figure: 'fullNs',
    limit: 1500,
    show: (v) => `${int(v)} ns`,
  },
  {
    id: '1b',
    text: "Full stack <= 0.12x cockatiel's wrap(retry, circuitBreaker, timeout)",
    figure: 'fullXWrap',
    limit: 0.12,
    show: (v) => `${fixed(v, 3)}x`,
  },
  {
    id: '2a',
    text: 'withMesh(fetch) loopback throughput >= 0.97x bare fetch at C=1',
    figure: 'httpC1',
    limit: 0.97,
    atLeast: true,
    show: (v) => `${fixed(v, 3)}x`,
  },
  {
    id: '2b',
    text: 'withMesh(fetch) loopback throughput >= 0.97x bare fetch at C=64',
    figure: 'httpC64',
    limit: 0.97,
    atLeast: true,
    show: (v) => `${fixed(v, 3)}x`,
  },
  {
    id: '2c',
    text: 'Added p50 at C=1 <= 10 us',
    figure: 'addedP50',
    limit: 10,
    show: (v) => `${fixed(v, 1)} us`,
  },
  {
    id: '3a',
    text: 'Wrapped grpc-js unary throughput >= 0.95x bare at C=1',
    figure: 'grpcC1',
    limit: 0.95,
    atLeast: true,
    show: (v) => `${fixed(v, 3)}x`,
  },
  {
    id: '3b',
    text: 'Wrapped grpc-js unary throughput >= 0.95x bare at C=64',
    figure: 'grpcC64',
    limit: 0.95,
    atLeast: true,
    show: (v) => `${fixed(v, 3)}x`,
  },
  {
    id: '4a',
    text: '<= 1 KB heap per endpoint at 10,000 endpoints (after calls)',
    figure: 'bytesPerEndpoint',
    limit: 1024,
    show: (v) => `${int(v)} B`,
  },
  {
    id: '4b',
    text: 'Zero timers per endpoint at 10,000 endpoints (created while building, or alive)',
    figure: 'timersPerEndpoint',
    limit: 0,
    show: (v) => fixed(v, 4),
  },
  {
    id: '4c',
    text: '`mesh.update` of 1,000 services <= 50 ms',
    figure: 'updateMs',
    limit: 50,
    show: (v) => `${fixed(v, 1)} ms`,
  },
]

/** The build a history entry measured (`dist <hash>` in its commit label), if known. */
const buildOf = (commit: string) => /dist ([0-9a-f]{8})/.exec(commit)?.[1]

/** The entries of `history` on the same Node major and the same build as `r`. */
function sameBuild(r: RunResult, history: readonly HistoryEntry[]): HistoryEntry[] {
  const build = buildOf(r.meta.commit)
  if (build === undefined) return []
  return history.filter(
    (h) => buildOf(h.commit) === build && h.node.split('.')[0] === r.meta.node.split('.')[0],
  )
}

const medianOf = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? Number.NaN : n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2
}

/** meshlet's ratio to `base` round by round, per concurrency: min, median and max (the spread within one run). */
function roundSpread(rows: readonly LoopResult[], base: string): string {
  const cs = [...new Set(rows.map((x) => x.concurrency))]
  return cs
    .map((c) => {
      const m = loop(rows, 'meshlet', c)?.roundRps ?? []
      const b = loop(rows, base, c)?.roundRps ?? []
      const ratios = m.map((v, i) => v / (b[i] ?? Number.NaN)).sort((x, y) => x - y)
      if (ratios.length === 0) return `C=${c}: -`
      const mid =
        ratios.length % 2 === 1
          ? ratios[(ratios.length - 1) / 2]!
          : (ratios[ratios.length / 2 - 1]! + ratios[ratios.length / 2]!) / 2
      return `C=${c} ${fixed(ratios[0]!, 2)} / ${fixed(mid, 2)} / ${fixed(ratios[ratios.length - 1]!, 2)}`
    })
    .join(', ')
}

const mark = (j: Judged) => (j.met === undefined ? '-' : j.met ? 'met' : '**not met**')

/** The markdown of docs/performance.md for `runs` (the first is the reference, Node 20). */
/** One run of `npm run bench:instructions` (bench/instructions.ts), as saved in bench/results/. */
export interface InstructionsRun {
  readonly node: string
  /** The `dist` hash of the build counted. */
  readonly dist: string
  readonly calls: number
  readonly date: string
  readonly rows: readonly { readonly id: string; readonly name: string; readonly instructions: number }[]
}

export function render(
  runs: readonly RunResult[],
  history: readonly HistoryEntry[] = [],
  instructions: readonly InstructionsRun[] = [],
): string {
  const out: string[] = []
  const ref = runs[0]!
  const by = (f: (r: RunResult) => string | number) => runs.map(f)
  const heads = (cols: readonly string[]) => runs.flatMap((r) => cols.map((c) => `${label(r)} ${c}`))

  out.push(
    '<!-- Generated by `npm run bench` (Node 20) and `npm run bench:node24` (bench/run.ts); do not edit by hand. -->',
    '# Performance',
    '',
    "meshlet's cost next to the bare clients and its peers, every figure and ratio from one run of",
    '`npm run bench` per Node version (about 2 minutes each). The targets are those of issue 9;',
    'each is judged on ratios measured within one run. `bench/README.md` explains each row.',
    '',
    '## Runs',
    '',
    table(
      ['', ...runs.map(label)],
      [
        ['date', ...by((r) => r.meta.date)],
        ['Node / V8', ...by((r) => `${r.meta.node} / ${r.meta.v8}`)],
        ['machine', ...by((r) => `${r.meta.cpu}, ${r.meta.cores} cores, ${r.meta.platform}`)],
        ['meshlet', ...by((r) => `dist/ built from ${r.meta.commit}`)],
        [
          'peers',
          ...by((r) =>
            Object.entries(r.meta.peers)
              .map(([k, v]) => `${k} ${v}`)
              .join(', '),
          ),
        ],
        [
          'run time',
          ...by((r) => `${int(r.meta.wallSeconds)} s${r.meta.smoke ? ' (smoke: not figures)' : ''}`),
        ],
      ],
    ),
    '',
    '## Targets (issue 9)',
    '',
    table(
      [
        '#',
        'target',
        ...runs.flatMap((r) => [`${label(r)}, this run`, '', 'median of runs of this build', '']),
      ],
      [
        ...TARGETS.map((t) => [
          t.id,
          t.text,
          ...runs.flatMap((r) => {
            const one = judge(t, keyFigures(r)[t.figure] ?? Number.NaN)
            const same = sameBuild(r, history)
              .map((h) => h[t.figure])
              .filter((v): v is number => typeof v === 'number')
            const med = same.length >= 2 ? judge(t, medianOf(same), ` (${same.length} runs)`) : undefined
            return [one.value, mark(one), med?.value ?? '-', med ? mark(med) : '']
          }),
        ]),
        [
          '5',
          'The same figures on Node 24 reported beside Node 20',
          ...runs.flatMap((r) =>
            major(r) === '20'
              ? [
                  runs.some((x) => major(x) === '24') ? 'reported' : 'no Node 24 run yet',
                  runs.some((x) => major(x) === '24') ? 'met' : '**not met**',
                  '',
                  '',
                ]
              : ['this column', '', '', ''],
          ),
        ],
      ],
    ),
    '',
    'A target is judged on the run shown; beside it, the median of every full run of the same',
    'build (`dist` hash) on the same Node kept in bench/results/history.jsonl, which is the',
    'steadier figure where one run is noisy (see Variance).',
    '',
  )

  // In process.
  out.push(
    '## In process: cost per call around a no-op transport',
    '',
    'Mean ns per call (tinybench, 100 sequential calls per sample, two passes: the second in',
    'reverse order) with the 95% margin of error of the mean, `x bare` against the bare no-op in',
    'the same run, and bytes allocated per call on the V8 heap (fresh `--expose-gc` process;',
    'method in bench/README.md).',
    '',
    table(
      ['what', ...heads(['ns/op', '+-%', 'x bare', 'B/call'])],
      ref.inProcess.map((x) => [
        x.name,
        ...runs.flatMap((r) => {
          const v = ns(r, x.id)
          const rme = r.inProcess.find((y) => y.id === x.id)?.rme ?? Number.NaN
          return [int(v), fixed(rme, 1), fixed(v / ns(r, 'bare'), 1), int(bytes(r, x.id))]
        }),
      ]),
    ),
    '',
    'Each stage alone, added over its baseline (a root context per call around the no-op, as',
    '`Mesh.invoke` makes one): what the stage itself costs.',
    '',
    table(
      ['stage', ...heads(['+ns/op', '+B/call'])],
      [
        'stage-deadline',
        'stage-retry',
        'stage-breaker',
        'stage-balancer',
        'stage-timeout',
        'stage-bulkhead',
      ].map((id) => [
        ref.inProcess.find((x) => x.id === id)?.name.replace('stage alone: ', '') ?? id,
        ...runs.flatMap((r) => [int(ns(r, id) - ns(r, 'ctx')), int(bytes(r, id) - bytes(r, 'ctx'))]),
      ]),
    ),
    '',
    table(
      ['ratio', ...runs.map(label)],
      [
        [
          'full stack / cockatiel wrap',
          ...by((r) => `${fixed(ns(r, 'mesh-full') / ns(r, 'cockatiel-wrap'), 3)}x`),
        ],
        [
          'default stack / cockatiel wrap',
          ...by((r) => `${fixed(ns(r, 'mesh-default') / ns(r, 'cockatiel-wrap'), 3)}x`),
        ],
        [
          "withMesh(fetch) direct path / Node's fetch, on a dispatcher answering at once",
          ...by((r) => `${fixed(ns(r, 'mesh-direct') / ns(r, 'fetch-answering'), 2)}x`),
        ],
        [
          "withMesh(fetch) with directFetch false / Node's fetch, the same",
          ...by((r) => `${fixed(ns(r, 'mesh-direct-off') / ns(r, 'fetch-answering'), 2)}x`),
        ],
        [
          'withMesh default / same stages composed by hand',
          ...by((r) => `${fixed(ns(r, 'mesh-default') / ns(r, 'composed-default'), 2)}x`),
        ],
        [
          'p-retry stage / meshlet retry stage (composed stacks)',
          ...by((r) => `${fixed(ns(r, 'composed-p-retry') / ns(r, 'composed-default'), 1)}x`),
        ],
        [
          'opossum fire (off / 10 s timeout) / meshlet breaker stage',
          ...by(
            (r) =>
              `${fixed(ns(r, 'opossum-off') / ns(r, 'breaker-prebuilt'), 1)}x / ${fixed(ns(r, 'opossum-default') / ns(r, 'breaker-prebuilt'), 1)}x`,
          ),
        ],
        [
          'cockatiel circuitBreaker / meshlet breaker stage',
          ...by((r) => `${fixed(ns(r, 'cockatiel-breaker') / ns(r, 'breaker-prebuilt'), 1)}x`),
        ],
      ],
    ),
    '',
  )

  if (instructions.length > 0) {
    const names = [
      ...new Map(instructions.flatMap((x) => x.rows.map((r) => [r.id, r.name] as const))).entries(),
    ]
    const count = (x: InstructionsRun, id: string) => x.rows.find((r) => r.id === id)?.instructions
    out.push(
      '## In process: instructions per call',
      '',
      'Counted by `npm run bench:instructions` (callgrind, `node --predictable`; bench/README.md), a',
      "steady figure where the ns/op above move with the host's load: two runs of one build agreed",
      'to within ~30 instructions per call. Counted on its own schedule, so the build may differ from',
      'the runs above: each column names the build it counted (theirs are in Runs). Instructions, not',
      'time: read them to compare builds and peers on the same Node.',
      '',
      table(
        ['what', ...instructions.flatMap((x) => [`${x.node} (dist ${x.dist})`, 'x bare'])],
        names.map(([id, name]) => [
          name,
          ...instructions.flatMap((x) => {
            const n = count(x, id)
            const bare = count(x, 'bare')
            return [
              n === undefined ? '-' : int(n),
              n === undefined || bare === undefined ? '-' : `${fixed(n / bare, 1)}x`,
            ]
          }),
        ]),
      ),
      '',
    )
  }

  // Loopback.
  const loopTable = (rows: readonly LoopResult[], base: string) => {
    const clients = [...new Set(rows.map((x) => x.client))]
    const cs = [...new Set(rows.map((x) => x.concurrency))]
    return table(
      ['client', ...cs.flatMap((c) => [`C=${c} req/s`, `x ${base}`, 'pooled', 'p50 us', 'p99 us'])],
      clients.map((client) => [
        client,
        ...cs.flatMap((c) => {
          const x = loop(rows, client, c)
          return [
            int(x?.rps ?? Number.NaN),
            fixed(rpsRatio(rows, client, base, c), 3),
            fixed(pooledRatio(rows, client, base, c), 3),
            int(x?.p50 ?? Number.NaN),
            int(x?.p99 ?? Number.NaN),
          ]
        }),
      ]),
    )
  }
  const errors = (rows: readonly LoopResult[]) => rows.reduce((n, x) => n + x.errors, 0)
  out.push(
    '## Loopback HTTP',
    '',
    'node:http in another process (keep-alive, `200 ok`), closed loop of C workers; each client',
    "reads the body. `fetch` is Node's; `fetch+signal` is fetch given a fresh `AbortSignal` and",
    'one header (`x-meshlet-timeout-ms`): what fetch itself charges any wrapper that can cancel a',
    'call and pass its deadline on; `meshlet` is `withMesh(fetch)` with the default stack',
    "(plain calls on the direct path: sent to fetch's dispatcher, the `Response` built by meshlet);",
    '`meshlet via fetch` is the same with `directFetch: false`, every call through fetch;',
    '`undici` is `request` of the npm package on its own `Pool`; `cockatiel` is its wrap around',
    'fetch (with its signal). Measured time is cut into rounds; each round runs every client in',
    'rotated order. `x fetch` is the median over rounds of the ratio within each round (the',
    "targets' figure); `pooled` is calls over measured time of every round together.",
    '',
  )
  for (const r of runs) {
    out.push(
      `### ${label(r)}`,
      '',
      loopTable(r.http, 'fetch'),
      '',
      `Added p50 at C=1 (meshlet - fetch): **${fixed(addedP50(r), 1)} us**; errors: ${errors(r.http)}; ` +
        `${fixed(r.http[0]?.seconds ?? Number.NaN, 1)} s measured per client and concurrency. ` +
        `meshlet / fetch per round (min / median / max of ${r.http[0]?.roundRps?.length ?? 0}): ${roundSpread(r.http, 'fetch')}. ` +
        `meshlet / fetch+signal: C=1 ${fixed(rpsRatio(r.http, 'meshlet', 'fetch+signal', 1), 3)}x, C=64 ${fixed(rpsRatio(r.http, 'meshlet', 'fetch+signal', 64), 3)}x. ` +
        `meshlet via fetch / fetch: C=1 ${fixed(rpsRatio(r.http, 'meshlet via fetch', 'fetch', 1), 3)}x, C=64 ${fixed(rpsRatio(r.http, 'meshlet via fetch', 'fetch', 64), 3)}x.`,
      '',
    )
  }
  out.push(
    '## Loopback gRPC',
    '',
    'grpc-js server in another process (Echo `Unary`, test/fixtures/echo.proto); `bare` is the',
    'grpc-js client on one channel, `bare+deadline` the same with a 15 s deadline per call (what',
    'grpc-js itself charges for one), `bare, 2nd channel` a second bare client on a channel of its',
    "own (an A/A control: the same code as `bare`, so its ratio to `bare` is the run's own error),",
    '`meshlet` the same client class through `withMesh` (default',
    "stack: its 15 s timeout ends calls in meshlet and is not sent, D27; unary calls on meshlet's unary layer, D26),",
    "`meshlet via grpc-js` the same with `directUnary: false` (grpc-js's client layer and interceptor",
    'chain above the mesh), `cockatiel` its wrap around the bare client.',
    '',
  )
  for (const r of runs) {
    out.push(
      `### ${label(r)}`,
      '',
      loopTable(r.grpc, 'bare'),
      '',
      `Errors: ${errors(r.grpc)}. meshlet / bare per round (min / median / max of ${r.grpc[0]?.roundRps?.length ?? 0}): ${roundSpread(r.grpc, 'bare')}. ` +
        `meshlet / bare+deadline: C=1 ${fixed(rpsRatio(r.grpc, 'meshlet', 'bare+deadline', 1), 3)}x, C=64 ${fixed(rpsRatio(r.grpc, 'meshlet', 'bare+deadline', 64), 3)}x ` +
        '(a deadline costs the server too: grpc-js parses `grpc-timeout` and arms a timer per call). ' +
        controlLine(r.grpc) +
        `meshlet via grpc-js / bare: C=1 ${fixed(rpsRatio(r.grpc, 'meshlet via grpc-js', 'bare', 1), 3)}x, C=64 ${fixed(rpsRatio(r.grpc, 'meshlet via grpc-js', 'bare', 64), 3)}x.`,
      '',
    )
  }

  // Memory.
  const e = (r: RunResult) => r.endpoints
  const s = (r: RunResult) => r.services
  out.push(
    '## Memory, timers and reconfiguration',
    '',
    'Each in a fresh `node --expose-gc` process: heap after full collections, per unit; timers',
    'counted with an `async_hooks` hook (`Timeout` created, and alive after the calls), since an',
    '`unref()`ed timer is invisible to `process.getActiveResourcesInfo()`. "Held per call in',
    'flight" is what a client keeps on the heap while its calls wait on a transport that has not',
    'answered (5,000 at once, counted, not timed): what young-generation collections copy under load.',
    '',
    table(
      ['what', ...runs.map(label)],
      [
        ['endpoints in one service (outlier detection on)', ...by((r) => int(e(r).units))],
        ['heap per endpoint, built', ...by((r) => `${int(e(r).bytesBuilt)} B`)],
        [
          'heap per endpoint, after calls',
          ...by((r) => `${int(e(r).bytesCalled)} B (${int(e(r).calls)} calls)`),
        ],
        ['timers created per endpoint (build)', ...by((r) => fixed(e(r).timersCreatedBuild, 4))],
        ['timers alive per endpoint after calls', ...by((r) => fixed(e(r).timersLive, 4))],
        ["timers created per call (the deadline's, cleared)", ...by((r) => fixed(e(r).timersPerCall, 2))],
        ['services, each with a breaker and one endpoint', ...by((r) => int(s(r).units))],
        ['heap per service, built', ...by((r) => `${int(s(r).bytesBuilt)} B`)],
        ['heap per service, after one call each (stack built)', ...by((r) => `${int(s(r).bytesCalled)} B`)],
        [
          'timers created / alive per service',
          ...by((r) => `${fixed(s(r).timersCreatedBuild, 4)} / ${fixed(s(r).timersLive, 4)}`),
        ],
        ...ref.breakers.map((b, i) => [
          `${b.name} alone: heap, timers`,
          ...by((r) => {
            const x = r.breakers[i]
            return x ? `${int(x.bytes)} B, ${fixed(x.timers, 2)} (${fixed(x.refed, 2)} ref'ed)` : '-'
          }),
        ]),
        ...(
          [
            ['mesh-default', 'meshlet withMesh, default stack'],
            ['mesh-full', 'meshlet withMesh, default + breaker + bulkhead'],
            ['cockatiel-wrap', 'cockatiel wrap(retry, breaker, timeout)'],
          ] as const
        ).map(([id, name]) => [
          `held per call in flight: ${name} (over bare)`,
          ...by((r) => {
            const held = r.inflight?.[id]
            const bare = r.inflight?.['bare']
            return held === undefined || bare === undefined ? '-' : `${int(held - bare)} B`
          }),
        ]),
        [
          '`createMesh` of N services (2 endpoints each)',
          ...by((r) => `${fixed(r.update.create, 1)} ms (N=${int(r.update.services)})`),
        ],
        [
          '`mesh.update` of N services, median (min-max)',
          ...by(
            (r) =>
              `**${fixed(r.update.median, 1)} ms** (${fixed(r.update.min, 1)}-${fixed(r.update.max, 1)}, ${r.update.reps} runs)`,
          ),
        ],
        [
          'then the first call to each service (stacks are built then)',
          ...by(
            (r) => `${fixed(r.update.firstCalls, 1)} ms; a second round ${fixed(r.update.nextCalls, 1)} ms`,
          ),
        ],
        [
          '`simulate()`: 60 virtual s at 1,000 calls/s',
          ...by(
            (r) =>
              `${int(r.simulate.wallMs)} ms wall (${int(r.simulate.calls)} calls, ${int(r.simulate.attempts)} attempts)`,
          ),
        ],
      ],
    ),
    '',
    '## Variance',
    '',
    'On this kind of machine (2 vCPU, shared), absolute figures move 10-30% between runs and',
    'between minutes of one run (`../shared/anchors.md`), and the loopback server shares the two',
    'cores with the client. So compare ratios measured within one run, never absolute ns or req/s',
    'across runs, machines or the two Node columns. Within a run, the in-process `+-%` column',
    '(margin of error of the mean) and the round-by-round loopback ratios above show the spread;',
    'a loopback ratio within a few percent of its target (2a, 2b: 0.97x; 3a, 3b: 0.95x) is inside',
    "that spread even as the median of a run's rounds, so a claim needs the median of three runs.",
    'The last full runs on this machine',
    '(bench/results/history.jsonl; runs on different code differ by more than noise):',
    '',
    table(
      [
        'date',
        'Node',
        'meshlet',
        'full ns',
        'x wrap',
        'HTTP C=1',
        'HTTP C=64',
        '+p50 us',
        'gRPC C=1',
        'gRPC C=64',
        'B/endpoint',
        'update ms',
      ],
      history
        .slice(-8)
        .map((h) => [
          h.date.slice(0, 16).replace('T', ' '),
          h.node,
          h.commit,
          int(h.fullNs),
          fixed(h.fullXWrap, 3),
          fixed(h.httpC1, 3),
          fixed(h.httpC64, 3),
          fixed(h.addedP50, 1),
          fixed(h.grpcC1, 3),
          fixed(h.grpcC64, 3),
          int(h.bytesPerEndpoint),
          fixed(h.updateMs, 1),
        ]),
    ),
    '',
  )
  return out.join('\n')
}

/** The per-task in-process log line for stdout while it runs. */
export function inProcessLine(x: InProcessRow, bare: number): string {
  return `${x.name.padEnd(48)} ${int(x.ns).padStart(8)} ns/op  +-${fixed(x.rme, 1).padStart(4)}%  ${fixed(x.ns / bare, 1).padStart(6)}x bare  ${int(x.bytes).padStart(6)} B/call`
}
