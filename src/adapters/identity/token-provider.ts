/**
 * Outbound bearer tokens: one cached token per service, refreshed before it expires, from a
 * file (the Kubernetes projected service-account token pattern) or from the application's own
 * function (an identity endpoint, a cloud metadata server).
 *
 * The token's expiry is read from the `exp` claim of a JWT payload without verifying it (the
 * receiver verifies; the sender only needs to know when to fetch a new one). A token is
 * refreshed once 80% of its lifetime has passed, as the kubelet rotates projected tokens, and
 * a file is re-read at least every `refresh` interval so that a rotated file is picked up even
 * for tokens without `exp`. There is no timer: a call that finds the token due starts the
 * refresh (single-flight: concurrent calls share it) and keeps using the old token while it is
 * valid; a failed refresh keeps the old token until it expires, after which calls fail with
 * {@link TokenUnavailableError}, and the source is asked again at most once a second. Each
 * refresh is bounded by a timeout, so no call waits forever on a provider that never answers.
 *
 * No message, event or error of this module contains the token: errors name the service, the
 * source (file path or provider) and the reason only (docs/security.md, "Bearer identity").
 */

import { type FileHandle, open } from 'node:fs/promises'
import { type Clock, systemClock } from '../../core/clock.js'
import { TokenUnavailableError } from '../../core/errors.js'

/**
 * The application's token function for one service: returns the token (a JWT or an opaque
 * string, without the scheme) or a promise of it. Called on the first call and again when the
 * token is due for refresh; never called concurrently for the same service.
 */
export type TokenProvider = () => Promise<string> | string

/** Options of {@link TokenSource}. */
export interface TokenSourceOptions {
  /** The service the token is for, named in errors. */
  readonly service: string
  /** Where the token comes from, named in errors: `file /path` or `provider tokens.users`. */
  readonly source: string
  /** Gets a token. */
  readonly provider: TokenProvider
  /**
   * The longest a token is used before it is asked for again, in ms (for tokens without `exp`,
   * and for files that may be rewritten early). Default `Infinity` (only `exp` decides).
   */
  readonly refresh?: number
  /** The longest one refresh may take, in ms. Default `10_000`. */
  readonly timeout?: number
  /** Where time comes from: the refresh's timeout timer, and wall time for `exp`. Default the system clock. */
  readonly clock?: Clock
  /** Wall-clock time in ms, compared with `exp`. Default `clock.wall`. */
  readonly now?: () => number
}

/** The longest token accepted, in characters (Envoy's default header size limit is 60 KiB; JWTs stay far below). */
export const MAX_TOKEN_LENGTH = 16_384
/** The share of a token's lifetime after which it is refreshed (the kubelet's 80%). */
const REFRESH_AT = 0.8
/** The least time between two failed refreshes, in ms. */
const RETRY_AFTER_FAILURE = 1000
const DEFAULT_TIMEOUT = 10_000
// RFC 6750 b64token, widened to every visible ASCII character: what a header value can carry
// without quoting. A token with a space, a control character or non-ASCII text is refused.
const VISIBLE = /^[\x21-\x7e]+$/

/** A cached token of one service; see the module comment. */
export class TokenSource {
  /** The service the token is for. */
  readonly service: string
  /** Where the token comes from (`file /path`, `provider tokens.users`). */
  readonly source: string
  /** The function asked for a token. */
  readonly provider: TokenProvider
  /** See {@link TokenSourceOptions.refresh}. */
  readonly refresh: number
  /** See {@link TokenSourceOptions.timeout}. */
  readonly timeout: number
  readonly #now: () => number
  readonly #clock: Clock
  #token: string | undefined = undefined
  // Wall-clock ms: when the token is due for refresh, when it stops being usable, and when a
  // failed refresh may be tried again.
  #refreshAt = 0
  #expiresAt = 0
  #retryAt = 0
  #pending: Promise<string> | undefined = undefined
  // The refresh in flight's timeout timer and how to end it early (close).
  #stop: (() => void) | undefined = undefined
  #lastError: TokenUnavailableError | undefined = undefined

  constructor(options: TokenSourceOptions) {
    this.service = options.service
    this.source = options.source
    this.provider = options.provider
    this.refresh = options.refresh ?? Number.POSITIVE_INFINITY
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT
    const clock = options.clock ?? systemClock
    this.#clock = clock
    this.#now = options.now ?? (() => clock.wall())
  }

  /**
   * The token when one is usable now, without waiting (a refresh is started in the background
   * when it is due); `undefined` when the caller must wait with {@link get}.
   */
  current(): string | undefined {
    const token = this.#token
    if (token === undefined) return undefined
    const now = this.#now()
    if (now < this.#refreshAt) return token
    if (now >= this.#expiresAt) return undefined
    if (now >= this.#retryAt) this.#start().catch(noop)
    return token
  }

  /**
   * A usable token: the cached one, or the result of the refresh in flight (or of a new one).
   * Rejects with {@link TokenUnavailableError} when none can be had; a refresh that failed less
   * than a second ago is not repeated: its error is returned again.
   */
  get(): Promise<string> {
    const token = this.current()
    if (token !== undefined) return Promise.resolve(token)
    if (this.#pending !== undefined) return this.#pending
    if (this.#lastError !== undefined && this.#now() < this.#retryAt) {
      const e = this.#lastError
      return Promise.reject(new TokenUnavailableError(this.service, this.source, reasonOf(e), e.cause))
    }
    return this.#start()
  }

  /** Starts a refresh unless one is in flight (single-flight). */
  #start(): Promise<string> {
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined
    })
    return this.#pending
  }

  async #fetch(): Promise<string> {
    let raw: unknown
    try {
      raw = await this.#bounded()
    } catch (error) {
      throw this.#fail(
        error instanceof TokenUnavailableError ? reasonOf(error) : describeFailure(error),
        error instanceof TokenUnavailableError ? undefined : error,
      )
    }
    const now = this.#now()
    if (typeof raw !== 'string') throw this.#fail(`the provider returned ${kindOf(raw)}, not a string`)
    const token = raw.trim()
    if (token === '') throw this.#fail('the token is empty')
    if (token.length > MAX_TOKEN_LENGTH)
      throw this.#fail(`the token is ${token.length} characters long, more than ${MAX_TOKEN_LENGTH}`)
    if (!VISIBLE.test(token))
      throw this.#fail('the token contains a space, a control or a non-ASCII character')
    const exp = jwtExpiry(token)
    if (exp !== undefined && exp <= now)
      throw this.#fail(`the token expired at ${isoOf(exp)} (its exp claim)`)
    const lifetime = exp === undefined ? Number.POSITIVE_INFINITY : exp - now
    this.#token = token
    this.#expiresAt = exp ?? Number.POSITIVE_INFINITY
    this.#refreshAt = now + Math.min(lifetime * REFRESH_AT, this.refresh)
    this.#retryAt = 0
    this.#lastError = undefined
    return token
  }

  /** The provider's answer, or a rejection after the timeout. */
  /**
   * Ends a refresh in flight (its callers get a {@link TokenUnavailableError}) and clears its
   * timer: for the mesh's close, which leaves no timer behind. The source stays usable.
   */
  close(): void {
    this.#stop?.()
  }

  #bounded(): Promise<unknown> {
    const clock = this.#clock
    return new Promise<unknown>((resolve, reject) => {
      const timer = clock.setTimer(() => {
        this.#stop = undefined
        reject(new TokenUnavailableError(this.service, this.source, `no token within ${this.timeout}ms`))
      }, this.timeout)
      this.#stop = () => {
        this.#stop = undefined
        clock.clearTimer(timer)
        reject(new TokenUnavailableError(this.service, this.source, 'the mesh was closed'))
      }
      let answer: Promise<string> | string
      try {
        answer = this.provider()
      } catch (error) {
        this.#stop = undefined
        clock.clearTimer(timer)
        reject(error)
        return
      }
      Promise.resolve(answer).then(
        (value) => {
          this.#stop = undefined
          clock.clearTimer(timer)
          resolve(value)
        },
        (error: unknown) => {
          this.#stop = undefined
          clock.clearTimer(timer)
          reject(error)
        },
      )
    })
  }

  /** Records a failed refresh; the old token stays in use until it expires. */
  #fail(reason: string, cause?: unknown): TokenUnavailableError {
    const now = this.#now()
    const kept =
      this.#token !== undefined && now < this.#expiresAt
        ? `; the previous token stays in use until it expires`
        : this.#token !== undefined
          ? `; the previous token expired at ${isoOf(this.#expiresAt)}`
          : ''
    const error = new TokenUnavailableError(this.service, this.source, reason + kept, cause)
    this.#lastError = error
    this.#retryAt = now + RETRY_AFTER_FAILURE
    return error
  }
}

/**
 * A provider that reads the token from `path` (whitespace around it removed), as a Kubernetes
 * projected service-account token or a SPIRE JWT-SVID written to disk is read.
 */
export function fileTokenProvider(path: string): TokenProvider {
  return async function readTokenFile() {
    let file: FileHandle | undefined
    try {
      // Bounded: a path to /dev/zero or a huge file must not fill memory; one byte more than the
      // longest token accepted tells a too-long token from one at the limit.
      file = await open(path, 'r')
      const buffer = Buffer.alloc(MAX_TOKEN_LENGTH * 4 + 1)
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0)
      return buffer.toString('utf8', 0, bytesRead)
    } catch (error) {
      // The file system's error names the path and the reason (ENOENT, EACCES), never contents.
      const code = (error as { code?: unknown }).code
      throw new Error(typeof code === 'string' ? `cannot read ${path} (${code})` : `cannot read ${path}`, {
        cause: error,
      })
    } finally {
      await file?.close().catch(noop)
    }
  }
}

/**
 * The `exp` claim of a JWT (in ms), read without verifying the token; `undefined` when the
 * token is not a JWT or has no numeric `exp` (it is then used until `refresh` says otherwise).
 */
export function jwtExpiry(token: string): number | undefined {
  const first = token.indexOf('.')
  const second = first < 0 ? -1 : token.indexOf('.', first + 1)
  if (second < 0 || token.indexOf('.', second + 1) >= 0) return undefined
  let claims: unknown
  try {
    claims = JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8'))
  } catch {
    // The parser's message may quote the payload: it is dropped, not carried as a cause.
    return undefined
  }
  if (typeof claims !== 'object' || claims === null) return undefined
  const exp = (claims as { exp?: unknown }).exp
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined
}

/** The reason part of a {@link TokenUnavailableError}'s message. */
function reasonOf(error: TokenUnavailableError): string {
  const marker = `(${error.source}): `
  const at = error.message.indexOf(marker)
  return at < 0 ? error.message : error.message.slice(at + marker.length)
}

function describeFailure(error: unknown): string {
  if (error instanceof Error) return `the provider failed: ${error.message}`
  return 'the provider failed'
}

function kindOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value
}

/** `ms` as an ISO date; a time outside Date's range (±8.64e15 ms) as a number, never a throw. */
function isoOf(ms: number): string {
  if (ms === Number.POSITIVE_INFINITY) return 'never'
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ms}ms since the epoch`
}

const noop = () => {}
