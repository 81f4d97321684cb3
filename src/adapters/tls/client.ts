/**
 * The client side of a service's `tls`: its material (material.ts), an undici dispatcher per
 * endpoint whose connections are verified by verify.ts before any request is written (fetch),
 * and grpc-js channel credentials from the same material (gRPC). After a rotation, the next
 * connection uses the new material: fetch through a new dispatcher (the old one closes once its
 * requests end), gRPC through new credentials (the pool makes new channels; old ones drain).
 *
 * Session resumption is off: every new connection makes a full handshake, so the server's
 * certificate is verified and the client's current certificate presented on each (a resumed
 * session would carry the certificates of the first).
 *
 * `undici` is loaded with a dynamic `import()` the first time a fetch service with `tls` is
 * built: it is an optional peer dependency that only such users install.
 */

import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Clock } from '../../core/clock.js'
import { TlsMaterialError, TlsVerificationError } from '../../core/errors.js'
import { type MaterialVersion, TlsMaterial } from './material.js'
import { codeOfChainError, type IdentityPolicy, identityChecker, verifyConnection } from './verify.js'

/** A service's resolved `tls`. */
export interface TlsSettings {
  readonly ca?: string | undefined
  readonly cert?: string | undefined
  readonly key?: string | undefined
  readonly serverName?: string | undefined
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3'
  readonly identity: readonly string[]
}

/** Options of {@link TlsClient}. */
export interface TlsClientOptions {
  /** Re-check period of certificate files in ms. Default 250. */
  readonly interval?: number
  /** The clock of the re-check timer. Default the system clock. */
  readonly clock?: Clock
  /** Told when new material is taken. */
  readonly onRotate?: (service: string, version: number) => void
  /** Told when changed files are refused (the old material stays). */
  readonly onReject?: (service: string, reason: string) => void
}

/** undici's `Agent`, as far as it is used here. */
export interface UndiciAgent {
  // biome-ignore lint/suspicious/noExplicitAny: undici's options and handler, passed through
  dispatch(options: any, handler: any): boolean
  close(): Promise<void>
  destroy(): Promise<void>
}

interface UndiciModule {
  Agent: new (options: object) => UndiciAgent
  buildConnector: (
    options: object,
  ) => (opts: ConnectOptions, cb: (err: Error | null, socket: Socket | null) => void) => void
}

interface ConnectOptions {
  hostname: string
  host?: string
  protocol: string
  port: string
  servername?: string
}

let undici: Promise<UndiciModule> | undefined

/** undici, loaded once per process. */
export function loadUndici(): Promise<UndiciModule> {
  undici ??= (import('undici') as Promise<unknown>).then(
    (m) => ((m as { default?: UndiciModule }).default ?? m) as UndiciModule,
    (error: unknown) => {
      undici = undefined
      throw new TlsMaterialError(
        undefined,
        `the optional dependency "undici" is needed for fetch services with tls: npm install undici (${(error as Error).message})`,
      )
    },
  )
  return undici
}

/** The TLS options of Node for `m` (no key text escapes: these go to `tls.connect` only). */
function tlsOptions(m: MaterialVersion, s: TlsSettings) {
  return {
    ...(m.ca === undefined ? {} : { ca: m.ca }),
    ...(m.cert === undefined ? {} : { cert: m.cert, key: m.key }),
    minVersion: s.minVersion,
  }
}

/** The transport security of one service; see the module comment. */
export class TlsClient {
  readonly service: string
  readonly settings: TlsSettings
  readonly material: TlsMaterial
  readonly policy: IdentityPolicy
  #module: UndiciModule | undefined
  #loading: Promise<UndiciModule> | undefined
  /** The dispatcher of the current material, and its version. */
  #agent: { version: number; agent: UndiciAgent } | undefined
  readonly #retired = new Set<UndiciAgent>()
  #credentials: { version: number; module: object; credentials: object } | undefined
  #closed = false

  /** Reads the material; throws {@link TlsMaterialError} when it is not usable. */
  constructor(service: string, settings: TlsSettings, options: TlsClientOptions = {}) {
    this.service = service
    this.settings = settings
    this.policy = { service, identity: settings.identity, serverName: settings.serverName }
    this.material = new TlsMaterial(settings, {
      service,
      interval: options.interval,
      clock: options.clock,
      onRotate: (v) => options.onRotate?.(service, v),
      onReject: (r) => options.onReject?.(service, r),
    })
  }

  /** Loads undici (once); resolves when {@link dispatcher} can answer synchronously. */
  load(): Promise<unknown> {
    if (this.#module !== undefined) return Promise.resolve()
    this.#loading ??= loadUndici().then((m) => {
      this.#module = m
      return m
    })
    return this.#loading
  }

  /** Whether {@link dispatcher} can answer now. */
  get ready(): boolean {
    return this.#module !== undefined
  }

  /**
   * The dispatcher for https endpoints of the service (call after {@link load}): one undici
   * `Agent` per material version (it keeps a pool per origin), replaced at a rotation; the old
   * one closes once its requests end.
   */
  dispatcher(): UndiciAgent {
    const m = this.material.current
    const held = this.#agent
    if (held !== undefined && held.version === m.version) return held.agent
    if (held !== undefined) this.#retire(held.agent)
    const agent = this.#makeAgent(m)
    this.#agent = { version: m.version, agent }
    return agent
  }

  #retire(agent: UndiciAgent): void {
    this.#retired.add(agent)
    agent.close().then(
      () => this.#retired.delete(agent),
      () => this.#retired.delete(agent),
    )
  }

  #makeAgent(m: MaterialVersion): UndiciAgent {
    const { Agent, buildConnector } = this.#module!
    const settings = this.settings
    const policy = this.policy
    const base = buildConnector({
      ...tlsOptions(m, settings),
      // Verified below, before undici writes anything; Node's own host check ignores URI SANs.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      maxCachedSessions: 0,
      ...(settings.serverName === undefined ? {} : { servername: settings.serverName }),
    })
    const connect = (opts: ConnectOptions, cb: (err: Error | null, socket: Socket | null) => void) => {
      const endpoint = `${opts.protocol}//${opts.host ?? opts.hostname}`
      if (opts.protocol !== 'https:') {
        cb(
          new TlsVerificationError(
            'TLS_HANDSHAKE_FAILED',
            'not an https endpoint',
            endpoint,
            policy.identity,
            undefined,
            { service: policy.service },
          ),
          null,
        )
        return
      }
      const o = settings.serverName === undefined ? opts : { ...opts, servername: settings.serverName }
      base(o, (err, socket) => {
        if (err !== null || socket === null) {
          cb(asTlsError(err, endpoint, policy) ?? err, null)
          return
        }
        const host = (o.servername ?? o.hostname).replace(/^\[|\]$/g, '')
        const refused = verifyConnection(socket as TLSSocket, host, policy, endpoint)
        if (refused !== undefined) {
          socket.destroy()
          cb(refused, null)
          return
        }
        cb(null, socket)
      })
    }
    return new Agent({ connect })
  }

  /**
   * grpc-js channel credentials from the current material (`grpc.credentials.createSsl`, with
   * {@link identityChecker}), the same object until a rotation; `grpc` is the loaded module.
   */
  grpcCredentials(grpc: {
    credentials: {
      createSsl(ca?: Buffer | null, key?: Buffer | null, cert?: Buffer | null, verify?: object): object
    }
  }): { version: number; credentials: object } {
    const m = this.material.current
    const held = this.#credentials
    if (held !== undefined && held.version === m.version && held.module === grpc) return held
    const buf = (s: string | undefined) => (s === undefined ? null : Buffer.from(s))
    const credentials = grpc.credentials.createSsl(buf(m.ca), buf(m.key), buf(m.cert), {
      checkServerIdentity: identityChecker(this.policy, (host) => host),
    })
    this.#credentials = { version: m.version, module: grpc, credentials }
    return this.#credentials
  }

  /** Stops watching files and closes the dispatchers (requests in flight end first). */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.material.close()
    if (this.#agent !== undefined) this.#retire(this.#agent.agent)
    this.#agent = undefined
  }
}

/** A connection error as a {@link TlsVerificationError} when it is a certificate verification failure. */
export function asTlsError(
  error: unknown,
  endpoint: string,
  policy: IdentityPolicy,
): TlsVerificationError | undefined {
  if (error instanceof TlsVerificationError) return error
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  const typed = codeOfChainError(code)
  if (typed === 'TLS_HANDSHAKE_FAILED' && !code.startsWith('ERR_SSL') && !code.includes('CERT'))
    return undefined
  return new TlsVerificationError(typed, `handshake failed (${code})`, endpoint, policy.identity, undefined, {
    service: policy.service,
    cause: error,
  })
}

/** The {@link TlsVerificationError} in an error's `cause` chain (fetch wraps it in `TypeError: fetch failed`). */
export function tlsErrorIn(error: unknown): TlsVerificationError | undefined {
  let e = error
  for (let i = 0; i < 5 && e !== null && typeof e === 'object'; i++) {
    if (e instanceof TlsVerificationError) return e
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}
