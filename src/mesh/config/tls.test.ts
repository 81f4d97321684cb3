import { describe, expect, it } from 'vitest'
import { ConfigInvalidError } from '../../core/errors.js'
import { parseConfig } from './config.js'

const KEY = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n'
const CERT = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'

const withTls = (tls: unknown) => ({ services: { users: { endpoints: ['https://127.0.0.1:8443'], tls } } })

function problems(tls: unknown): string[] {
  try {
    parseConfig(withTls(tls))
    return []
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error
    return error.issues.map((i) => `${i.path}: ${i.message}`)
  }
}

describe('services.<s>.tls', () => {
  it('resolves the defaults and a single identity to a list', () => {
    const c = parseConfig(withTls({ ca: '/etc/ca.pem', identity: 'spiffe://example.org/ns/prod/sa/users' }))
    expect(c.services.users!.tls).toEqual({
      ca: '/etc/ca.pem',
      cert: undefined,
      key: undefined,
      serverName: undefined,
      minVersion: 'TLSv1.2',
      identity: ['spiffe://example.org/ns/prod/sa/users'],
    })
    expect(parseConfig(withTls({})).services.users!.tls!.identity).toEqual([])
  })

  it('refuses cert without key, mixed identity kinds, bad SPIFFE IDs and versions, naming the path', () => {
    expect(problems({ cert: CERT })).toEqual([
      'services.users.tls.key: expected cert and key together (mTLS) or neither',
    ])
    expect(problems({ identity: ['spiffe://example.org/a', 'users.internal'] })[0]).toMatch(
      /^services\.users\.tls\.identity: expected SPIFFE IDs or DNS names, not both/,
    )
    expect(problems({ identity: 'spiffe://Example.org/a' })[0]).toMatch(/^services\.users\.tls\.identity/)
    expect(problems({ identity: 'spiffe://example.org/ns/../x' })[0]).toMatch(/"\." or "\.\."/)
    expect(problems({ identity: 'spiffe://example.org' })[0]).toMatch(/^services\.users\.tls\.identity/)
    expect(problems({ identity: [] })).toEqual([
      'services.users.tls.identity: expected at least one identity',
    ])
    expect(problems({ minVersion: 'TLSv1.1' })[0]).toMatch(/^services\.users\.tls\.minVersion/)
    expect(problems({ ca: '' })[0]).toMatch(/^services\.users\.tls\.ca/)
    expect(problems({ ca: 'a\0b' })[0]).toMatch(/^services\.users\.tls\.ca/)
  })

  it('never quotes a key, valid or not, in a config error', () => {
    const broken = KEY.replace('-----END PRIVATE KEY-----', '')
    const out = problems({ cert: CERT, key: broken, minVersion: 'x' }).join('\n')
    expect(out).toContain('services.users.tls.key')
    expect(out).not.toContain('c2VjcmV0')
    const wrongLabel = problems({ cert: CERT, key: CERT.replace(/AAAA/, 'c2VjcmV0') }).join('\n')
    expect(wrongLabel).toContain('services.users.tls.key')
    expect(wrongLabel).not.toContain('c2VjcmV0')
  })
})

describe('PEM blocks', () => {
  it('takes a key block of any algorithm, and refuses a block of another kind', () => {
    const ec = KEY.replaceAll('PRIVATE KEY', 'EC PRIVATE KEY')
    expect(problems({ ca: CERT, cert: CERT, key: ec })).toEqual([])
    expect(problems({ ca: CERT, cert: CERT, key: CERT })[0]).toMatch(/tls\.key.*"PRIVATE KEY" block/)
  })
})
