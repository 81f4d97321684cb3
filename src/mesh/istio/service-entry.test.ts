/** ServiceEntries: each host a service of its own, with the endpoints the entry gives. */
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../config/config.js'
import { fromIstio } from './from-istio.js'

const se = (spec: string, name = 'external') =>
  `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: { name: ${name} }\nspec:\n${spec}`

describe('fromIstio: ServiceEntry', () => {
  it('gives STATIC endpoints, their labels, weights and named ports, to each host', () => {
    const { config, unsupported } = fromIstio(
      se(`  hosts: [api.foo.com, api.bar.com]
  ports:
  - { number: 8080, name: http, protocol: HTTP }
  resolution: STATIC
  endpoints:
  - address: 10.0.0.1
    labels: { version: v1 }
  - address: 10.0.0.2
    ports: { http: 9090 }
    weight: 3`),
      undefined,
      { defaults: 'meshlet' },
    )
    expect(unsupported).toEqual([])
    const endpoints = [
      { url: 'http://10.0.0.1:8080', labels: { version: 'v1' } },
      { url: 'http://10.0.0.2:9090', weight: 3 },
    ]
    expect(config.services).toEqual({ 'api.foo.com': { endpoints }, 'api.bar.com': { endpoints } })
    expect(() => parseConfig(config)).not.toThrow()
  })

  it('sends a DNS entry to the host itself, https for an HTTPS port, with the authority a sidecar sends', () => {
    const { config, unsupported } = fromIstio(
      se(`  hosts: [www.googleapis.com]
  ports:
  - { number: 443, name: https, protocol: HTTPS }
  - { number: 80, name: http, protocol: HTTP }
  resolution: DNS
  location: MESH_EXTERNAL`),
    )
    expect(config.services['www.googleapis.com']).toMatchObject({
      endpoints: ['https://www.googleapis.com:443'],
      authority: 'www.googleapis.com',
      timeout: 0,
    })
    expect(unsupported).toEqual([
      'ServiceEntry external: ports[1] (meshlet serves one port per service: port 443 kept)',
    ])
  })

  it('makes a GRPC port a grpc service, and lists what it cannot serve', () => {
    const grpc = fromIstio(
      se(`  hosts: [echo.internal]
  ports: [{ number: 7070, name: grpc, protocol: GRPC }]
  resolution: DNS`),
      undefined,
      { defaults: 'meshlet' },
    )
    expect(grpc.config.services['echo.internal']).toEqual({
      protocol: 'grpc',
      endpoints: ['echo.internal:7070'],
    })
    const tcp = fromIstio(
      se(`  hosts: [mongo.internal]
  addresses: [10.1.0.0/16]
  ports: [{ number: 27017, name: mongo, protocol: MONGO }]
  resolution: DNS`),
      undefined,
      { defaults: 'meshlet' },
    )
    expect(tcp.config.services['mongo.internal']).toEqual({})
    expect(tcp.unsupported).toEqual([
      'ServiceEntry external: ports[0] (protocol MONGO: meshlet serves HTTP and gRPC)',
      'ServiceEntry external: addresses (meshlet routes by host name, not by address)',
    ])
  })

  it('lets the endpoints given to fromIstio win, and refuses an entry without hosts as Istio does', () => {
    const { config } = fromIstio(
      se(`  hosts: [api.foo.com]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: DNS`),
      { 'api.foo.com': ['http://127.0.0.1:8081'] },
    )
    expect(config.services['api.foo.com']?.endpoints).toEqual(['http://127.0.0.1:8081'])
    expect(() => fromIstio(se('  resolution: DNS'))).toThrow(/service entry must have at least one host/)
  })
})
