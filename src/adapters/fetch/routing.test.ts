import { describe, expect, it } from 'vitest'
import { parseCookies } from './routing.js'

describe('parseCookies', () => {
  it('takes values as octets: a % is no escape, and a malformed one never throws', () => {
    expect(parseCookies('session=abc; promo=50%off; bad=%E0%A4%A')).toEqual(
      new Map([
        ['session', 'abc'],
        ['promo', '50%off'],
        ['bad', '%E0%A4%A'],
      ]),
    )
  })

  it('removes one pair of surrounding quotes, keeps the first of a name, skips nameless parts', () => {
    expect(parseCookies('a="q v"; a=second; =x; novalue; b=')).toEqual(
      new Map([
        ['a', 'q v'],
        ['b', ''],
      ]),
    )
  })

  it("reads fetch's joined form of two Cookie headers (', ')", () => {
    expect(parseCookies('a=1, b=2')).toEqual(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    )
    expect(parseCookies(null).size).toBe(0)
  })
})
