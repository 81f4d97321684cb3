import { describe, expect, it } from 'vitest'
import { MeshError, TimeoutError, TlsRequiredError } from '../../core/errors.js'
import { errorKind, httpClassifier } from './classify.js'
import { toHttpRequest } from './request.js'

const get = toHttpRequest('s', '/', 'http://s/', undefined)
const post = toHttpRequest('s', '/', 'http://s/', { method: 'POST', body: 'x' })
const ok = (status: number) => ({ ok: true as const, value: new Response(null, { status }) })
const fail = (error: unknown) => ({ ok: false as const, error })
const netError = (code: string) =>
  new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) })

describe('errorKind', () => {
  it('reads undici error codes through causes', () => {
    expect(errorKind(netError('ECONNREFUSED'))).toBe('connect-failure')
    expect(errorKind(netError('UND_ERR_SOCKET'))).toBe('reset')
    expect(errorKind(netError('ECONNRESET'))).toBe('reset')
    const agg = new TypeError('fetch failed', {
      cause: Object.assign(new AggregateError([Object.assign(new Error('r'), { code: 'ECONNREFUSED' })]), {}),
    })
    expect(errorKind(agg)).toBe('connect-failure')
    expect(errorKind(new DOMException('aborted', 'AbortError'))).toBe('cancelled')
    expect(errorKind(new TimeoutError('attempt', 10))).toBe('timeout')
    expect(errorKind(new TimeoutError('call', 10))).toBe('mesh')
    expect(errorKind(new Error('boom'))).toBe('other')
  })
})

describe('httpClassifier', () => {
  const classify = httpClassifier()

  it('reads status classes by RFC 9110 ranges: 600 and above is no 5xx', () => {
    // fetch answers statuses up to 999; the Response constructor refuses them, so a stand-in.
    const raw = (status: number) => ({ ok: true as const, value: { status } as Response })
    expect(classify(get, raw(599))).toBe('retryable')
    expect(classify(get, raw(600))).toBe('success')
    expect(classify(get, raw(999))).toBe('success')
    expect(httpClassifier(['gateway-error'])(get, raw(600))).toBe('success')
  })

  it('never holds a refused https call (TLS_REQUIRED) against the endpoint, nor retries it', () => {
    expect(classify(get, fail(new TlsRequiredError('s', 'http://10.0.0.1:80')))).toBe('ignored')
  })

  it('by default retries 5xx and 429 for idempotent requests only', () => {
    expect(classify(get, ok(200))).toBe('success')
    expect(classify(get, ok(404))).toBe('success')
    expect(classify(get, ok(503))).toBe('retryable')
    expect(classify(get, ok(429))).toBe('retryable')
    expect(classify(post, ok(503))).toBe('failure')
    expect(classify(post, ok(429))).toBe('failure')
  })

  it('retries a refused connection whatever the method, a reset only when idempotent', () => {
    expect(classify(post, fail(netError('ECONNREFUSED')))).toBe('retryable')
    expect(classify(get, fail(netError('ECONNRESET')))).toBe('retryable')
    expect(classify(post, fail(netError('ECONNRESET')))).toBe('failure')
  })

  it('retries attempt timeouts, never the call deadline or other mesh errors; ignores cancellation', () => {
    expect(classify(get, fail(new TimeoutError('attempt', 5)))).toBe('retryable')
    expect(classify(get, fail(new TimeoutError('call', 5)))).toBe('failure')
    expect(classify(get, fail(new MeshError('CIRCUIT_OPEN', 'open')))).toBe('failure')
    expect(classify(get, fail(new DOMException('a', 'AbortError')))).toBe('ignored')
  })

  it('speaks the rest of Envoy retry_on', () => {
    const gateway = httpClassifier(['gateway-error'])
    expect(gateway(get, ok(502))).toBe('retryable')
    expect(gateway(get, ok(500))).toBe('failure')
    expect(gateway(get, ok(429))).toBe('success')
    const c4xx = httpClassifier(['retriable-4xx'])
    expect(c4xx(get, ok(409))).toBe('retryable')
    const codes = httpClassifier([418])
    expect(codes(get, ok(418))).toBe('retryable')
    const connectOnly = httpClassifier(['connect-failure'])
    expect(connectOnly(get, ok(503))).toBe('failure')
    expect(connectOnly(get, fail(netError('ECONNRESET')))).toBe('failure')
    expect(connectOnly(get, fail(netError('ECONNREFUSED')))).toBe('retryable')
  })
})

describe('any method ("*") and gateway failures', () => {
  it('retries a POST when methods is ["*"], as Envoy retries any method', () => {
    expect(httpClassifier(['5xx'], ['*'])(post, ok(503))).toBe('retryable')
    expect(httpClassifier(['5xx'])(post, ok(503))).toBe('failure')
  })

  it("tells Envoy's gateway failures: 502, 503, 504, connection failures and resets, attempt timeouts", async () => {
    const { httpProtocol } = await import('./protocol.js')
    const gateway = (o: Parameters<NonNullable<typeof httpProtocol.gatewayFailure>>[0]) =>
      httpProtocol.gatewayFailure!(o)
    expect([500, 502, 503, 504, 429].map((s) => gateway(ok(s)))).toEqual([false, true, true, true, false])
    expect(gateway(fail(netError('ECONNREFUSED')))).toBe(true)
    expect(gateway(fail(netError('ECONNRESET')))).toBe(true)
    expect(gateway(fail(new TimeoutError('attempt', 10)))).toBe(true)
    expect(gateway(fail(new TimeoutError('call', 10)))).toBe(false)
    expect(gateway(fail(new Error('boom')))).toBe(false)
  })
})
