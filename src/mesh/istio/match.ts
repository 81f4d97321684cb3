/**
 * The match clauses of a VirtualService rule as meshlet route matches. A clause that would not
 * match exactly as in Istio is left out, never loosened, so a rule catches fewer calls, never
 * more; what is left out is listed. Istio's regexes are RE2: those JavaScript reads alike are
 * kept, the others refused.
 */

import { regexProblem } from '../../stages/router/regex.js'
import { Fields, isObject, type Out } from './fields.js'
import type { RouteMatch } from './state.js'

type StringMatch = NonNullable<RouteMatch['headers']>[string]
type PathMatch = NonNullable<RouteMatch['path']>

/** One of Istio's StringMatch forms; `'any'` for `{}` (Istio: presence); `undefined` if malformed. */
type IstioString = { kind: 'exact' | 'prefix' | 'regex'; value: string } | 'any' | undefined

function stringMatch(raw: unknown, path: string, out: Out): IstioString {
  if (raw === null || raw === undefined) return 'any'
  if (!isObject(raw)) {
    out.unsupported(path, 'expected exact, prefix or regex')
    return undefined
  }
  const f = new Fields(raw, path, out)
  const given: Array<{ kind: 'exact' | 'prefix' | 'regex'; value: string }> = []
  for (const kind of ['exact', 'prefix', 'regex'] as const) {
    const value = f.raw(kind)
    if (value === undefined) continue
    if (typeof value !== 'string') {
      out.unsupported(f.at(kind), 'expected a string')
      return undefined
    }
    given.push({ kind, value })
  }
  if (f.done() > 0 || given.length > 1) return undefined
  return given[0] ?? 'any'
}

/**
 * An Istio regex, kept as written when meshlet's engine accepts it: both run RE2 (D49), so a
 * pattern means in meshlet what it means in Istio. `undefined` when RE2 refuses it.
 */
function re2Regex(re2: string): string | undefined {
  return regexProblem(re2) === undefined ? re2 : undefined
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** A pattern matching `text` in any letter case: `/Api` -> `/[aA][pP][iI]`. */
function caseless(text: string): string {
  return [...text]
    .map((c) =>
      c.toLowerCase() !== c.toUpperCase() ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRegex(c),
    )
    .join('')
}

export function matchClause(raw: unknown, path: string, out: Out): RouteMatch | undefined {
  if (!isObject(raw)) {
    out.unsupported(path, 'expected an object: clause left out')
    return undefined
  }
  const m = new Fields(raw, path, out)
  const LEFT_OUT = 'clause left out'
  let ok = true
  const refuse = (key: string, why: string): void => {
    if (m.unsupported(key, `${why}: ${LEFT_OUT}`)) ok = false
  }
  const clause: RouteMatch = {}

  const ignoreCase = m.boolean('ignoreUriCase') === true
  if (m.has('uri')) {
    const uri = stringMatch(m.raw('uri'), m.at('uri'), out)
    let p: PathMatch | undefined
    if (uri === undefined || uri === 'any') p = undefined
    else if (uri.kind === 'regex') {
      const re = re2Regex(uri.value)
      p = re === undefined ? undefined : { regex: re }
    } else if (ignoreCase) p = { regex: caseless(uri.value) + (uri.kind === 'prefix' ? '.*' : '') }
    else p = uri.kind === 'exact' ? { exact: uri.value } : { prefix: uri.value }
    if (p) clause.path = p
    else {
      out.unsupported(m.at('uri'), `not translatable: ${LEFT_OUT}`)
      ok = false
    }
  }

  if (m.has('method')) {
    const method = stringMatch(m.raw('method'), m.at('method'), out)
    let methods: string[] | undefined
    if (method !== undefined && method !== 'any') {
      if (method.kind === 'exact') methods = [method.value]
      else if (method.kind === 'regex' && /^[A-Za-z]+(\|[A-Za-z]+)*$/.test(method.value)) {
        methods = method.value.split('|')
      }
    }
    if (methods) clause.methods = methods
    else {
      out.unsupported(m.at('method'), `only exact or a|b methods: ${LEFT_OUT}`)
      ok = false
    }
  }

  const headers: Record<string, StringMatch> = {}
  const headerMap = m.object('headers')
  if (headerMap) {
    for (const [name, sm] of Object.entries(headerMap.value)) {
      headerMap.raw(name)
      const at = headerMap.at(name)
      if (['uri', 'scheme', 'method', 'authority'].includes(name)) {
        out.unsupported(at, 'Istio ignores this header name too')
        continue
      }
      const s = stringValue(stringMatch(sm, at, out), true)
      if (s) headers[name.toLowerCase()] = s
      else {
        out.unsupported(at, `not translatable: ${LEFT_OUT}`)
        ok = false
      }
    }
  }
  const without = m.object('withoutHeaders')
  if (without) {
    for (const [name, sm] of Object.entries(without.value)) {
      without.raw(name)
      const key = name.toLowerCase()
      if (stringMatch(sm, without.at(name), out) === 'any' && headers[key] === undefined) {
        headers[key] = { present: false }
      } else {
        out.unsupported(without.at(name), `meshlet negates presence only: ${LEFT_OUT}`)
        ok = false
      }
    }
  }
  if (Object.keys(headers).length > 0) clause.headers = headers

  const query = m.object('queryParams')
  if (query) {
    const params: Record<string, StringMatch> = {}
    for (const [name, sm] of Object.entries(query.value)) {
      query.raw(name)
      const s = stringValue(stringMatch(sm, query.at(name), out), true)
      if (s) params[name] = s
      else {
        out.unsupported(query.at(name), `not translatable: ${LEFT_OUT}`)
        ok = false
      }
    }
    if (Object.keys(params).length > 0) clause.query = params
  }

  const gateways = m.array('gateways')
  if (gateways !== undefined && gateways.length > 0 && !gateways.includes('mesh')) {
    out.unsupported(m.at('gateways'), `gateways only, not the mesh: ${LEFT_OUT}`)
    ok = false
  }
  refuse('authority', 'meshlet matches the host the call named, not the authority')
  refuse('scheme', 'no scheme match')
  refuse('port', 'no port match')
  refuse('sourceLabels', 'the caller has no workload labels')
  refuse('sourceNamespace', 'the caller has no namespace')
  m.unsupported('name', 'ignored')
  m.unsupported('statPrefix', 'ignored')
  if (m.done(LEFT_OUT) > 0) ok = false
  return ok ? clause : undefined
}

/** A StringMatch as meshlet's; `{}` is presence when `presence` allows it. */
function stringValue(s: IstioString, presence: boolean): StringMatch | undefined {
  if (s === undefined) return undefined
  if (s === 'any') return presence ? { present: true } : undefined
  if (s.kind === 'regex') {
    const re = re2Regex(s.value)
    return re === undefined ? undefined : { regex: re }
  }
  return s.kind === 'exact' ? { exact: s.value } : { prefix: s.value }
}
