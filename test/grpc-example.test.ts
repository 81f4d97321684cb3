/**
 * The gRPC example stays runnable: it runs as a child process under tsx, as a user would run
 * it, and must exit 0 after its retried, streaming and timed-out calls.
 */
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('examples/grpc-client.ts', () => {
  it('makes its calls through the mesh and exits 0', async () => {
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', 'examples/grpc-client.ts'],
        { cwd: root, timeout: 55_000 },
        (error, stdout, stderr) =>
          resolve({
            code: error === null ? 0 : typeof error.code === 'number' ? error.code : null,
            stdout,
            stderr,
          }),
      )
    })
    expect(run.stderr).not.toMatch(/Error/)
    expect(run.code).toBe(0)
    expect(run.stdout.split('\n').filter((l) => l.startsWith('GetUser '))).toHaveLength(4)
    expect(run.stdout).toContain('retrying')
    expect(run.stdout.split('\n').filter((l) => l.startsWith('ListUsers: '))).toHaveLength(3)
    expect(run.stdout).toContain('slow call: DEADLINE_EXCEEDED')
  }, 60_000)
})
