/**
 * The circuit breaker's state machine, apart from the pipeline stage that drives it (cockatiel's
 * `IBreaker` and resilience4j's `CircuitBreakerStateMachine` in one small class). It decides
 * from outcomes fed to it with their time; it holds no timer (open -> half-open happens on the
 * first call after `halfOpenAfter`), so ten thousand breakers cost ten thousand small objects.
 *
 * Triggers, each optional: failures in a row; a failure rate, and a slow-call rate
 * (resilience4j's `slowCallRateThreshold`), over the last N calls or the last N ms, once the
 * window holds `minimumCalls`. Half-open admits `halfOpenProbes` calls and closes after
 * `successThreshold` successes; a failed probe reopens it for longer each time (x
 * `backoffFactor`, capped), as Envoy's ejection time grows with repeated ejections.
 */
import type { Verdict } from '../../core/outcome.js'

/** The state of a breaker; a plain value that can be saved and restored. */
export type BreakerState =
  | { readonly kind: 'closed' }
  /** Failing fast until `until` (clock ms); `opens` counts opens since it last closed. */
  | { readonly kind: 'open'; readonly until: number; readonly opens: number }
  /** Letting probes through: `admitted` so far, `succeeded` of them. */
  | {
      readonly kind: 'half-open'
      readonly opens: number
      readonly admitted: number
      readonly succeeded: number
    }
  /** Held open by hand until {@link CircuitBreaker.reset}. */
  | { readonly kind: 'isolated' }

/** The name of a state. */
export type BreakerStateKind = BreakerState['kind']

/** Options of {@link CircuitBreaker}; all durations in ms. */
export interface CircuitBreakerOptions {
  /** Open after this many failures in a row; `0` turns it off. Default `5`. */
  readonly consecutiveFailures?: number
  /** Open at this failure rate, percent; `0` turns it off. Default `0`. */
  readonly failureRateThreshold?: number
  /** Open at this share of slow calls, percent; `0` turns it off. Default `0`. */
  readonly slowCallRateThreshold?: number
  /** A call at least this long is slow. Default `5000`. */
  readonly slowCallDuration?: number
  /** Rates over the last `windowSize` calls (`'count'`) or ms (`'time'`). Default `'count'`. */
  readonly windowType?: 'count' | 'time'
  /** Calls, or ms. Default `100` calls, or `60_000` ms. */
  readonly windowSize?: number
  /** Calls the window must hold before a rate may open the breaker. Default `20`. */
  readonly minimumCalls?: number
  /** Time open before probing. Default `5000`. */
  readonly halfOpenAfter?: number
  /** Growth of the open time on each reopen without closing. Default `2`. */
  readonly backoffFactor?: number
  /** Cap of the open time. Default `60_000`. */
  readonly maxHalfOpenAfter?: number
  /** Calls admitted while half-open. Default `1`. */
  readonly halfOpenProbes?: number
  /** Successful probes that close it. Default `1`. */
  readonly successThreshold?: number
}

/**
 * What {@link CircuitBreaker.tryAcquire} grants: `Denied` (open, isolated, or half-open with
 * every probe out), a normal `Call` (closed), or a half-open `Probe`.
 */
export const Permit = { Denied: 0, Call: 1, Probe: 2 } as const
/** One of the values of {@link Permit}. */
export type Permit = (typeof Permit)[keyof typeof Permit]

const TIME_SLOTS = 10

/** A window of recent calls: counts of calls, failures and slow calls. */
interface Window {
  record(now: number, failed: boolean, slow: boolean): void
  totals(now: number): { calls: number; failures: number; slow: number }
  clear(): void
}

class CountWindow implements Window {
  readonly #flags: Uint8Array // bit 1: failed, bit 2: slow
  #next = 0
  #size = 0
  #failures = 0
  #slow = 0

  constructor(size: number) {
    this.#flags = new Uint8Array(size)
  }

  record(_now: number, failed: boolean, slow: boolean): void {
    const n = this.#flags.length
    if (this.#size === n) {
      const old = this.#flags[this.#next]!
      if (old & 1) this.#failures--
      if (old & 2) this.#slow--
    } else this.#size++
    this.#flags[this.#next] = (failed ? 1 : 0) | (slow ? 2 : 0)
    if (failed) this.#failures++
    if (slow) this.#slow++
    this.#next = (this.#next + 1) % n
  }

  totals(): { calls: number; failures: number; slow: number } {
    return { calls: this.#size, failures: this.#failures, slow: this.#slow }
  }

  clear(): void {
    this.#next = this.#size = this.#failures = this.#slow = 0
  }
}

class TimeWindow implements Window {
  readonly #width: number
  readonly #calls = new Uint32Array(TIME_SLOTS)
  readonly #failures = new Uint32Array(TIME_SLOTS)
  readonly #slow = new Uint32Array(TIME_SLOTS)
  #index = 0
  #slotStart = Number.NaN

  constructor(size: number) {
    this.#width = size / TIME_SLOTS
  }

  #roll(now: number): void {
    if (Number.isNaN(this.#slotStart)) {
      this.#slotStart = now
      return
    }
    const passed = Math.floor((now - this.#slotStart) / this.#width)
    if (passed <= 0) return
    for (let i = 0; i < Math.min(passed, TIME_SLOTS); i++) {
      this.#index = (this.#index + 1) % TIME_SLOTS
      this.#calls[this.#index] = this.#failures[this.#index] = this.#slow[this.#index] = 0
    }
    this.#slotStart += passed * this.#width
  }

  record(now: number, failed: boolean, slow: boolean): void {
    this.#roll(now)
    this.#calls[this.#index]!++
    if (failed) this.#failures[this.#index]!++
    if (slow) this.#slow[this.#index]!++
  }

  totals(now: number): { calls: number; failures: number; slow: number } {
    this.#roll(now)
    let calls = 0
    let failures = 0
    let slow = 0
    for (let i = 0; i < TIME_SLOTS; i++) {
      calls += this.#calls[i]!
      failures += this.#failures[i]!
      slow += this.#slow[i]!
    }
    return { calls, failures, slow }
  }

  clear(): void {
    this.#calls.fill(0)
    this.#failures.fill(0)
    this.#slow.fill(0)
  }
}

const CLOSED: BreakerState = Object.freeze({ kind: 'closed' })
const ISOLATED: BreakerState = Object.freeze({ kind: 'isolated' })

/** A circuit breaker; see the module comment. */
export class CircuitBreaker {
  #state: BreakerState = CLOSED
  #consecutive = 0
  readonly #window: Window | undefined
  readonly #o: Required<CircuitBreakerOptions>
  /** Called on every state change (the stage turns it into a `circuit-state` event). */
  onTransition: ((from: BreakerStateKind, to: BreakerStateKind) => void) | undefined = undefined

  constructor(options: CircuitBreakerOptions = {}) {
    const windowType = options.windowType ?? 'count'
    this.#o = {
      consecutiveFailures: options.consecutiveFailures ?? 5,
      failureRateThreshold: options.failureRateThreshold ?? 0,
      slowCallRateThreshold: options.slowCallRateThreshold ?? 0,
      slowCallDuration: options.slowCallDuration ?? 5000,
      windowType,
      windowSize: options.windowSize ?? (windowType === 'count' ? 100 : 60_000),
      minimumCalls: options.minimumCalls ?? 20,
      halfOpenAfter: options.halfOpenAfter ?? 5000,
      backoffFactor: options.backoffFactor ?? 2,
      maxHalfOpenAfter: options.maxHalfOpenAfter ?? 60_000,
      halfOpenProbes: options.halfOpenProbes ?? 1,
      successThreshold: Math.min(options.successThreshold ?? 1, options.halfOpenProbes ?? 1),
    }
    const rates = this.#o.failureRateThreshold > 0 || this.#o.slowCallRateThreshold > 0
    if (rates) {
      this.#window =
        windowType === 'count'
          ? new CountWindow(Math.max(1, Math.round(this.#o.windowSize)))
          : new TimeWindow(this.#o.windowSize)
    }
  }

  /** The state now (an open breaker whose time is up reads as open until the next call). */
  get state(): BreakerState {
    return this.#state
  }

  /**
   * Asks to make a call at `now`: a normal call when closed, a probe when half-open (moving from
   * open to half-open when its time is up), or denied.
   */
  tryAcquire(now: number): Permit {
    const s = this.#state
    switch (s.kind) {
      case 'closed':
        return Permit.Call
      case 'isolated':
        return Permit.Denied
      case 'open':
        if (now < s.until) return Permit.Denied
        this.#set({ kind: 'half-open', opens: s.opens, admitted: 1, succeeded: 0 })
        return Permit.Probe
      case 'half-open':
        if (s.admitted >= this.#o.halfOpenProbes) return Permit.Denied
        this.#state = { ...s, admitted: s.admitted + 1 }
        return Permit.Probe
    }
  }

  /** When a denied call may next be let through (clock ms); `Infinity` when isolated. */
  retryAt(now: number): number {
    const s = this.#state
    if (s.kind === 'open') return s.until
    if (s.kind === 'isolated') return Number.POSITIVE_INFINITY
    return now
  }

  /**
   * Whether {@link record} reads its `duration` and `now` for `verdict`: always with a rate
   * window, else only for a verdict that can open the breaker. A caller may skip its clock read
   * otherwise (the stage does, on every success through a consecutive-failures breaker).
   */
  needsTime(verdict: Verdict): boolean {
    return this.#window !== undefined || (verdict !== 'success' && verdict !== 'ignored')
  }

  /** Feeds the outcome of a call made with `permit`, that took `duration` ms, at `now`. */
  record(permit: Permit, verdict: Verdict, duration: number, now: number): void {
    if (permit === Permit.Denied) return
    const s = this.#state
    if (permit === Permit.Probe) {
      if (s.kind !== 'half-open') return // reset or isolated meanwhile
      if (verdict === 'ignored') {
        this.#state = { ...s, admitted: s.admitted - 1 }
        return
      }
      if (verdict === 'success') {
        const succeeded = s.succeeded + 1
        if (succeeded >= this.#o.successThreshold) this.#close()
        else this.#state = { ...s, succeeded }
      } else {
        this.#open(now, s.opens + 1)
      }
      return
    }
    if (s.kind !== 'closed' || verdict === 'ignored') return
    const failed = verdict !== 'success'
    if (failed) this.#consecutive++
    else this.#consecutive = 0
    if (this.#o.consecutiveFailures > 0 && this.#consecutive >= this.#o.consecutiveFailures) {
      this.#open(now, 1)
      return
    }
    const w = this.#window
    if (w === undefined) return
    w.record(now, failed, duration >= this.#o.slowCallDuration)
    const t = w.totals(now)
    if (t.calls < this.#o.minimumCalls) return
    const o = this.#o
    if (
      (o.failureRateThreshold > 0 && (t.failures * 100) / t.calls >= o.failureRateThreshold) ||
      (o.slowCallRateThreshold > 0 && (t.slow * 100) / t.calls >= o.slowCallRateThreshold)
    ) {
      this.#open(now, 1)
    }
  }

  /** Holds the breaker open until {@link reset}: every call fails fast. */
  isolate(): void {
    this.#set(ISOLATED)
  }

  /** Closes the breaker and forgets its history. */
  reset(): void {
    this.#close()
  }

  /**
   * The state as plain data, with open time made relative to `now` (`remaining` ms), so it can
   * be saved and restored in another process whose clock has another origin.
   */
  snapshot(now: number): BreakerSnapshot {
    const s = this.#state
    if (s.kind === 'open') return { kind: 'open', opens: s.opens, remaining: Math.max(0, s.until - now) }
    if (s.kind === 'half-open') return { kind: 'half-open', opens: s.opens }
    return { kind: s.kind }
  }

  /** Restores a {@link snapshot} taken elsewhere (a half-open one restarts its probes). */
  restore(snapshot: BreakerSnapshot, now: number): void {
    switch (snapshot.kind) {
      case 'closed':
        this.#close()
        return
      case 'isolated':
        this.isolate()
        return
      case 'open':
        this.#set({ kind: 'open', opens: snapshot.opens ?? 1, until: now + (snapshot.remaining ?? 0) })
        return
      case 'half-open':
        this.#set({ kind: 'half-open', opens: snapshot.opens ?? 1, admitted: 0, succeeded: 0 })
    }
  }

  #open(now: number, opens: number): void {
    const o = this.#o
    const wait = Math.min(o.maxHalfOpenAfter, o.halfOpenAfter * o.backoffFactor ** (opens - 1))
    this.#set({ kind: 'open', until: now + wait, opens })
  }

  #close(): void {
    this.#consecutive = 0
    this.#window?.clear()
    this.#set(CLOSED)
  }

  #set(next: BreakerState): void {
    const from = this.#state.kind
    this.#state = next
    if (from !== next.kind) this.onTransition?.(from, next.kind)
  }
}

/** A breaker's state as plain data; see {@link CircuitBreaker.snapshot}. */
export interface BreakerSnapshot {
  readonly kind: BreakerStateKind
  /** Opens since it last closed (open and half-open). */
  readonly opens?: number
  /** Ms left open (open only). */
  readonly remaining?: number
}
