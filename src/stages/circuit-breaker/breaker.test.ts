import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Verdict } from '../../core/outcome.js'
import { CircuitBreaker, type CircuitBreakerOptions, Permit } from './breaker.js'

const call = (b: CircuitBreaker, verdict: Verdict, now: number, duration = 0) => {
  const p = b.tryAcquire(now)
  if (p !== Permit.Denied) b.record(p, verdict, duration, now + duration)
  return p
}

describe('CircuitBreaker', () => {
  it('opens at the failure that makes consecutiveFailures in a row; a success resets the count', () => {
    const b = new CircuitBreaker({ consecutiveFailures: 3 })
    call(b, 'failure', 0)
    call(b, 'retryable', 1)
    call(b, 'success', 2)
    call(b, 'failure', 3)
    call(b, 'failure', 4)
    expect(b.state.kind).toBe('closed')
    call(b, 'failure', 5)
    expect(b.state).toMatchObject({ kind: 'open', opens: 1 })
  })

  it('ignores ignored outcomes (cancellations) entirely', () => {
    const b = new CircuitBreaker({ consecutiveFailures: 2 })
    call(b, 'failure', 0)
    call(b, 'ignored', 1)
    call(b, 'failure', 2)
    expect(b.state.kind).toBe('open')
  })

  it('fails fast while open, then admits exactly halfOpenProbes probes after halfOpenAfter', () => {
    const b = new CircuitBreaker({
      consecutiveFailures: 1,
      halfOpenAfter: 1000,
      halfOpenProbes: 2,
      successThreshold: 2,
    })
    call(b, 'failure', 0)
    expect(b.tryAcquire(999)).toBe(Permit.Denied)
    expect(b.retryAt(999)).toBe(1000)
    expect(b.tryAcquire(1000)).toBe(Permit.Probe)
    expect(b.tryAcquire(1002)).toBe(Permit.Probe)
    expect(b.tryAcquire(1003)).toBe(Permit.Denied)
    b.record(Permit.Probe, 'success', 5, 1010)
    expect(b.state.kind).toBe('half-open')
    b.record(Permit.Probe, 'success', 5, 1011)
    expect(b.state.kind).toBe('closed')
  })

  it('reopens on a failed probe for longer each time, up to the cap', () => {
    const b = new CircuitBreaker({
      consecutiveFailures: 1,
      halfOpenAfter: 100,
      backoffFactor: 2,
      maxHalfOpenAfter: 350,
    })
    call(b, 'failure', 0)
    const untils: number[] = []
    let now = 0
    for (let i = 0; i < 4; i++) {
      const s = b.state
      if (s.kind !== 'open') throw new Error('expected open')
      untils.push(s.until - now)
      now = s.until
      call(b, 'failure', now, 0)
    }
    expect(untils).toEqual([100, 200, 350, 350])
  })

  it('a cancelled probe frees its slot for another probe', () => {
    const b = new CircuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 10 })
    call(b, 'failure', 0)
    expect(b.tryAcquire(10)).toBe(Permit.Probe)
    expect(b.tryAcquire(10)).toBe(Permit.Denied)
    b.record(Permit.Probe, 'ignored', 1, 11)
    expect(b.tryAcquire(11)).toBe(Permit.Probe)
  })

  it('opens on a failure rate over a count window once it holds minimumCalls', () => {
    const b = new CircuitBreaker({
      consecutiveFailures: 0,
      failureRateThreshold: 50,
      windowSize: 10,
      minimumCalls: 10,
    })
    for (let i = 0; i < 9; i++) call(b, i % 2 === 0 ? 'failure' : 'success', i)
    expect(b.state.kind).toBe('closed') // 5 of 9, but below minimumCalls
    call(b, 'success', 9)
    expect(b.state.kind).toBe('open') // 5 of 10 = 50%
  })

  it('forgets calls that left a time window', () => {
    const b = new CircuitBreaker({
      consecutiveFailures: 0,
      failureRateThreshold: 50,
      windowType: 'time',
      windowSize: 10_000,
      minimumCalls: 4,
    })
    call(b, 'failure', 0)
    call(b, 'failure', 1)
    call(b, 'failure', 2)
    // 11 s later the three failures are gone: 1 failure of 4 calls is 25%.
    call(b, 'success', 11_000)
    call(b, 'success', 11_001)
    call(b, 'success', 11_002)
    call(b, 'failure', 11_003)
    expect(b.state.kind).toBe('closed')
  })

  it('opens on the share of slow calls (resilience4j slowCallRateThreshold)', () => {
    const b = new CircuitBreaker({
      consecutiveFailures: 0,
      slowCallRateThreshold: 50,
      slowCallDuration: 100,
      windowSize: 4,
      minimumCalls: 4,
    })
    call(b, 'success', 0, 150)
    call(b, 'success', 200, 10)
    call(b, 'success', 300, 120)
    expect(b.state.kind).toBe('closed')
    call(b, 'success', 500, 10)
    expect(b.state.kind).toBe('open')
  })

  it('isolate holds it open until reset; reset closes and forgets', () => {
    const b = new CircuitBreaker({ consecutiveFailures: 2 })
    b.isolate()
    expect(b.tryAcquire(1e12)).toBe(Permit.Denied)
    expect(b.retryAt(0)).toBe(Number.POSITIVE_INFINITY)
    b.reset()
    call(b, 'failure', 0)
    expect(b.state.kind).toBe('closed')
  })

  it('exports its state as plain data and restores it against another clock', () => {
    const a = new CircuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 1000 })
    call(a, 'failure', 5000)
    const saved = JSON.parse(JSON.stringify(a.snapshot(5400)))
    expect(saved).toEqual({ kind: 'open', opens: 1, remaining: 600 })
    const b = new CircuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 1000 })
    b.restore(saved, 0)
    expect(b.tryAcquire(599)).toBe(Permit.Denied)
    expect(b.tryAcquire(600)).toBe(Permit.Probe)
  })

  it('reports every transition', () => {
    const b = new CircuitBreaker({ consecutiveFailures: 1, halfOpenAfter: 10 })
    const seen: string[] = []
    b.onTransition = (from, to) => seen.push(`${from}>${to}`)
    call(b, 'failure', 0)
    call(b, 'success', 10)
    b.isolate()
    b.reset()
    expect(seen).toEqual([
      'closed>open',
      'open>half-open',
      'half-open>closed',
      'closed>isolated',
      'isolated>closed',
    ])
  })
})

/** A naive reference model of the breaker, written for clarity, not speed. */
class Model {
  state: 'closed' | 'open' | 'half-open' = 'closed'
  history: boolean[] = [] // failed?, closed calls only
  until = 0
  opens = 0
  admitted = 0
  succeeded = 0
  constructor(
    readonly o: Required<
      Pick<
        CircuitBreakerOptions,
        | 'consecutiveFailures'
        | 'failureRateThreshold'
        | 'windowSize'
        | 'minimumCalls'
        | 'halfOpenAfter'
        | 'halfOpenProbes'
        | 'successThreshold'
      >
    >,
  ) {}
  open(now: number) {
    this.opens++
    this.state = 'open'
    this.until = now + Math.min(60_000, this.o.halfOpenAfter * 2 ** (this.opens - 1))
  }
  acquire(now: number): number {
    if (this.state === 'closed') return 1
    if (this.state === 'open') {
      if (now < this.until) return 0
      this.state = 'half-open'
      this.admitted = 1
      this.succeeded = 0
      return 2
    }
    if (this.admitted >= this.o.halfOpenProbes) return 0
    this.admitted++
    return 2
  }
  record(permit: number, verdict: Verdict, now: number) {
    if (permit === 0) return
    if (permit === 2) {
      if (this.state !== 'half-open') return
      if (verdict === 'ignored') this.admitted--
      else if (verdict === 'success') {
        if (++this.succeeded >= this.o.successThreshold) {
          this.state = 'closed'
          this.history = []
          this.opens = 0
        }
      } else this.open(now)
      return
    }
    if (this.state !== 'closed' || verdict === 'ignored') return
    this.history.push(verdict !== 'success')
    let run = 0
    for (let i = this.history.length - 1; i >= 0 && this.history[i]; i--) run++
    if (this.o.consecutiveFailures > 0 && run >= this.o.consecutiveFailures) return this.open(now)
    if (this.o.failureRateThreshold <= 0) return
    const w = this.history.slice(-this.o.windowSize)
    if (w.length < this.o.minimumCalls) return
    if ((w.filter(Boolean).length * 100) / w.length >= this.o.failureRateThreshold) this.open(now)
  }
}

describe('CircuitBreaker properties', () => {
  const verdict = fc.constantFrom<Verdict>('success', 'failure', 'retryable', 'ignored')
  const step = fc.record({ gap: fc.integer({ min: 0, max: 300 }), verdict, settle: fc.boolean() })
  const opts = fc.record({
    consecutiveFailures: fc.integer({ min: 0, max: 5 }),
    failureRateThreshold: fc.constantFrom(0, 30, 50, 80),
    windowSize: fc.integer({ min: 1, max: 12 }),
    minimumCalls: fc.integer({ min: 1, max: 12 }),
    halfOpenAfter: fc.integer({ min: 1, max: 500 }),
    halfOpenProbes: fc.integer({ min: 1, max: 4 }),
    successThreshold: fc.integer({ min: 1, max: 4 }),
  })

  it('after any sequence of outcomes, its state matches the reference model', () => {
    fc.assert(
      fc.property(opts, fc.array(step, { maxLength: 200 }), (o, steps) => {
        const options = { ...o, successThreshold: Math.min(o.successThreshold, o.halfOpenProbes) }
        const b = new CircuitBreaker({ ...options, maxHalfOpenAfter: 60_000, backoffFactor: 2 })
        const m = new Model(options)
        let now = 0
        const pending: Array<{ p: number; q: number; verdict: Verdict }> = []
        for (const s of steps) {
          now += s.gap
          const p = b.tryAcquire(now)
          const q = m.acquire(now)
          if (p !== q) return false
          if (p !== 0) pending.push({ p, q, verdict: s.verdict })
          // Settle some calls later, out of order, as concurrent calls do.
          if (s.settle && pending.length > 0) {
            const c = pending.splice(s.gap % pending.length, 1)[0]!
            b.record(c.p as Permit, c.verdict, 1, now)
            m.record(c.q, c.verdict, now)
          }
          if (b.state.kind !== m.state) return false
        }
        return true
      }),
      { seed: 7, numRuns: 500 },
    )
  })

  it('half-open never admits more than halfOpenProbes calls at once', () => {
    fc.assert(
      fc.property(opts, fc.array(step, { maxLength: 200 }), (o, steps) => {
        const probes = o.halfOpenProbes
        const b = new CircuitBreaker({ ...o, successThreshold: Math.min(o.successThreshold, probes) })
        let now = 0
        let outstanding = 0
        const pending: Permit[] = []
        for (const s of steps) {
          now += s.gap
          const p = b.tryAcquire(now)
          if (p === Permit.Probe) outstanding++
          if (outstanding > probes) return false
          if (p !== Permit.Denied) pending.push(p)
          if (s.settle && pending.length > 0) {
            const p2 = pending.shift()!
            if (p2 === Permit.Probe) outstanding--
            b.record(p2, s.verdict, 1, now)
          }
          if (b.state.kind !== 'half-open') outstanding = 0
        }
        return true
      }),
      { seed: 11, numRuns: 500 },
    )
  })
})

describe('CircuitBreaker.needsTime', () => {
  it('asks for the time only for a rate window or a verdict that can open it', () => {
    const consecutive = new CircuitBreaker()
    expect(consecutive.needsTime('success')).toBe(false)
    expect(consecutive.needsTime('ignored')).toBe(false)
    expect(consecutive.needsTime('failure')).toBe(true)
    expect(consecutive.needsTime('retryable')).toBe(true)
    const rated = new CircuitBreaker({ failureRateThreshold: 50 })
    expect(rated.needsTime('success')).toBe(true)
    expect(rated.needsTime('ignored')).toBe(true)
  })

  it('a success recorded without the time changes nothing a timed one would not', () => {
    const timed = new CircuitBreaker({ consecutiveFailures: 2 })
    const untimed = new CircuitBreaker({ consecutiveFailures: 2 })
    for (const [b, now] of [
      [timed, 500],
      [untimed, 0],
    ] as const) {
      call(b, 'failure', 0)
      call(b, 'success', now)
      call(b, 'failure', 1000)
    }
    expect(untimed.state).toEqual(timed.state)
    expect(untimed.state.kind).toBe('closed')
  })
})
