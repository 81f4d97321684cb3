import { Metadata } from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import { CircuitOpenError, TimeoutError } from '../../core/errors.js'
import { HedgeLostError } from '../../stages/retry/hedge.js'
import { grpcClassifier } from './classify.js'
import type { GrpcRequest, GrpcResponse } from './request.js'
import { GrpcStatus } from './status.js'

const req = { kind: 'unary' } as GrpcRequest
const answer = (code: number, extra: Partial<GrpcResponse> = {}, trailers: Record<string, string> = {}) => {
  const metadata = new Metadata()
  for (const [k, v] of Object.entries(trailers)) metadata.set(k, v)
  const value: GrpcResponse = {
    status: { code, details: '', metadata },
    headers: undefined,
    message: undefined,
    committed: false,
    attempt: 0,
    peer: '',
    ...extra,
  }
  return { ok: true as const, value }
}

describe('grpcClassifier', () => {
  const classify = grpcClassifier()

  it('retries UNAVAILABLE by default, and nothing else', () => {
    expect(classify(req, answer(GrpcStatus.UNAVAILABLE))).toBe('retryable')
    expect(classify(req, answer(GrpcStatus.INTERNAL))).toBe('failure')
    expect(classify(req, answer(GrpcStatus.RESOURCE_EXHAUSTED))).toBe('success')
  })

  it('counts client errors as the server doing its job, and server faults as failures', () => {
    for (const code of [0, 3, 5, 6, 7, 9, 10, 11, 12, 16]) expect(classify(req, answer(code))).toBe('success')
    for (const code of [2, 4, 13, 15]) expect(classify(req, answer(code))).toBe('failure')
  })

  it('never retries a committed call or one the server asked not to retry', () => {
    expect(classify(req, answer(GrpcStatus.UNAVAILABLE, { committed: true }))).toBe('failure')
    expect(classify(req, answer(GrpcStatus.UNAVAILABLE, {}, { 'grpc-retry-pushback-ms': '-1' }))).toBe(
      'failure',
    )
    expect(classify(req, answer(GrpcStatus.UNAVAILABLE, {}, { 'grpc-retry-pushback-ms': '10' }))).toBe(
      'retryable',
    )
  })

  it('takes other retryable codes by name in any case, or by number', () => {
    const c = grpcClassifier(['unavailable', 'Resource_Exhausted', 10])
    expect(c(req, answer(GrpcStatus.RESOURCE_EXHAUSTED))).toBe('retryable')
    expect(c(req, answer(GrpcStatus.ABORTED))).toBe('retryable')
    expect(() => grpcClassifier(['NOPE'])).toThrow(RangeError)
  })

  it('calls a committed stream a success', () => {
    expect(classify(req, answer(0, { status: undefined, committed: true }))).toBe('success')
  })

  it('judges errors: attempt timeouts by DEADLINE_EXCEEDED, mesh errors failures, cancellations ignored', () => {
    expect(classify(req, { ok: false, error: new TimeoutError('attempt', 100) })).toBe('failure')
    expect(
      grpcClassifier(['DEADLINE_EXCEEDED'])(req, { ok: false, error: new TimeoutError('attempt', 100) }),
    ).toBe('retryable')
    expect(classify(req, { ok: false, error: new TimeoutError('call', 100) })).toBe('failure')
    expect(classify(req, { ok: false, error: new CircuitOpenError('x', 0) })).toBe('failure')
    expect(classify(req, { ok: false, error: new HedgeLostError() })).toBe('ignored')
    expect(classify(req, { ok: false, error: new Error('boom') })).toBe('failure')
  })
})
