/**
 * Reading Istio resources: every object goes through {@link Fields}, which remembers what was
 * read, so whatever is left at the end is reported. That is what makes "never silently ignored"
 * hold for fields added to Istio after this code was written. {@link Out} collects the two kinds
 * of report: a field not translated (`unsupported`, the import goes on) and a value Istio's own
 * validation refuses (`invalid`, the import is refused as `kubectl apply` would be).
 */

import type { ConfigIssue } from '../../core/errors.js'
import { DURATION_PATTERN } from '../config/duration.js'

/** A JSON object. */
export type Json = Record<string, unknown>

/** Whether `v` is a plain object (not null, not a list). */
export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/** `a.b`, `a[0]`, or `a["x.y"]` when the key is not a plain name. */
export function join(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`
  if (!/^[A-Za-z0-9_-]+$/.test(key)) return `${path}[${JSON.stringify(key)}]`
  return path === '' ? key : `${path}.${key}`
}

/** Where reports go, across resources. */
export interface Reports {
  /** Fields not translated: `VirtualService reviews: http[0].corsPolicy (why)`. */
  readonly unsupported: string[]
  /** Values Istio's validation refuses, by resource and path. */
  readonly invalid: ConfigIssue[]
}

/** Reports against one resource: `VirtualService reviews: <path> (<detail>)`. */
export class Out {
  constructor(
    /** `VirtualService reviews`. */
    readonly label: string,
    readonly reports: Reports,
  ) {}

  /** A field (or the resource, for `''`) not translated, with why. */
  unsupported(path: string, detail?: string): void {
    const where = path === '' ? this.label : `${this.label}: ${path}`
    this.reports.unsupported.push(detail === undefined ? where : `${where} (${detail})`)
  }

  /** A value Istio's validation refuses (pkg/config/validation): the import fails with it. */
  invalid(path: string, message: string): void {
    this.reports.invalid.push({ path: path === '' ? this.label : `${this.label}: ${path}`, message })
  }
}

/** An object being read; see the module comment. */
export class Fields {
  readonly #read = new Set<string>()

  constructor(
    readonly value: Json,
    readonly path: string,
    readonly out: Out,
  ) {}

  at(key: string | number): string {
    return join(this.path, key)
  }

  has(key: string): boolean {
    return this.value[key] !== undefined && this.value[key] !== null
  }

  /** The raw value, marked read; `null` reads as absent, as Kubernetes treats it. */
  raw(key: string): unknown {
    this.#read.add(key)
    const v = this.value[key]
    return v === null ? undefined : v
  }

  string(key: string): string | undefined {
    const v = this.raw(key)
    if (v === undefined || typeof v === 'string') return v
    this.out.unsupported(this.at(key), `expected a string, got ${JSON.stringify(v)}`)
    return undefined
  }

  number(key: string): number | undefined {
    const v = this.raw(key)
    if (v === undefined || (typeof v === 'number' && Number.isFinite(v))) return v
    this.out.unsupported(this.at(key), `expected a number, got ${JSON.stringify(v)}`)
    return undefined
  }

  boolean(key: string): boolean | undefined {
    const v = this.raw(key)
    if (v === undefined || typeof v === 'boolean') return v
    this.out.unsupported(this.at(key), `expected true or false, got ${JSON.stringify(v)}`)
    return undefined
  }

  object(key: string): Fields | undefined {
    const v = this.raw(key)
    if (v === undefined) return undefined
    if (isObject(v)) return new Fields(v, this.at(key), this.out)
    this.out.unsupported(this.at(key), 'expected an object')
    return undefined
  }

  array(key: string): unknown[] | undefined {
    const v = this.raw(key)
    if (v === undefined || Array.isArray(v)) return v
    this.out.unsupported(this.at(key), 'expected a list')
    return undefined
  }

  /** Reports `key` as not translated when it is present, with an optional reason. */
  unsupported(key: string, detail?: string): boolean {
    const present = this.has(key)
    this.#read.add(key)
    if (present) this.out.unsupported(this.at(key), detail)
    return present
  }

  /** Reports every key not read; returns how many there were. */
  done(detail?: string): number {
    let left = 0
    for (const key of Object.keys(this.value)) {
      if (this.#read.has(key) || this.value[key] === null) continue
      left++
      this.out.unsupported(this.at(key), detail)
    }
    return left
  }
}

// ---------------------------------------------------------------------------------------------
// Durations and percentages

const GO_DURATION = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/
const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

/** An Istio (Go or protobuf) duration in milliseconds; `undefined` when malformed. */
function durationMs(value: string): number | undefined {
  let rest = value
  let ms = 0
  if (rest === '') return undefined
  while (rest !== '') {
    const m = GO_DURATION.exec(rest)
    if (m === null) return undefined
    ms += Number(m[1]) * (MS_PER_UNIT[m[2]!] ?? Number.NaN)
    rest = rest.slice(m[0].length)
  }
  return Number.isFinite(ms) ? Math.round(ms * 1e6) / 1e6 : undefined
}

/**
 * An Istio duration (`'10s'`, `'0.5s'`, `'100ms'`, or Go's `'1m30s'`) as a meshlet duration: the
 * same string when meshlet reads it alike, otherwise milliseconds. `undefined` when malformed.
 */
export function istioDuration(value: string): string | number | undefined {
  if (DURATION_PATTERN.test(value)) return value
  const ms = durationMs(value)
  return ms === undefined ? undefined : Math.round(ms * 1000) / 1000
}

/**
 * A duration field. Istio's validation (`ValidateDuration`) refuses one under 1 ms or finer than
 * a millisecond; a value that is no duration at all is listed (Kubernetes' schema refuses it).
 */
export function duration(f: Fields, key: string): string | number | undefined {
  const v = f.raw(key)
  if (v === undefined) return undefined
  const d = typeof v === 'string' ? istioDuration(v) : undefined
  if (d === undefined) {
    f.out.unsupported(f.at(key), `not a duration: ${JSON.stringify(v)}`)
    return undefined
  }
  const ms = durationMs(v as string) ?? Number(d)
  if (ms < 1) {
    f.out.invalid(f.at(key), `duration must be greater than 1ms, got ${JSON.stringify(v)}`)
    return undefined
  }
  if (!Number.isInteger(ms)) {
    f.out.invalid(f.at(key), `only durations to ms precision are supported, got ${JSON.stringify(v)}`)
    return undefined
  }
  return d
}

/**
 * `percentage: { value }` (a double) or the deprecated integer `percent`; `undefined` when
 * neither. Istio's validation refuses a value outside 0..100, and one between 0 and 0.0001.
 */
export function percentOf(
  f: Fields,
  key = 'percentage',
  legacy: string | null = 'percent',
): number | undefined {
  let percent: number | undefined
  let at = f.at(key)
  const p = f.raw(key)
  if (isObject(p)) {
    const pf = new Fields(p, f.at(key), f.out)
    percent = pf.number('value') ?? 0
    pf.done()
  } else if (typeof p === 'number') {
    percent = p
  } else if (p !== undefined) {
    f.out.unsupported(f.at(key), 'expected { value: <percent> }')
  }
  const old = legacy === null ? undefined : f.raw(legacy)
  if (percent === undefined && legacy !== null && old !== undefined) {
    const value = isObject(old) ? old['value'] : old
    at = f.at(legacy)
    if (typeof value === 'number') percent = value
    else f.out.unsupported(f.at(legacy), 'expected a number')
  }
  if (percent !== undefined && !(percent >= 0 && percent <= 100 && !(percent > 0 && percent < 0.0001))) {
    f.out.invalid(at, `percentage ${percent} is neither 0.0, nor in range [0.0001, 100.0]`)
    return undefined
  }
  return percent
}

/** JSON with sorted keys, to compare policies. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, v[k]]),
        )
      : v,
  )
}

/** A Kubernetes DNS-1123 label (Istio's subset and namespace names). */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
