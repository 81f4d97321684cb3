/**
 * The fetch transport: sends one attempt to the endpoint the balancer chose, through the fetch
 * function the application wrapped. It is the one place that creates an `AbortSignal`, because
 * fetch needs one to close the request when the attempt is cancelled (timeout, hedge lost,
 * caller abort, mesh closed).
 */
import type { Handler } from '../../core/handler.js'
import { ENDPOINT } from '../../stages/balancer/endpoint.js'
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

/** Sends each attempt with `fetchFn` to `endpoint.address + req.path`. */
export function fetchTransport(fetchFn: typeof fetch): Handler<HttpRequest, Response> {
  return function fetchAttempt(req, ctx) {
    const endpoint = ctx.get(ENDPOINT)
    if (endpoint === undefined)
      return Promise.reject(new Error('meshlet: no endpoint chosen for this attempt'))
    const controller = new AbortController()
    const unlink = ctx.cancel.onAbort((reason) => controller.abort(reason))
    const signal = req.signal
    let link: CallerLink | undefined
    if (signal !== undefined) {
      link = { signal, listener: () => controller.abort(signal.reason) }
      signal.addEventListener('abort', link.listener, { once: true })
    }
    return fetchFn(endpoint.address + req.path, { ...req.init, signal: controller.signal }).then(
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
