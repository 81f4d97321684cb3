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

describe('Cancellation listeners', () => {
  it('run in the order they were added, whether the first slot was freed or not', () => {
    const c = new Cancellation()
    const seen: string[] = []
    const a = () => seen.push('a')
    const offB = c.onAbort(() => seen.push('b'))
    c.listen(a)
    offB()
    // 'a' waits in the array: a new listener must not jump ahead of it into the freed slot.
    c.listen(() => seen.push('c'))
    expect(c.listenerCount).toBe(2)
    c.abort('x')
    expect(seen).toEqual(['a', 'c'])
    expect(c.listenerCount).toBe(0)
  })

  it('off removes one registration of a listener, wherever it is, and nothing else', () => {
    const c = new Cancellation()
    const seen: number[] = []
    const fns = [0, 1, 2, 3].map((i) => () => seen.push(i))
    for (const fn of fns) c.listen(fn)
    c.off(fns[2]!)
    c.off(fns[0]!)
    c.off(() => {})
    expect(c.listenerCount).toBe(2)
    c.abort('x')
    expect(seen).toEqual([1, 3])
  })

  it('listen on an aborted token runs at once and keeps nothing', () => {
    const c = new Cancellation()
    c.abort('why')
    const seen: unknown[] = []
    c.listen((r) => seen.push(r))
    expect(seen).toEqual(['why'])
    expect(c.listenerCount).toBe(0)
    expect(neverCancelled.listen(() => seen.push('never'))).toBeUndefined()
    expect(neverCancelled.listenerCount).toBe(0)
  })
})

describe('ChildCancellation', () => {
  it('is aborted at once as the child of an aborted parent, and release is idempotent', () => {
    const parent = new Cancellation()
    const before = parent.child()
    parent.abort('gone')
    const after = parent.child()
    expect([before.aborted, after.aborted, after.reason]).toEqual([true, true, 'gone'])
    after.release()
    after.release()
    const live = new Cancellation()
    const child = live.child()
    expect(live.listenerCount).toBe(1)
    child.release()
    child.release()
    expect(live.listenerCount).toBe(0)
    live.abort('x')
    expect(child.aborted).toBe(false)
  })
})
