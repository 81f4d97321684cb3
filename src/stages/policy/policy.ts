/**
 * An access-policy evaluator in the shape and evaluation order of Istio's AuthorizationPolicy
 * (security/v1beta1/authorization.proto), shared by the egress stage and the inbound guard.
 *
 * Order, as Istio's: a matching DENY rule denies; else, when ALLOW policies exist, a request that
 * no ALLOW rule matches is denied; else it is allowed. AUDIT rules never change the decision.
 * CUSTOM is out of scope. Inside a rule, `from`, `to` and `when` must all hold; the entries of
 * `from` (and of `to`) are alternatives; the fields of one source or operation must all hold;
 * the values of one field are alternatives, and a `notX` field holds when none of its values
 * match. An ALLOW policy without rules matches nothing (Istio's "allow-nothing"); a rule
 * without fields matches everything.
 *
 * Policies are compiled once ({@link compilePolicies}); a decision is a walk over closures that
 * compare strings, with precomputed {@link AccessDecision} objects, so evaluation is O(rules)
 * and allocates nothing (D54).
 */

/** A string match in Istio's form: exact, `prefix*`, `*suffix`, or `*` for any non-empty value. */
export type IstioString = string

/** Who calls: Istio's `Source`. Principals are SPIFFE IDs with or without `spiffe://`. */
export interface PolicySource {
  /** Peer identities (certificate URI SAN), e.g. `cluster.local/ns/default/sa/sleep`. */
  readonly principals?: readonly IstioString[]
  /** Peer identities that must not match. */
  readonly notPrincipals?: readonly IstioString[]
  /** Request principals, `<iss>/<sub>` of a verified JWT. */
  readonly requestPrincipals?: readonly IstioString[]
  /** Request principals that must not match. */
  readonly notRequestPrincipals?: readonly IstioString[]
  /** The peer's namespace, read from its principal's `/ns/<namespace>/` segment. */
  readonly namespaces?: readonly IstioString[]
  /** Namespaces that must not match. */
  readonly notNamespaces?: readonly IstioString[]
}

/** What is called: Istio's `Operation`. gRPC methods are paths `/pkg.Service/Method`. */
export interface PolicyOperation {
  /** HTTP methods (gRPC is always `POST`). Exact, case-sensitive as Istio. */
  readonly methods?: readonly IstioString[]
  /** Methods that must not match. */
  readonly notMethods?: readonly IstioString[]
  /** Request paths, without the query. */
  readonly paths?: readonly IstioString[]
  /** Paths that must not match. */
  readonly notPaths?: readonly IstioString[]
  /** Host or authority, case-insensitive. */
  readonly hosts?: readonly IstioString[]
  /** Hosts that must not match. */
  readonly notHosts?: readonly IstioString[]
}

/** Istio's `Condition`: `key` holds when it matches one of `values` and none of `notValues`. */
export interface PolicyCondition {
  /**
   * One of `request.headers[<name>]`, `source.principal`, `source.namespace`,
   * `request.auth.principal`, `request.auth.audiences`, `request.auth.presenter`,
   * `request.auth.claims[<claim>]` (nested: `request.auth.claims[a][b]`).
   */
  readonly key: string
  /** Values of which one must match. */
  readonly values?: readonly IstioString[]
  /** Values of which none may match. */
  readonly notValues?: readonly IstioString[]
}

/** Istio's `Rule`. */
export interface PolicyRule {
  /** Alternatives; absent or empty means any source. */
  readonly from?: readonly { readonly source: PolicySource }[]
  /** Alternatives; absent or empty means any operation. */
  readonly to?: readonly { readonly operation: PolicyOperation }[]
  /** All must hold. */
  readonly when?: readonly PolicyCondition[]
}

/** Istio's AuthorizationPolicy spec, named. */
export interface AccessPolicy {
  /** Names the policy in decisions and denial counts. Default `policy-<index>`. */
  readonly name?: string
  /** Default `'ALLOW'`, as Istio. */
  readonly action?: 'ALLOW' | 'DENY' | 'AUDIT'
  /** Absent or empty: an ALLOW policy matches nothing, a DENY policy matches nothing. */
  readonly rules?: readonly PolicyRule[]
}

/** What a policy decides on, read from one call. */
export interface AccessRequest {
  /** The peer's principal (URI SAN), `spiffe://` optional; undefined without mTLS. */
  readonly principal?: string | undefined
  /** `<iss>/<sub>` of a verified token; undefined without one. */
  readonly requestPrincipal?: string | undefined
  /** A verified token's claims; undefined without one. */
  readonly claims?: Readonly<Record<string, unknown>> | undefined
  /** The HTTP method, `POST` for gRPC. */
  readonly method: string
  /** The path without the query; `/pkg.Service/Method` for gRPC. */
  readonly path: string
  /** The host or authority. */
  readonly host?: string | undefined
  /** A request header by lower-case name. */
  readonly header?: ((name: string) => string | undefined) | undefined
}

/** The outcome of {@link CompiledPolicies.evaluate}; the same object for the same rule. */
export interface AccessDecision {
  readonly allowed: boolean
  /** The policy whose rule decided, or `''` when no rule matched. */
  readonly policy: string
  /** The index of the deciding rule in its policy, or -1. */
  readonly rule: number
  /** `'deny-rule'`, `'no-allow-match'`, `'allow-rule'` or `'no-policy'`. */
  readonly reason: 'deny-rule' | 'no-allow-match' | 'allow-rule' | 'no-policy'
}

/** Policies compiled once, evaluated per call. */
export interface CompiledPolicies {
  /** Decides one request (Istio's order); never throws for a well-formed request. */
  evaluate(request: AccessRequest): AccessDecision
  /** Whether any rule reads a peer principal or namespace. */
  readonly needsPrincipal: boolean
  /** Whether any rule reads a token (request principals or claims). */
  readonly needsToken: boolean
  /** Whether there are no policies at all (every request allowed). */
  readonly empty: boolean
}

/** A policy that cannot be compiled; `path` names the field. */
export class PolicyError extends Error {
  readonly path: string
  constructor(path: string, message: string) {
    super(`${path}: ${message}`)
    this.name = 'PolicyError'
    this.path = path
  }
}

type Pred = (r: AccessRequest) => boolean

/** An own key holding a value (parsed config carries absent optional keys as undefined). */
const has = (o: Record<string, unknown>, k: string): boolean => Object.hasOwn(o, k) && o[k] !== undefined
type StrMatch = (value: string) => boolean

const ALWAYS: Pred = () => true

/** Istio's string match: `*` any non-empty, `*x` suffix, `x*` prefix, otherwise exact. */
export function istioStringMatcher(pattern: string, caseless = false): StrMatch {
  const p = caseless ? pattern.toLowerCase() : pattern
  const norm = caseless ? (v: string) => v.toLowerCase() : (v: string) => v
  if (p === '*') return (v) => v.length > 0
  if (p.length > 1 && p.startsWith('*')) {
    const suffix = p.slice(1)
    return (v) => norm(v).endsWith(suffix)
  }
  if (p.length > 1 && p.endsWith('*')) {
    const prefix = p.slice(0, -1)
    return (v) => norm(v).startsWith(prefix)
  }
  return (v) => norm(v) === p
}

function stripSpiffe(value: string): string {
  return value.startsWith('spiffe://') ? value.slice(9) : value
}

/** The namespace in a principal `<td>/ns/<ns>/sa/<sa>`, as Istio derives `source.namespace`. */
export function namespaceOf(principal: string | undefined): string | undefined {
  if (principal === undefined) return undefined
  const p = stripSpiffe(principal)
  const i = p.indexOf('/ns/')
  if (i < 0) return undefined
  const start = i + 4
  const end = p.indexOf('/', start)
  return end < 0 ? p.slice(start) : p.slice(start, end)
}

function list(value: unknown, path: string): readonly string[] {
  if (!Array.isArray(value)) throw new PolicyError(path, 'must be an array of strings')
  if (value.length > 1024) throw new PolicyError(path, 'at most 1024 values')
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i]
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096)
      throw new PolicyError(`${path}[${i}]`, 'must be a non-empty string of at most 4096 characters')
  }
  return value as readonly string[]
}

/** One field: values ORed; `read` gives undefined when the attribute is absent (never matches). */
function field(
  values: readonly string[],
  negate: boolean,
  read: (r: AccessRequest) => string | undefined,
  caseless = false,
  expand: (s: string) => string[] = (s) => [s],
): Pred {
  const ms = values.flatMap((v) => expand(v).map((e) => istioStringMatcher(e, caseless)))
  const n = ms.length
  const any = (v: string): boolean => {
    for (let i = 0; i < n; i++) if ((ms[i] as StrMatch)(v)) return true
    return false
  }
  // As Envoy's RBAC: an absent attribute matches no value, so `notX` holds for it
  // (Istio documents notPrincipals on a plaintext peer the same way).
  return negate
    ? (r) => {
        const v = read(r)
        return v === undefined || !any(v)
      }
    : (r) => {
        const v = read(r)
        return v !== undefined && any(v)
      }
}

function allOf(preds: Pred[]): Pred {
  if (preds.length === 0) return ALWAYS
  if (preds.length === 1) return preds[0] as Pred
  return (r) => {
    for (let i = 0; i < preds.length; i++) if (!(preds[i] as Pred)(r)) return false
    return true
  }
}

function anyOf(preds: Pred[]): Pred {
  if (preds.length === 0) return ALWAYS
  if (preds.length === 1) return preds[0] as Pred
  return (r) => {
    for (let i = 0; i < preds.length; i++) if ((preds[i] as Pred)(r)) return true
    return false
  }
}

// The peer's principal is read as given and each pattern matches it with and without
// `spiffe://` (built once here), so a decision does not slice the principal per call.
const principalOf = (r: AccessRequest) => r.principal
/** A principal pattern in both forms: bare and `spiffe://` (a `*`-led pattern needs one). */
const principalForms = (pattern: string): string[] => {
  const bare = stripSpiffe(pattern)
  return bare.startsWith('*') ? [bare] : [bare, `spiffe://${bare}`]
}
const nsOf = (r: AccessRequest) => namespaceOf(r.principal)

const SOURCE_KEYS = new Set([
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
])
const OPERATION_KEYS = new Set(['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts'])

interface Needs {
  principal: boolean
  token: boolean
}

function checkKeys(obj: unknown, known: Set<string>, path: string): Record<string, unknown> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj))
    throw new PolicyError(path, 'must be an object')
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) throw new PolicyError(`${path}.${k}`, 'is not supported')
  }
  return obj as Record<string, unknown>
}

function compileSource(src: unknown, path: string, needs: Needs): Pred {
  const s = checkKeys(src, SOURCE_KEYS, path)
  const preds: Pred[] = []
  const add = (
    key: string,
    negate: boolean,
    read: (r: AccessRequest) => string | undefined,
    norm?: (s: string) => string[],
  ) => {
    if (!has(s, key)) return
    preds.push(field(list(s[key], `${path}.${key}`), negate, read, false, norm))
  }
  add('principals', false, principalOf, principalForms)
  add('notPrincipals', true, principalOf, principalForms)
  add('namespaces', false, nsOf)
  add('notNamespaces', true, nsOf)
  add('requestPrincipals', false, (r) => r.requestPrincipal)
  add('notRequestPrincipals', true, (r) => r.requestPrincipal)
  if (['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].some((k) => has(s, k)))
    needs.principal = true
  if (has(s, 'requestPrincipals') || has(s, 'notRequestPrincipals')) needs.token = true
  return allOf(preds)
}

function compileOperation(op: unknown, path: string): Pred {
  const o = checkKeys(op, OPERATION_KEYS, path)
  const preds: Pred[] = []
  const add = (
    key: string,
    negate: boolean,
    read: (r: AccessRequest) => string | undefined,
    caseless = false,
  ) => {
    if (!has(o, key)) return
    preds.push(field(list(o[key], `${path}.${key}`), negate, read, caseless))
  }
  add('methods', false, (r) => r.method)
  add('notMethods', true, (r) => r.method)
  add('paths', false, (r) => r.path)
  add('notPaths', true, (r) => r.path)
  add('hosts', false, (r) => r.host, true)
  add('notHosts', true, (r) => r.host, true)
  return allOf(preds)
}

/** Reads a claim path; a string is itself, a list of strings matches by any element (Istio). */
function claimValues(
  claims: Readonly<Record<string, unknown>> | undefined,
  keys: readonly string[],
): unknown {
  let v: unknown = claims
  for (const k of keys) {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined
    v = (v as Record<string, unknown>)[k]
  }
  return v
}

const CLAIMS_KEY = /^request\.auth\.claims((?:\[[^[\]]+\])+)$/
const HEADER_KEY = /^request\.headers\[([!#$%&'*+.^_`|~0-9A-Za-z-]+)\]$/

function compileCondition(cond: unknown, path: string, needs: Needs): Pred {
  const c = checkKeys(cond, new Set(['key', 'values', 'notValues']), path)
  if (typeof c.key !== 'string') throw new PolicyError(`${path}.key`, 'must be a string')
  const key = c.key
  const values = has(c, 'values') ? list(c.values, `${path}.values`) : undefined
  const notValues = has(c, 'notValues') ? list(c.notValues, `${path}.notValues`) : undefined
  if (values === undefined && notValues === undefined)
    throw new PolicyError(path, 'needs values or notValues (as Istio)')
  let read: (r: AccessRequest) => unknown
  const header = HEADER_KEY.exec(key)
  const claim = CLAIMS_KEY.exec(key)
  if (header) {
    const name = (header[1] as string).toLowerCase()
    read = (r) => (r.header === undefined ? undefined : r.header(name))
  } else if (claim) {
    const keys = (claim[1] as string).slice(1, -1).split('][')
    read = (r) => claimValues(r.claims, keys)
    needs.token = true
  } else if (key === 'source.principal') {
    read = principalOf
    needs.principal = true
  } else if (key === 'source.namespace') {
    read = nsOf
    needs.principal = true
  } else if (key === 'request.auth.principal') {
    read = (r) => r.requestPrincipal
    needs.token = true
  } else if (key === 'request.auth.audiences') {
    read = (r) => claimValues(r.claims, ['aud'])
    needs.token = true
  } else if (key === 'request.auth.presenter') {
    read = (r) => claimValues(r.claims, ['azp'])
    needs.token = true
  } else {
    throw new PolicyError(
      `${path}.key`,
      `${JSON.stringify(key.slice(0, 100))} is not a supported condition key`,
    )
  }
  const forms = key === 'source.principal' ? principalForms : (s: string) => [s]
  const pos = values?.flatMap((v) => forms(v).map((f) => istioStringMatcher(f)))
  const neg = notValues?.flatMap((v) => forms(v).map((f) => istioStringMatcher(f)))
  const hits = (ms: StrMatch[], v: unknown): boolean => {
    if (typeof v === 'string') {
      for (const m of ms) if (m(v)) return true
      return false
    }
    if (Array.isArray(v)) {
      for (const e of v) if (typeof e === 'string' && hits(ms, e)) return true
    }
    return false
  }
  return (r) => {
    const v = read(r)
    if (pos !== undefined && (v === undefined || !hits(pos, v))) return false
    if (neg !== undefined && v !== undefined && hits(neg, v)) return false
    return true
  }
}

function compileRule(rule: unknown, path: string, needs: Needs): Pred {
  const r = checkKeys(rule, new Set(['from', 'to', 'when']), path)
  const parts: Pred[] = []
  if (has(r, 'from')) {
    if (!Array.isArray(r.from)) throw new PolicyError(`${path}.from`, 'must be an array')
    parts.push(
      anyOf(
        r.from.map((f: unknown, i) => {
          const p = `${path}.from[${i}]`
          const e = checkKeys(f, new Set(['source']), p)
          return compileSource(e.source, `${p}.source`, needs)
        }),
      ),
    )
  }
  if (has(r, 'to')) {
    if (!Array.isArray(r.to)) throw new PolicyError(`${path}.to`, 'must be an array')
    parts.push(
      anyOf(
        r.to.map((t: unknown, i) => {
          const p = `${path}.to[${i}]`
          const e = checkKeys(t, new Set(['operation']), p)
          return compileOperation(e.operation, `${p}.operation`)
        }),
      ),
    )
  }
  if (has(r, 'when')) {
    if (!Array.isArray(r.when)) throw new PolicyError(`${path}.when`, 'must be an array')
    parts.push(allOf(r.when.map((c: unknown, i) => compileCondition(c, `${path}.when[${i}]`, needs))))
  }
  return allOf(parts)
}

interface CompiledRule {
  readonly match: Pred
  readonly decision: AccessDecision
}

/**
 * Compiles policies (Istio's AuthorizationPolicy specs) once. Throws {@link PolicyError} naming
 * the path of the first field it cannot use (an unknown field is refused, never ignored: a
 * dropped DENY rule would be silently less secure).
 */
export function compilePolicies(policies: readonly AccessPolicy[], path = 'policies'): CompiledPolicies {
  if (!Array.isArray(policies)) throw new PolicyError(path, 'must be an array')
  const deny: CompiledRule[] = []
  const allow: CompiledRule[] = []
  let allowPolicies = 0
  const needs: Needs = { principal: false, token: false }
  policies.forEach((policy: unknown, pi) => {
    const p = `${path}[${pi}]`
    const pol = checkKeys(policy, new Set(['name', 'action', 'rules']), p)
    if (has(pol, 'name') && (typeof pol.name !== 'string' || pol.name.length > 256))
      throw new PolicyError(`${p}.name`, 'must be a string of at most 256 characters')
    const name = typeof pol.name === 'string' ? pol.name : `policy-${pi}`
    const action = has(pol, 'action') ? pol.action : 'ALLOW'
    if (action !== 'ALLOW' && action !== 'DENY' && action !== 'AUDIT')
      throw new PolicyError(`${p}.action`, 'must be ALLOW, DENY or AUDIT (CUSTOM is not supported)')
    const rules = has(pol, 'rules') ? pol.rules : []
    if (!Array.isArray(rules)) throw new PolicyError(`${p}.rules`, 'must be an array')
    if (action === 'ALLOW') allowPolicies++
    rules.forEach((rule: unknown, ri) => {
      const match = compileRule(rule, `${p}.rules[${ri}]`, needs)
      if (action === 'AUDIT') return
      const decision: AccessDecision = Object.freeze({
        allowed: action === 'ALLOW',
        policy: name,
        rule: ri,
        reason: action === 'ALLOW' ? 'allow-rule' : 'deny-rule',
      })
      ;(action === 'ALLOW' ? allow : deny).push({ match, decision })
    })
  })
  const noAllow: AccessDecision = Object.freeze({
    allowed: false,
    policy: '',
    rule: -1,
    reason: 'no-allow-match',
  })
  const noPolicy: AccessDecision = Object.freeze({ allowed: true, policy: '', rule: -1, reason: 'no-policy' })
  const hasAllow = allowPolicies > 0
  return {
    needsPrincipal: needs.principal,
    needsToken: needs.token,
    empty: policies.length === 0,
    evaluate(request) {
      for (let i = 0; i < deny.length; i++) {
        const r = deny[i] as CompiledRule
        if (r.match(request)) return r.decision
      }
      if (!hasAllow) return noPolicy
      for (let i = 0; i < allow.length; i++) {
        const r = allow[i] as CompiledRule
        if (r.match(request)) return r.decision
      }
      return noAllow
    },
  }
}

/** Denials counted by `<policy>#<rule>` (`#-1` for "no ALLOW rule matched"). */
export class DenialCounter {
  private readonly counts = new Map<AccessDecision, number>()
  /** Counts one denial. */
  add(decision: AccessDecision): void {
    this.counts.set(decision, (this.counts.get(decision) ?? 0) + 1)
  }
  /** A snapshot: key `<policy>#<rule>`, or `(no ALLOW rule matched)`. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = Object.create(null)
    for (const [d, n] of this.counts) {
      const key = d.rule < 0 ? '(no ALLOW rule matched)' : `${d.policy}#${d.rule}`
      out[key] = (out[key] ?? 0) + n
    }
    return out
  }
}
