/**
 * fast-check arbitraries built from the config schema itself: {@link fromSchema} walks the JSON
 * Schema that the combinators of src/mesh/config/schema.ts emit for `meshConfigSchema` (objects
 * and their keys, records and their key patterns, arrays and their bounds, unions, enums,
 * numeric ranges, string patterns and lengths), so an option added to the schema is generated
 * as soon as it lands, with no list to keep in step. {@link mutate} then turns a value hostile:
 * holes, prototype names, huge and odd numbers, long strings, CR/LF, deep nesting, wrong kinds.
 */
import fc from 'fast-check'

/** The subset of JSON Schema that `schema.ts` emits. */
export interface JsonSchemaNode {
  readonly type?: 'object' | 'array' | 'string' | 'number' | 'integer' | 'boolean'
  readonly properties?: Readonly<Record<string, JsonSchemaNode>>
  readonly required?: readonly string[]
  readonly additionalProperties?: JsonSchemaNode | false
  readonly propertyNames?: JsonSchemaNode
  readonly items?: JsonSchemaNode
  readonly minItems?: number
  readonly maxItems?: number
  readonly anyOf?: readonly JsonSchemaNode[]
  readonly enum?: readonly string[]
  readonly minimum?: number
  readonly maximum?: number
  readonly pattern?: string
  readonly maxLength?: number
}

const ABSENT = Symbol('absent')

/** Numbers near a range's edges, where off-by-one bugs live, besides uniform draws. */
function numberArb(node: JsonSchemaNode): fc.Arbitrary<number> {
  const min = node.minimum ?? -1e6
  const max = node.maximum ?? 1e6
  const integer = node.type === 'integer'
  const inner = integer
    ? fc.integer({ min: Math.max(min, Number.MIN_SAFE_INTEGER), max: Math.min(max, 1e6 + min) })
    : fc.double({ min, max: Math.min(max, 1e6 + min), noNaN: true, noDefaultInfinity: true })
  const edges = [min, max, integer ? min + 1 : min + 0.5].filter((n) => n >= min && n <= max)
  return fc.oneof({ arbitrary: inner, weight: 3 }, { arbitrary: fc.constantFrom(...edges), weight: 1 })
}

function stringArb(node: JsonSchemaNode): fc.Arbitrary<string> {
  const base =
    node.pattern === undefined
      ? fc.string({ maxLength: 8 })
      : fc.stringMatching(new RegExp(node.pattern), { size: 'xsmall' })
  const max = node.maxLength
  return max === undefined ? base : base.filter((s) => s.length <= max)
}

/**
 * An arbitrary of values that `node` describes: valid for each field on its own (cross-field
 * rules, which JSON Schema does not carry, hold or not at random: near-valid values). An
 * optional key is present one time in four.
 */
export function fromSchema(node: JsonSchemaNode): fc.Arbitrary<unknown> {
  if (node.anyOf) return fc.oneof(...node.anyOf.map(fromSchema))
  if (node.enum) return fc.constantFrom(...node.enum)
  switch (node.type) {
    case 'boolean':
      return fc.boolean()
    case 'integer':
    case 'number':
      return numberArb(node)
    case 'string':
      return stringArb(node)
    case 'array': {
      const min = node.minItems ?? 0
      return fc.array(fromSchema(node.items ?? {}), {
        minLength: min,
        maxLength: Math.min(node.maxItems ?? 9, min + 2),
      })
    }
    case 'object': {
      if (node.properties) {
        const required = new Set(node.required ?? [])
        const fields = Object.entries(node.properties).map(([key, field]) => {
          const value = fromSchema(field)
          // An optional key is present one time in four: a config stays small, and each option
          // is still drawn often over thousands of runs.
          const arb = required.has(key)
            ? value
            : fc.oneof({ arbitrary: fc.constant(ABSENT), weight: 3 }, { arbitrary: value, weight: 1 })
          return arb.map((v) => [key, v] as const)
        })
        return fc
          .tuple(...fields)
          .map((entries) => Object.fromEntries(entries.filter(([, v]) => v !== ABSENT)))
      }
      const value = node.additionalProperties ? fromSchema(node.additionalProperties) : fc.anything()
      const key = node.propertyNames ? stringArb(node.propertyNames) : fc.string({ maxLength: 8 })
      // Null-prototype dictionaries too: a config built in code may hold them.
      return fc.dictionary(key, value, { maxKeys: 3 })
    }
    default:
      return fc.anything()
  }
}

/** One hostile change: where (an index into the value's containers), what, and a free choice. */
export interface Mutation {
  readonly at: number
  readonly kind: number
  readonly pick: number
}

export const mutationArb: fc.Arbitrary<Mutation[]> = fc.array(
  fc.record({ at: fc.nat(), kind: fc.nat(), pick: fc.nat() }),
  { maxLength: 3 },
)

/** Names that `Object.prototype` answers for: a lookup by such a name must find nothing. */
export const PROTO_NAMES = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'prototype']

const HUGE_NUMBERS = [
  1e10,
  3e9,
  2 ** 53,
  2 ** 31,
  -1,
  -0,
  0.5,
  1e308,
  5e-324,
  Number.NaN,
  Number.POSITIVE_INFINITY,
]
const HOSTILE_STRINGS: ReadonlyArray<() => string> = [
  () => 'x'.repeat(100_000),
  () => 'a\r\nb: c',
  () => 'a\u0000b',
  () => 'x y',
  () => '\u00ff\u0100',
  () => '1e10ms',
  () => '99999999h',
  () => '%E0%A4%A',
]
const WRONG_KINDS: ReadonlyArray<() => unknown> = [
  () => null,
  () => true,
  () => [],
  () => ({}),
  () => new Array(2),
  () => deep(2000),
  () => undefined,
]

/** A value nested `depth` arrays and objects deep. */
function deep(depth: number): unknown {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v }
  return v
}

/** Every object and array of `value` (iteratively, so a deep value costs no stack). */
function containers(value: unknown, limit = 500): Array<Record<string, unknown> | unknown[]> {
  const out: Array<Record<string, unknown> | unknown[]> = []
  const stack: unknown[] = [value]
  while (stack.length > 0 && out.length < limit) {
    const v = stack.pop()
    if (typeof v !== 'object' || v === null) continue
    out.push(v as Record<string, unknown>)
    for (const child of Object.values(v)) stack.push(child)
  }
  return out
}

/** The members of `target` (indexes or keys) whose value has JSON kind `kind`. */
function membersOf(target: Record<string, unknown> | unknown[], kind: string): string[] {
  return Object.keys(target).filter((k) => typeof (target as Record<string, unknown>)[k] === kind)
}

/**
 * Applies `mutations` to `value` in place: each picks a container and makes a hole, adds a
 * prototype-named or long unknown key, or replaces a member: a string by a prototype name or a
 * hostile string (CR/LF, NUL, 100 KB, non-Latin-1), a number by a huge or odd one, any member by
 * a value of the wrong kind (null, a sparse array, a value nested 2,000 deep).
 */
export function mutate(value: unknown, mutations: readonly Mutation[]): void {
  for (const m of mutations) {
    const all = containers(value)
    if (all.length === 0) return
    const target = all[m.at % all.length]! as Record<string, unknown>
    const keys = Object.keys(target)
    const choose = <T>(list: readonly T[]): T => list[m.pick % list.length]!
    switch (m.kind % 7) {
      case 0: {
        // A hole: an index left empty, or an array made sparse.
        if (Array.isArray(target)) {
          if (target.length === 0) target.length = 1
          else delete target[m.pick % target.length]
        } else if (keys.length > 0) {
          target[choose(keys)] = new Array(1 + (m.pick % 3))
        }
        break
      }
      case 1: {
        // A prototype name as an own key (JSON.parse makes "__proto__" one).
        if (!Array.isArray(target)) {
          Object.defineProperty(target, choose(PROTO_NAMES), {
            value: {},
            enumerable: true,
            writable: true,
            configurable: true,
          })
        }
        break
      }
      case 2: {
        if (!Array.isArray(target)) target[`k${'y'.repeat(m.pick % 2 ? 100_000 : 70)}`] = 1
        break
      }
      case 3:
      case 4: {
        const strings = membersOf(target, 'string')
        if (strings.length > 0) {
          const hostile = m.kind % 7 === 3 ? choose(PROTO_NAMES) : choose(HOSTILE_STRINGS)()
          target[choose(strings)] = hostile
        }
        break
      }
      case 5: {
        const numbers = membersOf(target, 'number')
        if (numbers.length > 0) target[choose(numbers)] = choose(HUGE_NUMBERS)
        break
      }
      default: {
        if (keys.length > 0) target[choose(keys)] = choose(WRONG_KINDS)()
      }
    }
  }
}
