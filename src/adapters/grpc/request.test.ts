import { describe, expect, it } from 'vitest'
import { methodKind, serviceOfTarget } from './request.js'

describe('serviceOfTarget', () => {
  it('names the service by the host of a dns target, in every spelling grpc-js accepts', () => {
    expect(serviceOfTarget('dns:users')).toBe('users')
    expect(serviceOfTarget('dns:users:50051')).toBe('users')
    expect(serviceOfTarget('dns:///users:50051')).toBe('users')
    expect(serviceOfTarget('dns://8.8.8.8/Users:443')).toBe('users')
    expect(serviceOfTarget('users')).toBe('users')
    expect(serviceOfTarget('users:50051')).toBe('users')
    expect(serviceOfTarget('dns:127.0.0.1:5000')).toBe('127.0.0.1')
  })

  it('names no service for socket addresses', () => {
    expect(serviceOfTarget('ipv4:127.0.0.1:5000')).toBeUndefined()
    expect(serviceOfTarget('ipv6:[::1]:5000')).toBeUndefined()
    expect(serviceOfTarget('unix:/tmp/sock')).toBeUndefined()
    expect(serviceOfTarget('dns:[::1]:50051')).toBeUndefined()
    expect(serviceOfTarget('dns:')).toBeUndefined()
  })
})

describe('methodKind', () => {
  it('tells the four shapes apart', () => {
    expect(methodKind(false, false)).toBe('unary')
    expect(methodKind(false, true)).toBe('server-stream')
    expect(methodKind(true, false)).toBe('client-stream')
    expect(methodKind(true, true)).toBe('bidi')
  })
})
