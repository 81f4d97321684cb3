/**
 * Instructions per call (`npm run bench:instructions`): a few in-process tasks of
 * bench/in-process.ts counted under valgrind's callgrind, with V8 made deterministic
 * (`--predictable`: one thread, no concurrent compilation or GC). Unlike the ns/op of
 * `npm run bench`, the count hardly moves with the load of a shared VM, where two runs of one
 * build have differed by 2x in ns: two runs of one build agreed to within ~30 instructions per
 * call (0.2-0.3 % of a stack), so two builds can be compared in one sitting (docs/decisions.md,
 * D31). What moves is work driven by the wall clock (opossum's intervals tick in every child).
 *
 * Method: each task runs in a fresh process twice, with `calls` and `3 x calls` calls after the
 * same warm-up, and the difference over `2 x calls` is the figure, so process start, module
 * loading and the warm-up cancel out. That is done twice per task, and a third time when the two
 * disagree by more than 1% (an outlier): the mean of two, or the median of three, is kept. The
 * child is bundled to plain JavaScript first: loader hooks (`--import tsx`) run on a thread of
 * their own on Node 20, which `--predictable` cannot order. It counts instructions, not time: a cache miss or a syscall counts as one. meshlet is
 * loaded from dist/, as in the rest of the bench.
 *
 * Writes bench/results/instructions-node<major>.json (shown in docs/performance.md by the next
 * `npm run bench`, or at once by `npx tsx bench/run.ts --render`) and prints a markdown table.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { distHash, ROOT } from './lib.js'
import type { InstructionsRun } from './report.js'

const run = promisify(execFile)
const CALLS = Number(process.env['INSTRUCTIONS_CALLS'] ?? 20_000)
const ALL_TASKS = [
  ['bare', 'bare call (the no-op itself)'],
  ['mesh-default', 'meshlet withMesh, default stack'],
  ['mesh-full', 'meshlet withMesh, default + breaker + bulkhead'],
  ['mesh-no-deadline', 'meshlet withMesh, default with timeout 0'],
  ['cockatiel-wrap', 'cockatiel wrap(retry, breaker, timeout)'],
  ['opossum-off', 'opossum fire, timeout off'],
] as const
// `tsx bench/instructions.ts mesh-full,mesh-default` counts only those tasks (to compare two builds).
const only = process.argv[2]?.split(',')
const TASKS = only === undefined ? ALL_TASKS : ALL_TASKS.filter(([id]) => only.includes(id))

const log = (line: string) => process.stderr.write(`${line}\n`)

async function collected(child: string, id: string, calls: number): Promise<number> {
  const { stderr } = await run(
    'valgrind',
    [
      '--tool=callgrind',
      '--callgrind-out-file=/dev/null',
      process.execPath,
      '--predictable',
      child,
      id,
      String(calls),
    ],
    { maxBuffer: 1 << 24 },
  )
  const m = /Collected : (\d+)/.exec(stderr)
  if (m === null) throw new Error(`bench:instructions: no count from callgrind for ${id}:\n${stderr}`)
  return Number(m[1])
}

try {
  await run('valgrind', ['--version'])
} catch {
  log('bench:instructions needs valgrind (Debian: apt-get install valgrind)')
  process.exit(1)
}

// Next to the source, so that the child's `new URL('..', import.meta.url)` is the repository.
const child = join(ROOT, 'bench', '.instructions-child.mjs')
await build({
  entryPoints: [join(ROOT, 'bench', 'instructions-child.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  packages: 'external',
  outfile: child,
  logLevel: 'warning',
})

log(`instructions per call: node ${process.version}, ${CALLS} and ${3 * CALLS} calls per task`)
const rows: Array<{ id: string; name: string; instructions: number }> = []
/** One measurement of a task: the two runs at once (the count does not depend on what else runs). */
async function measured(id: string): Promise<number> {
  const [one, three] = await Promise.all([collected(child, id, CALLS), collected(child, id, 3 * CALLS)])
  return Math.round((three - one) / (2 * CALLS))
}

for (const [id, name] of TASKS) {
  // Most measurements of a build agree within ~0.5%, but about one in ten lands far off (seen:
  // 4,211 and 9,871 for a stack that counts 7,190, a collection falling in one run and not in
  // the other). So each task is measured twice, and when the two differ by more than 1%, a third
  // time: the figure is the mean of two that agree, or the median of three.
  const counts = [await measured(id), await measured(id)]
  if (Math.abs(counts[0]! - counts[1]!) > 0.01 * Math.max(counts[0]!, counts[1]!))
    counts.push(await measured(id))
  counts.sort((a, b) => a - b)
  const instructions = counts.length === 3 ? counts[1]! : Math.round((counts[0]! + counts[1]!) / 2)
  rows.push({ id, name, instructions })
  log(`  ${name}: ${instructions} (measured ${counts.join(', ')})`)
}

const of = (id: string) => rows.find((r) => r.id === id)?.instructions
const bare = of('bare')
const ratio = (id: string) => {
  const mesh = of(id)
  const peer = of('cockatiel-wrap')
  return mesh === undefined || peer === undefined ? 'not counted' : `${(mesh / peer).toFixed(3)}x`
}
const lines = [
  `Instructions per call (callgrind, \`node --predictable\`, ${process.version}, dist ${distHash()}):`,
  '',
  '| what | instructions/call | x bare |',
  '| --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.name} | ${r.instructions.toLocaleString('en-US')} | ${bare === undefined ? '-' : (r.instructions / bare).toFixed(1)} |`,
  ),
  '',
  `Full stack / cockatiel wrap: ${ratio('mesh-full')}; default stack / cockatiel wrap: ${ratio('mesh-default')}.`,
]
const major = process.version.replace(/^v/, '').split('.')[0]
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
const saved: InstructionsRun = {
  node: process.version,
  dist: distHash(),
  calls: CALLS,
  date: new Date().toISOString(),
  rows,
}
writeFileSync(
  join(ROOT, 'bench', 'results', `instructions-node${major}.json`),
  `${JSON.stringify(saved, null, 2)}\n`,
)
process.stdout.write(`${lines.join('\n')}\n`)
