import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isIdempotent } from './classify.js'
import { isReplayableBody, parseTarget, toHttpRequest } from './request.js'

/** What the WHATWG parser (fetch's) reads from `url`, in parseTarget's terms. */
function byParser(url: string) {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return undefined
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.hostname.startsWith('[')) return undefined
  const credentials = u.username !== '' || u.password !== ''
  u.hash = ''
  return {
    host: u.hostname,
    path: u.pathname + u.search,
    secure: u.protocol === 'https:',
    href: u.href,
    credentials,
  }
}

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
    ['http://ÜSERS/x', 'xn--sers-zra', '/x'],
    ['hTtPs://Users/x', 'users', '/x'],
    // The WHATWG parser's readings, which fetch sends: `\` ends the authority, dot segments
    // are resolved, spaces encoded, tabs and newlines dropped, `http:users` is `http://users`.
    ['http://evil.example\\@users/x', 'evil.example', '/@users/x'],
    ['http://users/a/../admin', 'users', '/admin'],
    ['http://users/a/%2e%2E/admin', 'users', '/admin'],
    ['http://users/a b?c d', 'users', '/a%20b?c%20d'],
    ['  http://us\ters/x\n', 'users', '/x'],
    ['http:/users/x', 'users', '/x'],
    ['https:users', 'users', '/'],
    ['http://0x7f.1/x', '127.0.0.1', '/x'],
    ['http://users./x', 'users.', '/x'],
    ['http://10.0.0.5:8080/x', '10.0.0.5', '/x'],
    ['http://010.0.0.5/x', '8.0.0.5', '/x'],
    ['http://1.2.3/x', '1.2.0.3', '/x'],
    ['http://256.0.0.1.x/y', '256.0.0.1.x', '/y'],
  ])('%s -> host %s, path %s, as the WHATWG parser reads it', (url, host, path) => {
    const target = parseTarget(url)
    expect(target).toMatchObject({ host, path })
    expect(target).toEqual(byParser(url))
  })

  it.each([
    'ftp://users/x',
    'data:text/plain,hi',
    'http://[::1]:80/x',
    '/relative',
    'httpx://users/x',
    'hxtp://users/x',
    'http',
    '',
    'http://users:99999/',
    'http://us ers/',
    'http://users:8o/',
  ])('leaves %s to the wrapped fetch (another scheme, or a URL the parser refuses)', (url) => {
    expect(parseTarget(url)).toBeUndefined()
  })

  it('reports credentials, which the mesh then refuses as fetch does', () => {
    expect(parseTarget('http://user:pw@users/x')).toMatchObject({ host: 'users', credentials: true })
    expect(parseTarget('http://users/x')).toMatchObject({ credentials: false })
  })

  it('reports the scheme and the URL fetch would report (no fragment, canonical form)', () => {
    expect(parseTarget('https://users/x?y#z')).toEqual({
      host: 'users',
      path: '/x?y',
      secure: true,
      href: 'https://users/x?y',
      credentials: false,
    })
    expect(parseTarget('HTTP://Users:80')?.href).toBe('http://users/')
  })

  it('reads every URL as the WHATWG parser does (differential property test)', () => {
    // Strings built from the characters that matter to an http URL's parse.
    const piece = fc.constantFrom(
      'http://',
      'https://',
      'HTTP://',
      'http:',
      'http:/',
      ' ',
      '\t',
      '\n',
      'users',
      'Users',
      'a',
      'z9',
      '1',
      '10',
      '255',
      '256',
      '00',
      '1.2.3.4',
      '127.0.0.1',
      '-',
      '_',
      '.',
      '..',
      '/',
      '\\',
      '@',
      ':',
      '80',
      '443',
      '8080',
      '99999',
      '0',
      '0x',
      '7f',
      'xn--',
      '?',
      '#',
      '%',
      '%2e',
      '%2E',
      '%41',
      "'",
      '"',
      '<',
      '{',
      '|',
      '^',
      '[',
      ']',
      '~',
      'é',
      '\u0000',
      '=',
      '&',
      ';',
      ',',
      '!',
      '*',
      '(',
      'user:pw@',
    )
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 12 }),
        fc.constantFrom('http://', 'https://', ''),
        (parts, prefix) => {
          const url = prefix + parts.join('')
          expect(parseTarget(url)).toEqual(byParser(url))
        },
      ),
      { numRuns: 20_000, seed: 22 },
    )
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
