import { describe, expect, it } from 'vitest'
import { Cancellation, neverCancelled } from './cancel.js'

describe('Cancellation', () => {
  it('runs listeners once with the reason and then holds none', () => {
    const c = new Cancellation()
    const seen: unknown[] = []
    c.onAbort((r) => seen.push(r))
    c.abort('why')
    c.abort('again')
    expect(seen).toEqual(['why'])
    expect(c.aborted).toBe(true)
    expect(c.reason).toBe('why')
    expect(c.listenerCount).toBe(0)
  })

  it('calls a late listener at once', () => {
    const c = new Cancellation()
    c.abort(1)
    let got: unknown
    c.onAbort((r) => {
      got = r
    })
    expect(got).toBe(1)
  })

  it('aborts children with the parent, and a released child is detached', () => {
    const parent = new Cancellation()
    const kept = parent.child()
    const released = parent.child()
    released.release()
    expect(parent.listenerCount).toBe(1)
    parent.abort('stop')
    expect(kept.aborted).toBe(true)
    expect(kept.reason).toBe('stop')
    expect(released.aborted).toBe(false)
  })

  it('materialises one AbortSignal lazily that follows the token', () => {
    const c = new Cancellation()
    const s = c.signal()
    expect(c.signal()).toBe(s)
    expect(s.aborted).toBe(false)
    c.abort(new Error('x'))
    expect(s.aborted).toBe(true)
    expect((s.reason as Error).message).toBe('x')
  })

  it('neverCancelled ignores abort', () => {
    neverCancelled.abort('x')
    expect(neverCancelled.aborted).toBe(false)
    expect(neverCancelled.listenerCount).toBe(0)
  })
})
