/**
 * The direct path: sends one attempt straight to the undici dispatcher that Node's fetch would
 * have used, and builds the `Response` itself, instead of running fetch's algorithm (request
 * and header objects, the fetch controller, its steps). On Node 20 that algorithm is most of
 * fetch's cost: on loopback, fetch spends ~150 us of CPU per call where the same exchange
 * through the dispatcher with a `Response` built from it spends ~65 us (docs/decisions.md, D25).
 *
 * Exactness comes from doing only the plain part and handing fetch the rest. The request is
 * sent directly only when its shape was verified against fetch (plan.ts). The answer is built
 * here only when it is plain: a status from 200 to 599 but 421, no `content-encoding`, not a
 * redirect to follow, not the answer to `HEAD`. Any other answer is handed over to fetch while it
 * arrives: fetch is called with the caller's own arguments and a relay dispatcher, which gives
 * fetch's handler the status and headers already received and then the rest of the exchange,
 * so fetch decodes, follows the redirect (its next hops through the dispatcher fetch would have
 * used) and reports `url`, `redirected` and `type` itself, and the request is never sent twice.
 */
import { onSignalAbort } from '../../../core/abort-hub.js'
import type { Cancellation } from '../../../core/cancel.js'
import { DEADLINE_HEADER } from '../../../stages/deadline/propagation.js'
import type { DirectPlan } from './plan.js'

/** The part of undici's `Dispatcher` the direct path uses (the classic handler form). */
export interface Dispatcher {
  // biome-ignore lint/suspicious/noExplicitAny: undici's options and handlers, passed on untouched
  dispatch(options: any, handler: any): boolean
}

/** A dispatcher whose requests can all be ended at once (the transport's attempt dispatcher). */
export interface CancellableDispatcher extends Dispatcher {
  cancel(reason: unknown): void
  readonly isMockActive?: boolean | undefined
}

/** What one direct attempt needs besides its plan. */
export interface DirectAttempt {
  /** Where to send: the caller's `init.dispatcher`, else undici's global one. */
  readonly dispatcher: Dispatcher
  /** The value of the deadline header (`x-meshlet-timeout-ms`), or `undefined` for none. */
  readonly header: string | undefined
  /** The `Host` to send instead of the endpoint's address, or `undefined` (the endpoint's). */
  readonly host: string | undefined
  /** The answer's `url`: the URL the caller asked for. */
  readonly url: string
  /** The attempt's cancellation (deadline, lost hedge, mesh closed): rejects the attempt with its reason. */
  readonly cancel: Cancellation
  /** The caller's signal: rejects with its reason, and errors the body after the headers. */
  readonly signal: AbortSignal | undefined
  /**
   * Calls fetch with the caller's URL and options and `relay` as the dispatcher, and the
   * dispatcher for any later hop (a redirect) that fetch makes.
   */
  readonly handover: (relay: Relay) => Promise<Response>
}

/** The final statuses whose answer has no body in fetch (informational ones never reach an answer). */
const NULL_BODY = new Set([204, 205, 304])
const REDIRECT = new Set([301, 302, 303, 307, 308])

/** How many bytes the body stream holds before it stops reading the socket. */
const BODY_HIGH_WATER_MARK = 64 * 1024

/**
 * What makes a constructed `Response` report what fetch's would: `type: 'basic'` and a `clone`
 * that keeps it and `url` (which {@link fetched} sets: the two members the constructor cannot
 * set). Own properties of the instance, so that the answer stays a plain `Response` (its
 * prototype and `constructor` are fetch's).
 */
const AS_FETCHED: PropertyDescriptorMap = {
  type: { value: 'basic', configurable: true },
  clone: {
    value(this: Response) {
      return fetched(Response.prototype.clone.call(this), this.url)
    },
    configurable: true,
    writable: true,
  },
}

function fetched(res: Response, url: string): Response {
  Object.defineProperty(res, 'url', { value: url, configurable: true })
  return Object.defineProperties(res, AS_FETCHED)
}

/** A `clone` that keeps the `url` given by {@link reportedAs}. */
const CLONE_REPORTED: PropertyDescriptorMap = {
  clone: {
    value(this: Response) {
      return reportedAs(Response.prototype.clone.call(this), this.url)
    },
    configurable: true,
    writable: true,
  },
}

/**
 * `res` (an answer of fetch's own) reporting `url` as its `url`, and so do its clones: the URL
 * the caller asked for, where fetch was sent to the endpoint's.
 */
export function reportedAs(res: Response, url: string): Response {
  Object.defineProperty(res, 'url', { value: url, configurable: true })
  return Object.defineProperties(res, CLONE_REPORTED)
}

/**
 * fetch cancels the body of an answer that is garbage-collected unread (undici's
 * `streamRegistry`), so that its connection goes back to the pool; the direct path does the same.
 */
const collected = new FinalizationRegistry<DirectCall>((call) => call.collected())

/**
 * Whether a header value passes through the `Headers` of a constructed `Response` unchanged:
 * it strips leading and trailing whitespace, which fetch keeps.
 */
function untrimmed(value: string): boolean {
  if (value.length === 0) return true
  const first = value.charCodeAt(0)
  const last = value.charCodeAt(value.length - 1)
  return first !== 32 && first !== 9 && last !== 32 && last !== 9
}

/** Whether `Response` accepts `text` as a status text (RFC 9112's reason-phrase), as fetch does not ask. */
function reasonPhrase(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (!(c === 9 || (c >= 0x20 && c <= 0x7e) || (c >= 0x80 && c <= 0xff))) return false
  }
  return true
}

/** Sends `plan` directly; see the module comment. */
export function sendDirect(plan: DirectPlan, attempt: DirectAttempt): Promise<Response> {
  const call = new DirectCall(plan, attempt)
  const promise = new Promise<Response>((resolve, reject) => {
    call.resolve = resolve
    call.reject = reject
  })
  call.start()
  return promise
}

/**
 * `draining`: an answer with a null-body status (a 205 may still carry bytes, which fetch reads
 * and drops) whose exchange has not ended yet.
 */
type State = 'sending' | 'streaming' | 'draining' | 'handed-over' | 'ended'

/** One direct attempt: the handler undici drives, and the body stream of a plain answer. */
class DirectCall {
  resolve: (res: Response) => void = noop
  reject: (reason: unknown) => void = noop
  #state: State = 'sending'
  readonly #plan: DirectPlan
  readonly #attempt: DirectAttempt
  #abort: ((reason: unknown) => void) | undefined = undefined
  /** Why the attempt ended early (cancelled, or the caller aborted), once it did. */
  #reason: unknown = undefined
  #cancelled = false
  #unlinkCancel: (() => void) | undefined = undefined
  /** Removes this call's listener from the caller's signal (its one hub, core/abort-hub.ts). */
  #unlinkSignal: (() => void) | undefined = undefined
  #controller: ReadableByteStreamController | undefined = undefined
  #body: ReadableStream<Uint8Array> | null = null
  /**
   * While the body streams, the token of the answer's registration in {@link collected} (not the
   * answer itself, which this call must not keep alive).
   */
  #registration: object | undefined = undefined
  #resume: (() => void) | undefined = undefined
  #relay: Relay | undefined = undefined

  constructor(plan: DirectPlan, attempt: DirectAttempt) {
    this.#plan = plan
    this.#attempt = attempt
  }

  start(): void {
    const { cancel, signal } = this.#attempt
    // Aborted or cancelled already: never sent, as with fetch.
    if (signal?.aborted || cancel.aborted) {
      this.reject(signal?.aborted ? signal.reason : cancel.reason)
      return
    }
    this.#unlinkCancel = cancel.onAbort((reason) => this.#end(reason))
    if (signal !== undefined) this.#unlinkSignal = onSignalAbort(signal, () => this.#end(signal.reason))
    const plan = this.#plan
    const headers = plan.headers
    const header = this.#attempt.header
    // The plan is made for this attempt alone (without the caller's own spellings of the deadline
    // header): the mesh's goes last, as the dispatcher path adds it.
    if (header !== undefined) (headers as Record<string, string>)[DEADLINE_HEADER] = header
    // undici sends a `host` header as the request's Host line, wherever it is in the list.
    const host = this.#attempt.host
    if (host !== undefined) (headers as Record<string, string>).host = host
    try {
      this.#attempt.dispatcher.dispatch(
        {
          origin: plan.origin,
          path: plan.path,
          method: plan.method,
          body: plan.body,
          headers,
          maxRedirections: 0,
        },
        this,
      )
    } catch (error) {
      this.onError(error)
    }
  }

  /** Ends the attempt early with `reason`: cancelled by the mesh, or aborted by the caller. */
  #end(reason: unknown): void {
    if (this.#state === 'ended' || this.#cancelled) return
    this.#cancelled = true
    this.#reason = reason
    const state = this.#state
    if (state === 'handed-over') {
      // fetch owns the caller's signal now; the mesh's cancellation fails fetch's request.
      this.#relay!.cancel(reason)
      this.reject(reason)
      return
    }
    this.#finish()
    if (state === 'sending') this.reject(reason)
    else this.#controller?.error(reason)
    this.#abort?.(reason)
  }

  /** Drops the links to the caller's signal and the attempt's cancellation. */
  #finish(): void {
    this.#state = 'ended'
    if (this.#registration !== undefined) {
      collected.unregister(this.#registration)
      this.#registration = undefined
    }
    this.#unlinkCancel?.()
    this.#unlinkCancel = undefined
    this.#unlinkCaller()
  }

  // --- undici's classic handler --------------------------------------------------------------

  onConnect(abort: (reason: unknown) => void): void {
    this.#abort = abort
    if (this.#cancelled && this.#state !== 'handed-over') abort(this.#reason)
  }

  onResponseStarted(): void {}

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#state === 'handed-over') return this.#relay!.onHeaders(status, raw, resume, statusText)
    if (this.#state !== 'sending') return false
    if (status < 200) return true // informational: undici goes on to the final answer
    const pairs: [string, string][] = []
    // A 421 is fetch's to answer: it sends the request again on a new connection.
    let plain = status <= 599 && status !== 421 && this.#plan.method !== 'HEAD' && reasonPhrase(statusText)
    for (let i = 0; i + 1 < raw.length; i += 2) {
      // Lower-cased as fetch stores them (it shows in `util.inspect`).
      const name = raw[i]!.toString('latin1').toLowerCase()
      const value = raw[i + 1]!.toString('latin1')
      if (plain) {
        if (!untrimmed(value)) plain = false
        else if (name === 'content-encoding' || (name === 'location' && REDIRECT.has(status))) plain = false
      }
      pairs.push([name, value])
    }
    let res: Response | undefined
    let body: ReadableStream<Uint8Array> | null = null
    if (plain) {
      try {
        if (!NULL_BODY.has(status)) {
          body = new ReadableStream(
            {
              type: 'bytes',
              start: (controller) => {
                this.#controller = controller
              },
              pull: () => this.#resume?.(),
              cancel: (reason) => {
                if (this.#state === 'ended') return
                this.#finish()
                this.#abort?.(reason)
              },
            },
            { highWaterMark: BODY_HIGH_WATER_MARK },
          )
        }
        res = fetched(new Response(body, { status, statusText, headers: pairs }), this.#attempt.url)
      } catch {
        // Whatever a constructed Response refuses and fetch takes is fetch's to answer.
        res = undefined
        this.#controller = undefined
      }
    }
    if (res === undefined) return this.#handOver(status, raw, resume, statusText)
    // The deadline covers the exchange up to the headers, as fetch's promise does (D9).
    this.#unlinkCancel?.()
    this.#unlinkCancel = undefined
    this.#resume = resume
    if (body === null) {
      // The exchange may still bring bytes (a 205 with a body): read and drop them, as fetch does.
      this.#unlinkCaller()
      this.#state = 'draining'
    } else {
      this.#state = 'streaming'
      this.#body = body
      this.#registration = {}
      collected.register(res, this, this.#registration)
    }
    this.resolve(res)
    // Settled: a resolving function keeps its promise, and the promise the answer, alive.
    this.resolve = noop
    this.reject = noop
    return body === null || (this.#controller!.desiredSize ?? 0) > 0
  }

  onData(chunk: Buffer): boolean {
    const state = this.#state
    if (state === 'handed-over') return this.#relay!.onData(chunk)
    if (state === 'draining') return true
    if (state !== 'streaming') return false
    const controller = this.#controller!
    // A copy, as fetch makes: the chunk is a view of the socket's buffer.
    if (chunk.byteLength > 0) controller.enqueue(new Uint8Array(chunk))
    return (controller.desiredSize ?? 0) > 0
  }

  onComplete(trailers: unknown): void {
    const state = this.#state
    if (state === 'handed-over') {
      this.#relay!.onComplete(trailers)
      return
    }
    if (state === 'ended') return
    this.#finish()
    if (state === 'streaming') closeStream(this.#controller!)
    else if (state === 'sending') this.reject(new TypeError('fetch failed')) // no headers: undici never does
  }

  onError(error: unknown): void {
    const state = this.#state
    if (state === 'handed-over') {
      this.#relay!.onError(error)
      return
    }
    if (state === 'ended') return
    this.#finish()
    // fetch's errors: a network error before the headers, `terminated` during the body.
    if (state === 'sending') this.reject(new TypeError('fetch failed', { cause: error }))
    else if (state === 'streaming') this.#controller!.error(new TypeError('terminated', { cause: error }))
  }

  /**
   * The answer was garbage-collected while its body streams: cancel the body unless a reader
   * holds it (undici's condition for fetch's answers), which ends the request and its links.
   */
  collected(): void {
    const body = this.#body
    if (this.#state !== 'streaming' || body === null || body.locked) return
    body.cancel(new DOMException('Response object has been garbage collected', 'AbortError')).catch(noop)
  }

  #unlinkCaller(): void {
    if (this.#unlinkSignal !== undefined) {
      this.#unlinkSignal()
      this.#unlinkSignal = undefined
    }
  }

  // --- Handing an answer over to fetch ----------------------------------------------------------

  #handOver(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // fetch takes the caller's signal itself: no link of ours stays.
    this.#unlinkCaller()
    this.#state = 'handed-over'
    const relay = new Relay(this.#abort)
    this.#relay = relay
    relay.onHeaders(status, raw, resume, statusText)
    let answer: Promise<Response>
    try {
      answer = this.#attempt.handover(relay)
    } catch (error) {
      answer = Promise.reject(error)
    }
    answer.then(
      (res) => {
        relay.settled()
        this.#unlinkCancel?.()
        if (this.#cancelled) {
          res.body?.cancel().catch(noop)
          this.reject(this.#reason)
        } else {
          this.resolve(res)
        }
      },
      (error: unknown) => {
        relay.settled()
        this.#unlinkCancel?.()
        this.reject(this.#cancelled ? this.#reason : error)
      },
    )
    relay.returned()
    // Cancelled while fetch took over: end fetch's request, and the attempt at once.
    if (this.#cancelled) relay.cancel(this.#reason)
    return relay.paused === false
  }
}

/**
 * The dispatcher fetch is given when an answer is handed over. Its first `dispatch` is the
 * request already on the wire: fetch's handler gets the connection's `abort`, the status and
 * headers received, then every later event of the exchange (held until fetch dispatched, should
 * it do so late). Later dispatches (a redirect's next hops) go to `next`.
 */
export class Relay implements Dispatcher {
  // biome-ignore lint/suspicious/noExplicitAny: fetch's handler, driven as undici would
  #handler: any = undefined
  #next: CancellableDispatcher | undefined = undefined
  #resume: (() => void) | undefined = undefined
  #events: Array<() => unknown> | undefined = []
  #abort: ((reason: unknown) => void) | undefined
  #cancelled = false
  #reason: unknown = undefined
  /** Whether the socket should stay paused (fetch's handler asked to, or it has not come yet). */
  paused: boolean | undefined = undefined

  constructor(abort: ((reason: unknown) => void) | undefined) {
    this.#abort = abort
  }

  /** Read by fetch to tell how to pass a body to the dispatcher (undici's `MockAgent`). */
  get isMockActive(): boolean | undefined {
    return this.#next?.isMockActive
  }

  /** Where later hops go; set by the transport through {@link DirectAttempt.handover}. */
  set next(dispatcher: CancellableDispatcher) {
    this.#next = dispatcher
  }

  dispatch(options: unknown, handler: unknown): boolean {
    if (this.#handler !== undefined || this.#events === undefined) {
      if (this.#next === undefined) throw new TypeError('meshlet: no dispatcher for a redirect')
      return this.#next.dispatch(options, handler)
    }
    this.#handler = handler
    const h = this.#handler
    const events = this.#events
    if (this.#cancelled) {
      this.#events = undefined
      h.onError(this.#reason)
      return true
    }
    h.onConnect((reason: unknown) => this.#abort?.(reason), undefined)
    h.onResponseStarted?.()
    // In order, including any event that replaying makes arrive (the list may grow meanwhile).
    for (let i = 0; i < events.length; i++) events[i]!()
    this.#events = undefined
    // Dispatched late: the socket was paused for fetch; go on if fetch's handler wants more.
    if (this.#returned && this.paused === false) this.#resume?.()
    return true
  }

  /** Whether the handover returned to undici before fetch dispatched (the socket was paused meanwhile). */
  #returned = false

  /** The handover returned to undici: from now on, a paused socket needs {@link Relay.dispatch} to resume it. */
  returned(): void {
    this.#returned = true
  }

  /**
   * fetch's promise settled. If fetch never dispatched (its signal was aborted already, say), the
   * request on the wire has no reader: close it.
   */
  settled(): void {
    if (this.#handler === undefined)
      this.#abort?.(new DOMException('This operation was aborted', 'AbortError'))
  }

  /** Ends the handed-over request: fetch's handler fails with `reason`, and the connection closes. */
  cancel(reason: unknown): void {
    if (this.#cancelled) return
    this.#cancelled = true
    this.#reason = reason
    this.#next?.cancel(reason)
    if (this.#handler !== undefined) {
      // Replaying still: the events left are not delivered after the error.
      if (this.#events !== undefined) this.#events.length = 0
      this.#handler.onError(reason)
    }
    this.#abort?.(reason)
  }

  /** Runs `event` on fetch's handler, or holds it (pausing the socket) until fetch dispatches. */
  #deliver(event: () => unknown): unknown {
    if (this.#events !== undefined && this.#handler === undefined) {
      this.#events.push(() => {
        this.paused = event() === false
      })
      this.paused = true
      return false
    }
    const result = event()
    this.paused = result === false
    return result
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    this.#resume = resume
    return this.#deliver(() => this.#handler.onHeaders(status, raw, resume, statusText)) !== false
  }

  onData(chunk: Buffer): boolean {
    if (this.#cancelled) return false
    return this.#deliver(() => this.#handler.onData(chunk)) !== false
  }

  onComplete(trailers: unknown): void {
    if (this.#cancelled) return
    this.#deliver(() => this.#handler.onComplete(trailers))
  }

  onError(error: unknown): void {
    if (this.#cancelled) return
    this.#deliver(() => this.#handler.onError(error))
  }
}

/** Closes a body stream as fetch does, settling a BYOB read that waits (undici's `readableStreamClose`). */
function closeStream(controller: ReadableByteStreamController): void {
  try {
    controller.close()
    controller.byobRequest?.respond(0)
  } catch (error) {
    // Closed already (the reader cancelled as the last bytes came): nothing to settle.
    if (!(error instanceof TypeError)) throw error
  }
}

function noop(): void {}
