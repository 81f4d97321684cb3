/**
 * The benchmark's code keeps running: `bench/run.ts --smoke` (what `npm run bench:smoke` runs
 * after building) runs every part of the bench for a moment in a child process, as CI would,
 * and must exit 0 with its report on stdout. No figure is checked: timings on a shared CI
 * machine mean nothing. Runs on the built `dist/` (`npm test` builds first; built here if absent).
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx'

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

function runSmoke(): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'bench/run.ts', '--smoke'],
      { cwd: root, timeout: 100_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

describe('bench smoke', () => {
  it('runs every part of the bench and exits 0', { timeout: 120_000 }, async () => {
    if (!existsSync(join(root, 'dist', 'index.js')) || !existsSync(join(root, 'dist', 'testing', 'index.js')))
      await promisify(execFile)(npx, ['tsup'], { cwd: root, timeout: 60_000 })
    const { code, stdout, stderr } = await runSmoke()
    expect(code, stderr).toBe(0)
    for (const section of [
      '## Targets',
      '## In process',
      '## Loopback HTTP',
      '## Loopback gRPC',
      '## Memory',
    ])
      expect(stdout).toContain(section)
    expect(stdout).toContain('cockatiel wrap(retry, breaker, timeout)')
  })
})
