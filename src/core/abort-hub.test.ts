import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { onSignalAbort, signalListenerCount } from './abort-hub.js'

describe('onSignalAbort', () => {
  it('adds one listener to a signal however many register, and removes it with the last', () => {
    const controller = new AbortController()
    const unlinks = Array.from({ length: 100 }, () => onSignalAbort(controller.signal, () => {}))
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1)
    expect(signalListenerCount(controller.signal)).toBe(100)
    for (const unlink of unlinks) unlink()
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
    expect(signalListenerCount(controller.signal)).toBe(0)
  })

  it('runs each registration once, in order, at the abort, and nothing removed', () => {
    const controller = new AbortController()
    const ran: number[] = []
    const same = () => ran.push(0)
    onSignalAbort(controller.signal, same)
    onSignalAbort(controller.signal, same) // two calls may share a function: each runs
    onSignalAbort(controller.signal, () => ran.push(1))
    const removed = onSignalAbort(controller.signal, () => ran.push(2))
    onSignalAbort(controller.signal, () => ran.push(3))
    removed()
    controller.abort()
    controller.abort()
    expect(ran).toEqual([0, 0, 1, 3])
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
  })

  it('lets a listener remove a later one, which then does not run', () => {
    const controller = new AbortController()
    const ran: string[] = []
    let later: () => void = () => {}
    onSignalAbort(controller.signal, () => {
      ran.push('first')
      later()
    })
    later = onSignalAbort(controller.signal, () => ran.push('later'))
    controller.abort()
    expect(ran).toEqual(['first'])
  })

  it('registers nothing on a signal that has aborted, as addEventListener', () => {
    const signal = AbortSignal.abort()
    let ran = false
    onSignalAbort(signal, () => {
      ran = true
    })()
    expect(ran).toBe(false)
    expect(getEventListeners(signal, 'abort')).toHaveLength(0)
  })
})
