/**
 * What the protocol-neutral stages need from HTTP: replayability, server pushback
 * (`Retry-After` on 429 and 503, in seconds or as an HTTP date, as undici reads it) and how to
 * release a response that will not reach the caller.
 */
import type { Outcome, Protocol } from '../../core/outcome.js'
import { errorKind } from './classify.js'
import type { HttpRequest } from './request.js'
import { releaseResponse } from './transport.js'

/** Parses a `Retry-After` value into a delay in ms from `nowWall` (epoch ms), or `undefined`. */
export function parseRetryAfter(value: string | null, nowWall: number): number | undefined {
  if (value === null) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowWall)
}

/** The HTTP {@link Protocol}. */
export const httpProtocol: Protocol<HttpRequest, Response> = {
  canReplay: (req) => req.replayable,
  pushback(outcome: Outcome<Response>, clock) {
    if (!outcome.ok) return undefined
    const status = outcome.value.status
    if (status !== 429 && status !== 503) return undefined
    return parseRetryAfter(outcome.value.headers.get('retry-after'), clock.wall())
  },
  discard(res) {
    releaseResponse(res)
    if (res.body !== null && !res.bodyUsed) res.body.cancel().catch(() => {})
  },
  // Envoy's gateway errors: 502, 503, 504, and the local-origin failures it maps to 503 (a
  // connection that failed or was reset) and 504 (a timeout) when they are not counted apart.
  gatewayFailure(outcome) {
    if (outcome.ok) return outcome.value.status >= 502 && outcome.value.status <= 504
    const kind = errorKind(outcome.error)
    return kind === 'connect-failure' || kind === 'reset' || kind === 'refused-stream' || kind === 'timeout'
  },
}
