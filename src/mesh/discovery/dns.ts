/**
 * DNS discovery: one query (A, AAAA or SRV) turned into a service's endpoint set.
 *
 * Resolution goes through `node:dns/promises` `Resolver` (c-ares), not `dns.lookup`: lookup runs
 * on libuv's small thread pool, answers one address at a time through the OS resolver's cache,
 * and cannot be pointed at a given server; a `Resolver` asks the servers directly, returns every
 * record, and can be cancelled when the mesh closes.
 *
 * SRV records follow RFC 2782 as far as a client-side balancer can: only the records of the
 * lowest priority value are used (higher ones are backups the operator keeps out of rotation),
 * the record's weight becomes the endpoint's weight (0 counts as 1, since a weighted balancer
 * needs a positive weight), and a target of `.` ("no service here") is skipped. TTLs are not
 * read: the service's `refresh` interval decides when to ask again.
 */
import { Resolver } from 'node:dns/promises'

/** The DNS settings of a mesh (`createMesh(config, { dns })`). */
export interface DnsOptions {
  /**
   * The servers to ask, as `Resolver.setServers` takes them: `'127.0.0.1'`, `'127.0.0.1:5353'`,
   * `'[::1]:53'`. Default: the system's (`/etc/resolv.conf`).
   */
  readonly servers?: readonly string[]
  /** The time limit of one try of a query, in ms. Default: Node's (c-ares's, a few seconds). */
  readonly timeout?: number
  /** Tries of a query, one server after the other, before it fails. Default: Node's (4). */
  readonly tries?: number
}

/** One SRV record, as `Resolver.resolveSrv` gives it. */
export interface SrvRecord {
  readonly name: string
  readonly port: number
  readonly priority: number
  readonly weight: number
}

/** What DNS discovery needs of a resolver; `node:dns/promises` `Resolver` is one. */
export interface DnsClient {
  resolve4(name: string): Promise<string[]>
  resolve6(name: string): Promise<string[]>
  resolveSrv(name: string): Promise<SrvRecord[]>
  /** Cancels every query in flight (they reject with `ECANCELLED`). */
  cancel(): void
}

/** A `Resolver` with the given options. */
export function dnsClient(options: DnsOptions = {}): DnsClient {
  const resolver = new Resolver({
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.tries === undefined ? {} : { tries: options.tries }),
  })
  if (options.servers !== undefined) resolver.setServers([...options.servers])
  return resolver
}

/** One DNS query and how to turn its answer into endpoints. */
export interface DnsQuery {
  /** The name to resolve (a final dot is allowed). */
  readonly name: string
  /** The records asked for. */
  readonly type: 'A' | 'AAAA' | 'SRV'
  /** The port of every endpoint (A and AAAA); SRV records carry their own. */
  readonly port?: number | undefined
  /** The scheme of http endpoint URLs. */
  readonly scheme: 'http' | 'https'
  /** `'http'` services get URLs (`http://10.0.0.1:8080`), `'grpc'` ones `host:port`. */
  readonly protocol: 'http' | 'grpc'
}

/** An endpoint found by DNS: a URL (or `host:port`) and its weight. */
export interface DnsEndpoint {
  readonly url: string
  readonly weight: number
}

/**
 * Resolves `query` with `client` into endpoints, sorted by URL (DNS servers rotate record order;
 * sorting makes equal answers compare equal) and without duplicates. Rejects with the
 * resolver's error (`ENOTFOUND`, `ESERVFAIL`, `ETIMEOUT`, ...); an empty answer is `[]`.
 */
export async function resolveDns(client: DnsClient, query: DnsQuery): Promise<DnsEndpoint[]> {
  const name = query.name.endsWith('.') ? query.name.slice(0, -1) : query.name
  const found = new Map<string, number>()
  const add = (host: string, port: number, weight: number) => {
    const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`
    const url = query.protocol === 'grpc' ? hostPort : `${query.scheme}://${hostPort}`
    found.set(url, Math.max(found.get(url) ?? 0, weight))
  }
  if (query.type === 'SRV') {
    const records = (await client.resolveSrv(name)).filter((r) => r.name !== '' && r.name !== '.')
    const lowest = Math.min(...records.map((r) => r.priority))
    for (const r of records) {
      if (r.priority === lowest) add(r.name.replace(/\.$/, ''), r.port, Math.max(1, r.weight))
    }
  } else {
    const port = query.port ?? 0
    const addresses = query.type === 'A' ? await client.resolve4(name) : await client.resolve6(name)
    for (const address of addresses) add(address, port, 1)
  }
  return [...found]
    .map(([url, weight]) => ({ url, weight }))
    .sort((a, b) => (a.url < b.url ? -1 : a.url > b.url ? 1 : 0))
}
