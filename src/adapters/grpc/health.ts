/**
 * Active health checks for gRPC endpoints: the standard `grpc.health.v1.Health/Check` call
 * (doc/health-checking.md), as a probe for the mesh's health-check scheduler.
 *
 * The two messages are encoded by hand (a string field 1; an enum field 1) instead of through
 * a proto library, so that probing needs nothing beyond grpc-js, and no `.proto` file ships.
 * A probe is healthy when the call ends OK with `SERVING`; `NOT_SERVING`, `SERVICE_UNKNOWN`,
 * `UNIMPLEMENTED` (no health service), any error, and the probe's timeout are unhealthy.
 */
import type { Probe } from '../../stages/balancer/health-check.js'
import type { GrpcChannelEntry, GrpcChannelPool } from './channels.js'
import type { GrpcRawCall } from './grpc-types.js'
import { GrpcStatus } from './status.js'
import { cancelCall, grpcDeadline } from './transport.js'

/** The full method name of the standard health check. */
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check'

/** `HealthCheckResponse.ServingStatus` values. */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const

/** Options of {@link grpcHealthProbe}. */
export interface GrpcHealthProbeOptions {
  /** The channels to probe on (the mesh's, so a probe reuses the endpoint's connection). Required. */
  readonly channels: GrpcChannelPool
  /**
   * The service name sent in `HealthCheckRequest.service`; `''` asks about the server as a
   * whole. Default `''`.
   */
  readonly service?: string
}

/** Encodes `HealthCheckRequest { string service = 1; }` (an empty service is the empty message). */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0)
  const bytes = Buffer.from(service, 'utf8')
  const length: number[] = []
  let n = bytes.length
  while (n > 0x7f) {
    length.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  length.push(n)
  return Buffer.concat([Buffer.from([0x0a, ...length]), bytes])
}

/** Decodes `HealthCheckResponse { ServingStatus status = 1; }`; `undefined` when malformed. */
export function decodeServingStatus(message: Buffer): number | undefined {
  let status: number = ServingStatus.UNKNOWN
  let i = 0
  const varint = (): number | undefined => {
    let value = 0
    for (let shift = 0; shift < 64; shift += 7) {
      if (i >= message.length) return undefined
      const byte = message[i++]!
      if (shift < 32) value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
    }
    return undefined
  }
  while (i < message.length) {
    const tag = varint()
    if (tag === undefined) return undefined
    const field = Math.floor(tag / 8)
    const wire = tag % 8
    if (wire === 0) {
      const v = varint()
      if (v === undefined) return undefined
      if (field === 1) status = v
    } else if (wire === 2) {
      const len = varint()
      if (len === undefined || i + len > message.length) return undefined
      i += len
    } else if (wire === 1 || wire === 5) {
      i += wire === 1 ? 8 : 4
      if (i > message.length) return undefined
    } else {
      return undefined
    }
  }
  return status
}

/**
 * A {@link Probe} that calls `grpc.health.v1.Health/Check` on the endpoint, on the mesh's
 * channel to it, with the probe's deadline as the call's deadline; `ctx.cancel` (the probe's
 * timeout) cancels the call. See the module comment for what counts as healthy.
 *
 * @example
 * ```ts
 * import { GrpcChannelPool, grpcHealthProbe } from 'meshlet'
 * const channels = new GrpcChannelPool()
 * const probe = grpcHealthProbe({ channels, service: 'pkg.Users' })
 * // probe(endpoint, ctx) resolves true while the endpoint answers SERVING
 * ```
 */
export function grpcHealthProbe(options: GrpcHealthProbeOptions): Probe {
  const pool = options.channels
  const request = encodeHealthCheckRequest(options.service ?? '')
  return function grpcHealthCheck(endpoint, ctx) {
    if (ctx.cancel.aborted) return Promise.resolve(false)
    const check = (entry: GrpcChannelEntry): Promise<boolean> =>
      new Promise<boolean>((resolve) => {
        let call: GrpcRawCall
        try {
          call = entry.channel.createCall(HEALTH_CHECK_PATH, grpcDeadline(ctx), undefined, null, undefined)
        } catch {
          pool.release(entry)
          resolve(false)
          return
        }
        let serving = false
        const off = ctx.cancel.onAbort(() => cancelCall(call, GrpcStatus.CANCELLED, 'health check timed out'))
        call.start(pool.metadata(), {
          onReceiveMetadata() {},
          onReceiveMessage(message: Buffer) {
            serving = decodeServingStatus(message) === ServingStatus.SERVING
          },
          onReceiveStatus(status) {
            off()
            pool.release(entry)
            resolve(status.code === GrpcStatus.OK && serving)
          },
        })
        call.sendMessageWithContext({}, request)
        call.halfClose()
        call.startRead()
      })
    try {
      const taken = pool.acquire(endpoint.address)
      return taken instanceof Promise ? taken.then(check, () => false) : check(taken)
    } catch {
      return Promise.resolve(false)
    }
  }
}
