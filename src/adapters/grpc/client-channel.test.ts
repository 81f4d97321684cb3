import * as grpc from '@grpc/grpc-js'
import { afterAll, describe, expect, it } from 'vitest'
import {
  authorityOfTarget,
  CredentialsUnavailableError,
  endpointChannelSettings,
  hostOfAuthority,
  readClientChannel,
  settingsKey,
} from './client-channel.js'

const channels: grpc.Channel[] = []
function channel(target: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions = {}) {
  const c = new grpc.Channel(target, credentials, options)
  channels.push(c)
  return c
}
afterAll(() => {
  for (const c of channels) c.close()
})

describe('authorityOfTarget and hostOfAuthority', () => {
  it("give grpc-js's default authority of a dns target and its host", () => {
    expect(authorityOfTarget('users')).toBe('users')
    expect(authorityOfTarget('users:50051')).toBe('users:50051')
    expect(authorityOfTarget('dns:users:50051')).toBe('users:50051')
    expect(authorityOfTarget('dns:///users:50051')).toBe('users:50051')
    expect(authorityOfTarget('dns://8.8.8.8/users')).toBe('users')
    expect(authorityOfTarget('unix:/tmp/sock')).toBeUndefined()
    expect(hostOfAuthority('users:50051')).toBe('users')
    expect(hostOfAuthority('users')).toBe('users')
    expect(hostOfAuthority('[::1]:50051')).toBe('::1')
  })
})

describe('endpointChannelSettings', () => {
  it("takes the client's credentials, options and Channel class, and names its target", () => {
    const credentials = grpc.credentials.createInsecure()
    const own = channel('users:50051', credentials, { 'grpc.default_compression_algorithm': 2 })
    const s = endpointChannelSettings(own, own.getTarget())
    expect(s.credentials).toBe(credentials)
    expect(s.Channel).toBe(grpc.Channel)
    // Insecure: no TLS name.
    expect(s.options).toEqual({
      'grpc.default_authority': 'users:50051',
      'grpc.default_compression_algorithm': 2,
    })
  })

  it('checks TLS against the target host; the client, then withMesh, override (key by key)', () => {
    const tls = grpc.credentials.createSsl()
    const own = channel('users:443', tls, { 'grpc.max_send_message_length': 1024 })
    expect(endpointChannelSettings(own, own.getTarget()).options).toEqual({
      'grpc.default_authority': 'users:443',
      'grpc.ssl_target_name_override': 'users',
      'grpc.max_send_message_length': 1024,
    })
    const named = channel('users:443', tls, { 'grpc.ssl_target_name_override': 'users.example.com' })
    expect(endpointChannelSettings(named, named.getTarget()).options['grpc.ssl_target_name_override']).toBe(
      'users.example.com',
    )
    const overridden = endpointChannelSettings(named, named.getTarget(), {
      channelOptions: { 'grpc.ssl_target_name_override': 'x', 'grpc.max_send_message_length': 7 },
    })
    expect(overridden.options['grpc.ssl_target_name_override']).toBe('x')
    expect(overridden.options['grpc.max_send_message_length']).toBe(7)
  })

  it("uses withMesh's credentials over the client's, with meshlet's own Channel class", () => {
    const own = channel('users', grpc.credentials.createInsecure())
    const tls = grpc.credentials.createSsl()
    const s = endpointChannelSettings(own, own.getTarget(), { credentials: tls })
    expect(s.credentials).toBe(tls)
    expect(s.Channel).toBeUndefined()
    expect(s.options['grpc.ssl_target_name_override']).toBe('users')
  })

  it('refuses a channel it cannot read unless credentials are given', () => {
    const opaque = { getTarget: () => 'dns:users' }
    expect(readClientChannel(opaque)).toBeUndefined()
    expect(() => endpointChannelSettings(opaque, 'dns:users')).toThrow(CredentialsUnavailableError)
    try {
      endpointChannelSettings(opaque, 'dns:users')
    } catch (error) {
      expect((error as CredentialsUnavailableError).code).toBe('CREDENTIALS_UNAVAILABLE')
    }
    const credentials = grpc.credentials.createInsecure()
    expect(endpointChannelSettings(opaque, 'dns:users', { credentials }).credentials).toBe(credentials)
  })

  it('drops the proxy options grpc-js derives from the environment, naming the proxied target', () => {
    const fake = {
      internalChannel: {
        credentials: grpc.credentials.createSsl(),
        options: { 'grpc.http_connect_target': 'dns:///users:443', 'grpc.http_connect_creds': 'x', a: 1 },
      },
    }
    const s = endpointChannelSettings(fake, 'dns:///proxy:3128')
    expect(s.options).toEqual({
      'grpc.default_authority': 'users:443',
      'grpc.ssl_target_name_override': 'users',
      a: 1,
    })
  })
})

describe('settingsKey', () => {
  it('is equal for equal options in any order, and differs by value and by credentials', () => {
    const ids = new WeakMap<object, number>()
    let next = 1
    const idOf = (o: object) => {
      if (!ids.has(o)) ids.set(o, next++)
      return ids.get(o)!
    }
    const credentials = {}
    const key = (options: Record<string, unknown>, c: object = credentials) =>
      settingsKey({ credentials: c, options, Channel: undefined }, idOf)
    expect(key({ a: 1, b: 'x' })).toBe(key({ b: 'x', a: 1 }))
    expect(key({ a: 1 })).not.toBe(key({ a: '1' }))
    expect(key({ a: 1 })).not.toBe(key({ a: 1 }, {}))
    const fn = () => {}
    expect(key({ f: fn })).toBe(key({ f: fn }))
    expect(key({ f: fn })).not.toBe(key({ f: () => {} }))
  })
})
