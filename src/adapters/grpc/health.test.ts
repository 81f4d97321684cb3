import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { describe, expect, it } from 'vitest'
import { decodeServingStatus, encodeHealthCheckRequest, ServingStatus } from './health.js'

const definition = protoLoader.loadSync(
  fileURLToPath(new URL('../../../test/fixtures/health.proto', import.meta.url)),
  { keepCase: true, defaults: true },
)
// biome-ignore lint/suspicious/noExplicitAny: untyped package definition
type AnyPkg = any
const check = (grpc.loadPackageDefinition(definition) as AnyPkg).grpc.health.v1.Health.service
  .Check as grpc.MethodDefinition<{ service: string }, { status: string }>

describe('grpc.health.v1 messages', () => {
  it('encodes HealthCheckRequest as protobuf does (the empty default omitted, as proto3 allows)', () => {
    for (const service of ['pkg.Users', 'x'.repeat(300), 'é']) {
      expect(encodeHealthCheckRequest(service)).toEqual(check.requestSerialize({ service }))
    }
    expect(encodeHealthCheckRequest('')).toHaveLength(0)
    const server = (grpc.loadPackageDefinition(definition) as AnyPkg).grpc.health.v1.Health.service.Check
    expect(server.requestDeserialize(encodeHealthCheckRequest(''))).toEqual({ service: '' })
  })

  it('decodes HealthCheckResponse as protobuf encodes it', () => {
    for (const [name, value] of Object.entries(ServingStatus)) {
      expect(decodeServingStatus(check.responseSerialize({ status: name }))).toBe(value)
    }
  })

  it('skips unknown fields and refuses truncated messages', () => {
    // field 2 (string "ab"), then field 1 = SERVING, then field 3 fixed32
    expect(decodeServingStatus(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x01, 0x1d, 0, 0, 0, 0]))).toBe(1)
    expect(decodeServingStatus(Buffer.from([0x08]))).toBeUndefined()
    expect(decodeServingStatus(Buffer.from([0x12, 0x05, 0x61]))).toBeUndefined()
  })
})
