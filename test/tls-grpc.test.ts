import { X509Certificate } from 'node:crypto'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activeWatches } from '../src/adapters/tls/material.js'
import { createMesh, type MeshConfig, withMesh } from '../src/index.js'
import { CLIENT_ID, type KeyPair, makePki, SERVER_ID, type TestPki, WRONG_ID } from './helpers/certs.js'
import { EchoClient, type EchoReply, type EchoRequest, echoService } from './helpers/grpc-servers.js'

let pki: TestPki
beforeAll(() => {
  pki = makePki()
})
afterAll(() => pki.cleanup())

interface TlsGrpcServer {
  readonly address: string
  /** The client certificate's SANs of each call. */
  readonly peers: string[]
  /** The client certificate's SHA-256 fingerprint of each call. */
  readonly fingerprints: string[]
  close(): Promise<void>
}

async function serve(pair: KeyPair, requireClientCert = true): Promise<TlsGrpcServer> {
  const server = new grpc.Server()
  const peers: string[] = []
  const fingerprints: string[] = []
  server.addService(echoService, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const peer = call.getAuthContext()?.sslPeerCertificate
      peers.push(peer?.subjectaltname ?? '')
      fingerprints.push(peer?.fingerprint256 ?? '')
      const delay = call.request.text === 'slow' ? 200 : 0
      setTimeout(() => cb(null, { text: call.request.text, index: 0, server: 'tls' }), delay)
    },
  })
  const credentials = grpc.ServerCredentials.createSsl(
    Buffer.from(pki.ca.cert),
    [{ private_key: Buffer.from(pair.key), cert_chain: Buffer.from(pair.cert) }],
    requireClientCert,
  )
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
  )
  return {
    address: `127.0.0.1:${port}`,
    peers,
    fingerprints,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  }
}

const config = (address: string, tls: Record<string, unknown>): MeshConfig => ({
  services: { users: { protocol: 'grpc', endpoints: [address], retry: { attempts: 1 }, timeout: '5s', tls } },
})

const mtls = () => ({
  ca: pki.ca.certPath,
  cert: pki.client.certPath,
  key: pki.client.keyPath,
  identity: SERVER_ID,
})

type Unary = (req: EchoRequest, cb: (err: grpc.ServiceError | null, res?: EchoReply) => void) => void

function unary(client: grpc.Client, text: string): Promise<EchoReply> {
  return new Promise((resolve, reject) =>
    (client as unknown as { Unary: Unary }).Unary.bind(client)(
      { text, count: 0 } as EchoRequest,
      (err, res) => (err ? reject(err) : resolve(res!)),
    ),
  )
}

describe('gRPC to a service with tls (issue 24)', () => {
  it('makes mTLS calls verified by SPIFFE ID, over a client made with insecure credentials', async () => {
    const server = await serve(pki.server)
    const mesh = createMesh(config(server.address, mtls()))
    const client = withMesh(new EchoClient('users', grpc.credentials.createInsecure()), mesh)
    try {
      for (let i = 0; i < 3; i++) expect((await unary(client, `m${i}`)).text).toBe(`m${i}`)
      expect(server.peers).toEqual([`URI:${CLIENT_ID}`, `URI:${CLIENT_ID}`, `URI:${CLIENT_ID}`])
    } finally {
      client.close()
      await mesh.close()
      await server.close()
    }
  })

  const refusals: Array<[string, () => KeyPair, string, string]> = [
    ['a wrong SPIFFE ID', () => pki.wrongIdentity, WRONG_ID, 'TLS_IDENTITY_MISMATCH'],
    ['two URI SANs (gRFC A87)', () => pki.twoUris, 'exactly one URI SAN', 'TLS_IDENTITY_MISMATCH'],
    ['an expired certificate', () => pki.expired, 'expired', 'TLS_CERT_EXPIRED'],
    ['a certificate not valid yet', () => pki.notYetValid, 'not yet valid', 'TLS_CERT_NOT_YET_VALID'],
    ['a certificate of an unknown CA', () => pki.unknownCa, 'unable to verify', 'TLS_UNKNOWN_CA'],
  ]
  for (const [what, pair, detail, code] of refusals) {
    it(`refuses a server with ${what}: UNAVAILABLE with meshCode ${code}, not retried, no call reaches it`, async () => {
      const server = await serve(pair(), false)
      const mesh = createMesh({
        services: {
          users: {
            protocol: 'grpc',
            endpoints: [server.address],
            retry: { attempts: 3 },
            timeout: '5s',
            tls: mtls(),
          },
        },
      })
      let retries = 0
      mesh.events.on('retry', () => retries++)
      const client = withMesh(new EchoClient('users', grpc.credentials.createInsecure()), mesh)
      try {
        const error = (await unary(client, 'x').catch((e: unknown) => e)) as grpc.ServiceError
        expect(error.code).toBe(grpc.status.UNAVAILABLE)
        expect(error).toMatchObject({ meshCode: code })
        expect(error.details).toContain(detail)
        expect(error.details).toContain(SERVER_ID)
        expect(error.details).not.toContain('PRIVATE KEY')
        expect(server.peers).toEqual([])
        expect(retries).toBe(0)
      } finally {
        client.close()
        await mesh.close()
        await server.close()
      }
    })
  }
})

describe('gRPC TLS material', () => {
  it('fails calls with UNAVAILABLE and meshCode TLS_MATERIAL_INVALID when the key file is missing', async () => {
    const mesh = createMesh(config('127.0.0.1:9', { ...mtls(), key: '/nonexistent/key.pem' }))
    const client = withMesh(new EchoClient('users', grpc.credentials.createInsecure()), mesh)
    try {
      const error = (await unary(client, 'x').catch((e: unknown) => e)) as grpc.ServiceError
      expect(error.code).toBe(grpc.status.UNAVAILABLE)
      expect(error).toMatchObject({ meshCode: 'TLS_MATERIAL_INVALID' })
      expect(error.details).toContain('/nonexistent/key.pem')
    } finally {
      client.close()
      await mesh.close()
    }
  })
})

describe('gRPC certificate rotation (issue 24)', () => {
  it('opens new channels with the new certificate after each rotation, lets a call in flight finish, and leaves no watcher or timer after close', async () => {
    const clients = [0, 1, 2].map((i) => pki.ca.issue({ name: `grpc-client-r${i}`, uris: [CLIENT_ID] }))
    const server = await serve(pki.server)
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-grpc-rotation-'))
    const certPath = join(dir, 'cert.pem')
    const keyPath = join(dir, 'key.pem')
    writeFileSync(certPath, clients[0]!.cert)
    writeFileSync(keyPath, clients[0]!.key)
    const before = activeWatches()
    const mesh = createMesh(
      config(server.address, { ca: pki.ca.certPath, cert: certPath, key: keyPath, identity: SERVER_ID }),
    )
    const client = withMesh(new EchoClient('users', grpc.credentials.createInsecure()), mesh)
    let rotated = 0
    mesh.events.on('tls-rotated', () => rotated++)
    try {
      await unary(client, 'first')
      // A watch per directory (the CA's and the pair's) and one re-check timer.
      expect(activeWatches()).toBe(before + 3)
      const slow = unary(client, 'slow')
      for (let i = 1; i <= 20; i++) {
        const next = clients[i % clients.length]!
        const want = rotated + 1
        writeFileSync(`${keyPath}.tmp`, next.key)
        renameSync(`${keyPath}.tmp`, keyPath)
        writeFileSync(`${certPath}.tmp`, next.cert)
        renameSync(`${certPath}.tmp`, certPath)
        const started = Date.now()
        while (rotated < want && Date.now() - started < 1000) await new Promise((r) => setTimeout(r, 5))
        expect(rotated, `rotation ${i} taken within 1 s`).toBe(want)
        expect((await unary(client, `r${i}`)).text).toBe(`r${i}`)
        expect(server.fingerprints.at(-1)).toBe(new X509Certificate(next.cert).fingerprint256)
      }
      // The call in flight during the rotations finished on its old channel.
      expect((await slow).text).toBe('slow')
    } finally {
      client.close()
      await mesh.close()
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    }
    expect(activeWatches()).toBe(before)
  })
})
