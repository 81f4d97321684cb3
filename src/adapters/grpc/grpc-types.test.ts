import type * as grpc from '@grpc/grpc-js'
import { describe, expect, expectTypeOf, it } from 'vitest'
import type {
  GrpcChannel,
  GrpcClientLike,
  GrpcMetadata,
  GrpcRawCall,
  GrpcStatusObject,
} from './grpc-types.js'

type RawCall = ReturnType<grpc.ChannelInterface['createCall']>

describe("meshlet's structural grpc-js types", () => {
  it("still fit grpc-js's own types, both ways where meshlet hands objects to grpc-js", () => {
    expectTypeOf<grpc.Metadata>().toMatchTypeOf<GrpcMetadata>()
    expectTypeOf<grpc.StatusObject>().toMatchTypeOf<GrpcStatusObject>()
    expectTypeOf<grpc.ChannelInterface>().toMatchTypeOf<GrpcChannel>()
    expectTypeOf<RawCall>().toMatchTypeOf<GrpcRawCall>()
    expectTypeOf<grpc.Client>().toMatchTypeOf<GrpcClientLike>()
    // The mesh's channel and calls go to grpc-js: plain assignability (method parameters are
    // bivariant). The channelz reference is an opaque value passed through.
    const toCall = (c: GrpcRawCall): RawCall => c
    const toChannel = (c: GrpcChannel): Omit<grpc.ChannelInterface, 'getChannelzRef'> => c
    expect([toCall, toChannel]).toHaveLength(2)
  })
})
