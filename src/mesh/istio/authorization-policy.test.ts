import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { compilePolicies } from '../../stages/policy/policy.js'
import { fromIstio } from './from-istio.js'

const yaml = readFileSync(
  new URL('../../../test/fixtures/istio-authz/http-traffic.yaml', import.meta.url),
  'utf8',
)

describe('fromIstio: AuthorizationPolicy and PeerAuthentication', () => {
  const { security, unsupported } = fromIstio(yaml)
  it("translates Istio's task examples into policies the evaluator compiles", () => {
    expect(security.policies.map((p) => p.name)).toEqual([
      'default/allow-nothing',
      'default/productpage-viewer',
      'default/details-viewer',
      'foo/deny-method-get',
      'foo/require-jwt',
      'foo/ip-allow',
    ])
    expect(security.policies[0]).toEqual({ name: 'default/allow-nothing', action: 'ALLOW' })
    expect(security.peerAuthentication).toEqual({ 'foo/default': 'STRICT' })
    expect(() => compilePolicies(security.policies)).not.toThrow()
  })
  it('lists what it cannot enforce and drops an ALLOW rule that lost a condition', () => {
    expect(unsupported).toContain(
      'AuthorizationPolicy productpage-viewer: selector (the guard applies to the server it wraps)',
    )
    expect(unsupported).toContain('AuthorizationPolicy ip-allow: rules[0].from[0].source.ipBlocks')
    expect(security.policies[5]?.rules).toEqual([])
  })
  it('keeps the semantics: deny-method-get denies GET without the admin token', () => {
    const deny = compilePolicies([security.policies[3] as never, { rules: [{}] }])
    const headers: Record<string, string> = { 'x-token': 'admin' }
    expect(deny.evaluate({ method: 'GET', path: '/' }).allowed).toBe(false)
    expect(deny.evaluate({ method: 'GET', path: '/', header: (n) => headers[n] }).allowed).toBe(true)
    const jwt = compilePolicies([security.policies[4] as never])
    expect(
      jwt.evaluate({
        method: 'GET',
        path: '/',
        requestPrincipal: 'testing@secure.istio.io/testing@secure.istio.io',
        claims: { groups: ['group1', 'group2'] },
      }).allowed,
    ).toBe(true)
  })
  it('refuses CUSTOM as unsupported, not imported', () => {
    const r = fromIstio(
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ext}\nspec: {action: CUSTOM, provider: {name: x}}\n',
    )
    expect(r.security.policies).toEqual([])
    expect(r.unsupported.join('\n')).toMatch(/action.*CUSTOM/)
  })
})
