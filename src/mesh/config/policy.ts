/**
 * The `egress` key: access policies on the calls this process makes, in the shape of Istio's
 * AuthorizationPolicy (see stages/policy). The request's host is the service's name (or the
 * URL's host for a host that names no service), so `to.operation.hosts` lists services;
 * `paths` and `methods` name routes and gRPC methods (`/pkg.Service/Method`, `POST`). With any
 * ALLOW policy, a call no ALLOW rule matches is refused (deny by default).
 */
import { compilePolicies, PolicyError } from '../../stages/policy/policy.js'
import { array, literalUnion, object, optional, string, transform } from './schema.js'

const value = string({
  expected: 'a non-empty string of at most 4096 characters',
  pattern: /^.+$/,
  maxLength: 4096,
})
const values = () => optional(array(value))

const source = object({
  principals: values().describe('Peer principals; not known on egress, so such a rule never matches.'),
  notPrincipals: values().describe('Peer principals that must not match.'),
  requestPrincipals: values().describe('Request principals (<iss>/<sub>); not known on egress.'),
  notRequestPrincipals: values().describe('Request principals that must not match.'),
  namespaces: values().describe('Peer namespaces; not known on egress.'),
  notNamespaces: values().describe('Peer namespaces that must not match.'),
})

const operation = object({
  methods: values().describe('HTTP methods (POST for gRPC), exact.'),
  notMethods: values().describe('Methods that must not match.'),
  paths: values().describe("Paths (gRPC: '/pkg.Service/Method'); 'prefix*', '*suffix' or '*'."),
  notPaths: values().describe('Paths that must not match.'),
  hosts: values().describe('Service names (or hosts), case-insensitive.'),
  notHosts: values().describe('Service names that must not match.'),
})

const condition = object({
  key: string({
    expected: 'request.headers[<name>]',
    pattern: /^request\.headers\[[!#$%&'*+.^_`|~0-9A-Za-z-]+\]$/,
    maxLength: 300,
  }).describe('On egress only request.headers[<name>] is known.'),
  values: values().describe('Values of which one must match.'),
  notValues: values().describe('Values of which none may match.'),
})

const rule = object({
  from: optional(array(object({ source: source.describe('Who calls.') }))).describe(
    'Sources (alternatives).',
  ),
  to: optional(array(object({ operation: operation.describe('What is called.') }))).describe(
    'Operations (alternatives).',
  ),
  when: optional(array(condition)).describe('Conditions (all must hold).'),
})

const policy = object({
  name: optional(string({ maxLength: 256 })).describe('Names the policy in denials. Default policy-<index>.'),
  action: optional(literalUnion(['ALLOW', 'DENY', 'AUDIT']), 'ALLOW').describe('Default ALLOW.'),
  rules: optional(array(rule)).describe(
    'Rules (alternatives). An ALLOW policy without rules allows nothing.',
  ),
})

/**
 * The schema of `egress`: a list of access policies. Default none (every call allowed).
 * Compiled once here so a policy the evaluator cannot use is refused naming its path.
 */
export const egressPolicySchema = optional(
  transform(array(policy), (list, issue) => {
    try {
      compilePolicies(list as never, '')
    } catch (error) {
      if (error instanceof PolicyError) issue(error.message)
      else throw error
    }
    return list
  }),
).describe('Egress access policies (Istio AuthorizationPolicy shape). Default none: every call allowed.')
