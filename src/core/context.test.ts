import { describe, expect, it } from 'vitest'
import { ManualClock } from '../testing/manual-clock.js'
import { neverCancelled } from './cancel.js'
import { Context, createContextKey } from './context.js'
import { seededRandom } from './random.js'

describe('Context', () => {
  const clock = new ManualClock({ start: 100 })
  const ctx = Context.create({ clock, random: seededRandom(1), cancel: neverCancelled })
  const A = createContextKey('a', 0)
  const B = createContextKey<string | undefined>('b', undefined)

  it('reads defaults, and derived values without changing the parent', () => {
    const child = ctx.with(A, 1).with(B, 'x')
    expect(ctx.get(A)).toBe(0)
    expect(child.get(A)).toBe(1)
    expect(child.get(B)).toBe('x')
    expect(child.with(A, 2).get(A)).toBe(2)
    expect(child.get(A)).toBe(1)
  })

  it('carries values through withDeadline and withAttempt', () => {
    const child = ctx.with(A, 5).withDeadline(150).withAttempt(2)
    expect(child.get(A)).toBe(5)
    expect(child.deadline).toBe(150)
    expect(child.attempt).toBe(2)
    expect(child.remaining()).toBe(50)
    expect(ctx.deadline).toBe(Number.POSITIVE_INFINITY)
    expect(ctx.remaining()).toBe(Number.POSITIVE_INFINITY)
  })
})
