/**
 * The inbound guard: Istio's AuthorizationPolicy where calls arrive, for node:http servers (and
 * frameworks built on them; Fastify through `check()`) and grpc-js servers, without a sidecar.
 *
 * The caller's identity is the peer certificate's single URI SAN (SPIFFE ID, as gRFC A87: more
 * than one URI SAN is no identity) on a TLS socket whose chain the server verified, and/or the
 * claims of a bearer token that `verifyToken` accepted. An identity that is missing, forged or
 * expired is simply absent: a rule that needs it does not match, so ALLOW rules deny and the
 * caller is refused with 403 `RBAC: access denied` (Envoy's body) or `PERMISSION_DENIED`.
 * Denials are counted by policy and rule ({@link InboundGuard.stats}). The evaluator is the one
 * the egress stage uses (stages/policy); tokens are verified only when a rule reads them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import {
  type AccessDecision,
  type AccessPolicy,
  type CompiledPolicies,
  compilePolicies,
  DenialCounter,
} from '../stages/policy/policy.js'
import { setIdentity } from './identity-store.js'

export { identityOf } from './identity-store.js'

/** The verified identity of a caller, handed to the handler by {@link identityOf}. */
export interface InboundIdentity {
  /** The peer certificate's URI SAN (e.g. `spiffe://example.org/ns/a/sa/b`), when verified. */
  readonly principal: string | undefined
  /** `<iss>/<sub>` of a verified token, when both are strings. */
  readonly requestPrincipal: string | undefined
  /** A verified token's claims, when any. */
  readonly claims: Readonly<Record<string, unknown>> | undefined
}

/** What {@link InboundGuardOptions.onDenied} receives; it never holds a token or key. */
export interface InboundDenial {
  readonly policy: string
  readonly rule: number
  readonly reason: AccessDecision['reason']
  readonly principal: string | undefined
  readonly requestPrincipal: string | undefined
  readonly method: string
  readonly path: string
}

/** Options of {@link authorize}. */
export interface InboundGuardOptions {
  /**
   * Verifies a bearer token from `authorization: Bearer <token>` and resolves to its claims,
   * rejecting when it is invalid, expired or forged (for example `jwtVerifier(...)`). Default:
   * none, so a token is never read and rules on request principals or claims do not match.
   */
  readonly verifyToken?: (token: string) => Promise<Readonly<Record<string, unknown>>>
  /** Called once per denial (an event); errors it throws are ignored. Default: none. */
  readonly onDenied?: (denial: InboundDenial) => void
}

/** Denial counts of one guard. */
export interface InboundStats {
  readonly allowed: number
  readonly denied: number
  /** Denials by `<policy>#<rule>`, or `(no ALLOW rule matched)`. */
  readonly byRule: Record<string, number>
}

/** A Node-style handler. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void

/** The guard: a middleware `(req, res, next?)` with helpers. */
export interface InboundGuard {
  /**
   * Middleware of the `(req, res, next)` shape (node:http, and the Express style; only node:http is
   * tested): calls `next()` when allowed, answers 403 otherwise. For a framework with another hook
   * shape (Fastify's `onRequest`), call {@link InboundGuard.check} and answer from its decision.
   */
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void
  /** Wraps a handler (plain node:http, or Hono's `getRequestListener(app.fetch)`). */
  handler(inner: NodeHandler): NodeHandler
  /** Decides one call; resolves to the decision and the identity (for custom servers). */
  check(input: GuardInput): Promise<{ decision: AccessDecision; identity: InboundIdentity }>
  /** Allowed and denied counts, denials by rule. */
  stats(): InboundStats
  /** The compiled policies (shared with {@link grpcAuthorize}). */
  readonly policies: CompiledPolicies
}

/** What the guard reads from one call. */
export interface GuardInput {
  readonly principal: string | undefined
  readonly authorization: string | undefined
  readonly method: string
  readonly path: string
  readonly host: string | undefined
  readonly header: (name: string) => string | undefined
}

/** The one URI SAN of a Node peer certificate's `subjectaltname`, or undefined (none or several). */
export function uriSanOf(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName) return undefined
  let found: string | undefined
  let count = 0
  // Node quotes an entry holding a separator as a JSON string (CVE-2021-44532), so a quoted
  // entry is read with JSON.parse and a comma inside it does not split it.
  const re = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g
  for (let m = re.exec(subjectAltName); m !== null; m = re.exec(subjectAltName)) {
    if (m[1] !== 'URI') continue
    let v = m[2] as string
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string
      } catch {
        return undefined
      }
    }
    found = v
    count++
  }
  return count === 1 ? found : undefined
}

function bearerOf(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(authorization)
  return m ? m[1] : undefined
}

function pathOf(url: string | undefined): string {
  if (url === undefined || url.length === 0) return '/'
  // Resolves dot segments as Istio's default path normalisation does, so `/public/../admin`
  // is judged as `/admin` (the conservative direction for both DENY and ALLOW rules).
  try {
    return new URL(url.startsWith('/') ? url : `/${url}`, 'http://guard.invalid').pathname
  } catch {
    return url.split('?')[0] as string
  }
}

/** The verified peer principal of a node:http request, or undefined. */
function peerPrincipal(req: IncomingMessage): string | undefined {
  const socket = req.socket as Partial<TLSSocket>
  if (typeof socket.getPeerCertificate !== 'function' || socket.authorized !== true) return undefined
  const cert = socket.getPeerCertificate(false)
  return uriSanOf(cert?.subjectaltname)
}

const DENIED_BODY = 'RBAC: access denied'

/**
 * Compiles `policies` (Istio AuthorizationPolicy specs: `{ name, action, rules }`) once and
 * returns the guard. Throws `PolicyError` naming the first field it cannot use.
 * @example
 * ```ts
 * const guard = authorize([{ name: 'users', rules: [{ from: [{ source: { namespaces: ['prod'] } }] }] }])
 * http.createServer(guard.handler((req, res) => res.end(identityOf(req)?.principal)))
 * ```
 */
export function authorize(
  policies: readonly AccessPolicy[],
  options: InboundGuardOptions = {},
): InboundGuard {
  const compiled = compilePolicies(policies)
  const counter = new DenialCounter()
  let allowed = 0
  let denied = 0
  const { verifyToken, onDenied } = options

  async function check(input: GuardInput): Promise<{ decision: AccessDecision; identity: InboundIdentity }> {
    let claims: Readonly<Record<string, unknown>> | undefined
    let requestPrincipal: string | undefined
    const token = compiled.needsToken && verifyToken !== undefined ? bearerOf(input.authorization) : undefined
    if (token !== undefined && verifyToken !== undefined) {
      try {
        const c = await verifyToken(token)
        if (c !== null && typeof c === 'object') {
          claims = c
          const iss = c.iss
          const sub = c.sub
          if (typeof iss === 'string' && typeof sub === 'string') requestPrincipal = `${iss}/${sub}`
        }
      } catch {
        // A forged, expired or unverifiable token is no identity: rules needing one do not match.
      }
    }
    const identity: InboundIdentity = { principal: input.principal, requestPrincipal, claims }
    const decision = compiled.evaluate({
      principal: input.principal,
      requestPrincipal,
      claims,
      method: input.method,
      path: input.path,
      host: input.host,
      header: input.header,
    })
    if (decision.allowed) allowed++
    else {
      denied++
      counter.add(decision)
      if (onDenied !== undefined) {
        try {
          onDenied({
            policy: decision.policy,
            rule: decision.rule,
            reason: decision.reason,
            principal: input.principal,
            requestPrincipal,
            method: input.method,
            path: input.path,
          })
        } catch {
          // A listener's failure must not change the decision.
        }
      }
    }
    return { decision, identity }
  }

  function inputOf(req: IncomingMessage): GuardInput {
    const h = req.headers
    const auth = h.authorization
    return {
      principal: peerPrincipal(req),
      authorization: typeof auth === 'string' ? auth : undefined,
      method: req.method ?? 'GET',
      path: pathOf(req.url),
      host: typeof h.host === 'string' ? h.host : undefined,
      header: (name) => {
        const v = h[name]
        return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : v
      },
    }
  }

  function deny(res: ServerResponse): void {
    if (res.headersSent) {
      res.destroy()
      return
    }
    res.writeHead(403, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(DENIED_BODY) })
    res.end(DENIED_BODY)
  }

  const guard = function authorizeMiddleware(
    req: IncomingMessage,
    res: ServerResponse,
    next?: (err?: unknown) => void,
  ): void {
    check(inputOf(req)).then(
      ({ decision, identity }) => {
        if (!decision.allowed) return deny(res)
        setIdentity(req, identity)
        next?.()
      },
      (err: unknown) => (next ? next(err) : deny(res)),
    )
  } as InboundGuard
  Object.defineProperties(guard, {
    handler: {
      value: (inner: NodeHandler): NodeHandler =>
        function authorizedHandler(req, res) {
          guard(req, res, (err) => {
            if (err !== undefined) deny(res)
            else inner(req, res)
          })
        },
    },
    check: { value: check },
    stats: {
      value: (): InboundStats => ({ allowed, denied, byRule: counter.snapshot() }),
    },
    policies: { value: compiled },
  })
  return guard
}
