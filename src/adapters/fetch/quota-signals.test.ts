import { describe, expect, it } from 'vitest'
import { httpQuotaSignals, rateLimitPause } from './quota-signals.js'

const wall = Date.UTC(2026, 0, 1)
const clock = { wall: () => wall }
const res = (status: number, headers: Record<string, string>) => new Response(null, { status, headers })

describe('httpQuotaSignals', () => {
  it('reads Retry-After in seconds or as a date on a 429 or 503', () => {
    expect(httpQuotaSignals.pause(true, res(429, { 'retry-after': '1' }), clock)).toBe(1000)
    const date = new Date(wall + 5000).toUTCString()
    expect(httpQuotaSignals.pause(true, res(503, { 'retry-after': date }), clock)).toBe(5000)
  })

  it('reads nothing of other statuses, nor of errors', () => {
    expect(
      httpQuotaSignals.pause(
        true,
        res(200, { 'retry-after': '1', 'ratelimit-remaining': '0', 'ratelimit-reset': '3' }),
        clock,
      ),
    ).toBeUndefined()
    expect(httpQuotaSignals.pause(false, new Error('reset'), clock)).toBeUndefined()
    expect(httpQuotaSignals.rejected(true, res(200, {}))).toBe(false)
    expect(httpQuotaSignals.rejected(true, res(429, {}))).toBe(true)
  })

  it('falls back to the RateLimit headers when nothing remains', () => {
    expect(
      httpQuotaSignals.pause(true, res(429, { 'ratelimit-remaining': '0', 'ratelimit-reset': '3' }), clock),
    ).toBe(3000)
    expect(
      httpQuotaSignals.pause(true, res(429, { 'ratelimit-remaining': '5', 'ratelimit-reset': '3' }), clock),
    ).toBeUndefined()
  })
})

describe('rateLimitPause', () => {
  it('reads X-RateLimit-Reset as epoch seconds when it is one (GitHub)', () => {
    const h = new Headers({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(wall / 1000 + 7) })
    expect(rateLimitPause(h, wall)).toBe(7000)
  })

  it("reads the IETF draft's structured RateLimit field", () => {
    expect(rateLimitPause(new Headers({ ratelimit: '"default";r=0;t=4' }), wall)).toBe(4000)
    expect(rateLimitPause(new Headers({ ratelimit: 'limit=10, remaining=0, reset=2' }), wall)).toBe(2000)
    expect(rateLimitPause(new Headers({ ratelimit: '"default";r=3;t=4' }), wall)).toBeUndefined()
  })

  it('ignores unreadable values', () => {
    expect(
      rateLimitPause(new Headers({ 'ratelimit-remaining': '0', 'ratelimit-reset': '-1' }), wall),
    ).toBeUndefined()
    expect(
      rateLimitPause(new Headers({ 'ratelimit-remaining': '0', 'ratelimit-reset': '1e9' }), wall),
    ).toBeUndefined()
  })
})
