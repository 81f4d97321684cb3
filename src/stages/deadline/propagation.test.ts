import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../testing/manual-clock.js'
import {
  DEADLINE_HEADER,
  inheritedDeadline,
  parseGrpcTimeout,
  parseTimeoutHeader,
  runWithDeadline,
} from './propagation.js'

describe('parseTimeoutHeader', () => {
  it('reads a non-negative integer of milliseconds', () => {
    expect(DEADLINE_HEADER).toBe('x-meshlet-timeout-ms')
    expect(parseTimeoutHeader('742')).toBe(742)
    expect(parseTimeoutHeader('0')).toBe(0)
    expect(parseTimeoutHeader(' 15000 ')).toBe(15000)
    expect(parseTimeoutHeader('999999999999999')).toBe(999_999_999_999_999)
  })

  it('rejects garbage, signs, fractions, units, lists and absent values', () => {
    for (const bad of [
      '',
      ' ',
      '-1',
      '+5',
      '1.5',
      '1e3',
      '100ms',
      '0x10',
      '10, 20',
      'abc',
      'Infinity',
      'NaN',
    ]) {
      expect(parseTimeoutHeader(bad), bad).toBeUndefined()
    }
    expect(parseTimeoutHeader('1234567890123456')).toBeUndefined() // 16 digits
    expect(parseTimeoutHeader(null)).toBeUndefined()
    expect(parseTimeoutHeader(undefined)).toBeUndefined()
  })
})

describe('parseGrpcTimeout', () => {
  it('reads every unit into milliseconds', () => {
    expect(parseGrpcTimeout('2H')).toBe(7_200_000)
    expect(parseGrpcTimeout('3M')).toBe(180_000)
    expect(parseGrpcTimeout('5S')).toBe(5000)
    expect(parseGrpcTimeout('100m')).toBe(100)
    expect(parseGrpcTimeout('2500u')).toBeCloseTo(2.5)
    expect(parseGrpcTimeout('3000000n')).toBeCloseTo(3)
    expect(parseGrpcTimeout('99999999S')).toBe(99_999_999_000)
    expect(parseGrpcTimeout('0m')).toBe(0)
  })

  it('rejects garbage: no unit, unknown unit, more than 8 digits, no digits, signs', () => {
    for (const bad of [
      '',
      '100',
      'm',
      '10s',
      '10ms',
      '10 m',
      '-5S',
      '1.5S',
      '123456789m',
      'abcS',
      '5SS',
      'S5',
    ]) {
      expect(parseGrpcTimeout(bad), bad).toBeUndefined()
    }
    expect(parseGrpcTimeout(null)).toBeUndefined()
    expect(parseGrpcTimeout(undefined)).toBeUndefined()
  })
})

describe('runWithDeadline and inheritedDeadline', () => {
  it('is Infinity outside any scope', () => {
    expect(inheritedDeadline(new ManualClock())).toBe(Number.POSITIVE_INFINITY)
  })

  it('holds the deadline through awaits, and ends with the scope', async () => {
    const clock = new ManualClock({ start: 1000 })
    const seen = await runWithDeadline(
      300,
      async () => {
        await clock.advance(100)
        return inheritedDeadline(clock)
      },
      clock,
    )
    expect(seen).toBe(1300)
    expect(inheritedDeadline(clock)).toBe(Number.POSITIVE_INFINITY)
  })

  it('keeps the earlier deadline when scopes nest, whichever is inner', () => {
    const clock = new ManualClock()
    runWithDeadline(
      100,
      () => {
        runWithDeadline(500, () => expect(inheritedDeadline(clock)).toBe(100), clock)
        runWithDeadline(40, () => expect(inheritedDeadline(clock)).toBe(40), clock)
        expect(inheritedDeadline(clock)).toBe(100)
      },
      clock,
    )
  })

  it('adds no limit for a non-finite timeout and counts a negative one as expired', () => {
    const clock = new ManualClock({ start: 50 })
    runWithDeadline(Number.POSITIVE_INFINITY, () => expect(inheritedDeadline(clock)).toBe(Infinity), clock)
    runWithDeadline(Number.NaN, () => expect(inheritedDeadline(clock)).toBe(Infinity), clock)
    runWithDeadline(-10, () => expect(inheritedDeadline(clock)).toBe(50), clock)
  })

  it('translates the deadline between clocks with different origins', async () => {
    const server = new ManualClock({ start: 10_000 })
    const mesh = new ManualClock({ start: 3 })
    await runWithDeadline(
      250,
      async () => {
        expect(inheritedDeadline(mesh)).toBe(253)
        await server.advance(50)
        // 200 ms are left on the scope's clock; the mesh's clock has not moved.
        expect(inheritedDeadline(mesh)).toBe(203)
        await mesh.advance(20)
        expect(inheritedDeadline(mesh)).toBe(223)
        // A nested scope on the other clock still keeps the earlier deadline.
        runWithDeadline(1000, () => expect(inheritedDeadline(server)).toBe(10_250), mesh)
      },
      server,
    )
  })
})
