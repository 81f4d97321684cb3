/**
 * Istio's security resources, for the inbound guard: AuthorizationPolicy (ALLOW, DENY, AUDIT)
 * becomes an {@link AccessPolicy} for `authorize()` (meshlet/inbound); PeerAuthentication's
 * mTLS mode is reported so the server can require client certificates. Fields the guard cannot
 * enforce (`ipBlocks`, `ports`, CUSTOM, a workload `selector`) are listed as unsupported. A
 * rule that loses such a field matches more: it is dropped from an ALLOW policy (which then
 * allows less, never more) and kept, wider, in a DENY policy (which then denies more).
 */
import type { AccessPolicy, PolicyRule } from '../../stages/policy/policy.js'
import { isObject } from './fields.js'

/** What the security resources translate to. */
export interface IstioSecurity {
  /** The AuthorizationPolicies, in document order, named `<namespace>/<name>`. */
  readonly policies: AccessPolicy[]
  /** PeerAuthentication modes by `<namespace>/<name>`: `STRICT` means require client certificates. */
  readonly peerAuthentication: Record<string, 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'UNSET'>
}

const SOURCE = new Set([
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
])
const OPERATION = new Set(['methods', 'notMethods', 'paths', 'notPaths', 'hosts', 'notHosts'])
const CONDITION_KEY =
  /^(request\.headers\[[^\]]+\]|request\.auth\.claims(\[[^\]]+\])+|source\.principal|source\.namespace|request\.auth\.(principal|audiences|presenter))$/

/** Translates one AuthorizationPolicy or PeerAuthentication into `into`, reporting what it drops. */
export function securityResource(
  kind: 'AuthorizationPolicy' | 'PeerAuthentication',
  spec: Record<string, unknown>,
  name: string,
  namespace: string,
  into: { policies: AccessPolicy[]; peerAuthentication: Record<string, string> },
  unsupported: (path: string, detail?: string) => void,
): void {
  const id = `${namespace}/${name}`
  if (kind === 'PeerAuthentication') {
    const mtls = isObject(spec.mtls) ? spec.mtls : {}
    const mode = typeof mtls.mode === 'string' ? mtls.mode : 'UNSET'
    into.peerAuthentication[id] = mode
    for (const key of Object.keys(spec)) if (key !== 'mtls') unsupported(key)
    return
  }
  const action = spec.action === undefined ? 'ALLOW' : spec.action
  if (action !== 'ALLOW' && action !== 'DENY' && action !== 'AUDIT') {
    unsupported('action', `${JSON.stringify(action)}: only ALLOW, DENY and AUDIT; the policy is not imported`)
    return
  }
  for (const key of Object.keys(spec)) {
    if (key === 'selector' || key === 'targetRef' || key === 'targetRefs')
      unsupported(key, 'the guard applies to the server it wraps')
    else if (key !== 'action' && key !== 'rules') unsupported(key)
  }
  const rules: PolicyRule[] = []
  const list = Array.isArray(spec.rules) ? spec.rules : []
  list.forEach((rule: unknown, ri) => {
    const at = `rules[${ri}]`
    let lossy = false
    const pick = (obj: unknown, known: Set<string>, path: string): Record<string, string[]> => {
      const out: Record<string, string[]> = {}
      if (!isObject(obj)) return out
      for (const [k, v] of Object.entries(obj)) {
        if (v === undefined) continue
        if (known.has(k) && Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== ''))
          out[k] = v as string[]
        else {
          lossy = true
          unsupported(`${path}.${k}`)
        }
      }
      return out
    }
    const r = isObject(rule) ? rule : {}
    const out: { from?: PolicyRule['from']; to?: PolicyRule['to']; when?: PolicyRule['when'] } = {}
    if (Array.isArray(r.from))
      out.from = r.from.map((f: unknown, i) => ({
        source: pick(isObject(f) ? f.source : undefined, SOURCE, `${at}.from[${i}].source`),
      }))
    if (Array.isArray(r.to))
      out.to = r.to.map((t: unknown, i) => ({
        operation: pick(isObject(t) ? t.operation : undefined, OPERATION, `${at}.to[${i}].operation`),
      }))
    if (Array.isArray(r.when)) {
      const when: { key: string; values?: string[]; notValues?: string[] }[] = []
      r.when.forEach((c: unknown, i) => {
        const cond = isObject(c) ? c : {}
        if (typeof cond.key !== 'string' || !CONDITION_KEY.test(cond.key)) {
          lossy = true
          unsupported(`${at}.when[${i}].key`, JSON.stringify(cond.key ?? null))
          return
        }
        const vals = pick(
          { values: cond.values, notValues: cond.notValues },
          new Set(['values', 'notValues']),
          `${at}.when[${i}]`,
        )
        when.push({ key: cond.key, ...vals })
      })
      out.when = when
    }
    // A rule that lost a condition matches more: in an ALLOW policy it would allow too much, so
    // it is dropped (the policy allows less, never more); in a DENY policy the wider rule denies
    // more, the safe direction, and is kept.
    if (lossy && action === 'ALLOW') {
      unsupported(at, 'dropped: a condition of it cannot be enforced')
      return
    }
    rules.push(out as PolicyRule)
  })
  into.policies.push({ name: id, action, ...(Array.isArray(spec.rules) ? { rules } : {}) })
}
