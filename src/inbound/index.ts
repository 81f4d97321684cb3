/**
 * meshlet/inbound: the guard for node:http and grpc-js servers (issue 24). A subpath, so the
 * client-side root entry stays as it is and servers opt in.
 * @packageDocumentation
 */

export {
  type AccessDecision,
  type AccessPolicy,
  type AccessRequest,
  type CompiledPolicies,
  compilePolicies,
  type PolicyCondition,
  PolicyError,
  type PolicyOperation,
  type PolicyRule,
  type PolicySource,
} from '../stages/policy/policy.js'
export {
  authorize,
  type GuardInput,
  type InboundDenial,
  type InboundGuard,
  type InboundGuardOptions,
  type InboundIdentity,
  type InboundStats,
  identityOf,
  type NodeHandler,
  uriSanOf,
} from './authorize.js'
export { type GrpcGuard, type GrpcGuardOptions, grpcAuthorize } from './grpc.js'
