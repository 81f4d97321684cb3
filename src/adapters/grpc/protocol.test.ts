import { Metadata } from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import { grpcProtocol, parsePushback } from './protocol.js'
import type { GrpcRequest, GrpcResponse } from './request.js'

const md = (value?: string) => {
  const m = new Metadata()
  if (value !== undefined) m.set('grpc-retry-pushback-ms', value)
  return m
}

describe('parsePushback (gRFC A6)', () => {
  it('reads a delay, and says nothing when absent', () => {
    expect(parsePushback(md('500'))).toBe(500)
    expect(parsePushback(md('0'))).toBe(0)
    expect(parsePushback(md('2147483647'))).toBe(2147483647)
    expect(parsePushback(md())).toBeUndefined()
  })

  it('reads negative and malformed values as "do not retry" (-1)', () => {
    for (const v of ['-1', '-500', 'soon', '1.5', '007', '', '2147483648', '5s', '1e3'])
      expect(parsePushback(md(v))).toBe(-1)
  })
})

describe('grpcProtocol', () => {
  const req = (kind: GrpcRequest['kind']) => ({ kind }) as GrpcRequest
  it('replays one-message requests only', () => {
    expect(grpcProtocol.canReplay(req('unary'))).toBe(true)
    expect(grpcProtocol.canReplay(req('server-stream'))).toBe(true)
    expect(grpcProtocol.canReplay(req('client-stream'))).toBe(false)
    expect(grpcProtocol.canReplay(req('bidi'))).toBe(false)
  })

  it('reads pushback from a failed status only', () => {
    const res = (code: number, value?: string): GrpcResponse => ({
      status: { code, details: '', metadata: md(value) },
      headers: undefined,
      message: undefined,
      committed: false,
      attempt: 0,
      peer: '',
    })
    const wall = { wall: () => 0 }
    expect(grpcProtocol.pushback({ ok: true, value: res(14, '250') }, wall)).toBe(250)
    expect(grpcProtocol.pushback({ ok: true, value: res(0, '250') }, wall)).toBeUndefined()
    expect(grpcProtocol.pushback({ ok: false, error: new Error('x') }, wall)).toBeUndefined()
  })
})
