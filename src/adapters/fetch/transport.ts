/**
 * The fetch transport: sends one attempt to the endpoint the balancer chose, through the fetch
 * function the application wrapped. It is the one place that creates an `AbortSignal`, because
 * fetch needs one to close the request when the attempt is cancelled (timeout, hedge lost,
 * caller abort, mesh closed). It also tells the upstream how long is left: see
 * {@link fetchTransport}.
 */
import type { Handler } from '../../core/handler.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
import { DEADLINE_HEADER } from '../../stages/deadline/propagation.js'
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
    if (key.length !== DEADLINE_HEADER.length || key.toLowerCase() !== DEADLINE_HEADER)
      copy[key] = record[key]!
  }
  copy[DEADLINE_HEADER] = value
  return copy
}

/**
 * Sends each attempt with `fetchFn` to `endpoint.address + req.path`.
 *
 * When `req.propagateDeadline` is true (the default) and the call has a deadline, each attempt
 * carries `x-meshlet-timeout-ms`: the whole milliseconds left at the moment it is sent (at
 * least `0`), so the upstream can give up when the caller will (see `withInboundDeadline`). A
 * value the caller set in that header is replaced by the mesh's own.
 */
export function fetchTransport(fetchFn: typeof fetch): Handler<HttpRequest, Response> {
  return function fetchAttempt(req, ctx) {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint === undefined)
      return Promise.reject(new Error('meshlet: no endpoint chosen for this attempt'))
    const controller = new AbortController()
    const init: RequestInit = { ...req.init, signal: controller.signal }
    if (req.propagateDeadline && ctx.deadline !== Number.POSITIVE_INFINITY) {
      const left = Math.max(0, Math.floor(ctx.deadline - ctx.clock.now()))
      init.headers = withDeadlineHeader(req.init.headers, String(left))
    }
    const unlink = ctx.cancel.onAbort((reason) => controller.abort(reason))
    const signal = req.signal
    let link: CallerLink | undefined
    if (signal !== undefined) {
      link = { signal, listener: () => controller.abort(signal.reason) }
      signal.addEventListener('abort', link.listener, { once: true })
    }
    let sent: Promise<Response>
    try {
      sent = fetchFn(endpoint.address + req.path, init)
    } catch (error) {
      // A fetch that throws instead of rejecting (a bad header): the same clean-up as a rejection.
      sent = Promise.reject(error)
    }
    return sent.then(
      (res) => {
        unlink()
        if (link !== undefined) {
          if (res.body === null) {
            unlinkCaller(link)
          } else {
            links.set(res, link)
            finalizer.register(res, link, link)
          }
        }
        return res
      },
      (error: unknown) => {
        unlink()
        if (link !== undefined) unlinkCaller(link)
        throw error
      },
    )
  }
}
