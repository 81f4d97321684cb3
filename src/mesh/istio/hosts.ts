/**
 * Host names as Istio resolves them, and the names calls use for them.
 *
 * Istio reads a host without a dot as a Kubernetes short name in the resource's namespace:
 * `reviews` in a VirtualService of namespace `default` is `reviews.default.svc.cluster.local`
 * (pilot's `ResolveShortnameToFQDN`); a host with a dot is taken as written. A Kubernetes
 * service is then reached by several names, as its DNS search path allows: from a workload of
 * the same namespace `reviews`, `reviews.default`, `reviews.default.svc` and the full name;
 * from another namespace all but the first. meshlet routes by the host a call names, so each
 * Kubernetes service becomes one meshlet service named by the shortest of those names, with the
 * others as its `hosts` aliases. Other names (`api.foo.com`) stay whole: two hosts that differ
 * are two services, never collapsed into their first label.
 */

/** How short names are read and which namespace calls are made from. */
export interface HostNaming {
  /**
   * The namespace of the calling workload: a bare short name in a call (`http://reviews/`)
   * reaches a service of this namespace only.
   */
  readonly namespace: string
  /** The cluster's DNS domain. */
  readonly clusterDomain: string
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/

/**
 * A host of a resource as Istio reads it: lower case; a name without a dot becomes
 * `<name>.<namespace>.svc.<clusterDomain>`; `*`, an IP address or a dotted name is kept.
 */
export function resolveHost(host: string, namespace: string, clusterDomain: string): string {
  const lower = host.toLowerCase()
  if (lower === '*' || lower.includes('.') || lower.includes(':') || IPV4.test(lower)) return lower
  return `${lower}.${namespace}.svc.${clusterDomain}`
}

/**
 * The names a call may use for a fully qualified host, shortest first: for a Kubernetes service
 * `<name>.<ns>.svc.<domain>`, `<name>` (only from the same namespace), `<name>.<ns>`,
 * `<name>.<ns>.svc` and the full name; for any other host, the host itself.
 */
export function callNames(fqdn: string, naming: HostNaming): string[] {
  const suffix = `.svc.${naming.clusterDomain}`
  if (fqdn.endsWith(suffix)) {
    const labels = fqdn.slice(0, -suffix.length).split('.')
    if (labels.length === 2 && labels[0] !== '' && labels[1] !== '') {
      const [name, ns] = labels as [string, string]
      const names = [`${name}.${ns}`, `${name}.${ns}.svc`, fqdn]
      return ns === naming.namespace ? [name, ...names] : names
    }
  }
  return [fqdn]
}
