/**
 * Deadline propagation: the time left of a request being served travels, through an
 * `AsyncLocalStorage` scope, to every meshed call made while serving it, and on to the next hop
 * in a header.
 *
 * This is Finagle's `Deadline` broadcast context and gRPC's `grpc-timeout`: without it, a server
 * whose caller has already given up keeps calling its own upstreams with their full timeouts,
 * and a slow hop deep in the graph holds work that nobody waits for. The header carries a
 * relative time (milliseconds left when the request was sent), never an absolute timestamp, so
 * that clock skew between hosts does not matter; only the transit time is unaccounted for.
 * Within a process the scope holds an absolute time on the clock that created it, translated
 * onto the reader's clock, so a `ManualClock` test and the system clock never mix their origins.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { type Clock, systemClock } from '../../core/clock.js'

/** What a deadline scope holds: an absolute time on `clock`. */
interface DeadlineScope {
  readonly deadline: number
  readonly clock: Clock
}

const scope = new AsyncLocalStorage<DeadlineScope>()
/** Whether any scope was ever entered: until then no call reads the storage at all. */
let scoped = false

/**
 * The HTTP header that carries the time left, in whole milliseconds measured when the attempt
 * was sent (`x-meshlet-timeout-ms: 742`). The fetch transport sets it; {@link parseTimeoutHeader}
 * reads it.
 */
export const DEADLINE_HEADER = 'x-meshlet-timeout-ms'

/**
 * Runs `fn` with a deadline `timeoutMs` from now (on `clock`, default the system clock) that
 * every meshed call made inside `fn`, synchronously or after any `await`, inherits. Inside
 * another scope, the earlier of the two deadlines is kept: a scope can shorten the time left,
 * never extend it. A non-finite `timeoutMs` adds no limit (`fn` runs in the current scope); a
 * negative one counts as `0` (already expired: meshed calls then fail with `TIMEOUT` at once).
 *
 * @example
 * ```ts
 * import { runWithDeadline, withMesh } from 'meshlet'
 * const fetch2 = withMesh(fetch, { services: { users: { endpoints: ['http://127.0.0.1:8081'] } } })
 * // Every meshed call made inside has at most 500 ms, whatever its service's own timeout.
 * const res = await runWithDeadline(500, () => fetch2('http://users/api/users/42'))
 * ```
 */
export function runWithDeadline<T>(timeoutMs: number, fn: () => T, clock: Clock = systemClock): T {
  if (!(timeoutMs < Number.POSITIVE_INFINITY)) return fn()
  const deadline = clock.now() + Math.max(timeoutMs, 0)
  if (inheritedDeadline(clock) <= deadline) return fn()
  scoped = true
  return scope.run({ deadline, clock }, fn)
}

/**
 * The deadline inherited from the enclosing {@link runWithDeadline} scope, as an absolute time
 * on `clock`'s timeline (`clock.now() + time left`), or `Infinity` outside any scope. One
 * `AsyncLocalStorage.getStore()` when there is no scope or the clocks are the same object.
 */
export function inheritedDeadline(clock: Clock): number {
  if (!scoped) return Number.POSITIVE_INFINITY
  const store = scope.getStore()
  if (store === undefined) return Number.POSITIVE_INFINITY
  if (store.clock === clock) return store.deadline
  return clock.now() + (store.deadline - store.clock.now())
}

const MAX_MS_DIGITS = 15 // below Number.MAX_SAFE_INTEGER

/**
 * Parses an `x-meshlet-timeout-ms` (or `x-envoy-expected-rq-timeout-ms`) value: a non-negative
 * integer of milliseconds, surrounding whitespace allowed. Anything else (a sign, a fraction,
 * a unit, a list, more than 15 digits, empty) is `undefined`, so that garbage never becomes a
 * deadline.
 */
export function parseTimeoutHeader(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined
  const s = value.trim()
  if (s.length === 0 || s.length > MAX_MS_DIGITS) return undefined
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
  }
  return Number(s)
}

/** Milliseconds per unit of `grpc-timeout`. */
const GRPC_UNITS: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
}

/**
 * Parses a `grpc-timeout` value into milliseconds (fractional for `u` and `n`): at most 8 ASCII
 * digits then one unit, `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds
 * or `n` nanoseconds (`100m`, `5S`), as the gRPC over HTTP/2 spec defines it. Anything else is
 * `undefined`.
 */
export function parseGrpcTimeout(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined) return undefined
  const s = value.trim()
  const digits = s.length - 1
  if (digits < 1 || digits > 8) return undefined
  const perUnit = GRPC_UNITS[s.charAt(digits)]
  if (perUnit === undefined) return undefined
  for (let i = 0; i < digits; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return undefined
  }
  return Number(s.slice(0, digits)) * perUnit
}
