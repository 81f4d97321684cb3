import { describe, expect, it } from 'vitest'
import {
  type AccessRequest,
  compilePolicies,
  DenialCounter,
  istioStringMatcher,
  namespaceOf,
  PolicyError,
} from './policy.js'

const req = (over: Partial<AccessRequest> = {}): AccessRequest => ({ method: 'GET', path: '/', ...over })
const SLEEP = 'spiffe://cluster.local/ns/foo/sa/sleep'

describe('compilePolicies: evaluation order', () => {
  it('allows everything when there are no policies', () => {
    const d = compilePolicies([]).evaluate(req())
    expect(d).toMatchObject({ allowed: true, reason: 'no-policy' })
  })
  it('denies everything with an ALLOW policy without rules (allow-nothing)', () => {
    expect(compilePolicies([{ name: 'allow-nothing' }]).evaluate(req()).allowed).toBe(false)
  })
  it('allows everything with an ALLOW rule without fields', () => {
    expect(compilePolicies([{ rules: [{}] }]).evaluate(req()).allowed).toBe(true)
  })
  it('checks DENY before ALLOW', () => {
    const p = compilePolicies([
      { name: 'allow-all', rules: [{}] },
      { name: 'deny-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    ])
    expect(p.evaluate(req({ path: '/admin/x' }))).toMatchObject({
      allowed: false,
      policy: 'deny-admin',
      rule: 0,
    })
    expect(p.evaluate(req({ path: '/public' }))).toMatchObject({ allowed: true, policy: 'allow-all' })
  })
  it('denies when ALLOW policies exist and none matches', () => {
    const p = compilePolicies([{ rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }])
    expect(p.evaluate(req({ method: 'POST' }))).toMatchObject({
      allowed: false,
      reason: 'no-allow-match',
      rule: -1,
    })
  })
  it('DENY policies alone allow what they do not match', () => {
    const p = compilePolicies([{ action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }])
    expect(p.evaluate(req()).allowed).toBe(true)
    expect(p.evaluate(req({ method: 'DELETE' })).allowed).toBe(false)
  })
  it('AUDIT rules never change the decision', () => {
    const p = compilePolicies([{ action: 'AUDIT', rules: [{}] }])
    expect(p.evaluate(req()).allowed).toBe(true)
  })
  it('returns the same decision object per rule (no allocation per call)', () => {
    const p = compilePolicies([{ rules: [{}] }])
    expect(p.evaluate(req())).toBe(p.evaluate(req({ path: '/x' })))
  })
})

describe('compilePolicies: fields', () => {
  const one = (rule: object) => compilePolicies([{ rules: [rule as never] }])
  it('principals match with or without spiffe://, prefix and suffix', () => {
    expect(
      one({ from: [{ source: { principals: ['cluster.local/ns/foo/sa/sleep'] } }] }).evaluate(
        req({ principal: SLEEP }),
      ).allowed,
    ).toBe(true)
    expect(
      one({ from: [{ source: { principals: [SLEEP] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(true)
    expect(
      one({ from: [{ source: { principals: ['*/sa/sleep'] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(true)
    expect(
      one({ from: [{ source: { principals: ['cluster.local/ns/bar/*'] } }] }).evaluate(
        req({ principal: SLEEP }),
      ).allowed,
    ).toBe(false)
  })
  it('a rule that needs a principal denies a caller without one', () => {
    const p = one({ from: [{ source: { principals: ['*'] } }] })
    expect(p.evaluate(req()).allowed).toBe(false)
    expect(p.needsPrincipal).toBe(true)
  })
  it('notPrincipals and notNamespaces', () => {
    expect(
      one({ from: [{ source: { notPrincipals: ['*/sa/sleep'] } }] }).evaluate(req({ principal: SLEEP }))
        .allowed,
    ).toBe(false)
    expect(
      one({ from: [{ source: { notNamespaces: ['foo'] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(false)
    expect(
      one({ from: [{ source: { notNamespaces: ['bar'] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(true)
  })
  it('namespaces read from the principal', () => {
    expect(namespaceOf(SLEEP)).toBe('foo')
    expect(namespaceOf('example.org/workload')).toBeUndefined()
    expect(
      one({ from: [{ source: { namespaces: ['foo'] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(true)
    expect(
      one({ from: [{ source: { namespaces: ['bar'] } }] }).evaluate(req({ principal: SLEEP })).allowed,
    ).toBe(false)
  })
  it('requestPrincipals and notRequestPrincipals', () => {
    const p = one({ from: [{ source: { requestPrincipals: ['issuer.example/*'] } }] })
    expect(p.needsToken).toBe(true)
    expect(p.evaluate(req({ requestPrincipal: 'issuer.example/alice' })).allowed).toBe(true)
    expect(p.evaluate(req()).allowed).toBe(false)
    const n = one({ from: [{ source: { notRequestPrincipals: ['issuer.example/bob'] } }] })
    expect(n.evaluate(req({ requestPrincipal: 'issuer.example/bob' })).allowed).toBe(false)
    expect(n.evaluate(req({ requestPrincipal: 'issuer.example/alice' })).allowed).toBe(true)
  })
  it('from entries are alternatives; fields in one source must all hold', () => {
    const p = one({
      from: [{ source: { namespaces: ['bar'] } }, { source: { principals: [SLEEP], namespaces: ['foo'] } }],
    })
    expect(p.evaluate(req({ principal: SLEEP })).allowed).toBe(true)
    const q = one({ from: [{ source: { principals: [SLEEP], namespaces: ['bar'] } }] })
    expect(q.evaluate(req({ principal: SLEEP })).allowed).toBe(false)
  })
  it('methods, notMethods, paths, notPaths, hosts, notHosts', () => {
    const op = (operation: object) => one({ to: [{ operation }] })
    expect(op({ methods: ['GET', 'HEAD'] }).evaluate(req({ method: 'HEAD' })).allowed).toBe(true)
    expect(op({ methods: ['GET'] }).evaluate(req({ method: 'get' })).allowed).toBe(false)
    expect(op({ notMethods: ['POST'] }).evaluate(req({ method: 'POST' })).allowed).toBe(false)
    expect(op({ paths: ['/api/*'] }).evaluate(req({ path: '/api/x' })).allowed).toBe(true)
    expect(op({ paths: ['*/info'] }).evaluate(req({ path: '/a/info' })).allowed).toBe(true)
    expect(op({ paths: ['/info'] }).evaluate(req({ path: '/info/x' })).allowed).toBe(false)
    expect(op({ notPaths: ['/private*'] }).evaluate(req({ path: '/private/a' })).allowed).toBe(false)
    expect(op({ hosts: ['*.example.com'] }).evaluate(req({ host: 'API.example.com' })).allowed).toBe(true)
    expect(op({ notHosts: ['api.example.com'] }).evaluate(req({ host: 'api.example.com' })).allowed).toBe(
      false,
    )
  })
  it('matches gRPC methods as paths', () => {
    const p = one({ to: [{ operation: { methods: ['POST'], paths: ['/helloworld.Greeter/*'] } }] })
    expect(p.evaluate(req({ method: 'POST', path: '/helloworld.Greeter/SayHello' })).allowed).toBe(true)
    expect(p.evaluate(req({ method: 'POST', path: '/helloworld.Other/SayHello' })).allowed).toBe(false)
  })
  it('when: headers, claims (nested, lists), source, notValues', () => {
    const headers: Record<string, string> = { 'x-token': 'admin' }
    const r = req({
      principal: SLEEP,
      requestPrincipal: 'iss/alice',
      claims: { iss: 'https://issuer', groups: ['dev', 'ops'], nested: { role: 'admin' }, aud: 'svc' },
      header: (n) => headers[n],
    })
    const w = (when: object[]) => one({ when }).evaluate(r).allowed
    expect(w([{ key: 'request.headers[X-Token]', values: ['admin'] }])).toBe(true)
    expect(w([{ key: 'request.headers[x-token]', notValues: ['admin'] }])).toBe(false)
    expect(w([{ key: 'request.auth.claims[iss]', values: ['https://issuer'] }])).toBe(true)
    expect(w([{ key: 'request.auth.claims[groups]', values: ['ops'] }])).toBe(true)
    expect(w([{ key: 'request.auth.claims[nested][role]', values: ['admin'] }])).toBe(true)
    expect(w([{ key: 'request.auth.claims[missing]', values: ['*'] }])).toBe(false)
    expect(w([{ key: 'request.auth.audiences', values: ['svc'] }])).toBe(true)
    expect(w([{ key: 'request.auth.principal', values: ['iss/*'] }])).toBe(true)
    expect(w([{ key: 'source.principal', values: [SLEEP] }])).toBe(true)
    expect(
      w([
        { key: 'source.namespace', values: ['foo'] },
        { key: 'request.headers[x-token]', values: ['nope'] },
      ]),
    ).toBe(false)
  })
})

describe('compilePolicies: refusals', () => {
  it('refuses unknown fields naming the path', () => {
    expect(() =>
      compilePolicies([{ rules: [{ from: [{ source: { ipBlocks: ['1.2.3.4'] } }] }] } as never]),
    ).toThrow(/policies\[0\]\.rules\[0\]\.from\[0\]\.source\.ipBlocks: is not supported/)
    expect(() => compilePolicies([{ action: 'CUSTOM' } as never])).toThrow(PolicyError)
    expect(() => compilePolicies([{ rules: [{ when: [{ key: 'source.ip', values: ['x'] }] }] }])).toThrow(
      /not a supported condition key/,
    )
    expect(() => compilePolicies([{ rules: [{ when: [{ key: 'request.headers[a]' }] }] }])).toThrow(
      /values or notValues/,
    )
    expect(() => compilePolicies([{ rules: [{ to: [{ operation: { paths: [''] } }] }] }])).toThrow(
      /paths\[0\]/,
    )
  })
})

describe('istioStringMatcher', () => {
  it('reads * as any non-empty value, prefix and suffix', () => {
    expect(istioStringMatcher('*')('')).toBe(false)
    expect(istioStringMatcher('*')('x')).toBe(true)
    expect(istioStringMatcher('a*')('abc')).toBe(true)
    expect(istioStringMatcher('*c')('abc')).toBe(true)
    expect(istioStringMatcher('abc')('abcd')).toBe(false)
  })
})

describe('DenialCounter', () => {
  it('counts denials by policy and rule', () => {
    const p = compilePolicies([
      {
        name: 'deny',
        action: 'DENY',
        rules: [{ to: [{ operation: { paths: ['/a'] } }] }, { to: [{ operation: { paths: ['/b'] } }] }],
      },
      { name: 'allow', rules: [{ to: [{ operation: { paths: ['/a', '/b', '/c'] } }] }] },
    ])
    const c = new DenialCounter()
    for (const path of ['/a', '/b', '/b', '/d', '/c']) {
      const d = p.evaluate(req({ path }))
      if (!d.allowed) c.add(d)
    }
    expect(c.snapshot()).toEqual({ 'deny#0': 1, 'deny#1': 2, '(no ALLOW rule matched)': 1 })
  })
})
