/**
 * ServiceEntries as meshlet services: each host is a service of its own (taken as written, as
 * pilot's `convertServices` takes it), with endpoints where the entry says where it runs.
 *
 * `resolution: STATIC` lists its endpoints (`address`, a port by name, `labels` for subsets,
 * `weight`); `DNS`, `DNS_ROUND_ROBIN`, `DYNAMIC_DNS` and `NONE` without endpoints send to the
 * host itself, which fetch resolves as the sidecar would (DNS) or as the application asked
 * (`NONE`: the original destination). meshlet serves one port per service: the first HTTP-like
 * port (`HTTP`, `HTTP2`, `HTTPS`, `TLS`, `GRPC`, or none given) is kept, the others are listed;
 * an entry with no such port (TCP, MONGO, ...) gives a service without endpoints, listed.
 */

import type { ServiceConfig } from '../config/config.js'
import { Fields, isObject } from './fields.js'
import type { State } from './state.js'

type Endpoint = Exclude<NonNullable<ServiceConfig['endpoints']>[number], string>

const HTTP_PROTOCOLS: Readonly<Record<string, 'http' | 'https' | 'grpc'>> = {
  HTTP: 'http',
  HTTP2: 'http',
  HTTPS: 'https',
  TLS: 'https',
  GRPC: 'grpc',
  'GRPC-WEB': 'http',
}

const RESOLUTIONS = new Set(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'])

/** Translates one ServiceEntry's spec into services on `state`. */
export function serviceEntry(spec: Fields, scope: { state: State }): void {
  const { state } = scope
  const out = spec.out
  const hosts: string[] = []
  ;(spec.array('hosts') ?? []).forEach((h, i) => {
    if (typeof h !== 'string' || h === '') out.invalid(`hosts[${i}]`, 'host cannot be empty')
    else if (h.includes('*')) out.unsupported(`hosts[${i}]`, `wildcard host ${JSON.stringify(h)}`)
    else hosts.push(h.toLowerCase())
  })
  if (!spec.has('hosts')) out.invalid('hosts', 'service entry must have at least one host')

  // The port meshlet serves: the first HTTP-like one.
  let port:
    | { number: number; name: string | undefined; scheme: 'http' | 'https' | 'grpc'; target?: number }
    | undefined
  ;(spec.array('ports') ?? []).forEach((raw, i) => {
    const path = `ports[${i}]`
    if (!isObject(raw)) {
      out.unsupported(path, 'expected an object')
      return
    }
    const p = new Fields(raw, path, out)
    const number = p.number('number')
    const name = p.string('name')
    const protocol = p.string('protocol')?.toUpperCase()
    const target = p.number('targetPort')
    p.done()
    if (number === undefined || !Number.isInteger(number) || number < 1 || number > 65535) {
      out.invalid(p.at('number'), `port number ${number ?? 'missing'} must be in the range 1..65535`)
      return
    }
    const scheme = protocol === undefined ? 'http' : HTTP_PROTOCOLS[protocol]
    if (scheme === undefined) out.unsupported(path, `protocol ${protocol}: meshlet serves HTTP and gRPC`)
    else if (port !== undefined)
      out.unsupported(path, `meshlet serves one port per service: port ${port.number} kept`)
    else port = { number, name, scheme, ...(target === undefined ? {} : { target }) }
  })

  const resolution = spec.string('resolution') ?? 'NONE'
  if (!RESOLUTIONS.has(resolution)) out.unsupported('resolution', JSON.stringify(resolution))
  const endpoints: Endpoint[] = []
  ;(spec.array('endpoints') ?? []).forEach((raw, i) => {
    const path = `endpoints[${i}]`
    if (!isObject(raw)) {
      out.unsupported(path, 'expected an object')
      return
    }
    const e = new Fields(raw, path, out)
    const address = e.string('address')
    const ports = e.object('ports')
    const labels: Record<string, string> = {}
    const l = e.object('labels')
    if (l) {
      for (const [key, value] of Object.entries(l.value)) {
        l.raw(key)
        labels[key] = String(value)
      }
    }
    const weight = e.number('weight')
    e.unsupported('locality', 'meshlet zones come from the endpoints given to createMesh')
    e.unsupported('network', 'one network')
    e.unsupported('serviceAccount', 'no mesh identity')
    let endpointPort = port?.target ?? port?.number
    if (ports && port?.name !== undefined) {
      const byName = ports.number(port.name)
      if (byName !== undefined) endpointPort = byName
    }
    ports?.done()
    e.done()
    if (address === undefined || port === undefined || endpointPort === undefined) {
      out.unsupported(path, address === undefined ? 'no address' : 'no HTTP or gRPC port')
      return
    }
    if (address.startsWith('unix://')) {
      out.unsupported(e.at('address'), 'a Unix socket')
      return
    }
    const endpoint: Endpoint = { url: urlOf(port.scheme, address, endpointPort) }
    if (Object.keys(labels).length > 0) endpoint.labels = labels
    if (weight !== undefined && Number.isInteger(weight) && weight > 0) endpoint.weight = weight
    endpoints.push(endpoint)
  })
  if (resolution === 'STATIC' && endpoints.length === 0 && spec.has('endpoints') === false) {
    out.unsupported('endpoints', 'STATIC resolution without endpoints: give them to fromIstio')
  }

  spec.unsupported('addresses', 'meshlet routes by host name, not by address')
  spec.unsupported('exportTo', 'visibility across namespaces')
  spec.unsupported('workloadSelector', 'the caller has no workload entries')
  spec.unsupported('subjectAltNames', 'no mesh identity check')
  const location = spec.string('location')
  if (location === 'MESH_INTERNAL') spec.out.unsupported('location', 'MESH_INTERNAL: no mesh mTLS')
  spec.done()

  for (const host of hosts) {
    const name = state.service(host, out, 'hosts')
    if (name === undefined) continue
    const svc = state.config(name)
    if (port === undefined) continue
    if (port.scheme === 'grpc') svc.protocol = 'grpc'
    let list: NonNullable<ServiceConfig['endpoints']> = endpoints
    // Without endpoints the host itself is where calls go (resolved by DNS as the sidecar would).
    if (endpoints.length === 0 && resolution !== 'STATIC')
      list = [urlOf(port.scheme, host, port.target ?? port.number)]
    if (list.length > 0) state.endpoints.set(name, list)
    // The service's port is the authority's, unless it is the scheme's default, which a URL
    // leaves out (the endpoints then tell the scheme).
    if (port.number !== (port.scheme === 'https' ? 443 : 80)) {
      const ports = state.ports.get(name) ?? new Set<number>()
      ports.add(port.number)
      state.ports.set(name, ports)
    }
  }
}

/** An endpoint as meshlet's config writes it: an http(s) URL, or `host:port` for gRPC. */
function urlOf(scheme: 'http' | 'https' | 'grpc', address: string, port: number): string {
  const host = address.includes(':') ? `[${address}]` : address
  return scheme === 'grpc' ? `${host}:${port}` : `${scheme}://${host}:${port}`
}
