import { Metadata } from '@grpc/grpc-js'
import { describe, expect, it } from 'vitest'
import { Cancellation } from '../../core/cancel.js'
import { MeshCall, type MeshCallSite } from './call.js'
import type { GrpcCallListener, GrpcMetadata, GrpcStatusObject } from './grpc-types.js'

/** A site that records what the call asked of it. */
function site() {
  const asked: string[] = []
  const s: MeshCallSite = {
    invoke() {
      asked.push('invoke')
    },
    bypass() {
      asked.push('bypass')
      return undefined
    },
  }
  return { s, asked }
}

function listener() {
  const statuses: GrpcStatusObject[] = []
  const l: GrpcCallListener = {
    onReceiveMetadata() {},
    onReceiveMessage() {},
    onReceiveStatus: (status) => statuses.push(status),
  }
  return { l, statuses }
}

describe('MeshCall', () => {
  it('cancelled before start (an interceptor passed the cancel first): never sent, and reports the status at start', async () => {
    for (const kind of ['unary', 'server-stream', 'bidi'] as const) {
      const { s, asked } = site()
      const call = new MeshCall(
        s,
        {},
        '/pkg.S/M',
        kind,
        Number.POSITIVE_INFINITY,
        undefined,
        undefined,
        undefined,
      )
      call.cancelWithStatus(1, 'Cancelled on client')
      const { l, statuses } = listener()
      call.start(new Metadata() as unknown as GrpcMetadata, l)
      call.sendMessageWithContext({}, Buffer.from('x'))
      call.halfClose()
      await Promise.resolve()
      expect(asked).toEqual([])
      expect(statuses.map((x) => [x.code, x.details])).toEqual([[1, 'Cancelled on client']])
      expect(statuses[0]!.metadata).toBeInstanceOf(Metadata)
    }
  })

  it('cancelled after it began but before the pipeline bound its cancellation: the cancellation is aborted at once', async () => {
    const { s } = site()
    const call = new MeshCall(
      s,
      {},
      '/pkg.S/M',
      'bidi',
      Number.POSITIVE_INFINITY,
      undefined,
      undefined,
      undefined,
    )
    const { l, statuses } = listener()
    call.start(new Metadata() as unknown as GrpcMetadata, l)
    call.cancelWithStatus(1, 'Cancelled on client')
    const cancel = new Cancellation()
    call.bindCancel(cancel)
    expect(cancel.aborted).toBe(true)
    await Promise.resolve()
    expect(statuses.map((x) => x.code)).toEqual([1])
  })
})
