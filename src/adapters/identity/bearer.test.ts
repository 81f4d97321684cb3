import { describe, expect, it } from 'vitest'
import { neverCancelled } from '../../core/cancel.js'
import { systemClock } from '../../core/clock.js'
import { Context } from '../../core/context.js'
import { systemRandom } from '../../core/random.js'
import type { HttpRequest } from '../fetch/request.js'
import { bearerOptions, hasHeader, httpBearer } from './bearer.js'
import { TokenSource } from './token-provider.js'

const request = (headers: HeadersInit | undefined): HttpRequest => ({
  service: 'users',
  path: '/',
  method: 'GET',
  init: headers === undefined ? {} : { headers },
  replayable: true,
  signal: undefined,
  propagateDeadline: false,
})

function run(headers: HeadersInit | undefined) {
  let sent: HttpRequest | undefined
  const source = new TokenSource({ service: 'users', source: 'provider tokens.users', provider: () => 'tok' })
  const handler = httpBearer(
    async (req) => {
      sent = req
      return new Response('ok')
    },
    source,
    bearerOptions(undefined),
  )
  return {
    sent: () => sent,
    go: () => handler(request(headers), Context.root(systemClock, systemRandom, neverCancelled, undefined)),
  }
}

describe('httpBearer', () => {
  it('adds the header last to a copy of a plain record, keeping own keys such as __proto__', async () => {
    const given = JSON.parse('{"accept":"a","__proto__":"p"}') as Record<string, string>
    const r = run(given)
    await r.go()
    const headers = r.sent()!.init.headers as Record<string, string>
    expect(Object.keys(headers)).toEqual(['accept', '__proto__', 'authorization'])
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype)
    expect(headers.authorization).toBe('Bearer tok')
    expect(Object.keys(given)).toEqual(['accept', '__proto__']) // the caller's object is untouched
  })

  it('leaves a request with its own authorization as it is, in any header form', async () => {
    for (const headers of [
      { AUTHORIZATION: 'x' },
      [['Authorization', 'x']],
      new Headers({ authorization: 'x' }),
    ]) {
      const r = run(headers as HeadersInit)
      await r.go()
      expect(r.sent()!.init.headers).toBe(headers)
    }
    expect(hasHeader(undefined, 'authorization')).toBe(false)
  })

  it('turns other header forms into Headers with the token set', async () => {
    const r = run([['x-a', '1']])
    await r.go()
    const h = r.sent()!.init.headers as Headers
    expect(h.get('authorization')).toBe('Bearer tok')
    expect(h.get('x-a')).toBe('1')
  })
})
