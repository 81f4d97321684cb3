/**
 * The egress access check: whether this process may make a call at all. It runs before the
 * router and everything after it (stack.ts's order: access policy before router and quota), so
 * a refused call spends no quota, no retry budget and makes no network call.
 */
import { AccessDeniedError } from '../../core/errors.js'
import type { CompiledPolicies } from './policy.js'

/**
 * Decides one outgoing call to `service` (its name is the request's host); resolves to
 * undefined when allowed or to the {@link AccessDeniedError} to answer. `path` may carry a
 * query, which is not part of the match (as Istio's `paths`).
 */
export function egressDenial(
  policies: CompiledPolicies,
  service: string,
  method: string,
  path: string,
  header: (name: string) => string | undefined,
): AccessDeniedError | undefined {
  const q = path.indexOf('?')
  const decision = policies.evaluate({
    method,
    path: q < 0 ? path : path.slice(0, q),
    host: service,
    header,
  })
  return decision.allowed ? undefined : new AccessDeniedError(service, decision.policy, decision.rule)
}
