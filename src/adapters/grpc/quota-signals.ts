/**
 * What the quota stage reads of a gRPC answer: RESOURCE_EXHAUSTED and UNAVAILABLE are refusals
 * for load, and `grpc-retry-pushback-ms` on them (read by {@link parsePushback}, as the retry
 * stage reads it) is the pause the server asked for. A negative pushback ("do not retry") asks
 * for no pause.
 */
import type { ServerSignals } from '../../stages/quota/quota.js'
import { parsePushback } from './protocol.js'
import type { GrpcResponse } from './request.js'

const RESOURCE_EXHAUSTED = 8
const UNAVAILABLE = 14

function refusal(ok: boolean, result: unknown): GrpcResponse | undefined {
  if (!ok) return undefined
  const res = result as GrpcResponse
  const code = res.status?.code
  return code === RESOURCE_EXHAUSTED || code === UNAVAILABLE ? res : undefined
}

/** The gRPC {@link ServerSignals}. */
export const grpcQuotaSignals: ServerSignals = {
  rejected: (ok, result) => refusal(ok, result) !== undefined,
  pause(ok, result) {
    const res = refusal(ok, result)
    if (res === undefined) return undefined
    const ms = parsePushback(res.status!.metadata)
    return ms === undefined || ms < 0 ? undefined : ms
  },
}
