import {
  createServer as createHttp,
  request as httpRequest,
  type IncomingMessage,
  type Server,
} from 'node:http'
import { createServer as createHttps, request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authorize, grpcAuthorize, identityOf, uriSanOf } from '../src/inbound/index.js'
import type { AccessPolicy } from '../src/stages/policy/policy.js'
import { CLIENT_ID, makePki, type TestPki, WRONG_ID } from './helpers/certs.js'
import { EchoClient, echoService } from './helpers/grpc-servers.js'

/** A fake verifier: `good-<sub>` is valid (iss `https://issuer`), `expired` and others are refused. */
const verifyToken = async (token: string) => {
  if (token.startsWith('good-')) return { iss: 'https://issuer', sub: token.slice(5), groups: ['dev'] }
  throw new Error(token === 'expired' ? 'token expired' : 'signature invalid')
}

const policies: AccessPolicy[] = [
  { name: 'deny-admin', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
  {
    name: 'allow',
    rules: [
      { from: [{ source: { principals: [CLIENT_ID] } }], to: [{ operation: { methods: ['GET'] } }] },
      {
        from: [{ source: { requestPrincipals: ['https://issuer/*'] } }],
        when: [{ key: 'request.auth.claims[groups]', values: ['dev'] }],
      },
      { to: [{ operation: { paths: ['/public', '/meshlet.test.Echo/Unary'] } }] },
    ],
  },
]

interface Answer {
  status: number
  body: string
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = ''
      res
        .setEncoding('utf8')
        .on('data', (c) => (body += c))
        .on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    r.on('error', reject).end()
  })
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  )
}

const echoIdentity = (req: IncomingMessage, res: import('node:http').ServerResponse) => {
  const id = identityOf(req)
  res.end(
    JSON.stringify({ principal: id?.principal ?? null, requestPrincipal: id?.requestPrincipal ?? null }),
  )
}

describe('authorize: node:http with bearer tokens', () => {
  const denials: unknown[] = []
  const guard = authorize(policies, { verifyToken, onDenied: (d) => denials.push(d) })
  const server = createHttp(guard.handler(echoIdentity))
  let port = 0
  beforeAll(async () => {
    port = await listen(server)
  })
  afterAll(() => new Promise<void>((r) => server.close(() => r())))

  it('allows a verified token and hands its identity to the handler', async () => {
    const a = await get(port, '/x', { authorization: 'Bearer good-alice' })
    expect(a.status).toBe(200)
    expect(JSON.parse(a.body)).toEqual({ principal: null, requestPrincipal: 'https://issuer/alice' })
  })
  it('denies missing, forged and expired tokens with 403 RBAC: access denied', async () => {
    for (const headers of [
      {},
      { authorization: 'Bearer forged' },
      { authorization: 'Bearer expired' },
      { authorization: 'Basic good-x' },
    ]) {
      const a = await get(port, '/x', headers)
      expect(a).toEqual({ status: 403, body: 'RBAC: access denied' })
    }
  })
  it('allows an open path to anyone and denies DENY paths even with a good token', async () => {
    expect((await get(port, '/public')).status).toBe(200)
    expect((await get(port, '/admin/x', { authorization: 'Bearer good-alice' })).status).toBe(403)
    expect((await get(port, '/public/../admin')).status).toBe(403)
  })
  it('counts denials per rule and emits them without the token', () => {
    const s = guard.stats()
    expect(s.byRule['deny-admin#0']).toBe(2)
    expect(s.byRule['(no ALLOW rule matched)']).toBe(4)
    expect(s.denied).toBe(6)
    expect(JSON.stringify(denials)).not.toMatch(/forged|expired|good-/)
  })
  it('works as (req, res, next) middleware', async () => {
    const mw = authorize([{ rules: [{ to: [{ operation: { paths: ['/ok'] } }] }] }])
    const s = createHttp((req, res) => mw(req, res, () => res.end('next')))
    const p = await listen(s)
    try {
      expect(await get(p, '/ok')).toEqual({ status: 200, body: 'next' })
      expect((await get(p, '/no')).status).toBe(403)
    } finally {
      await new Promise<void>((r) => s.close(() => r()))
    }
  })
})

describe('authorize: identities from mTLS peer certificates', () => {
  let pki: TestPki
  let port = 0
  let server: ReturnType<typeof createHttps>
  const guard = authorize(policies)
  beforeAll(async () => {
    pki = makePki()
    server = createHttps(
      {
        key: pki.server.key,
        cert: pki.server.cert,
        ca: pki.ca.cert,
        requestCert: true,
        rejectUnauthorized: false,
      },
      guard.handler(echoIdentity),
    )
    port = await listen(server as unknown as Server)
  })
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()))
    pki.cleanup()
  })
  const call = (method: string, pair?: { key: string; cert: string }): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const r = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/x',
          method,
          ca: pki.ca.cert,
          servername: 'localhost',
          agent: false,
          ...(pair ?? {}),
        },
        (res) => {
          let body = ''
          res
            .setEncoding('utf8')
            .on('data', (c) => (body += c))
            .on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        },
      )
      r.on('error', reject).end()
    })

  it('allows the client SPIFFE ID for GET and hands it to the handler', async () => {
    const a = await call('GET', pki.client)
    expect(a.status).toBe(200)
    expect(JSON.parse(a.body).principal).toBe(CLIENT_ID)
  })
  it('denies the same identity for another method, no certificate, and an unknown CA', async () => {
    expect((await call('DELETE', pki.client)).status).toBe(403)
    expect((await call('GET')).status).toBe(403)
    expect((await call('GET', pki.foreignClient)).status).toBe(403)
  })
  it('reads exactly one URI SAN (gRFC A87)', () => {
    expect(uriSanOf(`URI:${CLIENT_ID}, DNS:localhost`)).toBe(CLIENT_ID)
    expect(uriSanOf('URI:spiffe://a/x, URI:spiffe://a/y')).toBeUndefined()
    expect(uriSanOf('DNS:localhost')).toBeUndefined()
    expect(uriSanOf('URI:"spiffe://a/x,y"')).toBe('spiffe://a/x,y')
  })
})

describe('grpcAuthorize: grpc-js server interceptor', () => {
  let pki: TestPki
  let server: grpc.Server
  let port = 0
  let guard: Awaited<ReturnType<typeof grpcAuthorize>>
  const seen: (string | null)[] = []
  const identities: (ReturnType<typeof identityOf> | undefined)[] = []
  beforeAll(async () => {
    pki = makePki()
    guard = await grpcAuthorize(
      [
        {
          name: 'deny-stream',
          action: 'DENY',
          rules: [{ to: [{ operation: { paths: ['/meshlet.test.Echo/Bidi'] } }] }],
        },
        {
          name: 'allow',
          rules: [
            { from: [{ source: { principals: [CLIENT_ID] } }] },
            { from: [{ source: { requestPrincipals: ['https://issuer/*'] } }] },
          ],
        },
      ],
      { verifyToken },
    )
    server = new grpc.Server({ interceptors: [guard.interceptor] })
    server.addService(echoService, {
      Unary: (call: grpc.ServerUnaryCall<{ text: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const id = identityOf(call.metadata)
        seen.push(id?.principal ?? null)
        identities.push(id)
        cb(null, { text: call.request.text, index: 0, server: 'a' })
      },
      Bidi: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    })
    const creds = grpc.ServerCredentials.createSsl(
      pki.ca.cert ? Buffer.from(pki.ca.cert) : null,
      [{ private_key: Buffer.from(pki.server.key), cert_chain: Buffer.from(pki.server.cert) }],
      true,
    )
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    )
  })
  afterAll(() => {
    server.forceShutdown()
    pki.cleanup()
  })

  const unary = (pair: { key: string; cert: string } | undefined, token?: string) =>
    new Promise<{ code: number; details?: string }>((resolve) => {
      const creds = grpc.credentials.createSsl(
        Buffer.from(pki.ca.cert),
        pair ? Buffer.from(pair.key) : null,
        pair ? Buffer.from(pair.cert) : null,
      )
      const client = new EchoClient(`127.0.0.1:${port}`, creds, {
        'grpc.ssl_target_name_override': 'localhost',
      })
      const md = new grpc.Metadata()
      if (token) md.set('authorization', `Bearer ${token}`)
      const unaryCall = client.Unary as unknown as (
        req: unknown,
        md: grpc.Metadata,
        cb: (err: grpc.ServiceError | null) => void,
      ) => void
      unaryCall.call(client, { text: 'hi', count: 1 }, md, (err: grpc.ServiceError | null) => {
        client.close()
        resolve(err ? { code: err.code, details: err.details } : { code: 0 })
      })
    })

  it('allows the client certificate and a verified token, handing the identity over', async () => {
    expect(await unary(pki.client)).toEqual({ code: 0 })
    expect(await unary(pki.wrongIdentity, 'good-bob')).toEqual({ code: 0 })
    expect(seen).toEqual([CLIENT_ID, WRONG_ID])
    expect(identities.at(-1)?.requestPrincipal).toBe('https://issuer/bob')
  })
  it('answers PERMISSION_DENIED to an identity no rule allows, with no token, a forged or expired token', async () => {
    for (const token of [undefined, 'forged', 'expired']) {
      expect(await unary(pki.wrongIdentity, token)).toEqual({
        code: grpc.status.PERMISSION_DENIED,
        details: 'RBAC: access denied',
      })
    }
    expect(seen).toHaveLength(2)
    expect(guard.stats().byRule['(no ALLOW rule matched)']).toBe(3)
  })
})
