import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENT_ID, makePki, SERVER_ID, type TestPki, WRONG_ID } from './helpers/certs.js'

let pki: TestPki
beforeAll(() => {
  pki = makePki()
})
afterAll(() => pki.cleanup())

describe('test certificates (test/helpers/certs.ts)', () => {
  it('carry the SANs and validity periods the tests rely on', () => {
    const x = (pem: string) => new X509Certificate(pem)
    expect(x(pki.server.cert).subjectAltName).toBe(`URI:${SERVER_ID}, DNS:localhost, IP Address:127.0.0.1`)
    expect(x(pki.client.cert).subjectAltName).toBe(`URI:${CLIENT_ID}`)
    expect(x(pki.wrongIdentity.cert).subjectAltName).toContain(`URI:${WRONG_ID}`)
    expect(Date.parse(x(pki.expired.cert).validTo)).toBeLessThan(Date.now())
    expect(Date.parse(x(pki.notYetValid.cert).validFrom)).toBeGreaterThan(Date.now())
    const caKey = x(pki.ca.cert).publicKey
    expect(x(pki.server.cert).verify(caKey)).toBe(true)
    expect(x(pki.unknownCa.cert).verify(caKey)).toBe(false)
    expect(x(pki.ca.cert).ca).toBe(true)
  })

  it('make a mutual TLS handshake on 127.0.0.1 that Node accepts', async () => {
    const server = tls.createServer({
      key: pki.server.key,
      cert: pki.server.cert,
      ca: pki.ca.cert,
      requestCert: true,
      rejectUnauthorized: true,
    })
    const seen = new Promise<string>((resolve) =>
      server.once('secureConnection', (s) => {
        resolve(s.getPeerX509Certificate()?.subjectAltName ?? '')
        s.end()
      }),
    )
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: pki.ca.cert,
      key: pki.client.key,
      cert: pki.client.cert,
      servername: 'localhost',
    })
    await once(socket, 'secureConnect')
    expect(socket.authorized).toBe(true)
    expect(await seen).toBe(`URI:${CLIENT_ID}`)
    socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
})
