/**
 * The in-process tasks: what each client costs per call around a transport that does nothing.
 * Built once here and used twice: timed by tinybench in bench/run.ts, and counted for bytes
 * allocated per call in a fresh process by bench/alloc-child.ts, so both see the same objects.
 *
 * Every client wraps the same no-op, `async () => RESPONSE` with one pre-built Response, so that
 * neither Response construction nor a different no-op is measured for anyone.
 */
import {
  ConsecutiveBreaker,
  circuitBreaker as cockatielBreaker,
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  ExponentialBackoff,
  handleAll,
  TimeoutStrategy,
} from 'cockatiel'
import OpossumBreaker from 'opossum'
import pRetry from 'p-retry'
import type { Handler, HttpRequest, MeshConfig, Middleware } from '../src/index.js'
import { compilePolicies } from '../src/stages/policy/policy.js'
import { cockatielWrap, type Meshlet } from './lib.js'
import { pRetryStage } from './p-retry-stage.js'

/** One in-process task: `call` is one call of the client, awaited by the harness. */
export interface InProcessTask {
  /** Stable key, used by the report. */
  readonly id: string
  /** What it calls, for the tables. */
  readonly name: string
  readonly call: () => Promise<unknown>
}

type Req = HttpRequest
type Res = Response

/** The part of an undici classic handler the answering dispatcher drives. */
interface UndiciHandler {
  onConnect(abort: () => void): void
  onHeaders(status: number, headers: Buffer[], resume: () => void, statusText: string): boolean
  onComplete(trailers: unknown[]): void
}

/** The URL every fetch-shaped client is called with. */
export const URL_ = 'http://svc/x'

/** Builds the tasks; `close()` stops what they hold (opossum's intervals, the meshes). */
export function inProcessTasks(lib: Meshlet): { tasks: InProcessTask[]; close: () => Promise<void> } {
  const {
    balancer,
    bulkhead,
    Cancellation,
    CircuitBreaker,
    circuitBreaker,
    Context,
    createMesh,
    deadline,
    Endpoint,
    exponentialBackoff,
    httpClassifier,
    httpProtocol,
    leastRequest,
    ratioBudget,
    retry,
    systemClock,
    systemRandom,
    timeout,
    withMesh,
  } = lib

  const RESPONSE = new Response(null, { status: 200 })
  const noopFetch = (async () => RESPONSE) as unknown as typeof fetch
  const noopTransport: Handler<Req, Res> = async () => RESPONSE
  // What cockatiel, opossum and p-retry wrap: the very call the bare row times.
  const bareCall = () => noopFetch(URL_)

  const endpoints = ['http://127.0.0.1:1']
  const meshes: Array<{ close: () => Promise<void> }> = []
  const meshFetch = (service: MeshConfig['services'][string], viaFetch = false): typeof fetch => {
    const mesh = createMesh({ services: { svc: service } }, viaFetch ? {} : { httpTransport: noopTransport })
    meshes.push(mesh)
    return withMesh(noopFetch, mesh)
  }
  // The default stack: router (no routes), deadline (15 s: one timer per call), retry with the
  // default ratio budget, least-request balancer, attempt timeout.
  const meshDefault = meshFetch({ endpoints })
  // The full stack: the default one plus a circuit breaker and a bulkhead.
  const meshFull = meshFetch({ endpoints, circuitBreaker: {}, concurrency: { max: 100 } })
  const meshNoDeadline = meshFetch({ endpoints, timeout: 0 })
  // The default stack plus a local rate limit that never refuses (10^9 per second): what a
  // limit's decision and its exit hook cost per call, beside mesh-default (decision D57).
  const meshRateLimit = meshFetch({ endpoints, rateLimit: { rate: 1_000_000, period: 1 } })
  const meshRetryTimeout = meshFetch({
    endpoints,
    timeout: '2s',
    retry: { attempts: 3, perTryTimeout: '500ms' },
  })
  // The default stack through the fetch transport (one AbortController per attempt).
  const meshViaFetch = meshFetch({ endpoints }, true)
  // The default stack behind a route with a header and a path regex, both matching: what RE2
  // matching (re2js, D49) and reading a header cost per call, beside mesh-default (no routes).
  const regexMesh = createMesh(
    {
      services: { svc: { endpoints } },
      routes: [
        {
          match: [
            {
              headers: { 'x-version': { regex: '^v[0-9]+\\.[0-9]+$' } },
              path: { regex: '/[a-z]+(/[0-9]+)?' },
            },
          ],
          route: [{ service: 'svc' }],
        },
      ],
    },
    { httpTransport: noopTransport },
  )
  meshes.push(regexMesh)
  const meshRegex = withMesh(noopFetch, regexMesh)
  const regexInit: RequestInit = { headers: { 'x-version': 'v1.2' } }

  // Node's own fetch on a dispatcher that answers every request at once (200, empty body): what
  // fetch's algorithm costs, against withMesh(fetch) on its direct path and with it off.
  const answering = {
    dispatch(_options: unknown, handler: UndiciHandler) {
      queueMicrotask(() => {
        handler.onConnect(() => {})
        handler.onHeaders(200, [], () => {}, 'OK')
        handler.onComplete([])
      })
      return true
    },
  }
  const viaDispatcher = { dispatcher: answering } as RequestInit
  const realEndpoints = ['http://127.0.0.1:8080'] // a port fetch does not refuse
  const realMesh = (directFetch: boolean) => {
    const mesh = createMesh({ services: { svc: { endpoints: realEndpoints } } }, { directFetch })
    meshes.push(mesh)
    return withMesh(fetch, mesh)
  }
  const meshDirect = realMesh(true)
  const meshDirectOff = realMesh(false)

  // Stages alone and composed by hand, as mesh/stack.ts chains them (no compose guard), called
  // with a root context per call as Mesh.invoke makes one, without withMesh's parsing.
  const REQ: Req = {
    service: 'svc',
    path: '/x',
    method: 'GET',
    init: {},
    replayable: true,
    signal: undefined,
    propagateDeadline: true,
  }
  const rootContext = () =>
    Context.create({ clock: systemClock, random: systemRandom, cancel: new Cancellation() })
  const stack = (...stages: Middleware<Req, Res>[]): Handler<Req, Res> =>
    stages.reduceRight<Handler<Req, Res>>((inner, stage) => stage(inner), noopTransport)
  const classify = httpClassifier()
  const retryPolicy = {
    attempts: 3,
    backoff: exponentialBackoff({ base: 25, max: 1000, jitter: 'full' }),
    classify,
    protocol: httpProtocol,
  }
  const meshRetry = () => retry<Req, Res>({ ...retryPolicy, budget: ratioBudget(), service: 'svc' })
  const meshBalancer = () =>
    balancer<Req, Res>({
      service: 'svc',
      endpoints: [new Endpoint({ address: endpoints[0]! })],
      strategy: leastRequest(),
      classify,
    })
  const contextOnly = stack()
  const deadlineAlone = stack(deadline({ timeout: 15_000 }))
  const retryAlone = stack(meshRetry())
  const breakerAlone = stack(circuitBreaker({ breaker: new CircuitBreaker(), classify, service: 'svc' }))
  const balancerAlone = stack(meshBalancer())
  const timeoutAlone = stack(timeout({ perTryTimeout: 15_000, service: 'svc' }))
  const bulkheadAlone = stack(bulkhead({ max: 100, service: 'svc' }))
  const composedDefault = stack(
    deadline({ timeout: 15_000 }),
    meshRetry(),
    meshBalancer(),
    timeout({ perTryTimeout: 0, service: 'svc' }),
  )
  const composedPRetry = stack(
    deadline({ timeout: 15_000 }),
    pRetryStage<Req, Res>(retryPolicy),
    meshBalancer(),
    timeout({ perTryTimeout: 0, service: 'svc' }),
  )
  // meshlet's breaker stage with one prebuilt context, as opossum's `fire` has no per-call context.
  const breakerStage = circuitBreaker<Req, Res>({ breaker: new CircuitBreaker(), classify, service: 'svc' })(
    noopTransport,
  )
  const breakerContext = rootContext()

  const cRetry = cockatielRetry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() })
  const cBreaker = cockatielBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) })
  const cTimeout = cockatielTimeout(10_000, TimeoutStrategy.Cooperative)
  const cWrap = cockatielWrap()

  // opossum as the interop stage uses it (docs/decisions.md, D14): the action runs what it is handed.
  const runIt = (run: () => Promise<unknown>) => run()
  const opossumOff = new OpossumBreaker(runIt, { timeout: false })
  const opossumDefault = new OpossumBreaker(runIt)

  // The per-call cost of the policy check that the egress stage and the inbound guard run (D54).
  const accessPolicy = compilePolicies([
    { name: 'deny', action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] },
    {
      name: 'allow',
      rules: [
        {
          from: [{ source: { principals: ['cluster.local/ns/a/sa/x'] } }],
          to: [{ operation: { methods: ['GET'] } }],
        },
        { to: [{ operation: { hosts: ['users'], methods: ['GET', 'POST'], paths: ['/api/*'] } }] },
      ],
    },
  ])
  const POLICY_REQ = {
    method: 'GET',
    path: '/api/users/42',
    host: 'users',
    principal: 'spiffe://cluster.local/ns/b/sa/y',
  }

  const tasks: InProcessTask[] = [
    { id: 'bare', name: 'bare call (the no-op itself)', call: bareCall },
    { id: 'mesh-default', name: 'meshlet withMesh, default stack', call: () => meshDefault(URL_) },
    { id: 'mesh-full', name: 'meshlet withMesh, default + breaker + bulkhead', call: () => meshFull(URL_) },
    {
      id: 'mesh-rate-limit',
      name: 'meshlet withMesh, default + local rate limit',
      call: () => meshRateLimit(URL_),
    },
    {
      id: 'mesh-no-deadline',
      name: 'meshlet withMesh, default with timeout 0',
      call: () => meshNoDeadline(URL_),
    },
    {
      id: 'mesh-per-try',
      name: 'meshlet withMesh, 2 s deadline + perTryTimeout',
      call: () => meshRetryTimeout(URL_),
    },
    {
      id: 'mesh-via-fetch',
      name: 'meshlet withMesh, default, fetch transport',
      call: () => meshViaFetch(URL_),
    },
    {
      id: 'mesh-regex-route',
      name: 'meshlet withMesh, default behind a header + path regex route',
      call: () => meshRegex(URL_, regexInit),
    },
    {
      id: 'fetch-answering',
      name: "Node's fetch, dispatcher answering at once",
      call: async () => (await fetch('http://127.0.0.1:8080/x', viaDispatcher)).arrayBuffer(),
    },
    {
      id: 'mesh-direct',
      name: 'meshlet withMesh(fetch), default, direct path, same dispatcher',
      call: async () => (await meshDirect(URL_, viaDispatcher)).arrayBuffer(),
    },
    {
      id: 'mesh-direct-off',
      name: 'meshlet withMesh(fetch), default, directFetch false, same dispatcher',
      call: async () => (await meshDirectOff(URL_, viaDispatcher)).arrayBuffer(),
    },
    { id: 'ctx', name: 'stage baseline: root context + no-op', call: () => contextOnly(REQ, rootContext()) },
    {
      id: 'policy-check',
      name: 'access policy check: DENY + 2 ALLOW rules, the last matching (D54)',
      call: async () => accessPolicy.evaluate(POLICY_REQ),
    },
    {
      id: 'stage-deadline',
      name: 'stage alone: deadline 15 s',
      call: () => deadlineAlone(REQ, rootContext()),
    },
    {
      id: 'stage-retry',
      name: 'stage alone: retry + ratio budget',
      call: () => retryAlone(REQ, rootContext()),
    },
    {
      id: 'stage-breaker',
      name: 'stage alone: circuit breaker',
      call: () => breakerAlone(REQ, rootContext()),
    },
    {
      id: 'stage-balancer',
      name: 'stage alone: balancer least-request',
      call: () => balancerAlone(REQ, rootContext()),
    },
    {
      id: 'stage-timeout',
      name: 'stage alone: attempt timeout 15 s',
      call: () => timeoutAlone(REQ, rootContext()),
    },
    {
      id: 'stage-bulkhead',
      name: 'stage alone: bulkhead max 100',
      call: () => bulkheadAlone(REQ, rootContext()),
    },
    {
      id: 'composed-default',
      name: 'default stages composed by hand',
      call: () => composedDefault(REQ, rootContext()),
    },
    {
      id: 'composed-p-retry',
      name: 'the same, retry stage on p-retry',
      call: () => composedPRetry(REQ, rootContext()),
    },
    {
      id: 'breaker-prebuilt',
      name: 'meshlet breaker stage, one prebuilt context',
      call: () => breakerStage(REQ, breakerContext),
    },
    { id: 'cockatiel-retry', name: 'cockatiel retry', call: () => cRetry.execute(bareCall) },
    { id: 'cockatiel-breaker', name: 'cockatiel circuitBreaker', call: () => cBreaker.execute(bareCall) },
    {
      id: 'cockatiel-timeout',
      name: 'cockatiel timeout (cooperative)',
      call: () => cTimeout.execute(bareCall),
    },
    {
      id: 'cockatiel-wrap',
      name: 'cockatiel wrap(retry, breaker, timeout)',
      call: () => cWrap.execute(bareCall),
    },
    { id: 'opossum-off', name: 'opossum fire, timeout off', call: () => opossumOff.fire(bareCall) },
    {
      id: 'opossum-default',
      name: 'opossum fire, default 10 s timeout',
      call: () => opossumDefault.fire(bareCall),
    },
    { id: 'p-retry', name: 'p-retry, retries 2', call: () => pRetry(bareCall, { retries: 2 }) },
  ]
  const close = async () => {
    opossumOff.shutdown()
    opossumDefault.shutdown()
    for (const m of meshes) await m.close()
  }
  return { tasks, close }
}
