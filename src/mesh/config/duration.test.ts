/** Tests of durations: what is accepted, what each stands for in milliseconds, what is refused. */
import { describe, expect, expectTypeOf, it } from 'vitest'
import { DURATION_PATTERN, type Duration, toMilliseconds } from './duration.js'

describe('toMilliseconds', () => {
  it('takes a finite non-negative number as milliseconds', () => {
    expect(toMilliseconds(0)).toBe(0)
    expect(toMilliseconds(250)).toBe(250)
    expect(toMilliseconds(1.5)).toBe(1.5)
    expect(Object.is(toMilliseconds(-0), 0)).toBe(true)
  })

  it('converts strings with a unit', () => {
    expect(toMilliseconds('250ms')).toBe(250)
    expect(toMilliseconds('2s')).toBe(2000)
    expect(toMilliseconds('1.5s')).toBe(1500)
    expect(toMilliseconds('1.1s')).toBe(1100)
    expect(toMilliseconds('.5s')).toBe(500)
    expect(toMilliseconds('1m')).toBe(60_000)
    expect(toMilliseconds('1h')).toBe(3_600_000)
    expect(toMilliseconds('0ms')).toBe(0)
  })

  it("accepts '0' as the one string without a unit", () => {
    expect(toMilliseconds('0')).toBe(0)
    expect(toMilliseconds('250')).toBeUndefined()
  })

  it('refuses what is not a duration', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) expect(toMilliseconds(bad)).toBeUndefined()
    for (const bad of [
      '',
      'fast',
      '-1s',
      '2 s',
      ' 2s',
      '2S',
      '1e3ms',
      '2d',
      '1.s',
      's',
      `${'9'.repeat(400)}h`,
    ]) {
      expect(toMilliseconds(bad), bad).toBeUndefined()
    }
  })

  it('shares its pattern with the JSON Schema, which has no flags', () => {
    expect(DURATION_PATTERN.flags).toBe('')
    expect(new RegExp(DURATION_PATTERN.source).test('250ms')).toBe(true)
  })

  it('types the strings people write', () => {
    expectTypeOf<'250ms'>().toExtend<Duration>()
    expectTypeOf<'1.5s'>().toExtend<Duration>()
    expectTypeOf<'0'>().toExtend<Duration>()
    expectTypeOf<100>().toExtend<Duration>()
    expectTypeOf<string>().toExtend<Duration>()
    expectTypeOf<boolean>().not.toExtend<Duration>()
  })
})
