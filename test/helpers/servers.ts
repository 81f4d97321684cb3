/**
 * Real loopback servers for integration tests: a `node:http` server on 127.0.0.1, port 0, that
 * counts the requests it received and the sockets opened and closed on it, so a test can see
 * what really reached the wire (and that a cancelled call really closed its connection).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** Answers one request; `index` counts from 0 over the server's life. */
export type TestHandler = (req: IncomingMessage, res: ServerResponse, index: number) => void | Promise<void>

/** A running loopback server. */
export interface TestServer {
  /** `http://127.0.0.1:<port>` (no trailing slash): an endpoint address for the mesh. */
  readonly url: string
  readonly port: number
  readonly server: Server
  /** Requests received so far. */
  readonly requests: number
  /** Connections accepted so far. */
  readonly socketsOpened: number
  /** Connections closed so far (by either side). */
  readonly socketsClosed: number
  /** Connections open now. */
  readonly openSockets: number
  /** Resolves at the next connection close (or at once when `socketsClosed` already exceeds `after`). */
  waitForSocketClose(after?: number): Promise<void>
  /** Destroys every connection and stops listening. */
  close(): Promise<void>
}

/** Starts a server that runs `handler` for each request. */
export async function startServer(handler: TestHandler): Promise<TestServer> {
  let requests = 0
  let socketsOpened = 0
  let socketsClosed = 0
  const sockets = new Set<Socket>()
  const closeWaiters: Array<() => void> = []

  const server = createServer((req, res) => {
    const index = requests++
    Promise.resolve()
      .then(() => handler(req, res, index))
      .catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500)
        res.end(String(error))
      })
  })
  server.on('connection', (socket: Socket) => {
    socketsOpened++
    sockets.add(socket)
    socket.on('close', () => {
      socketsClosed++
      sockets.delete(socket)
      for (const w of closeWaiters.splice(0)) w()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    get requests() {
      return requests
    },
    get socketsOpened() {
      return socketsOpened
    },
    get socketsClosed() {
      return socketsClosed
    },
    get openSockets() {
      return sockets.size
    },
    waitForSocketClose(after = socketsClosed) {
      if (socketsClosed > after) return Promise.resolve()
      return new Promise<void>((resolve) => {
        const check = () => {
          if (socketsClosed > after) resolve()
          else closeWaiters.push(check)
        }
        closeWaiters.push(check)
      })
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** A loopback port with nothing listening on it (bound, then released). */
export async function unusedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** Reads a request's whole body. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** Rejects after `ms` with a message, so a hung promise fails a test instead of stalling it. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
  })
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer))
}
