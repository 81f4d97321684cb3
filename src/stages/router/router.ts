/**
 * The router: picks, for each call, the first route whose match holds and a destination among
 * its weighted targets (Envoy's route table, Istio's VirtualService `http` rules). Matchers are
 * compiled once per configuration into closures over precomputed values (regular expressions
 * compiled, templates turned into patterns), so a call does comparisons, not parsing. Every
 * pattern runs in time linear in the value: config regexes are RE2 (./regex.ts, D49). It reads the
 * request through a small {@link RouteView} that each adapter provides (HTTP headers, gRPC
 * metadata), and it allocates nothing when no rule looks at headers.
 */
import type { Random } from '../../core/random.js'
import { compileRegex, type Pattern } from './regex.js'

/** What the router may read of a call. Each accessor is called only if a rule needs it. */
export interface RouteView {
  /** The host the call named, lower case. */
  readonly host: string
  /** The method (HTTP method, or the gRPC call kind). */
  readonly method: string
  /** The path with its query (for gRPC, `/pkg.Service/Method`). */
  readonly path: string
  /** A header (gRPC metadata) by lower-case name, or `undefined`. */
  header(name: string): string | undefined
  /** A query parameter, or `undefined`. */
  query(name: string): string | undefined
  /** A cookie, or `undefined`. */
  cookie(name: string): string | undefined
}

/** A string condition: exactly one field is set. */
export interface StringMatch {
  readonly exact?: string | undefined
  readonly prefix?: string | undefined
  readonly regex?: string | undefined
  readonly present?: boolean | undefined
}

/** A path condition: exactly one field is set. */
export interface PathMatch {
  readonly exact?: string | undefined
  readonly prefix?: string | undefined
  readonly regex?: string | undefined
  readonly template?: string | undefined
}

/** One match clause: every field given must hold. */
export interface RouteMatch {
  readonly host?: string | undefined
  readonly methods?: readonly string[] | undefined
  readonly path?: PathMatch | undefined
  readonly headers?: Readonly<Record<string, StringMatch>> | undefined
  readonly query?: Readonly<Record<string, StringMatch>> | undefined
}

/** Where a route may send a call. */
export interface RouteDestination {
  readonly service: string
  readonly subset?: string | undefined
  readonly weight: number
}

/** The part of a route the router reads; the rest (policies) travels with it untouched. */
export interface RouteRule {
  readonly name?: string | undefined
  readonly match?: readonly RouteMatch[] | undefined
  readonly route: readonly RouteDestination[]
  readonly sticky?:
    | {
        readonly header?: string | undefined
        readonly cookie?: string | undefined
        readonly query?: string | undefined
      }
    | undefined
}

/** The router's decision for one call. */
export interface Routed<R extends RouteRule> {
  /** The route that matched. */
  readonly route: R
  /** Its position in the table. */
  readonly index: number
  /** The destination drawn from its targets. */
  readonly destination: RouteDestination
  /** The path prefix the route matched (`match.path.prefix`), for prefix rewrites. */
  readonly matchedPrefix: string | undefined
}

type Test = (view: RouteView) => boolean

function pathOnly(path: string): string {
  const q = path.indexOf('?')
  return q < 0 ? path : path.slice(0, q)
}

function compileString(m: StringMatch): (value: string | undefined) => boolean {
  if (m.present !== undefined) {
    const want = m.present
    return (v) => (v !== undefined) === want
  }
  if (m.exact !== undefined) {
    const exact = m.exact
    return (v) => v === exact
  }
  if (m.prefix !== undefined) {
    const prefix = m.prefix
    return (v) => v?.startsWith(prefix) ?? false
  }
  const re = compileRegex(m.regex ?? '')
  return (v) => v !== undefined && re.test(v)
}

const PARAM = /^\{[^}/]+\}$/

/**
 * Turns `/users/{id}/orders/{order}` into a pattern of the whole path where each `{name}` is
 * one or more characters other than `/`. When every `{name}` ends its segment (is followed by
 * `/` or ends the template), the pattern runs on V8's engine, which is linear there: `[^/]+`
 * then `/` or the end can only match one way, so a failed try gives back nothing. Otherwise
 * (`/files/{name}.{ext}`, where V8 would backtrack polynomially) it runs on RE2 (./regex.ts).
 * Throws a `SyntaxError` only when the template is over RE2's bounds.
 */
export function templatePattern(template: string): Pattern {
  const parts = template.split(/(\{[^}/]+\})/)
  const escaped = parts
    .map((part) => (PARAM.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('')
  // split() puts each param at an odd index with a literal after it ('' at the end, and
  // between two adjacent params).
  const last = parts.length - 1
  const deterministic = parts.every(
    (_, i) => i % 2 === 0 || parts[i + 1]!.startsWith('/') || (i + 1 === last && parts[last] === ''),
  )
  if (!deterministic) return compileRegex(escaped)
  const re = new RegExp(`^${escaped}$`)
  return { source: escaped, test: (value) => re.test(value) }
}

function compilePath(m: PathMatch): { test: (path: string) => boolean; prefix: string | undefined } {
  if (m.exact !== undefined) {
    const exact = m.exact
    return { test: (p) => pathOnly(p) === exact, prefix: undefined }
  }
  if (m.prefix !== undefined) {
    const prefix = m.prefix
    return { test: (p) => p.startsWith(prefix), prefix }
  }
  const re = m.template !== undefined ? templatePattern(m.template) : compileRegex(m.regex ?? '')
  return { test: (p) => re.test(pathOnly(p)), prefix: undefined }
}

function compileMatch(m: RouteMatch): { test: Test; prefix: string | undefined } {
  const tests: Test[] = []
  let prefix: string | undefined
  if (m.host !== undefined) {
    const host = m.host.toLowerCase()
    tests.push((v) => v.host === host)
  }
  if (m.methods !== undefined && m.methods.length > 0) {
    const methods = new Set(m.methods.map((x) => x.toUpperCase()))
    tests.push((v) => methods.has(v.method))
  }
  if (m.path !== undefined) {
    const path = compilePath(m.path)
    prefix = path.prefix
    tests.push((v) => path.test(v.path))
  }
  for (const [name, sm] of Object.entries(m.headers ?? {})) {
    const key = name.toLowerCase()
    const test = compileString(sm)
    tests.push((v) => test(v.header(key)))
  }
  for (const [name, sm] of Object.entries(m.query ?? {})) {
    const test = compileString(sm)
    tests.push((v) => test(v.query(name)))
  }
  return { test: (v) => tests.every((t) => t(v)), prefix }
}

/** FNV-1a, 32 bits, as a number in [0, 1): stable across processes and versions. */
export function stableUnit(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  // Final avalanche (murmur3 fmix32), so that similar keys spread over the whole range.
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return (h >>> 0) / 4294967296
}

interface CompiledRoute<R extends RouteRule> {
  readonly rule: R
  readonly index: number
  readonly clauses: ReadonlyArray<{ test: Test; prefix: string | undefined }>
  readonly targets: readonly RouteDestination[]
  readonly total: number
}

/** A compiled route table; see the module comment. */
export class Router<R extends RouteRule> {
  readonly #routes: readonly CompiledRoute<R>[]

  constructor(rules: readonly R[]) {
    this.#routes = rules.map((rule, index) => {
      const targets = rule.route.filter((d) => d.weight > 0)
      return {
        rule,
        index,
        clauses: (rule.match ?? []).map(compileMatch),
        targets,
        total: targets.reduce((n, d) => n + d.weight, 0),
      }
    })
  }

  /** Whether the table has any rule. */
  get empty(): boolean {
    return this.#routes.length === 0
  }

  /** The first matching route and a destination drawn from it, or `undefined` when none matches. */
  route(view: RouteView, random: Random): Routed<R> | undefined {
    for (const r of this.#routes) {
      let prefix: string | undefined
      let matched = r.clauses.length === 0
      for (const clause of r.clauses) {
        if (clause.test(view)) {
          matched = true
          prefix = clause.prefix
          break
        }
      }
      if (!matched) continue
      return { route: r.rule, index: r.index, destination: pick(r, view, random), matchedPrefix: prefix }
    }
    return undefined
  }
}

function pick<R extends RouteRule>(r: CompiledRoute<R>, view: RouteView, random: Random): RouteDestination {
  if (r.targets.length === 1) return r.targets[0]!
  const sticky = r.rule.sticky
  let key: string | undefined
  if (sticky?.header !== undefined) key = view.header(sticky.header.toLowerCase())
  else if (sticky?.cookie !== undefined) key = view.cookie(sticky.cookie)
  else if (sticky?.query !== undefined) key = view.query(sticky.query)
  let x = (key === undefined ? random.next() : stableUnit(key)) * r.total
  for (const d of r.targets) {
    x -= d.weight
    if (x < 0) return d
  }
  return r.targets[r.targets.length - 1]!
}
