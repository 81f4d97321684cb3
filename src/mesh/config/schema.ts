/**
 * A tiny schema-combinator library: one definition yields the parser, the TypeScript types and
 * the JSON Schema, so they cannot drift apart, and every message is ours.
 *
 * Parsing never throws: each schema pushes every problem it finds to an `issues` array, with its
 * path (`services.users.endpoints[1].weight`), and keeps going, so a user fixes a config in one
 * pass. A parse succeeded when it pushed no issue; its result means nothing otherwise.
 */

import type { ConfigIssue } from '../../core/errors.js'
import { DURATION_PATTERN, type Duration, toMilliseconds } from './duration.js'

/** The JSON kinds of value; a union dispatches on them to report the issues of the member meant. */
export type JsonKind = 'string' | 'number' | 'boolean' | 'null' | 'array' | 'object'

/** Reports an issue at a path relative to the value checked: `issue('too long', 'base')`. */
export type Report = (message: string, ...at: readonly (string | number)[]) => void

/**
 * Parses `unknown` into `Out`, collecting issues; `In` is what users may write. `Opt` says whether
 * an {@link object} key holding this schema may be left out (see {@link optional}).
 */
export interface Schema<In, Out, Opt extends boolean = false> {
  /** Carries the types for {@link Input} and {@link Output}; never present at runtime. */
  readonly '~types'?: { readonly input: In; readonly output: Out }
  /** Whether an object key holding this schema may be absent. */
  readonly isOptional: Opt
  /** What is expected, as a noun phrase for messages: `a positive integer`. */
  readonly expected: string
  /** The kinds of JSON value this schema may accept. */
  readonly kinds: readonly JsonKind[]
  /** Parses `value` found at `path`, pushing each problem to `issues`. */
  parse(value: unknown, path: string, issues: ConfigIssue[]): Out | undefined
  /** The value of an absent key at `path`: the default, `undefined`, or a `required` issue. */
  missing(path: string, issues: ConfigIssue[]): Out | undefined
  /** This schema as JSON Schema (draft 2020-12), for editors. */
  jsonSchema(): Record<string, unknown>
  /** The same schema with a description for its JSON Schema. */
  describe(text: string): Schema<In, Out, Opt>
}

/** Any schema; the constraint of the type helpers. */
export type AnySchema = Schema<unknown, unknown, boolean>
/** What users may write for `S`. */
export type Input<S extends AnySchema> = NonNullable<S['~types']>['input']
/** What parsing `S` gives: defaults applied, conversions done. */
export type Output<S extends AnySchema> = NonNullable<S['~types']>['output']

type Shape = Record<string, AnySchema>
type Simplify<T> = { [K in keyof T]: T[K] } & {}
type OptionalKey<S extends Shape> = { [K in keyof S]: S[K]['isOptional'] extends true ? K : never }[keyof S]
/**
 * The input of {@link object}: keys holding an {@link optional} schema may be left out or be
 * `undefined` (so a resolved config, whose absent options read `undefined`, can be fed back).
 */
export type ObjectInput<S extends Shape> = Simplify<
  { [K in keyof S as K extends OptionalKey<S> ? never : K]: Input<S[K]> } & {
    [K in keyof S as K extends OptionalKey<S> ? K : never]?: Input<S[K]> | undefined
  }
>
/** The output of {@link object}: every key present. */
export type ObjectOutput<S extends Shape> = Simplify<{ [K in keyof S]: Output<S[K]> }>

interface Definition<Out> {
  readonly expected: string
  readonly kinds: readonly JsonKind[]
  parse(value: unknown, path: string, issues: ConfigIssue[]): Out | undefined
  missing?(path: string, issues: ConfigIssue[]): Out | undefined
  json(): Record<string, unknown>
}

function required(path: string, issues: ConfigIssue[]): undefined {
  issues.push({ path, message: 'required' })
  return undefined
}

/** The one constructor of schemas; every builder below is a {@link Definition}. */
function build<In, Out, Opt extends boolean>(
  def: Definition<Out>,
  isOptional: Opt,
  description?: string,
): Schema<In, Out, Opt> {
  return {
    isOptional,
    expected: def.expected,
    kinds: def.kinds,
    parse: def.parse,
    missing: def.missing ?? required,
    // `description` comes first for readers and wins over an inner one.
    jsonSchema: () =>
      description === undefined ? def.json() : Object.assign({ description }, def.json(), { description }),
    describe: (text) => build<In, Out, Opt>(def, isOptional, text),
  }
}

/** A schema whose key is required. */
function define<In, Out>(def: Definition<Out>): Schema<In, Out> {
  return build(def, false)
}

/** The kind of a value, as JSON sees it; `undefined`, functions and the like are none. */
function kindOf(value: unknown): JsonKind | undefined {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  const type = typeof value
  if (type === 'object') return isPlain(value as object) ? 'object' : undefined
  return type === 'string' || type === 'number' || type === 'boolean' ? type : undefined
}

/**
 * Whether `value` is a plain object: its prototype is `Object.prototype` (of any realm) or none.
 * A `Map`, `Set` or `Date` (YAML's `!!omap`, `!!set`, `!!timestamp`) or a class instance is no
 * JSON object: read by its own keys it would pass as `{}`, silently dropping what it holds.
 */
function isPlain(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === null || Object.getPrototypeOf(proto) === null
}

/** A value as messages show it: JSON for primitives, the kind for the rest, at most 40 characters. */
export function formatValue(value: unknown): string {
  const kind = kindOf(value)
  if (kind === 'array' || kind === 'object' || kind === 'null') return kind
  // Not a JSON value (a Map, a Date, a class instance): its tag, never its own toString.
  if (typeof value === 'object') {
    const tag = Object.prototype.toString.call(value).slice(8, -1)
    return tag === 'Object' ? 'a class instance' : tag
  }
  // A long string is cut before it is quoted: a megabyte value costs no megabyte of work.
  const text = typeof value === 'string' ? JSON.stringify(value.slice(0, 41)) : String(value)
  if (text.length <= 40) return text
  return typeof value === 'string' ? `${text.slice(0, 38)}…"` : `${text.slice(0, 39)}…`
}

/** Keys and values longer than this are cut in paths and messages, which stay bounded (D46). */
const MAX_SHOWN = 64

/** `text` when at most {@link MAX_SHOWN} characters long, else its start and `…`. */
function cut(text: string): string {
  return text.length <= MAX_SHOWN ? text : `${text.slice(0, MAX_SHOWN - 1)}…`
}

/**
 * The path of `key` inside `path`: `a.b`, `a[0]`, or `a["x.y"]` when a key would be ambiguous.
 * A key longer than {@link MAX_SHOWN} characters is shown cut, ending in `…`.
 */
export function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  const shown = cut(key)
  if (!isPlainKey(shown)) return `${path}[${JSON.stringify(shown)}]`
  return path === '' ? shown : `${path}.${shown}`
}

/** Whether `key` can follow a dot in a path (no space, dot, bracket or quote). */
function isPlainKey(key: string): boolean {
  return /^[^\s.[\]"]+$/.test(key)
}

function fail(issues: ConfigIssue[], path: string, expected: string, value: unknown): undefined {
  issues.push({ path, message: `expected ${expected}, got ${formatValue(value)}` })
  return undefined
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return kindOf(value) === 'object'
}

function oneOf(phrases: readonly string[]): string {
  return phrases.length <= 1 ? phrases.join('') : `${phrases.slice(0, -1).join(', ')} or ${phrases.at(-1)}`
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => i || j),
  )
  const at = (i: number, j: number): number => rows[i]?.[j] ?? Number.POSITIVE_INFINITY
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, at(i - 2, j - 2) + 1)
      const row = rows[i]
      if (row) row[j] = best
    }
  }
  return at(a.length, b.length)
}

/**
 * The message of an unknown key, with the closest known key within two edits. Suggestions are
 * computed only for keys of at most {@link MAX_SHOWN} characters whose length is within two of
 * the candidate's (the distance is at least the length difference), so a hostile key of a
 * megabyte costs one length check, not an edit-distance table (D46).
 */
function unknownKey(key: string, known: readonly string[]): string {
  let closest: string | undefined
  let closestDistance = 3 // suggest only within two edits
  for (const candidate of key.length <= MAX_SHOWN ? known : []) {
    if (Math.abs(candidate.length - key.length) >= closestDistance) continue
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase())
    if (distance < closestDistance && distance < key.length) {
      closest = candidate
      closestDistance = distance
    }
  }
  const hint = closest === undefined ? '' : ` (did you mean ${JSON.stringify(closest)}?)`
  return `unknown key ${JSON.stringify(cut(key))}${hint}`
}

/** An object with exactly the keys of `shape`; any other key is an issue, with a suggestion. */
export function object<S extends Shape>(shape: S): Schema<ObjectInput<S>, ObjectOutput<S>> {
  const fields = Object.entries(shape)
  const keys = fields.map(([key]) => key)
  const schemas = fields.map(([, field]) => field)
  const position = new Map(keys.map((key, i) => [key, i]))
  // Each field's path below its object's, worked out once: a parse of a large config (1,000
  // services) builds a path for every field it visits, given or defaulted.
  const tails = keys.map((key) => (isPlainKey(key) ? `.${key}` : `[${JSON.stringify(key)}]`))
  const heads = keys.map((key) => (isPlainKey(key) ? key : `[${JSON.stringify(key)}]`))
  const at = (path: string, i: number): string => (path === '' ? (heads[i] as string) : path + tails[i])
  return define({
    expected: 'an object',
    kinds: ['object'],
    parse(value, path, issues) {
      if (!isRecord(value)) return fail(issues, path, 'an object', value)
      const before = issues.length
      const given: unknown[] = new Array(keys.length)
      // Walk the input's keys so issues come in document order.
      for (const key of Object.keys(value)) {
        const i = position.get(key)
        if (i === undefined) issues.push({ path, message: unknownKey(key, keys) })
        else if (value[key] !== undefined)
          given[i] = (schemas[i] as AnySchema).parse(value[key], at(path, i), issues)
      }
      const out: Record<string, unknown> = {}
      for (let i = 0; i < keys.length; i++) {
        const parsed = given[i]
        out[keys[i] as string] =
          parsed !== undefined || i in given ? parsed : (schemas[i] as AnySchema).missing(at(path, i), issues)
      }
      return issues.length > before ? undefined : (out as ObjectOutput<S>)
    },
    json: () => {
      const properties = Object.fromEntries(fields.map(([key, field]) => [key, field.jsonSchema()]))
      const requiredKeys = fields.filter(([, field]) => !field.isOptional).map(([key]) => key)
      return {
        type: 'object',
        properties,
        ...(requiredKeys.length > 0 ? { required: requiredKeys } : {}),
        additionalProperties: false,
      }
    },
  })
}

/**
 * An object with any string keys, each value matching `value`, each key matching `options.key`.
 * Only the input's own keys are read, and the output has no prototype: a lookup by a name from a
 * config or a call (`services[name]`) never finds `constructor`, `toString` or `__proto__` from
 * `Object.prototype`, and a `"__proto__"` key is plain data (D47).
 */
export function record<In, Out>(
  value: Schema<In, Out, boolean>,
  options: { readonly key?: Schema<string, string, boolean> } = {},
): Schema<Record<string, In>, Record<string, Out>> {
  const { key: keySchema } = options
  return define({
    expected: 'an object',
    kinds: ['object'],
    parse(input, path, issues) {
      if (!isRecord(input)) return fail(issues, path, 'an object', input)
      const before = issues.length
      // No prototype: assignment then makes a "__proto__" key an own property, not a setter call.
      const out = Object.create(null) as Record<string, Out | undefined>
      for (const key of Object.keys(input)) {
        const at = childPath(path, key)
        keySchema?.parse(key, at, issues)
        out[key] = value.parse(input[key], at, issues)
      }
      return issues.length > before ? undefined : (out as Record<string, Out>)
    },
    json: () => ({
      type: 'object',
      ...(keySchema ? { propertyNames: keySchema.jsonSchema() } : {}),
      additionalProperties: value.jsonSchema(),
    }),
  })
}

/**
 * An array of `item`, with at least `min` items (default 0), none sharing the key `uniqueBy`
 * gives. Every index is checked: a hole is an issue.
 */
export function array<In, Out>(
  item: Schema<In, Out, boolean>,
  options: { readonly min?: number; readonly uniqueBy?: (item: Out) => string } = {},
): Schema<readonly In[], Out[]> {
  const { min = 0, uniqueBy } = options
  return define({
    expected: 'an array',
    kinds: ['array'],
    parse(value, path, issues) {
      if (!Array.isArray(value)) return fail(issues, path, 'an array', value)
      const before = issues.length
      if (value.length < min) {
        issues.push({
          path,
          message: `expected at least ${min} item${min === 1 ? '' : 's'}, got ${value.length}`,
        })
      }
      const firstIndex = new Map<string, number>()
      const out: Out[] = []
      // Every index, holes included: `map` and `forEach` skip holes, which then pass unchecked.
      for (let i = 0; i < value.length; i++) {
        const at = childPath(path, i)
        if (!(i in value)) {
          issues.push({ path: at, message: 'expected an item, got an empty slot (a hole in the array)' })
          continue
        }
        const count = issues.length
        const parsed = item.parse(value[i], at, issues)
        // Only items that parsed are compared, so one bad item does not hide a duplicate.
        if (uniqueBy && issues.length === count) {
          const key = uniqueBy(parsed as Out)
          const first = firstIndex.get(key)
          if (first === undefined) firstIndex.set(key, i)
          else issues.push({ path: at, message: `duplicate ${formatValue(key)} (same as [${first}])` })
        }
        out.push(parsed as Out)
      }
      return issues.length > before ? undefined : out
    },
    json: () => ({ type: 'array', items: item.jsonSchema(), ...(min > 0 ? { minItems: min } : {}) }),
  })
}

/** One of the given strings. */
export function literalUnion<const T extends readonly string[]>(values: T): Schema<T[number], T[number]> {
  const expected = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`
  return define({
    expected,
    kinds: ['string'],
    parse: (value, path, issues) =>
      values.includes(value as string) ? (value as T[number]) : fail(issues, path, expected, value),
    json: () => ({ type: 'string', enum: [...values] }),
  })
}

/** Bounds of a number, both inclusive. */
export interface NumberOptions {
  readonly min?: number
  readonly max?: number
}

function numeric(integer: boolean, { min, max }: NumberOptions): Schema<number, number> {
  const noun = integer ? 'integer' : 'number'
  const article = integer ? 'an' : 'a'
  const ranged = min !== undefined && max !== undefined && min !== 0 && !(integer && min === 1)
  // 'a positive integer' when the lower bound is broken, 'a positive integer <= 10' for the upper.
  const lower = ranged
    ? `${article} ${noun} from ${min} to ${max}`
    : min === undefined
      ? `${article} ${noun}`
      : min === 0
        ? `a non-negative ${noun}`
        : integer && min === 1
          ? 'a positive integer'
          : `${article} ${noun} >= ${min}`
  const upper = ranged || max === undefined ? lower : `${lower} <= ${max}`
  return define({
    expected: upper,
    kinds: ['number'],
    parse(value, path, issues) {
      if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
        return fail(issues, path, lower, value)
      }
      if (min !== undefined && value < min) return fail(issues, path, lower, value)
      if (max !== undefined && value > max) return fail(issues, path, upper, value)
      return value
    },
    json: () => ({
      type: noun,
      ...(min === undefined ? {} : { minimum: min }),
      ...(max === undefined ? {} : { maximum: max }),
    }),
  })
}

/** A whole number within the bounds. */
export function integer(options: NumberOptions = {}): Schema<number, number> {
  return numeric(true, options)
}

/** A finite number within the bounds. */
export function number(options: NumberOptions = {}): Schema<number, number> {
  return numeric(false, options)
}

/**
 * A string, matching `pattern` when given (no flags: the pattern is also the JSON Schema's), of
 * at most `maxLength` characters (default no limit; checked before the pattern).
 */
export function string(
  options: { readonly pattern?: RegExp; readonly expected?: string; readonly maxLength?: number } = {},
): Schema<string, string> {
  const { pattern, expected = 'a string', maxLength } = options
  return define({
    expected,
    kinds: ['string'],
    parse(value, path, issues) {
      if (typeof value !== 'string') return fail(issues, path, expected, value)
      if (maxLength !== undefined && value.length > maxLength) {
        issues.push({ path, message: `expected at most ${maxLength} characters, got ${value.length}` })
        return undefined
      }
      return pattern === undefined || pattern.test(value) ? value : fail(issues, path, expected, value)
    },
    json: () => ({
      type: 'string',
      ...(pattern ? { pattern: pattern.source } : {}),
      ...(maxLength !== undefined ? { maxLength } : {}),
    }),
  })
}

/** `true` or `false`. */
export function boolean(): Schema<boolean, boolean> {
  return define({
    expected: 'a boolean',
    kinds: ['boolean'],
    parse: (value, path, issues) =>
      typeof value === 'boolean' ? value : fail(issues, path, 'a boolean', value),
    json: () => ({ type: 'boolean' }),
  })
}

const DURATION_EXPECTED = 'a duration (ms number or string like "250ms", "2s")'

/**
 * The longest duration accepted: 2^31 - 1 ms (about 24.8 days), the longest delay a Node.js timer
 * keeps (a longer one fires after 1 ms), so a duration in config never means "at once".
 */
const MAX_DURATION = 2_147_483_647

/** A {@link Duration}, converted to milliseconds, from 0 to {@link MAX_DURATION}. */
export function duration(): Schema<Duration, number> {
  return define({
    expected: DURATION_EXPECTED,
    kinds: ['number', 'string'],
    parse(value, path, issues) {
      const ms = typeof value === 'number' || typeof value === 'string' ? toMilliseconds(value) : undefined
      if (ms === undefined) return fail(issues, path, DURATION_EXPECTED, value)
      if (ms > MAX_DURATION) {
        issues.push({
          path,
          message: `expected a duration of at most ${MAX_DURATION}ms (about 24.8 days), got ${formatValue(value)}`,
        })
        return undefined
      }
      return ms
    },
    json: () => ({
      anyOf: [
        { type: 'number', minimum: 0, maximum: MAX_DURATION },
        { type: 'string', pattern: DURATION_PATTERN.source },
      ],
    }),
  })
}

/**
 * Freezes `value` and everything it holds (plain objects and arrays), stopping at what is
 * already frozen: a parsed default is frozen once and then shared.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) deepFreeze(value[i])
    } else {
      // Own keys without an array of values per object (the resolved config is plain objects).
      const record = value as Record<string, unknown>
      for (const key in record) deepFreeze(record[key])
    }
  }
  return value
}

/** `schema`, whose key may be left out: then `fallback`, parsed like a written value, or `undefined`. */
export function optional<In, Out>(schema: Schema<In, Out, boolean>): Schema<In, Out | undefined, true>
export function optional<In, Out>(
  schema: Schema<In, Out, boolean>,
  fallback: NoInfer<In>,
): Schema<In, Out, true>
export function optional<In, Out>(
  schema: Schema<In, Out, boolean>,
  ...fallback: [In?]
): Schema<In, Out, true> {
  const hasFallback = fallback.length > 0
  const [value] = fallback
  let resolved: Out | undefined
  if (hasFallback) {
    const issues: ConfigIssue[] = []
    resolved = deepFreeze(schema.parse(value, '', issues))
    if (issues.length > 0) throw new TypeError(`invalid default ${formatValue(value)}: ${issues[0]?.message}`)
  }
  return build<In, Out, true>(
    {
      expected: schema.expected,
      kinds: schema.kinds,
      parse: schema.parse,
      // Parsed once, here, and deeply frozen: every config that leaves the key out shares it (a
      // parse of 1,000 services would otherwise resolve each service's defaults 1,000 times).
      missing: () => resolved,
      json: () => (hasFallback ? { ...schema.jsonSchema(), default: value } : schema.jsonSchema()),
    },
    true,
  )
}

/**
 * Any of `members`. The members accepting the value's JSON kind are tried in order; when only one
 * does, its own issues are reported (so `endpoints[0].weight` is named, not the whole union).
 */
export function union<M extends readonly AnySchema[]>(
  ...members: M
): Schema<Input<M[number]>, Output<M[number]>> {
  const expected = oneOf(members.map((m) => m.expected))
  return define({
    expected,
    kinds: [...new Set(members.flatMap((m) => m.kinds))],
    parse(value, path, issues) {
      const kind = kindOf(value)
      const candidates = members.filter((m) => kind !== undefined && m.kinds.includes(kind))
      const [only] = candidates
      if (candidates.length === 1 && only) return only.parse(value, path, issues)
      for (const member of candidates) {
        const scratch: ConfigIssue[] = []
        const out = member.parse(value, path, scratch)
        if (scratch.length === 0) return out
      }
      return fail(issues, path, expected, value)
    },
    json: () => ({ anyOf: members.map((m) => m.jsonSchema()) }),
  })
}

/**
 * `schema`, then `fn` on its successful result: to check rules across fields (report with
 * `issue`, at a path relative to the value) or to convert the value. Its result is the output.
 */
export function transform<In, Out, Opt extends boolean, Next>(
  schema: Schema<In, Out, Opt>,
  fn: (value: Out, issue: Report) => Next,
): Schema<In, Next, Opt> {
  const then = (
    run: (path: string, issues: ConfigIssue[]) => Out | undefined,
    path: string,
    issues: ConfigIssue[],
  ): Next | undefined => {
    const before = issues.length
    const out = run(path, issues)
    if (issues.length > before) return undefined
    const issue: Report = (message, ...at) => {
      issues.push({ path: at.reduce<string>(childPath, path), message })
    }
    const next = fn(out as Out, issue)
    return issues.length > before ? undefined : next
  }
  return build<In, Next, Opt>(
    {
      expected: schema.expected,
      kinds: schema.kinds,
      parse: (value, path, issues) => then((at, into) => schema.parse(value, at, into), path, issues),
      missing: (path, issues) => then(schema.missing, path, issues),
      json: () => schema.jsonSchema(),
    },
    schema.isOptional,
  )
}
