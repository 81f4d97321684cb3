/**
 * The destinations a call has already tried. The retry stage creates the record once per call;
 * the balancer records each pick in it and, on a retry, prefers an endpoint not in it, as
 * Envoy's `previous_hosts` retry predicate does. Without this, a retry after a failure lands on
 * the same bad endpoint with probability 1/n under random strategies.
 */
import { createContextKey } from './context.js'

/**
 * The endpoints one call tried, in order. The first is kept in a field of its own, since most
 * calls make one attempt: an array for it would grow a 17-slot backing store on its first push,
 * about 150 bytes per call.
 */
export class Attempted {
  #first: unknown = undefined
  #more: unknown[] | undefined = undefined

  /** Whether `endpoint` was tried. */
  has(endpoint: unknown): boolean {
    return endpoint !== undefined && (this.#first === endpoint || this.#more?.includes(endpoint) === true)
  }

  /** Records a pick (an endpoint, never `undefined`). */
  add(endpoint: unknown): void {
    if (this.#first === undefined) this.#first = endpoint
    else if (this.#more === undefined) this.#more = [endpoint]
    else this.#more.push(endpoint)
  }
}

/** Endpoints tried so far by this call (absent when the call cannot retry). */
export const ATTEMPTED = createContextKey<Attempted | undefined>('meshlet.attempted', undefined)
