import { describe, expect, it } from 'vitest'
import {
  BulkheadFullError,
  CircuitOpenError,
  MeshClosedError,
  MeshError,
  NoHealthyEndpointError,
  RetryBudgetExhaustedError,
  TimeoutError,
} from '../../core/errors.js'
import { GrpcStatus, statusCode, statusName, statusOfError } from './status.js'

describe('status codes', () => {
  it('maps names and numbers both ways', () => {
    expect(statusName(14)).toBe('UNAVAILABLE')
    expect(statusName(17)).toBeUndefined()
    expect(statusCode('deadline_exceeded')).toBe(4)
    expect(statusCode(16)).toBe(16)
    expect(statusCode('NOPE')).toBeUndefined()
  })
})

describe('statusOfError', () => {
  it('maps each mesh failure to its gRPC status, keeping the code and the error', () => {
    const cases: Array<[MeshError, number]> = [
      [new TimeoutError('call', 10), GrpcStatus.DEADLINE_EXCEEDED],
      [new CircuitOpenError('users', 0), GrpcStatus.UNAVAILABLE],
      [new NoHealthyEndpointError('users'), GrpcStatus.UNAVAILABLE],
      [new MeshClosedError(), GrpcStatus.UNAVAILABLE],
      [new BulkheadFullError('users', 'full'), GrpcStatus.RESOURCE_EXHAUSTED],
      [new MeshError('RATE_LIMITED', 'slow down'), GrpcStatus.RESOURCE_EXHAUSTED],
      [new MeshError('ACCESS_DENIED', 'no'), GrpcStatus.PERMISSION_DENIED],
    ]
    for (const [error, code] of cases) {
      const s = statusOfError(error)
      expect(s.code).toBe(code)
      expect(s.meshCode).toBe(error.code)
      expect(s.cause).toBe(error)
      expect(s.details).toBe(error.message)
    }
  })

  it('reports an exhausted budget with the status of the last error, else RESOURCE_EXHAUSTED', () => {
    const afterTimeout = statusOfError(new RetryBudgetExhaustedError('users', new TimeoutError('attempt', 5)))
    expect(afterTimeout.code).toBe(GrpcStatus.DEADLINE_EXCEEDED)
    expect(afterTimeout.meshCode).toBe('RETRY_BUDGET_EXHAUSTED')
    expect(statusOfError(new RetryBudgetExhaustedError('users', new Error('x'))).code).toBe(
      GrpcStatus.RESOURCE_EXHAUSTED,
    )
  })

  it('maps cancellations to CANCELLED and anything else to INTERNAL', () => {
    const abort = new Error('stop')
    abort.name = 'AbortError'
    expect(statusOfError(abort).code).toBe(GrpcStatus.CANCELLED)
    expect(statusOfError(new Error('bug')).code).toBe(GrpcStatus.INTERNAL)
    expect(statusOfError('text').details).toBe('text')
  })
})
