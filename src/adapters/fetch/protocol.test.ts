import { describe, expect, it } from 'vitest'
import { httpProtocol, parseRetryAfter } from './protocol.js'

describe('Retry-After', () => {
  const now = Date.UTC(2026, 0, 1, 0, 0, 0)
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2', now)).toBe(2000)
    expect(parseRetryAfter(' 0 ', now)).toBe(0)
    expect(parseRetryAfter(new Date(now + 5000).toUTCString(), now)).toBe(5000)
    expect(parseRetryAfter(new Date(now - 5000).toUTCString(), now)).toBe(0)
    expect(parseRetryAfter('soon', now)).toBeUndefined()
    expect(parseRetryAfter(null, now)).toBeUndefined()
  })

  it('is read only on 429 and 503', () => {
    const clock = { wall: () => now }
    const res = (status: number) => ({
      ok: true as const,
      value: new Response(null, { status, headers: { 'retry-after': '3' } }),
    })
    expect(httpProtocol.pushback(res(503), clock)).toBe(3000)
    expect(httpProtocol.pushback(res(429), clock)).toBe(3000)
    expect(httpProtocol.pushback(res(500), clock)).toBeUndefined()
  })
})
