/**
 * What the quota stage reads of an HTTP answer: whether the server refused the call for load
 * (429, 503) and the pause it asked for: `Retry-After` (seconds or an HTTP date, read by the
 * retry stage's own {@link parseRetryAfter}), else the rate-limit headers saying nothing remains
 * (`RateLimit-Remaining: 0` with `RateLimit-Reset`, the `X-` forms, or the IETF draft's
 * structured `RateLimit: ...;r=0;t=5`).
 *
 * Only a 429 or 503 is read: `Headers.get` costs ~0.4 us on Node 20, and reading four headers of
 * every answer would cost a limited service ~1.5 us per call, fifteen times the limit itself. A
 * server that says `remaining: 0` on its last 200 is heard at its first 429 instead: one call
 * more (decision D57).
 */
import type { ServerSignals } from '../../stages/quota/quota.js'
import { parseRetryAfter } from './protocol.js'

const DIGITS = /^\d{1,10}$/
/** A reset past this is read as epoch seconds (as GitHub's `X-RateLimit-Reset`), not a delta. */
const EPOCH_SECONDS = 1_000_000_000

/** Seconds, or epoch seconds past 2001, to ms from `wall`; `undefined` when unreadable. */
function resetMs(value: string | null, wall: number): number | undefined {
  if (value === null) return undefined
  const text = value.trim()
  if (!DIGITS.test(text)) return undefined
  const n = Number(text)
  return n >= EPOCH_SECONDS ? Math.max(0, n * 1000 - wall) : n * 1000
}

/** The structured `RateLimit` field (draft-ietf-httpapi-ratelimit-headers): `r` (or `remaining`) and `t` (or `reset`). */
function structured(value: string, wall: number): number | undefined {
  const remaining = /(?:^|[;,\s])(?:r|remaining)=(\d{1,10})(?=$|[;,\s])/.exec(value)
  if (remaining === null || remaining[1] !== '0') return undefined
  const reset = /(?:^|[;,\s])(?:t|reset)=(\d{1,10})(?=$|[;,\s])/.exec(value)
  return reset === null ? undefined : resetMs(reset[1]!, wall)
}

/** The pause the rate-limit headers of `headers` ask for, when they say nothing remains. */
export function rateLimitPause(headers: Headers, wall: number): number | undefined {
  for (const prefix of ['ratelimit-', 'x-ratelimit-']) {
    const remaining = headers.get(`${prefix}remaining`)
    if (remaining !== null && remaining.trim() === '0') {
      const ms = resetMs(headers.get(`${prefix}reset`), wall)
      if (ms !== undefined) return ms
    }
  }
  const field = headers.get('ratelimit')
  return field === null || field.length > 1024 ? undefined : structured(field, wall)
}

/** The HTTP {@link ServerSignals}. */
export const httpQuotaSignals: ServerSignals = {
  rejected(ok, result) {
    if (!ok) return false
    const status = (result as Response).status
    return status === 429 || status === 503
  },
  pause(ok, result, clock) {
    if (!ok) return undefined
    const res = result as Response
    if (res.status !== 429 && res.status !== 503) return undefined
    const wall = clock.wall()
    return parseRetryAfter(res.headers.get('retry-after'), wall) ?? rateLimitPause(res.headers, wall)
  },
}
