import { describe, expect, it } from 'vitest'
import { isIdempotent } from './classify.js'
import { isReplayableBody, parseTarget, toHttpRequest } from './request.js'

describe('parseTarget', () => {
  it.each([
    ['http://users/api/users/42?x=1', 'users', '/api/users/42?x=1'],
    ['https://Users:8443', 'users', '/'],
    ['http://users?q=1', 'users', '/?q=1'],
    ['http://u:p@users/a#frag', 'users', '/a'],
    ['HTTP://users/a', 'users', '/a'],
    ['http://127.0.0.1:8080/x', '127.0.0.1', '/x'],
    ['http://users#frag', 'users', '/'],
    ['http://users?q=1#f', 'users', '/?q=1'],
    ['HTTPS://USERS/A', 'users', '/A'],
    ['http://U:P@Users:80/x', 'users', '/x'],
    ['http://a@b@Users:80/x', 'users', '/x'],
    ['http://users:8080', 'users', '/'],
    ['http://ÜSERS/x', 'üsers', '/x'],
    ['hTtPs://Users/x', 'users', '/x'],
  ])('%s -> host %s, path %s', (url, host, path) => {
    expect(parseTarget(url)).toEqual({ host, path })
  })

  it.each([
    'ftp://users/x',
    'data:text/plain,hi',
    'http://[::1]:80/x',
    '/relative',
    'httpx://users/x',
    'http:/users/x',
    'https:users',
    'hxtp://users/x',
    'http',
    '',
  ])('leaves %s alone', (url) => {
    expect(parseTarget(url)).toBeUndefined()
  })
})

describe('toHttpRequest', () => {
  it('drops the signal from the options but keeps it aside', () => {
    const ac = new AbortController()
    const req = toHttpRequest('users', '/x', 'http://users/x', {
      method: 'post',
      body: 'hi',
      signal: ac.signal,
    })
    expect(req.method).toBe('POST')
    expect(req.signal).toBe(ac.signal)
    expect('signal' in req.init).toBe(false)
    expect(req.replayable).toBe(true)
  })

  it('flattens a Request: no body is replayable, a body is a stream and is not', () => {
    const get = toHttpRequest(
      'users',
      '/x',
      new Request('http://users/x', { headers: { a: '1' } }),
      undefined,
    )
    expect(get.method).toBe('GET')
    expect(new Headers(get.init.headers).get('a')).toBe('1')
    expect(get.replayable).toBe(true)
    const post = toHttpRequest(
      'users',
      '/x',
      new Request('http://users/x', { method: 'POST', body: 'b' }),
      undefined,
    )
    expect(post.replayable).toBe(false)
  })

  it('lets init override the Request, as fetch does', () => {
    const req = toHttpRequest('users', '/x', new Request('http://users/x', { method: 'PUT' }), {
      method: 'DELETE',
    })
    expect(req.method).toBe('DELETE')
  })
})

describe('isReplayableBody', () => {
  it('accepts values fetch can send again, refuses streams', () => {
    for (const b of [
      undefined,
      null,
      's',
      new Uint8Array(1),
      new ArrayBuffer(1),
      new Blob(['x']),
      new URLSearchParams('a=1'),
      new FormData(),
    ]) {
      expect(isReplayableBody(b)).toBe(true)
    }
    expect(isReplayableBody(new ReadableStream())).toBe(false)
  })
})

describe('isIdempotent', () => {
  const req = (method: string, headers?: HeadersInit) =>
    toHttpRequest('s', '/', 'http://s/', { method, ...(headers ? { headers } : {}) })
  it('follows the method, or an Idempotency-Key header', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])
      expect(isIdempotent(req(m))).toBe(true)
    expect(isIdempotent(req('POST'))).toBe(false)
    expect(isIdempotent(req('PATCH'))).toBe(false)
    expect(isIdempotent(req('POST', { 'Idempotency-Key': 'k1' }))).toBe(true)
    expect(isIdempotent(req('POST', [['idempotency-key', 'k1']]))).toBe(true)
  })
})
