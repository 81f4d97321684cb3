/**
 * The config fuzzer (issue 23): thousands of configs generated from the schema itself
 * (test/helpers/config-arbitrary.ts walks the JSON Schema the combinators emit), most of them
 * then made hostile. The property, for every input:
 * - `createMesh` accepts it, and one call through it (an in-memory transport, a manual clock run
 *   until the call settles) answers a `Response` or rejects with a `MeshError` of a documented
 *   code; or it refuses it with a `ConfigInvalidError` whose every issue names a path;
 * - never a raw `TypeError` / `RangeError` / `URIError` or any other error;
 * - `Object.prototype` and `Array.prototype` are unchanged;
 * - a refusal takes under 50 ms;
 * - one long-lived mesh, updated with every draft, takes each accepted one and is left unchanged
 *   by each refused one.
 * A fixed seed runs in every CI run; a random seed runs too, and fast-check prints it (with the
 * shrunk counterexample) on failure: `fc.assert(..., { seed, path })` replays it.
 */
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import type { HttpRequest } from '../src/adapters/fetch/request.js'
import { ConfigInvalidError, isMeshError, type MeshErrorCode } from '../src/core/errors.js'
import { seededRandom } from '../src/core/random.js'
import { configJsonSchema, type MeshConfig, parseConfig } from '../src/mesh/config/config.js'
import { createMesh, type Mesh } from '../src/mesh/mesh.js'
import { withMesh } from '../src/mesh/with-mesh.js'
import { ManualClock } from '../src/testing/manual-clock.js'
import {
  fromSchema,
  type JsonSchemaNode,
  mutate,
  mutationArb,
  PROTO_NAMES,
} from './helpers/config-arbitrary.js'

/**
 * Runs per seed; two seeds make the >= 10,000 configs of issue 23. `MESHLET_FUZZ_RUNS=100000`
 * runs a longer campaign locally.
 */
const RUNS = Number(process.env.MESHLET_FUZZ_RUNS ?? 5_000)
const REFUSE_LIMIT_MS = 50
const CODES: ReadonlySet<MeshErrorCode> = new Set([
  'TIMEOUT',
  'CIRCUIT_OPEN',
  'RETRY_BUDGET_EXHAUSTED',
  'NO_HEALTHY_ENDPOINT',
  'BULKHEAD_FULL',
  'RATE_LIMITED',
  'ACCESS_DENIED',
  'CONFIG_INVALID',
  'UNKNOWN_SERVICE',
  'MESH_CLOSED',
  'TOKEN_UNAVAILABLE', // a generated auth.tokenFile names no file
  'TLS_REQUIRED',
  'TLS_MATERIAL_INVALID',
  'TLS_IDENTITY_MISMATCH',
  'TLS_CERT_EXPIRED',
  'TLS_CERT_NOT_YET_VALID',
  'TLS_UNKNOWN_CA',
  'TLS_HANDSHAKE_FAILED',
])

const schema = configJsonSchema() as JsonSchemaNode
type Draft = { services?: Record<string, Record<string, unknown>>; routes?: Array<Record<string, unknown>> }

/**
 * Gives most services endpoints and points most destinations at services and subsets the draft
 * defines (`pick` decides which, and leaves one in eight as drawn), so that many drafts are
 * accepted and reach a call; the schema alone cannot say that a route's `service` names a key
 * of `services`, nor that a service needs endpoints or discovery.
 */
function wire(draft: Draft, pick: number): void {
  const services = Object.keys(draft.services ?? {})
  let n = pick
  const next = () => {
    n = (Math.imul(n, 1103515245) + 12345) >>> 0
    return n
  }
  // A service needs endpoints or discovery (a rule across fields): most drafts get them.
  for (const s of Object.values(draft.services ?? {})) {
    if (s.endpoints === undefined && s.discovery === undefined && next() % 8 !== 0) {
      s.endpoints = [s.protocol === 'grpc' ? '127.0.0.1:50051' : 'http://127.0.0.1:8081']
    }
  }
  if (!Array.isArray(draft.routes)) return
  const point = (d: Record<string, unknown> | undefined) => {
    if (typeof d !== 'object' || d === null) return
    if (services.length === 0) return
    const service = services[next() % services.length]!
    d.service = service
    const subsets = Object.keys((draft.services?.[service]?.subsets as object | undefined) ?? {})
    if (subsets.length > 0 && next() % 2 === 0) d.subset = subsets[next() % subsets.length]
    else delete d.subset
  }
  for (const r of draft.routes) {
    if (typeof r !== 'object' || r === null) continue
    if (Array.isArray(r.route)) for (const d of r.route) point(d as Record<string, unknown>)
    point(r.mirror as Record<string, unknown> | undefined)
  }
}

/** Points one destination in eight at a prototype name (service or subset): it must be refused. */
function dangle(draft: Draft, pick: number): void {
  if (!Array.isArray(draft.routes)) return
  let n = pick
  for (const r of draft.routes) {
    if (typeof r !== 'object' || r === null || !Array.isArray(r.route)) continue
    for (const d of [...r.route, r.mirror] as Array<Record<string, unknown> | undefined>) {
      n = (Math.imul(n, 1103515245) + 12345) >>> 0
      if (typeof d !== 'object' || d === null || n % 8 !== 0) continue
      if (n % 16 === 0) d.service = PROTO_NAMES[n % PROTO_NAMES.length]
      else d.subset = PROTO_NAMES[(n >>> 4) % PROTO_NAMES.length]
    }
  }
}

/** Splits an issue path (`a.b[0]["x.y"]`) into keys and indexes; `undefined` for a cut key. */
function segments(path: string): Array<string | number> | undefined {
  const out: Array<string | number> = []
  for (const m of path.matchAll(/(?:^|\.)([^\s.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    if (m[1] !== undefined) out.push(m[1])
    else if (m[2] !== undefined) out.push(Number(m[2]))
    else if (m[3] !== undefined) out.push(JSON.parse(m[3]) as string)
  }
  return out.some((k) => typeof k === 'string' && k.endsWith('…')) ? undefined : out
}

/**
 * Makes a near-valid draft valid by removing what the parser names: each issue's value is
 * deleted from its parent (a required key then reports its parent, removed next round). The
 * parser is the oracle of rules across fields, which JSON Schema does not carry; the result keeps
 * the draft's variety, and hostile mutations then start from a config the mesh accepts.
 */
function prune(draft: unknown): void {
  for (let round = 0; round < 6; round++) {
    let issues: readonly { path: string }[]
    try {
      parseConfig(draft)
      return
    } catch (error) {
      if (!(error instanceof ConfigInvalidError)) return
      issues = error.issues
    }
    // Deepest first, and indexes from the end, so a removal does not move another's target.
    const paths = issues
      .map((i) => segments(i.path))
      .filter((p): p is Array<string | number> => p !== undefined && p.length > 0)
      .sort(
        (a, b) =>
          b.length - a.length || String(b.at(-1)).localeCompare(String(a.at(-1)), 'en', { numeric: true }),
      )
    if (paths.length === 0) return
    for (const path of paths) {
      let parent: unknown = draft
      for (const key of path.slice(0, -1))
        parent = (parent as Record<string | number, unknown> | undefined)?.[key]
      const last = path.at(-1)!
      if (Array.isArray(parent) && typeof last === 'number') parent.splice(last, 1)
      else if (typeof parent === 'object' && parent !== null) delete (parent as Record<string, unknown>)[last]
    }
  }
}

/** Every own property of the prototypes a config could pollute, with its value or accessors. */
function prototypes(): unknown[][] {
  return [Object.prototype, Array.prototype, Function.prototype, String.prototype].map((p) =>
    Reflect.ownKeys(p).map((key) => {
      const d = Object.getOwnPropertyDescriptor(p, key)
      return [key, d?.value, d?.get, d?.set]
    }),
  )
}
const pristine = prototypes()
/** Whether the prototypes are as they were: the same keys holding the very same values. */
const unpolluted = (): boolean => {
  const now = prototypes()
  return now.every(
    (props, i) =>
      props.length === pristine[i]!.length &&
      props.every((p, j) =>
        (p as unknown[]).every((v, k) => Object.is(v, (pristine[i]![j] as unknown[])[k])),
      ),
  )
}

const stats = { accepted: 0, refused: 0, called: 0, slowestRefusal: 0 }

/**
 * Creates the mesh, timing a refusal; a slow refusal is timed again, up to five times in all (a GC
 * pause or a busy machine is not the input's): the fastest must be under the limit.
 */
function create(
  config: unknown,
  clock: ManualClock,
  transport: (req: HttpRequest) => Promise<Response>,
): Mesh | undefined {
  const resolvers = Object.fromEntries(
    Object.entries((config as Draft | null)?.services ?? {}).map(([name, s]) => [
      name,
      () => [s?.protocol === 'grpc' ? '127.0.0.1:9' : 'http://127.0.0.1:9'],
    ]),
  )
  const options = { clock, random: seededRandom(1), httpTransport: transport, resolvers, fallbacks: {} }
  let fastest = Number.POSITIVE_INFINITY
  for (let attempt = 0; attempt < 5; attempt++) {
    const start = performance.now()
    try {
      return createMesh(config as MeshConfig, options)
    } catch (error) {
      fastest = Math.min(fastest, performance.now() - start)
      if (!(error instanceof ConfigInvalidError)) throw error
      expect(error.issues.length).toBeGreaterThan(0)
      for (const issue of error.issues) {
        expect(typeof issue.path).toBe('string')
        expect(issue.message.length).toBeLessThan(1000)
      }
      if (fastest < REFUSE_LIMIT_MS) break
    }
  }
  stats.refused++
  stats.slowestRefusal = Math.max(stats.slowestRefusal, fastest)
  expect(fastest).toBeLessThan(REFUSE_LIMIT_MS)
  return undefined
}

/** An accepted config routes only to services and subsets it defines (own keys, exact names). */
function expectReferencesExist(mesh: Mesh): void {
  const { services, routes } = mesh.config
  for (const r of routes) {
    for (const d of [...r.route, ...(r.mirror ? [r.mirror] : [])]) {
      expect(Object.hasOwn(services, d.service), `route to undefined service ${d.service}`).toBe(true)
      if (d.subset !== undefined) {
        expect(Object.hasOwn(services[d.service]!.subsets, d.subset), `undefined subset ${d.subset}`).toBe(
          true,
        )
      }
    }
  }
}

/** One call through `mesh` to `host`, the clock run from timer to timer until it settles. */
async function callThrough(
  mesh: Mesh,
  clock: ManualClock,
  host: string,
  method: string,
  upstreamError: Error,
  configured: boolean,
): Promise<void> {
  const passThrough = (async () => new Response('direct')) as unknown as typeof fetch
  const fetch2 = withMesh(passThrough, mesh)
  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown } | undefined
  let call: Promise<Response>
  try {
    const headers = { 'x-canary': 'on', cookie: 'session=abc' }
    call = fetch2(
      `http://${host}/api/x?q=1`,
      method === 'POST' ? { method, headers, body: 'b' } : { headers },
    )
  } catch (error) {
    throw new Error(`fetch2 threw synchronously: ${String(error)}`)
  }
  call.then(
    (value) => {
      outcome = { ok: true, value }
    },
    (error: unknown) => {
      outcome = { ok: false, error }
    },
  )
  let ioWaits = 0
  for (let steps = 0; outcome === undefined; steps++) {
    await clock.flush()
    if (outcome !== undefined) break
    const at = clock.nextTimerAt()
    if (at === undefined && ioWaits < 200) {
      // No timer: the call may be waiting on real I/O (a generated auth.tokenFile being read).
      ioWaits++
      await new Promise((resolve) => setTimeout(resolve, 1))
      continue
    }
    if (at === undefined || steps > 5_000) throw new Error(`the call to ${host} never settled`)
    await clock.advanceTo(at)
  }
  if (outcome.ok) {
    expect(outcome.value).toBeInstanceOf(Response)
    await (outcome.value as Response).body?.cancel()
  } else {
    const { error } = outcome
    // The upstream's own failure comes back as fetch gives it (fetch semantics), else a MeshError.
    if (error !== upstreamError && !(isMeshError(error) && CODES.has(error.code))) throw error
    // The host called names a configured service: "unknown service" would be a misroute.
    if (configured && isMeshError(error, 'UNKNOWN_SERVICE')) throw error
  }
  stats.called++
}

const input = fc.record({
  draft: fromSchema(schema),
  mutations: fc.oneof({ arbitrary: fc.constant([]), weight: 1 }, { arbitrary: mutationArb, weight: 3 }),
  pick: fc.nat(),
  upstream: fc.constantFrom('ok', '503', 'reset'),
  method: fc.constantFrom('GET', 'POST'),
})

/**
 * A resolver for every service name: a `Proxy` answering every own-key lookup, so that no
 * discovered service of a draft ever asks DNS.
 */
const anyResolver = (): Record<string, () => string[]> => {
  const resolve = () => ['http://127.0.0.1:9']
  return new Proxy(
    {},
    {
      getOwnPropertyDescriptor: () => ({
        value: resolve,
        enumerable: true,
        configurable: true,
        writable: true,
      }),
      get: () => resolve,
    },
  )
}

/**
 * One mesh that lives through the whole run and is updated with every draft: an accepted draft
 * becomes its config (the snapshot rebuilt over the state of all the drafts before), a refused
 * one throws `ConfigInvalidError` and changes nothing.
 */
const live = createMesh({ services: {} }, { clock: new ManualClock(), resolvers: anyResolver() })

function update(draft: unknown): void {
  const before = live.config
  try {
    live.update(draft as MeshConfig)
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error
    expect(live.config).toBe(before)
  }
}

const property = fc.asyncProperty(input, async ({ draft, mutations, pick, upstream, method }) => {
  wire(draft as Draft, pick)
  // Half the drafts are made valid first, so hostile mutations start from an accepted config.
  if (pick % 2 === 0) prune(draft)
  dangle(draft as Draft, pick >>> 1)
  mutate(draft, mutations)
  const clock = new ManualClock()
  const upstreamError = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } })
  const transport = async (): Promise<Response> => {
    if (upstream === 'reset') throw upstreamError
    return new Response(upstream, { status: upstream === 'ok' ? 200 : 503 })
  }
  const mesh = create(draft, clock, transport)
  update(draft)
  try {
    if (mesh !== undefined) {
      stats.accepted++
      expectReferencesExist(mesh)
      // An HTTP service: fetch treats a gRPC service's host as no service of its own.
      const http = Object.entries(mesh.config.services)
        .filter(([, s]) => s.protocol === 'http')
        .map(([name]) => name)
      const host = http.length > 0 ? http[pick % http.length]! : 'unknown'
      await callThrough(mesh, clock, host, method, upstreamError, http.length > 0)
    }
  } finally {
    if (mesh !== undefined) {
      const closed = mesh.close({ force: true })
      await clock.flush()
      await closed
    }
  }
  expect(unpolluted(), 'a prototype changed').toBe(true)
})

describe('config fuzzer', () => {
  afterAll(async () => {
    await live.close({ force: true })
    // Printed so a reader of CI logs can see the fuzzer reached calls, not only refusals.
    console.log(`config fuzzer: ${JSON.stringify(stats)}`)
  })

  it(`accepts or refuses ${RUNS} configs from a fixed seed, never with a raw error`, async () => {
    await fc.assert(property, { numRuns: RUNS, seed: 23, endOnFailure: true })
  }, 120_000)

  it(`accepts or refuses ${RUNS} configs from a random seed (printed on failure)`, async () => {
    const seed = Date.now() ^ (Math.random() * 0x7fffffff)
    try {
      await fc.assert(property, { numRuns: RUNS, seed, endOnFailure: true })
    } catch (error) {
      throw new Error(`config fuzzer failed with random seed ${seed}: ${String(error)}`)
    }
  }, 120_000)

  it('reaches calls: a good share of generated configs is accepted', () => {
    expect(stats.accepted).toBeGreaterThan(RUNS * 0.1)
  })
})
