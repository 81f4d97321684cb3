import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMesh, withMesh } from '../src/index.js'
import { CLIENT_ID, type KeyPair, makePki, SERVER_ID, type TestPki } from './helpers/certs.js'

let pki: TestPki
let clients: KeyPair[]
beforeAll(() => {
  pki = makePki()
  // Four client certificates of the same identity, told apart by fingerprint.
  clients = [0, 1, 2, 3].map((i) => pki.ca.issue({ name: `client-r${i}`, uris: [CLIENT_ID] }))
})
afterAll(() => pki.cleanup())

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256

/** Replaces `path` with `content` at once (write aside, rename), as secret writers do. */
function replace(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content)
  renameSync(`${path}.tmp`, path)
}

describe('certificate rotation (issue 24, acceptance 2)', () => {
  it('takes 1,000 rotations under steady traffic: no failed call, each new connection presents the new certificate within 1 s', async () => {
    /** Fingerprints of the client certificates, one per connection, in order. */
    const seen: string[] = []
    const server = https.createServer(
      {
        key: pki.server.key,
        cert: pki.server.cert,
        ca: pki.ca.cert,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (_req, res) => res.end('ok'),
    )
    let expected: { fingerprint: string; resolve: () => void } | undefined
    server.on('secureConnection', (s) => {
      const fp = s.getPeerX509Certificate()?.fingerprint256 ?? ''
      seen.push(fp)
      if (expected !== undefined && fp === expected.fingerprint) {
        expected.resolve()
        expected = undefined
      }
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    const dir = mkdtempSync(join(tmpdir(), 'meshlet-rotation-'))
    const certPath = join(dir, 'cert.pem')
    const keyPath = join(dir, 'key.pem')
    writeFileSync(certPath, clients[0]!.cert)
    writeFileSync(keyPath, clients[0]!.key)
    const mesh = createMesh({
      services: {
        users: {
          endpoints: [`https://127.0.0.1:${port}`],
          retry: { attempts: 1 },
          tls: { ca: pki.ca.certPath, cert: certPath, key: keyPath, identity: SERVER_ID },
        },
      },
    })
    const f = withMesh(fetch, mesh)
    let rotated = 0
    mesh.events.on('tls-rotated', () => {
      rotated++
    })
    const reasons: string[] = []
    mesh.events.on('tls-rejected', (e) => reasons.push(e.reason))
    let failed = 0
    let calls = 0
    let running = true
    const call = () =>
      f('http://users/').then(
        async (res) => {
          await res.text()
          calls++
          if (res.status !== 200) failed++
        },
        () => {
          failed++
        },
      )
    // Steady traffic: a caller in a loop for the whole test.
    const traffic = [0].map(async () => {
      while (running) await call()
    })
    try {
      await call()
      let slowest = 0
      for (let i = 1; i <= 1000; i++) {
        const next = clients[i % clients.length]!
        const want = fingerprint(next.cert)
        const started = performance.now()
        const presented = new Promise<void>((resolve) => {
          expected = { fingerprint: want, resolve }
        })
        // The key first: until the certificate follows, the pair does not match and is refused.
        replace(keyPath, next.key)
        replace(certPath, next.cert)
        // The steady traffic opens connections with the new material (a new dispatcher).
        const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), 1000).unref())
        expect(
          await Promise.race([presented, timer]),
          `rotation ${i}: no connection with the new certificate within 1 s`,
        ).toBe(undefined)
        slowest = Math.max(slowest, performance.now() - started)
      }
      expect(slowest).toBeLessThan(1000)
      expect(seen.at(-1)).toBe(fingerprint(clients[1000 % clients.length]!.cert))
    } finally {
      running = false
      await Promise.all(traffic)
      await mesh.close()
      server.closeAllConnections()
      server.close()
      rmSync(dir, { recursive: true, force: true })
    }
    expect(failed).toBe(0)
    expect(calls).toBeGreaterThan(1000)
    expect(rotated).toBe(1000)
    // Half-rotated pairs (the new key beside the old certificate) were refused, never taken, and
    // the reason never shows a key.
    for (const r of reasons) expect(r).not.toMatch(/PRIVATE KEY|MII|MIG/)
  }, 60_000)
})
