import { afterEach, describe, expect, it, vi } from 'vitest'
import { pendingSystemTimers, systemClock } from './clock.js'

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

describe('systemClock timers (one native timer under a heap)', () => {
  afterEach(() => {
    vi.restoreAllMocks()
    vi.useRealTimers()
  })

  it('runs timers in due order, each once, and never a cleared one', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const ran: string[] = []
    systemClock.setTimer(() => ran.push('c'), 30)
    const b = systemClock.setTimer(() => ran.push('b'), 20)
    systemClock.setTimer(() => ran.push('a'), 10)
    systemClock.setTimer(() => ran.push('d'), 40)
    systemClock.clearTimer(b)
    systemClock.clearTimer(b)
    expect(pendingSystemTimers()).toBe(3)
    vi.advanceTimersByTime(9)
    expect(ran).toEqual([])
    vi.advanceTimersByTime(1)
    expect(ran).toEqual(['a'])
    vi.advanceTimersByTime(30)
    expect(ran).toEqual(['a', 'c', 'd'])
    expect(pendingSystemTimers()).toBe(0)
  })

  it('keeps one native timer for any number of pending timers', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const handles = Array.from({ length: 1000 }, (_, i) => systemClock.setTimer(() => {}, 15_000 - i / 7))
    expect(pendingSystemTimers()).toBe(1000)
    expect(vi.getTimerCount()).toBe(1)
    for (const h of handles) systemClock.clearTimer(h)
    expect(pendingSystemTimers()).toBe(0)
  })

  it('does not re-arm when the earliest timer is cleared: the native timer finds nothing and re-arms', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    let ran = 0
    const first = systemClock.setTimer(() => ran++, 100)
    const set = vi.spyOn(globalThis, 'setTimeout')
    const clear = vi.spyOn(globalThis, 'clearTimeout')
    systemClock.setTimer(() => ran++, 300)
    systemClock.clearTimer(first)
    // The later timer joins the armed native timer; clearing the earliest touches none.
    expect(set).not.toHaveBeenCalled()
    expect(clear).not.toHaveBeenCalled()
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(100)
    expect(ran).toBe(0)
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(199)
    expect(ran).toBe(0)
    vi.advanceTimersByTime(1)
    expect(ran).toBe(1)
    expect(vi.getTimerCount()).toBe(0)
    // Fired empty at 100 and re-armed once, at 300; nothing was ever cleared.
    expect(set).toHaveBeenCalledTimes(1)
    expect(clear).not.toHaveBeenCalled()
  })

  it('a timer set by a callback, or earlier than the armed one, runs on time', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const ran: number[] = []
    systemClock.setTimer(() => {
      ran.push(performance.now())
      systemClock.setTimer(() => ran.push(performance.now()), 5)
    }, 50)
    systemClock.setTimer(() => ran.push(performance.now()), 20)
    const start = performance.now()
    vi.advanceTimersByTime(100)
    expect(ran.map((t) => t - start)).toEqual([20, 50, 55])
  })

  it('trusts the native timer where only setTimeout is faked (performance.now() stands still)', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    const ran: string[] = []
    systemClock.setTimer(() => ran.push('a'), 1_000)
    systemClock.setTimer(() => ran.push('b'), 2_000)
    vi.advanceTimersByTime(1_000)
    expect(ran).toEqual(['a'])
    vi.advanceTimersByTime(1_000)
    expect(ran).toEqual(['a', 'b'])
  })

  it('setTimerAt runs a timer when performance.now() reaches the time given', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const ran: number[] = []
    const start = performance.now()
    systemClock.setTimerAt!(() => ran.push(performance.now() - start), start + 30)
    systemClock.setTimerAt!(() => ran.push(performance.now() - start), start + 10)
    vi.advanceTimersByTime(9)
    expect(ran).toEqual([])
    vi.advanceTimersByTime(21)
    expect(ran).toEqual([10, 30])
  })

  it('a delay beyond setTimeout’s 2^31 - 1 ms neither fires early nor warns', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const warn = vi.spyOn(process, 'emitWarning')
    let ran = false
    systemClock.setTimer(() => {
      ran = true
    }, 2 ** 32)
    vi.advanceTimersByTime(2 ** 31)
    expect(ran).toBe(false)
    vi.advanceTimersByTime(2 ** 31)
    expect(ran).toBe(true)
    expect(warn).not.toHaveBeenCalled()
    warn.mockRestore()
  })

  it('a callback that throws: the other due timers still run, then the error escapes', () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    const ran: string[] = []
    systemClock.setTimer(() => {
      throw new Error('boom')
    }, 10)
    systemClock.setTimer(() => ran.push('same time'), 10)
    systemClock.setTimer(() => ran.push('later'), 20)
    expect(() => vi.advanceTimersByTime(10)).toThrow('boom')
    expect(ran).toEqual(['same time'])
    vi.advanceTimersByTime(10)
    expect(ran).toEqual(['same time', 'later'])
  })

  it('holds the process only while a timer is pending (real timers, nothing awaited)', () => {
    const before = activeTimeouts()
    const handles = [systemClock.setTimer(() => {}, 60_000), systemClock.setTimer(() => {}, 30_000)]
    expect(activeTimeouts()).toBe(before + 1)
    for (const h of handles) systemClock.clearTimer(h)
    expect(activeTimeouts()).toBe(before)
    const again = systemClock.setTimer(() => {}, 90_000)
    expect(activeTimeouts()).toBe(before + 1)
    systemClock.clearTimer(again)
    expect(activeTimeouts()).toBe(before)
  })

  it('sleep resolves on time and, when cancelled, rejects and leaves no timer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
    let slept = false
    const sleeping = systemClock.sleep(25).then(() => {
      slept = true
    })
    await vi.advanceTimersByTimeAsync(25)
    await sleeping
    expect(slept).toBe(true)
    const { Cancellation } = await import('./cancel.js')
    const cancel = new Cancellation()
    const cancelled = systemClock.sleep(1_000, cancel)
    cancel.abort(new Error('stop'))
    await expect(cancelled).rejects.toThrow('stop')
    expect(pendingSystemTimers()).toBe(0)
  })
})
