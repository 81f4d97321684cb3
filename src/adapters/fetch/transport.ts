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
import type { Context } from '../../core/context.js'
import { type Handler, settlesOnCancel } from '../../core/handler.js'
import { ENDPOINT, type Endpoint } from '../../stages/balancer/endpoint.js'
import { DEADLINE_HEADER } from '../../stages/deadline/propagation.js'
import { type Relay, sendDirect } from './direct/direct.js'
import { type DirectPlan, directOrigin, matchesDispatched, planDirect } from './direct/plan.js'
import type { HttpRequest } from './request.js'

/** A listener on the caller's signal that cancels one attempt's request and body. */
interface CallerLink {
  readonly signal: AbortSignal
  readonly listener: () => void
}

const unlinkCaller = (link: CallerLink) => link.signal.removeEventListener('abort', link.listener)

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
  /** The requests dispatched (one, or more after a redirect). */
  #requests: RequestInFlight | RequestInFlight[] | undefined = undefined

  constructor(
    traits: FetchTraits,
    target: Dispatcher | undefined,
    header: string | undefined,
    verify?: Verification,
  ) {
    this.#traits = traits
    this.#target = target
    this.#header = header
    this.#verify = verify
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
    if (this.#header !== undefined) options = addDeadlineHeader(options, this.#header)
    const request = classic ? new ConnectHandler(handler) : new ControllerHandler(handler, this)
    const requests = this.#requests
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
  const headers = options.headers
  if (headers === undefined || headers === null) return { ...options, headers: { [DEADLINE_HEADER]: value } }
  if (Array.isArray(headers)) {
    // undici's flat form: name, value, name, value...
    const out: unknown[] = []
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (!isDeadlineHeader(String(headers[i]))) out.push(headers[i], headers[i + 1])
    }
    out.push(DEADLINE_HEADER, value)
    return { ...options, headers: out }
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    const out: Record<string, unknown> = {}
    for (const [name, v] of headers as Iterable<[string, unknown]>) if (!isDeadlineHeader(name)) out[name] = v
    out[DEADLINE_HEADER] = value
    return { ...options, headers: out }
  }
  const record = headers as Record<string, unknown>
  for (const name in record) {
    if (name !== DEADLINE_HEADER && isDeadlineHeader(name)) delete record[name]
  }
  record[DEADLINE_HEADER] = value
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
  const traits: FetchTraits = {
    dispatches: undefined,
    shapes: options?.direct !== false && isNodeFetch(fetchFn) ? new Map() : undefined,
  }
  const fetchAttempt: Handler<HttpRequest, Response> = (req, ctx) => {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint === undefined)
      return Promise.reject(new Error('meshlet: no endpoint chosen for this attempt'))
    const header =
      req.propagateDeadline && ctx.deadline !== Number.POSITIVE_INFINITY
        ? // Less a float's rounding error: `(start + 3000) - start` may be a hair under 3000.
          String(Math.max(0, Math.floor(ctx.deadline - ctx.startedAt + 1e-6)))
        : undefined
    const url = endpoint.address + req.path
    let verify: Verification | undefined
    const shapes = traits.shapes
    if (shapes !== undefined && traits.dispatches === true) {
      const origin = originOf(endpoint)
      const plan =
        origin === undefined
          ? undefined
          : planDirect(origin, req.path, req.init, header === undefined ? undefined : DEADLINE_HEADER)
      if (plan !== undefined) {
        const known = shapes.get(plan.shape)
        if (known === true) return viaDirect(fetchFn, url, plan, req, ctx, header, traits)
        if (known === undefined) verify = { plan, shapes }
      }
    }
    if (traits.dispatches === true && req.signal === undefined)
      return viaDispatcher(fetchFn, url, req, ctx, header, traits, verify)
    return viaSignal(fetchFn, url, req, ctx, header, traits, verify)
  }
  // Every path rejects as soon as the attempt is cancelled only when fetch itself ends its
  // request at the dispatcher's failure, as the global fetch (undici's) does. A wrapper of fetch
  // may hold the rejection back (to retry on its own, say), so around one the attempt timeout
  // keeps a promise of its own.
  return fetchFn === globalThis.fetch ? settlesOnCancel(fetchAttempt) : fetchAttempt
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
  url: string,
  plan: DirectPlan,
  req: HttpRequest,
  ctx: Context,
  header: string | undefined,
  traits: FetchTraits,
): Promise<Response> {
  const callerInit = req.init as DispatchInit
  const caller = callerInit.dispatcher as Dispatcher | undefined
  const dispatcher = targetOf(caller)
  if (dispatcher === undefined) return viaDispatcher(fetchFn, url, req, ctx, header, traits, undefined)
  return sendDirect(plan, {
    dispatcher,
    header,
    cancel: ctx.cancel,
    signal: req.signal,
    handover: (relay: Relay) => {
      relay.next = new AttemptDispatcher(traits, caller, header)
      const init: DispatchInit = { ...callerInit, dispatcher: relay }
      if (req.signal !== undefined) init.signal = req.signal
      return send(fetchFn, url, init)
    },
  })
}

const ignore = () => {}

/** Calls `fetchFn`, turning a synchronous throw (a bad header) into a rejection. */
function send(fetchFn: typeof fetch, url: string, init: DispatchInit): Promise<Response> {
  try {
    return fetchFn(url, init)
  } catch (error) {
    return Promise.reject(error)
  }
}

/**
 * An attempt closed through its own dispatcher: no signal, and the deadline header added at
 * the dispatcher. A cancelled attempt rejects with the reason, at once (as fetch does on an
 * abort), and its request is closed wherever it is.
 */
function viaDispatcher(
  fetchFn: typeof fetch,
  url: string,
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
  )
  // Cancelled already: fetch's request fails in `dispatch`, without taking a connection.
  if (ctx.cancel.aborted) dispatcher.cancel(ctx.cancel.reason)
  const sent = send(fetchFn, url, { ...callerInit, dispatcher })
  // The common case: cancelling fails fetch's own request, so fetch's promise settles at once
  // and carries the outcome. No promise of the transport's own: objects kept alive while a
  // request is in flight cost a few percent of throughput at 64 concurrent calls (Node 20).
  if (!dispatcher.failsFetchAtOnce) return settledOnCancel(sent, dispatcher, ctx, traits)
  const unlink = ctx.cancel.onAbort((reason) => dispatcher.cancel(reason))
  return sent.then(
    (res) => {
      unlink()
      return answered(res, dispatcher)
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
        else resolve(res)
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
  const link = { signal, listener: () => controller.abort(signal.reason) }
  signal.addEventListener('abort', link.listener, { once: true })
  return link
}

/**
 * An attempt closed through an `AbortSignal` of its own, linked to the caller's signal when it
 * gave one. While the transport does not yet know whether `fetchFn` honours dispatchers, it also
 * passes one that notes being called; once it knows, the deadline header goes through one.
 */
function viaSignal(
  fetchFn: typeof fetch,
  url: string,
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
  if (traits.dispatches === true) {
    if (header !== undefined || verify !== undefined) {
      probe = new AttemptDispatcher(traits, callerInit.dispatcher as Dispatcher | undefined, header, verify)
      init.dispatcher = probe
    }
  } else {
    if (header !== undefined) init.headers = withDeadlineHeader(callerInit.headers, header)
    if (traits.dispatches === undefined) {
      probe = new AttemptDispatcher(traits, callerInit.dispatcher as Dispatcher | undefined, undefined)
      init.dispatcher = probe
    }
  }
  // Rejects at the cancellation itself, not when fetch does: a fetch function that ignores its
  // signal (a stub) must not hold the attempt past its deadline.
  return new Promise<Response>((resolve, reject) => {
    const link = req.signal === undefined ? undefined : linkCaller(req.signal, controller)
    const unlink = ctx.cancel.onAbort((reason) => {
      controller.abort(reason)
      if (link !== undefined) unlinkCaller(link)
      reject(reason)
    })
    send(fetchFn, url, init).then(
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
        resolve(res)
      },
      (error: unknown) => {
        unlink()
        if (link !== undefined) unlinkCaller(link)
        reject(error)
      },
    )
  })
}
