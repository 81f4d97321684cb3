import { describe, expect, it } from 'vitest'
import { fromGrpcServiceConfig } from './service-config.js'

const name = [{ service: 'pkg.Users' }]

describe('fromGrpcServiceConfig', () => {
  it('translates a retry policy, its timeout and the absence of throttling', () => {
    const t = fromGrpcServiceConfig({
      methodConfig: [
        {
          name,
          timeout: '2.5s',
          retryPolicy: {
            maxAttempts: 4,
            initialBackoff: '0.1s',
            maxBackoff: '1s',
            backoffMultiplier: 2,
            retryableStatusCodes: ['UNAVAILABLE'],
          },
        },
      ],
    })
    expect(t.unsupported).toEqual([])
    expect(t.service).toEqual({
      protocol: 'grpc',
      timeout: 2500,
      streamTimeout: 2500,
      propagateDeadline: true,
      retry: { attempts: 4, backoff: { base: 100, max: 1000 }, budget: { kind: 'none' } },
    })
  })

  it('keeps other codes and multipliers, caps maxAttempts at 5 (A6), and reads JSON text', () => {
    const t = fromGrpcServiceConfig(
      JSON.stringify({
        methodConfig: [
          {
            name,
            retryPolicy: {
              maxAttempts: 9,
              initialBackoff: '0.2s',
              maxBackoff: '3s',
              backoffMultiplier: 1.5,
              retryableStatusCodes: ['unavailable', 8],
            },
          },
        ],
        retryThrottling: { maxTokens: 10, tokenRatio: 0.1 },
      }),
    )
    expect(t.unsupported).toEqual([])
    expect(t.service.retry).toEqual({
      attempts: 5,
      backoff: { base: 200, max: 3000, factor: 1.5 },
      retryableStatusCodes: ['UNAVAILABLE', 'RESOURCE_EXHAUSTED'],
      budget: { kind: 'throttling', maxTokens: 10, tokenRatio: 0.1 },
    })
  })

  it('translates a hedging policy: no retry after the hedges, non-fatal codes as the retryable ones', () => {
    const t = fromGrpcServiceConfig({
      methodConfig: [
        {
          name,
          hedgingPolicy: {
            maxAttempts: 3,
            hedgingDelay: '0.05s',
            nonFatalStatusCodes: ['UNAVAILABLE', 'ABORTED'],
          },
        },
      ],
    })
    expect(t.unsupported).toEqual([])
    expect(t.service.hedge).toEqual({ delay: 50, maxAttempts: 3 })
    expect(t.service.retry).toEqual({
      attempts: 1,
      retryableStatusCodes: ['UNAVAILABLE', 'ABORTED'],
      budget: { kind: 'none' },
    })
    const zero = fromGrpcServiceConfig({ methodConfig: [{ name, hedgingPolicy: { maxAttempts: 2 } }] })
    expect(zero.service.hedge).toEqual({ delay: 0, maxAttempts: 2 })
    expect(zero.service.retry?.retryableStatusCodes).toEqual([])
  })

  it('takes the first balancer meshlet has, and says which it could not take', () => {
    expect(fromGrpcServiceConfig({ loadBalancingConfig: [{ round_robin: {} }] }).service.loadBalancer).toBe(
      'round-robin',
    )
    const t = fromGrpcServiceConfig({
      loadBalancingConfig: [{ pick_first: {} }, { least_request_experimental: {} }],
    })
    expect(t.service.loadBalancer).toBe('least-request')
    expect(t.unsupported).toEqual([])
    const p = fromGrpcServiceConfig({ loadBalancingPolicy: 'pick_first' })
    expect(p.service.loadBalancer).toBeUndefined()
    expect(p.unsupported).toEqual([
      expect.stringMatching(/^loadBalancingPolicy: pick_first: no such balancer/),
    ])
  })

  it('lists every field it could not translate', () => {
    const t = fromGrpcServiceConfig({
      methodConfig: [
        { name: [{ service: 'pkg.Users', method: 'Get' }], timeout: '1s' },
        { name, waitForReady: true, maxRequestMessageBytes: 1024, retryPolicy: { maxAttempts: 1 } },
      ],
      healthCheckConfig: { serviceName: 'pkg.Users' },
      retryThrottling: { maxTokens: 10, tokenRatio: 3 },
      somethingNew: true,
    })
    expect(t.unsupported).toEqual([
      'somethingNew: not a setting meshlet has',
      "retryThrottling.tokenRatio: 3 is above meshlet's maximum of 1; 1 used",
      "healthCheckConfig.serviceName: meshlet's probe asks about the server as a whole ('')",
      "methodConfig[0] (pkg.Users/Get): per-method policies need a route on the method's path",
      'methodConfig[1].waitForReady: meshlet fails an attempt to an unreachable endpoint fast',
      expect.stringMatching(
        /^methodConfig\[1\]\.retryPolicy: invalid \(maxAttempts must be an integer of at least 2; initialBackoff/,
      ),
    ])
    expect(t.service.healthCheck).toEqual({})
    expect(t.service.retry?.budget).toEqual({ kind: 'throttling', maxTokens: 10, tokenRatio: 1 })
    expect(t.service.channelOptions).toEqual({ 'grpc.max_send_message_length': 1024 })
  })

  it('translates message limits into channel options, and refuses a limit that is no byte count', () => {
    const name = [{ service: 'pkg.Users' }]
    const ok = fromGrpcServiceConfig({
      methodConfig: [{ name, maxRequestMessageBytes: '2048', maxResponseMessageBytes: 4096 }],
    })
    expect(ok.unsupported).toEqual([])
    expect(ok.service.channelOptions).toEqual({
      'grpc.max_send_message_length': 2048,
      'grpc.max_receive_message_length': 4096,
    })
    const bad = fromGrpcServiceConfig({ methodConfig: [{ name, maxResponseMessageBytes: -1 }] })
    expect(bad.unsupported).toEqual(['methodConfig[0].maxResponseMessageBytes: invalid byte count -1'])
    expect(bad.service.channelOptions).toBeUndefined()
  })

  it('refuses a method config with both policies, as grpc-js does', () => {
    const t = fromGrpcServiceConfig({
      methodConfig: [{ name, retryPolicy: {}, hedgingPolicy: {} }],
    })
    expect(t.service.retry).toBeUndefined()
    expect(t.unsupported).toEqual([expect.stringMatching(/cannot both be set/)])
  })

  it("chooses the gRPC service's entry when asked, else the one for all services", () => {
    const config = {
      methodConfig: [
        { name: [{}], timeout: '1s' },
        { name: [{ service: 'pkg.Users' }], timeout: '2s' },
        { name: [{ service: 'pkg.Admin' }], timeout: '3s' },
      ],
    }
    const users = fromGrpcServiceConfig(config, { grpcService: 'pkg.Users' })
    expect(users.service.timeout).toBe(2000)
    expect(users.unsupported).toHaveLength(2)
    const all = fromGrpcServiceConfig(config)
    expect(all.service.timeout).toBe(1000)
    expect(
      fromGrpcServiceConfig({ methodConfig: [{ name, timeout: { seconds: 1, nanos: 500_000_000 } }] }).service
        .timeout,
    ).toBe(1500)
  })

  it('clamps an initial backoff above the maximum, saying so', () => {
    const t = fromGrpcServiceConfig({
      methodConfig: [
        {
          name,
          retryPolicy: {
            maxAttempts: 2,
            initialBackoff: '2s',
            maxBackoff: '1s',
            backoffMultiplier: 2,
            retryableStatusCodes: ['UNAVAILABLE'],
          },
        },
      ],
    })
    expect(t.service.retry?.backoff).toEqual({ base: 1000, max: 1000 })
    expect(t.unsupported).toEqual([expect.stringMatching(/initialBackoff: above maxBackoff/)])
  })

  it('throws on something that is not a JSON object', () => {
    expect(() => fromGrpcServiceConfig('[1]')).toThrow(TypeError)
  })
})
