/**
 * Servers that fail on purpose, for the fault suite (test/fault-suite.test.ts): raw TCP servers
 * that never answer or reset the connection, a server in a child process that can be killed with
 * SIGKILL and started again on the same port, and a check that the process's active handles
 * came back to what they were.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { within } from './servers.js'

/** The process's active resources (`process.getActiveResourcesInfo()`), counted by type. */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>()
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1)
  return counts
}

const excess = (now: Map<string, number>, baseline: Map<string, number>) =>
  [...now].filter(([type, n]) => n > (baseline.get(type) ?? 0)).map(([type, n]) => `${type}: ${n}`)

/**
 * Resolves once no type of active resource (timer, TCP socket, server, child process) is more
 * numerous than in `baseline`; rejects after `ms` naming the ones still above it. Sockets close
 * a few event-loop turns after their peer goes, hence the wait rather than one look.
 */
export async function expectBackToBaseline(baseline: Map<string, number>, ms = 3000): Promise<void> {
  const end = performance.now() + ms
  for (;;) {
    const above = excess(activeResources(), baseline)
    if (above.length === 0) return
    if (performance.now() > end)
      throw new Error(`active resources above the baseline after ${ms} ms: ${above.join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A raw TCP server on 127.0.0.1 that counts connections and the HTTP requests written to it. */
export interface RawServer {
  readonly url: string
  readonly port: number
  /** Connections accepted so far. */
  readonly connections: number
  /** Connections open now. */
  readonly open: number
  /** Connections that carried a request and that the client has not closed (nor the server). */
  readonly openWithRequests: number
  /** Request heads received so far (counted by their request line, so a request that arrived is counted even if never answered). */
  readonly requests: number
  /** Request methods in the order received. */
  readonly methods: string[]
  close(): Promise<void>
}

const REQUEST_LINE = /(?:^|\r\n\r\n|\n)(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) \S+ HTTP\/1\.1\r\n/g

/**
 * Starts a raw TCP server. `onData` sees each connection's data (already counted); the default
 * reads and never answers. `allowHalfOpen` keeps the server's side open when the client ends.
 */
export async function startRawServer(
  onData: (socket: Socket, data: Buffer) => void = () => {},
  options: { readonly paused?: boolean } = {},
): Promise<RawServer> {
  let connections = 0
  let requests = 0
  const methods: string[] = []
  const sockets = new Set<Socket>()
  const carrying = new Set<Socket>()
  const server: Server = createServer(
    { allowHalfOpen: true, pauseOnConnect: options.paused === true },
    (socket) => {
      connections++
      sockets.add(socket)
      socket.on('close', () => {
        sockets.delete(socket)
        carrying.delete(socket)
      })
      // With allowHalfOpen the client's FIN leaves the server's side open: the client has closed.
      socket.on('end', () => carrying.delete(socket))
      socket.on('error', () => {})
      socket.on('data', (data: Buffer) => {
        for (const m of data.toString('latin1').matchAll(REQUEST_LINE)) {
          requests++
          methods.push(m[1]!)
          if (!socket.destroyed) carrying.add(socket)
        }
        onData(socket, data)
      })
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connections() {
      return connections
    },
    get open() {
      return sockets.size
    },
    get openWithRequests() {
      return carrying.size
    },
    get requests() {
      return requests
    },
    methods,
    close() {
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

const childScript = fileURLToPath(new URL('./child-server.mjs', import.meta.url))

/** A server in a child process (test/helpers/child-server.mjs) that can be killed and restarted. */
export interface ChildServer {
  /** Fixed at the first start; every restart binds the same port. */
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** `127.0.0.1:<port>` */
  readonly address: string
  /** Every request (HTTP: `METHOD /path`; gRPC: the request's text) received, over all lives. */
  readonly received: string[]
  /** Resolves when `n` requests have been received in all. */
  waitForReceived(n: number): Promise<void>
  /** SIGKILL: the process dies at once, the kernel resets its connections. */
  kill(): Promise<void>
  /** Starts the server again on the same port. */
  restart(): Promise<void>
}

/** Starts a `kind` server in a child process, on a port of the system's choosing. */
export async function startChildServer(kind: 'http' | 'grpc'): Promise<ChildServer> {
  const received: string[] = []
  const waiters: Array<() => void> = []
  let child: ChildProcess | undefined
  let port = 0

  const start = async (): Promise<number> => {
    const proc = spawn(process.execPath, [childScript, kind, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    child = proc
    const lines = createInterface({ input: proc.stdout! })
    const listening = new Promise<number>((resolve, reject) => {
      proc.once('exit', (code) =>
        reject(new Error(`child ${kind} server exited with ${code} before listening`)),
      )
      lines.on('line', (line) => {
        const [what, ...rest] = line.split(' ')
        if (what === 'listening') resolve(Number(rest[0]))
        else if (what === 'request' || what === 'call') {
          received.push(rest.join(' '))
          for (const w of waiters.splice(0)) w()
        }
      })
    })
    return within(listening, 10_000, `the child ${kind} server listening`)
  }

  port = await start()
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    address: `127.0.0.1:${port}`,
    received,
    waitForReceived(n) {
      return new Promise<void>((resolve) => {
        const check = () => {
          if (received.length >= n) resolve()
          else waiters.push(check)
        }
        check()
      })
    },
    async kill() {
      const proc = child
      if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
      proc.kill('SIGKILL')
      await exited
    },
    async restart() {
      await start()
    },
  }
}
