import { describe, expect, it } from 'vitest'
import {
  BulkheadFullError,
  CircuitOpenError,
  MeshClosedError,
  MeshError,
  NoHealthyEndpointError,
  RetryBudgetExhaustedError,
  TimeoutError,
  TlsRequiredError,
  UnknownServiceError,
} from '../../core/errors.js'
import { answerAsEnvoy, envoyReply } from './envoy-responses.js'

const netError = (code: string) =>
  new TypeError('fetch failed', { cause: Object.assign(new Error(code), { code }) })
const RESET = 'upstream connect error or disconnect/reset before headers. '

describe('envoyReply', () => {
  it.each<[string, unknown, number, string, Record<string, string>?]>([
    ['a call timeout', new TimeoutError('call', 100), 504, 'upstream request timeout'],
    ['an attempt timeout', new TimeoutError('attempt', 100), 504, 'upstream request timeout'],
    ['no healthy endpoint', new NoHealthyEndpointError('users'), 503, 'no healthy upstream'],
    [
      'an open breaker',
      new CircuitOpenError('users', 0),
      503,
      `${RESET}reset reason: overflow`,
      { 'x-envoy-overloaded': 'true' },
    ],
    [
      'a full bulkhead',
      new BulkheadFullError('users', 'full'),
      503,
      `${RESET}reset reason: overflow`,
      { 'x-envoy-overloaded': 'true' },
    ],
    ['a rate limit', new MeshError('RATE_LIMITED', 'limited'), 429, 'local_rate_limited'],
    ['a denial', new MeshError('ACCESS_DENIED', 'denied'), 403, 'RBAC: access denied'],
    ['a refused connection', netError('ECONNREFUSED'), 503, `${RESET}reset reason: connection failure`],
    ['a reset connection', netError('ECONNRESET'), 503, `${RESET}reset reason: connection termination`],
    [
      'a spent retry budget after connection failures',
      new RetryBudgetExhaustedError('users', netError('ECONNREFUSED')),
      503,
      `${RESET}retried and the latest reset reason: connection failure`,
    ],
  ])('answers %s as Envoy does', (_name, error, status, body, headers) => {
    expect(envoyReply(error)).toEqual({ status, body, ...(headers ? { headers } : {}) })
  })

  it.each<[string, unknown]>([
    ["the caller's abort", new DOMException('aborted', 'AbortError')],
    ['a bad input', new TypeError('Request with GET/HEAD method cannot have body.')],
    ['a closed mesh', new MeshClosedError()],
    ['a refused https call', new TlsRequiredError('users', 'http://10.0.0.1:80')],
    ['an unknown service on a strict mesh', new UnknownServiceError('nope')],
    [
      'a spent budget after an error that is no connection failure',
      new RetryBudgetExhaustedError('users', new Error('x')),
    ],
  ])('leaves %s to reject', (_name, error) => {
    expect(envoyReply(error)).toBeUndefined()
  })
})

describe('answerAsEnvoy', () => {
  it('answers with text/plain, the marker headers and the url the caller asked for', async () => {
    const res = answerAsEnvoy('http://users/x')(new CircuitOpenError('users', 0))
    expect(res.status).toBe(503)
    expect(res.url).toBe('http://users/x')
    expect(res.clone().url).toBe('http://users/x')
    expect(Object.fromEntries(res.headers as unknown as Iterable<[string, string]>)).toEqual({
      'content-type': 'text/plain',
      'x-envoy-overloaded': 'true',
    })
    expect(await res.text()).toBe(`${RESET}reset reason: overflow`)
  })

  it('rethrows what Envoy would not answer', () => {
    const reason = new DOMException('aborted', 'AbortError')
    expect(() => answerAsEnvoy('http://users/x')(reason)).toThrow(reason)
  })
})
