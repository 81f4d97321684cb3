/**
 * The examples stay runnable: each one runs as a child process under tsx, as a user would run
 * it, and must exit 0 with its key lines printed.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

function runExample(file: string, env: Record<string, string> = {}, flags: string[] = []): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', ...flags, file],
      { cwd: root, env: { ...process.env, ...env }, timeout: 55_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

describe('examples', () => {
  it('basic-fetch makes its calls through the mesh and exits 0', async () => {
    const run = await runExample('examples/basic-fetch.ts')
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.code).toBe(0)
    const answers = run.stdout.split('\n').filter((line) => line.startsWith('200 '))
    expect(answers).toHaveLength(4)
    expect(run.stdout).toContain('retrying')
  }, 60_000)

  it('fetch-transport gets the answers bare fetch gets, on both paths, and exits 0', async () => {
    const run = await runExample('examples/fetch-transport.ts', { EXAMPLE_MS: '200' })
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.code).toBe(0)
    expect(run.stdout.match(/: same as bare fetch$/gm)).toHaveLength(3)
    expect(run.stdout).not.toContain('DIFFERENT')
    expect(run.stdout).toContain('"unzipped by fetch"')
    expect(run.stdout.match(/^withMesh\(fetch\).* \d+ calls\/s$/gm)).toHaveLength(2)
  }, 60_000)

  it('the demo runs for DEMO_SECONDS, prints its summary and exits 0', async () => {
    const started = performance.now()
    const run = await runExample('examples/demo/demo.ts', { DEMO_SECONDS: '3' })
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.code).toBe(0)
    expect(performance.now() - started).toBeLessThan(30_000)
    expect(run.stdout).toContain('== Summary')
    const summary = run.stdout.slice(run.stdout.indexOf('== Summary'))
    expect(summary).toMatch(/client\s+calls\s+success\s+p50\s+p99\s+attempts/)
    expect(summary).toMatch(/^bare fetch\s+\d+\s+[\d.]+%/m)
    expect(summary).toMatch(/^meshlet\s+\d+\s+[\d.]+%/m)
    expect(summary).toContain('Why the mesh wins')
  }, 60_000)

  it('the node:test example of the testing kit passes under node --test', async () => {
    const run = await runExample('examples/testing/resilience.node-test.ts', {}, [
      '--test',
      '--test-reporter=tap',
    ])
    expect(run.code).toBe(0)
    expect(run.stdout).toMatch(/# pass [1-9]/)
    expect(run.stdout).toMatch(/# fail 0/)
  }, 60_000)

  it('the slow-backend simulation prints a report per strategy', async () => {
    const run = await runExample('examples/simulations/slow-backend.ts')
    expect(run.code).toBe(0)
    for (const lb of ['round-robin', 'random', 'least-request']) expect(run.stdout).toContain(`== ${lb}`)
    expect(run.stdout).toMatch(/calls 60000, success 9\d\.\d\d%/)
  }, 60_000)
})
