import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, type MeshConfig, withMesh } from '../src/index.js'
import { CLIENT_ID, type KeyPair, makePki, SERVER_ID, type TestPki, WRONG_ID } from './helpers/certs.js'

let pki: TestPki
beforeAll(() => {
  pki = makePki()
})
afterAll(() => pki.cleanup())

interface TlsServer {
  readonly url: string
  /** The client certificates' SANs seen, one per connection. */
  readonly peers: string[]
  close(): Promise<void>
}

async function serve(pair: KeyPair, requireClientCert = true): Promise<TlsServer> {
  const peers: string[] = []
  const server = https.createServer(
    {
      key: pair.key,
      cert: pair.cert,
      ca: pki.ca.cert,
      requestCert: requireClientCert,
      rejectUnauthorized: requireClientCert,
    },
    (req, res) =>
      res.end(`hello ${(req.socket as TLSSocket).getPeerX509Certificate()?.subjectAltName ?? 'anonymous'}`),
  )
  server.on('secureConnection', (s) => peers.push(s.getPeerX509Certificate()?.subjectAltName ?? ''))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}`,
    peers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const config = (endpoint: string, tls: Record<string, unknown>): MeshConfig => ({
  services: { users: { endpoints: [endpoint], retry: { attempts: 1 }, tls } },
})

const mtls = () => ({
  ca: pki.ca.certPath,
  cert: pki.client.certPath,
  key: pki.client.keyPath,
  identity: SERVER_ID,
})

describe('fetch to a service with tls (issue 24)', () => {
  it('makes mTLS calls verified by SPIFFE ID, by the direct path and through fetch alike', async () => {
    const server = await serve(pki.server)
    const mesh = createMesh(config(server.url, mtls()))
    const f = withMesh(fetch, mesh)
    try {
      for (let i = 0; i < 3; i++) {
        const res = await f('http://users/x')
        expect(await res.text()).toBe(`hello URI:${CLIENT_ID}`)
      }
      const res = await f('http://users/x', { method: 'POST', body: 'b', headers: { 'x-a': '1' } })
      expect(res.status).toBe(200)
      expect(server.peers.length).toBeGreaterThan(0)
      expect(server.peers.every((p) => p === `URI:${CLIENT_ID}`)).toBe(true)
    } finally {
      await mesh.close()
      await server.close()
    }
  })

  it("takes precedence over the caller's init.dispatcher", async () => {
    const server = await serve(pki.server)
    const mesh = createMesh(config(server.url, mtls()))
    let used = 0
    const callers = {
      dispatch: () => {
        used++
        throw new Error('the caller dispatcher must not be used for a tls service')
      },
    }
    try {
      const res = await withMesh(fetch, mesh)('http://users/x', { dispatcher: callers } as RequestInit)
      expect(await res.text()).toBe(`hello URI:${CLIENT_ID}`)
      expect(used).toBe(0)
    } finally {
      await mesh.close()
      await server.close()
    }
  })

  it('accepts PEM text inline and checks DNS names', async () => {
    const server = await serve(pki.dnsServer)
    const mesh = createMesh(
      config(server.url, {
        ca: pki.ca.cert,
        cert: pki.client.cert,
        key: pki.client.key,
        identity: 'localhost',
      }),
    )
    try {
      expect((await withMesh(fetch, mesh)('http://users/')).status).toBe(200)
    } finally {
      await mesh.close()
      await server.close()
    }
  })

  const refusals: Array<[string, () => KeyPair, string]> = [
    ['a wrong SPIFFE ID', () => pki.wrongIdentity, 'TLS_IDENTITY_MISMATCH'],
    ['two URI SANs (gRFC A87)', () => pki.twoUris, 'TLS_IDENTITY_MISMATCH'],
    ['no SPIFFE ID at all', () => pki.dnsServer, 'TLS_IDENTITY_MISMATCH'],
    ['an expired certificate', () => pki.expired, 'TLS_CERT_EXPIRED'],
    ['a certificate not valid yet', () => pki.notYetValid, 'TLS_CERT_NOT_YET_VALID'],
    ['a certificate of an unknown CA', () => pki.unknownCa, 'TLS_UNKNOWN_CA'],
  ]
  for (const [what, pair, code] of refusals) {
    it(`refuses a server with ${what} with ${code}, naming expected and presented identities, no key shown`, async () => {
      const server = await serve(pair(), false)
      const mesh = createMesh(config(server.url, { ...mtls(), key: pki.client.key, cert: pki.client.cert }))
      try {
        const error = await withMesh(
          fetch,
          mesh,
        )('http://users/x').then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toMatchObject({
          name: 'TlsVerificationError',
          code,
          service: 'users',
          expected: [SERVER_ID],
        })
        const message = (error as Error).message
        expect(message).toContain(SERVER_ID)
        if (code === 'TLS_IDENTITY_MISMATCH') expect(message).toContain('presented')
        if (pair() === pki.wrongIdentity) expect(message).toContain(WRONG_ID)
        expect(message).not.toContain('PRIVATE KEY')
        expect(JSON.stringify(error)).not.toContain(pki.client.key.split('\n')[1]!)
        expect(server.peers.length).toBeLessThanOrEqual(1)
      } finally {
        await mesh.close()
        await server.close()
      }
    })
  }

  it('refuses a plaintext endpoint of a service with tls (TLS_REQUIRED), sending nothing', async () => {
    const mesh = createMesh(config('http://127.0.0.1:9', mtls()))
    try {
      await expect(withMesh(fetch, mesh)('http://users/x')).rejects.toMatchObject({ code: 'TLS_REQUIRED' })
    } finally {
      await mesh.close()
    }
  })

  it('fails calls with TLS_MATERIAL_INVALID when a file is missing, naming the path and never a key', async () => {
    const mesh = createMesh(config('https://127.0.0.1:9', { ...mtls(), key: '/nonexistent/key.pem' }))
    try {
      const error = await withMesh(fetch, mesh)('http://users/x').catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'TLS_MATERIAL_INVALID' })
      expect((error as Error).message).toContain('/nonexistent/key.pem')
    } finally {
      await mesh.close()
    }
  })

  it('refuses a key that does not match its certificate without showing it', async () => {
    const mesh = createMesh(config('https://127.0.0.1:9', { ...mtls(), key: pki.server.key }))
    try {
      const error = await withMesh(fetch, mesh)('http://users/x').catch((e: unknown) => e)
      expect(error).toMatchObject({ code: 'TLS_MATERIAL_INVALID' })
      expect((error as Error).message).not.toContain('PRIVATE KEY')
    } finally {
      await mesh.close()
    }
  })

  it('never quotes an inline key in a config error', () => {
    const bad = `${pki.client.key.replace('PRIVATE KEY', 'PRIVATE KEX')}`
    let message = ''
    try {
      createMesh(config('https://127.0.0.1:9', { ...mtls(), key: bad }))
    } catch (e) {
      message = (e as Error).message
    }
    expect(message).toContain('services.users.tls.key')
    expect(message).not.toContain(pki.client.key.split('\n')[1]!)
  })
})
