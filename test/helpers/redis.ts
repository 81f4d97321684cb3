/**
 * A real `redis-server` for tests: started on a free loopback port with no persistence, stopped
 * (and restartable on the same port, to test a Redis that goes away and returns). A test that
 * needs it fails when the binary is missing, with the command that installs it: never skips.
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createServer } from 'node:net'

const INSTALL_HINT =
  'redis-server is not installed: run `apt-get update && apt-get install -y --no-install-recommends redis-server` ' +
  '(Debian/Ubuntu; .ci/run does this), or `brew install redis` on macOS'

/** Throws with the install hint when `redis-server` is not on PATH. */
export function requireRedisServer(): void {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
  } catch {
    throw new Error(INSTALL_HINT)
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** A running (or stopped) redis-server of a test. */
export class RedisServer {
  #child: ChildProcess | undefined
  private constructor(readonly port: number) {}

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Starts a server on a free loopback port. */
  static async start(): Promise<RedisServer> {
    requireRedisServer()
    const server = new RedisServer(await freePort())
    await server.restart()
    return server
  }

  /** Starts the server again on the same port (after {@link stop}); resolves once it accepts connections. */
  restart(): Promise<void> {
    if (this.#child !== undefined) return Promise.resolve()
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--loglevel',
        'notice',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    this.#child = child
    return new Promise((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 5000)
      child.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        if (this.#child === child) this.#child = undefined
        reject(new Error(`redis-server exited (${code}): ${out}`))
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(new Error(`${INSTALL_HINT} (${error.message})`))
      })
    })
  }

  /** Kills the server (SIGKILL: as a crash would) and resolves once it has exited. */
  stop(): Promise<void> {
    const child = this.#child
    if (child === undefined) return Promise.resolve()
    this.#child = undefined
    return new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }
}
