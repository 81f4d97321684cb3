/** Where the guard leaves a verified identity for the handler: keyed by request or metadata. */
import type { InboundIdentity } from './authorize.js'

const identities = new WeakMap<object, InboundIdentity>()

/** Records `identity` for `key` (a node:http request or a grpc-js Metadata). */
export function setIdentity(key: object, identity: InboundIdentity): void {
  identities.set(key, identity)
}

/**
 * The identity the guard verified for `req` (a node:http request, or a grpc-js call's
 * `call.metadata`), or undefined when the guard did not see it.
 */
export function identityOf(req: object): InboundIdentity | undefined {
  return identities.get(req)
}
