import { describe, expect, it } from 'vitest'
import { isMeshError } from '../../core/errors.js'
import { ManualClock } from '../../testing/manual-clock.js'
import { jwtExpiry, TokenSource } from './token-provider.js'

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
/** A JWT-shaped token expiring at `expMs` (wall-clock ms). */
const jwt = (expMs: number, tag = 'a') =>
  `${b64({ alg: 'ES256' })}.${b64({ sub: tag, exp: expMs / 1000 })}.c2ln`

/** A source over a fake wall clock and a scripted provider. */
function fixture(refresh = Number.POSITIVE_INFINITY) {
  let now = 1_000_000
  const answers: Array<() => Promise<string> | string> = []
  let asked = 0
  const source = new TokenSource({
    service: 'users',
    source: 'provider tokens.users',
    provider: () => {
      asked++
      const next = answers.shift()
      if (next === undefined) throw new Error('no answer scripted')
      return next()
    },
    refresh,
    now: () => now,
  })
  return {
    source,
    answer: (fn: () => Promise<string> | string) => answers.push(fn),
    advance: (ms: number) => {
      now += ms
    },
    get now() {
      return now
    },
    get asked() {
      return asked
    },
  }
}

const settle = () => new Promise((r) => setImmediate(r))

describe('TokenSource', () => {
  it('reads exp without verifying, and nothing from what is not a JWT', () => {
    expect(jwtExpiry(jwt(2_000_000))).toBe(2_000_000)
    expect(jwtExpiry('opaque')).toBeUndefined()
    expect(jwtExpiry('a.b.c.d')).toBeUndefined()
    expect(jwtExpiry(`${b64({})}.${b64({ exp: 'soon' })}.x`)).toBeUndefined()
    expect(jwtExpiry(`${b64({})}.!!notjson.x`)).toBeUndefined()
  })

  it('refreshes at 80% of the lifetime, in the background, while the old token is still sent', async () => {
    const f = fixture()
    f.answer(() => jwt(f.now + 100_000, 'one'))
    expect(await f.source.get()).toBe(jwt(1_100_000, 'one'))
    f.advance(79_000)
    expect(f.source.current()).toBe(jwt(1_100_000, 'one'))
    expect(f.asked).toBe(1)
    f.advance(2000) // 81%: due
    f.answer(() => jwt(f.now + 100_000, 'two'))
    expect(f.source.current()).toBe(jwt(1_100_000, 'one'))
    await settle()
    expect(f.asked).toBe(2)
    expect(f.source.current()).toBe(jwt(1_181_000, 'two'))
  })

  it('shares one refresh between concurrent callers (single-flight)', async () => {
    const f = fixture()
    let release!: (t: string) => void
    f.answer(() => new Promise<string>((r) => (release = r)))
    const waits = [f.source.get(), f.source.get(), f.source.get()]
    release(jwt(f.now + 60_000))
    const tokens = await Promise.all(waits)
    expect(new Set(tokens).size).toBe(1)
    expect(f.asked).toBe(1)
  })

  it('keeps the old token while refreshes fail, retries at most once a second, then fails at expiry', async () => {
    const f = fixture()
    f.answer(() => jwt(f.now + 10_000))
    const token = await f.source.get()
    f.advance(9000) // due
    f.answer(() => Promise.reject(new Error('endpoint down')))
    expect(f.source.current()).toBe(token)
    await settle()
    expect(f.asked).toBe(2)
    f.advance(500)
    expect(f.source.current()).toBe(token) // no new try within a second of the failure
    await settle()
    expect(f.asked).toBe(2)
    f.advance(600) // expired now; the last try failed 1.1 s ago
    f.answer(() => Promise.reject(new Error('still down')))
    const error = await f.source.get().catch((e: unknown) => e)
    expect(isMeshError(error, 'TOKEN_UNAVAILABLE')).toBe(true)
    expect((error as Error).message).toMatch(
      /service users \(provider tokens\.users\): the provider failed: still down; the previous token expired at/,
    )
    // Within a second of that failure the same reason is answered without asking again.
    const again = await f.source.get().catch((e: unknown) => e)
    expect(isMeshError(again, 'TOKEN_UNAVAILABLE')).toBe(true)
    expect(f.asked).toBe(3)
    f.advance(1000)
    f.answer(() => jwt(f.now + 10_000, 'back'))
    expect(await f.source.get()).toBe(jwt(f.now + 10_000, 'back'))
  })

  it('re-reads a token without exp every refresh interval', async () => {
    const f = fixture(5000)
    f.answer(() => 'opaque-1')
    expect(await f.source.get()).toBe('opaque-1')
    f.advance(5000)
    f.answer(() => 'opaque-2')
    expect(f.source.current()).toBe('opaque-1')
    await settle()
    expect(f.source.current()).toBe('opaque-2')
  })

  it('refuses an expired, empty, oversized or header-unsafe token, naming why and not what', async () => {
    for (const [given, why] of [
      [() => jwt(f0() - 1), /expired at/],
      [() => '  \n', /empty/],
      [() => 'a'.repeat(20_000), /20000 characters/],
      [() => 'abc def', /space, a control or a non-ASCII/],
      [() => 42 as unknown as string, /returned number/],
      [() => `${b64({})}.${b64({ exp: -1e300 })}.x`, /expired at -1e\+303ms since the epoch/],
    ] as const) {
      const f = fixture()
      f.answer(given)
      const error = await f.source.get().catch((e: unknown) => e)
      expect(isMeshError(error, 'TOKEN_UNAVAILABLE')).toBe(true)
      expect((error as Error).message).toMatch(why)
      expect((error as Error).message).not.toContain('abc def')
    }
  })

  it('ends a refresh in flight at close, clearing its timer', async () => {
    const clock = new ManualClock()
    const source = new TokenSource({
      service: 'users',
      source: 'provider tokens.users',
      provider: () => new Promise<string>(() => {}),
      clock,
    })
    const waiting = source.get().catch((e: unknown) => e)
    expect(clock.nextTimerAt()).toBeDefined()
    source.close()
    expect(((await waiting) as Error).message).toMatch(/the mesh was closed/)
    expect(clock.nextTimerAt()).toBeUndefined()
  })

  it('bounds a provider that never answers by its timeout', async () => {
    const clock = new ManualClock()
    const source = new TokenSource({
      service: 'users',
      source: 'provider tokens.users',
      provider: () => new Promise<string>(() => {}),
      timeout: 20,
      clock,
    })
    const waiting = source.get().catch((e: unknown) => e)
    await clock.advance(20)
    expect(((await waiting) as Error).message).toMatch(/no token within 20ms/)
  })
})

/** The fixture's starting time (fixture() starts every clock there). */
function f0(): number {
  return 1_000_000
}
