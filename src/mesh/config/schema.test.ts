/** Tests of the schema combinators: their messages and paths, defaults, types and JSON Schema. */
import { describe, expect, expectTypeOf, it } from 'vitest'
import type { ConfigIssue } from '../../core/errors.js'
import {
  type AnySchema,
  array,
  boolean,
  childPath,
  duration,
  formatValue,
  type Input,
  integer,
  literalUnion,
  number,
  type Output,
  object,
  optional,
  record,
  string,
  transform,
  union,
} from './schema.js'

/** Parses and returns the result with the issues as `path: message` lines. */
function run<S extends AnySchema>(
  schema: S,
  value: unknown,
): { value: Output<S> | undefined; issues: string[] } {
  const issues: ConfigIssue[] = []
  const out = schema.parse(value, '', issues) as Output<S> | undefined
  return {
    value: issues.length === 0 ? out : undefined,
    issues: issues.map((i) => `${i.path}: ${i.message}`),
  }
}

describe('formatValue', () => {
  it('shows primitives as JSON and the rest by kind', () => {
    expect(formatValue('fast')).toBe('"fast"')
    expect(formatValue(-1)).toBe('-1')
    expect(formatValue(true)).toBe('true')
    expect(formatValue(null)).toBe('null')
    expect(formatValue([1])).toBe('array')
    expect(formatValue({ a: 1 })).toBe('object')
    expect(formatValue(undefined)).toBe('undefined')
    expect(formatValue(Number.NaN)).toBe('NaN')
  })

  it('cuts long values at 40 characters, keeping a string quoted', () => {
    const shown = formatValue('x'.repeat(100))
    expect(shown).toHaveLength(40)
    expect(shown).toBe(`"${'x'.repeat(37)}…"`)
  })
})

describe('childPath', () => {
  it('joins keys with dots and indexes with brackets', () => {
    expect(childPath('', 'services')).toBe('services')
    expect(childPath('services', 'users')).toBe('services.users')
    expect(childPath('services.users.endpoints', 1)).toBe('services.users.endpoints[1]')
  })

  it('quotes a key that a dot would make ambiguous', () => {
    expect(childPath('services', 'users.prod')).toBe('services["users.prod"]')
    expect(childPath('labels', '')).toBe('labels[""]')
  })
})

describe('scalars', () => {
  it('names the bound that was broken', () => {
    const attempts = integer({ min: 1, max: 10 })
    expect(run(attempts, 3).value).toBe(3)
    expect(run(attempts, -1).issues).toEqual([': expected a positive integer, got -1'])
    expect(run(attempts, 1.5).issues).toEqual([': expected a positive integer, got 1.5'])
    expect(run(attempts, 11).issues).toEqual([': expected a positive integer <= 10, got 11'])
    expect(run(integer({ min: 100, max: 599 }), 700).issues).toEqual([
      ': expected an integer from 100 to 599, got 700',
    ])
    expect(run(integer({ min: 0 }), '1').issues).toEqual([': expected a non-negative integer, got "1"'])
    expect(run(number({ min: 0.5 }), 0.1).issues).toEqual([': expected a number >= 0.5, got 0.1'])
    expect(run(number(), Number.POSITIVE_INFINITY).issues).toEqual([': expected a number, got Infinity'])
  })

  it('checks strings, patterns and booleans', () => {
    expect(run(string(), 5).issues).toEqual([': expected a string, got 5'])
    expect(run(string({ pattern: /^a+$/, expected: 'some a' }), 'b').issues).toEqual([
      ': expected some a, got "b"',
    ])
    expect(run(boolean(), 'yes').issues).toEqual([': expected a boolean, got "yes"'])
    expect(run(boolean(), false).value).toBe(false)
  })

  it('lists the allowed strings of a literal union', () => {
    expect(run(literalUnion(['a', 'b']), 'c').issues).toEqual([': expected one of "a", "b", got "c"'])
    expect(run(literalUnion(['a', 'b']), 'b').value).toBe('b')
  })

  it('turns durations into milliseconds', () => {
    expect(run(duration(), '2s').value).toBe(2000)
    expect(run(duration(), 40).value).toBe(40)
    expect(run(duration(), 'fast').issues).toEqual([
      ': expected a duration (ms number or string like "250ms", "2s"), got "fast"',
    ])
    expect(run(duration(), -5).issues).toHaveLength(1)
  })
})

describe('object', () => {
  const retry = object({
    attempts: optional(integer({ min: 1 }), 3),
    backoff: optional(object({ base: optional(duration(), '25ms') }), {}),
    name: string(),
    zone: optional(string()),
  })

  it('reports a missing required key, applies defaults and keeps absent optionals as undefined', () => {
    expect(run(retry, {}).issues).toEqual(['name: required'])
    const { value } = run(retry, { name: 'x' })
    expect(value).toEqual({ attempts: 3, backoff: { base: 25 }, name: 'x', zone: undefined })
    expect(value && Object.keys(value)).toEqual(['attempts', 'backoff', 'name', 'zone'])
  })

  it('treats an undefined value as an absent key', () => {
    expect(run(retry, { name: 'x', attempts: undefined }).value?.attempts).toBe(3)
  })

  it('suggests the closest known key for an unknown one', () => {
    expect(run(retry, { name: 'x', atempts: 2 }).issues).toEqual([
      ': unknown key "atempts" (did you mean "attempts"?)',
    ])
    expect(run(retry, { name: 'x', bakcoff: {} }).issues).toEqual([
      ': unknown key "bakcoff" (did you mean "backoff"?)',
    ])
    expect(run(retry, { name: 'x', Zone: 'a' }).issues).toEqual([
      ': unknown key "Zone" (did you mean "zone"?)',
    ])
    expect(run(retry, { name: 'x', timeout: 1 }).issues).toEqual([': unknown key "timeout"'])
    expect(run(retry, { name: 'x', z: 1 }).issues).toEqual([': unknown key "z"'])
  })

  it('reports every problem in document order, with paths', () => {
    expect(run(retry, { zone: 1, extra: true, backoff: { base: 'soon' }, attempts: 0 }).issues).toEqual([
      'zone: expected a string, got 1',
      ': unknown key "extra"',
      'backoff.base: expected a duration (ms number or string like "250ms", "2s"), got "soon"',
      'attempts: expected a positive integer, got 0',
      'name: required',
    ])
  })

  it('refuses what is not an object', () => {
    expect(run(retry, []).issues).toEqual([': expected an object, got array'])
    expect(run(retry, null).issues).toEqual([': expected an object, got null'])
  })

  it('resolves a default once and shares it, deeply frozen, between results', () => {
    const limits = object({
      limits: optional(object({ max: optional(integer(), 3), tags: optional(array(string()), []) }), {}),
    })
    const a = run(limits, {}).value
    const b = run(limits, {}).value
    expect(a?.limits).toEqual({ max: 3, tags: [] })
    expect(a?.limits).toBe(b?.limits)
    expect(Object.isFrozen(a?.limits)).toBe(true)
    expect(Object.isFrozen(a?.limits.tags)).toBe(true)
    // What a config writes is its own: only the left-out keys share the default.
    expect(run(limits, { limits: { max: 5 } }).value?.limits).toEqual({ max: 5, tags: [] })
    expect(Object.isFrozen(run(limits, { limits: { max: 5 } }).value?.limits)).toBe(false)
  })

  it('refuses an invalid default when the schema is built', () => {
    expect(() => optional(integer({ min: 1 }), 0)).toThrow(
      'invalid default 0: expected a positive integer, got 0',
    )
  })
})

describe('record', () => {
  it('checks keys and values, with each key in the path', () => {
    const services = record(integer(), { key: string({ pattern: /^[a-z]+$/, expected: 'a name' }) })
    expect(run(services, { a: 1, B: 2, 'c.d': 'x' }).issues).toEqual([
      'B: expected a name, got "B"',
      '["c.d"]: expected a name, got "c.d"',
      '["c.d"]: expected an integer, got "x"',
    ])
  })

  it('keeps a "__proto__" key as data, in a record with no prototype', () => {
    const value = run(record(string()), JSON.parse('{"__proto__": "x"}')).value
    expect(Object.getPrototypeOf(value)).toBe(null)
    expect(value && Object.hasOwn(value, '__proto__')).toBe(true)
    expect(({} as Record<string, unknown>).x).toBeUndefined()
  })

  it('finds no inherited name: constructor and toString are not keys of a record', () => {
    const value = run(record(string()), { a: 'x' }).value as Record<string, unknown>
    expect(value.constructor).toBeUndefined()
    expect(value.toString).toBeUndefined()
  })
})

describe('array', () => {
  it('checks each item and the minimum length', () => {
    const list = array(integer(), { min: 1 })
    expect(run(list, []).issues).toEqual([': expected at least 1 item, got 0'])
    expect(run(list, [1, 'x', 3, null]).issues).toEqual([
      '[1]: expected an integer, got "x"',
      '[3]: expected an integer, got null',
    ])
    expect(run(list, {}).issues).toEqual([': expected an array, got object'])
  })

  it('reports a duplicate at its own index, even when another item is invalid', () => {
    const list = array(string(), { uniqueBy: (s) => s.toLowerCase() })
    expect(run(list, ['a', 5, 'b', 'A']).issues).toEqual([
      '[1]: expected a string, got 5',
      '[3]: duplicate "a" (same as [0])',
    ])
  })
})

describe('union', () => {
  const endpoint = union(string(), object({ url: string(), weight: optional(integer({ min: 1 }), 1) }))

  it("reports the issues of the member that takes the value's kind", () => {
    expect(run(endpoint, { url: 'x', weight: 0 }).issues).toEqual([
      'weight: expected a positive integer, got 0',
    ])
  })

  it('lists every member when none takes the value', () => {
    expect(run(endpoint, 5).issues).toEqual([': expected a string or an object, got 5'])
    const status = union(literalUnion(['5xx']), integer({ min: 100, max: 599 }))
    expect(run(status, true).issues).toEqual([
      ': expected one of "5xx" or an integer from 100 to 599, got true',
    ])
  })

  it('tries members of the same kind in order', () => {
    const either = union(integer({ min: 10 }), number({ max: 1 }))
    expect(run(either, 0.5).value).toBe(0.5)
    expect(run(either, 12).value).toBe(12)
    expect(run(either, 5).issues).toEqual([': expected an integer >= 10 or a number <= 1, got 5'])
  })
})

describe('transform', () => {
  it('reports cross-field issues at a relative path, and only on a valid value', () => {
    const backoff = transform(object({ base: duration(), max: duration() }), (b, issue) => {
      if (b.base > b.max) issue('base above max', 'base')
      return b
    })
    expect(run(object({ backoff }), { backoff: { base: '2s', max: '1s' } }).issues).toEqual([
      'backoff.base: base above max',
    ])
    expect(run(backoff, { base: 'x', max: '1s' }).issues).toHaveLength(1)
  })

  it('converts the value, including a default', () => {
    const upper = optional(
      transform(string(), (s) => s.toUpperCase()),
      'a',
    )
    const holder = object({ name: upper })
    expect(run(holder, { name: 'b' }).value).toEqual({ name: 'B' })
    expect(run(holder, {}).value).toEqual({ name: 'A' })
  })
})

describe('types', () => {
  it('infers what users write and what parsing gives', () => {
    const schema = object({
      mode: optional(literalUnion(['a', 'b']), 'a'),
      timeout: optional(duration(), '1s'),
      zone: optional(string()),
      items: array(union(string(), integer())),
    })
    expectTypeOf<Input<typeof schema>>().toEqualTypeOf<{
      items: readonly (string | number)[]
      mode?: 'a' | 'b'
      timeout?: number | string
      zone?: string
    }>()
    expectTypeOf<Output<typeof schema>>().toEqualTypeOf<{
      mode: 'a' | 'b'
      timeout: number
      zone: string | undefined
      items: (string | number)[]
    }>()
  })
})

describe('jsonSchema', () => {
  it('closes objects, lists enums, and carries defaults and descriptions', () => {
    const schema = object({
      mode: optional(literalUnion(['a', 'b']), 'a').describe('The mode.'),
      count: integer({ min: 1 }),
    })
    expect(schema.jsonSchema()).toEqual({
      type: 'object',
      properties: {
        mode: { description: 'The mode.', type: 'string', enum: ['a', 'b'], default: 'a' },
        count: { type: 'integer', minimum: 1 },
      },
      required: ['count'],
      additionalProperties: false,
    })
  })

  it('lets an outer description win over an inner one', () => {
    expect(string().describe('inner').describe('outer').jsonSchema()).toEqual({
      description: 'outer',
      type: 'string',
    })
    expect(optional(string().describe('inner')).describe('outer').jsonSchema()).toEqual({
      description: 'outer',
      type: 'string',
    })
  })
})

describe('bounds on hostile input (D46)', () => {
  it('reports each hole of an array at its index, as new Array(n) makes them', () => {
    const sparse: unknown[] = [1]
    sparse[2] = 3
    expect(run(array(integer()), sparse).issues).toEqual([
      '[1]: expected an item, got an empty slot (a hole in the array)',
    ])
    expect(run(array(integer()), new Array(2)).issues).toHaveLength(2)
  })

  it('checks a string length before its pattern', () => {
    expect(run(string({ pattern: /^a+$/, maxLength: 3 }), 'aaaa').issues).toEqual([
      ': expected at most 3 characters, got 4',
    ])
    expect(run(string({ pattern: /^a+$/, maxLength: 3 }), 'aaa').issues).toEqual([])
  })

  it('refuses a duration longer than a Node.js timer holds', () => {
    expect(run(duration(), 2_147_483_647).value).toBe(2_147_483_647)
    expect(run(duration(), '600h').issues).toEqual([
      ': expected a duration of at most 2147483647ms (about 24.8 days), got "600h"',
    ])
  })

  it('cuts long keys in paths and messages, and suggests only for short keys', () => {
    const long = 'k'.repeat(100)
    expect(childPath('a', long)).toBe(`a.${'k'.repeat(63)}…`)
    const shape = object({ timeout: optional(integer()) })
    expect(run(shape, { timeot: 1 }).issues).toEqual([': unknown key "timeot" (did you mean "timeout"?)'])
    expect(run(shape, { [`timeout${'t'.repeat(100)}`]: 1 }).issues).toEqual([
      `: unknown key "timeout${'t'.repeat(56)}…"`,
    ])
  })

  it('shows a long string value cut, without quoting all of it', () => {
    expect(formatValue('x'.repeat(1_000_000))).toBe(`"${'x'.repeat(37)}…"`)
  })
})

describe('plain objects only', () => {
  it('refuses a Map, a Set, a Date or a class instance where an object is expected', () => {
    const shape = record(string())
    expect(run(shape, new Map([['a', 'b']])).issues).toEqual([': expected an object, got Map'])
    expect(run(shape, new Set()).issues).toEqual([': expected an object, got Set'])
    expect(run(object({}), new Date(0)).issues).toEqual([': expected an object, got Date'])
    class Config {
      services = {}
    }
    expect(run(object({ services: optional(record(string())) }), new Config()).issues).toEqual([
      ': expected an object, got a class instance',
    ])
  })

  it('accepts an object with no prototype, and one from another realm', async () => {
    const { runInNewContext } = await import('node:vm')
    expect(run(record(string()), Object.create(null)).issues).toEqual([])
    expect(run(record(string()), runInNewContext('({ a: "b" })')).value).toEqual({ a: 'b' })
  })
})
