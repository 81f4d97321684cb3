/**
 * The config of the quota stage (docs/quota.md): a service's or a route's `rateLimit` (a GCRA
 * token bucket with burst, per service, per route or per key) and a service's
 * `adaptiveThrottling` (the Google SRE book's client-side throttling). Kept in its own file so
 * that config.ts holds one line per field.
 */
import type { ConfigIssue } from '../../core/errors.js'
import {
  duration,
  integer,
  literalUnion,
  number,
  object,
  optional,
  string,
  transform,
  union,
} from './schema.js'

/** The largest rate, burst, queue and key count: 1,000,000. */
const QUOTA_MAX = 1_000_000
/** The longest period of a rate: one day. */
const MAX_PERIOD_MS = 86_400_000
/** The longest pause a server may ask for (`maxPause` ceiling): one hour. */
const MAX_PAUSE_MS = 3_600_000

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** Where a limit's key comes from: one header, or one parameter of the route's path template. */
const quotaKey = union(
  object({
    /** The header (gRPC: metadata key) whose value keys the bucket. Required. */
    header: string({
      pattern: TOKEN,
      maxLength: 256,
      expected: 'a header name (an RFC 9110 token)',
    }).describe('The header (gRPC metadata key) whose value keys the bucket.'),
  }),
  object({
    /** A `{name}` of the route's `path.template` whose value keys the bucket. Required. */
    param: string({
      pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
      maxLength: 64,
      expected: 'a path template parameter name',
    }).describe("A {name} of the route's path template whose value keys the bucket."),
  }),
).describe('Where the key of each bucket comes from: a header or a path template parameter.')

/** A `rateLimit`: `rate` calls per `period`, up to `burst` at once (docs/quota.md). */
export const rateLimit = transform(
  object({
    /** Tokens per `period`, 1..1,000,000. Required. */
    rate: integer({ min: 1, max: QUOTA_MAX }).describe('Calls allowed per period.'),
    /** The period of `rate`, 1 ms..1 day. Default `'1s'`. */
    period: optional(duration(), '1s').describe('The period of rate, 1ms..1 day.'),
    /** Calls allowed at once on a full bucket, 1..1,000,000. Default: `rate`. */
    burst: optional(integer({ min: 1, max: QUOTA_MAX })).describe('Calls allowed at once. Default: rate.'),
    /** Each key (a header's value, a path parameter's) its own bucket. Default none: one bucket. */
    key: optional(quotaKey),
    /** Buckets kept at most when keyed, 1..1,000,000 (full ones are dropped first). Default `10000`. */
    maxKeys: optional(integer({ min: 1, max: QUOTA_MAX }), 10_000).describe(
      'Buckets kept at most when keyed; full ones are dropped first.',
    ),
    /**
     * `'reject'`: a call over the limit fails at once with `RATE_LIMITED` (an HTTP 429 or gRPC
     * RESOURCE_EXHAUSTED under `meshErrors: 'respond'`); `'queue'`: it waits in FIFO order for
     * its token, within its deadline. Default `'reject'`.
     */
    action: optional(literalUnion(['reject', 'queue']), 'reject').describe(
      'reject: fail with RATE_LIMITED at once; queue: wait for a token within the deadline.',
    ),
    /** Calls that may wait per bucket (action `queue`), 0..1,000,000. Default `100`. */
    queue: optional(integer({ min: 0, max: QUOTA_MAX }), 100).describe(
      'Calls that may wait per bucket (action queue).',
    ),
    /**
     * Where the bucket lives: `'local'` (this process) or `'global'` (the mesh's quota store,
     * shared by every process; createMesh's `quotaStore`). Default `'local'`.
     */
    scope: optional(literalUnion(['local', 'global']), 'local').describe(
      'local: this process; global: the shared quota store (Redis).',
    ),
    /** The longest pause a server's Retry-After may impose, 0..1 h. Default `'1m'`. */
    maxPause: optional(duration(), '1m').describe("The longest pause a server's Retry-After may impose."),
  }),
  (r, issue) => {
    if (r.period < 1 || r.period > MAX_PERIOD_MS) {
      issue(`expected a duration from 1ms to 1d, got ${r.period}ms`, 'period')
    }
    if (r.maxPause > MAX_PAUSE_MS) issue(`expected a duration up to 1h, got ${r.maxPause}ms`, 'maxPause')
    return { ...r, burst: r.burst ?? r.rate }
  },
).describe('A rate limit: rate calls per period, up to burst at once. Default none.')

/** A service's `adaptiveThrottling` (Google SRE book, "Handling Overload"). */
export const adaptiveThrottling = transform(
  object({
    /** The multiplier K of accepted calls, 1..100: lower sheds sooner. Default `2`. */
    k: optional(number({ min: 1, max: 100 }), 2).describe('K: lower rejects sooner. Default 2.'),
    /** The sliding window of counts, 1 s..10 min. Default `'2m'` (the SRE book's). */
    window: optional(duration(), '2m').describe('The sliding window of counts, 1s..10m.'),
  }),
  (t, issue) => {
    if (t.window < 1000 || t.window > 600_000) {
      issue(`expected a duration from 1s to 10m, got ${t.window}ms`, 'window')
    }
    return t
  },
).describe('Client-side throttling (Google SRE book): reject locally as the server rejects. Default none.')

interface QuotaKeyed {
  readonly rateLimit?:
    | { readonly key?: { readonly header: string } | { readonly param: string } | undefined }
    | undefined
}

/**
 * Refuses a `key.param` that no path template supplies: a service's limit (no route, so no
 * template), or a route's whose `match` has no `path.template` with `{name}` as a whole segment.
 */
export function checkQuotaKeys(
  config: {
    readonly services: Readonly<Record<string, QuotaKeyed>>
    readonly routes: readonly (QuotaKeyed & {
      readonly match?:
        | readonly { readonly path?: { readonly template?: string | undefined } | undefined }[]
        | undefined
    })[]
  },
  issues: ConfigIssue[],
): void {
  for (const [name, s] of Object.entries(config.services)) {
    const key = s.rateLimit?.key
    if (key !== undefined && 'param' in key) {
      issues.push({
        path: `services.${name}.rateLimit.key.param`,
        message: "applies to a route's rateLimit (a path template parameter), not a service's",
      })
    }
  }
  config.routes.forEach((r, i) => {
    const key = r.rateLimit?.key
    if (key === undefined || !('param' in key)) return
    const segment = `{${key.param}}`
    const found = (r.match ?? []).some((m) => m.path?.template?.split('/').includes(segment) === true)
    if (!found) {
      issues.push({
        path: `routes[${i}].rateLimit.key.param`,
        message: `expected a parameter that a path.template of the route's match has as a whole segment ("/x/${segment}")`,
      })
    }
  })
}
