/** Host names as Istio resolves them, and the names a call may use for each. */
import { describe, expect, it } from 'vitest'
import { fromIstio } from './from-istio.js'
import { callNames, resolveHost } from './hosts.js'

describe('resolveHost (pilot ResolveShortnameToFQDN)', () => {
  it('expands a dotless name in the namespace and keeps dotted names, IPs and "*" as written', () => {
    expect(resolveHost('Reviews', 'default', 'cluster.local')).toBe('reviews.default.svc.cluster.local')
    expect(resolveHost('reviews', 'prod', 'corp')).toBe('reviews.prod.svc.corp')
    expect(resolveHost('reviews.prod', 'default', 'cluster.local')).toBe('reviews.prod')
    expect(resolveHost('api.foo.com', 'default', 'cluster.local')).toBe('api.foo.com')
    expect(resolveHost('10.0.0.1', 'default', 'cluster.local')).toBe('10.0.0.1')
    expect(resolveHost('*', 'default', 'cluster.local')).toBe('*')
  })
})

describe('callNames', () => {
  const naming = { namespace: 'default', clusterDomain: 'cluster.local' }
  it('lists the Kubernetes DNS names of a service, the bare one only from its own namespace', () => {
    expect(callNames('reviews.default.svc.cluster.local', naming)).toEqual([
      'reviews',
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
    ])
    expect(callNames('reviews.prod.svc.cluster.local', naming)).toEqual([
      'reviews.prod',
      'reviews.prod.svc',
      'reviews.prod.svc.cluster.local',
    ])
  })

  it('keeps any other host whole', () => {
    expect(callNames('api.foo.com', naming)).toEqual(['api.foo.com'])
    expect(callNames('a.b.c.svc.cluster.local', naming)).toEqual(['a.b.c.svc.cluster.local'])
    expect(callNames('reviews.default.svc.other.domain', naming)).toEqual([
      'reviews.default.svc.other.domain',
    ])
  })
})

describe('names across resources', () => {
  const dr = (host: string, name: string, namespace?: string) =>
    `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: ${name}${namespace ? `, namespace: ${namespace}` : ''} }\nspec: { host: ${host} }\n---\n`

  it('gives a name another host holds to the first resource, and lists the second claim', () => {
    const { config, unsupported } = fromIstio(
      dr('reviews.prod.svc.cluster.local', 'k8s') + dr('reviews.prod', 'literal'),
      undefined,
      { namespace: 'default', defaults: 'meshlet' },
    )
    expect(config.services).toEqual({
      'reviews.prod': { hosts: ['reviews.prod.svc', 'reviews.prod.svc.cluster.local'] },
    })
    expect(unsupported).toEqual([
      'DestinationRule literal: host ("reviews.prod" already names reviews.prod.svc.cluster.local: not an alias of reviews.prod)',
      'DestinationRule literal: host (no name left for reviews.prod: left out)',
    ])
  })

  it('reads the calling namespace from the resources when they all state one, else default', () => {
    const one = fromIstio(dr('reviews', 'a', 'shop') + dr('ratings', 'b', 'shop'), undefined, {
      defaults: 'meshlet',
    })
    expect(Object.keys(one.config.services)).toEqual(['reviews', 'ratings'])
    const two = fromIstio(dr('reviews', 'a', 'shop') + dr('ratings', 'b', 'prod'), undefined, {
      defaults: 'meshlet',
    })
    expect(Object.keys(two.config.services)).toEqual(['reviews.shop', 'ratings.prod'])
  })

  it('matches a VirtualService host that is no service by each of its names', () => {
    const { config } = fromIstio(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews-v2 }`,
      undefined,
      { defaults: 'meshlet' },
    )
    expect(config.routes?.[0]?.match).toEqual([
      { host: 'reviews' },
      { host: 'reviews.default' },
      { host: 'reviews.default.svc' },
      { host: 'reviews.default.svc.cluster.local' },
    ])
  })
})
