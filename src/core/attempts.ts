/**
 * The destinations a call has already tried. The retry stage creates the list once per call;
 * the balancer records each pick in it and, on a retry, prefers an endpoint not in it, as
 * Envoy's `previous_hosts` retry predicate does. Without this, a retry after a failure lands on
 * the same bad endpoint with probability 1/n under random strategies.
 */
import { createContextKey } from './context.js'

/** Endpoints tried so far by this call (absent when the call cannot retry). */
export const ATTEMPTED = createContextKey<unknown[] | undefined>('meshlet.attempted', undefined)
