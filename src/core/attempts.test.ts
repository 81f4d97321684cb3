import { describe, expect, it } from 'vitest'
import { Attempted } from './attempts.js'

describe('Attempted', () => {
  it('records picks in order and answers has() for the first and the later ones', () => {
    const a = new Attempted()
    const [e1, e2, e3] = [{}, {}, {}]
    expect(a.size).toBe(0)
    expect(a.has(undefined)).toBe(false)
    a.add(e1)
    expect([a.size, a.has(e1), a.has(e2)]).toEqual([1, true, false])
    a.add(e2)
    a.add(e2)
    expect([a.size, a.has(e2), a.has(e3)]).toEqual([3, true, false])
  })
})
