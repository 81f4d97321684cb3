import type { IstioSecurity } from './authorization-policy.js'
/**
 * What an import gathers across resources: the services by the host they stand for, the routes,
 * and the reports. A service is registered by its fully qualified host (see `hosts.ts`) and
 * named, once, by the shortest name a call may use; a name or alias that another host already
 * holds is not taken twice (the first resource to name it keeps it), and that is reported.
 */

import type { ConfigIssue } from '../../core/errors.js'
import type { MeshConfig, ServiceConfig } from '../config/config.js'
import type { Out, Reports } from './fields.js'
import { callNames, type HostNaming } from './hosts.js'

/** A meshlet route as the import writes it. */
export type MeshRoute = NonNullable<MeshConfig['routes']>[number]
/** One match clause of a route. */
export type RouteMatch = NonNullable<MeshRoute['match']>[number]

/**
 * A route before its hosts are known by name: the match clauses without a host, and the fully
 * qualified hosts of its VirtualService (`undefined`: any host, `"*"`).
 */
export interface PendingRoute {
  readonly route: MeshRoute
  readonly clauses: readonly RouteMatch[] | undefined
  readonly hosts: readonly string[] | undefined
}

/**
 * A service as the import produces it: its policy, and its endpoints only when a ServiceEntry
 * says where it runs.
 */
export type IstioServiceConfig = Omit<ServiceConfig, 'discovery'>

// meshlet's service names (config.ts): letters, digits, '.' and '-'.
const SERVICE_NAME = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/

/** Everything gathered across resources. */
export class State implements Reports {
  /** Services by meshlet name, in the order first seen. */
  readonly services = new Map<string, IstioServiceConfig>()
  readonly routes: PendingRoute[] = []
  readonly unsupported: string[] = []
  /** AuthorizationPolicy and PeerAuthentication translations (authorization-policy.ts). */
  readonly security: IstioSecurity = { policies: [], peerAuthentication: {} }
  readonly invalid: ConfigIssue[] = []
  /** Services that have a DestinationRule (Istio applies one per host). */
  readonly ruled = new Set<string>()
  /** meshlet name by fully qualified host. */
  readonly #names = new Map<string, string>()
  /** Fully qualified host by every name a call may use (names and aliases). */
  readonly #owners = new Map<string, string>()
  /** Ports the VirtualServices' destinations and ServiceEntries give, by service name (for its authority). */
  readonly ports = new Map<string, Set<number>>()
  /** Endpoints ServiceEntries give, by service name. */
  readonly endpoints = new Map<string, NonNullable<ServiceConfig['endpoints']>>()

  constructor(readonly naming: HostNaming) {}

  /** The meshlet name of a fully qualified host, when it is a service already. */
  nameOf(fqdn: string): string | undefined {
    return this.#names.get(fqdn)
  }

  /** The service a call by `host` (any of its names, lower case) reaches, if any. */
  serviceByCallName(host: string): string | undefined {
    const fqdn = this.#owners.get(host)
    return fqdn === undefined ? undefined : this.#names.get(fqdn)
  }

  /**
   * The meshlet name of the service of `fqdn`, registered on first use with its aliases;
   * `undefined` (reported at `path`) when no name is left for it.
   */
  service(fqdn: string, out: Out, path: string): string | undefined {
    const known = this.#names.get(fqdn)
    if (known !== undefined) return known
    const names = this.callNames(fqdn).filter((n) => {
      const owner = this.#owners.get(n)
      if (owner === undefined || owner === fqdn) return true
      out.unsupported(path, `${JSON.stringify(n)} already names ${owner}: not an alias of ${fqdn}`)
      return false
    })
    const name = names[0]
    if (name === undefined) {
      out.unsupported(path, `no name left for ${fqdn}: left out`)
      return undefined
    }
    if (!SERVICE_NAME.test(name)) {
      out.unsupported(path, `${JSON.stringify(fqdn)} makes no service name`)
      return undefined
    }
    for (const n of names) this.#owners.set(n, fqdn)
    this.#names.set(fqdn, name)
    const svc: IstioServiceConfig = {}
    if (names.length > 1) svc.hosts = names.slice(1)
    this.services.set(name, svc)
    return name
  }

  /** The config of a registered service. */
  config(name: string): IstioServiceConfig {
    return this.services.get(name)!
  }

  /** The names a call may use for `fqdn` (see `hosts.ts`). */
  callNames(fqdn: string): string[] {
    return callNames(fqdn, this.naming)
  }
}
