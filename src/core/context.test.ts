import { inspect } from 'node:util'
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

  it('reads the clock once for the start: derived contexts keep it, attempts and restarts read it anew', async () => {
    const c = new ManualClock({ start: 10 })
    const root = Context.create({ clock: c, random: seededRandom(1), cancel: neverCancelled })
    expect(root.startedAt).toBe(10)
    expect(
      Context.create({ clock: c, random: seededRandom(1), cancel: neverCancelled, startedAt: 3 }).startedAt,
    ).toBe(3)
    await c.advance(5)
    expect(root.with(A, 1).withDeadline(100).withCancel(neverCancelled).startedAt).toBe(10)
    expect(root.withAttempt(1).startedAt).toBe(15)
    expect(root.restarted().startedAt).toBe(15)
    expect(root.restarted().get(A)).toBe(0)
  })

  it('JSON and util.inspect show its properties, never its entries (D35)', () => {
    const TOKEN = createContextKey<string | undefined>('token', undefined)
    const BIG = createContextKey<bigint>('big', 0n)
    const withEntries = ctx.with(TOKEN, 'secret-token').with(BIG, 10n)
    expect(withEntries.get(TOKEN)).toBe('secret-token')
    const json = JSON.stringify(withEntries)
    expect(JSON.parse(json)).toMatchObject({ deadline: null, attempt: 0, startedAt: 100 })
    expect(json).not.toContain('secret-token')
    const shown = inspect(withEntries)
    expect(shown).toMatch(/^Context \{/)
    expect(shown).toContain('startedAt: 100')
    expect(shown).not.toContain('secret-token')
  })
})
