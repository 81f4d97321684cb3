/**
 * The fetch transport: sends one attempt to the endpoint the balancer chose, through the fetch
 * function the application wrapped, and closes the attempt's request when the attempt is
 * cancelled (timeout, hedge lost, caller abort, mesh closed). It also tells the upstream how
 * long is left: see {@link fetchTransport}.
 *
 * Two ways to close a request. The portable one gives fetch an `AbortSignal` of the attempt's
 * own. The cheap one, used once the wrapped fetch is seen to send through `init.dispatcher`
 * (Node's own fetch and undici's do), gives fetch a dispatcher of the attempt's own: it passes
 * the request on to the dispatcher fetch would have used, adds the deadline header there, and
 * wraps fetch's handler, so that a cancellation can fail fetch's request from inside (fetch then
 * closes the connection and rejects at once, as on a network error). On Node 20 a signal costs
 * undici's fetch a `WeakRef`, a `FinalizationRegistry` entry and an event listener per request
 * (about 11 us of latency a call on loopback), and a header given in `init` about 5 us more in
 * fetch's `Headers` checks; the dispatcher costs 1-2 us, header included (docs/decisions.md).
 * A call with a signal of the caller's own keeps the portable way, so that undici aborts the
 * response's body on the caller's abort exactly as bare fetch does.
 */
import { onSignalAbort } from '../../core/abort-hub.js'
import type { Context } from '../../core/context.js'
import { TlsRequiredError } from '../../core/errors.js'
import { type Handler, settlesOnCancel } from '../../core/handler.js'
import { ENDPOINT, type Endpoint } from '../../stages/balancer/endpoint.js'
import { DEADLINE_HEADER } from '../../stages/deadline/propagation.js'
import { type TlsClient, tlsErrorIn } from '../tls/client.js'
import { type Relay, reportedAs, sendDirect } from './direct/direct.js'
import { type DirectPlan, directOrigin, matchesDispatched, planDirect } from './direct/plan.js'
import type { HttpRequest } from './request.js'

/** A listener on the caller's signal that cancels one attempt's request and body. */
interface CallerLink {
  /** Removes the listener (from the signal's one hub, core/abort-hub.ts). */
  readonly unlink: () => void
}

const unlinkCaller = (link: CallerLink) => link.unlink()

// The caller's signal must keep cancelling a response's body after the headers arrived, as with
// bare fetch, so the link outlives the attempt. It goes when the response is discarded by a
// retry, or when the application drops the response (garbage collection), as undici's fetch
// does: the listener holds only the AbortController, never the response.
const finalizer = new FinalizationRegistry<CallerLink>(unlinkCaller)
const links = new WeakMap<Response, CallerLink>()

/** Drops the caller-signal link of a response that will not reach the caller. */
export function releaseResponse(res: Response): void {
  const link = links.get(res)
  if (link === undefined) return
  links.delete(res)
  finalizer.unregister(link)
  unlinkCaller(link)
}

const isDeadlineHeader = (name: string) =>
  name.length === DEADLINE_HEADER.length && name.toLowerCase() === DEADLINE_HEADER

/**
 * The caller's headers plus the deadline header, in a new object: the caller's object is never
 * mutated, since the same `init` is sent again by every attempt and may be the caller's own.
 * A plain object (the common case) is copied as a plain object; a `Headers` or a list of pairs
 * into a new `Headers`. A caller-set deadline header, in any letter case, is replaced.
 */
function withDeadlineHeader(headers: HeadersInit | undefined, value: string): HeadersInit {
  if (headers === undefined) return { [DEADLINE_HEADER]: value }
  const proto: unknown = Object.getPrototypeOf(headers)
  if (proto !== Object.prototype && proto !== null) {
    const copy = new Headers(headers)
    copy.set(DEADLINE_HEADER, value)
    return copy
  }
  const record = headers as Record<string, string>
  const copy: Record<string, string> = {}
  for (const key of Object.keys(record)) {
    // Another spelling would go out as a second value, which the upstream could not parse.
    if (!isDeadlineHeader(key)) copy[key] = record[key]!
  }
  copy[DEADLINE_HEADER] = value
  return copy
}

/** `headers` with `name` set to `value`, in a new `Headers` (the caller's object is never changed). */
function withHeader(headers: HeadersInit | undefined, name: string, value: string): Headers {
  const copy = new Headers(headers)
  copy.set(name, value)
  return copy
}

// --- Closing a request through undici's dispatcher ------------------------------------------

/** The `abort` undici gives a classic handler's `onConnect`. */
type AbortRequest = (reason: unknown) => void

/** What undici's fetch passes to `dispatch`, as far as the transport reads and changes it. */
interface DispatchOptions {
  headers?: unknown
}

/**
 * A handler undici drives: the classic form (`onConnect(abort)`, `onHeaders`, ...) that the
 * fetch of undici 6 and 7 passes, or the controller form (`onRequestStart(controller)`, ...).
 */
// biome-ignore lint/suspicious/noExplicitAny: the handler's methods are undici's, passed on untouched
type DispatchHandler = Record<string, any>

/** The part of undici's `Dispatcher` that fetch uses. */
interface Dispatcher {
  dispatch(options: DispatchOptions, handler: DispatchHandler): boolean
  readonly isMockActive?: boolean
}

/** Where undici (Node's and the npm package alike) keeps the dispatcher fetch uses by default. */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1')

/** The dispatcher a request goes to: the caller's `init.dispatcher`, else undici's global one (read now, as undici does). */
function targetOf(target: Dispatcher | undefined): Dispatcher | undefined {
  return target ?? ((globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER] as Dispatcher | undefined)
}

/** What one transport has learnt about its fetch function. */
interface FetchTraits {
  /**
   * Whether the fetch function sends through `init.dispatcher`: `undefined` until fetch calls a
   * dispatcher (`true`) or answers without calling it (`false`, for good).
   */
  dispatches: boolean | undefined
  /**
   * For Node's own fetch, the request shapes checked against what fetch dispatched: `true` where
   * the direct path sends exactly what fetch would (direct/plan.ts); `undefined` for any other
   * fetch function, which the direct path never replaces.
   */
  readonly shapes: Map<string, boolean> | undefined
  /** Whether the fetch function is Node's own (which always sends through its dispatcher). */
  readonly node: boolean
}

/** A shape verification to make at the first dispatch of an attempt. */
interface Verification {
  readonly plan: DirectPlan
  readonly shapes: Map<string, boolean>
}

/** A request in flight through an {@link AttemptDispatcher}, as its handler wrapper sees it. */
interface RequestInFlight {
  /** Ends the request with `reason`, as far as it has not ended. */
  fail(reason: unknown): void
}

/**
 * The dispatcher of one attempt: passes each request on to the dispatcher fetch would have used
 * (the caller's `init.dispatcher`, else undici's global one, read at each request as undici
 * does), adds the deadline header there, and wraps fetch's handler so that {@link cancel} can end
 * the request at any stage: before it is sent, while it waits for a connection, or while its
 * answer is on the way.
 */
class AttemptDispatcher {
  /** Whether fetch called {@link dispatch} (which proves it honours `init.dispatcher`). */
  dispatched = false
  /** Whether every request dispatched gave a classic handler (see {@link failsFetchAtOnce}). */
  #classic = true
  cancelled = false
  reason: unknown = undefined
  readonly #traits: FetchTraits
  readonly #target: Dispatcher | undefined
  readonly #header: string | undefined
  #verify: Verification | undefined
  readonly #route: AttemptRoute | undefined
  /** The requests dispatched (one, or more after a redirect). */
  #requests: RequestInFlight | RequestInFlight[] | undefined = undefined

  constructor(
    traits: FetchTraits,
    target: Dispatcher | undefined,
    header: string | undefined,
    verify?: Verification,
    route?: AttemptRoute,
  ) {
    this.#traits = traits
    this.#target = target
    this.#header = header
    this.#verify = verify
    this.#route = route
  }

  /**
   * Whether {@link cancel} makes fetch settle at once: fetch dispatched (Node's fetch does so
   * before it returns) with a classic handler, whose `onError` ends fetch's own request.
   */
  get failsFetchAtOnce(): boolean {
    return this.dispatched && this.#classic
  }

  #dispatcher(): Dispatcher {
    const d = targetOf(this.#target)
    if (d === undefined)
      throw new TypeError('meshlet: fetch called a dispatcher but undici has no global one')
    return d
  }

  /** Read by undici's fetch to tell whether a `MockAgent` answers. */
  get isMockActive(): boolean | undefined {
    return this.#dispatcher().isMockActive
  }

  dispatch(options: DispatchOptions, handler: DispatchHandler): boolean {
    this.dispatched = true
    this.#traits.dispatches = true
    const classic = typeof handler.onRequestStart !== 'function'
    if (!classic) this.#classic = false
    if (this.cancelled && classic) {
      // Cancelled before fetch got this far: fail the request without taking a connection.
      handler.onError(this.reason)
      return true
    }
    const verify = this.#verify
    if (verify !== undefined) {
      // The first request of this attempt is what fetch makes of the caller's arguments.
      this.#verify = undefined
      // A mismatch is final; a match counts only for a shape not judged yet (calls of one shape
      // may be verified side by side).
      const { shape } = verify.plan
      if (!matchesDispatched(verify.plan, options, DEADLINE_HEADER)) verify.shapes.set(shape, false)
      else if (!verify.shapes.has(shape)) verify.shapes.set(shape, true)
    }
    const target = this.#dispatcher()
    const requests = this.#requests
    if (this.#route !== undefined) options = routeOptions(options, this.#route, requests === undefined)
    if (this.#header !== undefined) options = addDeadlineHeader(options, this.#header)
    const request = classic ? new ConnectHandler(handler) : new ControllerHandler(handler, this)
    if (requests === undefined) this.#requests = request
    else if (Array.isArray(requests)) requests.push(request)
    else this.#requests = [requests, request]
    return target.dispatch(options, request)
  }

  /** Ends the requests dispatched and fails any later one (undici ignores the end of an ended one). */
  cancel(reason: unknown): void {
    if (this.cancelled) return
    this.cancelled = true
    this.reason = reason
    const requests = this.#requests
    if (requests === undefined) return
    if (Array.isArray(requests)) for (const r of requests) r.fail(reason)
    else requests.fail(reason)
  }
}

/**
 * Adds the deadline header to the options fetch gave a dispatcher. Fetch builds that object and
 * its `headers` (a plain object of its header list) afresh for each request, so they are changed
 * in place; a deadline header already there (the caller's, or one a wrapper of fetch added), in
 * any letter case, is replaced.
 */
function addDeadlineHeader(options: DispatchOptions, value: string): DispatchOptions {
  return addHeader(options, DEADLINE_HEADER, value)
}

/** Whether `name` is `header` (lower-case) in any letter case. */
const sameName = (name: string, header: string) =>
  name.length === header.length && name.toLowerCase() === header

/** Sets header `header` (a lower-case name) to `value` in dispatch options, as {@link addDeadlineHeader} does. */
function addHeader(options: DispatchOptions, header: string, value: string): DispatchOptions {
  const headers = options.headers
  if (headers === undefined || headers === null) return { ...options, headers: { [header]: value } }
  if (Array.isArray(headers)) {
    // undici's flat form: name, value, name, value...
    const out: unknown[] = []
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (!sameName(String(headers[i]), header)) out.push(headers[i], headers[i + 1])
    }
    out.push(header, value)
    return { ...options, headers: out }
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const out: Record<string, unknown> = {}
    for (const [name, v] of headers as Iterable<[string, unknown]>) if (!sameName(name, header)) out[name] = v
    out[header] = value
    return { ...options, headers: out }
  }
  const record = headers as Record<string, unknown>
  for (const name in record) {
    if (name !== header && sameName(name, header)) delete record[name]
  }
  record[header] = value
  return options
}

/**
 * Where an attempt's requests go and what `Host` they carry, when that is not simply fetch's
 * request to the endpoint's URL: a `Request` sent whole (its own URL, `http://users/x`, is sent
 * to the endpoint: `from` becomes `to`, and the first request's path becomes `path`), and the
 * authority (`host`) a request to the endpoint carries instead of the endpoint's address.
 */
interface AttemptRoute {
  /** The `Host` of requests to the endpoint; `undefined` for the endpoint's own. */
  readonly host: string | undefined
  /** The caller's origin (a `Request` sent whole), sent to `to` instead; else `undefined`. */
  readonly from: string | undefined
  /** The endpoint's origin. */
  readonly to: string
  /** The path of the attempt's first request (a route may have rewritten it). */
  readonly path: string
}

/** Applies `route` to the options fetch dispatched; `first` for the attempt's first request. */
function routeOptions(options: DispatchOptions, route: AttemptRoute, first: boolean): DispatchOptions {
  const o = options as DispatchOptions & { origin?: unknown; path?: unknown }
  if (route.from !== undefined && String(o.origin) === route.from) {
    o.origin = route.to
    if (first) o.path = route.path
  }
  // A redirect to another origin carries that origin's host, as fetch sends it.
  if (route.host !== undefined && String(o.origin) === route.to) return addHeader(options, 'host', route.host)
  return options
}

/**
 * Passes a classic handler's events on. {@link fail} hands fetch the error itself: fetch then
 * ends its request as on a network error (closing the connection through the `abort` it got
 * from `onConnect`, or at `onConnect` when the request still waits for one) and rejects at once;
 * undici's own report of that end is not passed on twice.
 */
class ConnectHandler implements RequestInFlight {
  readonly #handler: DispatchHandler
  #ended = false
  constructor(handler: DispatchHandler) {
    this.#handler = handler
  }
  fail(reason: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.#handler.onError(reason)
  }
  onConnect(abort: AbortRequest, context: unknown): unknown {
    return this.#handler.onConnect(abort, context)
  }
  onResponseStarted(): unknown {
    return this.#handler.onResponseStarted?.()
  }
  onHeaders(status: number, rawHeaders: unknown, resume: unknown, statusText: string): unknown {
    if (this.#ended) return false
    return this.#handler.onHeaders(status, rawHeaders, resume, statusText)
  }
  onData(chunk: unknown): unknown {
    if (this.#ended) return false
    return this.#handler.onData(chunk)
  }
  onComplete(trailers: unknown): unknown {
    if (this.#ended) return undefined
    this.#ended = true
    return this.#handler.onComplete(trailers)
  }
  onError(error: unknown): unknown {
    if (this.#ended) return undefined
    this.#ended = true
    return this.#handler.onError(error)
  }
  onUpgrade(status: number, rawHeaders: unknown, socket: unknown): unknown {
    if (this.#ended) return undefined
    this.#ended = true
    return this.#handler.onUpgrade?.(status, rawHeaders, socket)
  }
  onBodySent(chunk: unknown): unknown {
    return this.#handler.onBodySent?.(chunk)
  }
  onRequestSent(): unknown {
    return this.#handler.onRequestSent?.()
  }
}

/**
 * Passes a controller-form handler's events on, keeping the controller `onRequestStart` brings:
 * {@link fail} aborts through it, at once or when the request starts.
 */
class ControllerHandler implements RequestInFlight {
  readonly #handler: DispatchHandler
  readonly #attempt: AttemptDispatcher
  #controller: { abort(reason: unknown): void } | undefined = undefined
  constructor(handler: DispatchHandler, attempt: AttemptDispatcher) {
    this.#handler = handler
    this.#attempt = attempt
  }
  fail(reason: unknown): void {
    this.#controller?.abort(reason)
  }
  onRequestStart(controller: { abort(reason: unknown): void }, context: unknown): unknown {
    this.#controller = controller
    const result = this.#handler.onRequestStart(controller, context)
    if (this.#attempt.cancelled) controller.abort(this.#attempt.reason)
    return result
  }
  onRequestUpgrade(...args: unknown[]): unknown {
    return this.#handler.onRequestUpgrade?.(...args)
  }
  onResponseStart(...args: unknown[]): unknown {
    return this.#handler.onResponseStart?.(...args)
  }
  onResponseData(...args: unknown[]): unknown {
    return this.#handler.onResponseData?.(...args)
  }
  onResponseEnd(...args: unknown[]): unknown {
    return this.#handler.onResponseEnd?.(...args)
  }
  onResponseError(...args: unknown[]): unknown {
    return this.#handler.onResponseError?.(...args)
  }
}

// --- The transport ----------------------------------------------------------------------------

/** `init` plus `dispatcher`, which Node's `RequestInit` type leaves out. */
type DispatchInit = RequestInit & { dispatcher?: unknown }

/** Options of {@link fetchTransport}. */
export interface FetchTransportOptions {
  /**
   * Whether plain calls skip fetch's algorithm when `fetchFn` is Node's own fetch: sent
   * straight to the undici dispatcher fetch would have used, with the `Response` built by the
   * transport (about twice the throughput of fetch; docs/decisions.md, D25). Only request
   * shapes seen to dispatch exactly what fetch dispatches take that path, and answers that are
   * not plain (redirects, encoded bodies, `HEAD`) are handed over to fetch mid-flight. Default
   * `true`; ignored for any other fetch function.
   */
  readonly direct?: boolean
  /**
   * The service's transport security (its `tls`): every attempt goes to an `https://` endpoint
   * (a plaintext one is refused with `TLS_REQUIRED`) through the service's own verifying
   * dispatcher, which takes precedence over `init.dispatcher` and undici's global one; a refused
   * handshake rejects with its `TlsVerificationError`. Default none.
   */
  readonly tls?: TlsClient | undefined
}

/**
 * Sends each attempt with `fetchFn` to `endpoint.address + req.path`.
 *
 * When `req.propagateDeadline` is true (the default) and the call has a deadline, each attempt
 * carries `x-meshlet-timeout-ms`: the whole milliseconds left at the moment it is sent (at
 * least `0`), so the upstream can give up when the caller will (see `withInboundDeadline`). A
 * value the caller set in that header is replaced by the mesh's own.
 *
 * The first attempt, sent with both a signal and a dispatcher, tells whether `fetchFn` honours
 * `init.dispatcher` (Node's fetch calls it before returning); from then on, an attempt of a call
 * without a signal of its own is closed through its dispatcher (see the module comment). A
 * fetch that ignores dispatchers (a stub, node-fetch, a cache in front) keeps a signal per
 * attempt, and so does every attempt after a response that came without going through the
 * attempt's dispatcher (a wrapper that answers some requests itself, as request mocks do).
 * Around Node's own fetch, plain calls then take the direct path ({@link FetchTransportOptions.direct}).
 */
export function fetchTransport(
  fetchFn: typeof fetch,
  options?: FetchTransportOptions,
): Handler<HttpRequest, Response> {
  const node = isNodeFetch(fetchFn)
  const traits: FetchTraits = {
    dispatches: undefined,
    shapes: options?.direct !== false && node ? new Map() : undefined,
    node,
  }
  const fetchAttempt: Handler<HttpRequest, Response> = (req, ctx) => {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint === undefined)
      return Promise.reject(new Error('meshlet: no endpoint chosen for this attempt'))
    // The caller asked for TLS: never a plaintext endpoint (`https://` has an `s` at 4).
    if (req.secure === true && endpoint.address.charCodeAt(4) !== 115)
      return Promise.reject(new TlsRequiredError(req.service, endpoint.address))
    const header =
      req.propagateDeadline && ctx.deadline !== Number.POSITIVE_INFINITY
        ? // Less a float's rounding error: `(start + 3000) - start` may be a hair under 3000.
          String(Math.max(0, Math.floor(ctx.deadline - ctx.startedAt + 1e-6)))
        : undefined
    // A Request with a body is sent whole by Node's fetch (whose Request it is), a dispatcher of
    // ours taking its URL to the endpoint; through any other fetch, its options and body stream
    // are (undici's npm fetch would read another realm's Request as a string).
    const whole = req.request !== undefined && traits.node
    const url = endpoint.address + req.path
    const route =
      req.authority === undefined && !whole
        ? undefined
        : {
            host: req.authority,
            from: whole ? originOfUrl(req.request!.url) : undefined,
            to: endpointOrigin(endpoint),
            path: req.path,
          }
    const attempt: Attempt = { url, whole, route, endpoint }
    let verify: Verification | undefined
    const shapes = traits.shapes
    if (shapes !== undefined && traits.dispatches === true && !whole) {
      const origin = originOf(endpoint)
      const plan =
        origin === undefined
          ? undefined
          : planDirect(origin, req.path, req.init, header === undefined ? undefined : DEADLINE_HEADER)
      if (plan !== undefined) {
        const known = shapes.get(plan.shape)
        if (known === true) return viaDirect(fetchFn, attempt, plan, req, ctx, header, traits)
        if (known === undefined) verify = { plan, shapes }
      }
    }
    if (traits.dispatches === true && req.signal === undefined)
      return viaDispatcher(fetchFn, attempt, req, ctx, header, traits, verify)
    return viaSignal(fetchFn, attempt, req, ctx, header, traits, verify)
  }
  const tls = options?.tls
  const sendAttempt = tls === undefined ? fetchAttempt : withTls(fetchAttempt, tls)
  // Every path rejects as soon as the attempt is cancelled only when fetch itself ends its
  // request at the dispatcher's failure, as the global fetch (undici's) does. A wrapper of fetch
  // may hold the rejection back (to retry on its own, say), so around one the attempt timeout
  // keeps a promise of its own.
  return fetchFn === globalThis.fetch ? settlesOnCancel(sendAttempt) : sendAttempt
}

/**
 * The attempts of a service with `tls`: to https endpoints only, through the service's verifying
 * dispatcher (the caller's `init.dispatcher` is replaced: the service's `tls` takes precedence),
 * a verification failure rejecting with its own typed error rather than fetch's `TypeError`.
 */
function withTls(next: Handler<HttpRequest, Response>, tls: TlsClient): Handler<HttpRequest, Response> {
  const attempt: Handler<HttpRequest, Response> = (req, ctx) => {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint !== undefined && endpoint.address.charCodeAt(4) !== 115)
      return Promise.reject(new TlsRequiredError(req.service, endpoint.address))
    if (!tls.ready) return tls.load().then(() => attempt(req, ctx))
    const init = { ...req.init, dispatcher: tls.dispatcher() } as RequestInit
    return next({ ...req, init }, ctx).catch((error: unknown) => {
      throw tlsErrorIn(error) ?? error
    })
  }
  return attempt
}

/**
 * Whether `fn` is Node's own fetch, which loads undici's fetch from Node's internals: not a
 * wrapper of it (which may add headers, answer by itself or log), nor undici's npm fetch.
 */
function isNodeFetch(fn: typeof fetch): boolean {
  try {
    return Function.prototype.toString.call(fn).includes("require('internal/deps/undici/undici')")
  } catch {
    return false
  }
}

/** Where one attempt goes, as the three paths need it. */
interface Attempt {
  /** The endpoint's URL for the call: its address and the request's path. */
  readonly url: string
  /** Whether fetch is given the caller's `Request` itself ({@link HttpRequest.request}). */
  readonly whole: boolean
  /** What the attempt's dispatcher changes in fetch's requests, if anything. */
  readonly route: AttemptRoute | undefined
  /** The endpoint, whose address the answer's `url` never shows ({@link asCalled}). */
  readonly endpoint: Endpoint
}

/** The origin of an absolute URL as the parser serialised it (`http://users/x` -> `http://users`). */
function originOfUrl(href: string): string {
  const slash = href.indexOf('/', href.indexOf('//') + 2)
  return slash < 0 ? href : href.slice(0, slash)
}

/** Each endpoint's origin as fetch dispatches it (the parser's serialisation of its address). */
const endpointOrigins = new WeakMap<Endpoint, string>()

function endpointOrigin(endpoint: Endpoint): string {
  let origin = endpointOrigins.get(endpoint)
  if (origin === undefined) {
    try {
      origin = new URL(endpoint.address).origin
    } catch {
      origin = endpoint.address
    }
    endpointOrigins.set(endpoint, origin)
  }
  return origin
}

/**
 * The answer as the caller sees it: its `url` the URL the caller asked for (what a sidecar's
 * user sees), not the endpoint's. An answer from the endpoint reports `req.url`; after a
 * redirect that stayed on the endpoint, the caller's origin with the final path; an answer from
 * elsewhere (another origin, a stub's `''`) is left as it is.
 */
function asCalled(res: Response, req: HttpRequest, endpoint: Endpoint): Response {
  const called = req.url
  if (called === undefined) return res
  const address = endpointOrigin(endpoint)
  const url = res.url
  if (!url.startsWith(address) || (url.length > address.length && url.charCodeAt(address.length) !== 47))
    return res
  return reportedAs(res, res.redirected ? originOfUrl(called) + url.slice(address.length) : called)
}

/** Each endpoint's address when the direct path can send to it ({@link directOrigin}), else `null`. */
const origins = new WeakMap<Endpoint, string | null>()

function originOf(endpoint: Endpoint): string | undefined {
  let origin = origins.get(endpoint)
  if (origin === undefined) {
    origin = directOrigin(endpoint.address) ?? null
    origins.set(endpoint, origin)
  }
  return origin ?? undefined
}

/**
 * An attempt on the direct path (direct/direct.ts): sent to the dispatcher fetch would have
 * used; an answer that is not plain is handed to fetch, whose later hops go through a dispatcher
 * of the attempt's own, as on the dispatcher path.
 */
function viaDirect(
  fetchFn: typeof fetch,
  attempt: Attempt,
  plan: DirectPlan,
  req: HttpRequest,
  ctx: Context,
  header: string | undefined,
  traits: FetchTraits,
): Promise<Response> {
  const callerInit = req.init as DispatchInit
  const caller = callerInit.dispatcher as Dispatcher | undefined
  const dispatcher = targetOf(caller)
  if (dispatcher === undefined) return viaDispatcher(fetchFn, attempt, req, ctx, header, traits, undefined)
  return sendDirect(plan, {
    dispatcher,
    header,
    host: req.authority,
    url: req.url ?? plan.origin + plan.path,
    cancel: ctx.cancel,
    signal: req.signal,
    handover: (relay: Relay) => {
      relay.next = new AttemptDispatcher(traits, caller, header, undefined, attempt.route)
      const init: DispatchInit = { ...callerInit, dispatcher: relay }
      if (req.signal !== undefined) init.signal = req.signal
      return send(fetchFn, attempt.url, init).then((res) => asCalled(res, req, attempt.endpoint))
    },
  })
}

const ignore = () => {}

/** Calls `fetchFn`, turning a synchronous throw (a bad header) into a rejection. */
function send(fetchFn: typeof fetch, input: string | Request, init: DispatchInit): Promise<Response> {
  try {
    return fetchFn(input, init)
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * What fetch is called with for an attempt: the endpoint's URL and the caller's options, or the
 * caller's `Request` itself with its options but not its body (fetch takes that from the
 * `Request`, with its length and source), for the dispatcher to send to the endpoint.
 */
function callOf(attempt: Attempt, req: HttpRequest, init: DispatchInit): [string | Request, DispatchInit] {
  if (!attempt.whole) return [attempt.url, init]
  const { body: _body, duplex: _duplex, ...rest } = init as DispatchInit & { duplex?: unknown }
  return [req.request!, rest]
}

/**
 * An attempt closed through its own dispatcher: no signal, and the deadline header added at
 * the dispatcher. A cancelled attempt rejects with the reason, at once (as fetch does on an
 * abort), and its request is closed wherever it is.
 */
function viaDispatcher(
  fetchFn: typeof fetch,
  attempt: Attempt,
  req: HttpRequest,
  ctx: Context,
  header: string | undefined,
  traits: FetchTraits,
  verify: Verification | undefined,
): Promise<Response> {
  const callerInit = req.init as DispatchInit
  const dispatcher = new AttemptDispatcher(
    traits,
    callerInit.dispatcher as Dispatcher | undefined,
    header,
    verify,
    attempt.route,
  )
  // Cancelled already: fetch's request fails in `dispatch`, without taking a connection.
  if (ctx.cancel.aborted) dispatcher.cancel(ctx.cancel.reason)
  const [input, init] = callOf(attempt, req, { ...callerInit, dispatcher })
  const sent = send(fetchFn, input, init)
  // The common case: cancelling fails fetch's own request, so fetch's promise settles at once
  // and carries the outcome. No promise of the transport's own: objects kept alive while a
  // request is in flight cost a few percent of throughput at 64 concurrent calls (Node 20).
  if (!dispatcher.failsFetchAtOnce) return settledOnCancel(sent, dispatcher, ctx, traits, req, attempt)
  const unlink = ctx.cancel.onAbort((reason) => dispatcher.cancel(reason))
  return sent.then(
    (res) => {
      unlink()
      return asCalled(answered(res, dispatcher), req, attempt.endpoint)
    },
    (error: unknown) => {
      unlink()
      throw dispatcher.cancelled ? dispatcher.reason : error
    },
  )
}

/** The attempt's answer, or its cancellation's reason when the answer raced it (and is released). */
function answered(res: Response, dispatcher: AttemptDispatcher): Response {
  if (!dispatcher.cancelled) return res
  res.body?.cancel().catch(ignore)
  throw dispatcher.reason
}

/**
 * For a fetch that has not dispatched yet when it returns (a wrapper that calls fetch later, or
 * answers by itself as request mocks do): the attempt rejects at cancellation by itself, and a
 * response that did not go through the dispatcher sends the next attempts the portable way,
 * header in `init`.
 */
function settledOnCancel(
  sent: Promise<Response>,
  dispatcher: AttemptDispatcher,
  ctx: Context,
  traits: FetchTraits,
  req: HttpRequest,
  attempt: Attempt,
): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const unlink = ctx.cancel.onAbort((reason) => {
      dispatcher.cancel(reason)
      reject(reason)
    })
    sent.then(
      (res) => {
        unlink()
        if (!dispatcher.dispatched) traits.dispatches = false
        if (dispatcher.cancelled) res.body?.cancel().catch(ignore)
        else resolve(asCalled(res, req, attempt.endpoint))
      },
      (error: unknown) => {
        unlink()
        reject(error)
      },
    )
  })
}

/**
 * Makes the caller's signal abort `controller`. Its own scope, so that the listener, which lives
 * as long as the response, holds the controller and nothing of the attempt (a closure made beside
 * the attempt's `resolve` would keep the response, and so the listener, alive for good).
 */
function linkCaller(signal: AbortSignal, controller: AbortController): CallerLink {
  return { unlink: onSignalAbort(signal, () => controller.abort(signal.reason)) }
}

/**
 * An attempt closed through an `AbortSignal` of its own, linked to the caller's signal when it
 * gave one. While the transport does not yet know whether `fetchFn` honours dispatchers, it also
 * passes one that notes being called; once it knows, the deadline header goes through one.
 */
function viaSignal(
  fetchFn: typeof fetch,
  attempt: Attempt,
  req: HttpRequest,
  ctx: Context,
  header: string | undefined,
  traits: FetchTraits,
  verify: Verification | undefined,
): Promise<Response> {
  const controller = new AbortController()
  const callerInit = req.init as DispatchInit
  const init: DispatchInit = { ...callerInit, signal: controller.signal }
  // The dispatcher that learns whether fetch honours dispatchers (first answer), or the one that
  // only adds the header, cheaper there than in `init` (the signal closes the request).
  let probe: AttemptDispatcher | undefined
  const route = attempt.route
  if (traits.dispatches === true) {
    if (header !== undefined || verify !== undefined || route !== undefined) {
      probe = new AttemptDispatcher(
        traits,
        callerInit.dispatcher as Dispatcher | undefined,
        header,
        verify,
        route,
      )
      init.dispatcher = probe
    }
  } else {
    if (header !== undefined) init.headers = withDeadlineHeader(callerInit.headers, header)
    // A fetch that may not use dispatchers sees the authority as a header (fetch drops it).
    if (route?.host !== undefined && traits.dispatches === false)
      init.headers = withHeader(init.headers, 'host', route.host)
    if (traits.dispatches === undefined) {
      probe = new AttemptDispatcher(
        traits,
        callerInit.dispatcher as Dispatcher | undefined,
        undefined,
        undefined,
        route,
      )
      init.dispatcher = probe
    }
  }
  const [input, sentInit] = callOf(attempt, req, init)
  // Rejects at the cancellation itself, not when fetch does: a fetch function that ignores its
  // signal (a stub) must not hold the attempt past its deadline.
  return new Promise<Response>((resolve, reject) => {
    const link = req.signal === undefined ? undefined : linkCaller(req.signal, controller)
    const unlink = ctx.cancel.onAbort((reason) => {
      controller.abort(reason)
      if (link !== undefined) unlinkCaller(link)
      reject(reason)
    })
    send(fetchFn, input, sentInit).then(
      (res) => {
        unlink()
        // An answer that never went through the dispatcher: this fetch does not (always) use one.
        if (probe !== undefined && !probe.dispatched) traits.dispatches = false
        if (controller.signal.aborted) {
          // Cancelled (or the caller aborted) while the answer was on its way: no answer.
          if (link !== undefined) unlinkCaller(link)
          res.body?.cancel().catch(ignore)
          reject(controller.signal.reason)
          return
        }
        if (link !== undefined) {
          if (res.body === null) {
            unlinkCaller(link)
          } else {
            links.set(res, link)
            finalizer.register(res, link, link)
          }
        }
        resolve(asCalled(res, req, attempt.endpoint))
      },
      (error: unknown) => {
        unlink()
        if (link !== undefined) unlinkCaller(link)
        reject(error)
      },
    )
  })
}
