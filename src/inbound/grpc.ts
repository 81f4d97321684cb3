/**
 * The inbound guard as a grpc-js server interceptor (grpc-js >= 1.10). The call is judged when
 * its metadata arrives, before the handler runs: the method is `POST` and the path
 * `/pkg.Service/Method`, as Istio sees gRPC. A denial ends the call with `PERMISSION_DENIED`
 * and `RBAC: access denied`; an allowed call's identity is read with `identityOf(call.metadata)`.
 *
 * The peer certificate is trusted as the server's TLS layer left it: use
 * `ServerCredentials.createSsl(ca, pairs, true)` (checkClientCertificate) so an unverified
 * certificate never reaches the guard, since grpc-js's auth context does not say whether the
 * chain was verified.
 */
import type * as Grpc from '@grpc/grpc-js'
import type { AccessPolicy } from '../stages/policy/policy.js'
import { authorize, type InboundGuard, type InboundGuardOptions, uriSanOf } from './authorize.js'
import { setIdentity } from './identity-store.js'

/** Options of {@link grpcAuthorize}. */
export interface GrpcGuardOptions extends InboundGuardOptions {
  /** The grpc-js module. Default: `import('@grpc/grpc-js')` on first use. */
  readonly grpc?: typeof Grpc
}

/** A grpc-js server interceptor with its guard's stats. */
export interface GrpcGuard {
  /** Pass in `new Server({ interceptors: [guard.interceptor] })`. */
  readonly interceptor: Grpc.ServerInterceptor
  /** Allowed and denied counts, denials by rule. */
  readonly stats: InboundGuard['stats']
}

/**
 * Compiles `policies` once and resolves to a grpc-js server interceptor enforcing them.
 * Throws (rejects with) `PolicyError` naming the first field it cannot use.
 */
export async function grpcAuthorize(
  policies: readonly AccessPolicy[] | InboundGuard,
  options: GrpcGuardOptions = {},
): Promise<GrpcGuard> {
  const guard = typeof policies === 'function' ? policies : authorize(policies, options)
  const grpc = options.grpc ?? (await import('@grpc/grpc-js'))
  const interceptor: Grpc.ServerInterceptor = (method, call) => {
    const intercepting: Grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            let principal: string | undefined
            try {
              principal = uriSanOf(call.getAuthContext().sslPeerCertificate?.subjectaltname)
            } catch {
              principal = undefined
            }
            const one = (name: string): string | undefined => {
              const v = metadata.get(name)
              return v.length === 0 ? undefined : v.map((x) => (typeof x === 'string' ? x : '')).join(',')
            }
            guard
              .check({
                principal,
                authorization: one('authorization'),
                method: 'POST',
                path: method.path,
                host: call.getHost(),
                header: one,
              })
              .then(
                ({ decision, identity }) => {
                  if (decision.allowed) {
                    setIdentity(metadata, identity)
                    mdNext(metadata)
                  } else {
                    intercepting.sendStatus({
                      code: grpc.status.PERMISSION_DENIED,
                      details: 'RBAC: access denied',
                    })
                  }
                },
                () =>
                  intercepting.sendStatus({
                    code: grpc.status.PERMISSION_DENIED,
                    details: 'RBAC: access denied',
                  }),
              )
          },
        })
      },
    })
    return intercepting
  }
  return { interceptor, stats: guard.stats }
}
