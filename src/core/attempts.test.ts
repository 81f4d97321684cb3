import { describe, expect, it } from 'vitest'
import { Attempted } from './attempts.js'

describe('Attempted', () => {
  it('answers has() for the first pick and the later ones, and never for undefined', () => {
    const a = new Attempted()
    const [e1, e2, e3] = [{}, {}, {}]
    expect([a.has(undefined), a.has(e1)]).toEqual([false, false])
    a.add(e1)
    expect([a.has(e1), a.has(e2), a.has(undefined)]).toEqual([true, false, false])
    a.add(e2)
    a.add(e3)
    expect([a.has(e1), a.has(e2), a.has(e3), a.has({})]).toEqual([true, true, true, false])
  })
})
