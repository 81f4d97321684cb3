/**
 * The top-level `redis` section: the connection that global quotas (`scope: 'global'`) share,
 * with its timeout, failure policy and breaker, and lease mode (D59).
 */

import { duration, integer, literalUnion, object, optional, string } from './schema.js'

/** A Redis URL: redis:// or rediss:// (TLS), an optional user:password@, host, port and db. */
const REDIS_URL = /^rediss?:\/\/([^\s@/]+@)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?(\/[0-9]{1,2})?$/

/** Key prefix: printable, without the braces that Redis Cluster reads as a hash tag. */
const KEY_PREFIX = /^[!-z|~]*$/

/** The `redis` section's schema. */
export const redisConfig = object({
  /** The Redis URL (`redis://host:6379/0`, `rediss://` for TLS). Required. */
  url: string({
    pattern: REDIS_URL,
    maxLength: 2048,
    expected: 'a Redis URL ("redis://host:port/db" or "rediss://...")',
  }).describe('The Redis URL: redis://[user:password@]host[:port][/db], rediss:// for TLS.'),
  /** Prefix of every key meshlet writes. Default `'meshlet:'`. */
  keyPrefix: optional(
    string({ pattern: KEY_PREFIX, maxLength: 128, expected: 'printable characters without braces' }),
    'meshlet:',
  ).describe("Prefix of every key meshlet writes (no braces). Default 'meshlet:'."),
  /** How long a decision waits for Redis before `onFailure` answers it. Default 50 ms. */
  timeout: optional(duration(), 50).describe('How long a decision waits for Redis. Default 50ms.'),
  /** `'open'` admits, `'closed'` refuses with `RATE_LIMITED` when Redis cannot decide. Default `'open'`. */
  onFailure: optional(literalUnion(['open', 'closed']), 'open').describe(
    "When Redis cannot decide in time: 'open' admits, 'closed' refuses (RATE_LIMITED). Default 'open'.",
  ),
  /** The breaker around Redis: after `failures` failed decisions, skip Redis until a probe succeeds. */
  breaker: optional(
    object({
      /** Consecutive failed decisions that open it, 1 to 1000. Default 3. */
      failures: optional(integer({ min: 1, max: 1000 }), 3).describe(
        'Failed decisions that open it. Default 3.',
      ),
      /** Time before one decision probes Redis again. Default 200 ms. */
      halfOpenAfter: optional(duration(), 200).describe('Time before a probe. Default 200ms.'),
    }),
    { failures: 3, halfOpenAfter: 200 },
  ).describe('The breaker around Redis.'),
  /** Lease mode: take `tokens` per round trip and spend them in process. Default off. */
  lease: optional(
    object({
      /** Tokens per round trip, 2 to 10000; the fleet may admit processes x (tokens - 1) more. */
      tokens: integer({ min: 2, max: 10_000 }).describe('Tokens per round trip, 2 to 10000.'),
      /** How long leased tokens stay usable. Default 1 s. */
      ttl: optional(duration(), 1000).describe('How long leased tokens stay usable. Default 1s.'),
    }),
  ).describe('Lease mode (fewer round trips; a stated over-admission bound).'),
})
