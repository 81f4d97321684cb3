/**
 * A real DNS server for tests: UDP on 127.0.0.1, port 0, answering A, AAAA and SRV questions
 * from records the test sets and changes, or failing on demand (SERVFAIL, or silence).
 *
 * The wire format (RFC 1035 section 4, RFC 2782 for SRV, RFC 3596 for AAAA) is encoded here in
 * a few dozen lines rather than with a package: only the header, the question echoed back, and
 * answer records pointing at it are needed.
 */
import { createSocket, type RemoteInfo } from 'node:dgram'
import { isIPv6 } from 'node:net'

/** An SRV record's data. */
export interface SrvData {
  readonly priority: number
  readonly weight: number
  readonly port: number
  readonly target: string
}

/** The record types served. */
export type DnsRecordType = 'A' | 'AAAA' | 'SRV'

/** How the server answers: from its records, with SERVFAIL to everything, or not at all. */
export type DnsServerMode = 'answer' | 'servfail' | 'silent'

/** A running test DNS server. */
export interface TestDnsServer {
  /** `127.0.0.1:<port>`, as `Resolver.setServers` (and the mesh's `dns.servers`) take it. */
  readonly address: string
  /** Questions received so far. */
  readonly queries: number
  /** How the server answers now. Default `'answer'`. */
  mode: DnsServerMode
  /** Sets the A or AAAA records of `name` (addresses) or its SRV records; `[]` removes them. */
  set(name: string, type: 'A' | 'AAAA', records: readonly string[]): void
  set(name: string, type: 'SRV', records: readonly SrvData[]): void
  close(): Promise<void>
}

const TYPE_CODE: Record<DnsRecordType, number> = { A: 1, AAAA: 28, SRV: 33 }
const CLASS_IN = 1
const RCODE_SERVFAIL = 2
const RCODE_NXDOMAIN = 3

function encodeName(name: string): Buffer {
  const labels = name
    .replace(/\.$/, '')
    .split('.')
    .filter((l) => l !== '')
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ])
}

function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new TypeError(`not an IPv6 address: ${address}`)
  const [head = '', tail] = address.split('::')
  const groups = (part: string | undefined) => (part ? part.split(':') : [])
  const left = groups(head)
  const right = groups(tail)
  const all =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right]
  const out = Buffer.alloc(16)
  for (const [i, g] of all.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

function rdata(type: DnsRecordType, record: string | SrvData): Buffer {
  if (type === 'A') return Buffer.from((record as string).split('.').map(Number))
  if (type === 'AAAA') return ipv6Bytes(record as string)
  const srv = record as SrvData
  const fixed = Buffer.alloc(6)
  fixed.writeUInt16BE(srv.priority, 0)
  fixed.writeUInt16BE(srv.weight, 2)
  fixed.writeUInt16BE(srv.port, 4)
  return Buffer.concat([fixed, encodeName(srv.target)])
}

/** The question of a query: its name, type, and where the question section ends. */
function readQuestion(msg: Buffer): { name: string; type: number; end: number } | undefined {
  let offset = 12
  const labels: string[] = []
  for (;;) {
    const length = msg[offset]
    if (length === undefined || length > 63) return undefined
    offset++
    if (length === 0) break
    labels.push(msg.toString('ascii', offset, offset + length))
    offset += length
  }
  if (offset + 4 > msg.length) return undefined
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(offset), end: offset + 4 }
}

/** Starts a DNS server on 127.0.0.1, port 0. */
export async function startDnsServer(): Promise<TestDnsServer> {
  const records = new Map<string, readonly (string | SrvData)[]>()
  const socket = createSocket('udp4')
  let queries = 0
  const server: TestDnsServer = {
    address: '',
    get queries() {
      return queries
    },
    mode: 'answer',
    set(name: string, type: DnsRecordType, list: readonly (string | SrvData)[]) {
      records.set(`${name.replace(/\.$/, '').toLowerCase()}|${TYPE_CODE[type]}`, list)
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }

  socket.on('message', (msg: Buffer, from: RemoteInfo) => {
    queries++
    if (server.mode === 'silent' || msg.length < 12) return
    const question = readQuestion(msg)
    if (question === undefined) return
    const type = (Object.keys(TYPE_CODE) as DnsRecordType[]).find((t) => TYPE_CODE[t] === question.type)
    const found = type === undefined ? undefined : records.get(`${question.name}|${question.type}`)
    const known = [...records.keys()].some((k) => k.startsWith(`${question.name}|`))
    const rcode = server.mode === 'servfail' ? RCODE_SERVFAIL : known ? 0 : RCODE_NXDOMAIN
    const answers = rcode === 0 && type !== undefined ? (found ?? []) : []
    const header = Buffer.alloc(12)
    header.writeUInt16BE(msg.readUInt16BE(0), 0) // the query's id
    // QR (a response), AA (authoritative), the query's RD, RA, and the response code.
    header.writeUInt16BE(0x8000 | 0x0400 | (msg.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2)
    header.writeUInt16BE(1, 4)
    header.writeUInt16BE(answers.length, 6)
    const body = answers.map((record) => {
      const data = rdata(type!, record)
      const fixed = Buffer.alloc(12)
      fixed.writeUInt16BE(0xc00c, 0) // a pointer to the question's name, at offset 12
      fixed.writeUInt16BE(question.type, 2)
      fixed.writeUInt16BE(CLASS_IN, 4)
      fixed.writeUInt32BE(5, 6) // TTL, seconds (the mesh's refresh decides, not this)
      fixed.writeUInt16BE(data.length, 10)
      return Buffer.concat([fixed, data])
    })
    socket.send(Buffer.concat([header, msg.subarray(12, question.end), ...body]), from.port, from.address)
  })

  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  Object.defineProperty(server, 'address', { value: `127.0.0.1:${socket.address().port}` })
  return server
}
