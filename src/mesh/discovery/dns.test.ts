/**
 * DNS answers turned into endpoints, on a fake resolver: the URL shapes (IPv4, IPv6, grpc
 * `host:port`), SRV priorities and weights, and a stable order.
 */
import { describe, expect, it } from 'vitest'
import { type DnsClient, type DnsQuery, resolveDns, type SrvRecord } from './dns.js'

function fake(records: { a?: string[]; aaaa?: string[]; srv?: SrvRecord[] }): DnsClient {
  return {
    resolve4: async () => records.a ?? [],
    resolve6: async () => records.aaaa ?? [],
    resolveSrv: async () => records.srv ?? [],
    cancel: () => {},
  }
}

const query = (q: Partial<DnsQuery>): DnsQuery => ({
  name: 'users.internal',
  type: 'A',
  port: 8080,
  scheme: 'http',
  protocol: 'http',
  ...q,
})

describe('resolveDns', () => {
  it('builds sorted, deduplicated URLs from A records', async () => {
    const client = fake({ a: ['10.0.0.2', '10.0.0.1', '10.0.0.2'] })
    expect(await resolveDns(client, query({}))).toEqual([
      { url: 'http://10.0.0.1:8080', weight: 1 },
      { url: 'http://10.0.0.2:8080', weight: 1 },
    ])
  })

  it('brackets IPv6 addresses, and gives host:port to grpc services', async () => {
    const client = fake({ aaaa: ['fd00::1'] })
    expect(await resolveDns(client, query({ type: 'AAAA', scheme: 'https' }))).toEqual([
      { url: 'https://[fd00::1]:8080', weight: 1 },
    ])
    expect(await resolveDns(client, query({ type: 'AAAA', protocol: 'grpc' }))).toEqual([
      { url: '[fd00::1]:8080', weight: 1 },
    ])
  })

  it('uses the lowest SRV priority only, with the record weights (0 counts as 1)', async () => {
    const client = fake({
      srv: [
        { name: 'b.users.internal.', port: 9001, priority: 10, weight: 0 },
        { name: 'a.users.internal', port: 9000, priority: 10, weight: 5 },
        { name: 'backup.users.internal', port: 9002, priority: 20, weight: 100 },
        { name: '.', port: 0, priority: 0, weight: 0 },
      ],
    })
    expect(
      await resolveDns(client, query({ type: 'SRV', port: undefined, name: '_http._tcp.users.' })),
    ).toEqual([
      { url: 'http://a.users.internal:9000', weight: 5 },
      { url: 'http://b.users.internal:9001', weight: 1 },
    ])
  })

  it('passes the name without its final dot and rejects with the resolver error', async () => {
    const names: string[] = []
    const error = Object.assign(new Error('queryA ESERVFAIL'), { code: 'ESERVFAIL' })
    const client: DnsClient = {
      ...fake({}),
      resolve4: async (name) => {
        names.push(name)
        throw error
      },
    }
    await expect(resolveDns(client, query({ name: 'users.internal.' }))).rejects.toBe(error)
    expect(names).toEqual(['users.internal'])
  })
})
