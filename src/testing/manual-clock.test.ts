import { describe, expect, it } from 'vitest'
import { Cancellation } from '../core/cancel.js'
import { ManualClock } from './manual-clock.js'

describe('ManualClock', () => {
  it('runs due timers in time order, ties in the order set, each at its own time', async () => {
    const clock = new ManualClock()
    const seen: string[] = []
    clock.setTimer(() => seen.push(`b@${clock.now()}`), 20)
    clock.setTimer(() => seen.push(`a@${clock.now()}`), 10)
    clock.setTimer(() => seen.push(`a2@${clock.now()}`), 10)
    clock.setTimer(() => seen.push(`c@${clock.now()}`), 30)
    await clock.advance(25)
    expect(seen).toEqual(['a@10', 'a2@10', 'b@20'])
    expect(clock.now()).toBe(25)
    expect(clock.pendingTimers).toBe(1)
  })

  it('lets promise chains run between timers', async () => {
    const clock = new ManualClock()
    const seen: number[] = []
    const loop = async () => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(10)
        seen.push(clock.now())
      }
    }
    const done = loop()
    await clock.advance(100)
    await done
    expect(seen).toEqual([10, 20, 30])
  })

  it('does not run cleared timers and counts them out', async () => {
    const clock = new ManualClock()
    let ran = false
    const t = clock.setTimer(() => {
      ran = true
    }, 5)
    clock.clearTimer(t)
    clock.clearTimer(t)
    expect(clock.pendingTimers).toBe(0)
    await clock.advance(10)
    expect(ran).toBe(false)
  })

  it('sleep rejects with the reason when cancelled and clears its timer', async () => {
    const clock = new ManualClock()
    const cancel = new Cancellation()
    const p = clock.sleep(1000, cancel)
    cancel.abort(new Error('stop'))
    await expect(p).rejects.toThrow('stop')
    expect(clock.pendingTimers).toBe(0)
    expect(cancel.listenerCount).toBe(0)
  })

  it('gives wall time from a fixed start', async () => {
    const clock = new ManualClock({ wallStart: Date.UTC(2030, 0, 1) })
    await clock.advance(1500)
    expect(clock.wall()).toBe(Date.UTC(2030, 0, 1) + 1500)
  })

  it('refuses to go back', async () => {
    await expect(new ManualClock().advance(-1)).rejects.toThrow(RangeError)
  })
})
