import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ratioBudget, throttlingBudget, unlimitedBudget } from './budget.js'

describe('ratioBudget', () => {
  it('allows ratio x calls retries on top of the reserve', () => {
    const b = ratioBudget({ ratio: 0.2, minPerSecond: 0, ttl: 10_000 })
    for (let i = 0; i < 10; i++) b.deposit(0)
    expect([b.tryWithdraw(0), b.tryWithdraw(0), b.tryWithdraw(0)]).toEqual([true, true, false])
    expect(b.refused).toBe(1)
  })

  it('holds a reserve of minPerSecond x ttl for callers with little traffic', () => {
    const b = ratioBudget({ ratio: 0.2, minPerSecond: 2, ttl: 5000 })
    let allowed = 0
    while (b.tryWithdraw(0)) allowed++
    expect(allowed).toBe(10)
  })

  it('lets deposits and withdrawals expire after ttl (the reserve comes back)', () => {
    const b = ratioBudget({ ratio: 1, minPerSecond: 0, ttl: 1000 })
    b.deposit(0)
    expect(b.balance(900)).toBeCloseTo(1)
    expect(b.balance(1100)).toBeCloseTo(0)
    const r = ratioBudget({ ratio: 0, minPerSecond: 1, ttl: 1000 })
    expect(r.tryWithdraw(0)).toBe(true)
    expect(r.tryWithdraw(0)).toBe(false)
    expect(r.tryWithdraw(1200)).toBe(true)
  })

  it('never allows more than ratio x calls + minPerSecond x ttl within any ttl window (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 400 }), deposit: fc.boolean() }), {
          maxLength: 400,
        }),
        fc.constantFrom(0, 0.1, 0.2, 1),
        fc.integer({ min: 0, max: 5 }),
        (steps, ratio, minPerSecond) => {
          const ttl = 2000
          const b = ratioBudget({ ratio, minPerSecond, ttl })
          const deposits: number[] = []
          const withdrawals: number[] = []
          let now = 0
          for (const s of steps) {
            now += s.gap
            if (s.deposit) {
              b.deposit(now)
              deposits.push(now)
            } else if (b.tryWithdraw(now)) withdrawals.push(now)
          }
          // Slots are ttl/10 wide, so a deposit counts for at most ttl (and at least 0.9 ttl).
          for (const w of withdrawals) {
            const from = w - ttl
            const inWindow = (t: number) => t > from && t <= w
            const made = withdrawals.filter(inWindow).length
            const allowed = ratio * deposits.filter(inWindow).length + minPerSecond * (ttl / 1000)
            if (made > allowed + 1e-6) return false
          }
          return true
        },
      ),
      { seed: 42, numRuns: 300 },
    )
  })

  it('validates its options', () => {
    expect(() => ratioBudget({ ttl: 500 })).toThrow(/ttl: expected 1000..60000 ms, got 500/)
    expect(() => ratioBudget({ ratio: -1 })).toThrow(/ratio/)
  })
})

describe('throttlingBudget (gRPC retryThrottling)', () => {
  it('stops retries once tokens fall to half, and successes bring them back', () => {
    const b = throttlingBudget({ maxTokens: 10, tokenRatio: 0.5 })
    for (let i = 0; i < 4; i++) b.record('retryable')
    expect(b.tokens).toBe(6)
    expect(b.tryWithdraw(0)).toBe(true)
    b.record('failure')
    expect(b.tokens).toBe(5)
    expect(b.tryWithdraw(0)).toBe(false)
    b.record('success')
    expect(b.tokens).toBe(5.5)
    expect(b.tryWithdraw(0)).toBe(true)
    b.record('ignored')
    expect(b.tokens).toBe(5.5)
  })

  it('stays within [0, maxTokens]', () => {
    const b = throttlingBudget({ maxTokens: 2, tokenRatio: 1 })
    for (let i = 0; i < 5; i++) b.record('success')
    expect(b.tokens).toBe(2)
    for (let i = 0; i < 5; i++) b.record('failure')
    expect(b.tokens).toBe(0)
  })
})

describe('unlimitedBudget', () => {
  it('always allows', () => {
    expect(unlimitedBudget.tryWithdraw(0)).toBe(true)
  })
})
